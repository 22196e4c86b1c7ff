"""A careless user's inputs, counted (issue 11): damaged and foreign stores and bad command lines.

Every case runs `forgetbench.cli.main(argv)` in this process and is classified:
  clear      exit code 2 and exactly one line on stderr, no traceback
  traceback  an exception escaped, or "Traceback" on stderr
  accepted   exit code 0 (every case here is bad input, so this is a wrong acceptance)
  other      any other exit code or a message of several lines
  data lost  the store file's bytes changed (store cases), or a store appeared for a refused command
The stores come from tests/test_adversarial_inputs.py (its DAMAGE table and make_store), so this script
and the tests damage files the same way. Fake-backend models only: no weights are loaded.

    python benchmarks/fuzz_inputs.py
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(1, str(REPO / "tests"))  # test_adversarial_inputs imports tests/support.py, as pytest finds it
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ["FORGETBENCH_PROGRESS"] = "0"

_spec = importlib.util.spec_from_file_location("adv_inputs", REPO / "tests" / "test_adversarial_inputs.py")
adv = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(adv)

from forgetbench import cli  # noqa: E402

FIXTURES = REPO / "tests" / "fixtures" / "hf"


def run(argv: list) -> tuple[str, str]:
    """(outcome, stderr) of one command line."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = cli.main([str(a) for a in argv])
    except SystemExit as e:  # argparse's own errors
        code = e.code if isinstance(e.code, int) else 1
    except BaseException as e:  # noqa: BLE001 - an escaped exception is what we count
        return "traceback", f"{type(e).__name__}: {e}"
    text = err.getvalue()
    lines = [x for x in text.strip().splitlines() if x.strip()]
    if "Traceback" in text:
        return "traceback", text
    if code == 0:
        return "accepted", text
    if code == 2 and len(lines) == 1:
        return "clear", text
    if code == 2 and lines and lines[-1].startswith("forgetbench") and "error:" in lines[-1]:
        return "clear", text  # argparse: its usage line, then one error line
    return "other", text


def store_cases(work: Path):
    """Each damaged/foreign store x each command that opens a store."""
    good = adv.make_store(work / "good.duckdb")
    fake = work / "m.json"
    fake.write_text('{"name": "m"}')
    commands = {
        "eval": lambda db: ["eval", f"fake:{fake}", f"fake:{fake}", "--tasks", "lite_arith", "--db", db],
        "export": lambda db: ["export", "--db", db, "--pair", "abc", "--out", work / "entry"],
        "law": lambda db: ["law", "--db", db, "--json"],
        "eval --no-kl --json": lambda db: ["eval", f"fake:{fake}", f"fake:{fake}", "--tasks", "lite_mc", "--db", db,
                                          "--no-kl", "--json"],
    }
    for case, (how, _says) in sorted(adv.DAMAGE.items()):
        for name, argv in commands.items():
            db = work / f"{case}-{name.split()[0]}.duckdb"
            shutil.copy(good, db)
            how(db)
            yield f"store: {case} / {name}", argv(db), db


