"""The model-size sweep behind ``--size auto`` (rnnlm/training/autosize.py): measure, train the grid, tabulate.

    python scripts/sweep.py throughput --corpus ../shared/corpora/tinyshakespeare.txt --name tinyshakespeare
    python scripts/sweep.py throughput ... --sizes 512x1,768x1,1024x1 --seconds 30   # before long runs
    python scripts/sweep.py run --name tinyshakespeare --minutes 2 --sizes all --jobs 2
    python scripts/sweep.py run --name tinyshakespeare --minutes 10 --sizes 512x1,768x1,512x2
    python scripts/sweep.py auto --name tinyshakespeare --minutes 2,10
    python scripts/sweep.py choices --name tinyshakespeare --corpus ... --minutes 2,10,30,60   # quiet machine
    python scripts/sweep.py table            # BENCHMARKS.md section (stdout) and sweep.png

Everything lands in ``rnnlm/sizes.json`` (the table the rule reads), a record
at a time, so an interrupted sweep keeps what it measured.

Why runs are step budgets: ``throughput`` times every size on the quiet machine
(two threads, the probe ``--size auto`` uses), and a grid run of M minutes then
trains for the steps that size makes in ``TRAIN_SHARE`` × M minutes there.
Its result is the same whatever else the machine does meanwhile, so grid runs
can share the two cores (``--jobs 2 --threads 1``) and the machine stays usable.
``auto`` runs are real time budgets on the quiet machine: they check the rule
end to end, probe included.
``choices`` asks ``rnnlm train CORPUS --max-time M --dry-run`` what it would
choose (the probe's speed on this quiet machine, the table's curves) and
keeps the answers beside the grid, which ``table`` sets against the best size
measured at that budget.

A grid run that is cut off (a 60-minute point takes hours on one thread) keeps
its directory under ``checkpoints/.sweep``; the next ``run`` continues it from
its latest checkpoint (bitwise, as ``--resume`` does a step budget).  Each
record names the regularisation it ran with and the machine and precision it
ran on.  A run is done when the table holds it under today's regularisation;
a new run of the same size, budget and seed under other rates moves the old
record to ``runs_superseded`` (kept for the before/after), so the curves
``--size auto`` reads hold one measurement per point.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import AbstractContextManager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rnnlm.training.autosize import GRID, TABLE_PATH, TRAIN_SHARE, Size  # noqa: E402
from rnnlm.core.config import ModelConfig, TrainConfig  # noqa: E402
from rnnlm.core.fileio import atomic_write  # noqa: E402
from scripts.benchmarks_md import (  # noqa: E402
    default_regularisation, machine_name, regularisation_of, updating_json)

WORK = ROOT / "checkpoints" / ".sweep"


def load_table() -> dict:
    if TABLE_PATH.exists():
        return json.loads(TABLE_PATH.read_text())
    return {"machine": f"{machine_name()}, 2 cores", "corpora": []}


def elsewhere(table: dict, machine: str | None) -> bool:
    """A record's machine (``machine_record``) is not the table's ("CPU (SIMD), 2 cores"); a record that names none
    predates the field and was measured on the table's machine."""
    return machine is not None and table["machine"].rsplit(", ", 1)[0] != machine


def updating_table() -> AbstractContextManager[dict]:
    """Load, change and save the table under a lock: two sweeps (one per corpus) may finish runs at once."""
    return updating_json(TABLE_PATH, WORK / ".lock", load_table)


def parse_sizes(text: str) -> list[Size]:
    """``--sizes``: "all" (the grid) or comma-separated HIDDENxLAYERS."""
    return list(GRID) if text == "all" else [Size.parse(s) for s in text.split(",")]


def corpus_entry(table: dict, name: str) -> dict:
    for entry in table["corpora"]:
        if entry["name"] == name:
            return entry
    raise SystemExit(f"no corpus {name!r} in {TABLE_PATH}; run `throughput` first")


