"""The one error type users see: a message that says what is wrong and how to fix it."""


class ServesimError(Exception):
    """A user-facing error; the CLI prints its message as one line, without a traceback."""
