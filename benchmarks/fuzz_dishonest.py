"""Fuzz `forgetbench validate` with well-formed but dishonest entries (issue 11), made from the shipped
reference entries: every mutation keeps the files schema-valid and recomputes the aggregates from the
edited items ("reseal"), so only the integrity and trust checks can catch it.

Counts per kind: cases, tracebacks (an exception or an "internal error" problem), wrong acceptances
(a dishonest entry validated OK; "stale" is the honest word for rows on a data hash the registry does
not accept, and counts as caught), collateral (an honest reference entry no longer OK) and, for the
honest controls (edits that change nothing that matters), false rejections. Goal: 0 everywhere.

    python benchmarks/fuzz_dishonest.py [--cases 300] [--seed 0]
(also run by benchmarks/fuzz_validate.py)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import shutil
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run from a checkout without installing
SHIPPED = REPO / "submissions"


def _sha(entry: Path) -> str:
    return hashlib.sha256((entry / "results.json").read_bytes()).hexdigest()


def reseal(res: dict) -> None:
    """Recompute every aggregate and mean_drop of `res` from its (edited) items, as an honest export would."""
    from forgetbench.leaderboard import recompute
    from forgetbench.tasks import registry

    tasks = registry.all_tasks()
    if hasattr(recompute, "upgrade"):  # format 2: forgetbench.stats intervals
        probs, deltas = recompute.recompute(res, tasks)
        if deltas is None:
            raise ValueError(f"cannot reseal: {probs[:2]}")
        recompute.upgrade(res, deltas)
        return
    # format 1 (before forgetbench.stats): the paired bootstrap with the entry's own n_boot and seed
    from forgetbench.stats.paired import mean_drop, task_delta_with_reps

    def agg(d, is_sub=False):
        est = lambda e: {"value": e.value, "lo": e.lo, "hi": e.hi}  # noqa: E731
        out = {"n": d.n, "base": est(d.base), "tuned": est(d.tuned), "delta": est(d.delta),
               "forgotten": d.forgotten, "learned": d.learned}
        return {**out, "metric": d.metric} if is_sub else {**out, "sub": {k: agg(v, True) for k, v in d.sub.items()}}

    boot, deltas, reps = res["bootstrap"], [], []
    for t in res["tasks"]:
        d, r = task_delta_with_reps(recompute._spec(t, tasks[t["task"]]), t["role"], recompute._run(t, "base"),
                                    recompute._run(t, "tuned"), n_boot=boot["n_boot"], seed=boot["seed"])
        t["aggregate"] = agg(d)
        deltas.append(d)
        reps.append(r)
    md = mean_drop(deltas, reps)
    res["mean_drop"] = None if md is None else {"value": md.value, "lo": md.lo, "hi": md.hi}


def _task(rng, res, want=None):
    ts = [t for t in res["tasks"] if want is None or want(t)]
    return rng.choice(ts) if ts else None


def _key(t) -> str:
    return t["primary_metric"] if "," in t["primary_metric"] else t["primary_metric"] + ",none"


# Each mutation edits (md, res) in place and returns what the entry must become: "invalid", or
# "caught" (invalid or stale). Those with a trailing "!" need the results resealed afterwards.
def m_cherry_pick(rng, md, res, ctx):
    t = _task(rng, res, lambda t: len(t["items"]) > 4)
    k = rng.randint(1, max(1, len(t["items"]) // 5))
    drop = set(rng.sample(range(len(t["items"])), k))
    t["items"] = [it for j, it in enumerate(t["items"]) if j not in drop]
    return "invalid!"


def m_duplicate_item(rng, md, res, ctx):
    t = _task(rng, res)
    it = json.loads(json.dumps(rng.choice(t["items"])))
    it["doc_id"] = max(i["doc_id"] for i in t["items"]) + 1
    t["items"].append(it)
    return "invalid!"


def m_swap_row(rng, md, res, ctx):
    t = _task(rng, res)
    it = rng.choice(t["items"])
    it["doc_hash"] = hashlib.sha256(rng.randbytes(8)).hexdigest()[:32]
    return "invalid!"


def m_change_stratum(rng, md, res, ctx):
    t = _task(rng, res, lambda t: t["items"][0]["stratum"] is not None)
    if t is None:
        return m_swap_row(rng, md, res, ctx)
    it = rng.choice(t["items"])
    it["stratum"] = "safe" if it["stratum"] == "harmful" else "harmful"
    return "invalid!"


def m_drop_probe(rng, md, res, ctx):
    t = _task(rng, res, lambda t: t["role"] == "probe")
    res["tasks"].remove(t)
    how = rng.choice(["leave", "settings", "suite-null"])
    if how != "leave":
        res["pair"]["settings"]["tasks"] = [n for n in res["pair"]["settings"]["tasks"] if n != t["task"]]
    if how == "suite-null":
        res["pair"]["settings"]["suite"] = None
    return "invalid!"


def m_score_range(rng, md, res, ctx):
    t = _task(rng, res)
    it = rng.choice(t["items"])
    side = rng.choice(["base", "tuned"])
    v = rng.choice([2.0, -1.0, 0.5, 1e6, 0.999])
    it[side]["score"] = it[side]["metrics"][_key(t)] = v
    return "invalid!"


def m_metric_range(rng, md, res, ctx):
    t = _task(rng, res, lambda t: len(t["items"][0]["base"]["metrics"]) > 1)
    it = rng.choice(t["items"])
    k = rng.choice([k for k in it["base"]["metrics"] if k != _key(t)])
    it["base"]["metrics"][k] = rng.choice([1.5, -0.25, 7.0]) if not k.endswith("__n") else rng.choice([0.0, 2.5, -3.0])
    return "invalid!"


def m_interval_settings(rng, md, res, ctx):
    if "bootstrap" in res and rng.random() < 0.5:
        res["bootstrap"][rng.choice(["n_boot", "seed"])] = rng.choice([1, 7, 500])
    elif res["kl"] is not None:
        res["kl"]["settings"][rng.choice(["n_boot", "boot_seed"])] = rng.choice([1, 7, 500])
    return "invalid"


def m_negative_kl(rng, md, res, ctx):
    it = rng.choice(res["kl"]["items"])
    it[rng.choice(["fwd", "rev", "tv"])] = -rng.random()
    return "invalid"


def m_self_reference(rng, md, res, ctx):
    md["reference"] = True
    return "invalid"


def m_dtype_claim(rng, md, res, ctx):
    # another dtype than the runs': the shipped entries' own dtype would be an honest claim
    res["pair"]["settings"]["dtype"] = rng.choice([d for d in ("bfloat16", "float32", "float16")
                                                   if d != res["pair"]["settings"]["dtype"]])
    return "invalid"


def m_relabel_copy(rng, md, res, ctx):
    ctx["tuned"] = hashlib.sha256(rng.randbytes(8)).hexdigest()  # another model, the same results
    return "invalid"


def m_same_pair_copy(rng, md, res, ctx):
    ctx["tuned"] = None  # the very pair of the source entry, under another id
    return "invalid"


def m_surrogate(rng, md, res, ctx):
    ctx["surrogate"] = rng.choice(["title", "notes", "response", "prompt", "hyperparameter key"])
    return "invalid"


def m_base_scores(rng, md, res, ctx):
    t = _task(rng, res)
    for it in rng.sample(t["items"], rng.randint(1, 3)):
        it["base"]["score"] = it["base"]["metrics"][_key(t)] = 1.0 - it["base"]["score"]
    ctx["verify_source"] = True  # the source entry is verified, hence the canonical base run
    return "invalid!"


def m_other_data_hash(rng, md, res, ctx):
    t = _task(rng, res)
    t["data_hash"] = hashlib.sha256(rng.randbytes(8)).hexdigest()
    if rng.random() < 0.5:
        t["items"] = t["items"][: len(t["items"]) // 2]
    return "caught!"


DISHONEST = [m_cherry_pick, m_duplicate_item, m_swap_row, m_change_stratum, m_drop_probe, m_score_range,
             m_metric_range, m_interval_settings, m_negative_kl, m_self_reference, m_dtype_claim, m_relabel_copy,
             m_same_pair_copy, m_surrogate, m_base_scores, m_other_data_hash]


# Honest controls: must stay OK.
def h_shuffle_items(rng, md, res, ctx):
    for t in res["tasks"]:
        rng.shuffle(t["items"])
    return "ok"


def h_reorder_tasks(rng, md, res, ctx):
    rng.shuffle(res["tasks"])
    return "ok!"


def h_free_text(rng, md, res, ctx):
    md["title"] = rng.choice(["Ünïcode ✓ title", "<b>bold</b> & more", "emoji 🚀"])
    md["notes"] = rng.choice([None, "x" * 500, "multi\nline"])
    return "ok"


HONEST = [h_shuffle_items, h_reorder_tasks, h_free_text]


def _write_surrogate(entry: Path, where: str) -> None:
    if where in ("title", "notes", "hyperparameter key"):
        md = yaml.safe_load((entry / "metadata.yaml").read_text())
        if where == "hyperparameter key":
            md["hyperparameters"]["PLACEHOLDER"] = 1
        else:
            md[where] = "PLACEHOLDER"
        text = yaml.safe_dump(md, sort_keys=False).replace("PLACEHOLDER", '"x \\udc80 y"')
        (entry / "metadata.yaml").write_text(text)
    else:
        res = json.loads((entry / "results.json").read_text())
        it = res["tasks"][0]["items"][0]
        if where == "response":
            it["tuned"]["response"] = "PLACEHOLDER"
        else:
            it["prompt"] = "PLACEHOLDER"
        (entry / "results.json").write_text(json.dumps(res).replace("PLACEHOLDER", "x \\ud800 y"))


def make_case(rng, root: Path, mutation) -> str:
    """Derive one entry ("case") from a random shipped one in `root`; return the expected outcome."""
    refs = sorted(p.name for p in root.glob("reference-*"))
    source = rng.choice(refs)
    entry = root / "case"
    shutil.copytree(root / source, entry)
    md = yaml.safe_load((entry / "metadata.yaml").read_text())
    res = json.loads((entry / "results.json").read_text())
    md["id"], md["reference"] = "case", False
    ctx = {"tuned": hashlib.sha256(rng.randbytes(8)).hexdigest()}
    expect = mutation(rng, md, res, ctx)
    if ctx["tuned"] is not None:
        md["tuned"]["content_hash"] = res["pair"]["tuned_hash"] = ctx["tuned"]
        if mutation is not m_relabel_copy:  # another model has other outputs: else every case is also a copy
            res["tasks"][-1]["items"][-1]["tuned"]["response"] += f" [{ctx['tuned'][:8]}]"
    if expect.endswith("!"):
        try:
            reseal(res)
        except ValueError:  # an edit recomputation itself refuses (e.g. an instruction count of -3):
            pass  # no honest export could seal it, so it goes in as edited; validate must still reject it
    (entry / "metadata.yaml").write_text(yaml.safe_dump(md, sort_keys=False, allow_unicode=True))
    (entry / "results.json").write_text(json.dumps(res))
    if "surrogate" in ctx:
        _write_surrogate(entry, ctx["surrogate"])
    if ctx.get("verify_source"):
        (root / "verified.yaml").write_text(f"- id: {source}\n  sha256: {_sha(root / source)}\n")
    return expect.rstrip("!")


def run(n: int, seed: int, work: Path) -> tuple[Counter, Counter, Counter, Counter, list[str]]:
    """(cases, tracebacks, wrong outcomes, collateral per kind, samples)."""
    from forgetbench.leaderboard.validate import INVALID, OK, STALE, validate_entries

    rng = random.Random(seed)
    cases, tbs, wrong, collateral, samples = Counter(), Counter(), Counter(), Counter(), []
    kinds = DISHONEST * 3 + HONEST  # mostly dishonest, a few honest controls
    for i in range(n):
        mutation = kinds[i % len(kinds)] if i < len(kinds) else rng.choice(kinds)
        kind = mutation.__name__[2:]
        root = work / f"d{i:05d}"
        root.mkdir(parents=True)
        for p in SHIPPED.glob("reference-*"):
            shutil.copytree(p, root / p.name)
        for f in ("reference.yaml", "verified.yaml"):
            shutil.copy(SHIPPED / f, root / f)
        cases[kind] += 1
        try:
            expect = make_case(rng, root, mutation)
            reports = {r.entry: r for r in validate_entries([root], root=root)}
            internal = [p for r in reports.values() for p in r.errors if p.problem.startswith("internal error")]
            if internal:
                tbs[kind] += 1
                samples.append(f"{kind}: {internal[0]}")
            got = reports["case"].status
            ok = {"ok": got == OK, "invalid": got == INVALID, "caught": got in (INVALID, STALE)}[expect]
            if not ok:
                wrong[kind] += 1
                samples.append(f"{kind}: expected {expect}, got {got}: {[str(p) for p in reports['case'].errors][:2]}")
            if any(r.status != OK for name, r in reports.items() if name != "case"):
                collateral[kind] += 1
                bad = [(n, [str(p) for p in r.errors][:1]) for n, r in reports.items() if n != "case" and r.status != OK]
                samples.append(f"{kind}: collateral {bad[:1]}")
        except Exception:  # noqa: BLE001 - counting exactly these is the point
            tbs[kind] += 1
            samples.append(f"{kind}:\n{traceback.format_exc()}")
        shutil.rmtree(root, ignore_errors=True)
    return cases, tbs, wrong, collateral, samples


def report(cases, tbs, wrong, collateral, samples, seconds: float) -> str:
    honest = {m.__name__[2:] for m in HONEST}
    lines = [f"{sum(cases.values())} dishonest/honest cases: {sum(tbs.values())} tracebacks, "
             f"{sum(v for k, v in wrong.items() if k not in honest)} wrong acceptances, "
             f"{sum(v for k, v in wrong.items() if k in honest)} false rejections, {sum(collateral.values())} collateral"
             f" ({seconds:.1f} s)",
             f"{'kind':<22}{'cases':>7}{'tracebacks':>12}{'wrong':>7}{'collateral':>12}"]
    for k in sorted(cases):
        label = f"{k} (honest)" if k in honest else k
        lines.append(f"{label:<22}{cases[k]:>7}{tbs[k]:>12}{wrong[k]:>7}{collateral[k]:>12}")
    lines += ["", *samples[:5]]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="fb_dishonest_") as tmp:
        t0 = time.time()
        res = run(args.cases, args.seed, Path(tmp))
        print(report(*res, time.time() - t0))
    return 1 if sum(res[1].values()) + sum(res[2].values()) + sum(res[3].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
