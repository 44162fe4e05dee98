"""The defaults of an inspection, in one torch-free home: ``rnnlm inspect``'s options read them at import (so
``rnnlm --help`` stays light) and the inspection's functions take them as their defaults."""

DEFAULT_LENGTH = 5000  # characters inspected
DEFAULT_WARMUP = 1000  # characters before the text that warm the state
DEFAULT_THRESHOLD = 0.5  # held-out |score| a unit needs to be listed
DEFAULT_MAX_K = 256  # gradient reach: steps back measured

__all__ = ["DEFAULT_LENGTH", "DEFAULT_WARMUP", "DEFAULT_THRESHOLD", "DEFAULT_MAX_K"]
