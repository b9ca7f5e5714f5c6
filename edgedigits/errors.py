"""The exception types the CLI turns into a clear message and a non-zero exit."""


class EdgeDigitsError(Exception):
    """A user-facing failure: the message names the file or value and what is wrong."""

    exit_code = 2


class DataError(EdgeDigitsError):
    """Input data that cannot be read: the message says which file, where, and why."""


class Interrupted(EdgeDigitsError):
    """Ctrl-C (SIGINT) or SIGTERM: the message says what was kept and how to go on."""

    exit_code = 130
