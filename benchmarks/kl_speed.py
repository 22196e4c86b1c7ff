"""Speed and peak memory of the KL estimator vs one plain full-logit forward pass of both models.

    python benchmarks/kl_speed.py [--lengths 128 512] [--n-seqs 4] [--chunks 64] [--reps 3] [--dtypes float32 bfloat16]

Every figure is printed with the machine (CPU, its bf16-relevant flags, cores) and the dtype; float32 and
bfloat16 run side by side (bfloat16 is emulated, several times slower, on CPUs without AMX/AVX512-BF16).
Base: the bundled SmolLM2-135M-Instruct (stored in bf16, loaded in the dtype measured; converted once, ~30 s). Tuned: the same weights plus
seeded Gaussian noise (1% of each tensor's std), made in memory. Base samples are fixed: a chat
prompt plus seeded random completion tokens of each length (timing and memory do not depend on the
token values; sampling speed is generate()'s, not this estimator's).

Memory: each measurement runs in a fresh subprocess with MALLOC_MMAP_THRESHOLD_=64k, so glibc
returns a freed tensor's memory to the OS at once and RSS follows live memory. After one warm-up
call (which pays one-time costs: kernel caches, packed weights), peak = max RSS sampled every 2 ms
by a thread during a second call, minus RSS just before it (models excluded).
Time: per length, one subprocess alternates plain and KL calls (--reps rounds after a warm-up) and
keeps each one's best, so load from other processes hits both alike. --threads sets torch's thread
count (1 is steadier on a shared, oversubscribed machine).
plain = model(input_ids).logits for base and tuned over the same batch, nothing else.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time

PROMPT = "Explain, step by step, how to compute 17 * 23 without a calculator."


def _models(dtype: str = "bfloat16"):
    import torch

    from forgetbench.models import resolve as models
    from forgetbench.kl.estimate import load

    path = models.resolve("smollm2-135m-instruct").path
    base, tok = load(path, dtype)
    tuned, _ = load(path, dtype)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in tuned.parameters():
            p.add_(torch.randn(p.shape, generator=g).to(p.dtype) * (0.01 * p.float().std()).to(p.dtype))
    return base, tuned, tok


def _samples(tok, length: int, n: int, settings):
    import torch

    from forgetbench.kl.estimate import BaseSamples

    text = tok.apply_chat_template([{"role": "user", "content": PROMPT}], tokenize=False, add_generation_prompt=True)
    prompt = tuple(tok(text, add_special_tokens=False)["input_ids"])
    g = torch.Generator().manual_seed(length)
    comps = tuple(tuple(torch.randint(3, len(tok), (length,), generator=g).tolist()) for _ in range(n))
    return BaseSamples((prompt,), comps, (0,) * n, settings, "bench")


class PeakRSS:
    def __init__(self):
        import psutil

        self.proc, self.peak, self._stop = psutil.Process(), 0, threading.Event()

    def __enter__(self):
        self.start = self.proc.memory_info().rss
        self.peak = self.start
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.002)

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)
        self.extra_mb = (self.peak - self.start) / 2**20


def _setup(length: int, n: int, threads: int, dtype: str):
    import torch

    from forgetbench.kl.estimate import KLSettings

    base, tuned, tok = _models(dtype)
    if threads:  # after loading: kl.load applies forgetbench's own thread policy
        torch.set_num_threads(threads)
    samples = _samples(tok, length, n, KLSettings(batch_size=n))
    ids = torch.tensor([samples.prompt_ids[0] + c for c in samples.completions])

    def plain():
        with torch.inference_mode():
            base(input_ids=ids).logits
            tuned(input_ids=ids).logits

    return base, tuned, samples, plain


def _kl_run(base, tuned, samples, chunk: int):
    from dataclasses import replace

    from forgetbench.kl.estimate import kl_along

    st = replace(samples.settings, chunk_tokens=chunk)
    return lambda: kl_along(base, tuned, samples, st)


def child_memory(mode: str, length: int, n: int, chunk: int, threads: int, dtype: str) -> dict:
    base, tuned, samples, plain = _setup(length, n, threads, dtype)
    run = _kl_run(base, tuned, samples, chunk) if mode == "kl" else plain
    run()  # warm-up
    with PeakRSS() as mem:
        run()
    return {"peak_extra_mb": mem.extra_mb}


def child_time(length: int, n: int, chunks: list[int], reps: int, threads: int, dtype: str) -> dict:
    """Plain and KL calls alternate in one process, so load from other processes hits both alike."""
    base, tuned, samples, plain = _setup(length, n, threads, dtype)
    runs = {"plain": plain, **{f"kl{c}": _kl_run(base, tuned, samples, c) for c in chunks}}
    best = {k: float("inf") for k in runs}
    for f in runs.values():
        f()  # warm-up
    for _ in range(reps):
        for k, f in runs.items():
            t = time.perf_counter()
            f()
            best[k] = min(best[k], time.perf_counter() - t)
    return {"tokens": sum(len(samples.prompt_ids[0]) + len(c) for c in samples.completions), "time_s": best}


def _child(args: list[str]) -> dict:
    env = {**os.environ, "TQDM_DISABLE": "1", "MALLOC_MMAP_THRESHOLD_": "65536"}
    out = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, env=env)
    if out.returncode:
        raise SystemExit(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lengths", type=int, nargs="+", default=[128, 512])
    ap.add_argument("--n-seqs", type=int, default=4)
    ap.add_argument("--chunks", type=int, nargs="+", default=[64])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: forgetbench's default, the usable cores)")
    ap.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"], choices=["float32", "bfloat16", "float16"])
    ap.add_argument("--dtype", default="bfloat16", help=argparse.SUPPRESS)
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        kind, length = a.child[0], int(a.child[1])
        if kind == "time":
            res = child_time(length, a.n_seqs, a.chunks, a.reps, a.threads, a.dtype)
        else:
            res = child_memory(kind, length, a.n_seqs, int(a.child[2]), a.threads, a.dtype)
        print(json.dumps(res))
        return
    from forgetbench.runtime.hardware import describe, resolve_dtype

    _models()  # convert the bundled model once, outside the measurements
    print(f"{describe()}; dtype auto here: {resolve_dtype('auto').dtype}")
    print(
        f"load average {os.getloadavg()[0]:.1f}; threads {a.threads or 'default'}; "
        f"{a.n_seqs} sequences per batch"
    )
    print(f"{'dtype':>9} {'completion':>10} {'tokens':>7} {'mode':>6} {'chunk':>6} {'time s':>8} {'vs plain':>9} {'peak MB':>8}")
    for dtype in a.dtypes:
        _run_dtype(a, dtype)


def _run_dtype(a, dtype: str) -> None:
    common = ["--n-seqs", str(a.n_seqs), "--threads", str(a.threads), "--reps", str(a.reps), "--dtype", dtype]
    for length in a.lengths:
        t = _child(["time", str(length), *common, "--chunks", *map(str, a.chunks)])
        rows = [("plain", "-", t["time_s"]["plain"], _child(["plain", str(length), "0", *common]))]
        for c in a.chunks:
            rows.append(("kl", c, t["time_s"][f"kl{c}"], _child(["kl", str(length), str(c), *common])))
        for mode, chunk, secs, mem in rows:
            print(
                f"{dtype:>9} {length:>10} {t['tokens']:>7} {mode:>6} {chunk:>6} {secs:>8.2f} "
                f"{secs / t['time_s']['plain']:>8.2f}x {mem['peak_extra_mb']:>8.0f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
