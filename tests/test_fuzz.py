"""Fuzzed corpora through ``rnnlm train``: either it trains, or it says why in one line and exits 2."""

from __future__ import annotations

import tempfile
from pathlib import Path

from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnnlm.cli import cli

TINY = ["--hidden", "8", "--embed", "4", "--bptt", "4", "--batch-size", "2", "--precision", "fp32", "--threads", "1",
        "--max-steps", "2"]
CORPORA = st.one_of(
    st.binary(max_size=2000),  # mostly invalid UTF-8, sometimes NUL bytes
    st.text(max_size=600).map(lambda s: s.encode("utf-8")),  # any Unicode, often too short for a batch
    st.text(alphabet="ab \n한🙂\t", min_size=30, max_size=600).map(lambda s: s.encode("utf-8")),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=CORPORA)
def test_any_bytes_train_or_fail_cleanly(data):
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "fuzz.txt"
        corpus.write_bytes(data)
        result = CliRunner().invoke(cli, ["train", str(corpus), "--out", str(Path(tmp) / "run"), *TINY])
        assert result.exit_code in (0, 2), (result.exit_code, result.output, result.exception)
        assert "Traceback" not in result.output
        if result.exit_code == 2:
            errors = [line for line in result.output.splitlines() if line.startswith(("error", "Error"))]
            assert len(errors) == 1, result.output
        else:
            assert (Path(tmp) / "run" / "latest.safetensors").exists()
