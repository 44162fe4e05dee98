#!/usr/bin/env python3
"""Mutation testing of the functions where a silent bug costs a user most (issue 22, item 8). Not run by CI.

    .venv/bin/python scripts/mutation.py fileio tokenizer     # some targets, 10 minutes each at most
    .venv/bin/python scripts/mutation.py all --cap 20          # every target, 20 minutes each at most
    .venv/bin/python scripts/mutation.py --list                # the targets: module, functions, tests (exit 1
                                                               # when one names a module, function or test gone)
    .venv/bin/python scripts/mutation.py fileio --functions check_output,is_checkpoint

Prints, per function: mutants, killed, survived, timeouts, "no tests" (no selected test reaches the function) and
"not checked" (the cap cut the run short), then every survivor: ``file:line  function  (mutmut name)`` and the
line before and after.  The same goes to ``.cache/mutation/TARGET/report.json``.  The tests written for survivors
are in tests/test_mutants.py, which runs with every target (and in the ordinary suite).

The tool is mutmut 3 (pinned below; installed into .venv when missing), not cosmic-ray:

* mutmut 3 mutates functions through trampolines, so one run selects mutants by function name (``mutmut run
  'rnnlm.core.fileio.x_check_output__mutmut_*'``); cosmic-ray selects whole modules and operators only.
* It records which tests reach which function in one stats run and then runs, per mutant, only those tests, in a
  process forked from a warm pytest (``process_isolation = "forkserver"`` keeps torch's threads out of the fork);
  cosmic-ray starts a fresh pytest, and so imports torch again (~2 s), for every mutant.
* It works on its own copy of the tree (``mutants/``), which here lies under ``.cache/mutation/TARGET/`` (git
  ignores ``.cache/``): the tree being measured is a snapshot, whatever else changes the checkout meanwhile.

Each target (``TARGETS`` below) is one module, the functions of it that are measured, and the tests run against
it; tests that use the ``browser`` fixture are deselected, by fixture rather than by name (this file is also the
small pytest plugin, ``-p mutation``, that does it, and that runs the tests needing no trained run first).
Settings common to every target are ``[tool.mutmut]`` in pyproject.toml; this script adds ``only_mutate`` and the
test selection per target.  The cap (``--cap`` minutes, default 10) bounds each target's whole mutmut run
(mutant generation, the stats run, the mutants), after which the rest are reported "not checked"; ``--jobs``
(default 1: the machines are shared) is how many mutants run at once.  Each run starts from a fresh copy of the
tree unless ``--keep`` is given: then the copy and its results stay, and only the mutants left unchecked run.
After a run, ``cd .cache/mutation/TARGET && ../../../.venv/bin/mutmut show NAME`` shows a mutant's diff.
"""

from __future__ import annotations

import os

# The pytest plugin half (loaded by pytest as ``-p mutation`` inside mutmut's runs only):
# * deselects the tests that need a browser, named by fixture, so no test file needs a marker and no -k expression
#   needs the tests' names;
# * runs first the tests that need no shared fixture of the project (a session's trained run, a module's pages):
#   mutmut stops a mutant's tests at the first failure, so a cheap test that kills it saves the training.
_DESELECT_ENV = "RNNLM_MUTATION_DESELECT_FIXTURES"


def _needs_shared_fixture(item) -> bool:
    defs = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {})
    return any(getattr(d, "scope", "function") != "function" and getattr(d, "baseid", "")
               for chain in defs.values() for d in chain)


