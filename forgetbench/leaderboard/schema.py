"""Schema of the submission files (format v2, and v1 for reading; see submissions/README.md): types, required and
unknown fields, enums, hashes, ids and count caps, reported as Problem(file, JSON path, problem).

Pure structure only: whether the numbers are right (recomputed from the items), whether the tasks
exist in the registry and how entries relate to each other is forgetbench.leaderboard.validate's job. Checks
descend only where the format expects structure, so their depth is bounded by the format itself.
"""

from __future__ import annotations

import math
import re
from typing import Any

from forgetbench.leaderboard.checker import Checker, key_path, kind_of
from forgetbench.leaderboard.itemcheck import (
    KL_INTS, KL_NUMBERS, all_items_ok, all_kl_items_ok, item_ok, kl_item_ok,
)
from forgetbench.leaderboard.submission import (
    DOC_HASH, ENTRY_ID, FORMAT, FORMAT_VERSION, GEN_KEY, HEX64, HUB_ID, MAX_ITEMS,
    MAX_KL_ITEMS, MAX_N_BOOT, MAX_TASKS, METADATA_FILE, READ_FORMAT_VERSIONS, RESULTS_FILE, ROLES,
    SCHEMA_VERSION, SPDX, VERIFIED_FILE, Problem, methods,
)

VERDICTS = ("dropped", "improved", "gained", "lost", "n.s.")


def _placeholders(c: Checker, v, path: str) -> None:
    """Template values the submitter never replaced ("TODO: ...")."""
    if isinstance(v, str) and v.strip().upper().startswith("TODO"):
        c.err(path, "placeholder from the template was not filled in")
    elif isinstance(v, dict):
        for k, x in v.items():
            _placeholders(c, x, key_path(path, str(k)))


def check_metadata(md: Any) -> list[Problem]:
    c = Checker(METADATA_FILE)
    req = ("schema_version", "id", "title", "base", "tuned", "method", "target", "training_data",
           "hyperparameters", "compute", "contact", "licence")
    if not c.mapping(md, "", req, ("reference", "notes")) and not isinstance(md, dict):
        return c.problems()
    g = md.get
    if "schema_version" in md and g("schema_version") != SCHEMA_VERSION:
        c.err("schema_version", f"must be {SCHEMA_VERSION}, got {str(g('schema_version'))[:20]!r}")
    if "id" in md:
        c.string(g("id"), "id", ENTRY_ID, what="a valid entry id ([a-z0-9][a-z0-9._-]{2,80})")
    for k in ("title", "training_data", "compute", "contact"):
        if k in md and c.string(g(k), k, max_len=2000) and not g(k).strip():
            c.err(k, "must not be empty")
    for side in ("base", "tuned"):
        m = g(side)
        if side in md and c.mapping(m, side, ("content_hash",), ("hub_id", "revision")):
            c.string(m.get("hub_id"), f"{side}.hub_id", HUB_ID, null=True, what="a hub id org/name")
            c.string(m.get("revision"), f"{side}.revision", null=True, max_len=200)
            c.string(m.get("content_hash"), f"{side}.content_hash", HEX64, what="a 64-hex sha256")
    if "method" in md and not (isinstance(g("method"), str) and g("method").upper().startswith("TODO")):
        c.choice(g("method"), "method", methods())
    if "target" in md:
        c.string(g("target"), "target", max_len=200)
    hp = g("hyperparameters")
    if "hyperparameters" in md and c.mapping(hp, "hyperparameters", strict=False):
        for k, v in hp.items():
            if not isinstance(v, (str, int, float, bool, type(None))):
                c.err(key_path("hyperparameters", str(k)), f"must be a scalar, got {kind_of(v)}")
            elif isinstance(v, float) and not math.isfinite(v):
                c.err(key_path("hyperparameters", str(k)), "must be finite")
    if "licence" in md and not str(g("licence")).upper().startswith("TODO"):
        c.string(g("licence"), "licence", SPDX, what="an SPDX licence id (e.g. Apache-2.0)", max_len=200)
    if "reference" in md:
        c.boolean(g("reference"), "reference")
    if "notes" in md:
        c.string(g("notes"), "notes", null=True, max_len=20_000)
    _placeholders(c, md, "")
    return c.problems()


def _estimate(c: Checker, v, path: str, v2: bool = False) -> bool:
    if not c.mapping(v, path, ("value", "lo", "hi", *(("method",) if v2 else ()))):
        return False
    ok = all([c.number(v[k], f"{path}.{k}") for k in ("value", "lo", "hi")])
    return (c.string(v["method"], f"{path}.method", max_len=100) and ok) if v2 else ok


def _p_value(c: Checker, v, path: str) -> None:
    if v is not None and c.number(v, path) and not 0 <= v <= 1:
        c.err(path, f"{v!r} is not a probability")


