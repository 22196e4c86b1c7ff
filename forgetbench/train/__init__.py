"""`forgetbench train`: recipes and the reference methods (SFT, self-SFT, on-policy SFT, GRPO)."""
