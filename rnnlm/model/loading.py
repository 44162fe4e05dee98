"""A checkpoint alone becomes a module on a device, with its tokenizer and header.

Below every layer that reads a trained model: generation's
:class:`rnnlm.generation.language_model.LanguageModel` (``rnnlm.load``) adds
sampling and scoring to :class:`LoadedModel`; inspection reads a
``LoadedModel`` and needs nothing of generation.  The checkpoint holds config,
tokenizer and weights, so no corpus is needed (unlike pytorch/examples'
``generate.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from rnnlm.core.checkpoint import load_checkpoint, load_weights, resolve_checkpoint
from rnnlm.core.config import ModelConfig, TrainConfig
from rnnlm.core.device import model_device, resolve_device
from rnnlm.core.errors import InputError
from rnnlm.data.tokenizers import tokenizer_from_state
from rnnlm.model.network import RNNLM


class LoadedModel:
    """A trained module with the tokenizer and header its checkpoint stores, and the file it came from."""

    def __init__(self, module: RNNLM, tokenizer, meta: dict[str, Any], path: Path) -> None:
        self.module, self.tokenizer, self.meta, self.path = module, tokenizer, meta, path
        self.config: ModelConfig = module.config
        self.train_config = TrainConfig.from_dict(meta["config"]["train"])

    @property
    def device(self) -> torch.device:
        return model_device(self.module)


def load_parts(path: str | Path | None = None, *, latest: bool = False,
               device: str = "auto") -> tuple[RNNLM, Any, dict[str, Any], Path]:
    """(module on ``device``, tokenizer, header, file) of a checkpoint file or run directory (→ best; ``latest``)."""
    file = resolve_checkpoint(Path(path) if path is not None else None, latest=latest)
    meta, tensors = load_checkpoint(file)
    try:
        config = ModelConfig.from_dict(meta["config"]["model"])
        tokenizer = tokenizer_from_state(meta["tokenizer"], tensors)
        module = RNNLM(config)
        load_weights(module, tensors, file)  # a header that disagrees with its tensors: one line naming them
    except (KeyError, RuntimeError, TypeError) as exc:
        raise InputError(f"corrupted checkpoint: {file} (inconsistent contents: {exc})") from exc
    if tokenizer.vocab_size != config.vocab_size:
        raise InputError(f"corrupted checkpoint: {file} (tokenizer has {tokenizer.vocab_size} symbols, model {config.vocab_size})")
    module.to(resolve_device(device)).eval()
    return module, tokenizer, meta, file


def load_model(path: str | Path | None = None, *, latest: bool = False, device: str = "auto") -> LoadedModel:
    """:func:`load_parts` as a :class:`LoadedModel`."""
    return LoadedModel(*load_parts(path, latest=latest, device=device))


__all__ = ["LoadedModel", "load_model", "load_parts"]
