"""``rnnlm serve``: an OpenAI-compatible HTTP API (Starlette under uvicorn) for one or more checkpoints.

Routes: ``GET /v1/models``, ``GET /v1/models/{name}``, ``POST /v1/completions``, ``POST /v1/chat/completions``
(``stream: true`` answers with server-sent events).  Errors have OpenAI's shape and status codes.

Limits (:class:`rnnlm.serving.settings.ServeSettings`; docs/developer/rules.md, "Serving"):

- the API key, when one is set, is checked on every request, first (401);
- the body is read up to ``max_body_bytes`` and refused past it (413), before any JSON is parsed;
- fields are checked by :mod:`rnnlm.serving.openai_api` (400), the prompt's tokens against ``max_prompt_tokens``;
- ``concurrency`` generations take turns on the model, ``queue`` more wait; the next is answered 429 at once,
  with ``Retry-After``;
- ``timeout_s`` counts from arrival: a request still waiting then is answered 503, one still generating 504
  (a stream ends with an error event);
- a client that goes away stops its generation within one slice (~20 ms of steps): a stream is cancelled by
  Starlette when the connection drops, a plain request checks for the disconnect between slices; a stream whose
  client keeps the connection but reads nothing is cut ``STREAM_GRACE_S`` after its deadline, and a body that
  trickles in is answered 408 at the time limit.

Model work runs in worker threads, one slice at a time (:data:`rnnlm.serving.engine.STEP_LOCK`, and a
one-token capacity limiter so waiting requests queue in order without holding threads).
"""

from __future__ import annotations

import hmac
import json
import logging
import socket
import time
from collections import Counter
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.to_thread
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from rnnlm.core.errors import InputError
from rnnlm.serving import openai_api as api
from rnnlm.serving.engine import Generation, encode
from rnnlm.serving.openai_api import ApiError
from rnnlm.serving.settings import ServeSettings

log = logging.getLogger("rnnlm.serve")
STREAM_GRACE_S = 5.0  # past its deadline, a stream whose client reads nothing is cut after this long


def error_response(error: ApiError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers)


class Slot:
    """One admitted request's place: a turn on the model (released once, whichever way the request ends)."""

    def __init__(self, state: ServerState) -> None:
        self.state, self.released = state, False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.state.turns.release()
            self.state.admitted -= 1


class ServerState:
    """The models, the limits and what the server has done (``stats``), shared by every request of one app."""

    def __init__(self, models: dict[str, Any], settings: ServeSettings) -> None:
        self.models, self.settings = dict(models), settings
        self.admitted = 0           # requests generating or waiting for a turn
        self.stats: Counter[str] = Counter()  # requests, tokens (sampler steps), finished, cancelled, busy, timeouts
        self.created = {name: _mtime(lm) for name, lm in self.models.items()}
        self.turns: anyio.Semaphore | None = None
        self.model_limiter: anyio.CapacityLimiter | None = None

    def start(self) -> None:
        """anyio's primitives belong to the running event loop: made at startup."""
        self.turns = anyio.Semaphore(self.settings.concurrency)
        self.model_limiter = anyio.CapacityLimiter(1)

    @property
    def generating(self) -> int:
        return self.settings.concurrency - self.turns.value if self.turns is not None else 0

    async def admit(self, deadline: float) -> Slot:
        """A turn for one request, waiting in the queue if need be: 429 when the queue is full, 503 at the deadline."""
        s = self.settings
        if self.admitted >= s.concurrency + s.queue:
            self.stats["busy"] += 1
            raise ApiError(429, f"the server is busy: {s.concurrency} generations running and {s.queue} waiting "
                                "(rnnlm serve --concurrency, --queue); retry shortly", type="rate_limit_error",
                           code="rate_limit_exceeded", headers={"Retry-After": "1"})
        self.admitted += 1
        try:
            with anyio.move_on_after(max(0.0, deadline - time.monotonic())):
                await self.turns.acquire()
                return Slot(self)
        except BaseException:
            self.admitted -= 1
            raise
        self.admitted -= 1
        self.stats["timeouts"] += 1
        raise ApiError(503, f"no generation slot became free within the request's time limit of "
                            f"{s.timeout_s:g} s (rnnlm serve --timeout)", type="server_error", code="server_busy",
                       headers={"Retry-After": "1"})

    async def step(self, gen: Generation) -> list[str]:
        before = gen.steps
        deltas = await anyio.to_thread.run_sync(gen.advance, limiter=self.model_limiter)
        self.stats["tokens"] += gen.steps - before
        return deltas

    async def finish(self, gen: Generation | None, slot: Slot) -> None:
        """Stop the draw (whatever happened) and give the turn back; safe inside a cancelled scope."""
        with anyio.CancelScope(shield=True):
            if gen is not None:
                if not gen.done:
                    self.stats["cancelled"] += 1
                await anyio.to_thread.run_sync(gen.close, limiter=self.model_limiter)
            slot.release()


def _mtime(lm) -> int:
    """A model's ``created``: when its checkpoint was written."""
    try:
        return int(lm.path.stat().st_mtime)
    except (AttributeError, OSError):
        return api.now()