def pytest_collection_modifyitems(config, items):  # pragma: no cover - runs inside pytest
    fixtures = {name for name in os.environ.get(_DESELECT_ENV, "").split(",") if name}
    kept, dropped = [], []
    for item in items:
        (dropped if fixtures & set(getattr(item, "fixturenames", ())) else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
    items[:] = sorted(kept, key=_needs_shared_fixture)  # stable: file order within each group


import argparse
import ast
import json
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv"
MUTMUT = "mutmut==3.8.1"  # its internals (meta files, names) are read below: change the pin and check them
WORK = ROOT / ".cache" / "mutation"
CLASS_SEP = "ǁ"  # mutmut's separator in a method's mangled name: xǁClassǁmethod


@dataclass
class Target:
    module: str                    # the file mutated, relative to the repository root
    functions: list[str]           # "name" or "Class.method"
    tests: list[str]               # pytest arguments: test files, and -k/-m if needed
    deselect_fixtures: list[str] = field(default_factory=lambda: ["browser"])


# The functions measured (issue 22, item 8) and their tests.  A name that is no longer in the module stops the run
# with the list of the module's functions, so a rename is noticed here.
TARGETS: dict[str, Target] = {
    "checkpoint": Target(
        "rnnlm/core/checkpoint.py",
        ["tensor_checksum", "save_checkpoint", "_describe_foreign", "load_checkpoint", "load_weights",
         "resolve_checkpoint"],
        ["tests/test_checkpoint.py", "tests/test_old_checkpoints.py"]),
    "fileio": Target(
        "rnnlm/core/fileio.py",
        ["atomic_write_to", "atomic_write", "atomic_write_text", "write_output", "check_output", "is_checkpoint",
         "_head", "_has_page_mark", "_has_npz_mark", "_has_history_mark", "_umask"],
        ["tests/test_fileio.py", "tests/test_checkpoint.py"]),
    "pages": Target(
        "rnnlm/core/pages.py",
        ["fill_template", "script_json"],
        ["tests/test_export.py", "tests/test_inspect_page.py"]),
    "export": Target(
        "rnnlm/generation/export.py",
        ["build_page", "_page"],
        ["tests/test_export.py"]),
    "inspect_page": Target(
        "rnnlm/inspection/page.py",
        ["render", "page_data"],
        ["tests/test_inspect_page.py"]),
    "copycheck": Target(
        "rnnlm/generation/copycheck.py",
        ["Place.__str__", "CopyIndex.check", "CopyIndex.place", "CopyIndex._count_lines",
         "CopyIndex._matching_statistics", "CopyIndex._compare"],
        ["tests/test_copycheck.py"]),
    "beam": Target(
        "rnnlm/generation/beam.py",
        ["beam_search", "_finish_stopped", "Hypothesis.logprob_per_char"],
        ["tests/test_beam.py"]),
    "tokenizer": Target(
        "rnnlm/data/tokenizers/char.py",
        ["smallest_dtype", "codepoints", "CharTokenizer.__init__", "CharTokenizer.from_counts",
         "CharTokenizer.from_text", "CharTokenizer.unknown_chars", "CharTokenizer.encode",
         "CharTokenizer.encode_points", "CharTokenizer.decode"],
        ["tests/test_tokenizer.py"]),
}
# tests/test_mutants.py holds the tests written for survivors; it runs with every target.
EXTRA_TESTS = ["tests/test_mutants.py"]

# Used when pyproject.toml has no [tool.mutmut] (its values win otherwise).
DEFAULT_SETTINGS = {
    "source_paths": ["rnnlm"],
    "pytest_add_cli_args": ["-p", "no:cacheprovider"],
    "process_isolation": "forkserver",
    "use_git_change_detection": False,
}

# mutmut's exit-code meanings (mutmut/stats.py), folded into the columns printed.
STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests", 34: "skipped", 35: "suspicious",
          36: "timeout", 37: "killed", -24: "timeout", 24: "timeout", 152: "timeout", 255: "timeout",
          -11: "segfault", -9: "segfault", 2: "not checked", None: "not checked"}  # 2: interrupted


# --- setup ----------------------------------------------------------------------------------------------------------

def ensure_venv_python() -> None:
    """Rerun under .venv's python (where rnnlm and mutmut live) when started with another one."""
    python = VENV / "bin" / "python"
    if python.exists() and Path(sys.prefix).resolve() != VENV.resolve():
        os.execv(str(python), [str(python), __file__, *sys.argv[1:]])


