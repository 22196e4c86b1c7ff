"""forgetbench.tasks.scoring.sandbox: hostile programs are contained and scored as failures.

Every case runs a real child process. Two isolation paths: `root` (this test process is root: the
program runs as nobody) and `userns` (the same module started as an unprivileged user: the program
runs in a nested user namespace). The second needs root here to become that user (setpriv) and a
system python the unprivileged user can execute; it is skipped elsewhere.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from forgetbench.errors import UserError
from forgetbench.tasks.scoring import sandbox
from support import REPO

ON_LINUX_ROOT = sys.platform.startswith("linux") and os.geteuid() == 0
SYS_PYTHON = "/usr/bin/python3"


def _reachable_by_others(path: Path) -> bool:
    """Whether an unprivileged user can import the package from `path` and reach the victim folder in
    its tests/: every folder from / down searchable by others (not so for a checkout in root's 0700 home)."""
    p = path.resolve()
    searchable = all(d.stat().st_mode & stat.S_IXOTH for d in (*reversed(p.parents), p))
    return searchable and bool(p.stat().st_mode & stat.S_IROTH)


AS_USER = (ON_LINUX_ROOT and shutil.which("setpriv") is not None and os.access(SYS_PYTHON, os.X_OK)
           and _reachable_by_others(REPO))

# run one program through the sandbox and print the Outcome as JSON (used as an unprivileged user)
_RUNNER = ("import json, sys; from dataclasses import asdict; from forgetbench.tasks.scoring import sandbox; "
           "print(json.dumps(asdict(sandbox.run(sys.stdin.read(), allowed=True))))")


def _run_as_user(program: str, home: Path) -> sandbox.Outcome:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "PYTHONPATH": str(REPO), "LANG": "C.UTF-8"}
    out = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", SYS_PYTHON, "-c", _RUNNER],
                         input=program, capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return sandbox.Outcome(**json.loads(out.stdout))


@pytest.fixture(params=["root", "userns"])
def run(request, victim):
    """run(program) -> Outcome, through one isolation path; the user's home is `victim` either way."""
    if request.param == "root":
        if not ON_LINUX_ROOT:
            pytest.skip("the root path needs a root test process on Linux")
        old = os.environ.get("HOME")
        os.environ["HOME"] = str(victim)
        try:
            sandbox.isolation.cache_clear()
            yield lambda program: sandbox.run(program, allowed=True)
        finally:
            os.environ["HOME"] = old or ""
        return
    if not AS_USER:
        pytest.skip("the user-namespace path is exercised by becoming nobody (needs root, setpriv, /usr/bin/python3"
                    f" and a checkout every user can reach, which {REPO} is not if a folder above it is 0700)")
    os.chown(victim, 65534, 65534)
    for p in victim.iterdir():
        os.chown(p, 65534, 65534)
    yield lambda program: _run_as_user(program, victim)


@pytest.fixture
def victim():
    """A home folder outside /tmp (whose tmpfs cover would hide it anyway) holding a secret and a file
    anyone may delete: only the sandbox's read-only mounts and home cover stand in the way."""
    d = REPO / "tests" / f".sandbox_victim_{os.getpid()}"
    d.mkdir(mode=0o777, exist_ok=True)
    os.chmod(d, 0o777)
    (d / "secret.txt").write_text("hunter2")
    (d / "precious.txt").write_text("keep me")
    for p in d.iterdir():
        os.chmod(p, 0o666)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _assert_failed(outcome: sandbox.Outcome) -> None:
    assert outcome.passed is False, outcome
    assert outcome.status in ("failed", "timeout", "killed", "no-report"), outcome


def test_nothing_runs_without_opt_in(tmp_path):
    marker = tmp_path / "ran"
    with pytest.raises(UserError, match="--confirm-run-unsafe-code"):
        sandbox.run(f"open({str(marker)!r}, 'w').write('x')")
    assert not marker.exists()


