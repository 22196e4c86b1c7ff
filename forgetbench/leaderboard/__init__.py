"""Submissions: the entry format and schema, export, validation (recomputed numbers, trust), the static site."""
