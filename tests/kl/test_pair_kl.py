"""Forward KL inside `forgetbench eval`: computed on the target's prompts, stored with its settings,
base samples reused for every tuned model of that base, zero for a model against itself."""

import json
import shutil

import pytest

from forgetbench import cli
from forgetbench.store import Store

ARGS = ("--tasks", "lite_countdown", "--target", "lite_countdown", "--limit", "4", "--max-gen-toks", "6",
        "--kl-prompts", "3", "--kl-samples", "2", "--kl-max-tokens", "5", "--dtype", "float32")


@pytest.fixture(scope="module")
def perturbed_dir(tiny_model_dir, tmp_path_factory):
    """The tiny model with every weight nudged: a 'tuned' model with the same tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM

    out = tmp_path_factory.mktemp("perturbed")
    for f in tiny_model_dir.iterdir():
        if f.is_file() and not f.name.endswith(".safetensors"):
            shutil.copy(f, out / f.name)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    model.save_pretrained(out)
    return out


def _eval(capsys, base, tuned, db):
    code = cli.main(["eval", str(base), str(tuned), *ARGS, "--db", str(db), "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out), err


def test_kl_zero_for_same_model_positive_otherwise_and_samples_reused(tiny_model_dir, perturbed_dir, tmp_path,
                                                                      capsys, fb_home):
    db = tmp_path / "s.duckdb"
    same, _ = _eval(capsys, tiny_model_dir, tiny_model_dir, db)
    for k in ("fwd_seq", "fwd_tok", "rev_tok", "tv_tok"):
        assert same["kl"][k] == {"value": 0.0, "lo": 0.0, "hi": 0.0}, k
    assert same["kl"]["n_seq"] == 6 and same["kl"]["settings"]["max_new_tokens"] == 5

    other, err = _eval(capsys, tiny_model_dir, perturbed_dir, db)
    assert "[kl] base samples cached" in err  # the base's samples from the first pair are reused
    fwd = other["kl"]["fwd_seq"]
    assert 0 < fwd["lo"] <= fwd["value"] <= fwd["hi"]
    assert other["kl"]["fwd_tok"]["value"] > 0 and other["kl"]["tv_tok"]["value"] > 0

    _, err = _eval(capsys, tiny_model_dir, perturbed_dir, db)
    assert "[kl] cached" in err
    with Store(db, read_only=True) as s:
        assert s.con.execute("SELECT count(DISTINCT sample_set) FROM kl_samples").fetchone()[0] == 1
        rows = s.con.execute("SELECT k_samples, m_prompts, dtype, fwd_seq FROM pair_kl ORDER BY fwd_seq").fetchall()
    assert [(r[0], r[1], r[2]) for r in rows] == [(2, 3, "float32")] * 2
    assert rows[0][3] == 0.0 and rows[1][3] == pytest.approx(fwd["value"])


def test_no_target_means_no_kl(tiny_model_dir, tmp_path, capsys, fb_home):
    code = cli.main(["eval", str(tiny_model_dir), str(tiny_model_dir), "--tasks", "lite_mc", "--limit", "2",
                     "--db", str(tmp_path / "s.duckdb"), "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    rep = json.loads(out)
    assert rep["kl"] is None and "no --target" in rep["settings"]["kl_skipped"]