def prepare(corpus: Path, threads: int):
    """The run's tokenizer, batches and device exactly as ``rnnlm.train`` builds them (defaults)."""
    import torch

    from rnnlm.data.splits import TBPTTBatches, encode_splits
    from rnnlm.core.device import resolve_autocast, resolve_device

    torch.set_num_threads(threads)
    config = TrainConfig()
    tokenizer, splits, info = encode_splits([corpus], config, None, WORK / ".cache", rank=0)
    device = resolve_device("auto")
    model = ModelConfig(vocab_size=tokenizer.vocab_size)
    batches = TBPTTBatches(splits[0], config.batch_size, config.bptt)
    return config, model, batches, device, resolve_autocast(config.precision, device), tokenizer, info


def cmd_throughput(args) -> None:
    from rnnlm.training.autosize import probe, train_chars

    config, model, batches, device, autocast, tokenizer, info = prepare(Path(args.corpus), args.threads)
    sizes = parse_sizes(args.sizes)
    rates = probe(model, config, batches, device, autocast, tokenizer.char_lengths(), sizes,
                  limit_s=1e9, clock=time.perf_counter, min_s=args.seconds)
    with updating_table() as table:
        entry = next((c for c in table["corpora"] if c["name"] == args.name), None)
        if entry is None:
            entry = {"name": args.name, "chars_per_s": {}, "runs": []}
            table["corpora"].append(entry)
        entry.update(corpus=Path(args.corpus).name, train_chars=train_chars(batches.ids, tokenizer.char_lengths()),
                     vocab=tokenizer.vocab_size, threads=args.threads)
        entry["chars_per_s"].update({str(s): round(r, 1) for s, r in rates.items()})
    for size in sizes:
        print(f"{size}: {rates[size]:,.0f} chars/s")


def regularisation(record: dict) -> tuple[float, ...]:
    """A record's rates (benchmarks_md.REGULARISERS), 0 where it predates one."""
    return tuple(regularisation_of(record).values())


def todays_regularisation() -> tuple[float, ...]:
    """The rates a run with today's defaults records (docs/defaults.md).  An ``auto`` default would depend on
    the run's passes, so one point could not name its rates before it ran: refused."""
    today = default_regularisation()
    if None in today.values():
        raise SystemExit("a regulariser's default is auto: name the sweep's rates per run before sweeping")
    return tuple(today.values())


def point(record: dict) -> tuple:
    """What a record measures: its size (or "auto"), budget and seed; a re-run of one point replaces it."""
    return record["size"] if record["mode"] == "grid" else "auto", record["minutes"], record["seed"]


def machine_record() -> dict:
    """Where a record was measured: the CPU and the precision ``--precision auto`` trains in there."""
    from rnnlm.core.device import resolve_autocast, resolve_device

    autocast = resolve_autocast(TrainConfig().precision, resolve_device("auto"))
    return {"machine": machine_name(), "precision": "fp32" if autocast is None else "bf16"}


def stored_steps(out: Path) -> int | None:
    """The step budget a run directory was started with (its config.json), or None."""
    try:
        return json.loads((out / "config.json").read_text())["config"]["train"]["max_steps"]
    except (OSError, ValueError, KeyError):
        return None


