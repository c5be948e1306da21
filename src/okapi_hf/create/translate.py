"""Step 2: translate instruction, input and output into a target language, keeping what must not change.

Code blocks, inline code, URLs, e-mail addresses, template fields and numbers are swapped for
numbered placeholders (``⟦1⟧``) before the text is sent and put back after; a translation that
loses or repeats a placeholder, or that is not in the target language, is retried once and then
rejected with its reason counted.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from okapi_hf.create.llm import ChatRequest
from okapi_hf.create.llm_types import STEP_DEFAULTS, Sampling
from okapi_hf.create.prompts import render
from okapi_hf.create.runner import RowRejected
from okapi_hf.langid import language_score
from okapi_hf.languages import get_language

FIELDS = ("instruction", "input", "output")
ATTEMPTS = 2
# The step's own sampling, which --temperature and --max-tokens override: greedy, and a retry that
# samples, since at temperature 0 a deterministic backend would only repeat its first answer.
TEMPERATURE = 0.0
RETRY_TEMPERATURE = 0.7
MAX_TOKENS = 1024
# Below this score a text is taken to be in another language; checked only on texts with enough letters.
MIN_LANGUAGE_SCORE = 0.5
MIN_LETTERS_TO_CHECK = 20
PROTECTED = re.compile(
    r"```.*?```"  # fenced code
    r"|`[^`\n]+`"  # inline code
    r"|https?://[^\s<>()\"']+[^\s<>()\"'.,;:!?]"  # URLs, without trailing punctuation
    r"|[\w.+-]+@[\w-]+(?:\.[\w-]+)+"  # e-mail addresses
    r"|\{\{[^{}\n]*\}\}|\{[A-Za-z_][\w.]*\}|%\([a-z_]+\)[sd]|%[sd]"  # template fields
    r"|<[A-Za-z/][^<>\n]*>"  # tags and <noinput>-style markers
    r"|\b\d+(?:[.,:]\d+)*\b",  # numbers, times and versions (not digits inside words: H2O, mp3)
    re.DOTALL,
)
_MARKER = re.compile(r"⟦(\d+)⟧")


def protect(text: str) -> tuple[str, list[str]]:
    """``text`` with every protected span replaced by ``⟦n⟧``, and the spans in order."""
    spans: list[str] = []

    def swap(match: re.Match) -> str:
        spans.append(match.group(0))
        return f"⟦{len(spans)}⟧"

    return PROTECTED.sub(swap, text), spans


def restore(text: str, spans: list[str]) -> str:
    """Put the spans back; every placeholder must be there exactly once, and no other."""
    found = [int(n) for n in _MARKER.findall(text)]
    if sorted(found) != list(range(1, len(spans) + 1)):
        raise ValueError(f"placeholders {sorted(found)} do not match the {len(spans)} sent")
    return _MARKER.sub(lambda m: spans[int(m.group(1)) - 1], text)


def translate_request(
    text: str,
    lang: str,
    *,
    prompts_dir: Path | None = None,
    attempt: int = 0,
    sampling: Sampling = STEP_DEFAULTS,
) -> ChatRequest:
    """One field's translation request: the prompt for chat models, ``meta`` for MT models.

    The first attempt is greedy unless ``sampling`` says otherwise; a retry samples, at the given
    temperature when it is above 0, else at RETRY_TEMPERATURE.
    """
    target = get_language(lang).name
    messages = [
        {
            "role": "system",
            "content": render("translate_system", prompts_dir, source="English", target=target),
        },
        {"role": "user", "content": render("translate_user", prompts_dir, text=text)},
    ]
    meta = {"text": text, "src_lang": "en", "tgt_lang": lang}
    fields = sampling.fields(temperature=TEMPERATURE, max_tokens=MAX_TOKENS)
    if attempt > 0:
        fields["temperature"] = fields["temperature"] or RETRY_TEMPERATURE
    return ChatRequest.chat(messages, sample=attempt, meta=meta, **fields)


async def translate_text(
    text: str,
    lang: str,
    client: Any,
    *,
    field: str,
    prompts_dir: Path | None = None,
    sampling: Sampling = STEP_DEFAULTS,
) -> str:
    """A checked translation of one text (placeholders kept, target language), or :class:`RowRejected`."""
    if not text.strip():
        return text
    protected, spans = protect(text)
    if not any(ch.isalpha() for ch in _MARKER.sub("", protected)):
        return text  # only numbers, code or links: nothing to translate
    problem = ""
    for attempt in range(ATTEMPTS):
        result = await client.complete(
            translate_request(protected, lang, prompts_dir=prompts_dir, attempt=attempt, sampling=sampling)
        )
        try:
            translated = restore(result.text.strip(), spans)
        except ValueError:
            problem = f"{field}: placeholders lost or repeated in translation"
            continue
        if not is_in_language(_MARKER.sub("", result.text), lang):
            problem = f"{field}: translation not in {get_language(lang).name}"
            continue
        return translated
    raise RowRejected(problem)


def is_in_language(text: str, lang: str) -> bool:
    """Whether ``text`` passes the language check (too few letters to judge counts as passing)."""
    if sum(ch.isalpha() for ch in text) < MIN_LETTERS_TO_CHECK:
        return True
    return language_score(text, lang) >= MIN_LANGUAGE_SCORE


def make_translate(
    lang: str, client: Any, *, prompts_dir: Path | None = None, sampling: Sampling = STEP_DEFAULTS
) -> Any:
    """The runner's per-row work: the row with instruction, input and output in ``lang``."""
    lang = get_language(lang).code

    async def work(row: dict[str, Any]) -> dict[str, Any]:
        if not str(row.get("instruction", "")).strip():
            raise RowRejected("empty instruction")
        out = {"id": row["id"], "lang": lang}
        for name in FIELDS:
            value = row.get(name)
            if value is None:
                continue
            out[name] = await translate_text(
                str(value), lang, client, field=name, prompts_dir=prompts_dir, sampling=sampling
            )
        return out

    return work
