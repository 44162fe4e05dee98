"""Paired runs with step budgets: each regulariser against the same run without it (issue "longer budgets").

    python scripts/paired.py run --name ts30 --size 512x1 --steps 6723 --arms base,reset,wdrop,edrop,all --jobs 2
    python scripts/paired.py run --name ts30 --size 512x1 --steps 6723 --arms base,all --seeds 1   # the second seed
    python scripts/paired.py add checkpoints/RUN --name ts30 --arm base --size 512x1   # a run trained elsewhere
    python scripts/paired.py table            # BENCHMARKS.md's "longer-budgets" section (and stdout)
    python scripts/paired.py all              # every group below, then the table (many hours; bench.py's section)

Every run of a group trains the same size for the same number of steps with
the same seed and data order (``--max-steps``, one thread each, ``--jobs`` side
by side), so what the machine does meanwhile moves its wall time and nothing
else; an arm differs from ``base`` only by its flags.  A run that is cut off is
continued with ``--resume`` (bitwise, for a step budget) the next time
``run`` is called; finished runs are skipped.  Each finished run is also scored
from zero states (scripts/fresh_starts.py): collapsed starts, streamed and
``--window 64`` bpc.  Results land in ``checkpoints/.paired/results.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rnnlm.core.fileio import atomic_write_text  # noqa: E402
from scripts.benchmarks_md import (  # noqa: E402
    default_regularisation, machine_name, regularisation_of, updating_json, write_section)

CORPUS = ROOT.parent / "shared" / "corpora" / "tinyshakespeare.txt"
WORK = ROOT / "checkpoints" / ".paired"
RESULTS = WORK / "results.json"
STATE_RESET = "0.0625"  # one stream in 16 restarts at each window (docs/defaults.md)
OFF = {"state_reset": "0", "weight_drop": "0", "embed_drop": "0"}  # every technique of the issue off


def rates(**on: str) -> dict[str, str]:
    """An arm: every technique's rate named, so an arm means the same runs whatever the defaults are."""
    return {**OFF, **on}


def flags(arm_rates: dict[str, str]) -> list[str]:
    """An arm's rates as ``rnnlm train`` flags."""
    return [token for name, rate in arm_rates.items() for token in (f"--{name.replace('_', '-')}", rate)]


ARMS = {
    "base": rates(),
    "reset": rates(state_reset=STATE_RESET),
    "reset64": rates(state_reset="0.015625"),  # a smaller share, one stream in 64
    "wdrop": rates(weight_drop="auto"),
    "edrop": rates(embed_drop="auto"),
    "all": rates(state_reset=STATE_RESET, weight_drop="auto", embed_drop="auto"),
}

# The groups, with the steps each size made in 0.9 x M minutes on the AMD EPYC (AVX2, 2 cores) they were
# measured on: 3 and 10 minutes of the default sizes, 30 minutes of 512x1, nanoGPT's split at 15 minutes, and the
# 1024x1 case that collapsed from a zero state.  (name, size, steps, split, {seed: arms})
GROUPS = [
    ("fresh-1024x1-230", "1024x1", 230, None, {0: "base,reset,reset64"}),
    ("default-3m-384x1-995", "384x1", 995, None, {0: "base,reset,wdrop,edrop,all", 1: "base,reset"}),
    ("default-10m-512x1-2241", "512x1", 2241, None, {0: "base,reset", 1: "base,reset"}),
    ("ts30-512x1-6723", "512x1", 6723, None, {0: "base,reset,wdrop,edrop"}),
    ("nano-15m-512x1-3362", "512x1", 3362, "0.9,0.1", {0: "base,reset"}),
]


def load_results() -> dict:
    return (json.loads(RESULTS.read_text()) if RESULTS.exists()
            else {"machine": f"{machine_name()}, 2 cores", "runs": {}})


def train_one(group: str, corpus: Path, size: str, steps: int, arm: str, seed: int, split: str | None) -> dict:
    """One run in its own process (resumed if a checkpoint of it exists), then its fresh-start figures."""
    out = WORK / group / f"{arm}-s{seed}"
    done = out / "summary.json"
    if done.exists():
        return json.loads(done.read_text())
    cmd = [sys.executable, "-m", "rnnlm", "train", str(corpus), "--threads", "1", "--size", size,
           "--max-steps", str(steps), "--seed", str(seed), "--out", str(out), *flags(ARMS[arm]),
           *(["--split", split] if split else [])]
    if (out / "latest.safetensors").exists():
        cmd = [sys.executable, "-m", "rnnlm", "train", str(corpus), "--threads", "1", "--resume", "--out", str(out)]
    log = WORK / group / f"{arm}-s{seed}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as f:
        subprocess.run(cmd, check=True, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT)
    record = record_of(out, group, arm, seed, size)
    atomic_write_text(done, json.dumps(record, indent=1) + "\n")
    return record