def train_one(corpus: str, size: str, steps: int | None, minutes: float, seed: int, threads: int, out: str) -> dict:
    """One grid run in a fresh process (spawned): a fixed step budget, or with ``steps=None`` a real time budget.

    A grid run cut off earlier continues from its latest checkpoint; its wall time is then this part's alone.
    """
    import rnnlm

    budget = {"max_steps": steps, "max_time_s": None} if steps else {"max_time_s": minutes * 60}
    config = TrainConfig(seed=seed, **budget)
    t0 = time.perf_counter()
    resume = steps is not None and (Path(out) / "latest.safetensors").exists() and stored_steps(Path(out)) == steps
    if resume:
        summary = rnnlm.train(corpus, out=out, resume=True, threads=threads, cache_dir=str(WORK / ".cache"))
    else:
        shutil.rmtree(out, ignore_errors=True)  # cut off before its first checkpoint, or for another step count
        summary = rnnlm.train(corpus, config=config, out=out, threads=threads, size=size,
                              cache_dir=str(WORK / ".cache"))
    chosen = json.loads((Path(out) / "config.json").read_text()).get("size", {})
    for path in Path(out).glob("*.safetensors"):
        path.unlink()  # the figures are what the sweep keeps; metrics.jsonl and curves.png stay
    return {"size": chosen.get("size", size), "mode": "auto" if size == "auto" else "grid", "minutes": minutes,
            "seed": seed, "steps": summary["steps"], "chars_seen": summary["chars_seen"],
            "val_bpc": round(summary["val_bpc"], 4), "best_val_bpc": round(summary["best_val_bpc"], 4),
            "dropout": round(summary["dropout"], 3), "epochs": round(summary["epochs"], 2),
            **regularisation_of(summary),
            "wall_s": round(time.perf_counter() - t0, 1), "threads": threads, "lr": config.lr,
            **machine_record(), **({"resumed": True} if resume else {}),
            **({"reason": chosen.get("reason")} if size == "auto" else {})}


def add_record(entry: dict, record: dict) -> None:
    """Append a run; an earlier record of the same point (``point``) moves to ``runs_superseded``."""
    old = [r for r in entry["runs"] if point(r) == point(record)]
    entry["runs"] = [r for r in entry["runs"] if point(r) != point(record)] + [record]
    entry.setdefault("runs_superseded", []).extend(old)


def run_jobs(args, jobs: list[tuple[str, int | None, float, int]]) -> None:
    table = load_table()
    entry = corpus_entry(table, args.name)
    today = todays_regularisation()
    done = {point(r) for r in entry["runs"] if regularisation(r) == today}
    todo = [j for j in jobs if (j[0], j[2], j[3]) not in done]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=context) as pool:
        futures = {}
        for size, steps, minutes, seed in todo:
            out = WORK / args.name / f"{size}-{minutes:g}m-s{seed}"
            futures[pool.submit(train_one, args.corpus, size, steps, minutes, seed, args.threads, str(out))] = size
        for future in as_completed(futures):
            record = future.result()
            with updating_table() as table:
                add_record(corpus_entry(table, args.name), record)
            print(json.dumps(record), flush=True)


def cmd_run(args) -> None:
    entry = corpus_entry(load_table(), args.name)
    sizes = parse_sizes(args.sizes)
    defaults = TrainConfig()
    chars_per_step = defaults.batch_size * defaults.bptt  # characters: the sweep is character-level
    jobs = []
    for minutes in (float(m) for m in args.minutes.split(",")):
        for size in sizes:
            rate = entry["chars_per_s"][str(size)]
            steps = max(1, round(minutes * 60 * TRAIN_SHARE * rate / chars_per_step))
            jobs += [(str(size), steps, minutes, seed) for seed in range(args.seeds)]
    jobs.sort(key=lambda j: -j[1] * entry["chars_per_s"]["256x1"] / entry["chars_per_s"][j[0]])  # longest first
    run_jobs(args, jobs)


