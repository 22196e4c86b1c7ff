"""`eval --target-prompts FILE.jsonl`: forward KL(pi0 || pi) on the user's own prompts, no target task.

RL's Razor's point is that KL on the NEW task's prompts predicts forgetting, so no data from old tasks
and no scorer for the new one is needed. Here the new task is just its prompts: one JSON object per
line, `{"prompt": "..."}` or `{"messages": [{"role": "user", "content": "..."}, ...]}` (other keys
are kept and hashed, not read). The prompts are rendered exactly as a task's are (the model's chat
template with a generation prompt, as lm-eval's HFLM applies it; the raw prompt without a template)
and handed to the same estimator (forgetbench.kl.pair.pair_kl) with the same settings. There is no
gain: every registry task in the run is a probe.

Identity: the sha256 of the rows (forgetbench.tasks.data.rows_hash, the same hash as any task's data), and
the pair's target is `prompts:<first 12 hex digits>`. Simplifications: the rows are not stored as a
task run (only the base samples and KL values, like any KL); chat `messages` need a chat template.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from forgetbench.tasks.data import canonical, doc_hash, rows_hash
from forgetbench.errors import UserError
from forgetbench.records import DataSource, ItemResult, ModelRef, TaskRun, TaskSpec

PREFIX = "prompts:"
ROLES = ("system", "user", "assistant")
DEFAULT_MAX_TOKENS = 256  # lm-eval's default generation length, as for tasks that set none
VERSION = "1"


@dataclass(frozen=True)
class PromptSet:
    path: str
    rows: tuple[dict, ...]
    data_hash: str

    @property
    def name(self) -> str:
        return PREFIX + self.data_hash[:12]


def is_prompt_target(target: str | None) -> bool:
    return bool(target) and str(target).startswith(PREFIX)


def _problem(row) -> str | None:
    if not isinstance(row, dict):
        return "a line must be a JSON object"
    has_p, has_m = "prompt" in row, "messages" in row
    if has_p == has_m:
        return 'needs exactly one of "prompt" (a string) or "messages" (a list of chat turns)'
    if has_p:
        return None if isinstance(row["prompt"], str) and row["prompt"].strip() else '"prompt" must be a non-empty string'
    msgs = row["messages"]
    if not isinstance(msgs, list) or not msgs:
        return '"messages" must be a non-empty list'
    for i, m in enumerate(msgs):
        if not (isinstance(m, dict) and m.get("role") in ROLES and isinstance(m.get("content"), str)):
            return f'"messages"[{i}] must be {{"role": one of {", ".join(ROLES)}, "content": a string}}'
    if msgs[-1]["role"] == "assistant":
        return 'the last of "messages" is the assistant\'s: the model must answer it, so end with a user turn'
    return None


def load(path: Path) -> PromptSet:
    """Read and check the file; every problem is a UserError naming file and line, before any model work."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--target-prompts {path}: no such file")
    rows = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"--target-prompts {path}: cannot read it as UTF-8 text ({e})") from e
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise UserError(f"{path}:{lineno}: not valid JSON ({e.msg})") from e
        why = _problem(row)
        if why:
            raise UserError(f"{path}:{lineno}: {why}")
        rows.append(row)
    if not rows:
        raise UserError(f"--target-prompts {path}: no prompts")
    return PromptSet(str(path), tuple(rows), rows_hash(rows))


def render(ps: PromptSet, model: ModelRef, chat: bool) -> list[str]:
    """Each prompt as the model sees it: chat template with the generation prompt, or the raw text."""
    if not chat:
        bad = next((i for i, r in enumerate(ps.rows, 1) if "messages" in r), None)
        if bad:
            raise UserError(f"{ps.path}: prompt {bad} is a chat (messages) but the chat template is off "
                            "(--no-chat-template, or the model has none)")
        return [r["prompt"] for r in ps.rows]
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model.path)
    out = []
    for r in ps.rows:
        msgs = r["messages"] if "messages" in r else [{"role": "user", "content": r["prompt"]}]
        out.append(tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True))
    return out


def spec_and_run(ps: PromptSet, base: ModelRef, prompts: list[str], chat: bool,
                 max_tokens: int | None) -> tuple[TaskSpec, TaskRun]:
    """The prompt set as the (TaskSpec, TaskRun) the KL estimator reads: names, identity and prompts."""
    import hashlib

    gen = {"kind": "target_prompts", "chat_template": chat,
           "generation_kwargs": {"max_gen_toks": max_tokens or DEFAULT_MAX_TOKENS}}
    spec = TaskSpec(name=ps.name, role="target", suites=(), version=VERSION, primary_metric="kl",
                    higher_is_better=True, chance=0.0, cluster_key=None, strata_key=None,
                    sources=(DataSource(path=ps.path),), yaml_path="", custom=True)
    items = tuple(ItemResult(doc_id=i, doc_hash=doc_hash(r), prompt=p, response="", score=0.0, metrics={})
                  for i, (r, p) in enumerate(zip(ps.rows, prompts)))
    run = TaskRun(model_hash=base.content_hash, task=ps.name, task_version=VERSION, data_hash=ps.data_hash,
                  gen_key=hashlib.sha256(canonical(gen).encode()).hexdigest()[:16], gen_settings=gen,
                  items=items, provenance={"path": ps.path})
    return spec, run


def describe(ps: PromptSet) -> dict:
    """What the pair's settings record about the prompt set."""
    return {"name": ps.name, "path": ps.path, "data_hash": ps.data_hash, "n": len(ps.rows),
            "chat_rows": sum("messages" in r for r in ps.rows)}
