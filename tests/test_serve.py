"""``rnnlm serve``: a live uvicorn on 127.0.0.1 (a free port, in a thread of this process) driven by the official
``openai`` client and by raw ``httpx`` requests, and every limit of docs/developer/rules.md, "Serving".

The server's text with a seed must equal ``LanguageModel.generate`` with that seed (the sampler rnnlm generate
runs), alone or with other requests interleaved.  Traffic goes only to 127.0.0.1, bounded in count and time.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import openai
import pytest
from click.testing import CliRunner
from live_server import Live, live

from rnnlm.cli import cli
from rnnlm.core.errors import InputError
from rnnlm.generation.language_model import load
from rnnlm.serving.app import bind
from rnnlm.serving.catalog import model_name, split_named
from rnnlm.serving.engine import _first_stop, join_turns

PROMPT = "First Citizen:"  # characters of the tiny corpus (conftest.TINY_TEXT)
ENDLESS = 10**6  # tokens no test waits for: the tiny model writes them in minutes, the tests stop far sooner


@pytest.fixture(scope="module")
def lm(tiny_run):
    return load(tiny_run, device="cpu")


@pytest.fixture(scope="module")
def served(lm):
    with live({"tiny": lm}, max_tokens=2000) as server_:
        yield server_


def expected(lm, prompt=PROMPT, **settings) -> str:
    return lm.generate(prompt, echo=False, **settings)


# --- the openai client: completions, chat, streaming, errors -------------------------------------------------


def test_models_are_listed_by_name(served):
    client = served.client()
    assert [m.id for m in client.models.list()] == ["tiny"]
    card = client.models.retrieve("tiny")
    assert card.id == "tiny" and card.owned_by == "rnnlm"


def test_a_seeded_completion_is_rnnlm_generate_with_that_seed(served, lm):
    out = served.client().completions.create(model="tiny", prompt=PROMPT, max_tokens=60, temperature=0.7, seed=1,
                                             top_p=0.95, extra_body={"top_k": 5})
    assert out.choices[0].text == expected(lm, length=60, temperature=0.7, top_k=5, top_p=0.95, seed=1)
    assert out.choices[0].finish_reason == "length" and out.object == "text_completion"
    assert (out.usage.prompt_tokens, out.usage.completion_tokens, out.usage.total_tokens) == (len(PROMPT), 60, 74)


def test_a_completion_without_max_tokens_writes_generates_default_length(served, lm):
    out = served.client().completions.create(model="tiny", prompt=PROMPT, seed=3)
    assert out.choices[0].text == expected(lm, seed=3)  # SamplingConfig.length: 500, as rnnlm generate
    assert out.usage.completion_tokens == 500


def test_echo_n_and_repetition_penalty(served, lm):
    out = served.client().completions.create(model="tiny", prompt=PROMPT, max_tokens=30, n=3, seed=4, echo=True,
                                             extra_body={"repetition_penalty": 1.3})
    texts = lm.generate(PROMPT, length=30, num_samples=3, seed=4, repetition_penalty=1.3)  # one batch, as generate
    assert [c.text for c in out.choices] == texts and [c.index for c in out.choices] == [0, 1, 2]
    assert out.usage.completion_tokens == 90


def test_chat_reads_the_messages_joined_as_chat_joins_turns(served, lm):
    messages = [{"role": "system", "content": "All:"}, {"role": "user", "content": "Speak, speak."},
                {"role": "assistant", "content": "First Citizen:\n"},
                {"role": "user", "content": [{"type": "text", "text": "You are "}, {"type": "text", "text": "all"}]}]
    out = served.client().chat.completions.create(model="tiny", messages=messages, max_tokens=50, temperature=0.5,
                                                  seed=7)
    text = "All:\nSpeak, speak.\nFirst Citizen:\nYou are all\n"
    assert out.choices[0].message.content == expected(lm, text, length=50, temperature=0.5, seed=7)
    assert out.choices[0].message.role == "assistant" and out.object == "chat.completion"
    assert out.usage.prompt_tokens == len(text)


def test_streaming_chat_and_completion_with_usage(served, lm):
    client = served.client()
    want = expected(lm, "All:\n", length=300, seed=5)
    chunks = list(client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "All:"}],
                                                 max_tokens=300, seed=5, stream=True,
                                                 stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == want
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 300
    assert all(c.usage is None for c in chunks[:-1])
    pieces = list(client.completions.create(model="tiny", prompt=PROMPT, max_tokens=300, seed=5, stream=True))
    assert "".join(p.choices[0].text for p in pieces) == expected(lm, length=300, seed=5)
    assert all(p.usage is None for p in pieces)  # no include_usage: no usage chunk


def test_stop_strings_end_the_text_before_the_first_to_complete(served, lm):
    client = served.client()
    full = expected(lm, length=400, seed=11)
    for stops in ("\n", ["zzz", ":"], ["en", "e"]):
        out = client.completions.create(model="tiny", prompt=PROMPT, max_tokens=400, seed=11, stop=stops)
        listed = [stops] if isinstance(stops, str) else stops
        ends = [(full.find(s) + len(s), full.find(s)) for s in listed if s in full]
        assert ends, "the stop strings should occur in 400 characters of the tiny corpus's model"
        assert out.choices[0].text == full[: min(ends)[1]] and out.choices[0].finish_reason == "stop"
    # One stop string: generate's text (which keeps the stop) less the stop, as OpenAI cuts.
    single = expected(lm, length=400, seed=11, stop=":")
    assert client.completions.create(model="tiny", prompt=PROMPT, max_tokens=400, seed=11,
                                     stop=":").choices[0].text + ":" == single


def test_concurrent_seeded_requests_give_the_texts_of_sequential_ones(served, lm):
    seeds = [21, 22, 23, 24]
    want = {seed: expected(lm, length=400, temperature=0.9, seed=seed) for seed in seeds}
    got: dict[int, str] = {}
    errors: list[BaseException] = []

    def ask(seed: int) -> None:
        try:
            client = served.client()
            if seed % 2:  # two streams and two plain requests interleave on the one model
                stream = client.completions.create(model="tiny", prompt=PROMPT, max_tokens=400, temperature=0.9,
                                                   seed=seed, stream=True)
                got[seed] = "".join(p.choices[0].text for p in stream)
            else:
                got[seed] = client.completions.create(model="tiny", prompt=PROMPT, max_tokens=400, temperature=0.9,
                                                      seed=seed).choices[0].text
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=ask, args=(seed,)) for seed in seeds]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors and got == want
    assert lm.generate(PROMPT, length=400, temperature=0.9, seed=21, echo=False) == want[21]  # the model is unchanged


def test_refused_fields_get_openais_error_shape(served):
    client = served.client()
    with pytest.raises(openai.BadRequestError) as caught:
        client.completions.create(model="tiny", prompt=PROMPT, logit_bias={"50256": -100})
    assert caught.value.status_code == 400
    assert caught.value.body["param"] == "logit_bias" and "cannot bias tokens" in caught.value.body["message"]
    raw = httpx.post(f"{served.url}/chat/completions", json={"model": "tiny", "messages": [{"role": "user",
                     "content": "All:"}], "presence_penalty": 0.5}, timeout=30)
    assert raw.status_code == 400 and set(raw.json()["error"]) == {"message", "type", "param", "code"}
    assert raw.json()["error"]["type"] == "invalid_request_error"
    for body, param in [({"n": 5}, "n"), ({"max_tokens": 2001}, "max_tokens"), ({"best_of": 3}, "best_of"),
                        ({"frobnicate": 1}, "frobnicate"), ({"stop": [""]}, "stop"), ({"top_p": 0}, "top_p"),
                        ({"seed": -1}, "seed"), ({"temperature": "hot"}, "temperature"),
                        ({"stream_options": {"include_usage": True}}, "stream_options")]:
        answer = httpx.post(f"{served.url}/completions", json={"model": "tiny", "prompt": PROMPT, **body}, timeout=30)
        assert answer.status_code == 400, body
        assert answer.json()["error"]["param"] == param, answer.json()
    # Neutral values change nothing and are accepted, as real clients send them.
    ok = httpx.post(f"{served.url}/chat/completions", timeout=30, json={
        "model": "tiny", "messages": [{"role": "user", "content": "All:"}], "max_tokens": 5, "logit_bias": {},
        "presence_penalty": 0, "frequency_penalty": 0, "logprobs": False, "user": "me", "tools": [],
        "response_format": {"type": "text"}, "n": 1, "stop": None, "stream": False})
    assert ok.status_code == 200, ok.text


def test_unknown_model_path_and_method_are_openai_errors(served):
    client = served.client()
    with pytest.raises(openai.NotFoundError) as caught:
        client.completions.create(model="gpt-4", prompt=PROMPT)
    assert caught.value.body["code"] == "model_not_found" and "'tiny'" in caught.value.body["message"]
    assert httpx.get(f"{served.url}/engines", timeout=30).json()["error"]["code"] == "not_found"
    assert httpx.get(f"{served.url}/completions", timeout=30).status_code == 405
    bad = httpx.post(f"{served.url}/completions", content=b"{not json", timeout=30)
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_json"


def test_prompt_characters_outside_the_vocabulary_are_named(served):
    with pytest.raises(openai.BadRequestError) as caught:
        served.client().completions.create(model="tiny", prompt="ROMEO:")
    assert caught.value.body["param"] == "prompt" and "'O'" in caught.value.body["message"]


# --- the limits -----------------------------------------------------------------------------------------------


def test_an_oversize_request_is_413(lm):
    with live({"tiny": lm}, max_body_bytes=1024, max_prompt_tokens=100) as srv:
        big = json.dumps({"model": "tiny", "prompt": "All: " * 300}).encode()
        answer = httpx.post(f"{srv.url}/completions", content=big, headers={"Content-Type": "application/json"},
                            timeout=30)
        assert answer.status_code == 413 and answer.json()["error"]["code"] == "request_too_large"
        chunked = httpx.post(f"{srv.url}/completions", content=iter([big[:600], big[600:]]), timeout=30)
        assert chunked.status_code == 413  # no Content-Length: counted as it arrives
        with pytest.raises(openai.BadRequestError) as caught:  # under the byte limit, over the prompt limit
            srv.client().completions.create(model="tiny", prompt="All: " * 30)
        assert caught.value.body["code"] == "context_length_exceeded"
        assert srv.state.stats["too_large"] == 2 and srv.state.stats["tokens"] == 0


def _port(srv: Live) -> int:
    return int(srv.url.rsplit(":", 1)[1].split("/")[0])


class _Held:
    """An endless stream whose first piece was read: the server generates for it until ``close``."""

    def __init__(self, srv: Live, client: httpx.Client) -> None:
        self.response = client.send(client.build_request("POST", f"{srv.url}/completions", json={
            "model": "tiny", "prompt": PROMPT, "max_tokens": ENDLESS, "stream": True}), stream=True)
        assert self.response.status_code == 200
        self.lines = self.response.iter_lines()  # kept: dropping the iterator would close the connection
        assert next(line for line in self.lines if line.startswith("data: "))

    def close(self) -> None:
        self.lines.close()
        self.response.close()


def test_too_many_concurrent_requests_are_429_and_the_queue_waits(lm):
    with live({"tiny": lm}, concurrency=1, queue=1, max_tokens=ENDLESS) as srv, httpx.Client(timeout=60) as http:
        held = _Held(srv, http)
        waiting: dict[str, object] = {}
        queued = threading.Thread(target=lambda: waiting.update(out=srv.client().completions.create(
            model="tiny", prompt=PROMPT, max_tokens=20, seed=1)))
        queued.start()
        srv.wait(lambda: srv.state.admitted == 2, "the second request to queue")
        with pytest.raises(openai.RateLimitError) as caught:
            srv.client().completions.create(model="tiny", prompt=PROMPT, max_tokens=5)
        assert caught.value.status_code == 429 and caught.value.response.headers["Retry-After"] == "1"
        assert caught.value.body["code"] == "rate_limit_exceeded"
        held.close()  # the first client goes: its turn passes to the one waiting
        queued.join(timeout=60)
        assert waiting["out"].choices[0].text == expected(lm, length=20, seed=1)
        srv.wait(lambda: srv.state.admitted == 0, "every turn to be given back")
        assert srv.state.stats["busy"] == 1


def test_a_client_that_hangs_up_mid_stream_stops_its_generation(lm):
    with live({"tiny": lm}, max_tokens=ENDLESS) as srv:
        with httpx.Client(timeout=60) as http:
            held = _Held(srv, http)
            srv.wait(lambda: srv.state.stats["tokens"] > 0, "tokens")
            held.close()
        srv.wait(lambda: srv.state.generating == 0 and srv.state.admitted == 0, "the generation to stop")
        steps = srv.state.stats["tokens"]
        time.sleep(0.5)
        assert srv.state.stats["tokens"] == steps < ENDLESS // 10
        assert srv.state.stats["cancelled"] == 1 and srv.state.stats["finished"] == 0


def test_a_client_that_hangs_up_on_a_plain_request_stops_its_generation(lm):
    with live({"tiny": lm}, max_tokens=ENDLESS) as srv:
        body = json.dumps({"model": "tiny", "prompt": PROMPT, "max_tokens": ENDLESS}).encode()
        with socket.create_connection(("127.0.0.1", _port(srv)), timeout=30) as conn:
            conn.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            srv.wait(lambda: srv.state.stats["tokens"] > 0, "the generation to start")
        srv.wait(lambda: srv.state.generating == 0, "the generation to stop")
        steps = srv.state.stats["tokens"]
        time.sleep(0.5)
        assert srv.state.stats["tokens"] == steps < ENDLESS // 10 and srv.state.stats["cancelled"] == 1


def test_a_wrong_or_missing_key_is_401_on_every_route(lm):
    with live({"tiny": lm}, api_key="s3cret") as srv:
        with pytest.raises(openai.AuthenticationError) as caught:
            srv.client(api_key="wrong").completions.create(model="tiny", prompt=PROMPT, max_tokens=5)
        assert caught.value.body["code"] == "invalid_api_key"
        for method, path in [("GET", "/models"), ("POST", "/completions"), ("GET", "/nowhere")]:
            answer = httpx.request(method, f"{srv.url}{path}", json={}, timeout=30)
            assert answer.status_code == 401 and "Missing API key" in answer.json()["error"]["message"]
        out = srv.client(api_key="s3cret").completions.create(model="tiny", prompt=PROMPT, max_tokens=5, seed=2)
        assert out.choices[0].text == expected(lm, length=5, seed=2)
        assert srv.state.stats["unauthorized"] == 4 and srv.state.stats["requests"] == 1


def test_a_request_past_its_time_limit_is_504_or_an_error_event(lm):
    with live({"tiny": lm}, max_tokens=ENDLESS, timeout_s=0.5) as srv:
        started = time.monotonic()
        with pytest.raises(openai.InternalServerError) as caught:
            srv.client().completions.create(model="tiny", prompt=PROMPT, max_tokens=ENDLESS)
        assert caught.value.status_code == 504 and caught.value.body["code"] == "timeout"
        with pytest.raises(openai.APIError, match="took longer than this server's limit of 0.5 s"):
            list(srv.client().completions.create(model="tiny", prompt=PROMPT, max_tokens=ENDLESS, stream=True))
        assert time.monotonic() - started < 20
        srv.wait(lambda: srv.state.admitted == 0, "the turns to be given back")


def test_a_body_that_never_arrives_is_408_at_the_time_limit(lm):
    with live({"tiny": lm}, timeout_s=0.5) as srv:
        with socket.create_connection(("127.0.0.1", _port(srv)), timeout=30) as conn:
            conn.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 100\r\n\r\n{\"model\": ")  # and then nothing more
            reply = b""
            while b"request_timeout" not in reply and (part := conn.recv(65536)):
                reply += part
        assert reply.startswith(b"HTTP/1.1 408") and b"request_timeout" in reply
        assert srv.state.stats["timeouts"] == 1 and srv.state.stats["requests"] == 0


# --- the pieces, the command line ---------------------------------------------------------------------------


def test_stops_and_turns():
    assert _first_stop("abcd", 0, ["bc", "d"]) == 1
    assert _first_stop("xabc", 3, ["abcd", "c"]) == 3  # "c" completes first; "abcd" has not
    assert _first_stop("aaa", 2, ["aa"]) == 1  # earlier text was searched already: only what ends in the new part
    assert join_turns(["All:", "Speak.\n", "", "x"], close_last=True) == "All:\nSpeak.\nx\n"
    assert join_turns(["All:", "ROMEO:"], close_last=False) == "All:\nROMEO:"


def test_model_names(tiny_run, tmp_path):
    assert model_name(tiny_run) == model_name(tiny_run / "best.safetensors") == tiny_run.name
    loose = tmp_path / "bard.safetensors"
    loose.write_bytes(b"")
    assert model_name(loose) == "bard"
    assert split_named(f"bard={tiny_run}") == ("bard", str(tiny_run)) and split_named(str(tiny_run)) == (None, str(tiny_run))
    with pytest.raises(InputError):
        split_named("no name=x")


def test_a_port_in_use_is_bad_input():
    sock = bind("127.0.0.1", 0)
    try:
        with pytest.raises(InputError, match="choose another --port"):
            bind("127.0.0.1", sock.getsockname()[1])
    finally:
        sock.close()


def test_help_imports_neither_torch_nor_the_server():
    code = ("import sys; from rnnlm.cli import cli\n"
            "for args in (['--help'], ['serve', '--help']):\n"
            "    try: cli(args, standalone_mode=False)\n"
            "    except SystemExit: pass\n"
            "print(sorted(m for m in ('torch', 'starlette', 'uvicorn', 'anyio') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_without_the_serve_extra_one_line_names_it(monkeypatch, tiny_run):
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # import uvicorn now raises ImportError
    result = CliRunner().invoke(cli, ["serve", str(tiny_run)])
    assert result.exit_code == 1
    assert result.output.strip() == ("error: rnnlm serve needs uvicorn, from the serve extra: "
                                     "pip install 'rnnlm-toolkit[serve]'")


def test_the_command_serves_named_checkpoints_until_ctrl_c(tiny_run, tmp_path):
    rnnlm = Path(sys.executable).with_name("rnnlm")
    proc = subprocess.Popen([str(rnnlm), "serve", f"bard={tiny_run}", str(tiny_run / "best.safetensors"), "--port",
                             "0", "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        lines = []
        deadline = time.monotonic() + 120
        while not any("serving on" in line for line in lines):
            assert time.monotonic() < deadline and proc.poll() is None, "".join(lines) + proc.stderr.read()
            lines.append(proc.stderr.readline())
        url = next(line for line in lines if "serving on" in line).split()[2]
        assert url.startswith("http://127.0.0.1:") and url.endswith("/v1")
        assert [m["id"] for m in httpx.get(f"{url}/models", timeout=30).json()["data"]] == ["bard", tiny_run.name]
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 130 and out == "", err  # stdout carries results only; the log went to stderr
        assert err.splitlines()[-1] == "stopped" and "error" not in err
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


def test_the_same_name_twice_is_bad_input(tiny_run):
    result = CliRunner().invoke(cli, ["serve", str(tiny_run), str(tiny_run / "latest.safetensors")])
    assert result.exit_code == 2 and "both named" in result.output