def record_auto(name: str, minutes: float, result: dict) -> None:
    """A ``--size auto`` run trained elsewhere (``bench.py --quality``'s defaults run) as this sweep's auto point.

    Only on the table's machine: an auto run is a real time budget, so on another CPU it trains other steps (a
    third of them on an AVX2 machine against the table's AVX-512 BF16 one) and would stand beside grid points it
    cannot be compared with.  Grid runs are step budgets and name their machine and precision instead.
    """
    with updating_table() as table:
        if elsewhere(table, machine_name()):
            print(f"sweep: not recording the {minutes:g}-minute auto run as the table's: measured on {machine_name()}, "
                  f"the table on {table['machine']}", file=sys.stderr)
            return
        add_record(corpus_entry(table, name), {
            "size": result["size"], "mode": "auto", "minutes": minutes, "seed": 0, "steps": result["steps"],
            "chars_seen": result["chars_seen"], "best_val_bpc": round(result["best_val_bpc"], 4),
            "dropout": round(result["dropout"], 3), **regularisation_of(result), "threads": 2,
            "reason": result["reason"], "lr": TrainConfig().lr, **machine_record(),
            "source": "scripts/bench.py --quality"})


def cmd_auto(args) -> None:
    if args.jobs != 1 or args.threads != 2:
        raise SystemExit("auto runs are real time budgets: run them alone (--jobs 1 --threads 2) on a quiet machine")
    run_jobs(args, [("auto", None, float(m), seed) for m in args.minutes.split(",") for seed in range(args.seeds)])


def cmd_choices(args) -> None:
    """What ``rnnlm train CORPUS --max-time M --dry-run`` chooses here at each budget, kept in the corpus's entry.

    A dry run probes this machine's speed, so run it on a quiet machine (pause grid runs: a step budget does not
    mind).  Each answer replaces the one for its budget; ``table`` compares it with the grid.
    """
    import rnnlm

    answers = []
    for minutes in (float(m) for m in args.minutes.split(",")):
        result = rnnlm.train(args.corpus, config=TrainConfig(max_time_s=minutes * 60), threads=args.threads,
                             cache_dir=str(WORK / ".cache"), size="auto", dry_run=True)
        choice = result["size"]
        answers.append({"minutes": minutes, "size": choice["size"], "chars": round(choice["chars"][choice["size"]]),
                        "chars_per_s": round(choice["chars_per_s"][choice["size"]], 1),
                        "curve_bpc": round(choice["curve_bpc"][choice["size"]], 4), "reason": choice["reason"],
                        "machine": machine_name(), "threads": args.threads})
        print(f"{minutes:g} min: {choice['reason']}", flush=True)
    with updating_table() as table:
        entry = corpus_entry(table, args.name)
        kept = [a for a in entry.get("choices", []) if a["minutes"] not in {b["minutes"] for b in answers}]
        entry["choices"] = sorted(kept + answers, key=lambda a: a["minutes"])


def choice_lines(entry: dict) -> list[str]:
    """``choices``' answers against the grid: the chosen size's measured bpc at that budget minus the best size's."""
    if not entry.get("choices"):
        return []
    budgets = best_by_budget(entry)
    lines = ["What `rnnlm train CORPUS --max-time M --dry-run` chooses (`scripts/sweep.py choices`, the probe on "
             "the quiet machine), against the best size measured at that budget:", "",
             "| budget | machine, threads | chosen | chars/s (probe) | training chars | curve bpc | chosen, measured "
             "| best measured | Δ |", "|---:|---|---|---:|---:|---:|---:|---|---:|"]
    for answer in entry["choices"]:
        measured = budgets.get(answer["minutes"], {})
        best = min(measured, key=measured.get, default=None)
        mine = measured.get(answer["size"])
        delta = "" if mine is None or best is None else f"{mine - measured[best]:+.3f}"
        lines.append(f"| {answer['minutes']:g} min | {answer['machine']}, {answer['threads']} | {answer['size']} | "
                     f"{answer['chars_per_s']:,.0f} | {answer['chars'] / 1e6:.1f}M | {answer['curve_bpc']:.3f} | "
                     f"{'not measured' if mine is None else f'{mine:.3f}'} | "
                     f"{'' if best is None else f'{measured[best]:.3f} ({best})'} | {delta} |")
    return lines


