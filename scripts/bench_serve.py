"""``rnnlm serve`` under load: requests/s, characters/s and p50/p99 latency, one client alone and many at once.

    python scripts/bench_serve.py                          # the newest run under ./checkpoints, 8 clients × 50 requests
    python scripts/bench_serve.py checkpoints/RUN --clients 4 --requests 20 --max-tokens 100 --stream --json

Starts ``rnnlm serve CHECKPOINT --port 0`` (its default limits: 4 generations taking turns, 16 waiting) as a
subprocess on 127.0.0.1, sends it seeded, non-streamed completions (``--stream``: streamed, and the time to the
first piece is reported too), then stops it.  Bounded in count and time (docs/developer/rules.md, "Serving"):
``--clients`` × ``--requests`` at most, none started after ``--max-time`` seconds, each request cut at 120 s.
First one client alone (``--solo`` requests: what one user sees), then all clients at once.

Prints a markdown block (and, with ``--json``, one JSON object); writes nothing into BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RNNLM = Path(sys.executable).with_name("rnnlm")


def cpu_line() -> str:
    from scripts.benchmarks_md import cpu_model, cpu_simd

    name, simd = cpu_model(), cpu_simd()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{name}, {os.cpu_count()} cores, {simd}, load average {load:.1f} at the start"


def start_server(checkpoint: str | None, threads: int) -> tuple[subprocess.Popen, str, list[str]]:
    """``rnnlm serve`` on a free port of 127.0.0.1; its base URL and the lines it printed before serving."""
    args = [str(RNNLM), "serve", *([checkpoint] if checkpoint else []), "--host", "127.0.0.1", "--port", "0",
            "--quiet", "--threads", str(threads)]
    proc = subprocess.Popen(args, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    lines: list[str] = []
    deadline = time.monotonic() + 180
    while True:
        line = proc.stderr.readline()
        if not line and proc.poll() is not None:
            sys.exit(f"rnnlm serve stopped: {''.join(lines)}")
        lines.append(line)
        match = re.search(r"serving on (http://\S+/v1)", line)
        if match:
            threading.Thread(target=proc.stderr.read, daemon=True).start()  # keep its pipe drained
            return proc, match.group(1), lines
        if time.monotonic() > deadline:
            proc.kill()
            sys.exit("rnnlm serve did not start within 180 s")


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile, nearest rank (p99 of 400 values is the 396th smallest)."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, int(round(q / 100 * len(ordered) + 0.5)) - 1))]


def load_phase(url: str, model: str, clients: int, requests: int, max_tokens: int, stream: bool,
               max_time: float, seed0: int) -> dict:
    """``clients`` threads, each sending ``requests`` completions one after another; figures over all of them."""
    latencies: list[float] = []
    firsts: list[float] = []
    chars = 0
    statuses: dict[str, int] = {}
    lock = threading.Lock()
    stop_at = time.monotonic() + max_time

    def client(index: int) -> None:
        nonlocal chars
        with httpx.Client(timeout=120) as http:
            for j in range(requests):
                if time.monotonic() > stop_at:
                    return
                body = {"model": model, "prompt": "ROMEO:", "max_tokens": max_tokens, "seed": seed0 + index * 1000 + j}
                start = time.perf_counter()
                first = None
                try:
                    if stream:
                        text = []
                        with http.stream("POST", f"{url}/completions", json={**body, "stream": True}) as response:
                            status = response.status_code
                            for line in response.iter_lines():
                                if line.startswith("data: {"):
                                    first = first or time.perf_counter() - start
                                    text.append(json.loads(line[6:])["choices"][0]["text"] if status == 200 else "")
                        got = "".join(text)
                    else:
                        response = http.post(f"{url}/completions", json=body)
                        status = response.status_code
                        got = response.json()["choices"][0]["text"] if status == 200 else ""
                    key = str(status)
                except httpx.HTTPError as exc:
                    key, got = type(exc).__name__, ""
                elapsed = time.perf_counter() - start
                with lock:
                    statuses[key] = statuses.get(key, 0) + 1
                    if key == "200":
                        latencies.append(elapsed)
                        chars += len(got)
                        if first is not None:
                            firsts.append(first)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    ok = len(latencies)
    return {
        "clients": clients, "sent": sum(statuses.values()), "ok": ok, "statuses": statuses, "seconds": round(wall, 2),
        "requests_per_s": round(ok / wall, 2), "chars_per_s": round(chars / wall, 1),
        "p50_s": round(percentile(latencies, 50), 3) if ok else None,
        "p99_s": round(percentile(latencies, 99), 3) if ok else None,
        "first_piece_p50_s": round(percentile(firsts, 50), 3) if firsts else None,
    }


def markdown(result: dict) -> str:
    rows = ["| clients | requests sent | answered 200 | other answers | requests/s | characters/s | p50 latency | "
            "p99 latency |" + (" p50 to first piece |" if result["stream"] else ""),
            "|---|---|---|---|---|---|---|---|" + ("---|" if result["stream"] else "")]
    for phase in result["phases"]:
        other = ", ".join(f"{k}: {v}" for k, v in sorted(phase["statuses"].items()) if k != "200") or "none"
        rows.append(f"| {phase['clients']} | {phase['sent']} | {phase['ok']} | {other} | {phase['requests_per_s']:.2f} "
                    f"| {phase['chars_per_s']:,.0f} | {phase['p50_s']} s | {phase['p99_s']} s |"
                    + (f" {phase['first_piece_p50_s']} s |" if result["stream"] else ""))
    head = (f"`rnnlm serve` under load (`scripts/bench_serve.py`): model {result['model']} ({result['describes']}), "
            f"{'streamed' if result['stream'] else 'non-streamed'} completions of max_tokens {result['max_tokens']} "
            f"from the prompt `ROMEO:`, each seeded; the server's default limits (4 generations taking turns, 16 "
            f"waiting), {result['threads']} torch thread; clients in another process on the same machine. "
            f"Machine: {result['cpu']}.")
    return head + "\n\n" + "\n".join(rows) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", nargs="?", help="a .safetensors file or run directory (default: the newest run)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=50, help="requests per client")
    parser.add_argument("--solo", type=int, default=10, help="requests of the one-client phase first (0: skip it)")
    parser.add_argument("--max-tokens", type=int, default=200)
    parser.add_argument("--max-time", type=float, default=300.0, help="no request starts after this many seconds")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--write", action="store_true", help="also write BENCHMARKS.md's serve section")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not 1 <= args.clients <= 64 or not 1 <= args.requests <= 1000:
        sys.exit("--clients 1..64 and --requests 1..1000: a load test stays bounded")
    cpu = cpu_line()
    proc, url, lines = start_server(args.checkpoint, args.threads)
    try:
        model = httpx.get(f"{url}/models", timeout=30).json()["data"][0]["id"]
        described = next((m.group(1) for line in lines if (m := re.search(rf"model {re.escape(model)}: .*\((.*)\)", line))),
                         "")
        phases = []
        if args.solo:
            phases.append(load_phase(url, model, 1, args.solo, args.max_tokens, args.stream, args.max_time, 0))
        phases.append(load_phase(url, model, args.clients, args.requests, args.max_tokens, args.stream,
                                 args.max_time, 10**6))
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
    result = {"model": model, "describes": described, "max_tokens": args.max_tokens, "stream": args.stream,
              "threads": args.threads, "cpu": cpu, "phases": phases}
    print(markdown(result))
    if args.write:
        from scripts.benchmarks_md import write_section

        write_section("serve", "## `rnnlm serve` under load\n\n" + markdown(result))
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
