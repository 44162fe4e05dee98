"""A live ``rnnlm serve`` app for the tests: uvicorn on 127.0.0.1 and a free port, in a thread of the test process
(so a test can read the server's counters), stopped when the block ends."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass

import openai

from rnnlm.serving.app import ServerState, bind, create_app, server
from rnnlm.serving.settings import ServeSettings


@dataclass
class Live:
    url: str
    state: ServerState

    def client(self, **kwargs) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.url, api_key=kwargs.pop("api_key", "unused"), max_retries=0, timeout=60,
                             **kwargs)

    def wait(self, condition, what: str, limit: float = 20.0) -> None:
        deadline = time.monotonic() + limit
        while not condition():
            assert time.monotonic() < deadline, f"timed out waiting for {what}: {dict(self.state.stats)}"
            time.sleep(0.02)


@contextmanager
def live(models: dict, **limits):
    """A real server (uvicorn, the app ``rnnlm serve`` runs) on 127.0.0.1 and a free port, stopped afterwards."""
    settings = ServeSettings(**limits)
    app = create_app(models, settings)
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    srv = server(app, settings, log_level="warning", access_log=False)
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield Live(f"http://127.0.0.1:{port}/v1", app.state)
    finally:
        srv.should_exit = True
        thread.join(timeout=30)
        sock.close()
