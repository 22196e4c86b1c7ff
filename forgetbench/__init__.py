"""forgetbench: measure what post-training forgets."""

__version__ = "0.1.0"