def test_a_correct_program_passes_and_a_wrong_one_fails(run):
    ok = run("def add(a, b):\n    return a + b\n\nassert add(2, 3) == 5\nimport math, re, collections\n")
    assert ok.passed and ok.status == "passed"
    _assert_failed(run("def add(a, b):\n    return a * b\n\nassert add(2, 3) == 5\n"))
    _assert_failed(run("def add(a, b) return a\n"))  # syntax error


def test_infinite_loop_is_stopped(run):
    out = run("while True:\n    pass\n")
    _assert_failed(out)
    assert out.status in ("timeout", "killed")


def test_sleeping_forever_is_stopped(run):
    _assert_failed(run("import time\ntime.sleep(10_000)\n"))


def test_fork_bomb_is_contained_and_leaves_no_process(run):
    bomb = "import os, time\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        time.sleep(0.01)\n"
    _assert_failed(run(bomb))
    left = subprocess.run(["pgrep", "-f", "_sandbox_child.py"], capture_output=True, text=True).stdout.split()
    assert left == []


def test_memory_bomb_is_contained(run):
    _assert_failed(run("x = []\nwhile True:\n    x.append(bytearray(50_000_000))\n"))


def test_file_size_bomb_is_contained(run):
    _assert_failed(run("with open('big', 'wb') as f:\n    for _ in range(100):\n        f.write(b'x' * 1_000_000)\n"))


def test_cannot_delete_or_write_outside_its_folder(run, victim):
    _assert_failed(run(f"import os\nos.remove({str(victim / 'precious.txt')!r})\n"))
    _assert_failed(run(f"import shutil\nshutil.rmtree({str(victim)!r})\n"))
    _assert_failed(run(f"open({str(REPO / 'pwned.txt')!r}, 'w').write('x')\n"))
    assert (victim / "precious.txt").read_text() == "keep me"
    assert not (REPO / "pwned.txt").exists()


def test_its_own_folder_is_writable_and_thrown_away(run):
    assert run("open('scratch.txt', 'w').write('x')\nopen('/tmp/forgetbench_sandbox_leak', 'w').write('x')\n").passed
    assert not Path("/tmp/forgetbench_sandbox_leak").exists()


def test_cannot_read_the_users_home(run, victim):
    _assert_failed(run(f"assert 'hunter2' in open({str(victim / 'secret.txt')!r}).read()\n"))
    _assert_failed(run(f"import glob\nassert glob.glob({str(victim)!r} + '/*')\n"))
    if os.path.isdir("/root"):
        _assert_failed(run("import os\nassert os.listdir('/root') != ['.pyenv'] and os.listdir('/root')\n"))


def test_environment_is_scrubbed(run, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    _assert_failed(run("import os\nassert os.environ['HF_TOKEN']\n"))
    _assert_failed(run("import os\nassert 'secret' in open('/proc/1/environ').read()\n"))


def test_no_network_even_to_this_host(run):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(8)
    port = server.getsockname()[1]
    seen = []
    t = threading.Thread(target=lambda: seen.append(_accept(server)))
    t.start()
    _assert_failed(run(f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2).sendall(b'hi')\n"))
    _assert_failed(run("import socket\nsocket.create_connection(('1.1.1.1', 80), timeout=2)\n"))
    t.join()
    server.close()
    assert seen == [None]


def _accept(server):
    try:
        conn, _ = server.accept()
        conn.close()
        return "connected"
    except OSError:
        return None


def test_exiting_early_is_not_a_pass(run):
    _assert_failed(run("import sys\nsys.exit(0)\nassert False\n"))
    _assert_failed(run("import os\nos._exit(0)\n"))
    _assert_failed(run("raise KeyboardInterrupt\n"))


def test_an_interpreter_installed_under_tmp_still_works(tmp_path):
    """/tmp gets a fresh tmpfs: a Python (here a venv) living under it must be bound back, or every
    program would fail to import and score 0 without a word."""
    try:
        sandbox.isolation()
    except UserError as e:
        pytest.skip(f"no sandbox here: {e}")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    code = ("import json, sys; from dataclasses import asdict; from forgetbench.tasks.scoring import sandbox; "
            "print(json.dumps(asdict(sandbox.run('import json, math\\nassert math.gcd(4, 6) == 2\\n', allowed=True))))")
    out = subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout)["passed"] is True
