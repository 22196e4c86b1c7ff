"""Checks across the entries of a submissions root (run in the calling process once every entry was checked
on its own): ids, duplicate pairs and copied results (the earlier entry stays), the maintainers' lists, and
base scores equal to the canonical run of the same base identity (forgetbench.leaderboard.trust)."""

from __future__ import annotations

from forgetbench.leaderboard.entry import CheckedEntry
from forgetbench.leaderboard.submission import RESULTS_FILE, Problem
from forgetbench.leaderboard.trust import Trust


def base_scores(run: str) -> dict[int, tuple[str, float]]:
    """{doc_id: (doc_hash, base score)} of one task of base_runs (a repeated doc_id: the last one)."""
    out = {}
    for line in run.split("\n"):
        doc_id, doc_hash, score = line.split("\x1f")
        out[int(doc_id)] = (doc_hash, float(score))
    return out


def check_canonical(e: CheckedEntry, canon: CheckedEntry) -> None:
    by_key = dict(canon.base_runs)
    for i, (key, run) in enumerate(e.base_runs):
        c = by_key.get(key)
        if c is None:
            continue
        mine, theirs = base_scores(run), base_scores(c)
        differ = sum(mine.get(k) != theirs.get(k) for k in set(mine) | set(theirs))
        if differ:
            e.errors.append(Problem(RESULTS_FILE, f"tasks[{i}].items", f"base scores on task {key[0]} differ from"
                                    f" the canonical entry {canon.id!r} for this base model on {differ} of"
                                    f" {len(theirs)} items (same base settings, task version, data and generation"
                                    " settings)"))


def cross_checks(targets: list[CheckedEntry], universe: list[CheckedEntry], trust: Trust) -> None:
    """Ids, duplicates and copies (the earlier entry stays), maintainers' lists, canonical base scores."""
    by_id: dict[str, list[CheckedEntry]] = {}
    for u in universe:
        by_id.setdefault(u.id, []).append(u)
    ok = lambda u: u.metadata is not None and u.key is not None  # noqa: E731
    # The earliest entry of each pair key and of each tuned fingerprint (precedence: forgetbench.leaderboard.trust).
    first_key: dict[tuple, CheckedEntry] = {}
    first_print: dict[str, CheckedEntry] = {}
    for u in sorted((u for u in universe if u.key is not None), key=trust.precedence):
        first_key.setdefault(u.key, u)
        first_print.setdefault(u.fingerprint, u)
    canonical = trust.canonical((u for u in universe if ok(u)), identity=lambda u: u.identity)
    for e in targets:
        others = [u for u in by_id.get(e.id, []) if u is not e]
        if others:
            e.errors.append(Problem(e.path.name, "id", f"id {e.id!r} is also used by {others[0].path}"))
        if e.key is not None and first_key[e.key] is not e:
            earlier = first_key[e.key]
            e.errors.append(Problem(RESULTS_FILE, "pair", f"duplicate: entry {earlier.id!r} came first with the same"
                                    " base, tuned model and target (the earlier entry stays; see submissions/README.md,"
                                    " Trust)"))
        elif e.fingerprint is not None and first_print[e.fingerprint] is not e:
            earlier = first_print[e.fingerprint]
            e.errors.append(Problem(RESULTS_FILE, "tasks", f"copy: the tuned model's per-item results are identical to"
                                    f" those of entry {earlier.id!r}, which came first with another tuned hash (the"
                                    " earlier entry stays)"))
        e.errors += trust.list_problems(e)
        if not ok(e):
            continue
        canon = canonical.get(e.identity)
        if canon is not None and canon is not e:
            check_canonical(e, canon)
