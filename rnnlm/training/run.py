"""``rnnlm.train(...)``: corpus → tokenizer → ids → model → trainer → run directory.

Everything the CLI's ``train`` does is here, so scripts and notebooks get the
same behaviour; the CLI only parses options and renders events.
"""

from __future__ import annotations

import dataclasses
import json
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from rnnlm.training.autosize import Choice, Size, check_memory, size_for_budget, text_script, train_chars
from rnnlm.training.schedule import RATES, auto_rates, fixed_steps
from rnnlm.core.checkpoint import load_checkpoint, load_weights, resolve_checkpoint
from rnnlm.core.config import RUNS_ROOT, ModelConfig, TrainConfig
from rnnlm.data.corpus import read_text, same_corpus
from rnnlm.data.splits import TBPTTBatches, encode_splits, scope_segments, split_chars, unseen_in_training, val_scope
from rnnlm.core.device import dist_env, resolve_autocast, resolve_device, set_cuda_matmul, set_threads
from rnnlm.core.errors import InputError
from rnnlm.core.fileio import atomic_write_text
from rnnlm.model.network import RNNLM
from rnnlm.training.runlog import run_callbacks
from rnnlm.data.tokenizers.char import describe_chars
from rnnlm.data.tokenizers import tokenizer_from_state
from rnnlm.training.events import Event
from rnnlm.training.trainer import Trainer

BUDGET_FIELDS = ("max_time_s", "max_steps", "epochs")


def default_run_dir(corpus: Path, cell: str, root: Path = RUNS_ROOT) -> Path:
    return root / f"{corpus.stem}-{cell}-{time.strftime('%Y%m%d-%H%M%S')}"


def _newest_run(corpus: Path, root: Path = RUNS_ROOT) -> Path:
    runs = sorted(root.glob(f"{corpus.stem}-*/latest.safetensors"), key=lambda p: p.stat().st_mtime)
    if not runs:
        raise InputError(f"--resume: no run for {corpus.name} under {root}/; pass --out RUN_DIR")
    return runs[-1].parent


def _phase_events(callbacks: Sequence[Callable[[Event], None]]) -> Callable[[str, int, int], None]:
    """Progress of the phases before training (scanning, encoding, a subword model) as trainer-style events."""
    def report(name: str, done: int, total: int) -> None:
        for callback in callbacks:
            callback(Event("phase", 0, None, 0.0, {"name": name, "done": done, "total": total}))
    return report


def _broadcast_tokenizer(tokenizer, kind: str, device: torch.device):
    """Rank 0's sentencepiece model on every rank: trained once, and never two different vocabularies."""
    blob = tokenizer.tensors()["tokenizer.spm"] if tokenizer is not None else None
    head = torch.tensor([0, 0] if blob is None else [len(blob), ord(tokenizer.newline)], dtype=torch.int64, device=device)
    dist.broadcast(head, src=0)
    size, newline = (int(v) for v in head.tolist())
    data = torch.from_numpy(blob).to(device) if blob is not None else torch.empty(size, dtype=torch.uint8, device=device)
    dist.broadcast(data, src=0)
    return tokenizer if tokenizer is not None else tokenizer_from_state(
        {"kind": kind, "newline": chr(newline)}, {"tokenizer.spm": data.cpu()})


@contextmanager
def _distributed(device_name: str) -> Iterator[tuple[int, int, torch.device]]:
    """(rank, world size, device); under torchrun, a process group for the duration of the block.

    The group is destroyed on the way out: a process that exits with gloo's
    threads still running aborts ("terminate called without an active
    exception") and torchrun reports the whole run as failed.
    """
    rank, world, local = dist_env()
    device = resolve_device(device_name)
    created = False
    if world > 1:
        if device.type == "cuda":
            visible = torch.cuda.device_count()
            if local >= visible:
                raise InputError(f"LOCAL_RANK {local} but torch sees {visible} GPU(s); start at most {visible} "
                                 "processes per node (torchrun --nproc_per_node) or set CUDA_VISIBLE_DEVICES")
            device = torch.device("cuda", local)
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            if device.type == "cuda":
                dist.init_process_group("nccl", device_id=device)  # binds the rank's GPU: no guessing in collectives
            else:
                dist.init_process_group("gloo")
            created = True
    try:
        yield rank, world, device
        if created:
            dist.barrier()  # rank 0 may still be writing the last checkpoint: leave together
    finally:
        if created:
            dist.destroy_process_group()


