"""`forgetbench export`: a stored pair -> results.json + metadata template (submission format v2)."""

import argparse
import json
from pathlib import Path

import pytest
import yaml

from forgetbench.leaderboard import export
from forgetbench import stats
from forgetbench.errors import UserError
from forgetbench.kl.estimate import KLItems, summarize
from forgetbench.store import Store
from forgetbench.leaderboard.validate import INVALID, OK, validate_entries
from support import load_benchmark

# entries here are built from hand-written fixture rows, not the registered datasets
pytestmark = pytest.mark.usefixtures("registry_without_data_hashes")

fuzz = load_benchmark("fuzz_validate")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """(store path, base spec, tuned spec) after a real fake-backend `forgetbench eval` with --target."""
    work = tmp_path_factory.mktemp("export_build")
    fuzz.build_valid_entry(work, "built")
    return work / "store.duckdb", f"fake:{work / 'base.json'}", f"fake:{work / 'tuned.json'}"


def _fill(entry: Path, **extra) -> None:
    md = yaml.safe_load((entry / "metadata.yaml").read_text())
    md.update(fuzz.FILLED, **extra)
    (entry / "metadata.yaml").write_text(yaml.safe_dump(md))


def test_results_carry_the_stored_items_and_aggregates(store, tmp_path):
    db, base, tuned = store
    out = tmp_path / "subs" / "my-entry"
    res = export.export_entry(db, out, base=base, tuned=tuned)
    assert res.entry_id == "my-entry" and res.wrote_metadata
    r = json.loads((out / "results.json").read_text())
    assert (r["format"], r["format_version"]) == ("forgetbench-results", 2)
    assert r["intervals"] == stats.settings() and "bootstrap" not in r and r["kl"] is None
    assert [t["task"] for t in r["tasks"]][0] == "countdown"  # the target first, as in the report
    roles = {t["task"]: t["role"] for t in r["tasks"]}
    assert roles.pop("countdown") == "target" and set(roles.values()) == {"probe"}
    assert {"gsm8k", "safety", "ifeval"} <= set(roles)
    with Store(db, read_only=True) as s:
        pair = s.con.execute("SELECT pair_id, report FROM pairs").fetchall()
        assert len(pair) == 1 and pair[0][0] == res.pair_id
        report = json.loads(pair[0][1])
        rows = s.con.execute(
            "SELECT r.model_hash, i.doc_hash, i.score FROM items i JOIN runs r USING (run_id) WHERE r.task = 'gsm8k'"
        ).fetchall()
    gsm = next(t for t in r["tasks"] if t["task"] == "gsm8k")
    stored = {(h, d): sc for h, d, sc in rows}
    for it in gsm["items"]:
        assert it["base"]["score"] == stored[(r["pair"]["base_hash"], it["doc_hash"])]
        assert it["tuned"]["score"] == stored[(r["pair"]["tuned_hash"], it["doc_hash"])]
    # The base model answers all three gsm8k rows, the tuned one only the first.
    assert [it["base"]["score"] for it in gsm["items"]] == [1.0, 1.0, 1.0]
    assert sorted(it["tuned"]["score"] for it in gsm["items"]) == [0.0, 0.0, 1.0]
    want = next(d for d in report["deltas"] if d["task"] == "gsm8k")
    assert gsm["aggregate"]["delta"] == want["delta"] and gsm["aggregate"]["delta"]["value"] == pytest.approx(2 / 3)
    # eval's table/JSON, the store and the export agree to the bit, methods and tests included
    for k in ("base", "tuned", "p_mcnemar", "p_holm", "verdict", "forgotten", "learned"):
        assert gsm["aggregate"][k] == want[k], k
    assert gsm["aggregate"]["delta"]["method"] == "tango" and gsm["aggregate"]["base"]["method"] == "wilson"
    with Store(db, read_only=True) as s:
        row = s.con.execute("SELECT delta, delta_lo, delta_hi, delta_method, p_mcnemar, p_holm, verdict FROM pair_tasks"
                            " WHERE task = 'gsm8k' AND metric = ?", [want["metric"]]).fetchone()
        md_row = s.con.execute("SELECT mean_drop, mean_drop_lo, mean_drop_hi, mean_drop_method FROM pairs").fetchone()
    d = gsm["aggregate"]
    assert row == (d["delta"]["value"], d["delta"]["lo"], d["delta"]["hi"], "tango", d["p_mcnemar"], d["p_holm"], d["verdict"])
    assert md_row == tuple(r["mean_drop"][k] for k in ("value", "lo", "hi", "method"))
    safety = next(t for t in r["tasks"] if t["task"] == "safety")
    assert set(safety["aggregate"]["sub"]) == {"kind=harmful", "kind=safe", "refused,none"}
    assert r["mean_drop"] == report["mean_drop"]
    assert "run_ids" not in r["pair"]["settings"] and r["pair"]["settings"]["data_dir"] == "<local>"


