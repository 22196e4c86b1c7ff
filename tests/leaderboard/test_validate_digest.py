"""validate_entries(digest=...): the leaderboard builder's table rows are made where each entry is
checked and the parsed results.json do not come back (10,000 of them would not fit in memory). The
reports must be the plain ones, the digest that of the (upgraded) parsed files, serial or pooled, and
the builder's tables the same as rows made in the calling process."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from forgetbench.leaderboard import build as leaderboard, tables, validate

from test_validate_parallel import subs  # noqa: F401 (fixture: 7 entries, one tampered, one unparsable)


def _digest(name, metadata, results, sha256):
    return name, sha256, metadata["id"], len(results["tasks"]), results["format_version"]


@pytest.mark.parametrize("min_entries", [10**9, 2], ids=["serial", "pool"])
def test_digest_replaces_the_parsed_results(subs, monkeypatch, min_entries):  # noqa: F811
    monkeypatch.setattr(validate, "PARALLEL_MIN_ENTRIES", min_entries)
    paths = sorted(d for d in subs.iterdir() if d.is_dir())
    plain = validate.validate_entries(paths, root=subs)
    digested = validate.validate_entries(paths, root=subs, digest=_digest)
    assert [r.to_json() for r in digested] == [r.to_json() for r in plain]
    assert [r.status for r in plain].count("invalid") == 2
    for p, d in zip(plain, digested):
        assert d.results is None and d.results_sha256 == p.results_sha256 and d.metadata == p.metadata
        want = None if p.status == "invalid" else _digest(p.entry, p.metadata, p.results, p.results_sha256)
        assert d.digest == want


def _tables(db: Path) -> dict[str, list]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return {t: con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall() for t in tables.COLUMNS}
    finally:
        con.close()


def _build_without_digest(monkeypatch, root, out) -> None:
    """A build whose validator returns the parsed files instead of digests (the builder makes the rows)."""
    real = validate.validate_entries

    def without_digest(*args, digest=None, **kw):
        return real(*args, **kw)

    monkeypatch.setattr(validate, "validate_entries", without_digest)
    leaderboard.build(root, out)


def test_rows_made_by_the_validator_equal_rows_made_here(subs, tmp_path, monkeypatch):  # noqa: F811
    """The default build takes its rows from the validator's digests; a validator that returns the parsed
    files instead (the builder then makes the rows itself) must give the same database."""
    monkeypatch.setattr(validate, "PARALLEL_MIN_ENTRIES", 2)
    leaderboard.build(subs, tmp_path / "a")
    _build_without_digest(monkeypatch, subs, tmp_path / "b")
    a, b = _tables(tmp_path / "a" / "leaderboard.duckdb"), _tables(tmp_path / "b" / "leaderboard.duckdb")
    assert a == b and len(a["entries"]) == 5 and len(a["excluded"]) == 2
    assert json.loads(dict(a["excluded"])["par-3"])  # the tampered entry is listed with its errors


def test_a_value_the_tables_cannot_hold_is_a_cannot_ingest_error(tmp_path):
    """table_rows reports a wrongly typed value instead of raising (it runs inside the validator)."""
    kind, why = tables.table_rows("x-1", {"base": "not a mapping"}, {"tasks": []}, "", {})
    assert (kind, why) == ("error", "metadata base/tuned must be mappings")


def test_rows_stored_before_the_cross_checks_leave_with_the_entry(subs, tmp_path, monkeypatch):  # noqa: F811
    """The builder stores an entry's task, KL and forgotten rows as its chunk comes back from a worker,
    before the cross-entry checks; an entry those checks reject (here a duplicate pair) must leave no
    row behind, and the tables must equal those of a build that made every row at the end."""
    import shutil

    import yaml

    root = tmp_path / "submissions"
    shutil.copytree(subs, root)
    shutil.copytree(root / "par-1", root / "par-9")  # same pair as par-1: the later entry is a duplicate
    md = yaml.safe_load((root / "par-9" / "metadata.yaml").read_text())
    (root / "par-9" / "metadata.yaml").write_text(yaml.safe_dump({**md, "id": "par-9"}, sort_keys=False))
    monkeypatch.setattr(validate, "PARALLEL_MIN_ENTRIES", 2)
    monkeypatch.setattr(tables, "BATCH_ROWS", 1)  # store every chunk's rows at once
    stored = []
    real_call = leaderboard.Streamed.__call__

    def spy(self, digest):
        stored.append(digest[1][0]["entry_id"])
        return real_call(self, digest)

    monkeypatch.setattr(leaderboard.Streamed, "__call__", spy)
    leaderboard.build(root, tmp_path / "a")
    assert "par-9" in stored  # its rows were stored before the duplicate was found
    monkeypatch.setattr(tables, "BATCH_ROWS", 10**9)
    _build_without_digest(monkeypatch, root, tmp_path / "b")
    a, b = _tables(tmp_path / "a" / "leaderboard.duckdb"), _tables(tmp_path / "b" / "leaderboard.duckdb")
    assert a == b
    assert "duplicate" in dict(a["excluded"])["par-9"]
    for t in ("entry_tasks", "entry_kl", "entry_forgotten"):
        ids = {r[0] for r in a[t]}
        assert "par-9" not in ids and "par-1" in ids
