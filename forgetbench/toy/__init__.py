"""`forgetbench toy`: seconds-long experiments that show why RL forgets less (mixture of Gaussians, parity)."""