def ensure_mutmut() -> Path:
    mutmut = Path(sys.executable).parent / "mutmut"
    from importlib.metadata import PackageNotFoundError, version

    try:
        installed = version("mutmut")
    except PackageNotFoundError:
        installed = None
    if installed != MUTMUT.split("==")[1] or not mutmut.exists():
        print(f"installing {MUTMUT} into {sys.prefix}", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", MUTMUT], check=True)
    return mutmut


def mutmut_settings() -> dict:
    import tomllib

    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return {**DEFAULT_SETTINGS, **data.get("tool", {}).get("mutmut", {})}


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


def without_mutmut_table(text: str) -> str:
    """pyproject.toml's text less its [tool.mutmut] table (the copy gets the target's one instead)."""
    out, skipping = [], False
    for line in text.splitlines(keepends=True):
        header = re.match(r"\s*\[\[?([^\]]+)\]", line)
        if header:
            skipping = header.group(1).strip() == "tool.mutmut"
        if not skipping:
            out.append(line)
    return "".join(out)


def module_functions(path: Path) -> dict[str, tuple[int, int]]:
    """``name`` / ``Class.method`` → (first line including decorators, last line) of every def in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    spans = {}

    def span(node) -> tuple[int, int]:
        first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
        return first, node.end_lineno

    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            spans[node.name] = span(node)
        elif isinstance(node, ast.ClassDef):
            for child in node.body:
                if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    spans[f"{node.name}.{child.name}"] = span(child)
    return spans


def mangled(module: str, function: str) -> str:
    """mutmut's name for a function's mutants, less the ``__mutmut_N`` suffix."""
    dotted = module.removesuffix(".py").replace("/", ".")
    if "." in function:
        cls, method = function.split(".", 1)
        return f"{dotted}.x{CLASS_SEP}{cls}{CLASS_SEP}{method}"
    return f"{dotted}.x_{function}"


def undecorate(path: Path, functions: list[str]) -> list[str]:
    """Rewrite the decorated ``functions`` of ``path`` (the copy) as ``name = decorator(name)`` after a plain def.

    mutmut 3 leaves every decorated function unmutated (``@torch.inference_mode()``, ``@property``: 0 mutants);
    applying the decorators after the definition is the same object at run time, and the def is then mutated.
    The decorator lines become blank and the rebinding goes at the end of the file, so every line keeps its number
    (survivors are reported at the original file's lines).  Returns the functions rewritten.
    """
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    tree = ast.parse(text)
    wanted = set(functions)
    edits = []  # (first decorator line, def line, last line, indent, name, decorator sources)
    for node in tree.body:
        scope = [(node, "")] if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) else \
            [(child, f"{node.name}.") for child in node.body
             if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))] if isinstance(node, ast.ClassDef) else []
        for fn, prefix in scope:
            if prefix + fn.name not in wanted or not fn.decorator_list:
                continue
            decorators = [ast.get_source_segment(text, d) for d in fn.decorator_list]
            first = min(d.lineno for d in fn.decorator_list)
            indent = re.match(r"\s*", lines[fn.lineno - 1]).group(0)
            edits.append((first, fn.lineno, fn.end_lineno, indent, fn.name, prefix + fn.name, decorators))
    rebind = []
    for first, def_line, _, _, short, full, decorators in edits:
        owner = full.rpartition(".")[0]
        wrapped = f"{owner}.__dict__[{short!r}]" if owner else short  # the plain function, not a bound method
        for decorator in reversed(decorators):  # the innermost (last written) applies first
            wrapped = f"({decorator})({wrapped})"
        rebind.append(f"{owner + '.' if owner else ''}{short} = {wrapped}\n")
        for n in range(first - 1, def_line - 1):  # assumes one line per decorator, as here
            lines[n] = "\n"
    if edits:
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
        path.write_text("".join(lines + ["\n# scripts/mutation.py: the decorators, applied after the defs\n",
                                         *rebind]), encoding="utf-8")
    return [full for *_, full, _ in edits]


def prepare(name: str, target: Target, functions: list[str], keep: bool) -> Path:
    work = WORK / name
    source = (work if keep and (work / target.module).exists() else ROOT) / target.module
    missing = [f for f in functions if f not in module_functions(source)]
    if missing:  # before anything is removed
        raise SystemExit(f"{name}: {', '.join(missing)} not in {target.module}; its functions: "
                         f"{', '.join(module_functions(source))}")
    if work.exists() and not keep:
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", ".hypothesis", "*.pyc")
    for folder in ("rnnlm", "tests"):
        if not (work / folder).exists():
            shutil.copytree(ROOT / folder, work / folder, ignore=ignore)
    rewritten = undecorate(work / target.module, functions)
    if rewritten:
        print(f"{name}: decorators applied after the def (mutmut skips decorated functions): {', '.join(rewritten)}",
              flush=True)
    tests = [t for t in target.tests + EXTRA_TESTS if not t.startswith("tests/") or (work / t).exists()]
    settings = {**mutmut_settings(), "only_mutate": [target.module], "pytest_add_cli_args_test_selection": tests}
    settings["source_paths"] = settings.get("source_paths") or ["rnnlm"]
    settings["pytest_add_cli_args"] = [*settings.get("pytest_add_cli_args", []), "-p", "mutation"]
    table = "\n[tool.mutmut]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in settings.items())
    pyproject = without_mutmut_table((ROOT / "pyproject.toml").read_text(encoding="utf-8")).rstrip() + "\n" + table
    (work / "pyproject.toml").write_text(pyproject, encoding="utf-8")
    return work


# --- run ------------------------------------------------------------------------------------------------------------

def run_mutmut(mutmut: Path, work: Path, target: Target, functions: list[str], cap_s: float, jobs: int) -> tuple[
        float, bool, int]:
    """``mutmut run`` on the functions' mutants, stopped (SIGINT, then SIGKILL) at the cap: (seconds, capped, rc)."""
    patterns = [mangled(target.module, f) + "__mutmut_*" for f in functions]
    done = results(work, target.module)
    if done:  # --keep after an earlier run: name only the mutants it left unchecked (a pattern reruns them all)
        patterns = [k for k, code in done.items()
                    if STATUS.get(code) == "not checked" and function_of(k, target, functions)]
        if not patterns:
            return 0.0, False, 0
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "scripts"),
                                                                     os.environ.get("PYTHONPATH")])),
           _DESELECT_ENV: ",".join(target.deselect_fixtures), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    log = (work / "mutmut.log").open("wb")
    start = time.monotonic()
    proc = subprocess.Popen(["nice", "-n", "10", str(mutmut), "run", "--max-children", str(jobs), *patterns],
                            cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    capped = False
    try:
        rc = proc.wait(timeout=cap_s)
    except subprocess.TimeoutExpired:
        capped = True
        os.killpg(proc.pid, signal.SIGINT)  # mutmut saves what it has and stops its workers
        try:
            rc = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            rc = proc.wait()
    finally:
        log.close()
        try:  # the forkserver and any worker left behind are in the same process group
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return time.monotonic() - start, capped, rc


# --- report ---------------------------------------------------------------------------------------------------------

def results(work: Path, module: str) -> dict[str, int | None]:
    meta = work / "mutants" / (module + ".meta")
    if not meta.exists():
        return {}
    return json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"]


def function_of(key: str, target: Target, functions: list[str]) -> str | None:
    base = key.partition("__mutmut_")[0]
    for f in functions:
        if base == mangled(target.module, f):
            return f
    return None


def mutant_diffs(work: Path, module: str, keys: list[str]) -> dict[str, list[str]]:
    """``mutmut show KEY``'s diff of each mutant, read in this process (one ``mutmut show`` each takes a second)."""
    from mutmut.configuration import reset_config
    from mutmut.mutation.diff_apply import get_diff_for_mutant

    previous = os.getcwd()
    os.chdir(work)  # mutmut reads its config and mutants/ from the current directory
    reset_config()
    try:
        return {key: get_diff_for_mutant(key, path=module).splitlines() for key in keys}
    finally:
        os.chdir(previous)
        reset_config()


def locate(diff: list[str], source: list[str], span: tuple[int, int]) -> tuple[int | None, str, str]:
    """The source line of a mutation (the first removed line, found within its function) and its -/+ text."""
    removed = [line[1:] for line in diff if line.startswith("-") and not line.startswith("---")]
    added = [line[1:] for line in diff if line.startswith("+") and not line.startswith("+++")]
    line_no = None
    if removed:
        hunk = next((re.match(r"@@ -(\d+)", line) for line in diff if line.startswith("@@")), None)
        offset = 0
        if hunk:  # position of the first removed line within the function's text
            offset = int(hunk.group(1)) - 1
            for line in diff[diff.index(hunk.string) + 1:]:
                if line.startswith("-"):
                    break
                offset += 1
        first, last = span
        candidates = [n for n in range(first, last + 1) if source[n - 1].strip() == removed[0].strip()]
        if candidates:
            line_no = min(candidates, key=lambda n: abs(n - (first + offset)))
    return line_no, " / ".join(s.strip() for s in removed), " / ".join(s.strip() for s in added)


def report(name: str, work: Path, target: Target, functions: list[str], seconds: float,
           capped: bool, rc: int) -> dict:
    codes = results(work, target.module)
    source = (work / target.module).read_text(encoding="utf-8").splitlines()
    spans = module_functions(work / target.module)
    columns = ["mutants", "killed", "survived", "timeout", "no tests", "not checked", "other"]
    rows = {f: dict.fromkeys(columns, 0) for f in functions}
    lost = []
    for key, code in sorted(codes.items(), key=lambda kv: (kv[0].partition("__mutmut_")[0],
                                                            int(kv[0].rpartition("_")[2]))):
        function = function_of(key, target, functions)
        if function is None:
            continue
        status = STATUS.get(code, "suspicious")
        row = rows[function]
        row["mutants"] += 1
        row[status if status in columns else "other"] += 1
        if status in ("survived", "no tests"):
            lost.append((key, function, status))
    diffs = mutant_diffs(work, target.module, [key for key, _, _ in lost])
    survivors = []
    for key, function, status in lost:
        line, old, new = locate(diffs[key], source, spans[function])
        survivors.append({"function": function, "status": status, "where": f"{target.module}:{line or '?'}",
                          "old": old, "new": new, "mutant": key})
    total = {c: sum(r[c] for r in rows.values()) for c in columns}
    print(f"\n## {name}: {target.module}  (tests: {' '.join(target.tests)}; {seconds / 60:.1f} min"
          f"{', CAPPED: the rest not checked' if capped else ''}; mutmut exit {rc})\n")
    print("| function | mutants | killed | survived | timeout | no tests | not checked | other | killed % |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for f, r in [*rows.items(), ("**all**", total)]:
        checked = r["mutants"] - r["not checked"]
        rate = f"{100 * (r['killed'] + r['timeout']) / checked:.0f}" if checked else "-"
        print(f"| {f} | " + " | ".join(str(r[c]) for c in columns) + f" | {rate} |")
    if survivors:
        print(f"\nSurvivors ({len(survivors)}):")
        for s in survivors:
            tag = "" if s["status"] == "survived" else f" [{s['status']}]"
            print(f"  {s['where']}  {s['function']}{tag}  ({s['mutant']})\n      - {s['old']}\n      + {s['new']}")
    if not codes or (rc not in (0, None) and not capped):
        print(f"\nmutmut did not finish cleanly; the end of {work / 'mutmut.log'}:")
        tail = (work / "mutmut.log").read_bytes().decode("utf-8", "replace").replace("\r", "\n").splitlines()
        print("\n".join(line for line in tail if line.strip())[-3000:])
    summary = {"target": name, "module": target.module, "tests": target.tests, "seconds": round(seconds, 1),
               "capped": capped, "rc": rc, "rows": rows, "total": total, "survivors": survivors}
    (work / "report.json").write_text(json.dumps(summary, indent=1, ensure_ascii=False), encoding="utf-8")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("targets", nargs="*", help=f"targets, or 'all': {', '.join(TARGETS)}")
    parser.add_argument("--list", action="store_true", help="print the targets and exit")
    parser.add_argument("--cap", type=float, default=10.0, help="minutes each target's run may take (default 10)")
    parser.add_argument("--jobs", type=int, default=1, help="mutants run at once (default 1)")
    parser.add_argument("--functions", help="comma-separated functions to measure instead of the target's list "
                                            "(one target only)")
    parser.add_argument("--keep", action="store_true", help="reuse .cache/mutation/TARGET and its results")
    args = parser.parse_args(argv)
    if args.list or not args.targets:
        stale = False  # a module moved, a function renamed or a test file gone: said here, before any run
        for name, t in TARGETS.items():
            print(f"{name}: {t.module}\n    functions: {', '.join(t.functions)}\n    tests: {' '.join(t.tests)}"
                  f" (+ {' '.join(EXTRA_TESTS)}; deselected: tests using {', '.join(t.deselect_fixtures)})")
            if not (ROOT / t.module).exists():
                stale = True
                print(f"    MISSING: {t.module}")
                continue
            found = module_functions(ROOT / t.module)
            gone = [f for f in t.functions if f not in found]
            gone += [f for f in t.tests + EXTRA_TESTS if f.startswith("tests/") and not (ROOT / f).exists()]
            if gone:
                stale = True
                print(f"    MISSING: {', '.join(gone)}")
        return (1 if stale else 0) if args.list else 2
    names = list(TARGETS) if args.targets == ["all"] else args.targets
    unknown = [n for n in names if n not in TARGETS]
    if unknown:
        parser.error(f"unknown target(s) {', '.join(unknown)}; choose from {', '.join(TARGETS)} or all")
    if args.functions and len(names) != 1:
        parser.error("--functions needs exactly one target")
    mutmut = ensure_mutmut()
    summaries = []
    for name in names:
        target = TARGETS[name]
        functions = args.functions.split(",") if args.functions else target.functions
        work = prepare(name, target, functions, args.keep)
        print(f"{name}: mutating {', '.join(functions)} in {target.module}; cap {args.cap:g} min; log "
              f"{work / 'mutmut.log'}", flush=True)
        seconds, capped, rc = run_mutmut(mutmut, work, target, functions, args.cap * 60, args.jobs)
        summaries.append(report(name, work, target, functions, seconds, capped, rc))
    return 0


if __name__ == "__main__":
    ensure_venv_python()
    sys.exit(main())
