"""Bad input: a clear one-line message, a non-zero exit, and stored results left intact."""

import json

import pytest

from forgetbench import cli
from support import FIXTURES



def _run(capsys, *args):
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def fake(tmp_path):
    p = tmp_path / "m.json"
    p.write_text(json.dumps({"name": "m", "default_response": "The answer is 8."}))
    return f"fake:{p}"


def test_missing_checkpoint(tmp_path, capsys, fb_home, fake):
    code, _, err = _run(capsys, "eval", tmp_path / "nope", fake, "--db", tmp_path / "s.duckdb")
    assert code == 2 and "nope" in err and "Traceback" not in err


def test_unknown_task(tmp_path, capsys, fb_home, fake):
    code, _, err = _run(capsys, "eval", fake, fake, "--tasks", "gsm9k", "--db", tmp_path / "s.duckdb")
    assert code == 2 and "unknown task 'gsm9k'" in err and "gsm8k" in err


def test_target_must_be_a_target(tmp_path, capsys, fb_home, fake):
    code, _, err = _run(capsys, "eval", fake, fake, "--target", "gsm8k", "--db", tmp_path / "s.duckdb")
    assert code == 2 and "not a target" in err


def test_corrupt_db_is_refused_and_kept(tmp_path, capsys, fb_home, fake):
    db = tmp_path / "s.duckdb"
    db.write_bytes(b"\x00garbage" * 64)
    code, _, err = _run(capsys, "eval", fake, fake, "--tasks", "gsm8k", "--data-dir", FIXTURES, "--db", db)
    assert code == 2 and "not a DuckDB file" in err
    assert db.read_bytes() == b"\x00garbage" * 64


def test_fake_against_real_model_is_mismatched(tmp_path, capsys, fb_home, fake, tiny_model_dir):
    code, _, err = _run(capsys, "eval", fake, tiny_model_dir, "--tasks", "gsm8k", "--data-dir", FIXTURES,
                        "--db", tmp_path / "s.duckdb")
    assert code == 2 and "mismatched inputs" in err


def test_missing_data_dir(tmp_path, capsys, fb_home, fake):
    code, _, err = _run(capsys, "eval", fake, fake, "--data-dir", tmp_path / "nodata", "--db", tmp_path / "s.duckdb")
    assert code == 2 and "not a directory" in err


def test_bad_limit(tmp_path, capsys, fb_home, fake):
    code, _, err = _run(capsys, "eval", fake, fake, "--limit", "0", "--db", tmp_path / "s.duckdb")
    assert code == 2 and "--limit" in err


def test_tasks_lists_registry(capsys):
    code, out, _ = _run(capsys, "tasks", "--json")
    names = {t["name"] for t in json.loads(out)}
    assert code == 0
    assert {"ifeval", "mmlu", "countdown", "safety", "gsm8k", "math500", "hellaswag"} <= names
    assert {"lite_countdown", "lite_ifeval", "lite_arith", "lite_mc", "lite_refusal"} <= names