@dataclass(frozen=True)
class _Start:
    """Where a run starts: its configs, and for a resume or a fine-tune the checkpoint it continues from.

    The model config here holds the cell, embedding, dropout and tying; its
    vocabulary comes from the data and its size from ``choice`` (or, with
    ``size == "auto"``, from the budget), set once in :func:`train`.
    """

    model: ModelConfig
    config: TrainConfig
    size: str                           # "auto", or "fixed": ``choice`` holds the size
    choice: dict[str, Any] | None
    out: Path | None
    meta: dict[str, Any] | None = None  # the checkpoint's header and tensors (resume, init_from)
    tensors: dict[str, Any] | None = None
    source: Path | None = None
    tokenizer: Any = None
    val_file: str | None = None         # a resumed run's own --val-file


def _starting_point(paths: list[Path], model: ModelConfig | dict[str, Any] | None, config: TrainConfig,
                    size: str | None, out: str | Path | None, resume: bool, init_from: str | Path | None,
                    overrides: dict[str, Any] | None) -> _Start:
    """A new run's configs from the arguments; a resumed run's from its checkpoint (``overrides`` on top); a
    fine-tune's model from its checkpoint, with the given dropout and training config (tokenizer fields kept)."""
    out = Path(out) if out is not None else None
    if resume:
        out = out if out is not None else _newest_run(paths[0])
        source = resolve_checkpoint(out, latest=True)
        meta, tensors = load_checkpoint(source)
        model_cfg = ModelConfig.from_dict(meta["config"]["model"])
        return _Start(model_cfg, TrainConfig.from_dict(meta["config"]["train"]).replace(**(overrides or {})), "fixed",
                      meta.get("size") or _checkpoint_choice(model_cfg), out, meta, tensors, source,
                      tokenizer_from_state(meta["tokenizer"], tensors), meta["split"].get("val_file"))
    given = model if isinstance(model, ModelConfig) else ModelConfig(**(model or {}))
    if init_from is not None:
        source = resolve_checkpoint(Path(init_from))
        meta, tensors = load_checkpoint(source)
        model_cfg = dataclasses.replace(ModelConfig.from_dict(meta["config"]["model"]),
                                        **{name: getattr(given, name) for name in RATES})
        stored = TrainConfig.from_dict(meta["config"]["train"])
        config = config.replace(tokenizer=stored.tokenizer, vocab_size=stored.vocab_size,
                                min_char_count=stored.min_char_count)
        return _Start(model_cfg, config, "fixed", _checkpoint_choice(model_cfg), out, meta, tensors, source,
                      tokenizer_from_state(meta["tokenizer"], tensors))
    if size is None:
        shaped = isinstance(model, ModelConfig) or bool(set(model or {}) & {"hidden_size", "num_layers", "embed_size"})
        size = "fixed" if shaped else "auto"
    if size == "auto":
        return _Start(given, config, "auto", None, out)
    fixed = Size(given.hidden_size, given.num_layers) if size == "fixed" else Size.parse(size)
    return _Start(given, config, "fixed", Choice(fixed, "fixed", "given").to_dict(), out)


def planned_rates(model_cfg: ModelConfig, config: TrainConfig, batches: TBPTTBatches, choice: dict[str, Any],
                  token_chars=None) -> dict[str, Any]:
    """What ``--dry-run`` shows of the regularisation: each rate, given or fitted to the passes planned.

    The passes come from a step or epoch budget, or from the characters the
    chosen size is predicted to train on in a time budget (``--size auto``);
    with a fixed size and a time budget they are known only at the first fit,
    and the auto rates are None.
    """
    steps = fixed_steps(config.max_steps, config.epochs, batches.windows_per_epoch)
    passes = steps / batches.windows_per_epoch if steps is not None else None
    predicted = choice.get("chars", {}).get(choice["size"])
    if config.max_time_s is not None and predicted:
        timed = predicted / max(1, train_chars(batches.ids, token_chars))
        passes = timed if passes is None else min(passes, timed)
    fitted = auto_rates(passes) if passes is not None else {}
    auto = [name for name in RATES if getattr(model_cfg, name) is None]
    return {"passes": passes, "state_reset": config.state_reset,
            **{name: fitted.get(name) if name in auto else getattr(model_cfg, name) for name in RATES}, "auto": auto}


