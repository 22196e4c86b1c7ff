"""Fast whole-task checks of results.json items (forgetbench.leaderboard.schema's per-item part).

`item_ok` / `kl_item_ok` say whether an item passes every per-item check schema._task / schema._kl make;
`all_items_ok` / `all_kl_items_ok` answer the same for a whole task a field at a time (map/itemgetter
passes in C instead of a dozen Python-level tests per item). They never pass what the per-item checks
refuse; when they say no, schema runs its checks item by item and words each problem. An entry has up to
100 x 20,000 items, and a leaderboard build checks thousands of entries.
"""

from __future__ import annotations

import math
import re
from itertools import chain, repeat
from operator import eq, itemgetter

from forgetbench.leaderboard.submission import DOC_HASH

_ITEM_KEYS = frozenset(("doc_id", "doc_hash", "cluster", "stratum", "base", "tuned", "prompt"))
_SIDE_KEYS = frozenset(("score", "metrics", "response"))


def _finite(v) -> bool:
    return type(v) is int or (type(v) is float and math.isfinite(v))


def _side_ok(s) -> bool:
    return (type(s) is dict and s.keys() == _SIDE_KEYS and _finite(s["score"]) and type(s["response"]) is str
            and len(s["response"]) <= 100_000 and type(s["metrics"]) is dict
            and all(map(_finite, s["metrics"].values())) and all(type(k) is str for k in s["metrics"]))


def item_ok(it) -> bool:
    """True only for an item on which the checks in schema._task report nothing; those checks (and their
    messages) run on every other item. An entry has up to 100 x 20,000 items and building the JSON
    paths of fields that pass costs more than checking them."""
    return (type(it) is dict and it.keys() == _ITEM_KEYS and type(it["doc_id"]) is int and 0 <= it["doc_id"] <= 10**9
            and type(it["doc_hash"]) is str and len(it["doc_hash"]) <= 100_000 and DOC_HASH.fullmatch(it["doc_hash"])
            is not None and all(x is None or (type(x) is str and len(x) <= 500) for x in (it["cluster"], it["stratum"]))
            and type(it["prompt"]) is str and len(it["prompt"]) <= 100_000 and _side_ok(it["base"])
            and _side_ok(it["tuned"]))


_DOC_HASHES = re.compile(f"(?:{DOC_HASH.pattern}\n)*{DOC_HASH.pattern}")  # DOC_HASH, one per line
_STR_OR_NONE = frozenset((str, type(None)))
_NUMBER_TYPES = frozenset((int, float))


def numbers_ok(xs: list) -> bool:
    """Every value an int or a finite float (bools are not numbers here, as in _finite)."""
    if not set(map(type, xs)) <= _NUMBER_TYPES:
        return False
    try:  # a finite exact sum means finite values (an inf or nan makes it inf, nan or raise)
        return math.isfinite(math.fsum(xs))
    except (OverflowError, ValueError):
        return False


def _texts_ok(xs: list, max_len: int, null: bool = False) -> bool:
    kinds = set(map(type, xs))
    if not kinds <= (_STR_OR_NONE if null else {str}):
        return False
    return str not in kinds or max(map(len, filter(None, xs)), default=0) <= max_len


def _same_keys(rows: list, keys: frozenset) -> bool:
    """Every row a dict with exactly these keys."""
    return set(map(type, rows)) == {dict} and all(map(eq, repeat(keys), map(dict.keys, rows)))


def all_items_ok(items: list) -> bool:
    """all(map(item_ok, items)), a field at a time over the whole task: map/itemgetter passes run in
    C, ~5x faster than item_ok's dozen Python-level tests per item on this format's short items."""
    if not _same_keys(items, _ITEM_KEYS):
        return False
    ids = list(map(itemgetter("doc_id"), items))
    if not (set(map(type, ids)) == {int} and min(ids) >= 0 and max(ids) <= 10**9):
        return False
    hashes = list(map(itemgetter("doc_hash"), items))
    if not _texts_ok(hashes, 64):
        return False
    joined = "\n".join(hashes)  # a hash holding a newline would pass as two: the count rules that out
    if _DOC_HASHES.fullmatch(joined) is None or joined.count("\n") != len(hashes) - 1:
        return False
    if not (_texts_ok(list(map(itemgetter("cluster"), items)), 500, True)
            and _texts_ok(list(map(itemgetter("stratum"), items)), 500, True)
            and _texts_ok(list(map(itemgetter("prompt"), items)), 100_000)):
        return False
    sides = [*map(itemgetter("base"), items), *map(itemgetter("tuned"), items)]
    if not _same_keys(sides, _SIDE_KEYS):
        return False
    metrics = list(map(itemgetter("metrics"), sides))
    return (set(map(type, metrics)) == {dict} and numbers_ok(list(map(itemgetter("score"), sides)))
            and _texts_ok(list(map(itemgetter("response"), sides)), 100_000)
            and numbers_ok(list(chain.from_iterable(map(dict.values, metrics))))
            and set(map(type, chain.from_iterable(metrics))) <= {str})


KL_INTS = ("seq", "prompt_index", "n_tokens")
KL_NUMBERS = ("fwd", "rev", "tv")
_KL_ITEM_KEYS = frozenset(KL_INTS + KL_NUMBERS)


def kl_item_ok(it) -> bool:
    """True only for a KL item on which the checks in _kl report nothing (as item_ok for task items)."""
    return (type(it) is dict and it.keys() == _KL_ITEM_KEYS and all(type(it[f]) is int and it[f] >= 0 for f in KL_INTS)
            and all(_finite(it[f]) for f in KL_NUMBERS))


def all_kl_items_ok(items: list) -> bool:
    """all(map(kl_item_ok, items)), a field at a time (as all_items_ok)."""
    if not _same_keys(items, _KL_ITEM_KEYS):
        return False
    ints = list(chain.from_iterable(map(itemgetter(*KL_INTS), items)))
    return (set(map(type, ints)) == {int} and min(ints) >= 0
            and numbers_ok(list(chain.from_iterable(map(itemgetter(*KL_NUMBERS), items)))))
