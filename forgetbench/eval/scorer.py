"""A target task's own prompts and scorer, for training: SFT prompts, sample filtering and RL rewards.

One source of truth with evaluation: the task is built by lm-eval exactly as `forgetbench eval` builds
it (lmeval.build_task on forgetbench's rows), and then
- the prompt is the list of chat messages lm-eval's `fewshot_context` renders through the chat template
  (captured instead of rendered), so training and evaluation format every prompt identically;
- a response is scored like an eval response: cut at the task's stop sequences (and the end-of-turn
  token) by lm-eval's own `postprocess_generated_text`, passed through the filter pipeline that the
  primary metric names (e.g. gsm8k-style "flexible-extract"), then the task's `process_results`
  (which for countdown / lite_countdown is forgetbench.tasks.scoring.countdown, for lite_ifeval lm-eval's IFEval
  checkers), and the primary metric is read off.
So a reward of 1.0 here is exactly an item score of 1.0 in `forgetbench eval` for the same text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from forgetbench.tasks.data import rows_hash
from forgetbench.errors import UserError
from forgetbench.records import Docs, EvalSettings, TaskSpec


@dataclass(frozen=True)
class TaskScorer:
    """One target task built on a given list of rows; `docs[i]` is row i as lm-eval's task sees it."""

    spec: TaskSpec
    task: Any  # lm-eval ConfigurableTask
    docs: tuple[dict, ...]
    metric: str  # the primary metric's name, e.g. "acc"
    filter_name: str  # the filter pipeline it is computed on, e.g. "none"
    until: tuple[str, ...]  # the task's stop sequences (without the tokenizer's end-of-turn string)
    max_gen_toks: int

    def messages(self, doc: dict) -> list[dict]:
        """The chat messages lm-eval sends for this doc (0-shot, chat template, multi-turn few-shot)."""
        captured: list = []

        def capture(msgs, add_generation_prompt=True):
            captured.append((msgs, add_generation_prompt))
            return ""

        self.task.fewshot_context(doc, 0, apply_chat_template=True, fewshot_as_multiturn=True,
                                  chat_template=capture, gen_prefix=None)
        msgs, add_gen = captured[0]
        if not add_gen or msgs[-1]["role"] != "user":
            raise UserError(f"{self.spec.name}: training supports prompts that end in a user turn "
                            "(no gen_prefix / assistant prefill)")
        return [{"role": m["role"], "content": m["content"]} for m in msgs]

    def prompt_text(self, doc: dict) -> str:
        """The user-visible prompt (last user turn): what training rows are compared on for overlap."""
        return self.messages(doc)[-1]["content"]

    def truncate(self, response: str, eos: str | None = None) -> str:
        """What lm-eval's HF/vLLM models return for a raw generation: text before the first stop string."""
        from lm_eval.models.utils import postprocess_generated_text

        stops = list(self.until) + ([eos] if eos and eos not in self.until else [])
        return postprocess_generated_text(generation=response, stop=stops, think_end_token=None)

    def score(self, doc: dict, response: str, eos: str | None = None) -> float:
        """The item score `forgetbench eval` would give `response` (a raw, untruncated generation)."""
        resps = [[self.truncate(response, eos)]]
        for ensemble in self.task._filters:  # lm-eval keeps the pipelines there (FilterEnsemble)
            if ensemble.name == self.filter_name:
                for make in ensemble.filters:
                    resps = list(make().apply(resps, [doc]))
                break
        else:
            raise UserError(f"{self.spec.name}: no filter pipeline named {self.filter_name!r}")
        value = self.task.process_results(doc, [resps[0]])[self.metric]
        if isinstance(value, (list, tuple)):  # instruction-level metrics: one bool per instruction
            return sum(map(float, value)) / len(value) if value else 0.0
        return float(value)

    def keep_text(self, response: str) -> str:
        """A sampled response as a training completion: cut after the first task stop string, keeping
        it, so a kept sample ends like the expert responses do (e.g. "...</answer>"), then end-of-turn."""
        cut = None
        for s in self.until:
            i = response.find(s)
            if s and i >= 0 and (cut is None or i + len(s) < cut):
                cut = i + len(s)
        return response if cut is None else response[:cut]


def load_scorer(spec: TaskSpec, rows: list[dict]) -> TaskScorer:
    """Build `spec`'s lm-eval task on `rows` (hub-schema rows, as the task's data sources give them)."""
    from forgetbench.eval import lmeval

    if not rows:
        raise UserError(f"{spec.name}: no rows to train on")
    gen = lmeval.generation_settings(spec, EvalSettings(), chat_template=True)
    if gen["output_type"] != "generate_until":
        raise UserError(f"{spec.name} is a {gen['output_type']} task; training needs a generative target "
                        "(sampling and rewards score generated text)")
    rows = [json.loads(json.dumps(r, default=str)) for r in rows]  # the jsonl lm-eval reads them from
    docs = Docs(task=spec.name, rows=tuple(rows), data_hash=rows_hash(rows), sources=("training rows",))
    task = lmeval.build_task(spec, docs, gen)
    built = tuple(task.test_docs())
    if len(built) != len(rows):
        raise UserError(f"{spec.name}: lm-eval made {len(built)} docs of {len(rows)} training rows")
    metric, _, filt = lmeval.primary_key(spec.primary_metric).partition(",")
    kw = gen["generation_kwargs"]
    until = kw.get("until") or []
    return TaskScorer(spec=spec, task=task, docs=built, metric=metric, filter_name=filt,
                      until=tuple([until] if isinstance(until, str) else until),
                      max_gen_toks=int(kw.get("max_gen_toks", 256)))


def reward_function(scorer: TaskScorer, eos: str | None = None):
    """A TRL GRPOTrainer reward function: (completions, doc_index, ...) -> eval item scores.

    The GRPO dataset carries `doc_index` (row i of scorer.docs) next to `prompt`; completions come as
    [{"role": "assistant", "content": text}] for conversational prompts, or plain strings."""

    def reward(completions, doc_index, **_) -> list[float]:
        out = []
        for completion, i in zip(completions, doc_index, strict=True):
            text = completion[-1]["content"] if isinstance(completion, list) else completion
            out.append(scorer.score(scorer.docs[int(i)], text, eos))
        return out

    reward.__name__ = f"{scorer.spec.name}_score"  # TRL logs rewards/<name>/mean
    return reward