def _aggregate(c: Checker, a, path: str, is_sub: bool, v2: bool) -> None:
    req = ("n", "base", "tuned", "delta", "forgotten", "learned") + (("metric",) if is_sub else ("sub",))
    if v2:
        req += ("p_mcnemar",) if is_sub else ("p_mcnemar", "p_holm", "verdict")
    if not c.mapping(a, path, req):
        return
    if is_sub:
        c.string(a["metric"], f"{path}.metric", max_len=200)
    c.integer(a["n"], f"{path}.n", 1, MAX_ITEMS)
    for k in ("base", "tuned", "delta"):
        _estimate(c, a[k], f"{path}.{k}", v2)
    for k in ("forgotten", "learned"):
        c.integer(a[k], f"{path}.{k}", 0, MAX_ITEMS)
    if v2:
        _p_value(c, a["p_mcnemar"], f"{path}.p_mcnemar")
        if not is_sub:
            _p_value(c, a["p_holm"], f"{path}.p_holm")
            if a["verdict"] is not None:
                c.choice(a["verdict"], f"{path}.verdict", VERDICTS)
    if not is_sub and c.mapping(a["sub"], f"{path}.sub", strict=False):
        for name, s in a["sub"].items():
            _aggregate(c, s, key_path(f"{path}.sub", str(name)), True, v2)


def _side(c: Checker, s, path: str) -> None:
    if not c.mapping(s, path, ("score", "metrics", "response")):
        return
    c.number(s["score"], f"{path}.score")
    c.string(s["response"], f"{path}.response")
    if c.mapping(s["metrics"], f"{path}.metrics", strict=False):
        for k, x in s["metrics"].items():
            c.number(x, key_path(f"{path}.metrics", str(k)))


def _task(c: Checker, t, p: str, v2: bool) -> None:
    req = ("task", "version", "role", "primary_metric", "data_hash", "gen_key", "gen_settings", "aggregate", "items")
    if not c.mapping(t, p, req, ("tuned_gen_key", "tuned_gen_settings")):
        return
    c.string(t["task"], f"{p}.task", max_len=200)
    c.string(t["version"], f"{p}.version", max_len=50)
    c.choice(t["role"], f"{p}.role", ROLES)
    c.string(t["primary_metric"], f"{p}.primary_metric", max_len=200)
    c.string(t["data_hash"], f"{p}.data_hash", HEX64, what="a 64-hex sha256")
    c.string(t["gen_key"], f"{p}.gen_key", GEN_KEY, what="a hex settings key")
    c.mapping(t["gen_settings"], f"{p}.gen_settings", strict=False)
    if "tuned_gen_key" in t:
        c.string(t["tuned_gen_key"], f"{p}.tuned_gen_key", GEN_KEY, what="a hex settings key")
    if "tuned_gen_settings" in t:
        c.mapping(t["tuned_gen_settings"], f"{p}.tuned_gen_settings", strict=False)
    _aggregate(c, t["aggregate"], f"{p}.aggregate", False, v2)
    if not c.items(t["items"], f"{p}.items", 1, MAX_ITEMS) or all_items_ok(t["items"]):
        return
    for j, it in enumerate(t["items"]):
        if item_ok(it):
            continue
        q = f"{p}.items[{j}]"
        if not c.mapping(it, q, ("doc_id", "doc_hash", "cluster", "stratum", "base", "tuned", "prompt")):
            continue
        c.integer(it["doc_id"], f"{q}.doc_id", 0, 10**9)
        c.string(it["doc_hash"], f"{q}.doc_hash", DOC_HASH, what="a hex row hash")
        c.string(it["cluster"], f"{q}.cluster", null=True, max_len=500)
        c.string(it["stratum"], f"{q}.stratum", null=True, max_len=500)
        c.string(it["prompt"], f"{q}.prompt")
        _side(c, it["base"], f"{q}.base")
        _side(c, it["tuned"], f"{q}.tuned")


def _kl(c: Checker, k) -> None:
    req = ("task", "settings", "n_seq", "n_tokens", "fwd_seq", "fwd_tok", "rev_tok", "tv_tok", "items")
    if not c.mapping(k, "kl", req):
        return
    c.string(k["task"], "kl.task", max_len=200)
    s = k["settings"]
    if c.mapping(s, "kl.settings", ("m_prompts", "k_samples", "max_new_tokens", "seed", "dtype"),
                 ("n_boot", "boot_seed")):
        for f in ("m_prompts", "k_samples", "max_new_tokens", "seed"):
            c.integer(s[f], f"kl.settings.{f}", 0)
        c.string(s["dtype"], "kl.settings.dtype", max_len=50)
        if "n_boot" in s:
            c.integer(s["n_boot"], "kl.settings.n_boot", 1, MAX_N_BOOT)
        if "boot_seed" in s:
            c.integer(s["boot_seed"], "kl.settings.boot_seed", 0)
    c.integer(k["n_seq"], "kl.n_seq", 1, MAX_KL_ITEMS)
    c.integer(k["n_tokens"], "kl.n_tokens", 0)
    for f in ("fwd_seq", "fwd_tok", "rev_tok", "tv_tok"):
        _estimate(c, k[f], f"kl.{f}")
    if c.items(k["items"], "kl.items", 1, MAX_KL_ITEMS) and not all_kl_items_ok(k["items"]):
        for j, it in enumerate(k["items"]):
            if kl_item_ok(it):
                continue
            q = f"kl.items[{j}]"
            if c.mapping(it, q, KL_INTS + KL_NUMBERS):
                for f in KL_INTS:
                    c.integer(it[f], f"{q}.{f}", 0)
                for f in KL_NUMBERS:
                    c.number(it[f], f"{q}.{f}")


