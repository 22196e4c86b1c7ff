"""A scripted, deterministic lm-eval model: the whole production path runs with no weights at all.

FakeLM is a real `lm_eval.api.model.LM`, so lm-eval's evaluator builds requests, applies the chat
template, filters and scores exactly as for a real model; only the numbers come from a script.
Tests use it to make per-item outcomes known in advance (e.g. "base answers 42, tuned answers 41").

Script (JSON file):
    {
      "name": "base",                        # shows up in tokenizer_name / model info
      "generate": [{"match": "17 + 25", "response": "The answer is 42."}],
      "default_response": "I don't know.",
      "choose": [{"match": "Capital of France", "continuation": "Paris"}],
      "chat_template": true                  # whether the model "has" a chat template
    }

generate_until: the first `generate` rule whose `match` is a substring of the prompt wins, else
`default_response`; the text is then cut at the earliest `until` string, like a real model stops.

loglikelihood(context, continuation): 0.0 and is_greedy=True when the first `choose` rule matching
the context names this continuation (compared after strip); otherwise -1 - (h % 1000) / 1000 with
h = sha256(context \\0 continuation), i.e. a fixed number in (-2, -1], and is_greedy=False. The
preferred continuation therefore always wins a multiple-choice argmax; with no matching rule the
choice is arbitrary but stable across runs.

loglikelihood_rolling(text): -0.25 per character (a stand-in perplexity that grows with length).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from lm_eval.api.model import LM
from lm_eval.api.registry import register_model


def scripted_logprob(context: str, continuation: str) -> float:
    h = int.from_bytes(hashlib.sha256(f"{context}\0{continuation}".encode()).digest()[:8], "big")
    return -1.0 - (h % 1000) / 1000.0


def cut_at_stops(text: str, until: list[str] | str | None) -> str:
    if isinstance(until, str):
        until = [until]
    for stop in until or []:
        if stop:
            text = text.split(stop, 1)[0]
    return text


@register_model("forgetbench_fake")
class FakeLM(LM):
    def __init__(self, script: dict | str | Path | None = None, **_ignored) -> None:
        super().__init__()
        from forgetbench.models.fake_script import check, load

        script = check(script, "script") if isinstance(script, dict) else load(script)
        self.script = script
        self.name = str(script.get("name", "fake"))
        self._generate = list(script.get("generate", []))
        self._choose = list(script.get("choose", []))
        self._default = str(script.get("default_response", ""))
        self._device = "cpu"

    @classmethod
    def from_file(cls, path: str | Path) -> FakeLM:
        return cls(Path(path))

    # ---------------------------------------------------------------- scripted behaviour

    def respond(self, prompt: str) -> str:
        for rule in self._generate:
            if rule["match"] in prompt:
                return str(rule["response"])
        return self._default

    def preferred(self, context: str) -> str | None:
        for rule in self._choose:
            if rule["match"] in context:
                return str(rule["continuation"]).strip()
        return None

    # ---------------------------------------------------------------- lm-eval interface

    def loglikelihood(self, requests) -> list[tuple[float, bool]]:
        out = []
        for req in requests:
            context, continuation = req.args
            best = self.preferred(context)
            res = (0.0, True) if best is not None and continuation.strip() == best else (scripted_logprob(context, continuation), False)
            self.cache_hook.add_partial("loglikelihood", (context, continuation), res)
            out.append(res)
        return out

    def loglikelihood_rolling(self, requests) -> list[float]:
        out = []
        for req in requests:
            (text,) = req.args[:1]
            res = -0.25 * len(text)
            self.cache_hook.add_partial("loglikelihood_rolling", (text,), res)
            out.append(res)
        return out

    def generate_until(self, requests) -> list[str]:
        out = []
        for req in requests:
            context, gen_kwargs = req.args
            text = cut_at_stops(self.respond(context), (gen_kwargs or {}).get("until"))
            self.cache_hook.add_partial("generate_until", (context, gen_kwargs), text)
            out.append(text)
        return out

    # ---------------------------------------------------------------- chat support

    @property
    def tokenizer_name(self) -> str:
        return f"forgetbench_fake__{self.name}"

    def chat_template(self, chat_template: bool | str = False) -> str | None:
        # lm-eval records this string in results["config"]; the rendering is apply_chat_template.
        return "<{role}>{content}</{role}>...<assistant>"

    def apply_chat_template(self, chat_history: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        # Like HFLM: add_generation_prompt=False means "continue the final (assistant prefill)
        # message", so that message is left open.
        open_last = not add_generation_prompt and chat_history and chat_history[-1]["role"] == "assistant"
        closed = chat_history[:-1] if open_last else chat_history
        text = "".join(f"<{m['role']}>{m['content']}</{m['role']}>" for m in closed)
        if open_last:
            return text + f"<assistant>{chat_history[-1]['content']}"
        return text + ("<assistant>" if add_generation_prompt else "")

    def get_model_info(self) -> dict:
        return {"model_name": f"fake:{self.name}", "model_num_parameters": 0}
