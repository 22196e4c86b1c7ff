"""The typed rows the store hands out and takes in (forgetbench.store.queries, forgetbench.store.writes).
Task runs and their items are forgetbench.records.TaskRun / ItemResult."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class StoredModel:
    model_hash: str
    spec: str
    kind: str
    path: str | None
    revision: str | None
    meta: dict


@dataclass(frozen=True)
class StoredPair:
    pair_id: str
    base_hash: str
    tuned_hash: str
    target: str | None
    settings: dict
    report: dict
    created_at: datetime


@dataclass(frozen=True)
class RunHeader:
    """A run's identity without its items."""

    run_id: str
    task_version: str
    data_hash: str
    gen_key: str
    gen_settings: dict


@dataclass(frozen=True)
class PairKL:
    """A pair_kl row. estimates: KL_COLUMNS name -> (value, lo, hi); settings: its JSON column ({} if null)."""

    task: str
    m_prompts: int | None
    k_samples: int | None
    max_new_tokens: int | None
    seed: int | None
    dtype: str | None
    n_seq: int | None
    n_tokens: int | None
    estimates: dict[str, tuple]
    settings: dict


@dataclass(frozen=True)
class KLPairRow:
    """A pair with a finite KL column x, for `forgetbench law`; base/tuned are the specs (hashes if the
    models are not stored); method from the pair's settings, else the tuned model's meta; drops 0-1."""

    pair_id: str
    base: str
    tuned: str
    target: str | None
    method: str | None
    kl_task: str | None
    x: float
    x_lo: float | None
    x_hi: float | None
    mean_drop: float | None
    mean_drop_lo: float | None
    mean_drop_hi: float | None
    report: str | None  # the report JSON as stored


@dataclass(frozen=True)
class ProbeDelta:
    """A pair_tasks row of a probe (the primary metric and every sub-row: stratum, extra metric)."""

    pair_id: str
    task: str
    metric: str
    delta: float | None
    lo: float | None
    hi: float | None


@dataclass(frozen=True)
class KLSample:
    """One base completion of a KL sample set (table kl_samples)."""

    seq: int
    prompt_index: int  # index into the set's chosen prompts
    doc_id: int  # the prompt's item in the base run
    prompt_ids: tuple[int, ...]
    completion_ids: tuple[int, ...]


@dataclass(frozen=True)
class KLItem:
    """A tuned model's KL terms along one base completion (table kl_items), summed over its tokens."""

    seq: int
    prompt_index: int
    n_tokens: int
    fwd: float
    rev: float
    tv: float
