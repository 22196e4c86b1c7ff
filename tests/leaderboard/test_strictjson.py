"""forgetbench.leaderboard.strictjson: results.json parsed strictly (finite numbers, no repeated keys,
bounded nesting), by orjson where the file cannot need the stdlib's callbacks or hooks, with the same
values and messages either way."""

import json

import pytest


def test_parse_json_reads_numbers_exactly_as_the_strict_callbacks():
    # parse_json skips its per-number callbacks when no token could need them: the values must not change
    from forgetbench.leaderboard import strictjson as sj

    doc = (b'{"a": [1, -9223372036854775807, 0.1, 1e-5, 2.5E+99, -0.0, 1234567890123456789.25, 7e-99],'
           b' "s": "x 1e5 9999999999"}')
    strict = json.loads(doc, parse_float=sj._finite_float, parse_int=sj._small_int)
    got = sj.parse_json(doc)
    assert got == strict and repr(got) == repr(strict) and [type(x) for x in got["a"]] == [type(x) for x in strict["a"]]
    for bad, msg in ((b'{"a": 1E400}', "overflows"), (b'{"a": 1.0e0309}', "overflows"),
                     (b'{"a": -12345678901234567890}', "too large"), (b'{"a": [' + b"9" * 400 + b'.5]}', "overflows")):
        with pytest.raises(sj.Invalid, match=msg):
            sj.parse_json(bad)
    # refused wherever the token stands: the document itself, after [ or , and whitespace, pretty-printed
    for bad in (b"1e999", b" -2E+400", b"[1,\n  1e999]", b'{"a":\n\t-1.5e+400}', b"[1, 12345678901234567890]",
                b'{"s": "ends in a backslash \\\\", "x": 1e999}'):
        with pytest.raises(sj.Invalid, match="overflows|too large"):
            sj.parse_json(bad)
    # text that merely looks like such a number takes the careful path and parses the same
    assert sj.parse_json(b'{"s": "12345678901234567890 e123", "x": 1e-300}') == {"s": "12345678901234567890 e123",
                                                                                 "x": 1e-300}


def test_parse_json_finds_every_repeated_key_like_a_pairs_hook():
    # parse_json lets the C decoder build objects and compares their key count with the ':' members
    # counted outside strings: random documents (keys with colons, quotes and backslashes, repeats at
    # any depth) must get the verdict and the value of a decoder with a duplicate-checking pairs hook.
    import random

    from forgetbench.leaderboard import strictjson as sj

    rng = random.Random(7)
    keys = ["a", "b", "a:b", r"q\"", r"\\", ":", r"\\:\"", r"\u00e9", r"\ud83d\ude00", ""]

    def doc(depth: int) -> str:
        r = rng.random()
        if depth > 3 or r < 0.3:
            return rng.choice(["1", '"x:y"', r'"\\"', '":"', "null", "[]", "{}", r'"a\\\":"'])
        if r < 0.5:
            return "[" + ", ".join(doc(depth + 1) for _ in range(rng.randint(0, 3))) + "]"
        ks = [rng.choice(keys) for _ in range(rng.randint(0, 4))]
        return "{" + ",".join(f'"{k}" : {doc(depth + 1)}' for k in ks) + "}"

    seen = {True: 0, False: 0}
    for _ in range(3000):
        text = doc(0).encode()
        try:
            want = json.loads(text, object_pairs_hook=sj._unique_keys)
        except ValueError:
            want = None
        try:
            got = sj.parse_json(text)
        except sj.Invalid as e:
            assert want is None and "duplicate key" in e.problem.problem, text
            seen[False] += 1
            continue
        assert got == want, text
        seen[True] += 1
    assert min(seen.values()) > 300, seen  # both verdicts were exercised


