"""rnnlm — character-level recurrent language models (SimpleRNN, LSTM, GRU) you train in one command.

Python API::

    import rnnlm
    summary = rnnlm.train("corpora/shakespeare.txt", config=rnnlm.TrainConfig(max_time_s=300))
    lm = rnnlm.load(summary["out_dir"])
    print(lm.generate("ROMEO:", length=300, seed=0))

The names are imported on first use, so ``import rnnlm.core.errors`` (or the
CLI's ``--help``) does not pay for importing torch.
"""

from importlib import import_module

__version__ = "0.1.0"

_EXPORTS = {
    "train": "training.run",
    "load": "generation.language_model",
    "inspect": "inspection.inspector",
    "export_web": "generation.export",
    "export_onnx": "generation.onnx_export",
    "LanguageModel": "generation.language_model",
    "ModelConfig": "core.config",
    "TrainConfig": "core.config",
    "InputError": "core.errors",
    "RnnlmError": "core.errors",
}
__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'rnnlm' has no attribute {name!r}")
