"""The package layout (README, Architecture): sub-packages by stage that import only downward, no
import cycles, and the light paths (the CLI's help, `forgetbench tasks`, the leaderboard) free of the
heavy model libraries. The import graph is read from the source with ast, lazy imports included."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from support import REPO

PKG = REPO / "forgetbench"
HEAVY = ("torch", "transformers", "lm_eval", "vllm", "trl", "peft", "datasets")

# Each stage may import only stages of the layers above it in this list (and itself): stats, models
# and tasks know nothing of evaluation; the store knows records, not how they were made; KL knows the
# store, eval knows KL (it measures a pair's KL); training and the toys sit on top of evaluation; the
# leaderboard on top of them (its schema reads the training-method registry); the commands (cli, demo, info) may use everything. The ground layer (the root package's
# version, typed records, errors, paths, argparse types, the machine) may be used by all and its
# members may use each other.
LAYERS = [
    {"__init__", "records", "errors", "paths", "argtypes", "runtime"},
    {"stats", "models", "tasks"},
    {"store"},
    {"kl"},
    {"eval"},
    {"train", "toy"},
    {"leaderboard"},
    {"cli", "demo", "info"},
]
OPEN_LAYERS = (0, len(LAYERS) - 1)  # members may import each other

def _module(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """forgetbench modules `path` imports anywhere in its body (absolute or relative)."""
    tree, me = ast.parse(path.read_text()), _module(path)
    pkg = me if path.name == "__init__.py" else me.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("forgetbench")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(pkg.split(".")[: len(pkg.split(".")) - node.level + 1] + ([base] if base else []))
            if not base.startswith("forgetbench"):
                continue
            for a in node.names:  # `from forgetbench.x import y`: y may be a module
                sub = f"{base}.{a.name}"
                out.add(sub if _exists(sub) else base)
    return {m for m in out if m != me}


def _exists(mod: str) -> bool:
    p = PKG.parent.joinpath(*mod.split("."))
    return p.with_suffix(".py").is_file() or (p / "__init__.py").is_file()


def _graph() -> dict[str, set[str]]:
    return {_module(p): _imports(p) for p in PKG.rglob("*.py") if "__pycache__" not in p.parts}


def _stage(mod: str) -> str:
    parts = mod.split(".")
    return parts[1] if len(parts) > 1 else "__init__"  # forgetbench/__init__.py: the version


def _layer(stage: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if stage in layer)


def test_every_module_belongs_to_a_layer():
    stages = {_stage(m) for m in _graph()}
    assert stages <= set().union(*LAYERS), f"add these to LAYERS (and the README): {stages - set().union(*LAYERS)}"


def test_packages_import_only_downward():
    def wrong(m: str, d: str) -> bool:
        lm, ld = _layer(_stage(m)), _layer(_stage(d))
        return ld > lm or (ld == lm and _stage(d) != _stage(m) and lm not in OPEN_LAYERS)

    up = sorted(f"{m} -> {d}" for m, deps in _graph().items() for d in deps if wrong(m, d))
    assert not up, "imports that run up or sideways across stages:\n" + "\n".join(up)


def test_no_import_cycles():
    g = _graph()
    index, low, stack, on, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(v):  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in g.get(v, ()):
            if w not in g:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10000))
    for v in g:
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_no_private_names_imported_across_modules():
    bad = []
    for p in PKG.rglob("*.py"):
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("forgetbench"):
                bad += [f"{_module(p)}: {node.module}.{a.name}" for a in node.names
                        if a.name.startswith("_") and not a.name.startswith("__")]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("code", [
    "from forgetbench.cli import main; import contextlib, io\n"
    "with contextlib.redirect_stdout(io.StringIO()):\n"
    "    try: main(['--help'])\n"
    "    except SystemExit: pass\n"
    "    main(['tasks'])",
    "import pkgutil, importlib, forgetbench.leaderboard as L\n"
    "for m in pkgutil.iter_modules(L.__path__): importlib.import_module('forgetbench.leaderboard.' + m.name)",
    "import forgetbench.store, forgetbench.stats, forgetbench.stats.fit, forgetbench.tasks.registry",
], ids=["cli-help-and-tasks", "leaderboard", "store-stats-registry"])
def test_light_paths_import_no_model_library(code):
    check = code + f"\nimport sys; bad = [m for m in {HEAVY!r} if m in sys.modules]; assert not bad, bad"
    r = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, cwd=PKG.parent)
    assert r.returncode == 0, r.stderr[-2000:]
