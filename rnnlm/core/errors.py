"""One error hierarchy for the whole toolkit.

Library code raises these with a message that tells the user what to do; only
``cli.py`` turns them into one line on stderr and an exit code, so the Python
API stays usable from notebooks and scripts (no ``sys.exit`` deep inside).
"""


class RnnlmError(Exception):
    """A failure while working (disk full, NaN abort, out of memory): exit 1."""

    exit_code = 1


class InputError(RnnlmError):
    """The command line or a file it names is unusable: exit 2."""

    exit_code = 2


class Interrupted(RnnlmError):
    """Training stopped by a signal after saving; exit 130 (SIGINT) or 143 (SIGTERM)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code
