"""`forgetbench export`: one stored pair -> a leaderboard entry folder (submission format v2).

Writes DIR/results.json (everything the pair's numbers are made of: per-item base/tuned scores,
prompts, responses, the aggregates, the KL estimate and its per-sequence terms) and, only when
DIR/metadata.yaml does not exist yet, a metadata template pre-filled with what the store knows
(hashes, target, method/hyperparameters from the tuned model's forgetbench_train.json) and TODO
placeholders for the rest. The validator rejects an entry while TODOs remain.

The aggregates (intervals with their methods, flips, paired tests, mean drop) are recomputed from the
exported items by forgetbench.leaderboard.recompute, the code `forgetbench validate` checks them with, so an export
always validates; for a pair stored with the current interval scheme they equal what eval printed.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from forgetbench import stats
from forgetbench.errors import UserError
from forgetbench.paths import TRAIN_RECORD
from forgetbench.store import Store
from forgetbench.store.rows import RunHeader, StoredPair
from forgetbench.leaderboard.submission import (
    ENTRY_ID, FORMAT, FORMAT_VERSION, METADATA_FILE, RESULTS_FILE, SCHEMA_VERSION, methods,
)



@dataclass(frozen=True)
class ExportResult:
    out: Path
    entry_id: str
    pair_id: str
    wrote_metadata: bool  # False: an existing metadata.yaml was kept untouched
    warnings: tuple[str, ...] = ()


def find_model(store: Store, query: str, label: str) -> str:
    """Content hash of the stored model whose hash starts with `query` or whose spec equals it."""
    models = store.models()
    q = query.strip()
    hits = {m.model_hash for m in models if m.spec == q}
    if not hits and len(q) >= 4:
        hits = {m.model_hash for m in models if m.model_hash.startswith(q.lower())}
    if len(hits) == 1:
        return hits.pop()
    listing = "\n".join(f"  {m.model_hash[:16]}  {m.spec}" for m in models if not hits or m.model_hash in hits) or "  (none)"
    if hits:
        raise UserError(f"--{label} {query!r} is ambiguous; it matches:\n{listing}")
    raise UserError(f"--{label} {query!r} matches no stored model (give a content hash, a prefix of >= 4"
                    f" hex digits, or the spec as stored); stored models:\n{listing}")


def _describe(p: StoredPair) -> str:
    return (f"  {p.pair_id}  target={p.target}  limit={p.settings.get('limit')}  tasks={len(p.settings.get('tasks') or [])}"
            f"  {p.created_at:%Y-%m-%d %H:%M}")


def select_pair(store: Store, pair_id: str | None, base: str | None, tuned: str | None,
                target: str | None) -> StoredPair:
    if pair_id:
        rows = store.pairs_by_prefix(pair_id)
        what = f"--pair {pair_id}"
    else:
        if not (base and tuned):
            raise UserError("give --pair PAIR_ID, or both --base and --tuned")
        b, t = find_model(store, base, "base"), find_model(store, tuned, "tuned")
        rows = store.pairs_of(b, t, target)
        what = f"base {b[:12]} / tuned {t[:12]}" + (f" / target {target}" if target else "")
    if len(rows) == 1:
        return rows[0]
    if not rows:
        listing = "\n".join(map(_describe, store.recent_pairs(20))) or "  (the store has no pairs; run forgetbench eval first)"
        raise UserError(f"{what}: no stored pair matches; stored pairs:\n{listing}")
    raise UserError(f"{what} matches {len(rows)} pairs; choose one with --pair:\n" + "\n".join(map(_describe, rows)))


def _run(store: Store, run_ids: list[str], model_hash: str, task: str) -> RunHeader:
    rows = store.run_headers(run_ids, model_hash, task)
    if len(rows) != 1:
        raise UserError(f"task {task}: expected one stored run of model {model_hash[:12]} among the pair's runs,"
                        f" found {len(rows)} (the store is incomplete; rerun forgetbench eval)")
    return rows[0]


def _task(store: Store, delta: dict, settings: dict, base_hash: str, tuned_hash: str) -> dict:
    run_ids = list(settings.get("run_ids") or [])
    b = _run(store, run_ids, base_hash, delta["task"])
    t = _run(store, run_ids, tuned_hash, delta["task"])
    bi, ti = store.items_by_doc_hash(b.run_id), store.items_by_doc_hash(t.run_id)
    if [i.doc_hash for i in bi] != [i.doc_hash for i in ti]:
        raise UserError(f"task {delta['task']}: the base and tuned runs scored different rows")
    # Paired exactly as forgetbench.stats.paired pairs them: by doc_hash, duplicate rows in doc_id order.
    items = [
        {"doc_id": x.doc_id, "doc_hash": x.doc_hash, "cluster": x.cluster, "stratum": x.stratum,
         "base": {"score": x.score, "metrics": x.metrics, "response": x.response},
         "tuned": {"score": y.score, "metrics": y.metrics, "response": y.response},
         "prompt": x.prompt}
        for x, y in zip(bi, ti)
    ]
    items.sort(key=lambda i: i["doc_id"])
    out = {"task": delta["task"], "version": b.task_version, "role": delta["role"], "primary_metric": delta["metric"],
           "data_hash": b.data_hash, "gen_key": b.gen_key, "gen_settings": b.gen_settings}
    if t.gen_key != b.gen_key:  # e.g. only the tuned model has a chat template
        out.update(tuned_gen_key=t.gen_key, tuned_gen_settings=t.gen_settings)
    # The aggregate is recomputed from these items (_aggregates); its sub names say which extra metrics
    # and strata the pair reported.
    return {**out, "aggregate": {"sub": {k: None for k in delta.get("sub") or {}}}, "items": items}


def _kl(store: Store, pair_id: str, base_hash: str, tuned_hash: str, warnings: list[str]) -> dict | None:
    row = store.pair_kl(pair_id)
    if row is None:
        return None
    extra = row.settings
    # The sample set: named in pair_kl.settings when the writer records it, else the only set drawn
    # from this base on this task that has KL terms for this tuned model.
    sets = [extra["sample_set"]] if extra.get("sample_set") else store.kl_sample_sets(base_hash, row.task, tuned_hash)
    items = store.kl_items(sets[0], tuned_hash) if len(sets) == 1 else []
    if not items:
        warnings.append(f"pair_kl has a KL row for this pair but its per-sequence terms were not found unambiguously"
                        f" ({len(sets)} candidate sample sets); exported kl: null")
        return None
    est = lambda c: dict(zip(("value", "lo", "hi"), row.estimates[c]))  # noqa: E731
    settings = {"m_prompts": row.m_prompts, "k_samples": row.k_samples, "max_new_tokens": row.max_new_tokens,
                "seed": row.seed, "dtype": row.dtype}
    for src, dst in (("n_boot", "n_boot"), ("boot_seed", "boot_seed")):
        if extra.get(src) is not None:
            settings[dst] = extra[src]
    return {"task": row.task, "settings": settings, "n_seq": row.n_seq, "n_tokens": row.n_tokens,
            **{c: est(c) for c in ("fwd_seq", "fwd_tok", "rev_tok", "tv_tok")},
            "items": [asdict(i) for i in items]}


def _aggregates(res: dict, report_settings: dict, warnings: list[str]) -> None:
    """Fill the aggregates and mean_drop of `res` from its items (forgetbench.leaderboard.recompute)."""
    from forgetbench.tasks import registry
    from forgetbench.leaderboard.recompute import recompute, upgrade

    problems, deltas = recompute(res, registry.all_tasks())
    if deltas is None:
        why = "; ".join(str(p) for p in problems) or "a task is not in the registry"
        raise UserError(f"cannot export this pair: its aggregates cannot be recomputed from the stored items ({why})")
    upgrade(res, deltas)
    scheme = (report_settings.get("intervals") or {}).get("scheme")
    if scheme != stats.SCHEME:
        warnings.append(f"the stored pair's intervals were made by {scheme or 'the percentile bootstrap'}; results.json"
                        f" has them recomputed from the items with {stats.SCHEME}")


def build_results(store: Store, pair: StoredPair, warnings: list[str]) -> dict:
    settings, report = pair.settings, pair.report
    specs = {m.model_hash: m.spec for m in store.models()}
    public = {k: v for k, v in settings.items() if k not in ("run_ids", "versions", "bootstrap", "intervals")}
    if public.get("data_dir"):
        public["data_dir"] = "<local>"  # a path on the exporter's machine says nothing to readers
    res = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": settings.get("versions") or {},
        "seed": settings.get("seed"),
        "pair": {"base_hash": pair.base_hash, "tuned_hash": pair.tuned_hash, "base_spec": specs.get(pair.base_hash, ""),
                 "tuned_spec": specs.get(pair.tuned_hash, ""), "target": pair.target, "settings": public},
        "intervals": stats.settings(),
        "tasks": [_task(store, d, settings, pair.base_hash, pair.tuned_hash) for d in report["deltas"]],
        "mean_drop": None,
        "kl": _kl(store, pair.pair_id, pair.base_hash, pair.tuned_hash, warnings),
    }
    _aggregates(res, settings, warnings)
    return res


def _model_meta(store: Store, model_hash: str) -> tuple[dict, dict]:
    """({hub_id, revision, content_hash}, training recipe or {}) for the metadata template."""
    for m in store.models():
        if m.model_hash != model_hash:
            continue
        hub = m.meta.get("source") if m.kind == "hub" else None
        recipe = {}
        for d in (m.path, m.meta.get("source")):
            f = Path(d) / TRAIN_RECORD if d else None
            if f is not None and f.is_file():
                try:
                    recipe = json.loads(f.read_text())
                except (OSError, ValueError):
                    pass
                break
        return {"hub_id": hub, "revision": m.revision or m.meta.get("commit"), "content_hash": m.model_hash}, recipe
    return {"hub_id": None, "revision": None, "content_hash": model_hash}, {}


def metadata_fields(store: Store, entry_id: str, results: dict) -> dict:
    """The metadata.yaml fields, pre-filled from what the store and the tuned model's
    forgetbench_train.json know (method, hyperparameters, training data, compute); TODO elsewhere."""
    p = results["pair"]
    base, _ = _model_meta(store, p["base_hash"])
    tuned, recipe = _model_meta(store, p["tuned_hash"])
    hp = {k: v for k, v in (recipe.get("hyperparameters") or {}).items() if isinstance(v, (str, int, float, bool))}
    machine = recipe.get("machine") or {}
    compute = (f"CPU, {machine['cpus']} cores, {recipe['wall_seconds']} s of training (forgetbench train)"
               if machine.get("cpus") and recipe.get("wall_seconds") is not None else "TODO: e.g. 1x A100 2h")
    n = f" ({recipe['n_examples']} examples)" if recipe.get("n_examples") else ""
    return {
        "schema_version": SCHEMA_VERSION,
        "id": entry_id,
        "title": "TODO: short human title, e.g. SmolLM2-135M SFT on countdown",
        "base": base,
        "tuned": tuned,
        "method": recipe.get("method") or f"TODO: {' | '.join(methods())}",
        "target": p["target"],
        "training_data": recipe.get("training_data") or f"TODO: dataset id or description{n}",
        "hyperparameters": hp,
        "compute": compute,
        "contact": "TODO: email or GitHub handle",
        "licence": "TODO: SPDX id, e.g. Apache-2.0",
        "reference": False,
        "notes": None,
    }


def render_metadata(fields: dict) -> str:
    """YAML with one field per line; values are JSON (YAML flow style), so no quoting surprises."""
    lines = [f"# forgetbench submission metadata (format v{SCHEMA_VERSION}); see submissions/README.md.",
             "# Replace every TODO; `forgetbench validate` rejects the entry while any remain."]
    lines += [f"{k}: {json.dumps(v, ensure_ascii=False)}" for k, v in fields.items()]
    return "\n".join(lines) + "\n"


def metadata_template(store: Store, entry_id: str, results: dict) -> str:
    return render_metadata(metadata_fields(store, entry_id, results))


def export_entry(db: Path, out: Path, *, pair_id: str | None = None, base: str | None = None,
                 tuned: str | None = None, target: str | None = None, entry_id: str | None = None,
                 metadata: dict | None = None) -> ExportResult:
    """`metadata`: fields that override the template's; the file is then (re)written even if it exists
    (for programs that own the entry, like `forgetbench demo`); without it an existing file is kept."""
    out = Path(out)
    entry_id = entry_id or out.name
    if not ENTRY_ID.fullmatch(entry_id):
        raise UserError(f"entry id {entry_id!r} is not valid ([a-z0-9][a-z0-9._-]{{2,80}}); name the --out folder"
                        " accordingly or pass --id")
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a folder")
    warnings: list[str] = []
    with Store(db, read_only=True) as store:
        pair = select_pair(store, pair_id, base, tuned, target)
        results = build_results(store, pair, warnings)
        if results["pair"]["target"] is None:
            warnings.append("the pair has no target (evaluated without --target); leaderboard entries need one")
        md = out / METADATA_FILE
        template = None
        if metadata is not None:
            template = render_metadata({**metadata_fields(store, entry_id, results), **metadata})
        elif not md.exists():
            template = metadata_template(store, entry_id, results)
    if out.name != entry_id:
        warnings.append(f"the folder is named {out.name!r} but the id is {entry_id!r}; submit it as submissions/{entry_id}/")
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / (RESULTS_FILE + ".tmp")
    tmp.write_text(json.dumps(results, ensure_ascii=False, separators=(",", ":"), allow_nan=False) + "\n", encoding="utf-8")
    tmp.replace(out / RESULTS_FILE)
    if metadata is not None:
        tmp_md = out / (METADATA_FILE + ".tmp")
        tmp_md.write_text(template, encoding="utf-8")
        tmp_md.replace(md)
    elif template is not None:
        with open(md, "x", encoding="utf-8") as f:  # "x": never clobber a submitter's file
            f.write(template)
    return ExportResult(out, entry_id, pair.pair_id, template is not None, tuple(warnings))


def main(args) -> int:
    if args.pair and (args.base or args.tuned):
        raise UserError("give either --pair or --base/--tuned, not both")
    res = export_entry(args.db, args.out, pair_id=args.pair, base=args.base, tuned=args.tuned, target=args.target,
                       entry_id=args.id)
    for w in res.warnings:
        print(f"forgetbench: warning: {w}", file=sys.stderr)
    print(f"wrote {res.out / RESULTS_FILE} (pair {res.pair_id})")
    print(f"wrote {res.out / METADATA_FILE} (template: fill in the TODOs)" if res.wrote_metadata
          else f"kept the existing {res.out / METADATA_FILE}")
    return 0
