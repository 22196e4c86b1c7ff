"""The hub path users take, offline: `forgetbench eval org/tiny@v1 org/tiny-tuned --tasks mmlu` against a
local stand-in of the hub (tests/hubserver.py on 127.0.0.1, HF_ENDPOINT pointing at it), through the real
huggingface_hub (snapshot_download) and datasets (load_dataset) code: the models are downloaded, cached,
hashed and scored, the task rows come from a dataset repository, the revision is stored as a commit id;
an unreachable hub is one line and exit code 2.

The CLI runs in a subprocess: huggingface_hub and datasets read HF_ENDPOINT and the offline switches
when imported, and this session's tests run with HF_HUB_OFFLINE=1 (conftest).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from forgetbench.tasks import data, registry
from forgetbench.models.resolve import content_hash
from forgetbench.store import Store
from support import FIXTURES
from hubserver import Hub, Repo, repo_from_dir

# the dataset card's YAML is how a script-less hub dataset declares its configs (cais/mmlu has config "all")
MMLU_README = b"""---
configs:
- config_name: all
  data_files:
  - split: test
    path: all/test-*.jsonl
---
# stand-in of cais/mmlu: the test fixture's rows
"""


@pytest.fixture(scope="module")
def hub_repos(tiny_model_dir, tmp_path_factory):
    import torch
    from transformers import AutoModelForCausalLM

    tuned = tmp_path_factory.mktemp("hub_tuned")
    for f in tiny_model_dir.iterdir():
        if f.is_file() and not f.name.endswith(".safetensors"):
            shutil.copy(f, tuned / f.name)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    with torch.no_grad():
        model.model.norm.weight.mul_(1.5)  # a different model with the same tokenizer
    model.save_pretrained(tuned)
    mmlu = (FIXTURES / "cais__mmlu" / "all" / "test.jsonl").read_bytes()
    return [repo_from_dir("model", "org/tiny", tiny_model_dir, refs=("main", "v1")),
            repo_from_dir("model", "org/tiny-tuned", tuned),
            Repo("dataset", "cais/mmlu", {"README.md": MMLU_README, "all/test-00000-of-00001.jsonl": mmlu})]


def _eval(endpoint: str, hf_home: Path, db: Path, *extra):
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")}
    env.update(HF_ENDPOINT=endpoint, HF_HOME=str(hf_home), FORGETBENCH_PROGRESS="0")
    cmd = [sys.executable, "-m", "forgetbench.cli", "eval", "org/tiny@v1", "org/tiny-tuned", "--tasks", "mmlu",
           "--dtype", "float32", "--batch-size", "4", "--db", str(db), "--json", *extra]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)


def _routes(log) -> set[tuple[str, str]]:
    """Requests with the repository and revision replaced by placeholders."""
    out = set()
    for method, path in log:
        parts = path.strip("/").split("/")
        if "resolve" in parts:
            i = parts.index("resolve")
            prefix = "/datasets" if parts[0] == "datasets" else ""
            out.add((method, f"{prefix}/{{repo}}/resolve/{{rev}}/{{file}}"))
        elif parts[:1] == ["api"] and len(parts) > 4:
            out.add((method, f"/api/{parts[1]}/{{repo}}/{parts[4]}/{{rev}}" + ("/{path}" if len(parts) > 6 else "")))
        else:
            out.add((method, path))
    return out


@pytest.mark.slow
def test_eval_downloads_caches_hashes_and_scores_from_the_hub(hub_repos, tiny_model_dir, tmp_path, fb_home):
    tiny, tuned, mmlu = hub_repos
    hf_home, db = tmp_path / "hf", tmp_path / "s.duckdb"
    with Hub(hub_repos) as hub:
        r = _eval(hub.url, hf_home, db)
        assert r.returncode == 0, r.stderr[-3000:]
        first = list(hub.log)
        hub.log.clear()
        again = _eval(hub.url, hf_home, db)
        assert again.returncode == 0, again.stderr[-3000:]
    report = json.loads(r.stdout)
    base, tuned_ref = report["base"], report["tuned"]
    # the revision typed (a tag) is stored as the commit it resolved to
    assert (base["kind"], base["revision"], base["meta"]["requested_revision"]) == ("hub", tiny.commit, "v1")
    assert tuned_ref["revision"] == tuned.commit and tuned_ref["meta"]["source"] == "org/tiny-tuned"
    with Store(db, read_only=True) as s:
        stored = dict(s.con.execute("SELECT spec, revision FROM models").fetchall())
        data_hashes = {h for (h,) in s.con.execute("SELECT DISTINCT data_hash FROM runs").fetchall()}
    assert stored == {"org/tiny@v1": tiny.commit, "org/tiny-tuned": tuned.commit}
    # downloaded into the hub cache, and the bytes hash like the local copy they came from
    snap = hf_home / "hub" / "models--org--tiny" / "snapshots" / tiny.commit
    assert (snap / "model.safetensors").is_file() and Path(base["path"]) == snap
    assert base["content_hash"] == content_hash(tiny_model_dir) != tuned_ref["content_hash"]
    # the rows read from the dataset repository are the fixture's rows (same data hash as --data-dir)
    (delta,) = report["deltas"]
    assert delta["task"] == "mmlu" and delta["n"] == 4
    assert data_hashes == {data.load_docs(registry.get("mmlu"), data_dir=FIXTURES).data_hash}
    assert _routes(first) >= {
        ("GET", "/api/models/{repo}/revision/{rev}"), ("GET", "/api/models/{repo}/tree/{rev}"),
        ("HEAD", "/{repo}/resolve/{rev}/{file}"), ("GET", "/{repo}/resolve/{rev}/{file}"),
        ("GET", "/api/datasets/{repo}/revision/{rev}"), ("GET", "/datasets/{repo}/resolve/{rev}/{file}"),
    }
    assert ("GET", f"/org/tiny/resolve/{tiny.commit}/model.safetensors") in first
    # the second run takes the models from the cache: no model file or model API request at all
    assert not [p for _, p in hub.log if p.startswith(("/org/", "/api/models/"))], hub.log
    print("served:", sorted(_routes(first) | _routes(hub.log)))


def test_unreachable_hub_is_one_line(tmp_path, fb_home):
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    r = _eval(f"http://127.0.0.1:{port}", tmp_path / "hf", tmp_path / "s.duckdb")
    assert r.returncode == 2 and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr  # huggingface_hub's retry warnings are not shown
    # whichever is fetched first (the task rows, or the base model) fails, named with what to do instead
    assert lines[0].startswith(("forgetbench: error: cannot load cais/mmlu/all:test from the Hugging Face hub (",
                                "forgetbench: error: cannot download org/tiny from the hub: ")), lines[0]
    assert lines[0].endswith(("pass --data-dir DIR with DIR/<org>__<name>[/<config>]/<split>.jsonl",
                              "pass a local directory"))
    assert not (tmp_path / "s.duckdb").exists()  # nothing written


def test_unreachable_hub_for_a_model_is_one_line(tmp_path, fb_home):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")}
    env.update(HF_ENDPOINT=f"http://127.0.0.1:{port}", HF_HOME=str(tmp_path / "hf"))
    r = subprocess.run([sys.executable, "-m", "forgetbench.cli", "eval", "org/tiny@v1", "org/tiny-tuned", "--suite",
                        "lite", "--limit", "2", "--db", str(tmp_path / "s.duckdb")],
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 2 and r.stdout == ""
    errors = [line for line in r.stderr.splitlines() if line.startswith("forgetbench: error:")]
    assert errors == [line for line in r.stderr.strip().splitlines() if not line.startswith("[")], r.stderr
    (line,) = errors
    assert line.startswith("forgetbench: error: cannot download org/tiny from the hub: ")
    assert line.endswith(f"(hub: http://127.0.0.1:{port}); pass a local directory")
