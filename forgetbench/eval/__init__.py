"""`forgetbench eval`: run a (base, tuned) pair through lm-eval on a backend, store per-item results, report."""
