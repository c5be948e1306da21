"""TaCo: translation-assisted chain-of-thought rows, their chat form, and reading a model's final answer.

TaCo (Upadhayay and Behzadan, 2023) teaches a model a new language through English: for a request in
the target language the model first writes the request in English, then answers in English, then
translates its answer back. A TaCo row keeps the SFT fields (``instruction`` and ``input`` in the target
language) and its ``output`` holds the three parts, each after an exact label::

    Instruction in English: <the request in English>

    Response in English: <the answer in English>

    Response in Nepali: <the answer in Nepali>

The labels never vary (the language is the registry's English name), and the builder rejects a row
whose parts contain a label, so a trained model's output splits the same way every time. The answer a
user reads is the text after the last target-language label of that output and nothing else:
:func:`extract_answer` returns None rather than reach into text that belongs to another question,
which is how the released TaCo results came to credit answers of the previous question.

:func:`taco_record` builds one row; the data runner drives it (through :func:`make_taco`) over a file.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from okapi_hf.create.llm_types import STEP_DEFAULTS, Sampling
from okapi_hf.errors import ConfigError, DataError, UnknownLanguageError
from okapi_hf.languages import Language, get_language, languages
from okapi_hf.prompts import to_messages

INSTRUCTION_LABEL = "Instruction in English:"
ENGLISH_RESPONSE_LABEL = "Response in English:"
# Where the English answer comes from when a row is built (see taco_record).
ANSWER_SOURCES = ("row", "model")
# The sampling of the rows' requests, which --temperature and --max-tokens override: greedy, the
# translations' retries included.
TEMPERATURE = 0.0
MAX_TOKENS = 1024

# A part label as models write it: any case, extra spaces, markdown around it ("**Response in Nepali:**",
# "### Response in Nepali:", "__Response in Nepali__:"). The language is one word; see _labels for which.
_LABEL = re.compile(
    r"(?<!\w)(?:#{1,6}[ \t]*)?(?P<open>[*_]{1,3}[ \t]*)?"
    r"(?P<kind>instruction|response)[ \t]+in[ \t]+(?P<lang>[^\W\d_]+)"
    r"[ \t]*(?(open)[*_]{0,3}[ \t]*):(?(open)(?:[*_]{1,3})?)",  # closing markdown only after opening
    re.IGNORECASE,
)
# Signs that the model has started a new turn or a new prompt: its chain of thought for this request
# ended there. Alpaca/Okapi headers and Guanaco's "### Human:" at a line start, chat-template markers.
_NEW_TURN = re.compile(
    r"^[ \t]*#{2,}[ \t]*(?:instruction|input|response|human|user|assistant)\b"
    r"|<\|im_start\|>|<\|im_end\|>|<\|user\|>|<\|assistant\|>|<\|start_header_id\|>|<\|eot_id\|>"
    r"|<\|endoftext\|>|\[INST\]|</s>",
    re.IGNORECASE | re.MULTILINE,
)
_PLACEHOLDER = re.compile(r"⟦\d+⟧")  # translate.protect's stand-ins for code, links and numbers
_KNOWN_NAMES = frozenset(
    name.lower() for language in languages() for name in (language.name, language.code, *language.aliases)
)


def _labels(text: str) -> list[re.Match]:
    """The part labels in ``text``: any language the registry knows, anywhere; another word only at the
    start of a line, so that "Response in Sanskrit:" ends a part but "the response in JSON:" does not."""
    found = []
    for match in _LABEL.finditer(text):
        line_start = not text[text.rfind("\n", 0, match.start()) + 1 : match.start()].strip()
        if line_start or match["lang"].lower() in _KNOWN_NAMES:
            found.append(match)
    return found


# -- languages and labels ----------------------------------------------------------------------------------


def taco_language(lang: str) -> Language:
    """A registry language from its code, an alias or its English name (``ne``, ``Nepali``)."""
    try:
        return get_language(lang)
    except UnknownLanguageError:
        wanted = lang.strip().lower()
        for language in languages():
            if language.name.lower() == wanted:
                return language
        raise


def _target(lang: str) -> Language:
    """The language TaCo teaches: any registry language but English, which is the pivot."""
    language = taco_language(lang)
    if language.code == "en":
        raise ConfigError("TaCo translates through English, so the target language cannot be English")
    return language


def response_label(lang: str) -> str:
    """The label of the final part: ``Response in <Language name>:``."""
    return f"Response in {taco_language(lang).name}:"


def taco_output(english_instruction: str, english_response: str, response: str, lang: str) -> str:
    """The three-part output of a TaCo row, with the exact labels and a blank line between parts."""
    parts = {
        "english_instruction": english_instruction,
        "english_response": english_response,
        "response": response,
    }
    empty = [name for name, text in parts.items() if not text or not text.strip()]
    if empty:
        raise DataError(f"a TaCo output needs three non-empty parts; empty: {', '.join(empty)}")
    labels = (INSTRUCTION_LABEL, ENGLISH_RESPONSE_LABEL, response_label(_target(lang).code))
    return "\n\n".join(f"{label} {text.strip()}" for label, text in zip(labels, parts.values(), strict=True))


def split_taco_output(output: str, lang: str) -> tuple[str, str, str]:
    """The three parts of an output :func:`taco_output` wrote; a DataError if it is not one.

    Strict on purpose: this checks training data, where every label must appear once, exactly, in order.
    Reading what a model generated is :func:`extract_answer`'s job.
    """
    labels = (INSTRUCTION_LABEL, ENGLISH_RESPONSE_LABEL, response_label(_target(lang).code))
    found = [m.group(0) for m in _labels(output)]
    if found != list(labels) or not output.startswith(labels[0] + " "):
        raise DataError(
            f"expected a TaCo output made of {' / '.join(repr(label) for label in labels)}, each once and "
            f"in this order, starting the output; found labels {found or 'none'}"
        )
    rest = output[len(labels[0]) :]
    parts = []
    for label in labels[1:]:
        head, sep, rest = rest.partition(f"\n\n{label} ")
        if not sep:
            raise DataError(f"the label {label!r} must follow a blank line and be followed by a space")
        parts.append(head.strip())
    parts.append(rest.strip())
    if not all(parts):
        raise DataError("a TaCo output has an empty part")
    return parts[0], parts[1], parts[2]


# -- the chat form ---------------------------------------------------------------------------------------


def taco_messages(
    record: dict[str, Any], *, system: bool = True, prompts_dir: Path | None = None
) -> list[dict[str, str]]:
    """A TaCo row as chat messages: system prompt (the three steps), user request, three-part answer.

    The output is checked first (:func:`split_taco_output`): a row with a missing, misspelt or repeated
    label would teach the model an inconsistent chain.
    """
    from okapi_hf.create.prompts import render

    row_id = record.get("id", "?")
    if not record.get("lang"):
        raise DataError(f"TaCo row {row_id}: no `lang` field; the system prompt and labels need the language")
    language = _target(str(record["lang"]))
    try:
        split_taco_output(str(record.get("output") or ""), language.code)
    except DataError as e:
        raise DataError(f"TaCo row {row_id}, field output: {e}") from None
    messages = to_messages(record["instruction"], record.get("input") or "", record["output"])
    if system:
        messages.insert(
            0, {"role": "system", "content": render("taco_system", prompts_dir, language=language.name)}
        )
    return messages


# -- reading a model's answer ----------------------------------------------------------------------------


def extract_answer(text: str, lang: str) -> str | None:
    """The final target-language answer in one generated ``text``, or None when it has none.

    ``text`` is what the model generated, without the prompt (``okapi_hf.prompts.extract_response``
    removes Okapi's). The answer is what follows the last ``Response in <Language>:`` label (the language
    by registry name, code or alias; any case, spacing or markdown), up to the next part label or the
    end. The output ends at the first sign of a new turn after some text (``### Instruction``,
    ``### Human``, a repeated ``### Response``, chat markers, an end-of-text token): labels after it
    belong to a question the model made up or repeated, and are never used. An absent label, or an
    empty answer, gives None, never other text.
    """
    language = taco_language(lang)
    names = {language.name.lower(), language.code, *language.aliases}
    end = len(text)
    for turn in _NEW_TURN.finditer(text):
        if text[: turn.start()].strip():  # a header the model echoes before anything else ends nothing
            end = turn.start()
            break
    labels = [m for m in _labels(text) if m.start() < end]
    ours = [i for i, m in enumerate(labels) if m["kind"].lower() == "response" and m["lang"].lower() in names]
    if not ours:
        return None
    last = ours[-1]
    stop = labels[last + 1].start() if last + 1 < len(labels) else end
    answer = text[labels[last].end() : stop].strip()
    return answer or None


# -- building rows ---------------------------------------------------------------------------------------


async def taco_record(
    row: dict[str, Any],
    client: Any,
    *,
    lang: str,
    english: dict[str, Any] | None = None,
    prompts_dir: Path | None = None,
    answer: str = "row",
    sampling: Sampling = STEP_DEFAULTS,
) -> dict[str, Any]:
    """One SFT row in ``lang`` as a TaCo row (raises ``RowRejected`` with a reason when it cannot be).

    English side: ``english``, the aligned English row, gives the English instruction and input (no
    requests); without it the client translates them. Answer, by ``answer``:

    - ``row`` (default): the row's own output is the target-language response and its English is the
      English response (``english["output"]``, else the client's translation of the output). Okapi's
      rows are translations of English Alpaca, so this is TaCo's own construction: both responses say
      the same thing, the target text was checked when the data was made, and a row with ``english``
      costs no request at all. Translating an English answer back would only add a lossy round trip.
    - ``model``: the client answers the English request in English and translates that answer into
      ``lang``; for rows whose output is missing or not worth keeping. Costs an answer and a translation.

    Checks (each failure a counted rejection): an empty instruction; an output (``row``) or a translation
    back (``model``) not in ``lang``; a translation into English that is not English; a translation or
    answer that is empty or cut at ``max_tokens``; a part containing a TaCo label. The language check is
    :func:`okapi_hf.create.translate.is_in_language` (``language_score`` at least 0.5, texts of 20 letters
    or more, code, links and numbers left out): with at least half of the letters in the language's
    script, an answer may quote English names and code; English prose scores 0 in a Latin-script
    language, and missing diacritics alone cannot push a real one below 0.5.
    """
    from okapi_hf.create.runner import RowRejected
    from okapi_hf.create.translate import is_in_language, protect

    language = _target(lang)
    if answer not in ANSWER_SOURCES:
        raise ConfigError(f"answer must be one of {list(ANSWER_SOURCES)}, got {answer!r}")
    instruction, okapi_input, output = (_field(row, name) for name in ("instruction", "input", "output"))
    if not instruction.strip():
        raise RowRejected("empty instruction")
    if row.get("lang") and _code(str(row["lang"])) != language.code:
        raise RowRejected(f"row's lang is not {language.code}")
    if answer == "row":
        if not output.strip():
            raise RowRejected("empty output")
        if not is_in_language(_PLACEHOLDER.sub("", protect(output)[0]), language.code):
            raise RowRejected(f"output not in {language.name}")
        _unlabelled(output)

    def ask(text: str, source: str, target: str, field: str) -> Any:
        return _translate(
            text, source, target, client, field=field, prompts_dir=prompts_dir, sampling=sampling
        )

    if english is not None:
        if None not in (english.get("id"), row.get("id")) and _source_key(english) != _source_key(row):
            raise RowRejected("English row is another row (ids differ)")
        en_instruction, en_input = _field(english, "instruction").strip(), _field(english, "input").strip()
        if not en_instruction:
            raise RowRejected("English row: empty instruction")
        if bool(en_input) != bool(okapi_input.strip()):
            raise RowRejected("English row: input present in one row only")
    else:
        en_instruction = await ask(instruction, language.code, "en", "instruction")
        en_input = await ask(okapi_input, language.code, "en", "input") if okapi_input.strip() else ""
    en_request = _unlabelled(f"{en_instruction}\n\n{en_input}" if en_input else en_instruction)

    if answer == "row":
        if english is not None:
            en_response = _field(english, "output").strip()
            if not en_response:
                raise RowRejected("English row: empty output")
        else:
            en_response = await ask(output, language.code, "en", "output")
        response = output.strip()
    else:
        en_response = await _answer_in_english(en_instruction, en_input, client, prompts_dir, sampling)
    _unlabelled(en_response)  # checked before the translation back is paid for
    if answer == "model":
        response = _unlabelled(await ask(en_response, "en", language.code, "response"))
    return {
        "id": row.get("id"),
        "lang": language.code,
        "instruction": instruction,
        "input": okapi_input,
        "output": taco_output(en_request, en_response, response, language.code),
        "english_instruction": en_instruction,
        "english_input": en_input,
        "english_response": en_response,
    }


def make_taco(
    lang: str,
    client: Any,
    *,
    english_rows: Sequence[dict[str, Any]] | None = None,
    prompts_dir: Path | None = None,
    answer: str = "row",
    sampling: Sampling = STEP_DEFAULTS,
) -> Any:
    """The runner's per-row work: :func:`taco_record` with each row's English row looked up.

    English rows pair with rows by source row number, the last ``-``-separated part of the id
    (``vi-sft-12`` and ``en-sft-12``, or ``vi-12`` and ``en-12`` as the runner numbers rows of files
    without ids). A row without an English row is translated instead.
    """
    language = _target(lang)
    if answer not in ANSWER_SOURCES:
        raise ConfigError(f"answer must be one of {list(ANSWER_SOURCES)}, got {answer!r}")
    by_source: dict[str, dict[str, Any]] = {}
    for number, english in enumerate(english_rows or (), start=1):
        if english.get("id") is None:
            raise DataError(f"English row {number} has no `id`; ids pair English rows with rows")
        key = _source_key(english)
        if key in by_source:
            raise DataError(
                f"English rows {by_source[key]['id']!r} and {english['id']!r} share source row {key}"
            )
        by_source[key] = english

    async def work(row: dict[str, Any]) -> dict[str, Any]:
        english = by_source.get(_source_key(row)) if by_source else None
        return await taco_record(
            row,
            client,
            lang=language.code,
            english=english,
            prompts_dir=prompts_dir,
            answer=answer,
            sampling=sampling,
        )

    return work


def _unlabelled(part: str) -> str:
    """``part``, unless it holds a TaCo label: the chain would no longer split into its three parts."""
    from okapi_hf.create.runner import RowRejected

    if _labels(part):
        raise RowRejected("a part contains a TaCo label")
    return part


def _code(lang: str) -> str | None:
    try:
        return taco_language(lang).code
    except UnknownLanguageError:
        return None


def _field(row: dict[str, Any], name: str) -> str:
    value = row.get(name)
    return "" if value is None else str(value)


def _source_key(row: dict[str, Any]) -> str | None:
    """The source row number in an id (``vi-sft-12`` -> ``12``); None without an id."""
    row_id = row.get("id")
    return None if row_id is None else str(row_id).rsplit("-", 1)[-1]


async def _translate(
    text: str,
    source: str,
    target: str,
    client: Any,
    *,
    field: str,
    prompts_dir: Path | None,
    sampling: Sampling = STEP_DEFAULTS,
) -> str:
    """A checked translation of one field (code, links and numbers kept), or ``RowRejected``.

    The same prompts and checks as step 2's translation (``okapi_hf.create.translate``), in either
    direction: ``meta`` names both languages, so MT backends serve these requests too.
    """
    from okapi_hf.create.llm import ChatRequest
    from okapi_hf.create.prompts import render
    from okapi_hf.create.runner import RowRejected
    from okapi_hf.create.translate import ATTEMPTS, is_in_language, protect, restore

    protected, spans = protect(text)
    source_name, target_name = taco_language(source).name, taco_language(target).name
    messages = [
        {
            "role": "system",
            "content": render("translate_system", prompts_dir, source=source_name, target=target_name),
        },
        {"role": "user", "content": render("translate_user", prompts_dir, text=protected)},
    ]
    meta = {"text": protected, "src_lang": source, "tgt_lang": target}
    fields = sampling.fields(temperature=TEMPERATURE, max_tokens=MAX_TOKENS)
    problem = ""
    for attempt in range(ATTEMPTS):
        result = await client.complete(ChatRequest.chat(messages, sample=attempt, meta=meta, **fields))
        raw = result.text.strip()
        if result.finish_reason == "length":
            problem = f"{field}: translation cut at max_tokens"
            continue
        if not raw:
            problem = f"{field}: empty translation"
            continue
        try:
            translated = restore(raw, spans)
        except ValueError:
            problem = f"{field}: placeholders lost or repeated in translation"
            continue
        if not is_in_language(_PLACEHOLDER.sub("", raw), target):
            problem = f"{field}: translation not in {target_name}"
            continue
        return translated
    raise RowRejected(problem)


async def _answer_in_english(
    instruction: str, okapi_input: str, client: Any, prompts_dir: Path | None, sampling: Sampling
) -> str:
    """The client's English answer to the English request, or ``RowRejected``."""
    from okapi_hf.create.llm import ChatRequest
    from okapi_hf.create.prompts import render
    from okapi_hf.create.runner import RowRejected
    from okapi_hf.create.translate import is_in_language, protect

    messages = [{"role": "system", "content": render("taco_answer", prompts_dir)}]
    messages += to_messages(instruction, okapi_input)
    fields = sampling.fields(temperature=TEMPERATURE, max_tokens=MAX_TOKENS)
    result = await client.complete(ChatRequest.chat(messages, **fields))
    text = result.text.strip()
    if result.finish_reason == "length":
        raise RowRejected("English answer: cut at max_tokens")
    if not text:
        raise RowRejected("English answer: empty")
    if not is_in_language(_PLACEHOLDER.sub("", protect(text)[0]), "en"):
        raise RowRejected("English answer: not in English")
    return text