def best_by_budget(entry: dict) -> dict[float, dict]:
    """Per budget (minutes): the mean best-validation bpc of every grid size, seeds averaged."""
    out: dict[float, dict[str, list[float]]] = {}
    for run in entry["runs"]:
        if run["mode"] == "grid":
            out.setdefault(run["minutes"], {}).setdefault(run["size"], []).append(run["best_val_bpc"])
    return {m: {s: sum(v) / len(v) for s, v in sizes.items()} for m, sizes in sorted(out.items())}


def cmd_table(args) -> None:
    table = load_table()
    lines = [f"Machine: {table['machine']}. Validation bpc (best of the run, the 256k-character sample) per size "
             "and budget; **bold** = best of the column; `auto` = a real time-budgeted `--size auto` run "
             "(chosen size in brackets).", ""]
    for entry in table["corpora"]:
        budgets = best_by_budget(entry)
        minutes = sorted(budgets)
        lines += [f"**{entry['corpus']}** ({entry['train_chars'] / 1e6:.2f}M training characters, vocabulary "
                  f"{entry['vocab']}):", "",
                  "| size | chars/s | " + " | ".join(f"{m:g} min" for m in minutes) + " |",
                  "|---|---:|" + "---:|" * len(minutes)]
        foreign = {(r["minutes"], r["size"]): r["machine"] for r in entry["runs"]
                   if r["mode"] == "grid" and elsewhere(table, r.get("machine"))}
        for size in GRID:
            cells = []
            for m in minutes:
                value = budgets[m].get(str(size))
                best = min(budgets[m].values())
                mark = " †" if (m, str(size)) in foreign else ""
                cells.append("" if value is None else (f"**{value:.3f}**" if value == best else f"{value:.3f}") + mark)
            lines.append(f"| {size} | {entry['chars_per_s'][str(size)]:,.0f} | " + " | ".join(cells) + " |")
        autos = {}
        for run in entry["runs"]:
            if run["mode"] == "auto":
                autos.setdefault(run["minutes"], []).append(f"{run['best_val_bpc']:.3f} ({run['size']})")
        if autos:
            lines.append("| auto | | " + " | ".join(", ".join(autos.get(m, [])) for m in minutes) + " |")
        lines.append("")
        if foreign:
            lines += ["† measured on another machine: " + "; ".join(
                f"{size} at {m:g} min on {machine}" for (m, size), machine in sorted(foreign.items())) + ".", ""]
        if details := point_details(entry):
            lines += [*details, ""]
        if answers := choice_lines(entry):
            lines += [*answers, ""]
    plot(table, Path(args.plot))
    from benchmarks_md import write_section  # scripts/ is on the path when this runs as scripts/sweep.py

    relative = Path(args.plot).resolve().relative_to(ROOT)
    intro = ("## Model size: the sweep behind `--size auto`\n\nCommand: `python scripts/sweep.py` (see its docstring "
             "for the steps). A grid run of M minutes trains for the steps that size makes in "
             f"{TRAIN_SHARE:g} × M minutes at the throughput `throughput` measured with the probe `--size auto` uses, "
             "so its result does not depend on what else ran meanwhile. Every run uses the defaults but the size "
             f"(learning rate {TrainConfig().lr:g}; an earlier sweep at 4e-3 stays in `sizes.json` as `runs_lr_4e-3`)."
             "\n\n")
    write_section("sizes", intro + "\n".join(lines) + f"\n\n![bpc against budget, one line per size]({relative})\n")
    print("\n".join(lines))


