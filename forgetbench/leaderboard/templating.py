"""The site's jinja environment and the formatting its pages share (forgetbench.leaderboard.site renders
the top-level pages, forgetbench.leaderboard.entry_pages the entry pages, in worker processes too).

The safety model is site.py's (its docstring): autoescape everywhere, `json_script` is the only Markup,
hrefs only from `entry_href`. The texts made here in Python (`texts`) are plain strings of numbers, and
templates escape them like any other value.
"""

from __future__ import annotations

import json
from pathlib import Path

import markupsafe
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, StrictUndefined
from jinja2.compiler import CodeGenerator
from markupsafe import Markup, escape

from forgetbench.eval.report import p_text
from forgetbench.leaderboard.submission import FORGOTTEN_CAP, valid_id
from forgetbench.paths import shipped


def assets_dir() -> Path:
    """leaderboard/ of a checkout, or the copy a wheel carries inside the package."""
    found = shipped("leaderboard", "templates")
    if found is not None:
        return found
    raise FileNotFoundError("cannot find the leaderboard templates (leaderboard/templates)")


# ---- filters ---------------------------------------------------------------------------------------

def pts(x, signed: bool = False) -> str:
    """A fraction as points (x100, one decimal), the unit of every score on the site."""
    if x is None or x != x:  # None or NaN
        return "–"
    v = round(100 * x, 1) + 0.0  # + 0.0 turns -0.0 into 0.0
    return f"{v:+.1f}" if signed else f"{v:.1f}"


def ci(lo, hi, signed: bool = True) -> str:
    if lo is None or hi is None:
        return ""
    return f"[{pts(lo, signed)}, {pts(hi, signed)}]"


_KEYS: dict[str, tuple[str, str, str, str]] = {}
# (signed, value, lo, hi) -> (text, ci): scores of n items take few distinct values, so a build of
# thousands of entries formats the same estimates again and again (~3 us each). Equal keys give equal
# texts (0.0 == -0.0 and 1 == 1.0 == True print alike); NaN never equals itself and is formatted anew.
_TEXTS: dict[tuple, tuple[str, str]] = {}
_TEXTS_MAX = 100_000


def texts(row: dict, key: str, signed: bool = True) -> None:
    """row[key + "_text"] = pts(row[key]), row[key + "_ci"] = ci(row[key + "_lo"], row[key + "_hi"]): an
    estimate's two texts, made once in Python. A jinja macro or filter per table cell costs ~8 us a call,
    which was most of the time of an entry page and of the index."""
    names = _KEYS.get(key) or _KEYS.setdefault(key, (f"{key}_lo", f"{key}_hi", f"{key}_text", f"{key}_ci"))
    k = (signed, row[key], row[names[0]], row[names[1]])
    made = _TEXTS.get(k)
    if made is None:
        made = pts(k[1], signed), ci(k[2], k[3], signed)
        if len(_TEXTS) >= _TEXTS_MAX:
            _TEXTS.clear()
        _TEXTS[k] = made
    row[names[2]], row[names[3]] = made


def entry_href(entry_id: str, prefix: str = "entries/") -> str:
    if not valid_id(entry_id):
        raise ValueError(f"refusing to link to an invalid entry id {entry_id!r}")
    return f"{prefix}{entry_id}.html"


def json_script(data) -> Markup:
    """JSON safe inside <script type="application/json">: nothing in it can end the element."""
    s = json.dumps(data, ensure_ascii=False, allow_nan=False)
    s = s.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
    s = s.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return Markup(s)


# markupsafe's escaping of a str, without the Markup around it (markupsafe.escape = Markup(this(s))); the
# fallback, for a markupsafe without it, is the same text by the public way.
_escape_str = getattr(markupsafe, "_escape_inner", None) or (lambda s: str(escape(s)))


def escaped_output(value) -> str:
    """What `{{ value }}` writes: markupsafe.escape(value) as text. A plain str skips the Markup object
    escape() wraps its result in (1 us of its 1.3 us, per value on a page): the text goes straight into
    the page, where its type no longer matters. Anything else (Markup, numbers) goes through escape()."""
    return _escape_str(value) if type(value) is str else str(escape(value))


class _Generator(CodeGenerator):
    """jinja's code generator, but a `{{ ... }}` that writes straight into the page (not into a macro's,
    a block's or a `{% set %}`'s buffer, which jinja turns into Markup) escapes with `escaped_output`.
    Autoescape is untouched: every value is escaped by markupsafe, and nothing is marked safe."""

    def _output_child_pre(self, node, frame, finalize) -> None:
        if frame.buffer is None and frame.eval_ctx.autoescape and not frame.eval_ctx.volatile:
            self.write("environment.escaped_output(")
            if finalize.src is not None:
                self.write(finalize.src)
        else:
            super()._output_child_pre(node, frame, finalize)


_DICT_ATTRS = frozenset(dir(dict))


class _Environment(Environment):
    """jinja's lookup with a shortcut for plain dicts: the templates read rows (dicts) as `e.title`,
    and the default tries getattr first, raising and catching an AttributeError for every such
    lookup (a third of an entry page's render time). Same results: a name that is a dict attribute
    (`.get`, `.items`) still goes the default way; for any other name getattr on a dict fails anyway."""

    code_generator_class = _Generator
    escaped_output = staticmethod(escaped_output)

    def getattr(self, obj, attribute):
        if type(obj) is dict and attribute not in _DICT_ATTRS:
            try:
                return obj[attribute]
            except (KeyError, TypeError):
                pass
        return super().getattr(obj, attribute)


def environment(templates: Path | None = None) -> Environment:
    loaders = [FileSystemLoader(str(templates))] if templates else []
    loaders.append(FileSystemLoader(str(assets_dir() / "templates")))
    # auto_reload=False: a build's templates do not change while it renders, and checking their files'
    # times costs two stat calls per page (the template and base.html it extends).
    env = _Environment(loader=ChoiceLoader(loaders), autoescape=True, undefined=StrictUndefined,
                       trim_blocks=True, lstrip_blocks=True, auto_reload=False)
    env.filters.update(pts=pts, entry_href=entry_href, json_script=json_script, pvalue=p_text)
    env.globals.update(ci=ci, forgotten_cap=FORGOTTEN_CAP)
    return env
