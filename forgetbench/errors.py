"""The one exception type the CLI turns into a clear message and a non-zero exit (no traceback)."""


class UserError(Exception):
    """Bad input from the user: a missing checkpoint, an unknown task, a corrupt store, ..."""
