"""lite_ifeval: short writing prompts with 1-3 verifiable constraints, checked by lm-eval's IFEval code.

Rows follow google/IFEval's schema (`key`, `prompt`, `instruction_id_list`, `kwargs`) and use only
instruction ids whose checkers need no network or sentence model: lowercase, no commas, word-count
bounds, keyword presence, an exact number of markdown bullets, a fixed closing phrase. Constraints in
a row never contradict each other (one word-count relation at most; closing phrases are comma-free
and valid in lowercase), so `expert_response` can satisfy all of them.
"""

from __future__ import annotations

import random

TOPICS = ("the ocean", "a rainy day", "learning to cook", "city parks", "old libraries", "riding a bicycle",
          "growing tomatoes", "winter mornings", "a trip to the mountains", "board games", "honey bees",
          "public transport", "writing letters", "the night sky", "a school garden", "playing the piano")
TASKS = ("Write a short text about {t}.", "Describe {t} to a friend.", "Share a few thoughts about {t}.",
         "Explain why people enjoy {t}.")
KEYWORDS = ("sunlight", "river", "music", "friendship", "bread", "window", "patience", "color", "journey",
            "silence", "laughter", "garden")
END_PHRASES = ("Is there anything else I can help with?", "That is all for now.", "Thank you for reading.")

# Filler the expert response is built from: comma-free, and any casing is fine.
_SENTENCES = ("Many people enjoy {t}.", "There is always more to learn about {t}.",
              "Spending time on {t} can be very rewarding.", "Many good stories mention {t}.",
              "Some people think about {t} every single day.", "It is easy to start and hard to stop.",
              "A little curiosity goes a long way here.", "Most people remember their first time.")

LOWER, NO_COMMA = "change_case:english_lowercase", "punctuation:no_comma"
WORDS, KEYWORD = "length_constraints:number_words", "keywords:existence"
BULLETS, END = "detectable_format:number_bullet_lists", "startend:end_checker"
IDS = (LOWER, NO_COMMA, WORDS, KEYWORD, BULLETS, END)
KWARG_FIELDS = ("relation", "num_words", "keywords", "num_bullets", "end_phrase")


def _constraint(r: random.Random, iid: str) -> tuple[dict, str]:
    """kwargs and the sentence that states the constraint in the prompt."""
    if iid == LOWER:
        return {}, ("Your entire response must be in English and in lowercase letters only; "
                    "no capital letters.")
    if iid == NO_COMMA:
        return {}, "Do not use any commas in your response."
    if iid == WORDS:
        if r.random() < 0.5:
            n = r.randrange(40, 90, 10)
            return {"relation": "less than", "num_words": n}, f"Answer in less than {n} words."
        n = r.randrange(15, 40, 5)
        return {"relation": "at least", "num_words": n}, f"Answer with at least {n} words."
    if iid == KEYWORD:
        kws = r.sample(KEYWORDS, 2)
        return {"keywords": kws}, f"Include the keywords \"{kws[0]}\" and \"{kws[1]}\" in your response."
    if iid == BULLETS:
        n = r.randint(2, 4)
        return ({"num_bullets": n}, f"Your answer must contain exactly {n} bullet points in markdown format, "
                "like:\n* This is a point.")
    if iid == END:
        phrase = r.choice(END_PHRASES)
        return ({"end_phrase": phrase}, f"Finish your response with this exact phrase: \"{phrase}\". "
                "No other words should follow it.")
    raise ValueError(iid)


def generate(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        topic = rng.choice(TOPICS)
        ids = sorted(rng.sample(IDS, rng.randint(1, 3)), key=IDS.index)
        kwargs, sentences = zip(*(_constraint(rng, iid) for iid in ids))
        task = rng.choice(TASKS).format(t=topic)
        # Every kwargs dict carries every field (None when unused), as on the hub, so Arrow infers
        # one struct type for the column whatever the first row holds.
        full = [{k: kw.get(k) for k in KWARG_FIELDS} for kw in kwargs]
        rows.append({"key": i, "prompt": " ".join((task, *sentences)), "instruction_id_list": list(ids),
                     "kwargs": full, "topic": topic})
    return rows


def expert_response(row: dict) -> str:
    """A response that satisfies every constraint of the row (deterministic)."""
    topic = row["topic"]
    cfg = dict(zip(row["instruction_id_list"], row["kwargs"]))
    body = [s.format(t=topic) for s in _SENTENCES[:3]]
    if KEYWORD in cfg:
        kws = cfg[KEYWORD]["keywords"]
        body.append(f"It makes me think of {' and '.join(kws)}.")
    words = cfg.get(WORDS)
    if words and words["relation"] == "at least":
        extra = iter(s.format(t=topic) for s in _SENTENCES[3:] * 4)
        while sum(len(s.split()) for s in body) < words["num_words"] + 5:  # +5: margin for tokenizer
            body.append(next(extra))
    if BULLETS in cfg:
        k = cfg[BULLETS]["num_bullets"]
        groups = [body[j::k] for j in range(k)]  # every sentence lands in exactly one bullet
        text = "\n".join("* " + " ".join(g) for g in groups)
    else:
        text = " ".join(body)
    if END in cfg:
        text += "\n" + cfg[END]["end_phrase"]
    if LOWER in cfg:
        text = text.lower()
    return text
