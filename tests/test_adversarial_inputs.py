"""A careless user (issue 11): damaged, foreign, newer, read-only and full stores, bad command lines,
bad fake scripts and bad data rows. Each ends in one line naming the real cause and exit code 2,
before any model work, with the files left as they were."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest

from forgetbench import cli
from forgetbench.runtime import dbfile
from forgetbench.errors import UserError
from forgetbench.records import ItemResult, TaskRun
from forgetbench.store import SCHEMA_VERSION, Store
from support import FIXTURES, REPO



def _run(capsys, *args) -> tuple[int, str]:
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, err


def _one_line(err: str) -> str:
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


def _run_of(task: str, n: int = 400, seed: int = 0) -> TaskRun:
    items = tuple(ItemResult(doc_id=i, doc_hash=f"{task}{i}", prompt=f"prompt {i} " * 20, response=os.urandom(48).hex(),
                             score=float(i % 2), metrics={"acc,none": float(i % 2)}) for i in range(n))
    return TaskRun("m" * 64, task, "1", "d" * 64, f"{seed:016x}", {}, items, {})


def make_store(path: Path, tasks: int = 6) -> Path:
    with Store(path) as s:
        for t in range(tasks):
            s.put_run(_run_of(f"t{t}"))
    return path


def _garble(path: Path, start: float, length: int) -> None:
    b = bytearray(path.read_bytes())
    i = int(len(b) * start)
    b[i:i + length] = bytes(x ^ 0x5A for x in b[i:i + length])
    path.write_bytes(bytes(b))


def _replace_items(path: Path) -> None:
    con = duckdb.connect(str(path))
    con.execute("DROP TABLE items")
    con.execute("CREATE TABLE items (x INTEGER)")
    con.close()


def _newer(path: Path) -> None:
    con = duckdb.connect(str(path))
    con.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    con.close()


def _sqlite(path: Path) -> None:
    path.unlink()
    c = sqlite3.connect(path)
    c.execute("CREATE TABLE runs (x)")
    c.commit()
    c.close()


def _foreign(path: Path) -> None:
    path.unlink()
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE sales (x INTEGER)")
    con.close()


DAMAGE = {  # name -> (how, what the one line must say)
    "truncated": (lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]), "is damaged"),
    "garbled-header": (lambda p: _garble(p, 0.0, 8), "is damaged"),  # its checksum; the magic bytes stay
    "garbled-pages": (lambda p: _garble(p, 0.5, 256 * 1024), "is damaged"),
    "replaced-items-table": (_replace_items, "table items has columns x"),
    "newer-schema": (_newer, "written by a newer forgetbench"),
    "sqlite": (_sqlite, "is a SQLite database"),
    "other-duckdb": (_foreign, "not a forgetbench store"),
    "empty": (lambda p: p.write_bytes(b""), "is an empty file"),
    "garbage": (lambda p: p.write_bytes(b"\x00garbage" * 64), "not a DuckDB file"),
}


@pytest.fixture(scope="module")
def good_store(tmp_path_factory) -> Path:
    return make_store(tmp_path_factory.mktemp("stores") / "good.duckdb")


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_damaged_and_foreign_stores(case, good_store, tmp_path, capsys, fb_home):
    db = tmp_path / "s.duckdb"
    shutil.copy(good_store, db)
    how, says = DAMAGE[case]
    how(db)
    before = db.read_bytes()
    with pytest.raises(UserError, match=says):
        Store(db)  # opened for writing: refused before anything is written
    assert db.read_bytes() == before
    # the CLI, writing (eval) and reading (export): one line, exit 2, the file unchanged
    fake = tmp_path / "m.json"
    fake.write_text('{"name": "m"}')
    code, err = _run(capsys, "eval", f"fake:{fake}", f"fake:{fake}", "--tasks", "lite_arith", "--db", db)
    assert code == 2 and says in _one_line(err)
    if case != "garbled-pages":  # a damaged data page shows only when read (eval reads every page first)
        code, err = _run(capsys, "export", "--db", db, "--pair", "abc", "--out", tmp_path / "entry")
        assert code == 2 and says in _one_line(err), err
    assert db.read_bytes() == before and not (tmp_path / "entry").exists()


def test_store_schema_check_reports_the_schema_version(good_store):
    with Store(good_store, read_only=True) as s:
        assert s.con.execute("SELECT value FROM meta").fetchone()[0] == SCHEMA_VERSION


def test_every_connection_has_extension_autoloading_off(tmp_path):
    """No DuckDB connection forgetbench opens may fetch an extension by itself."""
    from forgetbench.leaderboard.build import ingest

    def off(con) -> bool:
        return all(con.execute(f"SELECT current_setting('{k}')").fetchone()[0] is False for k in dbfile.NO_NETWORK)

    with Store(tmp_path / "s.duckdb") as s:
        assert off(s.con)
    with Store(tmp_path / "s.duckdb", read_only=True) as s:
        assert off(s.con)
    con = ingest(tmp_path / "lb.duckdb", [])
    assert off(con)
    con.close()
    # the sources hold no other duckdb.connect: every connection goes through dbfile.connect
    hits = [p for p in (REPO / "forgetbench").rglob("*.py") if "duckdb.connect(" in p.read_text() and p.name != "dbfile.py"]
    assert hits == []


def test_a_sqlite_file_never_makes_duckdb_download(tmp_path):
    """Issue 11.6. Store refuses it from its header; and even handed to DuckDB through dbfile.connect,
    DuckDB reports the missing extension instead of downloading it (its default would try HTTP)."""
    db = tmp_path / "x.duckdb"
    db.write_bytes(b"")
    _sqlite(db)
    with pytest.raises(UserError, match="is a SQLite database"):
        Store(db)
    with pytest.raises(duckdb.Error) as e:
        dbfile.connect(db)
    assert "download" not in str(e.value).lower() and "install it first" in str(e.value).lower()


def _namespace_ok(*flags: str) -> bool:
    return shutil.which("unshare") is not None and subprocess.run(
        ["unshare", *flags, "true"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _namespace_ok("-m"), reason="needs mount namespaces (unshare -m)")
def test_full_disk_names_the_cause_and_keeps_finished_runs(tmp_path):
    """Issue 11.5: a full disk mid-eval said "cannot rollback - no transaction is active"."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_adversarial_inputs import _run_of
        from forgetbench.errors import UserError
        from forgetbench.store import Store
        s = Store({str(mnt / 's.duckdb')!r})
        done = 0
        try:
            for t in range(200):
                s.put_run(_run_of(f"t{{t}}", 2000))
                done += 1
        except UserError as e:
            print("ERROR", e)
        try:
            s.close()
        except UserError:
            pass
        with Store({str(mnt / 's.duckdb')!r}, read_only=True) as r:
            print("DONE", done, "STORED", r.counts()["runs"])
    """)
    (tmp_path / "fill.py").write_text(script)
    out = subprocess.run(["unshare", "-m", "sh", "-c", f"mount -t tmpfs -o size=3m tmpfs {mnt} && "
                          f"{sys.executable} {tmp_path / 'fill.py'}"], capture_output=True, text=True, timeout=300,
                         cwd=REPO)
    assert "Traceback" not in out.stderr, out.stderr
    err = next(line for line in out.stdout.splitlines() if line.startswith("ERROR"))
    assert "no space left on device" in err and "No space left on device" in err and "rollback" not in err
    done, stored = (int(x) for x in out.stdout.split("DONE")[1].split("STORED"))
    assert done >= 1 and stored == done  # nothing finished was lost


@pytest.mark.skipif(not _namespace_ok("-m"), reason="needs mount namespaces (unshare -m)")
def test_read_only_store_and_full_home_through_the_cli(tmp_path, good_store):
    ro, full = tmp_path / "ro", tmp_path / "full"
    ro.mkdir()
    full.mkdir()
    shutil.copy(good_store, ro / "s.duckdb")
    fake = tmp_path / "m.json"
    fake.write_text('{"name": "m"}')
    eval_ = f"{sys.executable} -m forgetbench.cli eval fake:{fake} fake:{fake} --tasks lite_arith"
    script = (f"mount --bind {ro} {ro} && mount -o remount,bind,ro {ro} && "
              f"mount -t tmpfs -o size=64k tmpfs {full} && head -c 60000 /dev/zero > {full}/pad; "
              f"{eval_} --db {ro}/s.duckdb; echo rc=$?; "
              f"FORGETBENCH_HOME={full} {eval_} --db {tmp_path}/new.duckdb; echo rc=$?")
    out = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=600,
                         cwd=REPO, env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"})
    err = out.stderr.splitlines()
    assert out.stdout.split().count("rc=2") == 2, (out.stdout, out.stderr)
    assert "Traceback" not in out.stderr
    ro_line = next(line for line in err if "error:" in line and "s.duckdb" in line)
    assert "Read-only file system" in ro_line and "cannot write the store" in ro_line
    full_line = next(line for line in err if "error:" in line and "No space left on device" in line)
    assert str(full) in full_line


# ------------------------------------------------------------------------------------ command lines


@pytest.mark.parametrize("args,says", [
    (["--seed", "-1"], "--seed: must be in [0, 4294967295], got -1"),
    (["--seed", str(2**70)], "--seed: must be in [0, 4294967295]"),
    (["--batch-size", "0"], "--batch-size: must be at least 1"),
    (["--max-gen-toks", "-5"], "--max-gen-toks: must be at least 1"),
    (["--tasks", ","], "',' names no task"),
    (["--tasks", "gsm8k,gsm8k"], "names gsm8k twice"),
    (["--limit", "0"], "--limit: must be at least 1"),
    (["--kl-prompts", "0"], "--kl-prompts: must be at least 1"),
    (["--gpu-memory-utilization", "1.5"], "must be in (0, 1]"),
    (["--data-parallel-size", "x"], "'x' is not an integer"),
])
def test_numeric_and_list_options_are_checked(args, says, capsys, tmp_path):
    code = cli.main(["eval", "a", "b", "--db", str(tmp_path / "s.duckdb"), *args])
    err = capsys.readouterr().err
    assert code == 2 and says in _one_line(err)
    assert not (tmp_path / "s.duckdb").exists()


def test_toy_options_are_checked(capsys):
    assert cli.main(["toy", "mog", "--lr", "nan"]) == 2 and "--lr" in _one_line(capsys.readouterr().err)
    assert cli.main(["toy", "mog", "--steps", "0"]) == 2 and "--steps" in _one_line(capsys.readouterr().err)


@pytest.mark.parametrize("script,says", [
    (b"[]", "fake-backend script: (file): must be a JSON object, got a list"),
    (b'{"generate": [{"response": "x"}]}', "generate[0].match: is missing"),
    (b'{"generate": [{"match": 1, "response": "x"}]}', "generate[0].match: must be a string"),
    (b'{"choose": {"match": "a"}}', "choose: must be a list of rules"),
    (b'{"genrate": []}', "genrate: unknown field"),
    (b'{"chat_template": "yes"}', "chat_template: must be true or false"),
    (b'{"name": "\xff"}', "not valid UTF-8"),
    (b"{", "not valid JSON"),
])
def test_fake_scripts_are_checked(script, says, tmp_path, capsys, fb_home):
    bad, good = tmp_path / "bad.json", tmp_path / "good.json"
    bad.write_bytes(script)
    good.write_text('{"name": "m"}')
    code, err = _run(capsys, "eval", f"fake:{good}", f"fake:{bad}", "--tasks", "lite_arith", "--db", tmp_path / "s.duckdb")
    assert code == 2 and says in _one_line(err) and str(bad) in err


@pytest.fixture
def data_dir(tmp_path) -> Path:
    d = tmp_path / "data"
    shutil.copytree(FIXTURES, d)
    return d


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _write(path: Path, rows: list) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


GSM8K = ("openai__gsm8k", "main", "test.jsonl")
MMLU = ("cais__mmlu", "all", "test.jsonl")


@pytest.mark.parametrize("task,edit,says", [
    (GSM8K, lambda rows: [rows[0], {"answer": "1"}, *rows[2:]], "task gsm8k: row 2 of openai/gsm8k/main:test"
     " (--data-dir {d}): field 'question' is missing"),
    (GSM8K, lambda rows: [{"question": 123, "answer": None}, *rows[1:]], "row 1 of openai/gsm8k/main:test"
     " (--data-dir {d}): field 'question' is an integer (123), expected str"),
    (GSM8K, lambda rows: [*rows[:2], ["not", "an", "object"]], "{d}/openai__gsm8k/main/test.jsonl:3: a row must be a"
     " JSON object, got a list"),
    (MMLU, lambda rows: [{**rows[0], "answer": 7}, *rows[1:]], "task mmlu: row 1 of cais/mmlu/all:test (--data-dir"
     " {d}): field 'answer' is 7, expected an index into choices (0 to 3)"),
])
def test_malformed_rows_are_reported_before_any_model_work(task, edit, says, data_dir, tmp_path, capsys, fb_home):
    f = data_dir.joinpath(*task)
    _write(f, edit(_rows(f)))
    script = tmp_path / "m.json"
    script.write_text('{"name": "m"}')
    code, err = _run(capsys, "eval", f"fake:{script}", f"fake:{script}", "--tasks", "gsm8k,mmlu", "--data-dir",
                     data_dir, "--db", tmp_path / "s.duckdb")
    assert code == 2 and says.format(d=data_dir) in _one_line(err), err
    assert not (tmp_path / "s.duckdb").exists()  # nothing opened, resolved or loaded yet


def test_every_task_is_checked_before_the_first_error_is_reported(data_dir, tmp_path, capsys, fb_home):
    for task in (GSM8K, MMLU):
        f = data_dir.joinpath(*task)
        _write(f, [{"x": 1}, *_rows(f)])
    (data_dir / "openai__gsm8k" / "main" / "test.jsonl").write_bytes(b'{"question": "\xff"}\n')
    script = tmp_path / "m.json"
    script.write_text('{"name": "m"}')
    code, err = _run(capsys, "eval", f"fake:{script}", f"fake:{script}", "--tasks", "gsm8k,mmlu", "--data-dir",
                     data_dir, "--db", tmp_path / "s.duckdb")
    assert code == 2 and "test.jsonl: not valid UTF-8" in _one_line(err) and "task mmlu: row 1" in err


def test_an_unreadable_data_file_is_named(data_dir, tmp_path, capsys, fb_home):
    f = data_dir.joinpath(*GSM8K)
    f.unlink()
    f.mkdir()  # a folder where the file should be: unreadable even for root
    script = tmp_path / "m.json"
    script.write_text('{"name": "m"}')
    code, err = _run(capsys, "eval", f"fake:{script}", f"fake:{script}", "--tasks", "gsm8k", "--data-dir", data_dir,
                     "--db", tmp_path / "s.duckdb")
    assert code == 2 and str(f) in _one_line(err)


def test_the_input_fuzzer_runs_as_a_script_and_counts_every_case_clear(tmp_path):
    # benchmarks/fuzz_inputs.py loads this module (its DAMAGE table and make_store); run the way the issue's
    # closing counts are made, from another folder: every store and command-line case a clear error
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "FORGETBENCH_HOME": str(tmp_path / "home")}
    out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "fuzz_inputs.py")], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = {line.split()[0]: [int(x) for x in line.split()[1:]] for line in out.stdout.splitlines()
            if line.split() and line.split()[0] in ("store", "cli")}
    assert set(rows) == {"store", "cli"}, out.stdout
    for cases, clear, traceback, accepted, other, lost in rows.values():
        assert cases > 30 and clear == cases and traceback == accepted == other == lost == 0, out.stdout
