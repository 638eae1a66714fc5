"""The one exception type a user sees: a message that names the cause and the fix."""


class TTEError(Exception):
    """An error the user caused (bad model, bad input, bad option), with a clear message."""


class UnsupportedError(TTEError):
    """The model uses an op, attribute or dtype TTE does not implement."""
