"""The recurrent language model: embedding → stacked fused cell → dropout → linear.

The cell is torch's fused ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` (cuDNN on GPU,
oneDNN/MKL on CPU), picked by name like pytorch/examples' word_language_model.
``reference.py`` recomputes the same forward pass in numpy from the textbook
equations, and the tests hold the two together.

The module is tensors in, tensors out: no tokenizer, no sampling, no devices
chosen here.  The recurrent state is always a tuple of tensors — ``(h,)`` for
SimpleRNN/GRU and ``(h, c)`` for LSTM — so callers never special-case the cell.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rnnlm.core.config import ModelConfig
from rnnlm.core.device import cell_autocasts
from rnnlm.model.cells import REGISTRY

State = tuple[torch.Tensor, ...]

AUTO_DROPOUT_START = 0.1  # auto dropout before the trainer knows the budget (the first few dozen steps)


class RNNLM(nn.Module):
    """A stacked recurrent character (or subword) language model."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        # The rates in use: the config's, or (auto) start values the trainer replaces once the budget is known.
        self.dropout = config.dropout if config.dropout is not None else AUTO_DROPOUT_START
        self.weight_drop = config.weight_drop or 0.0
        self.embed_drop = config.embed_drop or 0.0
        self.embedding = nn.Embedding(config.vocab_size, config.embed_size)
        cell = REGISTRY[config.cell]
        self.rnn = getattr(nn, cell.torch_module)(
            config.embed_size,
            config.hidden_size,
            num_layers=config.num_layers,
            dropout=self.dropout if config.num_layers > 1 else 0.0,
            batch_first=True,
            **cell.torch_kwargs,
        )
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size)
        if config.tie_weights:
            self.decoder.weight = self.embedding.weight
        # torch's default initialisation is kept on purpose: measured on tinyshakespeare (3-minute
        # budget, 1×512 LSTM), the word_language_model-style ±0.1 embeddings cost 0.05 bpc and a
        # forget-gate bias of 1 another 0.08 (2.16 → 2.11 → 2.03 when each was removed).

    def set_rates(self, dropout: float | None = None, weight_drop: float | None = None,
                  embed_drop: float | None = None) -> None:
        """Change regularisation rates in place (those given): dropout (embeddings, between layers, before the
        output), DropConnect on the recurrent matrices, embedding dropout (whole characters)."""
        if dropout is not None:
            self.dropout = dropout
            if self.config.num_layers > 1:
                self.rnn.dropout = dropout  # nn.RNNBase reads it at every forward
        if weight_drop is not None:
            self.weight_drop = weight_drop
        if embed_drop is not None:
            self.embed_drop = embed_drop

    def init_state(self, batch_size: int, device: torch.device | str | None = None) -> State:
        """Zero recurrent state for ``batch_size`` streams (on the model's device unless told)."""
        return zero_state(self.config, batch_size, device if device is not None else self.embedding.weight.device)

    def forward(self, ids: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """Logits for every position and the state after the last one."""
        features, new_state = self.features(ids, state)
        return self.decoder(features), new_state  # (B, T, V)

    def features(self, ids: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """What the decoder reads (the top layer's output after dropout, (B, T, H)) and the new state.

        Apart from ``forward`` so the trainer can decode a large vocabulary in
        slices without holding every position's logits at once.
        """
        x = locked_dropout(self._embed(ids), self.dropout, self.training)  # (B, T, E)
        rnn_state = state if len(state) > 1 else state[0]  # torch takes (h, c) as a tuple, a lone h bare
        if torch.is_autocast_enabled(x.device.type) and not cell_autocasts(x.device):
            # The precision policy (device.cell_autocasts): on CUDA, and on CPUs whose oneDNN has no bf16 RNN,
            # the cell runs outside autocast in fp32 while the decoder, where most of a large vocabulary's
            # FLOPs are, stays under bf16 autocast.
            with torch.autocast(x.device.type, enabled=False):
                out, new_state = self._recur(x.float(), tuple(s.float() for s in rnn_state)
                                             if isinstance(rnn_state, tuple) else rnn_state.float())  # (B, T, H)
        else:
            out, new_state = self._recur(x, rnn_state)  # (B, T, H)
        new_state = new_state if isinstance(new_state, tuple) else (new_state,)
        return locked_dropout(out, self.dropout, self.training), new_state  # (B, T, H)


    def _embed(self, ids: torch.Tensor) -> torch.Tensor:
        """The embedding lookup; in training with ``embed_drop``, whole rows (characters) dropped for this step.

        AWD-LSTM's embedding dropout: a dropped character's vector is zero at
        every position it occurs in the batch, the rest scaled by 1/(1−p), so
        the model cannot lean on any one character's identity.
        """
        if not self.training or self.embed_drop == 0:
            return self.embedding(ids)
        weight = self.embedding.weight
        keep = torch.empty((weight.shape[0], 1), dtype=weight.dtype, device=weight.device).bernoulli_(1 - self.embed_drop)
        return F.embedding(ids, weight * keep.div_(1 - self.embed_drop))  # (B, T, E)

    def _recur(self, x: torch.Tensor, state):
        """The fused cell; in training with ``weight_drop``, its recurrent matrices under a DropConnect mask.

        AWD-LSTM's weight drop: one mask per step on each ``weight_hh_l*``,
        shared by every time step of the window, so the recurrence is
        regularised without noise on the carried state.  The masked matrices
        are passed to the same fused module for this call
        (``torch.func.functional_call``): cuDNN/oneDNN kernels stay, the
        parameters and their names stay (checkpoints, int8 and the exporters
        see the trained matrices), and the gradient flows through the mask.
        """
        if not self.training or self.weight_drop == 0:
            return self.rnn(x, state)
        masked = {name: F.dropout(weight, self.weight_drop) for name, weight in self.rnn.named_parameters()
                  if name.startswith("weight_hh")}
        return torch.func.functional_call(self.rnn, masked, (x, state))


def locked_dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Dropout with one mask per sequence, shared by all its time steps (AWD-LSTM's "locked" dropout).

    x is (B, T, C); the mask is (B, 1, C).  Besides being the variational
    dropout recurrent nets are known to like (Gal & Ghahramani, 2016), it draws
    T times fewer random numbers: at the default T=64 standard dropout's masks
    cost 17% of a bf16 training step on CPU, these cost nothing measurable.
    The identity outside training (no call at all, which matters when
    sampling one character at a time).
    """
    if not training or p == 0:
        return x
    mask = torch.empty((x.shape[0], 1, x.shape[2]), dtype=x.dtype, device=x.device).bernoulli_(1 - p)  # (B, 1, C)
    return x * mask.div_(1 - p)


def zero_state(config: ModelConfig, batch_size: int, device: torch.device | str) -> State:
    """``(h,)`` or, for LSTM, ``(h, c)``: each (num_layers, B, hidden) zeros."""
    shape = (config.num_layers, batch_size, config.hidden_size)
    return tuple(torch.zeros(shape, device=device) for _ in REGISTRY[config.cell].state)


def detach_state(state: State) -> State:
    """Cut the graph at a window boundary (truncated BPTT) while keeping the values, as float32.

    The carried state has one dtype, float32, whatever precision computed it:
    under autocast the cell returns bf16 (CPU) states, and a checkpoint holding
    those could not resume on a machine or with a ``--precision`` that runs fp32.
    """
    return tuple(s.detach().float() for s in state)


def num_parameters(model: nn.Module) -> int:
    """Distinct trainable parameters (a tied matrix counts once)."""
    return sum(p.numel() for p in model.parameters())
