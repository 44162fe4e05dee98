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
from torch import nn

from .config import ModelConfig

State = tuple[torch.Tensor, ...]

_CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


class RNNLM(nn.Module):
    """A stacked recurrent character (or subword) language model."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embed_size)
        kwargs = {"nonlinearity": "tanh"} if config.cell == "rnn" else {}
        self.rnn = _CELLS[config.cell](
            config.embed_size,
            config.hidden_size,
            num_layers=config.num_layers,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
            batch_first=True,
            **kwargs,
        )
        self.drop = nn.Dropout(config.dropout)
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size)
        if config.tie_weights:
            self.decoder.weight = self.embedding.weight
        self._init_weights()

    def _init_weights(self) -> None:
        """Small uniform embeddings; LSTM forget-gate bias 1 so memory flows from the first step.

        The forget bias of 1 (Jozefowicz et al., 2015) is the one init change
        that measurably speeds early training of LSTMs; torch's other defaults
        (uniform ±1/sqrt(H)) are kept.
        """
        nn.init.uniform_(self.embedding.weight, -0.1, 0.1)
        if self.config.cell == "lstm":
            h = self.config.hidden_size
            for name, param in self.rnn.named_parameters():
                if name.startswith("bias_ih"):
                    with torch.no_grad():
                        param[h : 2 * h].fill_(1.0)
                elif name.startswith("bias_hh"):
                    with torch.no_grad():
                        param[h : 2 * h].zero_()

    def init_state(self, batch_size: int, device: torch.device | str | None = None) -> State:
        """Zero recurrent state for ``batch_size`` streams."""
        shape = (self.config.num_layers, batch_size, self.config.hidden_size)
        device = device if device is not None else self.embedding.weight.device
        count = 2 if self.config.cell == "lstm" else 1
        return tuple(torch.zeros(shape, device=device) for _ in range(count))

    def forward(self, ids: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """Logits for every position and the state after the last one."""
        x = self.drop(self.embedding(ids))  # (B, T, E)
        rnn_state = state if self.config.cell == "lstm" else state[0]
        out, new_state = self.rnn(x, rnn_state)  # (B, T, H)
        logits = self.decoder(self.drop(out))  # (B, T, V)
        new_state = new_state if isinstance(new_state, tuple) else (new_state,)
        return logits, new_state


def detach_state(state: State) -> State:
    """Cut the graph at a window boundary (truncated BPTT) while keeping the values."""
    return tuple(s.detach() for s in state)


def num_parameters(model: nn.Module) -> int:
    """Distinct trainable parameters (a tied matrix counts once)."""
    return sum(p.numel() for p in model.parameters())
