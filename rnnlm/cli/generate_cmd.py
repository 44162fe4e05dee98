"""``rnnlm generate``: sample text from a checkpoint, streamed to stdout."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from ..errors import InputError
from . import cli

def read_prompt(path: Path) -> str:
    """A prompt file's text; not UTF-8 is bad input (exit 2) with the byte offset, like a bad corpus."""
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"--prompt-file {path} is not valid UTF-8 at byte offset {exc.start}; convert it to UTF-8") from None
    except OSError as exc:
        raise InputError(f"cannot read --prompt-file {path}: {exc.strerror or exc}") from None


def load_for_cli(checkpoint: str | None, latest: bool, device: str = "cpu"):
    """Load a model, saying which run was picked when none was named."""
    from ..lm import load

    lm = load(checkpoint, latest=latest, device=device)
    if checkpoint is None:
        click.echo(f"using {lm.path}", err=True)
    return lm


@cli.command()
@click.argument("checkpoint", required=False)
@click.option("--latest", is_flag=True, help="With a run directory: use latest.safetensors, not best.")
@click.option("--prompt", default="", help="Text to prime the hidden state with (echoed unless --no-echo).")
@click.option("--prompt-file", type=click.Path(exists=True, dir_okay=False), default=None, help="Read the prompt from a file.")
@click.option("--length", type=int, default=500, help="Tokens to generate (characters for char models).")
@click.option("--temperature", type=float, default=0.8, help="Softmax temperature; 0 = greedy.")
@click.option("--top-k", type=int, default=0, help="Sample only from the k most likely tokens (0 = off).")
@click.option("--top-p", type=float, default=1.0, help="Nucleus sampling: smallest set with this much probability.")
@click.option("--repetition-penalty", type=float, default=1.0, help="Penalise tokens already generated (>1 discourages repeats).")
@click.option("--stop", default=None, help="Stop once this string has been generated.")
@click.option("--num-samples", type=int, default=1, help="Samples drawn as one batch (printed whole, blank line between).")
@click.option("--seed", type=click.IntRange(min=0), default=None, help="Seed: same seed + same checkpoint ⇒ same text (CPU).")
@click.option("--echo/--no-echo", default=True, help="Start the output with the prompt.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per sample (prompt, text, settings, chars/s).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", help="Where to run the model; auto takes CUDA when available (int8: CPU).")
@click.option("--quantize", type=click.Choice(["none", "int8"]), default="none", help="int8: int8 weights on CPU (2–4× faster at batch 1; costs ~0.01 bpc, see BENCHMARKS.md).")
def generate(checkpoint, latest, prompt, prompt_file, length, temperature, top_k, top_p, repetition_penalty, stop,
             num_samples, seed, echo, as_json, device, quantize) -> None:
    """Generate text from a trained model.

    CHECKPOINT is a .safetensors file or a run directory (its best checkpoint;
    --latest for the latest); without it, the newest run under ./checkpoints.

    \b
    rnnlm generate --prompt "ROMEO:"
    rnnlm generate checkpoints/shakespeare-lstm-20261124-101500 --temperature 0.5 --length 1000
    rnnlm generate --num-samples 4 --top-p 0.9 --seed 1 --json
    """
    if prompt_file:
        prompt = read_prompt(Path(prompt_file))
    lm = load_for_cli(checkpoint, latest, "cpu" if quantize == "int8" and device == "auto" else device)
    if quantize == "int8":
        lm.quantize_int8()
    settings = dict(length=length, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed,
                    repetition_penalty=repetition_penalty, stop=stop)
    start = time.perf_counter()
    if num_samples == 1 and not as_json:
        for chunk in lm.stream(prompt, echo=echo, **settings):
            sys.stdout.write(chunk)
            sys.stdout.flush()
        sys.stdout.write("\n")
        return
    texts = lm.generate(prompt, echo=echo, num_samples=num_samples, **settings)
    texts = [texts] if isinstance(texts, str) else texts
    rate = sum(len(t) for t in texts) / (time.perf_counter() - start)
    for i, text in enumerate(texts):
        if as_json:
            click.echo(json.dumps({"prompt": prompt, "text": text, "settings": settings | {"num_samples": num_samples},
                                   "chars_per_s": round(rate, 1), "checkpoint": str(lm.path)}, ensure_ascii=False))
        else:
            click.echo(("\n" if i else "") + text)
