"""The limits of ``rnnlm serve`` and their defaults, torch-free so ``rnnlm serve --help`` shows them cheaply.

Everything a request can ask for is bounded (docs/developer/rules.md, "Serving"): the body's bytes, the prompt's
tokens, ``max_tokens``, ``n``, the generations under way and waiting, and the time one request may take.
"""

from __future__ import annotations

from dataclasses import dataclass

from rnnlm.core.config import SamplingConfig, is_count
from rnnlm.core.errors import InputError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
API_KEY_ENV = "RNNLM_API_KEY"


@dataclass(frozen=True)
class ServeSettings:
    """What one server allows.  ``max_tokens``: the most one request may ask for (more is a 400, never cut
    silently); ``default_max_tokens``: what a request that names none gets (rnnlm's ``--length`` default, capped);
    ``concurrency`` generations take turns on the model, ``queue`` more wait for a turn, and beyond those a request
    is answered 429 at once; ``timeout_s`` counts from a request's arrival, waiting included."""

    max_tokens: int = 4096
    default_max_tokens: int = SamplingConfig.length
    max_prompt_tokens: int = 8192
    max_body_bytes: int = 256 * 1024
    max_n: int = 4
    max_stop_chars: int = 256
    concurrency: int = 4
    queue: int = 16
    timeout_s: float = 60.0
    api_key: str | None = None

    def __post_init__(self) -> None:
        for name in ("max_tokens", "default_max_tokens", "max_prompt_tokens", "max_body_bytes", "max_n",
                     "max_stop_chars", "concurrency"):
            value = getattr(self, name)
            if not is_count(value) or value < 1:
                raise InputError(f"{name.replace('_', '-')} must be a positive integer, got {value!r}")
        if not is_count(self.queue) or self.queue < 0:
            raise InputError(f"queue must be an integer ≥ 0, got {self.queue!r}")
        if not self.timeout_s > 0:
            raise InputError(f"timeout must be positive, got {self.timeout_s!r}")
        if self.api_key == "":
            raise InputError("the API key must not be empty (leave --api-key out to serve without one)")
        if self.default_max_tokens > self.max_tokens:
            object.__setattr__(self, "default_max_tokens", self.max_tokens)


__all__ = ["ServeSettings", "DEFAULT_HOST", "DEFAULT_PORT", "API_KEY_ENV"]
