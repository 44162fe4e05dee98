"""``python -m rnnlm`` (and ``torchrun -m rnnlm``) runs the command line."""

from rnnlm.cli import main

main()