def cli_cases(work: Path):
    """Bad command lines (numbers, lists, scripts, rows, files); none should reach any model work."""
    good = work / "good.json"
    good.write_text('{"name": "m"}')
    db = work / "cli.duckdb"

    def ev(*extra, a=f"fake:{good}", b=f"fake:{good}"):
        return ["eval", a, b, "--tasks", "lite_arith", "--db", db, *extra]

    for opt, val in [("--seed", "-1"), ("--seed", str(2**70)), ("--seed", "x"), ("--batch-size", "0"),
                     ("--batch-size", "-3"), ("--max-gen-toks", "-5"), ("--max-gen-toks", "0"), ("--limit", "0"),
                     ("--limit", "-2"), ("--kl-prompts", "0"), ("--kl-samples", "-1"), ("--kl-max-tokens", "0"),
                     ("--gpu-memory-utilization", "1.5"), ("--gpu-memory-utilization", "nan"),
                     ("--tensor-parallel-size", "0"), ("--data-parallel-size", "x"), ("--max-model-len", "0"),
                     ("--dtype", "int4"), ("--backend", "tgi")]:
        yield f"cli: eval {opt} {val}", ev(opt, val)
    for tasks in (",", "", "gsm8k,gsm8k", "no_such_task", ",,,"):  # "lite_arith,," is fine: empty names are skipped
        yield f"cli: eval --tasks {tasks!r}", ["eval", f"fake:{good}", f"fake:{good}", "--tasks", tasks, "--db", db]
    yield "cli: eval --suite nosuch", ["eval", f"fake:{good}", f"fake:{good}", "--suite", "nosuch", "--db", db]
    yield "cli: eval --target of a probe", ev("--target", "lite_arith")
    yield "cli: eval --target unknown", ev("--target", "nosuch")
    yield "cli: eval --data-dir missing", ev("--data-dir", work / "nodata")
    yield "cli: eval --db is a folder", ["eval", f"fake:{good}", f"fake:{good}", "--tasks", "lite_arith", "--db", work]
    yield "cli: eval --target-prompts missing", ev("--target-prompts", work / "none.jsonl")
    yield "cli: eval --tasks-dir missing", ev("--tasks-dir", work / "nodir")
    yield "cli: eval model path missing", ev(a=work / "no-model")
    yield "cli: eval model is a plain file", ev(a=good)
    yield "cli: eval fake vs real model", ev(b=work)
    for i, script in enumerate([b"[]", b'{"generate": [{"response": "x"}]}', b'{"generate": [{"match": 1}]}',
                                b'{"choose": {"match": "a"}}', b'{"genrate": []}', b'{"chat_template": "yes"}',
                                b'{"name": "\xff"}', b"{", b'{"generate": [{"match": "x", "response": 5}]}',
                                b"null"]):
        f = work / f"script{i}.json"
        f.write_bytes(script)
        yield f"cli: fake script {script[:30]!r}", ev(b=f"fake:{f}")
    data = work / "data"
    for i, (task, edit) in enumerate([
        (("openai__gsm8k", "main", "test.jsonl"), lambda rows: [{"answer": "1"}, *rows[1:]]),
        (("openai__gsm8k", "main", "test.jsonl"), lambda rows: [{"question": 123, "answer": None}, *rows[1:]]),
        (("openai__gsm8k", "main", "test.jsonl"), lambda rows: [["not", "an", "object"], *rows[1:]]),
        (("cais__mmlu", "all", "test.jsonl"), lambda rows: [{**rows[0], "answer": 7}, *rows[1:]]),
        (("cais__mmlu", "all", "test.jsonl"), lambda rows: [{**rows[0], "choices": "abcd"}, *rows[1:]]),
    ]):
        d = data / str(i)
        shutil.copytree(FIXTURES, d)
        f = d.joinpath(*task)
        rows = [json.loads(x) for x in f.read_text().splitlines() if x.strip()]
        f.write_text("".join(json.dumps(r) + "\n" for r in edit(rows)))
        yield f"cli: malformed rows #{i + 1} ({task[0]})", ["eval", f"fake:{good}", f"fake:{good}", "--tasks",
                                                          "gsm8k,mmlu", "--data-dir", d, "--db", db]
    d = data / "utf8"
    shutil.copytree(FIXTURES, d)
    (d / "openai__gsm8k" / "main" / "test.jsonl").write_bytes(b'{"question": "\xff"}\n')
    yield "cli: non-UTF-8 jsonl", ["eval", f"fake:{good}", f"fake:{good}", "--tasks", "gsm8k", "--data-dir", d, "--db", db]
    d = data / "dir"
    shutil.copytree(FIXTURES, d)
    f = d / "openai__gsm8k" / "main" / "test.jsonl"
    f.unlink()
    f.mkdir()
    yield "cli: unreadable jsonl (a folder)", ["eval", f"fake:{good}", f"fake:{good}", "--tasks", "gsm8k", "--data-dir", d,
                                               "--db", db]
    yield "cli: export without a store", ["export", "--db", work / "none.duckdb", "--pair", "x", "--out", work / "e"]
    yield "cli: validate a missing folder", ["validate", work / "nothing-here"]
    yield "cli: leaderboard build from nothing", ["leaderboard", "build", work / "nothing", "--out", work / "site"]
    yield "cli: compare missing files", ["compare", work / "a.jsonl", work / "b.jsonl"]
    yield "cli: toy --lr nan", ["toy", "mog", "--lr", "nan"]
    yield "cli: toy --steps 0", ["toy", "mog", "--steps", "0"]
    yield "cli: train unknown method", ["train", "--method", "dpo", "--base", f"fake:{good}"]
    yield "cli: train bad --set", ["train", "--method", "sft", "--base", "smollm2-135m-instruct", "--set", "lr=abc"]
    yield "cli: train missing recipe", ["train", "--method", "sft", "--recipe", work / "none.yaml"]
    yield "cli: tasks hash unknown", ["tasks", "hash", "no_such_task"]


def main() -> int:
    counts: dict[str, Counter] = {"store": Counter(), "cli": Counter()}
    bad: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for label, argv, db in store_cases(work):
            before = db.read_bytes()
            outcome, err = run(argv)
            counts["store"][outcome] += 1
            counts["store"]["cases"] += 1
            if db.read_bytes() != before:
                counts["store"]["data lost"] += 1
                bad.append(f"{label}: the store changed")
            if outcome != "clear":
                bad.append(f"{label}: {outcome}: {err.strip()[:300]}")
        for label, argv in cli_cases(work):
            outcome, err = run(argv)
            counts["cli"][outcome] += 1
            counts["cli"]["cases"] += 1
            if (work / "cli.duckdb").exists():  # refused input must not leave a store behind
                bad.append(f"{label}: a store was created before the input was refused")
                (work / "cli.duckdb").unlink()
            if outcome != "clear":
                bad.append(f"{label}: {outcome}: {err.strip()[:300]}")
    cols = ("cases", "clear", "traceback", "accepted", "other", "data lost")
    print(f"{'category':<10}" + "".join(f"{c:>11}" for c in cols))
    for cat, c in counts.items():
        print(f"{cat:<10}" + "".join(f"{c[k]:>11}" for k in cols))
    for line in bad:
        print("  " + line)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
