"""Command line: `forgetbench eval | tasks | demo | law | export | validate | leaderboard build | toy mog | toy parity | compare`.

Each subcommand imports what it needs only when it runs, so `forgetbench tasks` and `--help` start
instantly. A UserError becomes one line on stderr and exit code 2; nothing is half-written.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import sys
from pathlib import Path

from forgetbench.argtypes import COUNT, SEED, fraction, positive
from forgetbench.errors import UserError
from forgetbench.paths import DB_ENV, DB_FILE, default_db
from forgetbench.records import EvalSettings
from forgetbench.runtime.hardware import DTYPES

_ENV_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG, errno.ENAMETOOLONG)
TASKS_DIRS_ENV = "FORGETBENCH_TASKS_DIRS"  # = forgetbench.tasks.registry.TASKS_DIRS_ENV (not imported: startup stays light)


def _task_list(value: str) -> tuple[str, ...]:
    names = tuple(t for part in value.split(",") for t in [part.strip()] if t)
    if not names:
        raise argparse.ArgumentTypeError(f"{value!r} names no task (omit --tasks to run a --suite)")
    dup = next((t for t in names if names.count(t) > 1), None)
    if dup:
        raise argparse.ArgumentTypeError(f"{value!r} names {dup} twice")
    return names


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (the project's standard for bad input), exit code 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _add_eval(sub) -> None:
    p = sub.add_parser("eval", help="score a (base, tuned) pair: gain on the target, drop on each probe")
    p.add_argument("base", help="base model: HF dir, hub id[@rev], .gguf, PEFT adapter dir, "
                                "smollm2-135m-instruct, or fake:SCRIPT.json")
    p.add_argument("tuned", help="tuned model (same forms as BASE)")
    p.add_argument("--suite", default="core", help="task suite: core (real benchmarks), lite (generated), razor "
                   "(RL's Razor's six probes), or a suite of your own tasks (--tasks-dir)")
    p.add_argument("--tasks", type=_task_list, default=(), help="comma-separated task names (overrides --suite)")
    p.add_argument("--target", help="the task the tuned model was trained on (registry or --tasks-dir); other "
                   "targets then count as probes")
    p.add_argument("--target-prompts", type=Path, metavar="FILE.jsonl", help="no target task: measure KL(base || "
                   "tuned) on these prompts (one {\"prompt\": ...} or {\"messages\": [...]} per line); every task is a probe")
    p.add_argument("--confirm-run-unsafe-code", action="store_true", help="allow tasks that run model-generated "
                   "code (humaneval*), in forgetbench's sandbox (forgetbench/tasks/scoring/sandbox.py)")
    p.add_argument("--limit", type=COUNT, help="seeded subsample of N rows per task (stratified by cluster)")
    p.add_argument("--data-dir", type=Path, help="local data: DIR/<org>__<name>[/<config>]/<split>.jsonl")
    p.add_argument("--db", type=Path, default=default_db(),
                   help=f"DuckDB store (default {DB_FILE} or ${DB_ENV})")
    from forgetbench.eval.backends import BACKENDS

    p.add_argument("--backend", choices=tuple(BACKENDS), default=EvalSettings.backend)  # the registry (eval/backends.py)
    p.add_argument("--dtype", default="auto", choices=DTYPES,
                   help="auto (default): bfloat16 where the hardware computes it natively, else float32 on CPU "
                        "(float16 on GPUs without bfloat16); `forgetbench info` says what auto picks here")
    p.add_argument("--device", default="auto", help="auto (default): the first CUDA GPU if there is one, else cpu; "
                   "or cpu, cuda, cuda:N, mps (scoring with hf, and the KL pass with either backend)")
    p.add_argument("--batch-size", type=COUNT, default=8)
    p.add_argument("--max-gen-toks", type=COUNT, help="override every generative task's generation length")
    p.add_argument("--no-chat-template", action="store_true", help="prompt instruct models without their chat template")
    p.add_argument("--tensor-parallel-size", type=COUNT, default=1, help="vllm: GPUs per engine (default 1)")
    p.add_argument("--data-parallel-size", type=COUNT, default=1, help="vllm: engine replicas, run as Ray actors "
                   "(default 1; needs ray)")
    p.add_argument("--gpu-memory-utilization", type=fraction, default=None, help="vllm: share of each GPU's memory "
                   "an engine may use (default 0.9; on CPU a share of RAM, default 0.3)")
    p.add_argument("--max-model-len", type=COUNT, help="vllm: context length of every engine (default: the model's)")
    p.add_argument("--seed", type=SEED, default=1234)
    p.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    p.add_argument("--no-kl", action="store_true", help="skip forward KL(base || tuned) on the target prompts")
    p.add_argument("--kl-prompts", type=COUNT, default=32, help="M target prompts for KL (default 32)")
    p.add_argument("--kl-samples", type=COUNT, default=4, help="K base completions per prompt (default 4)")
    p.add_argument("--kl-max-tokens", type=COUNT, help="completion length for KL (default: the task's generation length)")


def cmd_eval(args) -> int:
    from forgetbench.eval.run import EvalRequest, evaluate_pair
    from forgetbench.eval.report import render_table, to_json

    if args.limit is not None and args.limit < 1:
        raise UserError(f"--limit must be at least 1, got {args.limit}")
    if args.data_dir is not None and not args.data_dir.is_dir():
        raise UserError(f"--data-dir {args.data_dir} is not a directory")
    settings = EvalSettings(
        backend=args.backend, dtype=args.dtype, device=args.device, batch_size=args.batch_size,
        chat_template=not args.no_chat_template, seed=args.seed, max_gen_toks=args.max_gen_toks,
        tensor_parallel_size=args.tensor_parallel_size, data_parallel_size=args.data_parallel_size,
        gpu_memory_utilization=args.gpu_memory_utilization, max_model_len=args.max_model_len,
    )
    req = EvalRequest(base=args.base, tuned=args.tuned, suite=args.suite, tasks=args.tasks,
                      target=args.target, limit=args.limit, data_dir=args.data_dir, db=args.db,
                      settings=settings, kl=not args.no_kl, kl_prompts=args.kl_prompts,
                      kl_samples=args.kl_samples, kl_max_tokens=args.kl_max_tokens,
                      confirm_unsafe_code=args.confirm_run_unsafe_code, target_prompts=args.target_prompts)
    if min(args.kl_prompts, args.kl_samples) < 1:
        raise UserError("--kl-prompts and --kl-samples must be at least 1")
    from forgetbench.runtime.stdio import stdout_to_stderr

    with stdout_to_stderr():  # stdout carries the report only (vLLM and other libraries log to stdout)
        report = evaluate_pair(req)
    if args.json:
        print(json.dumps(to_json(report), indent=2))
    else:
        print(render_table(report))
        print(f"\nstored in {args.db}")
    return 0


def cmd_tasks(args) -> int:
    from forgetbench.tasks.command import main as tasks_main

    return tasks_main(args)


def cmd_demo(args) -> int:
    from forgetbench.demo import DEMO_METHODS, DemoConfig, run_demo

    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    if not methods or set(methods) - set(DEMO_METHODS):
        raise UserError(f"--methods {args.methods!r}: choose from {', '.join(DEMO_METHODS)}")
    return run_demo(DemoConfig(methods=methods, out=args.out, db=args.db, force=args.force, dtype=args.dtype))


def cmd_info(args) -> int:
    from forgetbench.info import main as info_main

    return info_main(args.json, measure=not args.no_measure)


def _add_submissions(sub) -> None:
    e = sub.add_parser("export", help="write a stored pair as a leaderboard entry (results.json + metadata template)")
    e.add_argument("--db", type=Path, default=default_db())
    e.add_argument("--pair", help="pair id (or a unique prefix)")
    e.add_argument("--base", help="content hash, unique hash prefix, or spec as stored")
    e.add_argument("--tuned", help="content hash, unique hash prefix, or spec as stored")
    e.add_argument("--target", help="with --base/--tuned: the pair's target task")
    e.add_argument("--out", type=Path, required=True, help="entry folder, e.g. submissions/<id>")
    e.add_argument("--id", help="entry id (default: the --out folder name)")
    v = sub.add_parser("validate", help="check leaderboard entries")
    v.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="entry folders or a submissions root")
    v.add_argument("--root", type=Path, help="submissions root to compare against (default: the paths' root)")
    v.add_argument("--json", action="store_true")


def cmd_export(args) -> int:
    from forgetbench.leaderboard.export import main as export_main

    return export_main(args)


def cmd_validate(args) -> int:
    from forgetbench.leaderboard.validate import main as validate_main

    return validate_main(args)


def cmd_leaderboard(args) -> int:
    from forgetbench.leaderboard.build import cli_build

    return cli_build(args.submissions, args.out, args.templates)


def _add_toy(sub) -> None:
    t = sub.add_parser("toy", help="toy experiments that explain forgetting (seconds on CPU)")
    ts = t.add_subparsers(dest="toy_command", required=True)
    m = ts.add_parser("mog", help="mixture of Gaussians: SFT-like forward KL vs RL-like reverse KL (Retaining by Doing)")
    m.add_argument("--steps", type=COUNT, default=300, help="training steps per run (default 300)")
    m.add_argument("--lr", type=positive, default=0.05, help="Adam learning rate (default 0.05)")
    m.add_argument("--seed", type=SEED, default=0)
    m.add_argument("--out", type=Path, default=Path("toy_mog.png"), help="figure, .png or .svg (default toy_mog.png)")
    m.add_argument("--json", action="store_true", help="print the runs as JSON on stdout")
    p = ts.add_parser("parity", help="RL's Razor parity experiment: SFT label choices vs RL, forgetting vs KL "
                                     "(sklearn 8x8 digits)")
    p.add_argument("--steps", type=COUNT, default=200, help="fine-tuning steps per run (default 200)")
    p.add_argument("--lrs", type=_lrs, default=(0.001, 0.003, 0.01),
                   help="comma-separated Adam learning rates in (0, 1] (default 0.001,0.003,0.01)")
    p.add_argument("--seeds", type=COUNT, default=2, help="seeds per method and lr (default 2: 4x3x2 = 24 runs)")
    p.add_argument("--seed", type=SEED, default=0, help="first seed; also seeds the base model (default 0)")
    p.add_argument("--out", type=Path, default=Path("toy_parity.png"), help="figure, .png or .svg (default toy_parity.png)")
    p.add_argument("--json", action="store_true", help="print the runs, the fit and per-method means as JSON")


def _lrs(text: str) -> tuple[float, ...]:
    """An argparse type: comma-separated learning rates, each in (0, 1]."""
    try:
        vals = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers") from None
    if not all(0 < v <= 1 for v in vals):
        raise argparse.ArgumentTypeError(f"each learning rate must be in (0, 1], got {text}")
    return vals


def cmd_toy(args) -> int:
    from forgetbench.toy import command

    if args.toy_command == "parity":
        return command.parity(args.steps, args.lrs, args.seeds, args.seed, args.out, args.json)
    return command.mog(args.steps, args.lr, args.seed, args.out, args.json)


def _add_train(sub) -> None:
    from forgetbench.train.methods import METHODS
    from forgetbench.train.run import add_arguments

    add_arguments(sub.add_parser("train", help=f"fine-tune BASE on a target task: {' | '.join(METHODS)} (TRL)"))


def cmd_train(args) -> int:
    from forgetbench.train.run import main as train_main

    return train_main(args)


def cmd_law(args) -> int:
    from forgetbench.kl.command import main as law_main

    return law_main(args.db, args.out, args.json, args.x)


def _add_compare(sub) -> None:
    c = sub.add_parser("compare", help="paired comparison of two lm-eval --log_samples outputs (files or folders)")
    c.add_argument("a", type=Path, metavar="A", help="samples_<task>_<date>.jsonl, or an lm-eval output folder")
    c.add_argument("b", type=Path, metavar="B", help="the same for the other model; delta = B - A")
    c.add_argument("--json", action="store_true")


def cmd_compare(args) -> int:
    from forgetbench.eval.compare import main as compare_main

    return compare_main(args)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="forgetbench", description="Measure catastrophic forgetting: score (base, tuned) pairs, store, compare.")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_eval(sub)
    from forgetbench.tasks.command import add_arguments as add_tasks_arguments

    tasks_parsers = add_tasks_arguments(sub.add_parser("tasks", help="list the registered tasks (and yours); "
                                                                    "`tasks hash NAME`"))
    d = sub.add_parser("demo", help="bundled model -> SFT, on-policy SFT and RL on lite_ifeval -> eval of the "
                       "three pairs on the demo suite (lite_ifeval + 3 lite probes) -> leaderboard")
    d.add_argument("--out", type=Path, help="where entries, site and DB go (default $FORGETBENCH_HOME/demo)")
    d.add_argument("--db", type=Path, help=f"DuckDB store (default OUT/{DB_FILE})")
    d.add_argument("--methods", default="sft,onpolicy-sft,rl", help="comma-separated subset of sft,onpolicy-sft,rl")
    d.add_argument("--force", action="store_true", help="retrain even if cached checkpoints exist")
    d.add_argument("--dtype", default="auto", choices=DTYPES, help="training and evaluation dtype (default auto)")
    i = sub.add_parser("info", help="what a bug report needs: CPU and its flags, threads, versions, the dtype auto "
                       "picks and why, store and cache paths")
    i.add_argument("--json", action="store_true")
    i.add_argument("--no-measure", action="store_true", help="skip the 1-second bfloat16/float32 matmul measurement")
    _add_submissions(sub)
    _add_toy(sub)
    _add_train(sub)
    lb = sub.add_parser("leaderboard", help="static leaderboard site from submission folders")
    lbs = lb.add_subparsers(dest="lb_command", required=True)
    b = lbs.add_parser("build", help="validate submissions, ingest into OUT/leaderboard.duckdb, render the site")
    b.add_argument("--submissions", type=Path, default=Path("submissions"))
    b.add_argument("--out", type=Path, default=Path("site"))
    b.add_argument("--templates", type=Path, help="templates override folder (leaderboard/README.md)")
    law = sub.add_parser("law", help="fit forgetting against KL(pi0 || pi) on the target across stored pairs")
    law.add_argument("--db", type=Path, default=default_db())
    law.add_argument("--out", type=Path, help="plot file, .png or .svg (default <db stem>_law.png)")
    law.add_argument("--x", choices=["fwd_seq", "fwd_tok", "rev_tok", "tv_tok"], default="fwd_seq")
    law.add_argument("--json", action="store_true")
    _add_compare(sub)
    # every command that reads the registry also reads the user's task folders
    readers = [sub.choices[c] for c in ("eval", "train", "export", "validate", "law")]
    for p in [*readers, *tasks_parsers, lbs.choices["build"]]:
        # SUPPRESS: absent in a subcommand must not erase what its parent command got (tasks --tasks-dir D hash X)
        p.add_argument("--tasks-dir", type=Path, action="append", default=argparse.SUPPRESS, metavar="DIR",
                       help=f"a folder of your own task YAMLs, read beside the registry (repeatable; also "
                            f"${TASKS_DIRS_ENV}, {os.pathsep!r}-separated; tasks/README.md)")
    return parser


COMMANDS = {"eval": cmd_eval, "tasks": cmd_tasks, "demo": cmd_demo, "info": cmd_info, "law": cmd_law, "export": cmd_export, "leaderboard": cmd_leaderboard, "toy": cmd_toy, "train": cmd_train,
            "validate": cmd_validate, "compare": cmd_compare}


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # --help (0) or a usage error (2, its one line already printed)
        return e.code if isinstance(e.code, int) else 2
    try:
        if getattr(args, "tasks_dir", None):
            from forgetbench.tasks.registry import use_tasks_dirs

            use_tasks_dirs(args.tasks_dir)
        return COMMANDS[args.command](args)
    except UserError as e:
        print(f"forgetbench: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        if e.errno not in _ENV_ERRNOS:
            raise
        # the environment, not a bug: a full disk or FORGETBENCH_HOME, a read-only or unreadable path
        where = e.filename or f"while writing (forgetbench writes to the store's folder and to FORGETBENCH_HOME=" \
            f"{os.environ.get('FORGETBENCH_HOME', '~/.cache/forgetbench')})"
        print(f"forgetbench: error: {e.strerror}: {where}", file=sys.stderr)
        return 2
    except Exception as e:
        from forgetbench.runtime.dbfile import explain, is_db_error

        if not is_db_error(e):
            raise
        print(f"forgetbench: error: {explain(e, getattr(args, 'db', None) or 'the store')}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("forgetbench: interrupted; finished tasks are stored and will be reused", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