def test_template_is_prefilled_and_never_overwritten(store, tmp_path):
    db, base, tuned = store
    out = tmp_path / "subs" / "tmpl-entry"
    export.export_entry(db, out, base=base, tuned=tuned)
    md = yaml.safe_load((out / "metadata.yaml").read_text())
    r = json.loads((out / "results.json").read_text())
    assert md["id"] == "tmpl-entry" and md["target"] == "countdown" and md["reference"] is False
    assert md["base"]["content_hash"] == r["pair"]["base_hash"]
    assert md["tuned"]["content_hash"] == r["pair"]["tuned_hash"]
    assert md["title"].startswith("TODO") and md["method"].startswith("TODO")
    # The template itself does not validate (TODOs), the filled-in one does.
    assert validate_entries([out])[0].status == INVALID
    _fill(out)
    mine = (out / "metadata.yaml").read_text()
    res = export.export_entry(db, out, base=base, tuned=tuned)
    assert not res.wrote_metadata and (out / "metadata.yaml").read_text() == mine
    assert validate_entries([out])[0].status == OK


def test_method_and_hyperparameters_come_from_the_training_recipe(store, tmp_path):
    db, base, tuned = store
    copy = tmp_path / "s.duckdb"
    copy.write_bytes(Path(db).read_bytes())
    model_dir = tmp_path / "tuned-model"
    model_dir.mkdir()
    (model_dir / "forgetbench_train.json").write_text(json.dumps(
        {"method": "sft", "hyperparameters": {"lr": 1e-4, "epochs": 2, "max_steps": None}, "n_examples": 150}))
    with Store(copy) as s:
        s.con.execute("UPDATE models SET path = ? WHERE spec = ?", [str(model_dir), tuned])
    out = tmp_path / "recipe-entry"
    export.export_entry(copy, out, base=base, tuned=tuned)
    md = yaml.safe_load((out / "metadata.yaml").read_text())
    assert md["method"] == "sft" and md["hyperparameters"] == {"lr": 1e-4, "epochs": 2}
    assert "150 examples" in md["training_data"] and md["compute"].startswith("TODO")

    # a full `forgetbench train` record also fills training data and compute
    (model_dir / "forgetbench_train.json").write_text(json.dumps(
        {"method": "rl", "hyperparameters": {"beta": 0.0}, "training_data": "lite_ifeval: 24 prompts",
         "wall_seconds": 61.5, "machine": {"cpus": 2}}))
    export.export_entry(copy, out, base=base, tuned=tuned, metadata={"title": "demo", "reference": True})
    md = yaml.safe_load((out / "metadata.yaml").read_text())
    assert md["method"] == "rl" and md["training_data"] == "lite_ifeval: 24 prompts"
    assert md["compute"] == "CPU, 2 cores, 61.5 s of training (forgetbench train)"
    assert md["title"] == "demo" and md["reference"] is True  # metadata= rewrites the file


