"""The committed submissions/ folder: every entry validates against the live registry (the reference
entries recompute exactly from their items), and reference entries are labelled as such."""


from forgetbench.leaderboard.validate import INVALID, validate_entries
from support import REPO

ROOT = REPO / "submissions"


def test_committed_entries_validate():
    reports = validate_entries([ROOT])
    assert reports, "submissions/ should hold at least the reference entries"
    for r in reports:
        assert r.status != INVALID, (r.entry, r.errors)
    refs = [r for r in reports if "reference" in r.badges]
    assert refs, "the demo pairs are committed as reference entries"


def test_committed_entries_build_into_the_site(tmp_path):
    from forgetbench.leaderboard.build import build

    res = build(ROOT, tmp_path / "site")
    assert res.n_entries >= 3 and res.n_excluded == 0
    html = (tmp_path / "site" / "index.html").read_text()
    # a base without a hub id is labelled by its spec when that is a name (not a local path)
    assert "smollm2-135m-instruct" in html and "/tmp/" not in html
