"""OpenAI's request fields checked and mapped onto rnnlm's sampler, and its response shapes: plain dicts, no server.

Every field a real client sends is either honoured or refused with OpenAI's error shape and a 400, never
silently dropped: ``max_tokens`` (``max_completion_tokens``) → ``length``, ``temperature``, ``top_p``, ``seed``,
``n`` → ``num_samples``, ``stop`` (a string or up to four, cut as OpenAI cuts: left out of the text), ``stream``
and ``stream_options``, plus rnnlm's own ``top_k`` and ``repetition_penalty``.  A field whose neutral value changes
nothing (``logit_bias: {}``, ``presence_penalty: 0``, ``logprobs: false``...) is accepted at that value only;
``user``, ``metadata``, ``store`` and ``service_tier`` do not touch the text and are accepted as they come.
An unknown field is refused, as OpenAI refuses one.  docs/serve.md lists them.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from rnnlm.core.config import SamplingConfig, is_count, is_finite_number
from rnnlm.core.errors import InputError
from rnnlm.serving.engine import join_turns
from rnnlm.serving.settings import ServeSettings

_S = SamplingConfig()
MAX_STOPS = 4  # OpenAI's own limit on stop strings


class ApiError(Exception):
    """An answer in OpenAI's error shape: ``{"error": {"message", "type", "param", "code"}}`` with a status."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.type, self.param, self.code)


