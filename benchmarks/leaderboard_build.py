"""Time `forgetbench leaderboard build` on N synthetic submissions (default 1,000).

Each entry is valid per the submission contract: the lite suite plus its target (5 or 6 registry
tasks) of 20 items each, a KL block of 32 sequences, aggregates and CIs computed from the items with
forgetbench.stats.paired / forgetbench.kl.estimate exactly as `forgetbench export` would, so
forgetbench.leaderboard.validate's recomputation agrees. The rows are synthetic (20 per task, not the registry's),
so every entry is "stale", which validate and the site handle like any other. Prints generation time,
then the default build (with validation) and the build without validation, per stage, with the CPU
time and the peak resident memory of this process and its workers (generating the entries in this
process counts too: for the build's own peak, generate with --keep DIR first and run again).

    python benchmarks/leaderboard_build.py [--n 1000] [--keep DIR] [--n-boot 10000]

The sites are written into a temporary folder (TMPDIR). On ext4 without a journal (the 2-core test
machines), creating files soon after many others were deleted is slow: the kernel's inode allocator
checks and skips recently freed inodes one by one. Rendering 10,000 pages took 13-19 s in a /tmp that
earlier runs had filled and emptied against ~10 s in a fresh folder (kernel time of the page writers 7-12 s
against ~2 s). A new TMPDIR for each run helps but does not isolate runs made within minutes of each
other (each run deletes its own sites at the end): the render stage still took 9-17 s between such runs.

`write_entry` is also used by tests/test_leaderboard.py to produce small valid entries.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

TARGETS = ("countdown", "ifeval", "lite_countdown", "lite_ifeval")
METHODS = ("sft", "self-sft", "onpolicy-sft", "rl", "other")
BASES = ("HuggingFaceTB/SmolLM2-135M-Instruct", "Qwen/Qwen2.5-0.5B-Instruct", "meta-llama/Llama-3.2-1B-Instruct")


def _h(*parts) -> str:
    return hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()


GEN_SETTINGS = {"output_type": "generate_until", "generation_kwargs": {"max_gen_toks": 256}, "num_fewshot": 0}


def suite_tasks(target: str, suite: str = "lite") -> tuple[str, ...]:
    """The probes of an entry on `suite` with `target`: every other task of the suite."""
    from forgetbench.tasks import registry

    return tuple(sorted(n for n, t in registry.all_tasks().items() if suite in t.suites and n != target))


def _run(spec, model_hash: str, scores, responses, prompts, key: str):
    from forgetbench.tasks.data import gen_key
    from forgetbench.records import ItemResult, TaskRun

    strata = ("harmful", "safe")  # a task with a strata key (lite_refusal): alternate items
    items = tuple(
        ItemResult(doc_id=i, doc_hash=_h(spec.name, i)[:32], prompt=prompts[i], response=responses[i],
                   score=float(s), metrics={key: float(s)}, cluster=f"c{i % 4}" if spec.cluster_key else None,
                   stratum=strata[i % 2] if spec.strata_key else None)
        for i, s in enumerate(scores))
    return TaskRun(model_hash, spec.name, spec.version, _h(spec.name, "data"), gen_key(GEN_SETTINGS), GEN_SETTINGS,
                   items, {})


def _scores(p, n: int, rng) -> np.ndarray:
    """0/1 scores: drawn with probability p, or given as a sequence of n scores."""
    if isinstance(p, (int, float)):
        return (rng.random(n) < p).astype(float)
    if len(p) != n:
        raise ValueError(f"need {n} scores, got {len(p)}")
    return np.asarray(p, float)


def results_for(entry_id: str, target: str, probes, p_base, p_tuned, *, n_items=20, n_boot=10000, seed=0,
                rng=None, response=None, prompt=None, with_kl=True, kl_scale=1.0, suite="lite") -> dict:
    """results.json content: per task, base/tuned 0/1 scores drawn with probabilities p_base[task] /
    p_tuned[task] (or given as lists of n_items scores); `response(task, i, side)` / `prompt(task, i)` override the generated texts."""
    from forgetbench.tasks import registry
    from forgetbench.kl.estimate import KLItems, summarize
    from forgetbench import stats
    from forgetbench.stats.paired import mean_drop, task_delta, with_tests
    from forgetbench.leaderboard.recompute import aggregate_json, est_json

    rng = rng if rng is not None else np.random.default_rng(0)
    bh, th = _h(entry_id, "base"), _h(entry_id, "tuned")
    tasks, deltas = [], []
    for name in (target, *probes):
        spec = registry.get(name)
        role = "target" if name == target else "probe"
        key = spec.primary_metric if "," in spec.primary_metric else f"{spec.primary_metric},none"
        sb, st = _scores(p_base[name], n_items, rng), _scores(p_tuned[name], n_items, rng)
        prompts = [prompt(name, i) if prompt else f"Question {i} of {name}: what is {i} + {i * 3}? Answer briefly."
                   for i in range(n_items)]
        resp = {side: [response(name, i, side) if response else f"[{side}] The answer is {i * 4}. " * 6
                       for i in range(n_items)] for side in ("base", "tuned")}
        rb, rt = _run(spec, bh, sb, resp["base"], prompts, key), _run(spec, th, st, resp["tuned"], prompts, key)
        deltas.append(task_delta(spec, role, rb, rt))
        tasks.append({
            "task": name, "version": spec.version, "role": role, "primary_metric": spec.primary_metric,
            "data_hash": rb.data_hash,
            "gen_key": rb.gen_key, "gen_settings": rb.gen_settings, "aggregate": None,  # below, with the tests
            "items": [{"doc_id": b.doc_id, "doc_hash": b.doc_hash, "cluster": b.cluster, "stratum": b.stratum,
                       "base": {"score": b.score, "metrics": b.metrics, "response": b.response},
                       "tuned": {"score": t.score, "metrics": t.metrics, "response": t.response},
                       "prompt": b.prompt} for b, t in zip(rb.items, rt.items)],
        })
    deltas = with_tests(deltas)
    for t, d in zip(tasks, deltas):
        t["aggregate"] = aggregate_json(d)
    kl = None
    if with_kl:
        m, k = 8, 4
        fwd = rng.gamma(2.0, kl_scale, m * k)
        kli = KLItems(fwd=tuple(fwd), rev=tuple(fwd * 0.8), tv=tuple(fwd * 0.1),
                      n_tokens=tuple(int(x) for x in rng.integers(20, 60, m * k)),
                      prompt_index=tuple(i // k for i in range(m * k)))
        s = summarize(kli, n_boot=n_boot, seed=seed)
        kl = {"task": target, "settings": {"m_prompts": m, "k_samples": k, "max_new_tokens": 64, "seed": seed,
                                           "dtype": "bfloat16", "n_boot": n_boot, "boot_seed": seed},
              "n_seq": m * k, "n_tokens": int(sum(kli.n_tokens)),
              **{out: {"value": s[src].value, "lo": s[src].lo, "hi": s[src].hi} for out, src in
                 (("fwd_seq", "fwd_per_seq"), ("fwd_tok", "fwd_per_token"), ("rev_tok", "rev_per_token"),
                  ("tv_tok", "tv_per_token"))},
              "items": [{"seq": i, "prompt_index": kli.prompt_index[i], "n_tokens": kli.n_tokens[i], "fwd": kli.fwd[i],
                         "rev": kli.rev[i], "tv": kli.tv[i]} for i in range(m * k)]}
    return {
        "format": "forgetbench-results", "format_version": 2, "exported_at": "2025-01-01T00:00:00Z",
        "versions": {"forgetbench": "0.1.0", "lm_eval": "0.4.13", "transformers": "5.23", "torch": "2.13.0",
                     "python": "3.11"},
        "seed": seed,
        "pair": {"base_hash": bh, "tuned_hash": th, "base_spec": "base", "tuned_spec": "tuned", "target": target,
                 "settings": {"backend": "hf", "dtype": "bfloat16", "chat_template": True, "limit": n_items,
                              "suite": suite, "tasks": [target, *probes]}},
        "intervals": stats.settings(),
        "tasks": tasks,
        "mean_drop": est_json(mean_drop(deltas)),
        "kl": kl,
    }


def write_entry(root: Path, entry_id: str, results: dict, **meta) -> Path:
    """submissions/<entry_id>/ with metadata.yaml (defaults overridable by keyword) and results.json."""
    d = root / entry_id
    d.mkdir(parents=True, exist_ok=True)
    md = {"schema_version": 1, "id": entry_id, "title": f"Entry {entry_id}",
          "base": {"hub_id": BASES[0], "revision": None, "content_hash": results["pair"]["base_hash"]},
          "tuned": {"hub_id": None, "revision": None, "content_hash": results["pair"]["tuned_hash"]},
          "method": "sft", "target": results["pair"]["target"], "training_data": "synthetic",
          "hyperparameters": {"lr": 1e-5, "epochs": 1}, "compute": "1x CPU 1h", "contact": "someone@example.org",
          "licence": "Apache-2.0", "reference": False, "notes": None}
    md.update(meta)
    (d / "metadata.yaml").write_text(yaml.safe_dump(md, sort_keys=False, allow_unicode=True), encoding="utf-8")
    (d / "results.json").write_text(json.dumps(results), encoding="utf-8")
    return d


def generate(root: Path, n: int, n_boot: int) -> None:
    rng = np.random.default_rng(7)
    for i in range(n):
        target = TARGETS[i % len(TARGETS)]
        probes = suite_tasks(target)
        strength = rng.random()
        p_base = {t: 0.3 + 0.4 * rng.random() for t in (target, *probes)}
        p_tuned = {t: p_base[t] + (0.4 * strength if t == target else -0.25 * strength * rng.random())
                   for t in p_base}
        res = results_for(f"e{i:04d}", target, probes, p_base, p_tuned, n_boot=n_boot, rng=rng,
                          kl_scale=0.2 + strength)
        write_entry(root, f"e{i:04d}", res, method=METHODS[i % len(METHODS)], title=f"Synthetic run {i}",
                    base={"hub_id": BASES[i % len(BASES)], "revision": None, "content_hash": res["pair"]["base_hash"]})


def _peak_mb() -> str:
    """Peak resident memory of this process and of the largest worker process so far (the goal: a
    build of 10,000 entries within 1 GB)."""
    import resource

    me, kids = (resource.getrusage(w).ru_maxrss / 1024 for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return f"{me:.0f} MB main, {kids:.0f} MB largest worker"


def _cpu() -> tuple[float, float]:
    import resource

    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time(), kids.ru_utime + kids.ru_stime


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--n-boot", type=int, default=10000)
    ap.add_argument("--keep", type=Path, help="generate into / reuse this folder instead of a temporary one")
    args = ap.parse_args(argv)
    from forgetbench.leaderboard.build import build

    with tempfile.TemporaryDirectory() as tmp:
        subs = args.keep or Path(tmp) / "submissions"
        if not (subs.is_dir() and len(list(subs.iterdir())) >= args.n):
            t = time.perf_counter()
            generate(subs, args.n, args.n_boot)
            print(f"generated {args.n} submissions in {time.perf_counter() - t:.1f}s -> {subs}")
        size = sum(f.stat().st_size for f in subs.rglob("*") if f.is_file())
        print(f"{args.n} entries, {size / 2**20:.1f} MiB on disk")
        for validate in (True, False):
            # Wall times depend on what else runs: report the CPU time spent too (this process and the
            # worker processes of the parallel stages) and the load average.
            cpu0 = _cpu()
            res = build(subs, Path(tmp) / f"site_{validate}", validate=validate)
            cpu = [b - a for a, b in zip(cpu0, _cpu())]
            label = "default build (validate)" if validate else "build --no-validate (benchmark only)"
            stages = ", ".join(f"{k} {v:.2f}s" for k, v in res.timings.items())
            print(f"{label}: {res.timings['total']:.2f}s for {res.n_entries} entries "
                  f"({res.n_excluded} excluded) [{stages}]; cpu {cpu[0]:.1f}s main + {cpu[1]:.1f}s workers,"
                  f" load average {os.getloadavg()[0]:.1f}; peak RSS so far {_peak_mb()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