def point_details(entry: dict) -> list[str]:
    """The grid points measured under today's regularisation, each with what it ran with and, where the point was
    measured before under other rates, that figure: the before/after of a change to the defaults."""
    today = todays_regularisation()
    new = sorted((r for r in entry["runs"] if r["mode"] == "grid" and regularisation(r) == today),
                 key=lambda r: (r["minutes"], r["size"], r["seed"]))
    if not new:
        return []
    lines = ["Points measured with today's regularisation (rates: DropConnect / embedding dropout / fresh-state "
             "share):", "", "| size | budget | seed | steps | passes | dropout | rates | machine, precision | "
             "best val bpc | before (rates) |", "|---|---:|---:|---:|---:|---:|---|---|---:|---|"]
    for r in new:
        before = [o for o in entry.get("runs_superseded", []) if point(o) == point(r)]
        then = ", ".join(f"{o['best_val_bpc']:.3f} ({' / '.join(f'{v:g}' for v in regularisation(o))})"
                         for o in before)
        lines.append(f"| {r['size']} | {r['minutes']:g} min | {r['seed']} | {r['steps']:,} | {r['epochs']:g} | "
                     f"{r['dropout']:g} | {' / '.join(f'{v:g}' for v in regularisation(r))} | "
                     f"{r.get('machine', '?')}, {r.get('precision', '?')} | {r['best_val_bpc']:.3f} | {then} |")
    return lines


def plot(table: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(table["corpora"]), figsize=(6 * len(table["corpora"]), 4.5), squeeze=False)
    for ax, entry in zip(axes[0], table["corpora"]):
        budgets = best_by_budget(entry)
        for size in GRID:
            points = [(m, v[str(size)]) for m, v in budgets.items() if str(size) in v]
            if points:
                ax.plot(*zip(*points), marker="o", label=str(size), linestyle="-" if size.layers == 1 else "--")
        autos = [(r["minutes"], r["best_val_bpc"]) for r in entry["runs"] if r["mode"] == "auto"]
        if autos:
            ax.scatter(*zip(*autos), marker="*", s=160, color="black", zorder=5, label="--size auto")
        values = [v for sizes in budgets.values() for v in sizes.values()]
        if values:  # the biggest sizes at 2 minutes sit far above: keep the contest in view
            ax.set_ylim(min(values) - 0.03, min(max(values), min(values) + 0.6) + 0.03)
        ax.set_xscale("log")
        ax.set_xticks(list(budgets), [f"{m:g}" for m in budgets])  # the sorted budgets, not 2×10⁰
        ax.minorticks_off()
        ax.set_xlabel("budget (minutes on this machine)")
        ax.set_ylabel("validation bpc")
        ax.set_title(f"{entry['corpus']} ({entry['train_chars'] / 1e6:.1f}M chars)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
    fig.suptitle(f"bpc against budget, one line per size ({table['machine']})", fontsize=10)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110))
    print(f"wrote {path}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("throughput", help="time every grid size (quiet machine)")
    p.add_argument("--corpus", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seconds", type=float, default=12.0,
                   help="steady-state seconds timed per size (4 s under-rated the big sizes by up to a quarter)")
    p.add_argument("--sizes", default="all", help="comma-separated sizes to re-time (the others keep their figures)")
    for name, helptext in (("run", "grid runs (step budgets)"), ("auto", "real --size auto runs (quiet machine)")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--corpus", required=True)
        p.add_argument("--name", required=True)
        p.add_argument("--minutes", required=True, help="comma-separated budgets")
        p.add_argument("--sizes", default="all")
        p.add_argument("--seeds", type=int, default=1)
        p.add_argument("--jobs", type=int, default=2 if name == "run" else 1)
        p.add_argument("--threads", type=int, default=1 if name == "run" else 2)
    p = sub.add_parser("choices", help="what --max-time M --dry-run chooses here (quiet machine)")
    p.add_argument("--corpus", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--minutes", default="2,10,30,60", help="comma-separated budgets")
    p.add_argument("--threads", type=int, default=2)
    p = sub.add_parser("table", help="markdown table (stdout) and plot")
    p.add_argument("--plot", default=str(ROOT / "docs" / "sweep.png"))
    args = parser.parse_args()
    {"throughput": cmd_throughput, "run": cmd_run, "auto": cmd_auto, "choices": cmd_choices,
     "table": cmd_table}[args.command](args)


if __name__ == "__main__":
    main()
