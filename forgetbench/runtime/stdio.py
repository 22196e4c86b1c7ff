"""Keep stdout for the report: everything else a run prints goes to stderr.

vLLM logs to stdout (its EngineCore and worker processes too, which inherit file descriptor 1), and so
may any library; `forgetbench eval --json` promises exactly one JSON document on stdout. Python-level
writes (sys.stdout) and file-descriptor-level writes (C code, child processes) are both redirected.
"""

from __future__ import annotations

import contextlib
import os
import sys


@contextlib.contextmanager
def stdout_to_stderr():
    """Inside: sys.stdout and fd 1 write to stderr; on exit both are restored (also on errors)."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    saved = None
    try:
        saved = os.dup(1)
        os.dup2(2, 1)
    except OSError:  # no fd 1 or 2 (a daemon, an embedding host): the Python-level redirect still holds
        saved = None
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        if saved is not None:
            os.dup2(saved, 1)
            os.close(saved)
