"""Typed records passed between the stages of a run.

resolve models -> load task data -> score items (lm-eval) -> store -> pair metrics -> report.
Every stage takes and returns these frozen dataclasses, so a stage can be tested alone and the store
can persist exactly what produced each number. Nothing here imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ModelRef:
    """A model resolved to a local Hugging Face directory (or a fake-backend script) and its identity.

    `content_hash` covers weights, tokenizer and chat template, so the same bytes reached through a
    hub id, a GGUF file or a local path are one model in the store.
    """

    spec: str  # what the user typed
    kind: str  # local | hub | gguf | peft | bundled | fake
    path: str  # local directory transformers/vLLM load from (or the fake script file)
    content_hash: str  # sha256 hex
    revision: str | None = None
    has_chat_template: bool = False
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def short(self) -> str:
        return self.content_hash[:12]


@dataclass(frozen=True)
class DataSource:
    """Where a task's rows come from: a hub dataset split, or a seeded generator in the package."""

    hub: str | None = None  # "openai/gsm8k"
    config: str | None = None  # "main"
    split: str | None = None  # "test": the file name under --data-dir
    hub_split: str | None = None  # split expression on the hub when it differs, "train[327680:]"
    revision: str | None = None  # pinned hub commit, when known
    name: str | None = None  # label of this source inside a multi-source task (safety)
    generator: str | None = None  # "forgetbench.tasks.lite.countdown:generate"
    path: str | None = None  # a local jsonl of rows (a user's own data); relative to the task's YAML
    n: int | None = None  # generator: number of rows
    seed: int | None = None  # generator: seed

    def describe(self) -> str:
        if self.generator:
            return f"{self.generator}(n={self.n}, seed={self.seed})"
        if self.path:
            return self.path
        cfg = f"/{self.config}" if self.config else ""
        rev = f"@{self.revision}" if self.revision else ""
        return f"{self.hub}{cfg}:{self.split}{rev}"


@dataclass(frozen=True)
class TaskSpec:
    """One registered task: an lm-eval task config plus forgetbench metadata."""

    name: str
    role: str  # target | probe
    suites: tuple[str, ...]
    version: str
    primary_metric: str  # lm-eval per-sample key, "metric" or "metric,filter"
    higher_is_better: bool
    chance: float
    cluster_key: str | None  # doc field: bootstrap resamples whole clusters
    strata_key: str | None  # doc field: primary = mean of per-stratum means
    sources: tuple[DataSource, ...]
    yaml_path: str
    combine: str | None = None  # "module:function" joining several sources into one row list
    description: str = ""
    extra_metrics: tuple[str, ...] = ()  # also reported (e.g. ifeval loose / instruction-level)
    data_hashes: tuple[str, ...] = ()  # accepted hashes of the canonical (full) evaluation rows
    unsafe_code: bool = False  # lm-eval's `unsafe_code`: scoring runs generated code (--confirm-run-unsafe-code)
    custom: bool = False  # read from a --tasks-dir / $FORGETBENCH_TASKS_DIRS folder, not the built-in registry
    # (data hash, row count, forgetbench.tasks.data.items_hash) of accepted rows the validator cannot
    # regenerate (hub data): what an entry's items must be, checked offline
    data_rows: tuple[tuple[str, int, str], ...] = ()
    fields: tuple[tuple[str, str], ...] = ()  # (row field, type) the prompts and scorers read
    # Training (forgetbench.train): rows to sample from instead of the eval sources (a hub split disjoint
    # from them), and the "module:function" writing a correct response to a row (sft's expert data).
    train_sources: tuple[DataSource, ...] = ()
    expert: str | None = None


@dataclass(frozen=True)
class Docs:
    """The exact rows a task is evaluated on, after --limit, with their content hash."""

    task: str
    rows: tuple[dict, ...]
    data_hash: str
    sources: tuple[str, ...]  # DataSource.describe() of each source
    clusters: tuple[str, ...] | None = None  # per row, from TaskSpec.cluster_key
    strata: tuple[str, ...] | None = None  # per row, from TaskSpec.strata_key


@dataclass(frozen=True)
class EvalSettings:
    """How models are run. Fields marked (key) change results and are part of the cache key."""

    backend: str = "hf"  # (key) a registered backend: hf | vllm | fake | ... (forgetbench.eval.backends.BACKENDS)
    dtype: str = "auto"  # (key) resolved before any run (forgetbench.runtime.hardware); "auto" is never stored
    device: str = "auto"  # resolved before any run: the first CUDA GPU if any, else cpu (forgetbench.runtime.hardware)
    batch_size: int = 8
    chat_template: bool = True  # use the tokenizer's chat template when it has one (key)
    seed: int = 1234  # (key) sampling seed, --limit subsample seed
    max_gen_toks: int | None = None  # (key) overrides the task's generation length
    tensor_parallel_size: int = 1  # vllm: GPUs per engine
    data_parallel_size: int = 1  # vllm: engine replicas (lm-eval runs them as Ray actors)
    gpu_memory_utilization: float | None = None  # vllm: None = 0.9 on a GPU, 0.3 on CPU (a share of RAM there)
    max_model_len: int | None = None  # vllm: context length of every engine (None: the model's own)

    def key_fields(self) -> dict:
        return {
            "backend": self.backend,
            "dtype": self.dtype,
            "chat_template": self.chat_template,
            "seed": self.seed,
            "max_gen_toks": self.max_gen_toks,
        }


@dataclass(frozen=True)
class ItemResult:
    doc_id: int
    doc_hash: str
    prompt: str
    response: str
    score: float  # primary metric for this item
    metrics: dict[str, float]  # every per-item metric lm-eval produced ("metric,filter" keys)
    cluster: str | None = None
    stratum: str | None = None


@dataclass(frozen=True)
class TaskRun:
    """One model scored on one task's rows under fixed generation settings."""

    model_hash: str
    task: str
    task_version: str
    data_hash: str
    gen_key: str  # hash of generation settings
    gen_settings: dict[str, Any]
    items: tuple[ItemResult, ...]
    provenance: dict[str, Any]  # package versions, seed, backend, timings


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its 95% confidence interval and the name of the interval's method
    (forgetbench.stats; "" when read from a record written before methods were stored)."""

    value: float
    lo: float
    hi: float
    method: str = ""


@dataclass(frozen=True)
class TaskDelta:
    """Paired comparison of base and tuned on one task.

    delta is gain (tuned - base) for the target and drop (base - tuned) for probes, so a positive
    number is always "what the role cares about": learning on the target, forgetting on a probe.
    """

    task: str
    role: str  # target | probe (role in *this* pair)
    metric: str
    n: int
    base: Estimate
    tuned: Estimate
    delta: Estimate
    forgotten: int  # base right, tuned wrong
    learned: int  # base wrong, tuned right
    sub: dict[str, TaskDelta] = field(default_factory=dict)  # extra metrics / strata
    p_mcnemar: float | None = None  # exact McNemar p-value of forgotten vs learned
    p_holm: float | None = None  # probes: p_mcnemar Holm-adjusted over the pair's probes
    verdict: str | None = None  # probes: dropped | improved | n.s. (Holm); target: gained | lost | n.s.


@dataclass(frozen=True)
class PairReport:
    base: ModelRef
    tuned: ModelRef
    target: str | None
    deltas: tuple[TaskDelta, ...]
    mean_drop: Estimate | None
    settings: dict[str, Any]
    kl: dict[str, Any] | None = None  # forward KL on the target (forgetbench.kl.pair.pair_kl)
    pair_id: str | None = None  # the store's key (forgetbench.store.pair_id), set once the pair is stored