def record_of(out: Path, group: str, arm: str, seed: int, size: str) -> dict:
    """A finished run's figures: its final summary (metrics.jsonl's last ``done``) and its fresh starts."""
    events = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    final = next(e for e in reversed(events) if e.get("event") == "done")
    if final["stop_reason"] != "budget":
        raise SystemExit(f"{out} did not finish its budget ({final['stop_reason']}); `run` resumes it")
    fresh = subprocess.run([sys.executable, str(ROOT / "scripts" / "fresh_starts.py"), str(out), "--json",
                            "--threads", "1"], check=True, capture_output=True, text=True, cwd=ROOT)
    return {"group": group, "arm": arm, "seed": seed, "size": size, "steps": final["steps"],
            "val_bpc": round(final["val_bpc"], 4), "best_val_bpc": round(final["best_val_bpc"], 4),
            "dropout": final["dropout"], **regularisation_of(final),
            **{k: v for k, v in json.loads(fresh.stdout).items() if k != "run"}}


def save(record: dict) -> None:
    """Add one run's record under a lock: paired runs side by side, or several ``run`` calls, may finish at once."""
    with updating_json(RESULTS, WORK / ".lock", load_results) as results:
        results["runs"][f"{record['group']}/{record['arm']}-s{record['seed']}"] = record
    print(json.dumps(record), flush=True)


def cmd_add(args) -> None:
    """Record a run trained elsewhere (e.g. by an earlier version of rnnlm with every technique off) as an arm."""
    save(record_of(Path(args.run), args.name, args.arm, args.seed, args.size))


def cmd_run(args) -> None:
    jobs = [(arm, seed) for seed in (int(s) for s in args.seeds.split(",")) for arm in args.arms.split(",")]
    for arm, _ in jobs:
        if arm not in ARMS:
            raise SystemExit(f"unknown arm {arm!r}; choose from {', '.join(ARMS)}")
    with ThreadPoolExecutor(args.jobs) as pool:
        futures = [pool.submit(train_one, args.name, Path(args.corpus), args.size, args.steps, arm, seed, args.split)
                   for arm, seed in jobs]
        for future in futures:
            save(future.result())


def defaults_arm() -> str | None:
    """The arm whose flags are today's defaults (``rnnlm train`` with none of them), if one is."""
    today = default_regularisation()
    for name, arm_rates in ARMS.items():
        if all((arm_rates[f] == "auto") if v is None else (arm_rates[f] != "auto" and float(arm_rates[f]) == v)
               for f, v in today.items()):
            return name
    return None


def target_rows(runs: list[dict], chosen: str | None) -> list[str]:
    """The issue's targets, each read from the runs that measure it (the defaults' arm against ``base``)."""

    def of(group: str, arm: str, seed: int = 0) -> dict | None:
        return next((r for r in runs if r["group"] == group and r["arm"] == arm and r["seed"] == seed), None)

    def verdict(ok: bool) -> str:
        return "met" if ok else "missed"

    rows = []
    if chosen and (r := of("ts30-512x1-6723", chosen)) and (b := of("ts30-512x1-6723", "base")):
        rows.append(f"| 512x1, 30 minutes' steps: best val ≤ 1.870 | {b['best_val_bpc']:.4f} | "
                    f"{r['best_val_bpc']:.4f} | {verdict(r['best_val_bpc'] <= 1.870)} |")
    if chosen and (r := of("nano-15m-512x1-3362", chosen)) and (b := of("nano-15m-512x1-3362", "base")):
        nats = [x["streamed_bpc"] * math.log(2) for x in (b, r)]
        rows.append(f"| nanoGPT's split, 15 minutes' steps: ≤ 1.380 nats/char streamed | {nats[0]:.4f} | "
                    f"{nats[1]:.4f} | {verdict(nats[1] <= 1.380)} |")
    for group, label in (("default-3m-384x1-995", "3"), ("default-10m-512x1-2241", "10")):
        pairs = [(b, r) for seed in (0, 1) if chosen and (b := of(group, "base", seed)) and (r := of(group, chosen, seed))]
        if len(pairs) == 2:
            spread = max(abs(pairs[0][0]["best_val_bpc"] - pairs[1][0]["best_val_bpc"]),
                         abs(pairs[0][1]["best_val_bpc"] - pairs[1][1]["best_val_bpc"]))
            delta = sum(r["best_val_bpc"] - b["best_val_bpc"] for b, r in pairs) / 2
            mean = [sum(x[i]["best_val_bpc"] for x in pairs) / 2 for i in (0, 1)]
            rows.append(f"| defaults at {label} minutes' steps: no worse than before within the two-seed spread "
                        f"({spread:.4f}) | {mean[0]:.4f} | {mean[1]:.4f} | {verdict(delta <= spread)} ({delta:+.4f}) |")
        elif len(pairs) == 1:
            (b, r), = pairs
            delta = r["best_val_bpc"] - b["best_val_bpc"]
            rows.append(f"| defaults at {label} minutes' steps: no worse than before (one seed, no spread yet) | "
                        f"{b['best_val_bpc']:.4f} | {r['best_val_bpc']:.4f} | "
                        f"{'met' if delta <= 0 else 'open'} ({delta:+.4f}) |")
    if chosen and (r := of("fresh-1024x1-230", chosen)) and (b := of("fresh-1024x1-230", "base")):
        gap = r["window64_bpc"] - r["streamed_bpc"]
        rows.append(f"| 1024x1, 230 steps: 0 of 128 fresh starts collapse; `--window 64` within ~0.35 of streamed | "
                    f"{b['collapsed']}, {b['window64_bpc'] - b['streamed_bpc']:+.3f} | {r['collapsed']}, {gap:+.3f} | "
                    f"{verdict(r['collapsed'] == 0 and abs(gap) <= 0.35)} |")
    if not rows:
        return []
    return ["| target | before (`base`) | now (defaults) | verdict |", "|---|---|---|---|", *rows]