def test_hex_hashes_do_not_cost_the_careful_number_path(monkeypatch):
    # every results.json holds sha256 hex ("...e039..."): that is not an exponent, so the callbacks stay off
    from forgetbench.leaderboard import strictjson as sj

    def never(token):
        raise AssertionError(f"careful path taken for {token}")

    monkeypatch.setattr(sj, "_finite_float", never)
    monkeypatch.setattr(sj, "_small_int", never)
    doc = b'{"h": "8f3e039b1e76cdc5e123d9", "x": [0.5, 1e-05, 12, -3.25e+12], "s": "ids 1234567890123456789"}'
    assert sj.parse_json(doc)["x"] == [0.5, 1e-05, 12, -3.25e12]
    quoted = b'{"s": "she said \\"1e999\\" and \\\\", "x": 2.5}'  # escaped quotes and backslash inside a string
    assert sj.parse_json(quoted) == {"s": 'she said "1e999" and \\', "x": 2.5}


def test_the_fast_decoder_reads_what_the_strict_stdlib_decoder_reads(monkeypatch):
    # parse_json reads a file without risky tokens with orjson: random numbers of every shape (a negative
    # 19-digit integer takes the careful path: orjson would make a float of -9999999999999999999) and
    # strings with escapes, quotes, backslashes and non-ASCII text must give the values, types and reprs
    # of json.loads with the strict callbacks; the fast path must really be the one taken.
    import math
    import random

    from forgetbench.leaderboard import strictjson as sj

    calls = []
    real = sj.orjson.loads
    monkeypatch.setattr(sj.orjson, "loads", lambda b: calls.append(1) or real(b))
    rng = random.Random(11)
    chars = [chr(c) for c in (*range(0x20, 0x7F), 0x0, 0x1F, 0xE9, 0x2028, 0xFEFF, 0x1F600, 0x10FFFF)]

    def number() -> str:
        r = rng.random()
        if r < 0.3:  # any 53-bit mantissa, magnitudes 1e-98 to 1e97 (a 3-digit exponent is risky)
            return repr(rng.choice((1, -1)) * math.ldexp((1 << 52) | rng.getrandbits(52), rng.randint(-380, 270)))
        if r < 0.5:
            return str(rng.randint(-10**18 + 1, 10**18 - 1))
        if r < 0.7:
            return f"{rng.randint(1, 9)}.{rng.randint(0, 10**15)}e{rng.randint(-99, 99)}"
        return f"{rng.random():.{rng.randint(1, 17)}f}"

    for _ in range(400):
        values = [number() for _ in range(20)]
        texts = [json.dumps(f"{i}" + "".join(rng.choice(chars) for _ in range(rng.randint(0, 8))),
                            ensure_ascii=rng.random() < 0.5) for i in range(20)]
        pairs = ", ".join(f"{t}: {v}" for t, v in zip(texts, values))
        doc = ("{" + pairs + f', "xs": [{", ".join(values)}]}}').encode()
        want = json.loads(doc, parse_float=sj._finite_float, parse_int=sj._small_int,
                          object_pairs_hook=sj._unique_keys)
        got = sj.parse_json(doc)
        assert repr(got) == repr(want) and [type(x) for x in got["xs"]] == [type(x) for x in want["xs"]], doc
    assert len(calls) > 350  # the rest hold a 20-digit run (-0.00016054978411863326): the careful path
    # a negative 19-digit integer: the careful path, and an int stays an int; 19 digits after a point do not count
    calls.clear()
    got = sj.parse_json(b"[-9999999999999999999, 9999999999999999999]")
    assert got == [-9999999999999999999, 9999999999999999999] and all(type(x) is int for x in got) and not calls
    assert sj.parse_json(b"[-0.0005836145779788718, 9223372036854775808]") == [-0.0005836145779788718,
                                                                              9223372036854775808] and calls
    # what orjson refuses (a lone surrogate, a BOM, NaN) or reads with a repeated key is read by the stdlib
    # decoder and judged the way it always was
    assert sj.parse_json(b'{"t": "\\ud800"}') == {"t": "\ud800"}  # validate rejects it later, naming the field
    for bad, msg in ((b'\xef\xbb\xbf{"a": 1}', "invalid JSON"), (b'{"a": NaN}', "NaN is not allowed"),
                     (b'{"a": {"b": 1, "b": 2}}', "duplicate key 'b'")):
        with pytest.raises(sj.Invalid, match=msg):
            sj.parse_json(bad)
