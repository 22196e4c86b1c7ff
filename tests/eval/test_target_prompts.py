"""`eval --target-prompts FILE.jsonl` (KL on the user's own prompts, every task a probe) and the
predictions `forgetbench law` makes for such pairs."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from forgetbench import cli
from forgetbench.kl import command as law_command, predict as law_predict
from forgetbench.tasks import target_prompts
from forgetbench.errors import UserError
from forgetbench.records import Estimate, ModelRef, PairReport, TaskDelta
from forgetbench.store import Store

from support import ALL_RIGHT, BASE, FIXTURES, ONE_RIGHT, PAIR_KL_DDL, fake_spec, put_law_pair

PROMPTS = [{"prompt": "Write a haiku about rivers."},
           {"messages": [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Name a color."}]},
           {"prompt": "What is 2 + 2?", "id": "q3"}]


def _write(path, rows, sep=""):
    path.write_text("".join(json.dumps(r, separators=(",", ":") if sep else None) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("line, problem", [
    ("not json", "not valid JSON"),
    ('["a list"]', "must be a JSON object"),
    ('{"text": "x"}', 'exactly one of "prompt"'),
    ('{"prompt": "x", "messages": []}', 'exactly one of "prompt"'),
    ('{"prompt": "  "}', "non-empty string"),
    ('{"messages": [{"role": "bot", "content": "x"}]}', r'"messages"\[0\]'),
    ('{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]}', "end with a user turn"),
])
def test_bad_prompt_files_name_file_and_line(tmp_path, line, problem):
    f = tmp_path / "p.jsonl"
    f.write_text('{"prompt": "fine"}\n\n' + line + "\n")
    with pytest.raises(UserError, match=problem) as e:
        target_prompts.load(f)
    assert f"{f}:3:" in str(e.value)


def test_identity_is_the_rows_hash(tmp_path):
    a = target_prompts.load(_write(tmp_path / "a.jsonl", PROMPTS))
    b = target_prompts.load(_write(tmp_path / "b.jsonl", PROMPTS, sep="compact"))  # other bytes, same rows
    c = target_prompts.load(_write(tmp_path / "c.jsonl", PROMPTS[:2]))
    assert a.name == b.name != c.name and a.name.startswith("prompts:") and len(a.name) == len("prompts:") + 12
    with pytest.raises(UserError, match="no prompts"):
        target_prompts.load(_write(tmp_path / "e.jsonl", []))


def test_fake_pair_every_task_is_a_probe(tmp_path, capsys, fb_home):
    f = _write(tmp_path / "p.jsonl", PROMPTS)
    code = cli.main(["eval", fake_spec(tmp_path, ALL_RIGHT), fake_spec(tmp_path, ONE_RIGHT), "--tasks", "gsm8k,mmlu",
                     "--target-prompts", str(f), "--data-dir", str(FIXTURES), "--db", str(tmp_path / "s.duckdb"),
                     "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    rep = json.loads(out)
    assert rep["target"] == target_prompts.load(f).name
    assert {d["task"]: d["role"] for d in rep["deltas"]} == {"gsm8k": "probe", "mmlu": "probe"}  # mmlu too
    assert rep["mean_drop"] is not None and rep["kl"] is None
    assert rep["settings"]["target_prompts"]["data_hash"] == target_prompts.load(f).data_hash
    code = cli.main(["eval", fake_spec(tmp_path, ALL_RIGHT), fake_spec(tmp_path, ONE_RIGHT), "--tasks", "gsm8k",
                     "--target", "mmlu", "--target-prompts", str(f), "--data-dir", str(FIXTURES)])
    assert code == 2 and "exclude each other" in capsys.readouterr().err
    code = cli.main(["eval", fake_spec(tmp_path, ALL_RIGHT), fake_spec(tmp_path, ONE_RIGHT), "--tasks", "gsm8k",
                     "--target-prompts", str(tmp_path / "missing.jsonl"), "--data-dir", str(FIXTURES)])
    assert code == 2 and "no such file" in capsys.readouterr().err


@pytest.fixture(scope="module")
def perturbed_dir(tiny_model_dir, tmp_path_factory):
    import torch
    from transformers import AutoModelForCausalLM

    out = tmp_path_factory.mktemp("perturbed_tp")
    for f in tiny_model_dir.iterdir():
        if f.is_file() and not f.name.endswith(".safetensors"):
            shutil.copy(f, out / f.name)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    model.save_pretrained(out)
    return out


def test_kl_on_the_prompts_with_the_chat_template(tiny_model_dir, perturbed_dir, real_tokenizer, tmp_path, capsys,
                                                   fb_home):
    f = _write(tmp_path / "p.jsonl", PROMPTS)
    db = tmp_path / "s.duckdb"
    code = cli.main(["eval", str(tiny_model_dir), str(perturbed_dir), "--tasks", "lite_mc", "--limit", "4",
                     "--target-prompts", str(f), "--kl-prompts", "3", "--kl-samples", "2", "--kl-max-tokens", "5",
                     "--dtype", "float32", "--db", str(db), "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    rep = json.loads(out)
    ps = target_prompts.load(f)
    assert rep["target"] == ps.name and rep["kl"]["task"] == ps.name
    assert rep["kl"]["n_seq"] == 6 and rep["kl"]["settings"]["max_new_tokens"] == 5
    assert rep["kl"]["fwd_seq"]["value"] > 0
    assert [d["role"] for d in rep["deltas"]] == ["probe"]
    with Store(db, read_only=True) as s:
        assert s.con.execute("SELECT task FROM pair_kl").fetchall() == [(ps.name,)]
        stored = s.con.execute("SELECT DISTINCT prompt_index, prompt_ids, data_hash FROM kl_samples "
                               "ORDER BY prompt_index").fetchall()
    want = [real_tokenizer.apply_chat_template(r.get("messages") or [{"role": "user", "content": r["prompt"]}],
                                               tokenize=False, add_generation_prompt=True) for r in PROMPTS]
    assert [real_tokenizer.decode(ids) for _, ids, _ in stored] == want
    assert {h for *_, h in stored} == {ps.data_hash}


def test_prediction_interval_by_hand():
    # y = 2.2 + 0.6 x on (1,2),(2,4),(3,5),(4,4),(5,5): SSR 2.4, s^2 = 0.8, Sxx = 10, t(0.975, 3) = 3.182446
    est, note = law_predict.interval(np.arange(1, 6, dtype=float), np.array([2, 4, 5, 4, 5], float), 3.0)
    half = 3.182446305 * np.sqrt(0.8) * np.sqrt(1 + 1 / 5)
    assert (est.value, est.lo, est.hi) == pytest.approx((4.0, 4.0 - half, 4.0 + half), abs=1e-6)
    assert note is None
    est, note = law_predict.interval(np.arange(1, 6, dtype=float), np.array([2, 4, 5, 4, 5], float), 9.0)
    assert "extrapolated" in note and est.hi - est.lo > 2 * half


def test_law_predicts_prompt_pairs_from_the_other_pairs(tmp_path, capsys):
    db = tmp_path / "fb.duckdb"
    rng = np.random.default_rng(3)
    with Store(db) as s:
        s.con.execute(PAIR_KL_DDL)
        for i, x in enumerate(np.linspace(0.5, 10, 10)):
            put_law_pair(s, i, float(x), {"mmlu": 2 * x + rng.normal(0, 0.5)})
        # a prompt pair whose own measured drop is far off the line: it must not pull its prediction
        tuned = ModelRef(spec="/ckpt/mine", kind="local", path="/ckpt/mine", content_hash="9" * 64)
        s.put_model(tuned)
        e = Estimate(0.40, 0.38, 0.42)
        report = PairReport(BASE, tuned, "prompts:0123456789ab",
                            (TaskDelta("mmlu", "probe", "acc", 100, e, e, e, 0, 0),), e, {"run_ids": ["x"]})
        pid = s.put_pair(report, {"deltas": [{"task": "mmlu", "metric": "acc"}]})
        s.con.execute("INSERT INTO pair_kl (pair_id, task, n_seq, fwd_seq, fwd_seq_lo, fwd_seq_hi) "
                      "VALUES (?, 'prompts:0123456789ab', 8, 5.0, 4.5, 5.5)", [pid])
        # the same tuned model on a task target: its probe drops are the prompt pair's own, so it is left out
        put_law_pair(s, 99, 5.0, {"mmlu": 40.0})
        s.con.execute("UPDATE models SET spec = '/ckpt/mine' WHERE spec = '/ckpt/run99'")
    assert law_command.main(db, tmp_path / "law.png", as_json=True) == 0
    out = json.loads(capsys.readouterr().out)
    (pred,) = out["predictions"]
    assert pred["target"] == "prompts:0123456789ab" and pred["n_fit"] == 10 and pred["x"] == 5.0
    assert pred["predicted"]["lo"] < 10.0 < pred["predicted"]["hi"] and abs(pred["predicted"]["value"] - 10) < 1.5
    assert pred["measured"]["value"] == pytest.approx(40.0) and "prediction interval" in pred["method"]
    assert law_command.main(db, tmp_path / "law.png") == 0
    text = capsys.readouterr().out
    assert "PREDICTED forgetting (not measured)" in text and "prompts:0123456789ab" in text