def cmd_table(args) -> None:
    results = load_results()
    runs = list(results["runs"].values())
    chosen = defaults_arm()
    rows = ["| group | size × steps | arm | seed | rates (dropout / weight / embed / reset) | final val bpc | "
            "best val bpc | Δ best vs base | collapsed of 128 | streamed | `--window 64` |", "|" + "---|" * 11]
    for r in sorted(runs, key=lambda r: (r["group"], r["seed"], list(ARMS).index(r["arm"]))):
        base = next((b for b in runs if b["group"] == r["group"] and b["seed"] == r["seed"] and b["arm"] == "base"),
                    None)
        delta = "" if base is None or r["arm"] == "base" else f"{r['best_val_bpc'] - base['best_val_bpc']:+.4f}"
        rates = f"{r['dropout']:g} / {r['weight_drop']:g} / {r['embed_drop']:g} / {r['state_reset']:g}"
        name = f"{r['arm']} (defaults)" if r["arm"] == chosen else r["arm"]
        rows.append(f"| {r['group']} | {r['size']} × {r['steps']:,} | {name} | {r['seed']} | {rates} | "
                    f"{r['val_bpc']:.4f} | {r['best_val_bpc']:.4f} | {delta} | {r['collapsed']} | "
                    f"{r['streamed_bpc']:.4f} | {r['window64_bpc']:.4f} |")
    targets = target_rows(runs, chosen)
    body = (f"## Longer budgets: paired runs\n\n{results['machine']}, one thread per run, two side by side.\n\n"
            "Command: `python scripts/paired.py run ...` then `table`. Step budgets (the steps a size makes in "
            "M minutes on this machine), so load cannot move a verdict; an arm differs from `base` (every technique "
            "off) only by its flags (same seed, data order and steps). Collapsed: fresh 200-character starts of "
            "validation text above 6 bpc from a zero state (`scripts/fresh_starts.py`).\n\n" + "\n".join(rows) + "\n"
            + ("\n### Targets\n\n" + "\n".join(targets) + "\n" if targets else ""))
    print(body)
    write_section("longer-budgets", body)


def cmd_all(args) -> None:
    for name, size, steps, split, arms in GROUPS:
        for seed, names in arms.items():
            cmd_run(argparse.Namespace(name=name, corpus=str(CORPUS), size=size, steps=steps, arms=names,
                                       seeds=str(seed), split=split, jobs=args.jobs))
    cmd_table(args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="train the arms of one group (skips finished runs, resumes cut-off ones)")
    run.add_argument("--name", required=True, help="the group: one size, step count and corpus")
    run.add_argument("--corpus", default=str(CORPUS))
    run.add_argument("--size", default="512x1")
    run.add_argument("--steps", type=int, required=True)
    run.add_argument("--arms", default=",".join(ARMS))
    run.add_argument("--seeds", default="0")
    run.add_argument("--split", default=None, help="e.g. 0.9,0.1 (nanoGPT's split)")
    run.add_argument("--jobs", type=int, default=2)
    add = sub.add_parser("add", help="record a finished run directory as an arm of a group")
    add.add_argument("run")
    add.add_argument("--name", required=True)
    add.add_argument("--arm", required=True, choices=list(ARMS))
    add.add_argument("--seed", type=int, default=0)
    add.add_argument("--size", required=True)
    sub.add_parser("table", help="write BENCHMARKS.md's longer-budgets section")
    every = sub.add_parser("all", help="train every group of the issue (GROUPS), then write the table")
    every.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    {"run": cmd_run, "add": cmd_add, "table": cmd_table, "all": cmd_all}[args.command](args)


if __name__ == "__main__":
    main()
