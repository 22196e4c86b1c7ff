"""The one exception type the CLI turns into a clear message and a non-zero exit (no traceback)."""


class UserError(Exception):
    """Bad input from the user: a missing checkpoint, an unknown task, a corrupt store, ..."""


def one_line(e: BaseException | str, limit: int = 300) -> str:
    """A library's (often multi-line) error message as one line of at most `limit` characters."""
    text = " ".join(str(e).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
