"""``compare`` measures each run's gradient reach: results.json (older files still valid), gradient-reach.png, a column."""

from __future__ import annotations

import json

from test_compare import BASE, BUDGET, validate

from rnnlm.experiments.compare import RESULTS_SCHEMA, run_comparison


def _compare(corpus, out):
    return run_comparison([corpus], out, cells=["rnn", "lstm"], layers=[1], match="hidden", hidden=16,
                          params_target=None, seeds=1, budget=BUDGET, base=BASE, embed=8, dropout=0.0)


def test_compare_stores_plots_and_tabulates_each_runs_gradient_reach(tiny_corpus, tmp_path, capsys):
    from rnnlm.cli.compare_cmd import render_results

    out = tmp_path / "cmp"
    results = _compare(tiny_corpus, out)
    validate(json.loads((out / "results.json").read_text()), RESULTS_SCHEMA)
    for run in results["runs"]:
        reach = run["gradient_reach"]
        assert reach["max_k"] > 100 and len(reach["norms"]) == 1 and len(reach["norms"][0]) == reach["max_k"]
        assert reach["k_below_1pct"] is not None and 1 < reach["k_below_1pct"] <= reach["max_k"]  # 16 units forget
    assert (out / "gradient-reach.png").stat().st_size > 10_000
    render_results(results)
    table = capsys.readouterr().out
    assert "grad < 1% at k" in table
    rnn = next(r["gradient_reach"] for r in results["runs"] if r["cell"] == "rnn")
    assert any(line.lstrip("│ ").startswith("rnn") and f" {rnn['k_below_1pct']} " in line for line in table.splitlines())

    # A run finished by an older rnnlm has no gradient_reach in its marker: a re-run measures it, training nothing.
    marker = out / "rnn-L1-h16-s0" / "done.json"
    old = {k: v for k, v in json.loads(marker.read_text()).items() if k != "gradient_reach"}
    marker.write_text(json.dumps(old) + "\n")
    kept = (out / "rnn-L1-h16-s0" / "best.safetensors").stat().st_mtime_ns
    again = _compare(tiny_corpus, out)
    assert again["runs"][0]["gradient_reach"] == results["runs"][0]["gradient_reach"]  # CPU, same text: same numbers
    assert "gradient_reach" in json.loads(marker.read_text())
    assert (out / "rnn-L1-h16-s0" / "best.safetensors").stat().st_mtime_ns == kept

    # results.json files written before the field existed still validate and render ("—").
    older = {**results, "runs": [{k: v for k, v in r.items() if k != "gradient_reach"} for r in results["runs"]]}
    validate(older, RESULTS_SCHEMA)
    render_results(older)
    assert "—" in capsys.readouterr().out