def error_body(message: str, type: str = "invalid_request_error", param: str | None = None,
               code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


@dataclass(frozen=True)
class GenerationRequest:
    """One request in rnnlm's terms: the text the model continues, and how to draw."""

    chat: bool
    model: str
    prompt: str          # what the model reads (chat: the messages joined as ``rnnlm chat`` joins turns)
    echo: bool           # completions: the prompt starts each choice's text
    sampling: SamplingConfig
    stops: tuple[str, ...]
    stream: bool
    include_usage: bool

    @property
    def n(self) -> int:
        return self.sampling.num_samples


COMMON = {"model", "max_tokens", "temperature", "top_p", "n", "stream", "stream_options", "stop", "seed", "user",
          "presence_penalty", "frequency_penalty", "logit_bias", "logprobs", "top_k", "repetition_penalty"}
COMPLETION_FIELDS = COMMON | {"prompt", "echo", "best_of", "suffix"}
CHAT_FIELDS = COMMON | {"messages", "max_completion_tokens", "top_logprobs", "response_format", "tools", "tool_choice",
                        "functions", "function_call", "parallel_tool_calls", "store", "metadata", "service_tier",
                        "modalities", "audio", "prediction", "reasoning_effort", "web_search_options", "verbosity"}
CHAT_ROLES = ("system", "developer", "user", "assistant")

# Fields accepted only at values that change nothing, and why another value is refused.
_NEUTRAL: dict[str, tuple[tuple[Any, ...], str]] = {
    "presence_penalty": ((0, 0.0), "rnnlm's sampler has repetition_penalty (a CTRL penalty) instead"),
    "frequency_penalty": ((0, 0.0), "rnnlm's sampler has repetition_penalty (a CTRL penalty) instead"),
    "logit_bias": (({},), "rnnlm's sampler cannot bias tokens"),
    "logprobs": ((False, 0), "rnnlm serve does not return log-probabilities"),
    "top_logprobs": ((0,), "rnnlm serve does not return log-probabilities"),
    "suffix": (("",), "a character model continues text; it cannot fill in before a suffix"),
    "tools": (([],), "a character model does not call tools"),
    "functions": (([],), "a character model does not call functions"),
    "tool_choice": (("none", "auto"), "a character model does not call tools"),
    "function_call": (("none", "auto"), "a character model does not call functions"),
    "response_format": (({"type": "text"},), "a character model cannot be held to a format"),
    "modalities": ((["text"],), "rnnlm writes text only"),
    "audio": ((), "rnnlm writes text only"),
    "prediction": ((), "predicted outputs are not supported"),
    "reasoning_effort": ((), "a character model does not reason"),
    "web_search_options": ((), "rnnlm does not search the web"),
    "verbosity": ((), "a character model has no verbosity setting"),
}
_FREE = {"user": str, "metadata": dict, "store": bool, "service_tier": str, "parallel_tool_calls": bool}


def _refuse(param: str, why: str, code: str = "unsupported_value") -> ApiError:
    return ApiError(400, f"{param}: {why}", param=param, code=code)


def _int(body: dict, name: str, low: int, high: int | None = None, *, limit: str = "") -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if not is_count(value) or value < low:
        raise _refuse(name, f"must be an integer ≥ {low}, got {value!r}", "invalid_value")
    if high is not None and value > high:
        raise _refuse(name, f"{value} is above this server's limit of {high}{limit}", "invalid_value")
    return value


def _float(body: dict, name: str, check, rule: str) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if not is_finite_number(value) or not check(value):
        raise _refuse(name, f"must be {rule}, got {value!r}", "invalid_value")
    return float(value)


def _stops(value: Any, settings: ServeSettings) -> tuple[str, ...]:
    if value is None:
        return ()
    stops = [value] if isinstance(value, str) else value
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise _refuse("stop", f"must be a string or a list of strings, got {value!r}", "invalid_type")
    if len(stops) > MAX_STOPS:
        raise _refuse("stop", f"at most {MAX_STOPS} stop strings, got {len(stops)}", "invalid_value")
    for stop in stops:
        if stop == "":
            raise _refuse("stop", "a stop string must not be empty", "invalid_value")
        if len(stop) > settings.max_stop_chars:
            raise _refuse("stop", f"a stop string of {len(stop)} characters is above this server's limit of "
                                  f"{settings.max_stop_chars}", "invalid_value")
    return tuple(dict.fromkeys(stops))


def _check_fields(body: dict, allowed: set[str]) -> None:
    for name in body:
        if name not in allowed:
            raise ApiError(400, f"Unrecognized request argument supplied: {name}", param=name,
                           code="unknown_parameter")
    for name, (neutral, why) in _NEUTRAL.items():
        value = body.get(name)
        if name in body and value is not None and value not in neutral:
            raise _refuse(name, f"{value!r} is not supported: {why}", "unsupported_parameter")
    for name, kind in _FREE.items():
        if body.get(name) is not None and not isinstance(body[name], kind):
            raise _refuse(name, f"must be a {kind.__name__}", "invalid_type")


def _message_text(message: Any, index: int) -> tuple[str, str]:
    where = f"messages[{index}]"
    if not isinstance(message, dict):
        raise _refuse(where, "must be an object with role and content", "invalid_type")
    extra = set(message) - {"role", "content"}
    if extra:
        raise _refuse(f"{where}.{sorted(extra)[0]}", "is not supported: a character model reads text only "
                      "(role and content)", "unsupported_parameter")
    role, content = message.get("role"), message.get("content")
    if role not in CHAT_ROLES:
        raise _refuse(f"{where}.role", f"must be one of {', '.join(CHAT_ROLES)}, got {role!r}")
    if isinstance(content, str):
        return role, content
    if isinstance(content, list):
        texts = []
        for j, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise _refuse(f"{where}.content[{j}]", f"a {kind!r} part is not supported: rnnlm reads text parts only")
            texts.append(part["text"])
        return role, "".join(texts)
    raise _refuse(f"{where}.content", f"must be a string or a list of text parts, got {content!r}", "invalid_type")


def parse_request(body: Any, *, chat: bool, settings: ServeSettings) -> GenerationRequest:
    """A request body (parsed JSON) → :class:`GenerationRequest`, or :class:`ApiError` (400) saying what is wrong."""
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    _check_fields(body, CHAT_FIELDS if chat else COMPLETION_FIELDS)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _refuse("model", "a model name is required (GET /v1/models lists them)", "missing_required_parameter")
    if chat:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _refuse("messages", "must be a non-empty list of {role, content}", "invalid_type")
        prompt = join_turns([_message_text(m, i)[1] for i, m in enumerate(messages)], close_last=True)
        echo = False
        length, other = body.get("max_completion_tokens"), body.get("max_tokens")
        if length is not None and other is not None and length != other:
            raise _refuse("max_tokens", "max_tokens and max_completion_tokens disagree; give one")
        name = "max_completion_tokens" if length is not None else "max_tokens"
    else:
        prompt = body.get("prompt", "")
        if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
            prompt = prompt[0]
        if isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
            raise _refuse("prompt", "one prompt per request (send several requests, or use n for several samples)")
        if not isinstance(prompt, str):
            raise _refuse("prompt", "must be a string (token arrays are not supported)", "invalid_type")
        echo = body.get("echo", False)
        if echo is None:
            echo = False
        if not isinstance(echo, bool):
            raise _refuse("echo", f"must be true or false, got {echo!r}", "invalid_type")
        name = "max_tokens"
    limit = " (rnnlm serve --max-tokens)"
    length = _int(body, name, 1, settings.max_tokens, limit=limit) or settings.default_max_tokens
    n = _int(body, "n", 1, settings.max_n, limit=" (rnnlm serve --max-n)") or 1
    best_of = body.get("best_of")
    if best_of is not None and best_of != n:
        raise _refuse("best_of", f"{best_of!r} is not supported: choosing the best of more samples needs their "
                                 "log-probabilities (use n)", "unsupported_parameter")
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise _refuse("stream", f"must be true or false, got {stream!r}", "invalid_type")
    options = body.get("stream_options")
    include_usage = False
    if options is not None:
        if not stream:
            raise _refuse("stream_options", "is only allowed when stream is true")
        if not isinstance(options, dict) or set(options) - {"include_usage", "include_obfuscation"}:
            raise _refuse("stream_options", f"takes include_usage only, got {options!r}", "unsupported_parameter")
        include_usage = options.get("include_usage") or False
        if not isinstance(include_usage, bool):
            raise _refuse("stream_options", "include_usage must be true or false", "invalid_type")
    temperature = _float(body, "temperature", lambda t: t >= 0, "a number ≥ 0 (0 = greedy)")
    top_p = _float(body, "top_p", lambda p: 0 < p <= 1, "a number in (0, 1]")
    penalty = _float(body, "repetition_penalty", lambda r: r > 0, "a number > 0 (1 = off)")
    top_k = _int(body, "top_k", 0)
    seed = _int(body, "seed", 0, 2**63 - 1, limit=" (2^63 - 1)")
    try:
        sampling = SamplingConfig(
            length=length, num_samples=n, seed=seed,
            temperature=_S.temperature if temperature is None else temperature,
            top_k=_S.top_k if top_k is None else top_k, top_p=_S.top_p if top_p is None else top_p,
            repetition_penalty=_S.repetition_penalty if penalty is None else penalty)
    except InputError as exc:
        raise ApiError(400, str(exc), code="invalid_value") from None
    return GenerationRequest(chat=chat, model=model, prompt=prompt, echo=echo, sampling=sampling,
                             stops=_stops(body.get("stop"), settings), stream=stream, include_usage=include_usage)


def new_id(chat: bool) -> str:
    return ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def response_body(req: GenerationRequest, rid: str, created: int, texts: list[str], finish: list[str],
                  prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    """The whole answer of a request that did not stream."""
    head = req.prompt if req.echo else ""
    if req.chat:
        choices = [{"index": i, "message": {"role": "assistant", "content": text}, "logprobs": None,
                    "finish_reason": finish[i]} for i, text in enumerate(texts)]
    else:
        choices = [{"index": i, "text": head + text, "logprobs": None, "finish_reason": finish[i]}
                   for i, text in enumerate(texts)]
    return {"id": rid, "object": "chat.completion" if req.chat else "text_completion", "created": created,
            "model": req.model, "choices": choices, "usage": usage(prompt_tokens, completion_tokens)}


def chunk_body(req: GenerationRequest, rid: str, created: int, index: int, text: str | None,
               finish: str | None = None, *, role: bool = False) -> dict[str, Any]:
    """One server-sent event's data: a piece of one choice (``finish`` on its last)."""
    if req.chat:
        delta: dict[str, Any] = {}
        if role:
            delta = {"role": "assistant", "content": ""}
        elif text:
            delta = {"content": text}
        choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
    else:
        choice = {"index": index, "text": text or "", "logprobs": None, "finish_reason": finish}
    body = {"id": rid, "object": "chat.completion.chunk" if req.chat else "text_completion", "created": created,
            "model": req.model, "choices": [choice]}
    if req.include_usage:
        body["usage"] = None
    return body


def usage_chunk(req: GenerationRequest, rid: str, created: int, prompt_tokens: int,
                completion_tokens: int) -> dict[str, Any]:
    """The last event when ``stream_options.include_usage``: no choices, the usage."""
    return {"id": rid, "object": "chat.completion.chunk" if req.chat else "text_completion", "created": created,
            "model": req.model, "choices": [], "usage": usage(prompt_tokens, completion_tokens)}


def model_card(name: str, created: int) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": created, "owned_by": "rnnlm"}


def now() -> int:
    return int(time.time())


__all__ = ["ApiError", "GenerationRequest", "parse_request", "response_body", "chunk_body", "usage_chunk",
           "model_card", "error_body", "new_id", "now"]
