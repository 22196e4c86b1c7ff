"""Forward KL(pi0 || pi) on the target's prompts: base samples, the estimator, the pair's KL, the forgetting law."""
