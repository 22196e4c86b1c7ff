"""Task rows: --data-dir layout, seeded stratified --limit, hashing, clear errors."""

import json
from collections import Counter

import pytest

from forgetbench.tasks import data
from forgetbench.errors import UserError
from forgetbench.records import DataSource, TaskSpec
from support import FIXTURES



def _spec(**kw) -> TaskSpec:
    base = dict(name="t", role="probe", suites=("core",), version="1", primary_metric="acc",
                higher_is_better=True, chance=0.0, cluster_key=None, strata_key=None,
                sources=(DataSource(hub="cais/mmlu", config="all", split="test"),), yaml_path="x.yaml")
    base.update(kw)
    return TaskSpec(**base)


def test_data_dir_layout_and_hash_is_stable():
    spec = _spec(cluster_key="subject")
    a = data.load_docs(spec, data_dir=FIXTURES)
    b = data.load_docs(spec, data_dir=FIXTURES)
    assert len(a.rows) == 4 and a.data_hash == b.data_hash
    assert a.clusters == ("elementary_mathematics", "elementary_mathematics", "high_school_physics", "astronomy")
    assert a.sources == ("cais/mmlu/all:test",)


def test_missing_data_dir_file_names_the_path(tmp_path):
    with pytest.raises(UserError, match=r"cais__mmlu/all/test\.jsonl"):
        data.load_docs(_spec(), data_dir=tmp_path)


def test_bad_jsonl_line_is_reported(tmp_path):
    f = tmp_path / "cais__mmlu" / "all" / "test.jsonl"
    f.parent.mkdir(parents=True)
    f.write_text('{"question": "q", "subject": "s", "choices": [], "answer": 0}\n{not json\n')
    with pytest.raises(UserError, match=r"test\.jsonl:2"):
        data.load_docs(_spec(), data_dir=tmp_path)


def test_hub_failure_is_a_user_error(monkeypatch):
    import datasets

    def boom(*a, **k):
        raise ConnectionError("no network")

    monkeypatch.setattr(datasets, "load_dataset", boom)
    with pytest.raises(UserError, match="--data-dir"):
        data.load_docs(_spec())


def test_stratified_sample_is_proportional_seeded_and_ordered():
    keys = ["a"] * 60 + ["b"] * 30 + ["c"] * 10
    idx = data.stratified_sample(keys, 20, seed=7)
    assert idx == sorted(idx) and len(set(idx)) == 20
    assert Counter(keys[i] for i in idx) == {"a": 12, "b": 6, "c": 2}
    assert idx == data.stratified_sample(keys, 20, seed=7)
    assert idx != data.stratified_sample(keys, 20, seed=8)


def test_limit_changes_data_hash_and_keeps_clusters(tmp_path):
    rows = [{"question": f"q{i}", "subject": "s1" if i % 2 else "s2", "choices": ["a", "b"], "answer": 0}
            for i in range(10)]
    f = tmp_path / "cais__mmlu" / "all" / "test.jsonl"
    f.parent.mkdir(parents=True)
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = _spec(cluster_key="subject")
    full = data.load_docs(spec, data_dir=tmp_path)
    sub = data.load_docs(spec, data_dir=tmp_path, limit=4, seed=1)
    assert len(sub.rows) == 4 and sub.data_hash != full.data_hash
    assert Counter(sub.clusters) == {"s1": 2, "s2": 2}
    with pytest.raises(UserError, match="--limit"):
        data.load_docs(spec, data_dir=tmp_path, limit=0)


def test_missing_cluster_field_is_reported():
    with pytest.raises(UserError, match="field 'topic' is missing"):
        data.load_docs(_spec(cluster_key="topic"), data_dir=FIXTURES)


def test_doc_hash_ignores_key_order():
    assert data.doc_hash({"a": 1, "b": [1, 2]}) == data.doc_hash({"b": [1, 2], "a": 1})
