"""``rnnlm serve``: one or more checkpoints behind an OpenAI-compatible HTTP API (:mod:`rnnlm.serving.app`).

starlette and uvicorn come with the ``serve`` extra and are imported only when the command runs, so ``rnnlm
--help`` stays free of them (and of torch).
"""

from __future__ import annotations

import ipaddress

import click

from rnnlm.cli.app import Duration, cli
from rnnlm.cli.options import device_option, threads_option
from rnnlm.core.errors import InputError, RnnlmError
from rnnlm.serving.settings import (
    API_KEY_ENV,
    DEFAULT_HOST,
    DEFAULT_PORT,
    ServeSettings,
)

LIMITS = ServeSettings()  # the defaults of the limit flags
EXTRA = "pip install 'rnnlm-toolkit[serve]'"


@cli.command()
@click.argument("checkpoints", nargs=-1, metavar="[[NAME=]CHECKPOINT]...")
@click.option("--latest", is_flag=True, help="With run directories: use latest.safetensors, not best.")
@click.option("--host", default=DEFAULT_HOST,
              help="Address to listen on. 127.0.0.1 answers this machine only; any other (0.0.0.0: every "
                   "interface) lets the network in, so set --api-key with it.")
@click.option("--port", type=click.IntRange(0, 65535), default=DEFAULT_PORT, help="Port to listen on (0: any free port).")
@click.option("--api-key", envvar=API_KEY_ENV, default=None, show_default=False,
              help=f"Require 'Authorization: Bearer KEY' on every request (401 otherwise). ${API_KEY_ENV} keeps the "
                   "key out of the process list. Recommended with any --host but 127.0.0.1.")
@click.option("--max-tokens", type=click.IntRange(min=1), default=LIMITS.max_tokens,
              help="The most tokens (characters for char models) one request may ask for; more is refused (400), "
                   f"never cut. A request that names none gets {LIMITS.default_max_tokens} (generate's --length).")
@click.option("--max-prompt", type=click.IntRange(min=1), default=LIMITS.max_prompt_tokens,
              help="The most tokens a prompt (or chat's joined messages) may have (400 past it).")
@click.option("--max-body", type=click.IntRange(min=1), default=LIMITS.max_body_bytes,
              help="The most bytes a request body may have (413 past it).")
@click.option("--max-n", type=click.IntRange(min=1), default=LIMITS.max_n, help="The most choices (n) one request may ask for.")
@click.option("--concurrency", type=click.IntRange(min=1), default=LIMITS.concurrency,
              help="Generations that take turns on the model at once (each its own state and random generator).")
@click.option("--queue", type=click.IntRange(min=0), default=LIMITS.queue,
              help="Requests that may wait for a turn beyond --concurrency; the next is answered 429 at once.")
@click.option("--timeout", type=Duration(), default=LIMITS.timeout_s,
              help="The longest one request may take, waiting included (seconds, or 90s, 5m): 408 while its body "
                   "arrives, 503 while waiting, 504 while generating; a stream ends with an error event.")
@threads_option(1, note=" Requests step one token at a time, one at a time, where a second thread gains little; "
                         "the other core serves HTTP.")
@device_option()
@click.option("--quiet", is_flag=True, help="No line per request on stderr.")
def serve(checkpoints, latest, host, port, api_key, max_tokens, max_prompt, max_body, max_n, concurrency, queue,
          timeout, threads, device, quiet) -> None:
    """Serve checkpoints over an OpenAI-compatible HTTP API.

    GET /v1/models, POST /v1/completions and POST /v1/chat/completions,
    streamed with "stream": true. Each CHECKPOINT (a .safetensors file or a
    run directory) is a model named after its run, or NAME=CHECKPOINT;
    without one, the newest run under ./checkpoints. A request with a seed
    gets the text `rnnlm generate` gives with that seed. Ctrl-C stops.

    \b
    rnnlm serve                                    # http://127.0.0.1:8000/v1
    rnnlm serve checkpoints/shakespeare-lstm-20261124-101500 --port 8080
    rnnlm serve bard=checkpoints/run-a tiny=run-b/best.safetensors
    RNNLM_API_KEY=secret rnnlm serve --host 0.0.0.0
    """
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise RnnlmError(f"rnnlm serve needs {exc.name or 'its packages'}, from the serve extra: {EXTRA}") from None
    from rnnlm.cli.options import load_for_cli
    from rnnlm.core.device import set_threads
    from rnnlm.serving.app import bind, create_app, server
    from rnnlm.serving.catalog import model_name, split_named

    settings = ServeSettings(max_tokens=max_tokens, max_prompt_tokens=max_prompt, max_body_bytes=max_body,
                             max_n=max_n, concurrency=concurrency, queue=queue, timeout_s=timeout, api_key=api_key)
    set_threads(threads)
    models, paths = {}, {}
    for name, path in [split_named(spec) for spec in checkpoints] or [(None, None)]:
        lm = load_for_cli(path, latest, device)
        name = name or model_name(lm.path)
        if name in models:
            raise InputError(f"two checkpoints are both named {name!r} ({paths[name]} and {lm.path}); name one "
                             f"NAME=CHECKPOINT")
        models[name], paths[name] = lm, lm.path
    sock = bind(host, port)
    address = sock.getsockname()
    shown = f"[{address[0]}]" if ":" in address[0] else address[0]
    for name, lm in models.items():
        click.echo(f"model {name}: {lm.path} ({lm.config.cell} {lm.config.num_layers}×{lm.config.hidden_size}, "
                   f"{lm.device})", err=True)
    if not _loopback(host) and api_key is None:
        click.echo(f"warning: listening on {host} without an API key: anyone who can reach this machine can use "
                   f"it; set --api-key (or ${API_KEY_ENV})", err=True)
    click.echo(f"serving on http://{shown}:{address[1]}/v1 (OpenAI-compatible){'; API key required' if api_key else ''}"
               "; Ctrl-C stops", err=True)
    try:
        server(create_app(models, settings), settings, access_log=not quiet).run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn shut down cleanly first; Ctrl-C is how a server stops: no error line
        click.echo("stopped", err=True)
        raise click.exceptions.Exit(130) from None


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