def _checkpoint_choice(model_cfg: ModelConfig) -> dict[str, Any]:
    return Choice(Size(model_cfg.hidden_size, model_cfg.num_layers), "fixed", "the checkpoint's size").to_dict()


def train(
    corpus: str | Path | Sequence[str | Path],
    *,
    model: ModelConfig | dict[str, Any] | None = None,
    config: TrainConfig | None = None,
    out: str | Path | None = None,
    resume: bool = False,
    init_from: str | Path | None = None,
    val_file: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    callbacks: Sequence[Callable[[Event], None]] = (),
    threads: int | None = None,
    cache_dir: str | Path | None = None,
    size: str | None = None,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Train a language model on ``corpus`` (file(s)); returns a summary dict.

    ``resume`` continues the run in ``out`` (or the newest run for this corpus)
    from its latest checkpoint with the stored configs; ``overrides`` replaces
    training-config fields on resume (e.g. a longer budget).  ``init_from``
    starts from a checkpoint's weights with a fresh optimizer (fine-tuning).

    ``size``: ``"auto"`` picks hidden size and layers for the budget on this
    machine (rnnlm/training/autosize.py), ``"HxL"`` (e.g. ``"512x1"``) fixes them; by
    default it is auto unless ``model`` sets ``hidden_size``, ``num_layers`` or
    ``embed_size``.  A resumed or fine-tuned run keeps its checkpoint's size.
    ``dry_run`` returns ``{"size": ...}`` (the choice and its reason) after
    choosing, without training or writing anything.
    ``val_file`` validates on that text instead of a split of the corpus; a new
    character vocabulary covers it too (data.encode_splits says why), and one
    warning counts its characters that the training split never holds.
    """
    paths = [Path(p) for p in ([corpus] if isinstance(corpus, (str, Path)) else corpus)]
    if not paths:
        raise InputError("no corpus file given")
    set_threads(threads)
    start = _starting_point(paths, model, config or TrainConfig(), size, out, resume, init_from, overrides)
    config, out, val_file = start.config, start.out, start.val_file if resume else val_file
    resume_from = (start.meta, start.tensors) if resume else None
    with _distributed(config.device) as (rank, world, device):
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed (B, T) shapes: pick the fastest cuDNN kernels once
            set_cuda_matmul(config.precision)
        out = out if out is not None else default_run_dir(paths[0], start.model.cell)
        cache = Path(cache_dir) if cache_dir is not None else out.parent / ".cache"
        share = (lambda tok: _broadcast_tokenizer(tok, config.tokenizer, device)) if world > 1 else None
        val_text = read_text([Path(val_file)]) if val_file is not None else None
        tokenizer, splits, info = encode_splits(paths, config, start.tokenizer, cache, rank=rank, share=share,
                                                progress=_phase_events(callbacks) if rank == 0 else None,
                                                val_text=val_text)
        if resume_from is not None and not same_corpus(resume_from[0]["corpus"], info.sha256):
            raise InputError(f"the corpus differs from the one {out} was trained on; resume needs the same files")
        val_ids = splits[1]
        if val_text is not None:
            try:
                val_ids = tokenizer.encode(val_text, unknown="unk" if tokenizer.unk_id is not None else "error")
            except InputError as exc:  # a fine-tune keeps its checkpoint's vocabulary, which may lack them
                raise InputError(f"--val-file {val_file}: {exc}") from None
            fresh_chars = tokenizer.kind == "char" and start.meta is None
            unseen, chars = unseen_in_training(val_ids, splits[0], tokenizer) if fresh_chars else (0, [])
            if unseen and rank == 0:
                warnings.warn(f"--val-file {val_file}: {unseen:,} characters ({len(chars)} distinct: "
                              f"{describe_chars(chars, 5)}) never occur in the training split; they are in the "
                              "vocabulary and validation bpc counts what the model gives them (docs/train.md, "
                              "--val-file)", stacklevel=2)
        if getattr(tokenizer, "unknown_count", 0) and rank == 0:
            counted = "corpus and --val-file" if val_text is not None else "corpus"
            warnings.warn(f"--min-char-count {config.min_char_count}: {tokenizer.unknown_count:,} {counted} characters "
                          f"({len(tokenizer.rare_chars)} distinct) map to <unk>", stacklevel=2)
        batches = TBPTTBatches(splits[0], config.batch_size, config.bptt, rank, world)
        autocast = resolve_autocast(config.precision, device)
        if start.size == "auto":
            choice = size_for_budget(dataclasses.replace(start.model, vocab_size=tokenizer.vocab_size), config, batches,
                                     device, autocast, tokenizer.char_lengths(), world, time.perf_counter,
                                     script=text_script(tokenizer.decode, splits[0])).to_dict()
            if rank == 0:
                for callback in callbacks:
                    callback(Event("size", 0, None, choice["probe_s"], choice))
        else:
            choice = start.choice
        chosen = Size.parse(choice["size"])
        # The model's one config: the starting point's cell and shape, the data's vocabulary, the chosen size.
        model_cfg = dataclasses.replace(start.model, vocab_size=tokenizer.vocab_size, hidden_size=chosen.hidden,
                                        num_layers=chosen.layers)
        # Before anything of the model is allocated, and in a dry run too: a size that cannot fit is bad input.
        check_memory(chosen, model_cfg.cell, model_cfg.vocab_size, model_cfg.embed_size, config.batch_size,
                     config.bptt, device)
        if dry_run:
            return {"size": choice, "dry_run": True,
                    "rates": planned_rates(model_cfg, config, batches, choice, tokenizer.char_lengths())}
        torch.manual_seed(config.seed + rank)  # after the probe: an auto run starts where --size HxL would
        net = RNNLM(model_cfg)
        if start.tensors is not None:
            load_weights(net, start.tensors, start.source)
        net.to(device)
        if len(val_ids) < 2:
            raise InputError(f"validation split too short ({len(val_ids)} tokens); use a bigger corpus or --split")
        scope = val_scope(split_chars(val_ids, tokenizer))
        meta_out = {
            "config": {"model": model_cfg.to_dict(), "train": config.to_dict()},
            "tokenizer": tokenizer.to_dict(),
            "corpus": info.to_dict(),
            "split": {"fractions": list(config.split), "tokens": [len(s) for s in splits],
                      "val_file": str(Path(val_file).resolve()) if val_file else None},
            "val_scope": scope,
            "size": choice,
        }
        if rank == 0:
            out.mkdir(parents=True, exist_ok=True)
            atomic_write_text(out / "config.json", json.dumps(meta_out, indent=2, ensure_ascii=False) + "\n")
        trainer = Trainer(
            net, config, batches, val_ids, device, out, meta_out,
            token_chars=tokenizer.char_lengths(),
            autocast_dtype=autocast,
            callbacks=[*run_callbacks(out), *callbacks] if rank == 0 else [],
            rank=rank, world_size=world, resume_from=resume_from,
            static_tensors={k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in tokenizer.tensors().items()},
            val_segments=scope_segments(val_ids, tokenizer, scope),
        )
        if resume_from is None:
            trainer.state.elapsed_s = choice.get("probe_s", 0.0)  # the probe ran inside the time budget
        summary = trainer.run()
        summary["size"] = choice["size"]
        summary["epochs"] = trainer.state.step / batches.windows_per_epoch
        # The DDP reducer goes before the process group: a two-rank gloo test whose
        # trainer outlived destroy_process_group aborted once under heavy load ("terminate called without an
        # active exception" at exit).
        del trainer
        return summary
