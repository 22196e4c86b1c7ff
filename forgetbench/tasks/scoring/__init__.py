"""Scorers shared by the task YAML utils, the eval and any trainer that uses them as rewards.

One implementation per answer format, so "correct" means the same thing when a task is evaluated by
lm-eval (`tasks/<name>/utils.py` are thin wrappers around these) and when a trainer computes a reward.
Pure Python, CPU-only, no heavy imports.
"""