def check_results(r: Any) -> list[Problem]:
    c = Checker(RESULTS_FILE)
    v2 = not (isinstance(r, dict) and r.get("format_version") == 1)
    # v1 carried the bootstrap that made its CIs; v2 the interval settings (forgetbench.stats.settings)
    req = ("format", "format_version", "exported_at", "versions", "seed", "pair", "intervals" if v2 else "bootstrap",
           "tasks", "mean_drop", "kl")
    if not c.mapping(r, "", req) and not isinstance(r, dict):
        return c.problems()
    g = r.get
    if "format" in r and g("format") != FORMAT:
        c.err("format", f"must be {FORMAT!r}")
    if "format_version" in r and (isinstance(g("format_version"), bool) or g("format_version") not in READ_FORMAT_VERSIONS):
        c.err("format_version", f"must be {FORMAT_VERSION} (this forgetbench reads versions"
              f" {', '.join(map(str, READ_FORMAT_VERSIONS))}; re-export the pair with `forgetbench export`)")
    if "exported_at" in r:
        c.string(g("exported_at"), "exported_at", re.compile(r"\d{4}-\d\d-\d\dT[0-9:.+Z-]+"), what="an ISO 8601 time")
    if "versions" in r and c.mapping(g("versions"), "versions", strict=False):
        for k, v in g("versions").items():
            c.string(v, key_path("versions", str(k)), null=True, max_len=100)
    if "seed" in r:
        c.integer(g("seed"), "seed")
    p = g("pair")
    if "pair" in r and c.mapping(p, "pair", ("base_hash", "tuned_hash", "base_spec", "tuned_spec", "target", "settings")):
        for k in ("base_hash", "tuned_hash"):
            c.string(p[k], f"pair.{k}", HEX64, what="a 64-hex sha256")
        for k in ("base_spec", "tuned_spec"):
            c.string(p[k], f"pair.{k}", max_len=1000)
        c.string(p["target"], "pair.target", null=True, max_len=200)
        c.mapping(p["settings"], "pair.settings", strict=False)
    b = g("bootstrap")
    if not v2 and "bootstrap" in r and c.mapping(b, "bootstrap", ("n_boot", "seed", "ci")):
        c.integer(b["n_boot"], "bootstrap.n_boot", 1, MAX_N_BOOT)
        c.integer(b["seed"], "bootstrap.seed", 0)
        if b["ci"] != 0.95 or isinstance(b["ci"], bool):
            c.err("bootstrap.ci", "must be 0.95")
    iv = g("intervals")
    if v2 and "intervals" in r and c.mapping(iv, "intervals", ("scheme", "level", "test")):
        c.string(iv["scheme"], "intervals.scheme", max_len=100)
        c.string(iv["test"], "intervals.test", max_len=100)
        if iv["level"] != 0.95 or isinstance(iv["level"], bool):
            c.err("intervals.level", "must be 0.95")
    if "tasks" in r and c.items(g("tasks"), "tasks", 1, MAX_TASKS):
        for i, t in enumerate(g("tasks")):
            _task(c, t, f"tasks[{i}]", v2)
    if "mean_drop" in r and g("mean_drop") is not None:
        _estimate(c, g("mean_drop"), "mean_drop", v2)
    if "kl" in r and g("kl") is not None:
        _kl(c, g("kl"))
    return c.problems()


def check_verified(v: Any) -> list[Problem]:
    """verified.yaml: a list of {id, sha256} (sha256 of the entry's results.json bytes)."""
    c = Checker(VERIFIED_FILE)
    if v is None:
        return []
    if not isinstance(v, list):
        c.err("", f"must be a list of {{id, sha256}}, got {kind_of(v)}")
        return c.problems()
    for i, e in enumerate(v):
        if c.mapping(e, f"[{i}]", ("id", "sha256"), ("note",)):
            c.string(e["id"], f"[{i}].id", ENTRY_ID, what="a valid entry id")
            c.string(e["sha256"], f"[{i}].sha256", HEX64, what="a 64-hex sha256")
    return c.problems()
