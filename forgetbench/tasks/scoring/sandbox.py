"""Run untrusted generated code (humaneval's completions) in a contained, throwaway child process.

Nothing runs without an explicit opt-in: `run(..., allowed=True)`, which the task's scorer passes only
when `confirmed()`: FORGETBENCH_CONFIRM_RUN_UNSAFE_CODE=1, set by forgetbench.eval.lmeval around one
task's scoring when the CLI got `--confirm-run-unsafe-code` (a standalone `lm_eval` run needs the
variable as well as lm-eval's own `--confirm_run_unsafe_code`).

Each program gets its own process (forgetbench/tasks/scoring/_sandbox_child.py, started through util-linux
`unshare`), in fresh network, mount and pid namespaces:
  - network: a new namespace has only a loopback that is down: no connection goes anywhere;
  - files: a fresh 64 MiB tmpfs as /tmp (the working folder /tmp/work), /var/tmp and /dev/shm; home
    folders and /run hidden under empty tmpfs (the interpreter's own folder bound back); every other
    mount read-only; all of it vanishes with the namespace;
  - identity: as root, the program runs as `nobody` (so root-owned files stay unreadable where their
    mode says so, and the process limit is enforced: the kernel exempts root from it); as a user, in a
    nested user namespace without capabilities; no_new_privs either way;
  - limits: CPU seconds, address space, processes, file size, open files (setrlimit in the child),
    wall time (an alarm in the child, and a kill of the whole process group by the parent), and the
    pid namespace ends every process the program forked when the runner exits;
  - environment: the child starts with PATH and LANG only (no HOME, tokens or proxies).
Where namespaces cannot be created (not Linux, no `unshare`, user namespaces disabled), `run` refuses
with a message, unless FORGETBENCH_SANDBOX=rlimits-only explicitly accepts a weaker fallback: the same
limits, a temporary working folder and the scrubbed environment, but no network or file isolation.

Scoring follows human-eval / lm-eval's code_eval: a program passes iff it runs to the end without an
exception within `timeout` wall seconds (3 s); anything else (exception, SystemExit, timeout, a limit,
a kill, no report) is a failure.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

from forgetbench.errors import UserError

CONFIRM_ENV = "FORGETBENCH_CONFIRM_RUN_UNSAFE_CODE"
MODE_ENV = "FORGETBENCH_SANDBOX"  # "rlimits-only": the explicit no-namespace fallback
CHILD = Path(__file__).with_name("_sandbox_child.py")
NOBODY = (65534, 65534)
NS_FLAGS = ["--net", "--mount", "--pid", "--fork", "--kill-child", "--mount-proc"]
HIDE = ("/root", "/home", "/run")
CANARY = "import collections, hashlib, itertools, json, math, re, string, typing\nassert math.gcd(12, 18) == 6\n"
ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}


@dataclass(frozen=True)
class Limits:
    timeout: float = 3.0  # wall seconds for the program (human-eval's and lm-eval's code_eval value)
    cpu_seconds: int = 10
    memory_bytes: int = 1 << 30
    processes: int = 32
    file_bytes: int = 16 << 20
    open_files: int = 64
    scratch_bytes: int = 64 << 20  # size of the fresh /tmp (and /var/tmp, /dev/shm)
    startup_seconds: float = 30.0  # interpreter start + set-up, before the parent kills the group


@dataclass(frozen=True)
class Outcome:
    passed: bool
    status: str  # passed | failed | timeout | killed | no-report | setup
    error: str = ""
    isolation: str = ""  # root | userns | rlimits-only


def confirmed() -> bool:
    return os.environ.get(CONFIRM_ENV) == "1"


@contextlib.contextmanager
def opened(confirm: bool):
    """Within the block, confirmed() is `confirm` (the CLI's opt-in, passed to lm-eval's scorers)."""
    old = os.environ.get(CONFIRM_ENV)
    if confirm:
        os.environ[CONFIRM_ENV] = "1"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(CONFIRM_ENV, None)
        else:
            os.environ[CONFIRM_ENV] = old


def not_confirmed_message(task: str = "humaneval") -> str:
    return (f"{task} runs model-generated code; pass --confirm-run-unsafe-code to run it in forgetbench's "
            f"sandbox, or leave {task} out (a standalone lm_eval run: set {CONFIRM_ENV}=1)")


def _ns_command(root: bool) -> list[str]:
    unshare = shutil.which("unshare") or "/usr/bin/unshare"
    return [unshare, *NS_FLAGS, *([] if root else ["--map-root-user"])]


@lru_cache(maxsize=4)
def isolation(python: str = sys.executable) -> str:
    """'root' or 'userns' when namespaces work here, 'rlimits-only' when the user chose the fallback.
    Raises UserError otherwise (checked once per process with a trivial child)."""
    if os.environ.get(MODE_ENV) == "rlimits-only":
        return "rlimits-only"
    root = os.geteuid() == 0
    why = "not Linux" if not sys.platform.startswith("linux") else None
    if why is None:
        try:
            probe = subprocess.run([*_ns_command(root), python, "-I", "-c", "pass"], capture_output=True,
                                   timeout=60, env=ENV)
            why = None if probe.returncode == 0 else probe.stderr.decode(errors="replace").strip()[-200:]
        except (OSError, subprocess.TimeoutExpired) as e:
            why = str(e)
    if why:
        raise UserError(f"cannot isolate generated code here (`unshare {' '.join(NS_FLAGS)}`: {why}); "
                        f"use a Linux machine with user namespaces, or set {MODE_ENV}=rlimits-only to run it "
                        "with resource limits only (no network or file isolation)")
    mode = "root" if root else "userns"
    # A sandbox that cannot import the standard library would fail every program: a silent zero score.
    canary = _run(CANARY, Limits(timeout=30.0), mode, python)
    if not canary.passed:
        raise UserError(f"forgetbench's sandbox cannot run Python here ({canary.status}: {canary.error}); "
                        "generated code was not run")
    return mode


def _keep_paths(python: str) -> list[str]:
    """Folders the interpreter needs after the home folders are hidden."""
    exe = Path(os.path.realpath(python))
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, str(exe.parent.parent)}
    return sorted(os.path.realpath(p) for p in paths if p)


def _hide_paths() -> list[str]:
    out = {os.path.realpath(p) for p in (*HIDE, os.path.expanduser("~")) if p and os.path.isdir(p)}
    return sorted(p for p in out if p != "/")


def run(program: str, limits: Limits = Limits(), *, allowed: bool = False, python: str = sys.executable) -> Outcome:
    """Run `program` (Python source) contained; passed iff it finished without an exception in time."""
    if not allowed:
        raise UserError(not_confirmed_message())
    return _run(program, limits, isolation(python), python)


def _run(program: str, limits: Limits, mode: str, python: str) -> Outcome:
    nonce = secrets.token_hex(16)
    job = {"program": program, "timeout": limits.timeout, "limits": asdict(limits), "nonce": nonce,
           "hide": _hide_paths(), "keep": _keep_paths(python), "drop_to": NOBODY if mode == "root" else None,
           "namespaces": mode != "rlimits-only"}
    tmp = None
    if mode == "rlimits-only":
        tmp = tempfile.mkdtemp(prefix="forgetbench-sandbox-")
        job["work"] = tmp
        cmd = [python, "-I", str(CHILD)]
    else:
        cmd = [*_ns_command(mode == "root"), python, "-I", str(CHILD)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            env=ENV, cwd="/", start_new_session=True)
    try:
        out, _ = proc.communicate(json.dumps(job).encode(), timeout=limits.timeout + limits.startup_seconds)
    except subprocess.TimeoutExpired:
        out = b""
    finally:
        _kill_group(proc)
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    return _outcome(out, nonce, proc.returncode, mode)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the runner and anything it forked that kept the group
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def _outcome(out: bytes, nonce: str, returncode: int | None, mode: str) -> Outcome:
    for line in out.decode(errors="replace").splitlines():
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if isinstance(msg, dict) and msg.get("nonce") == nonce:
            status = str(msg.get("status"))
            if status == "setup":  # the sandbox itself failed: never score that as the model's failure silently
                raise RuntimeError(f"sandbox set-up failed: {msg.get('error')}")
            return Outcome(status == "passed", status, str(msg.get("error") or ""), mode)
    status = "killed" if returncode and returncode < 0 else "no-report"
    return Outcome(False, status, f"exit code {returncode}", mode)
