"""The schema's whole-task fast paths (itemcheck.all_items_ok, all_kl_items_ok) accept exactly what the per-item
checks accept: a fast path that passed a bad item would let it skip its error message."""

import copy
import math

import pytest

from forgetbench.leaderboard import itemcheck, schema


def _item(i: int) -> dict:
    side = lambda s: {"score": s, "metrics": {"acc,none": s}, "response": f"answer {i}"}  # noqa: E731
    return {"doc_id": i, "doc_hash": f"{i:032x}", "cluster": None, "stratum": None, "base": side(1.0),
            "tuned": side(0.0), "prompt": f"question {i}"}


def _kl_item(i: int) -> dict:
    return {"seq": i, "prompt_index": i // 2, "n_tokens": 10, "fwd": 0.5, "rev": 0.25, "tv": 0.1}


ITEM_BREAKS = {
    "not a dict": lambda it: ["x"],
    "extra key": lambda it: {**it, "extra": 1},
    "missing key": lambda it: {k: v for k, v in it.items() if k != "prompt"},
    "bool doc_id": lambda it: {**it, "doc_id": True},
    "negative doc_id": lambda it: {**it, "doc_id": -1},
    "huge doc_id": lambda it: {**it, "doc_id": 10**9 + 1},
    "float doc_id": lambda it: {**it, "doc_id": 1.0},
    "short hash": lambda it: {**it, "doc_hash": "abc"},
    "upper hash": lambda it: {**it, "doc_hash": "A" * 32},
    "hash with newline": lambda it: {**it, "doc_hash": "a" * 16 + "\n" + "b" * 16},
    "hash not str": lambda it: {**it, "doc_hash": 123},
    "long cluster": lambda it: {**it, "cluster": "c" * 501},
    "int stratum": lambda it: {**it, "stratum": 3},
    "prompt null": lambda it: {**it, "prompt": None},
    "long prompt": lambda it: {**it, "prompt": "p" * 100_001},
    "side not dict": lambda it: {**it, "base": None},
    "side extra key": lambda it: {**it, "tuned": {**it["tuned"], "x": 1}},
    "bool score": lambda it: {**it, "base": {**it["base"], "score": True}},
    "inf score": lambda it: {**it, "base": {**it["base"], "score": math.inf}},
    "nan score": lambda it: {**it, "tuned": {**it["tuned"], "score": math.nan}},
    "str score": lambda it: {**it, "tuned": {**it["tuned"], "score": "1"}},
    "response null": lambda it: {**it, "base": {**it["base"], "response": None}},
    "long response": lambda it: {**it, "base": {**it["base"], "response": "r" * 100_001}},
    "metrics list": lambda it: {**it, "base": {**it["base"], "metrics": [1.0]}},
    "metric inf": lambda it: {**it, "base": {**it["base"], "metrics": {"acc,none": -math.inf}}},
    "metric null": lambda it: {**it, "base": {**it["base"], "metrics": {"acc,none": None}}},
    "metric key not str": lambda it: {**it, "base": {**it["base"], "metrics": {1: 1.0}}},
}
ITEM_KEEPS = {
    "int score": lambda it: {**it, "base": {**it["base"], "score": 1}},
    "cluster and stratum": lambda it: {**it, "cluster": "c" * 500, "stratum": ""},
    "empty metrics": lambda it: {**it, "tuned": {**it["tuned"], "metrics": {}}},
    "64-hex hash": lambda it: {**it, "doc_hash": "f" * 64},
    "huge finite numbers": lambda it: {**it, "base": {**it["base"], "score": 1e308, "metrics": {"a": 1e308}}},
}


@pytest.mark.parametrize("name", sorted(ITEM_BREAKS) + sorted(ITEM_KEEPS))
@pytest.mark.parametrize("where", [0, 7])
def test_all_items_ok_agrees_with_item_ok(name, where):
    items = [_item(i) for i in range(8)]
    items[where] = {**ITEM_BREAKS, **ITEM_KEEPS}[name](copy.deepcopy(items[where]))
    assert itemcheck.all_items_ok(items) == all(map(itemcheck.item_ok, items)) == (name in ITEM_KEEPS)


def test_all_items_ok_on_good_items():
    assert itemcheck.all_items_ok([_item(i) for i in range(20)])


@pytest.mark.parametrize("field,value,ok", [
    ("seq", -1, False), ("n_tokens", 1.5, False), ("prompt_index", True, False), ("fwd", math.nan, False),
    ("rev", "1", False), ("tv", None, False), ("fwd", 3, True), ("seq", 10**12, True),
])
def test_all_kl_items_ok_agrees_with_kl_item_ok(field, value, ok):
    items = [_kl_item(i) for i in range(6)]
    items[3] = {**items[3], field: value}
    assert itemcheck.all_kl_items_ok(items) == all(map(itemcheck.kl_item_ok, items)) == ok


def test_a_bad_item_still_gets_its_message():
    from forgetbench.leaderboard.checker import Checker

    items = [_item(i) for i in range(5)]
    items[2] = {**items[2], "doc_hash": "a" * 16 + "\n" + "b" * 16}
    c = Checker("results.json")
    schema._task(c, {"task": "t", "version": "1", "role": "probe", "primary_metric": "acc", "data_hash": "0" * 64,
                     "gen_key": "0" * 16, "gen_settings": {}, "aggregate": None, "items": items}, "tasks[0]", True)
    assert any(p.field == "tasks[0].items[2].doc_hash" for p in c.problems())
