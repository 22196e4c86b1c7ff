"""The committed submissions/ folder: every entry validates against the live registry (the reference
entries recompute exactly from their items), and reference entries are labelled as such."""

from pathlib import Path

from forgetbench.validate import INVALID, validate_entries

ROOT = Path(__file__).resolve().parent.parent / "submissions"


def test_committed_entries_validate():
    reports = validate_entries([ROOT])
    assert reports, "submissions/ should hold at least the reference entries"
    for r in reports:
        assert r.status != INVALID, (r.entry, r.errors)
    refs = [r for r in reports if "reference" in r.badges]
    assert refs, "the demo pairs are committed as reference entries"
