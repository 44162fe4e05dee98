"""The ``llm`` plugin (rnnlm/serving/llm_plugin.py) with the real ``llm``: its CLI in a subprocess (``LLM_USER_PATH``
in a temporary folder, so nothing of the user's is read or written) and its Python API, and ``llm`` pointed at a
live ``rnnlm serve`` through ``extra-openai-models.yaml``.

A model's text must equal ``LanguageModel.generate`` with the same settings (the sampler rnnlm generate runs).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import llm
import pytest
from live_server import live

from rnnlm.generation.language_model import load

PROMPT = "First Citizen:"  # characters of the tiny corpus (conftest.TINY_TEXT)
LLM = str(Path(sys.executable).with_name("llm"))


@pytest.fixture(scope="module")
def lm(tiny_run):
    return load(tiny_run, device="cpu")


@pytest.fixture
def llm_env(tmp_path, tiny_run, monkeypatch):
    """llm's own folder in tmp_path; the tiny run found through RNNLM_CHECKPOINTS, a copy of it under ./checkpoints."""
    home = tmp_path / "llm-home"
    home.mkdir()
    local = tmp_path / "checkpoints" / "local-run"
    local.mkdir(parents=True)
    shutil.copy(tiny_run / "best.safetensors", local)
    monkeypatch.setenv("LLM_USER_PATH", str(home))
    monkeypatch.setenv("RNNLM_CHECKPOINTS", str(tiny_run.parent))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    return home


def run_llm(*args: str) -> subprocess.CompletedProcess:
    out = subprocess.run([LLM, *args], capture_output=True, text=True, timeout=300, env=os.environ.copy())
    assert out.returncode == 0, out.stderr
    return out


def test_llm_models_lists_the_checkpoints(llm_env, tiny_run):
    listed = run_llm("models").stdout.splitlines()
    assert "rnnlm: local-run" in listed and f"rnnlm: {tiny_run.name}" in listed


def test_llm_dash_m_writes_what_rnnlm_generate_writes(llm_env, lm, tiny_run):
    out = run_llm("-m", tiny_run.name, PROMPT, "-o", "seed", "1", "-o", "temperature", "0.7", "-o", "top_k", "40",
                  "-o", "length", "120")
    assert out.stdout == lm.generate(PROMPT, length=120, temperature=0.7, top_k=40, seed=1, echo=False) + "\n"
    assert out.stderr == ""


def test_the_python_api_streams_the_same_text_and_carries_a_conversation(llm_env, lm, tiny_run):
    model = llm.get_model(tiny_run.name)
    assert str(model) == f"rnnlm: {tiny_run.name}"
    settings = dict(seed=3, temperature=0.6, top_p=0.9, length=150)
    response = model.prompt(PROMPT, **settings)
    chunks = list(response)
    assert "".join(chunks) == response.text() == lm.generate(PROMPT, echo=False, **settings)
    assert model.prompt(PROMPT, stream=False, stop=":", **settings).text() == lm.generate(
        PROMPT, echo=False, stop=":", **settings)  # rnnlm's stop: the text ends with it, as generate --stop
    conversation = model.conversation()
    first = conversation.prompt("All:", seed=4, length=40).text()
    second = conversation.prompt("Speak, speak.", seed=5, length=40).text()
    read = "All:\n" + first + ("" if first.endswith("\n") else "\n") + "Speak, speak."  # turns joined as chat joins them
    assert second == lm.generate(read, seed=5, length=40, echo=False)
    with pytest.raises(ValueError):  # pydantic checks the options before anything runs
        model.prompt(PROMPT, top_p=2)
    with pytest.raises(llm.ModelError, match="not in the vocabulary"):
        model.prompt("ROMEO:").text()


def test_llm_talks_to_a_live_rnnlm_serve_through_extra_openai_models(llm_env, lm):
    with live({"tiny": lm}, api_key="s3cret") as srv:
        (llm_env / "extra-openai-models.yaml").write_text(
            f"- model_id: rnnlm-chat\n  model_name: tiny\n  api_base: {srv.url}\n  api_key_name: rnnlm\n"
            f"- model_id: rnnlm-completion\n  model_name: tiny\n  api_base: {srv.url}\n  api_key_name: rnnlm\n"
            "  completion: true\n")
        chat = run_llm("-m", "rnnlm-chat", "--key", "s3cret", PROMPT, "-o", "seed", "1", "-o", "temperature", "0.7",
                       "-o", "max_tokens", "60")
        # chat completions: the message is one turn, so the model continues "First Citizen:\n", as rnnlm chat does
        assert chat.stdout == lm.generate(PROMPT + "\n", length=60, temperature=0.7, seed=1, echo=False) + "\n"
        plain = run_llm("-m", "rnnlm-completion", "--key", "s3cret", PROMPT, "-o", "seed", "2", "-o", "max_tokens",
                        "60", "--no-stream")
        assert plain.stdout == lm.generate(PROMPT, length=60, seed=2, echo=False) + "\n"
        assert srv.state.stats["finished"] == 2 and srv.state.stats["unauthorized"] == 0