class Guard:
    """ASGI middleware: the API key on every request, then the body read whole up to the limit (413 past it)."""

    def __init__(self, app, state: ServerState) -> None:
        self.app, self.state = app, state

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        settings = self.state.settings
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if settings.api_key is not None:
            given = headers.get("authorization", "")
            scheme, _, token = given.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), settings.api_key.encode()):
                self.state.stats["unauthorized"] += 1
                what = "Incorrect API key provided" if given else "Missing API key"
                await error_response(ApiError(401, f"{what}: send 'Authorization: Bearer KEY' with the key rnnlm "
                                                   "serve was started with", code="invalid_api_key",
                                              headers={"WWW-Authenticate": "Bearer"}))(scope, receive, send)
                return
        limit = settings.max_body_bytes
        too_large = ApiError(413, f"the request body is over this server's limit of {limit:,} bytes "
                                  "(rnnlm serve --max-body)", code="request_too_large")
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            self.state.stats["too_large"] += 1
            await error_response(too_large)(scope, receive, send)
            return
        body = bytearray()
        with anyio.move_on_after(settings.timeout_s) as reading:  # a body that trickles in is bounded in time too
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                body += message.get("body", b"")
                if len(body) > limit:
                    self.state.stats["too_large"] += 1
                    await error_response(too_large)(scope, receive, send)
                    return
                if not message.get("more_body", False):
                    break
        if reading.cancelled_caught:
            self.state.stats["timeouts"] += 1
            await error_response(ApiError(408, f"the request body did not arrive within {settings.timeout_s:g} s "
                                               "(rnnlm serve --timeout)", code="request_timeout"))(scope, receive, send)
            return
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


