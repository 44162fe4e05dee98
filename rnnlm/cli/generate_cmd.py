"""``rnnlm generate``: sample text from a checkpoint, streamed to stdout."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from rnnlm.core.errors import InputError
from rnnlm.cli.app import cli, given_flags, warn_ignored
from rnnlm.cli.options import SAMPLING_DEFAULTS, copy_summary, device_option, load_for_cli, sampling_options


def read_prompt(path: Path) -> str:
    """A prompt file's text; not UTF-8 is bad input (exit 2) with the byte offset, like a bad corpus."""
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"--prompt-file {path} is not valid UTF-8 at byte offset {exc.start}; convert it to UTF-8") from None
    except OSError as exc:
        raise InputError(f"cannot read --prompt-file {path}: {exc.strerror or exc}") from None


@cli.command()
@click.argument("checkpoint", required=False)
@click.option("--latest", is_flag=True, help="With a run directory: use latest.safetensors, not best.")
@click.option("--prompt", default="", help="Text to prime the hidden state with (echoed unless --no-echo).")
@click.option("--prompt-file", type=click.Path(exists=True, dir_okay=False), default=None, help="Read the prompt from a file.")
@sampling_options()
@click.option("--repetition-penalty", type=float, default=SAMPLING_DEFAULTS.repetition_penalty, help="Penalise tokens already generated (>1 discourages repeats).")
@click.option("--stop", default=None, help="Stop once this string has been generated.")
@click.option("--num-samples", type=int, default=SAMPLING_DEFAULTS.num_samples, help="Samples drawn as one batch (printed whole, blank line between).")
@click.option("--seed", type=click.IntRange(min=0), default=None, help="Seed: same seed + same checkpoint ⇒ same text (CPU).")
@click.option("--echo/--no-echo", default=True, help="Start the output with the prompt.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per sample (prompt, text, settings, chars/s).")
@device_option(note=" (int8: CPU)")
@click.option("--quantize", type=click.Choice(["none", "int8"]), default="none", help="int8: int8 weights on CPU (measured 1.6–5.3× the fp32 speed at batch 1 on an AMD EPYC, +0.0004 bpc on a 3-minute model; BENCHMARKS.md).")
@click.option("--beam", type=click.IntRange(min=1), default=None, help="Beam search with N beams instead of sampling: deterministic, the most probable text per character it finds; --num-samples K ≤ N prints the K best.")
@click.option("--check-copy", is_flag=True, help="After each sample, how much of it is verbatim training text: longest span, 20/40-character windows, copied lines.")
@click.option("--corpus", multiple=True, type=click.Path(dir_okay=False), help="The training text for --check-copy when the run's files moved (repeat for several files).")
@click.pass_context
def generate(ctx, checkpoint, latest, prompt, prompt_file, length, temperature, top_k, top_p, repetition_penalty, stop,
             num_samples, seed, echo, as_json, device, quantize, beam, check_copy, corpus) -> None:
    """Generate text from a trained model.

    CHECKPOINT is a .safetensors file or a run directory (its best checkpoint;
    --latest for the latest); without it, the newest run under ./checkpoints.

    \b
    rnnlm generate --prompt "ROMEO:"
    rnnlm generate checkpoints/shakespeare-lstm-20261124-101500 --temperature 0.5 --length 1000
    rnnlm generate --num-samples 4 --top-p 0.9 --seed 1 --json
    rnnlm generate --beam 4 --num-samples 2 --length 200
    rnnlm generate --length 2000 --check-copy
    """
    given = given_flags(ctx)
    if beam is not None and given & SAMPLING_FLAGS:
        raise InputError(f"{flag_names(given & SAMPLING_FLAGS)} cannot be used with --beam: beam search is "
                         "deterministic (drop them, or drop --beam to sample)")
    if not check_copy:
        warn_ignored(given & {"corpus"}, "it names the training text for --check-copy")
    if prompt_file:
        prompt = read_prompt(Path(prompt_file))
    lm = load_for_cli(checkpoint, latest, "cpu" if quantize == "int8" and device == "auto" else device)
    if quantize == "int8":
        lm.quantize_int8()
    settings = dict(length=length, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed,
                    repetition_penalty=repetition_penalty, stop=stop)
    start = time.perf_counter()
    head = len(prompt) if echo else 0  # copy checks skip the echoed prompt
    check = copy_checker(lm, head, corpus) if check_copy else None
    if beam is None and num_samples == 1 and not as_json:
        chunks = []
        for chunk in lm.stream(prompt, echo=echo, **settings):
            sys.stdout.write(chunk)
            sys.stdout.flush()
            chunks.append(chunk)
        sys.stdout.write("\n")
        if check:
            click.echo("\n" + format_copy(check("".join(chunks))))
        return
    scores = [None] * num_samples
    if beam is None:
        texts = lm.generate(prompt, echo=echo, num_samples=num_samples, **settings)
        texts = [texts] if isinstance(texts, str) else texts
    else:
        best = lm.beam_search(prompt, beam, length, num_results=num_samples, stop=stop)
        texts, scores = [prompt[:head] + h.text for h in best], [h.logprob_per_char for h in best]
        settings = dict(length=length, beam=beam, stop=stop)
    rate = sum(len(t) for t in texts) / (time.perf_counter() - start)
    for i, (text, score) in enumerate(zip(texts, scores)):
        copy = check(text) if check else None
        if as_json:
            record = {"prompt": prompt, "text": text, "settings": settings | {"num_samples": num_samples},
                      "chars_per_s": round(rate, 1), "checkpoint": str(lm.path)}
            if score is not None:
                record["logprob_per_char"] = round(score, 5)
            if copy is not None:
                record["copy"] = copy.to_dict()
            click.echo(json.dumps(record, ensure_ascii=False))
        else:
            click.echo(("\n" if i else "") + text)
            if copy is not None:
                click.echo("\n" + format_copy(copy))


# Flags that shape a random draw: meaningless for (deterministic) beam search.
SAMPLING_FLAGS = {"temperature", "top_k", "top_p", "repetition_penalty", "seed"}


def flag_names(names: set[str]) -> str:
    return ", ".join(f"--{name.replace('_', '-')}" for name in sorted(names))


def copy_checker(lm, head: int, corpus: tuple[str, ...]):
    """``text → CopyReport`` for printed samples: skips the first ``head`` characters (the echoed prompt), and
    shows the index build, when there is one, as progress lines on stderr."""
    from rnnlm.cli.progress import PhaseLines

    phases = PhaseLines()
    return lambda text: lm.copy_check(text[head:], corpus=corpus, progress=phases)


def format_copy(report) -> str:
    """The --check-copy block under a sample: the figures, the longest span and every copied line."""
    lines = [f"copy check ({report.chars:,} generated characters): {copy_summary(report)}"]
    if report.longest:
        lines.append(f"  longest span: {report.longest_text!r}")
    lines += [f"  copied line ({place}): {text!r}" for text, place in report.copied_lines]
    return "\n".join(lines)
