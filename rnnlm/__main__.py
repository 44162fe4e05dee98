"""``python -m rnnlm`` (and ``torchrun -m rnnlm``) runs the command line."""

from .cli import main

main()