class EventStream(StreamingResponse):
    """Server-sent events whose generator is closed, and whose turn is given back, however the response ends
    (Starlette cancels the stream when the client disconnects)."""

    def __init__(self, events, state: ServerState, slot: Slot, gen: Generation, deadline: float) -> None:
        super().__init__(events, media_type="text/event-stream",
                         headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self.state, self.slot, self.gen, self.deadline = state, slot, gen, deadline

    async def __call__(self, scope, receive, send) -> None:
        try:
            # The generator ends itself at the deadline with an error event; this bound is for a client that
            # stops reading but keeps the connection open, whose sends would otherwise wait without end.
            with anyio.move_on_after(max(0.0, self.deadline - time.monotonic()) + STREAM_GRACE_S):
                await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                await self.body_iterator.aclose()
                await self.state.finish(self.gen, self.slot)


def sse(data: Any) -> str:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


async def _body(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError(400, f"the request body is not valid JSON: {exc}", code="invalid_json") from None


async def list_models(request: Request) -> Response:
    state: ServerState = request.app.state.rnnlm
    return JSONResponse({"object": "list", "data": [api.model_card(name, state.created[name]) for name in state.models]})


async def get_model(request: Request) -> Response:
    state: ServerState = request.app.state.rnnlm
    name = request.path_params["model"]
    if name not in state.models:
        raise _no_model(name, state)
    return JSONResponse(api.model_card(name, state.created[name]))


def _no_model(name: str, state: ServerState) -> ApiError:
    return ApiError(404, f"The model {name!r} does not exist; this server has {', '.join(map(repr, state.models))}",
                    param="model", code="model_not_found")


async def completions(request: Request) -> Response:
    return await _generate(request, chat=False)


async def chat_completions(request: Request) -> Response:
    return await _generate(request, chat=True)


async def _generate(request: Request, chat: bool) -> Response:
    state: ServerState = request.app.state.rnnlm
    settings = state.settings
    deadline = time.monotonic() + settings.timeout_s
    state.stats["requests"] += 1
    req = api.parse_request(await _body(request), chat=chat, settings=settings)
    lm = state.models.get(req.model)
    if lm is None:
        raise _no_model(req.model, state)
    try:
        ids = encode(lm, req.prompt)
    except InputError as exc:
        raise ApiError(400, str(exc), param="messages" if chat else "prompt", code="invalid_value") from None
    if len(ids) > settings.max_prompt_tokens:
        raise ApiError(400, f"the prompt is {len(ids):,} tokens; this server takes at most "
                            f"{settings.max_prompt_tokens:,} (rnnlm serve --max-prompt)",
                       param="messages" if chat else "prompt", code="context_length_exceeded")
    slot = await state.admit(deadline)
    gen = None
    try:
        gen = Generation(lm, ids, req.sampling, req.stops)
    except InputError as exc:
        await state.finish(None, slot)
        raise ApiError(400, str(exc), code="invalid_value") from None
    except BaseException:
        await state.finish(None, slot)
        raise
    rid, created = api.new_id(chat), api.now()
    if req.stream:
        return EventStream(_events(state, req, gen, rid, created, deadline), state, slot, gen, deadline)
    try:
        while not gen.done:
            if time.monotonic() > deadline:
                state.stats["timeouts"] += 1
                raise _timed_out(settings, gen)
            if await request.is_disconnected():
                return Response(status_code=499)  # nobody is listening; finish() counts it as cancelled
            await state.step(gen)
        state.stats["finished"] += 1
        return JSONResponse(api.response_body(req, rid, created, gen.texts, gen.finish, gen.prompt_tokens,
                                              sum(gen.tokens)))
    finally:
        await state.finish(gen, slot)


def _timed_out(settings: ServeSettings, gen: Generation) -> ApiError:
    return ApiError(504, f"the request took longer than this server's limit of {settings.timeout_s:g} s "
                         f"(rnnlm serve --timeout) after {gen.steps:,} of {gen.cfg.length:,} tokens; ask for fewer "
                         "max_tokens", type="server_error", code="timeout")


async def _events(state: ServerState, req, gen: Generation, rid: str, created: int, deadline: float):
    if req.chat:
        for i in range(req.n):
            yield sse(api.chunk_body(req, rid, created, i, None, role=True))
    elif req.echo and req.prompt:
        for i in range(req.n):
            yield sse(api.chunk_body(req, rid, created, i, req.prompt))
    try:
        while not gen.done:
            if time.monotonic() > deadline:
                state.stats["timeouts"] += 1
                yield sse(_timed_out(state.settings, gen).body())
                return
            for i, delta in enumerate(await state.step(gen)):
                if delta:
                    yield sse(api.chunk_body(req, rid, created, i, delta))
    except Exception as exc:  # the headers are gone: say it in the stream, as OpenAI does
        log.exception("generation failed")
        yield sse(api.error_body(f"generation failed: {type(exc).__name__}: {exc}", "server_error"))
        return
    for i in range(req.n):
        yield sse(api.chunk_body(req, rid, created, i, None, gen.finish[i]))
    if req.include_usage:
        yield sse(api.usage_chunk(req, rid, created, gen.prompt_tokens, sum(gen.tokens)))
    state.stats["finished"] += 1
    yield "data: [DONE]\n\n"


async def _api_error(request: Request, exc: ApiError) -> Response:
    return error_response(exc)


async def _http_error(request: Request, exc: HTTPException) -> Response:
    kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
    message = f"{request.method} {request.url.path}: {exc.detail}"
    if exc.status_code == 404:
        message += " (this server has GET /v1/models, POST /v1/completions and POST /v1/chat/completions)"
    return error_response(ApiError(exc.status_code, message, code=kind, headers=getattr(exc, "headers", None)))


async def _server_error(request: Request, exc: Exception) -> Response:
    log.exception("request failed")
    return error_response(ApiError(500, f"the server failed: {type(exc).__name__}: {exc}", type="server_error"))


def create_app(models: dict[str, Any], settings: ServeSettings | None = None) -> Guard:
    """The ASGI app for ``models`` (name → :class:`rnnlm.generation.language_model.LanguageModel`).

    The Starlette app is ``.app`` of what this returns; its ``state.rnnlm`` is the :class:`ServerState`.
    """
    if not models:
        raise InputError("no model to serve")
    state = ServerState(models, settings or ServeSettings())

    @asynccontextmanager
    async def lifespan(app):
        state.start()
        yield

    routes = [
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/v1/models/{model}", get_model, methods=["GET"]),
        Route("/v1/completions", completions, methods=["POST"]),
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={ApiError: _api_error, HTTPException: _http_error, Exception: _server_error})
    app.state.rnnlm = state
    return Guard(app, state)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (port 0: any free port); ``InputError`` naming the address when it fails."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise InputError(f"--host {host}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise InputError(f"cannot listen on {host}:{port}: {exc.strerror or exc} (choose another --port)") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def log_config(level: str = "info") -> dict[str, Any]:
    """uvicorn's logging with every line on stderr (stdout carries only results: docs/developer/rules.md)."""
    from uvicorn.config import LOGGING_CONFIG

    config = json.loads(json.dumps(LOGGING_CONFIG))
    for handler in config["handlers"].values():
        handler["stream"] = "ext://sys.stderr"
    for logger in config["loggers"].values():
        if "level" in logger:
            logger["level"] = level.upper()
    config["loggers"]["rnnlm.serve"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return config


def server(app, settings: ServeSettings, *, log_level: str = "info", access_log: bool = True):
    """A uvicorn server for ``app``; ``server(...).run(sockets=[bind(host, port)])`` serves until Ctrl-C."""
    import uvicorn

    # uvicorn's own cap on open connections (a plain 503 past it) sits well above the admitted requests, so the
    # 429 above answers first; it stops a flood of idle connections from growing without end.
    connections = 4 * (settings.concurrency + settings.queue) + 16
    config = uvicorn.Config(app, log_config=log_config(log_level), log_level=log_level, access_log=access_log,
                            lifespan="on", limit_concurrency=connections, timeout_keep_alive=5,
                            timeout_graceful_shutdown=int(settings.timeout_s) + 1)
    return uvicorn.Server(config)


__all__ = ["create_app", "bind", "server", "ServerState", "ServeSettings", "log_config"]

