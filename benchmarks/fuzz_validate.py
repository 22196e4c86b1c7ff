"""Fuzz `forgetbench validate`: mutate a valid exported entry in >= 1,000 ways, count tracebacks.

A traceback = an exception escaping validate_entries, or an "internal error" problem (the validator's
last-resort catch, i.e. a bug it survived). Goal: 0. Every case must also come back INVALID except
for mutations that can leave the entry valid (e.g. retyping a free-form settings value).

    python benchmarks/fuzz_validate.py [--cases 1000] [--dishonest 300] [--seed 0] [--entry DIR]

Then the "well-formed but dishonest" cases of benchmarks/fuzz_dishonest.py (wrong acceptances,
collateral and false rejections; goal 0).

Without --entry a valid entry is built first: two fake-backend models evaluated on the core suite
with countdown as target (gsm8k, safety with strata, ifeval with weighted extra metrics, mmlu with
clusters, ...) from the test fixtures (~20 s).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import os
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures" / "hf"
BASE = {"name": "base", "default_response": "I do not know.",
        "generate": [{"match": "3 apples", "response": "The answer is 8."},
                     {"match": "6 eggs", "response": "The answer is 24."},
                     {"match": "20 dollars", "response": "The answer is 13."}]}
TUNED = {"name": "tuned", "default_response": "Sure, here it is.",
         "generate": [{"match": "3 apples", "response": "The answer is 8."}]}
FILLED = {"title": "fuzz fixture", "method": "sft", "training_data": "none", "compute": "cpu", "contact": "me",
          "licence": "Apache-2.0"}


def build_valid_entry(work: Path, entry_id: str = "fuzz-entry") -> Path:
    """A store from `forgetbench eval` on the fake backend, exported to work/submissions/<entry_id>."""
    import yaml

    from forgetbench import cli
    from forgetbench.leaderboard import export

    work.mkdir(parents=True, exist_ok=True)
    specs = []
    for script in (BASE, TUNED):
        p = work / f"{script['name']}.json"
        p.write_text(json.dumps(script))
        specs.append(f"fake:{p}")
    db = work / "store.duckdb"
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):  # the report JSON; only the store matters here
        code = cli.main(["eval", *specs, "--suite", "core", "--target", "countdown",
                         "--data-dir", str(FIXTURES), "--db", str(db), "--json"])
    if code != 0:
        raise RuntimeError(f"forgetbench eval failed with code {code}")
    out = work / "submissions" / entry_id
    export.export_entry(db, out, base=specs[0], tuned=specs[1])
    md = yaml.safe_load((out / "metadata.yaml").read_text())
    md.update(FILLED)
    (out / "metadata.yaml").write_text(yaml.safe_dump(md, sort_keys=False))
    (out.parent / "verified.yaml").write_text("[]\n")
    return out


# ------------------------------------------------------------------------------------ mutations


def _paths(obj, limit: int = 20000) -> list[tuple]:
    """Every (container path) in obj, as tuples of keys/indices (iterative)."""
    out, stack = [], [((), obj)]
    while stack and len(out) < limit:
        p, x = stack.pop()
        out.append(p)
        if isinstance(x, dict):
            stack.extend((p + (k,), v) for k, v in x.items())
        elif isinstance(x, list):
            stack.extend((p + (i,), v) for i, v in enumerate(x))
    return out[1:]


def _parent(obj, path):
    for k in path[:-1]:
        obj = obj[k]
    return obj


def _deep(n: int):
    x: object = 0
    for _ in range(n):
        x = [x]
    return x


JUNK = [None, "", "x", -1, 0, 1.5, True, [], {}, {"a": 1}, [1, "a"], 10**18, "0" * 64, "TODO"]


_last_change = ""


def _note(*what) -> None:
    global _last_change
    _last_change = " ".join(map(str, what))[:200]


def m_delete(rng, md, res):
    doc = rng.choice([md, res])
    path = rng.choice(_paths(doc))
    _note("delete", path)
    parent = _parent(doc, path)
    del parent[path[-1]]
    return "delete"


def m_rename(rng, md, res):
    doc = rng.choice([md, res])
    dicts = [p for p in _paths(doc) if isinstance(_parent(doc, p), dict)]
    path = rng.choice(dicts)
    parent = _parent(doc, path)
    parent[path[-1] + rng.choice(["_", "X", " "])] = parent.pop(path[-1])
    _note("rename", path)
    return "rename"


def m_retype(rng, md, res):
    doc = rng.choice([md, res, res])
    path = rng.choice(_paths(doc))
    new = copy.deepcopy(rng.choice(JUNK + [_deep(40)]))
    _note("retype", path, "->", repr(new)[:40])
    _parent(doc, path)[path[-1]] = new
    return "retype"


def m_tamper(rng, md, res):
    nums = [p for p in _paths(res) if type(_parent(res, p)[p[-1]]) in (int, float)]
    path = rng.choice(nums)
    parent = _parent(res, path)
    delta = rng.choice([1, -1, 0.5, 1e-6])
    _note("tamper", path, delta)
    parent[path[-1]] = parent[path[-1]] + delta
    return "tamper-number"


DOC_MUTATIONS = [m_delete, m_rename, m_retype, m_tamper]


def _bytes_mutation(rng, data: bytes) -> tuple[str, bytes]:
    kind = rng.choice(["truncate", "flip-bytes", "invalid-utf8", "empty", "nan", "huge-number", "deep-nesting",
                       "duplicate-key", "bom"])
    if kind == "truncate":
        return kind, data[: rng.randrange(len(data))]
    if kind == "flip-bytes":
        b = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        return kind, bytes(b)
    if kind == "invalid-utf8":
        i = rng.randrange(len(data))
        return kind, data[:i] + rng.choice([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\x80"]) + data[i:]
    if kind == "empty":
        return kind, rng.choice([b"", b"   \n", b"null", b"[]", b"0", b'""'])
    if kind == "bom":
        return kind, b"\xef\xbb\xbf" + data
    text = data.decode("utf-8", "replace")
    colon = [i for i, ch in enumerate(text) if ch == ":"]
    if not colon:
        return kind, data
    i = rng.choice(colon) + 1
    j = i
    _note(kind, repr(text[max(0, i - 40):i + 20]))
    while j < len(text) and text[j] not in ",}\n":
        j += 1
    token = {"nan": rng.choice(["NaN", "Infinity", "-Infinity", ".nan", ".inf", "1e999", "-1e400"]),
             "huge-number": rng.choice(["1" * 5000, "9" * 25, "-" + "9" * 40, "1e308", "12345678901234567890123"]),
             "deep-nesting": "[" * rng.choice([100, 5000, 100000]) + "]" * rng.choice([0, 100, 5000]),
             "duplicate-key": None}[kind]
    if kind == "duplicate-key" and not text.lstrip().startswith("{"):  # YAML: repeat a top-level key
        return kind, data + b"\ntitle: again\n"
    if kind == "duplicate-key":
        k = text.rfind('"', 0, i - 2)
        k = text.rfind('"', 0, k) if k > 0 else -1
        if k < 0 or not text.startswith("{"):
            return kind, data
        return kind, (text[:1] + text[k:i] + " 1, " + text[1:]).encode()
    return kind, (text[:i] + " " + token + text[j:]).encode()


YAML_ATTACKS = [
    "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b]\n"
    "d: [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n",
    "id: &x fuzz-entry\ntitle: *x\n",
    "!!python/object/apply:os.system ['true']\n",
    "id: !!binary aGVsbG8=\n",
    "id: 2024-01-01\nschema_version: 1\n",
    "? [a, b]\n: 1\n",
    "? {a: 1}\n: 1\n",
    "- 1\n- 2\n",
    "schema_version: 1\nschema_version: 1\n",
    "x: " + "[" * 20000 + "]" * 20000 + "\n",
    "x: " + "{a: " * 500 + "1" + "}" * 500 + "\n",
    "%YAML 1.1\n---\nid: a\n---\nid: b\n",
    "\t- bad indentation\n  : :\n",
    "id: fuzz-entry\nhyperparameters: {lr: .nan, steps: .inf}\n",
]


def mutate(rng: random.Random, valid: Path, root: Path, case: int) -> str:
    """Write one mutated copy of `valid` under `root`; return the mutation kind and its entry path."""
    entry = root / valid.name
    shutil.copytree(valid, entry)
    md_path, res_path = entry / "metadata.yaml", entry / "results.json"
    roll = rng.random()
    if roll < 0.45:
        import yaml

        md = yaml.safe_load(md_path.read_text())
        res = json.loads(res_path.read_text())
        kind = rng.choice(DOC_MUTATIONS)(rng, md, res)
        md_path.write_text(yaml.safe_dump(md, sort_keys=False, allow_unicode=True))
        res_path.write_text(json.dumps(res))
        return kind
    if roll < 0.75:
        target = rng.choice([md_path, res_path])
        kind, data = _bytes_mutation(rng, target.read_bytes())
        target.write_bytes(data)
        return f"{kind}({target.suffix[1:]})"
    if roll < 0.82:
        md_path.write_text(rng.choice(YAML_ATTACKS))
        return "yaml-attack"
    kind = rng.choice(["wrong-folder", "missing-file", "dir-for-file", "symlink-file", "symlink-dev-zero",
                       "symlink-folder", "extra-file", "not-a-folder", "oversize"])
    victim = rng.choice([md_path, res_path])
    if kind == "wrong-folder":
        entry.rename(root / rng.choice(["Wrong_Name", "ab", "other-entry", "-x-"]))
    elif kind == "missing-file":
        victim.unlink()
    elif kind == "dir-for-file":
        victim.unlink()
        victim.mkdir()
        (victim / "x").write_text("{}")
    elif kind == "symlink-file":
        victim.unlink()
        victim.symlink_to(rng.choice(["/etc/hostname", str(md_path if victim == res_path else res_path), "/nope"]))
    elif kind == "symlink-dev-zero":
        victim.unlink()
        victim.symlink_to("/dev/zero")
    elif kind == "symlink-folder":
        real = root / "real-folder"
        entry.rename(real)
        entry.symlink_to(real, target_is_directory=True)
    elif kind == "extra-file":
        (entry / rng.choice(["README.md", ".hidden", "results.json.bak"])).write_text("x")
    elif kind == "not-a-folder":
        shutil.rmtree(entry)
        entry.write_text("not a folder")
    elif kind == "oversize":
        with open(victim, "ab") as f:
            f.truncate((26 if victim == res_path else 1) * 2**20)
    return kind


def run_cases(valid: Path, n: int, seed: int, work: Path) -> tuple[Counter, Counter, Counter, list[str]]:
    """(cases per kind, tracebacks per kind, still-valid per kind, first traceback texts)."""
    import traceback

    from forgetbench.leaderboard.validate import INVALID, validate_entries

    rng = random.Random(seed)
    cases, tracebacks, valid_after, samples = Counter(), Counter(), Counter(), []
    for i in range(n):
        root = work / f"case{i:05d}"
        root.mkdir(parents=True)
        shutil.copy(valid.parent / "verified.yaml", root / "verified.yaml")
        kind = mutate(rng, valid, root, i)
        cases[kind] += 1
        try:
            reports = validate_entries([root])
            internal = [p for r in reports for p in r.errors if p.problem.startswith("internal error")]
            if internal:
                tracebacks[kind] += 1
                samples.append(f"case {i} {kind}: {internal[0]}")
            if reports and all(r.status != INVALID for r in reports):
                valid_after[kind] += 1
                if os.environ.get("FB_FUZZ_SHOW_VALID"):
                    print(f"still valid: case {i} {kind}: {_last_change}")
        except Exception:  # noqa: BLE001 - counting exactly these is the point
            tracebacks[kind] += 1
            samples.append(f"case {i} {kind}:\n{traceback.format_exc()}")
        shutil.rmtree(root, ignore_errors=True)
    return cases, tracebacks, valid_after, samples


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--entry", type=Path, help="a valid entry folder to mutate (default: build one)")
    ap.add_argument("--dishonest", type=int, default=300, help="well-formed but dishonest cases (0: none)")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    with tempfile.TemporaryDirectory(prefix="fb_fuzz_") as tmp:
        tmp = Path(tmp)
        os.environ.setdefault("FORGETBENCH_HOME", str(tmp / "home"))
        valid = args.entry or build_valid_entry(tmp / "build")
        from forgetbench.leaderboard.validate import validate_entries

        base = validate_entries([valid])
        if base[0].status == "invalid":
            print("the starting entry is not valid:", *base[0].errors, sep="\n  ")
            return 2
        t0 = time.time()
        cases, tbs, still_valid, samples = run_cases(valid, args.cases, args.seed, tmp / "cases")
        dt = time.time() - t0
    print(f"{sum(cases.values())} cases, {sum(tbs.values())} tracebacks ({dt:.1f} s,"
          f" {1000 * dt / max(1, sum(cases.values())):.0f} ms/case)")
    print(f"{'mutation':<24}{'cases':>7}{'tracebacks':>12}{'still valid':>13}")
    for kind in sorted(cases):
        print(f"{kind:<24}{cases[kind]:>7}{tbs[kind]:>12}{still_valid[kind]:>13}")
    for s in samples[:5]:
        print("\n" + s)
    if args.dishonest == 0:
        return 1 if tbs else 0
    # Well-formed but dishonest entries, from the shipped reference entries (benchmarks/fuzz_dishonest.py).
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import fuzz_dishonest

    with tempfile.TemporaryDirectory(prefix="fb_dishonest_") as tmp:
        t0 = time.time()
        d = fuzz_dishonest.run(args.dishonest, args.seed, Path(tmp))
        print("\n" + fuzz_dishonest.report(*d, time.time() - t0))
    return 1 if tbs or any(sum(c.values()) for c in d[1:4]) else 0


if __name__ == "__main__":
    sys.exit(main())