def test_selection_errors_list_the_candidates(store, tmp_path):
    db, base, tuned = store
    with pytest.raises(UserError, match="no stored pair matches"):
        export.export_entry(db, tmp_path / "x-entry", pair_id="ffffffffff")
    with pytest.raises(UserError, match="matches no stored model") as e:
        export.export_entry(db, tmp_path / "x-entry", base="nope/model", tuned=tuned)
    assert base in str(e.value)  # the stored models are listed
    with pytest.raises(UserError, match="no stored pair"):
        export.export_entry(db, tmp_path / "x-entry", base=base, tuned=tuned, target="gsm8k")
    with pytest.raises(UserError, match="not valid"):
        export.export_entry(db, tmp_path / "Bad Name", base=base, tuned=tuned)
    with Store(db, read_only=True) as s:
        h = s.con.execute("SELECT model_hash FROM models WHERE spec = ?", [base]).fetchone()[0]
        pid = s.con.execute("SELECT pair_id FROM pairs").fetchone()[0]
    # A unique hash prefix and a pair id prefix both select.
    assert export.export_entry(db, tmp_path / "p1-entry", base=h[:8], tuned=tuned).pair_id == pid
    assert export.export_entry(db, tmp_path / "p2-entry", pair_id=pid[:6]).pair_id == pid
    assert not (tmp_path / "x-entry").exists()


def test_cli_main_reports_unknown_pair_as_user_error(store, tmp_path, capsys):
    ns = argparse.Namespace(db=store[0], pair="0000", base=None, tuned=None, target=None, out=tmp_path / "e-1", id=None)
    with pytest.raises(UserError):
        export.main(ns)
    ns.pair = None
    ns.base, ns.tuned = store[1], store[2]
    assert export.main(ns) == 0
    assert "template" in capsys.readouterr().out


def test_kl_rows_are_exported_and_recomputed(store, tmp_path):
    db, base, tuned = store
    copy = tmp_path / "kl.duckdb"
    copy.write_bytes(Path(db).read_bytes())
    fwd, rev, tv, ntok, pidx = (0.5, 0.1, 0.9, 0.3), (0.4, 0.2, 0.8, 0.1), (0.2, 0.1, 0.3, 0.1), (5, 3, 7, 2), (0, 0, 1, 1)
    est = summarize(KLItems(fwd, rev, tv, ntok, pidx))
    with Store(copy) as s:
        pid, bh, th = s.con.execute("SELECT pair_id, base_hash, tuned_hash FROM pairs").fetchone()
        for seq in range(4):
            s.con.execute("INSERT INTO kl_samples VALUES ('set1', ?, 'countdown', ?, '{}', ?, ?, 0, [1], [2])",
                          [bh, "0" * 64, seq, pidx[seq]])
            s.con.execute("INSERT INTO kl_items VALUES ('set1', ?, ?, ?, ?, ?, ?, ?)",
                          [th, seq, pidx[seq], ntok[seq], fwd[seq], rev[seq], tv[seq]])
        vals = [v for k in ("fwd_per_seq", "fwd_per_token", "rev_per_token", "tv_per_token")
                for v in (est[k].value, est[k].lo, est[k].hi)]
        s.con.execute("INSERT INTO pair_kl VALUES (?, 'countdown', 2, 2, 64, 0, 'bfloat16', 4, 17, "
                      + ", ".join("?" * 12) + ", '{}', now())", [pid, *vals])
    out = tmp_path / "kl-entry"
    export.export_entry(copy, out, pair_id=pid)
    _fill(out)
    r = json.loads((out / "results.json").read_text())
    assert r["kl"]["n_seq"] == 4 and r["kl"]["fwd_seq"]["value"] == pytest.approx(sum(fwd) / 4)
    assert [i["fwd"] for i in r["kl"]["items"]] == list(fwd)
    assert validate_entries([out])[0].status == OK
    r["kl"]["items"][0]["fwd"] = 5.0
    (out / "results.json").write_text(json.dumps(r))
    fields = {p.field for p in validate_entries([out])[0].errors}
    assert {"kl.fwd_seq.value", "kl.fwd_tok.value"} <= fields
