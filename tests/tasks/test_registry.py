"""One test over every registered task (mteb style): metadata is complete and consistent, generated
data still hashes to the registered value, and every hub source has fixture rows for the e2e tests."""

from pathlib import Path

import pytest

from forgetbench.tasks import data, registry
from forgetbench.eval.lmeval import primary_key
from forgetbench.tasks.registry import lm_eval_config
from support import FIXTURES

TASKS = sorted(registry.all_tasks())


def test_registry_has_the_issue_tasks():
    core = {t.name: t.role for t in registry.suite("core")}
    assert core == {"ifeval": "target", "mmlu": "target", "countdown": "target", "safety": "probe",
                    "gsm8k": "probe", "math500": "probe", "hellaswag": "probe"}
    lite = {t.name: t.role for t in registry.suite("lite")}
    assert sorted(lite.values()).count("target") >= 2 and len(lite) >= 5


@pytest.mark.parametrize("name", TASKS)
def test_task_metadata(name):
    spec = registry.get(name)
    cfg = lm_eval_config(spec)
    assert cfg["task"] == name and Path(spec.yaml_path).parent.name == name
    assert spec.role in registry.ROLES and spec.version not in ("", "0")
    assert 0.0 <= spec.chance < 1.0
    metric, _, filt = primary_key(spec.primary_metric).partition(",")
    produced = {m["metric"] for m in cfg.get("metric_list") or []}
    assert metric in produced, f"{name}: primary metric {metric} not in metric_list {produced}"
    filters = {f["name"] for f in cfg.get("filter_list") or []} or {"none"}
    assert filt in filters, f"{name}: filter {filt} not in {filters}"
    # a task without pinned rows must say why (hellaswag: a re-export; the razor probes: no rows offline)
    unpinned = (cfg["metadata"]["forgetbench"].get("unpinned") or name == "hellaswag")
    assert spec.data_hashes or unpinned, f"{name}: no registered data hash and no `unpinned` reason"


@pytest.mark.parametrize("name", TASKS)
def test_sources_are_reachable_offline_in_tests(name):
    spec = registry.get(name)
    for src in spec.sources:
        if src.generator:
            continue
        assert src.hub and src.split, f"{name}: a hub source needs hub id and split"
        assert data.data_dir_file(src, FIXTURES).is_file(), f"{name}: no fixture rows for {src.describe()}"


@pytest.mark.parametrize("name", [t.name for t in registry.suite("lite")])
def test_generated_rows_match_the_registered_hash(name):
    spec = registry.get(name)
    docs = data.load_docs(spec)
    assert docs.data_hash in spec.data_hashes, f"{name}: generator output changed; bump the version and hash"


@pytest.mark.parametrize("name", [t.name for t in registry.suite("demo")])
def test_the_demo_subsample_is_pinned(name):
    """forgetbench demo evaluates `--limit DEMO_LIMIT` rows per task: their hash and items are pinned, so
    the demo's entries validate; `tasks hash NAME --limit N` prints the values."""
    from forgetbench.demo import DEMO_LIMIT
    from forgetbench.records import EvalSettings

    spec = registry.get(name)
    docs = data.load_docs(spec, limit=DEMO_LIMIT, seed=EvalSettings().seed)
    assert len(docs.rows) == DEMO_LIMIT and docs.data_hash in spec.data_hashes
    assert (docs.data_hash, DEMO_LIMIT, data.items_hash(data.docs_items(docs))) in spec.data_rows


def test_tasks_hash_prints_the_pin_of_a_subsample(capsys):
    from forgetbench.cli import main

    assert main(["tasks", "hash", "lite_arith", "--limit", "5", "--seed", "7"]) == 0
    out, err = capsys.readouterr()
    docs = data.load_docs(registry.get("lite_arith"), limit=5, seed=7)
    items = data.items_hash(data.docs_items(docs))
    assert out.strip() == docs.data_hash
    assert "5 rows (--limit 5 --seed 7)" in err and f"{docs.data_hash}: {{n: 5, items: {items}}}" in err
    assert main(["tasks", "hash", "lite_arith", "--limit", "0"]) == 2
    assert "--limit: must be at least 1, got 0" in capsys.readouterr().err


def test_training_data_is_declared_in_the_task_metadata():
    """`train_sources` and `expert` (metadata.forgetbench) are what train reads: countdown trains on the hub
    rows before its held-out slice, the solver-backed targets name their expert, no other task has one."""
    import importlib

    from forgetbench.records import DataSource

    tasks = registry.all_tasks()
    assert tasks["countdown"].train_sources == (
        DataSource(hub="Jiayi-Pan/Countdown-Tasks-3to4", split="train", hub_split="train[:327680]"),)
    assert {n for n, t in tasks.items() if t.train_sources} == {"countdown"}
    experts = {n: t.expert for n, t in tasks.items() if t.expert}
    assert experts == {"countdown": "forgetbench.tasks.lite.countdown:expert_response",
                       "lite_countdown": "forgetbench.tasks.lite.countdown:expert_response",
                       "lite_ifeval": "forgetbench.tasks.lite.instructions:expert_response"}
    for ref in experts.values():
        module, _, name = ref.partition(":")
        assert callable(getattr(importlib.import_module(module), name))
