"""What a visitor sends to the chat Space, checked and turned into the pipeline's messages.

The language choice and its system prompt, the browser's history (bounded, malformed entries
skipped), the message checks, special tokens a visitor spells, and the seed field: everything that
decides what reaches the model, as plain Python that tests check without a server.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from okapi_hf.errors import OkapiError
from okapi_hf.languages import get_language, languages
from okapi_hf.spaces.limits import echo, one_of

if TYPE_CHECKING:
    pass

log = logging.getLogger("okapi_hf.spaces.chat")  # the Space logs under one name

# At most this many of the newest history entries are read at all (older ones are never looked at), so
# a request's cost is bounded by the caps whatever the length of the history the browser sends.
DEFAULT_MAX_HISTORY = 64
# Parts of one message's content read (Gradio 6 sends content as a list of parts).
MAX_PARTS_PER_MESSAGE = 64
ANY_LANGUAGE = "any"  # the language choice that adds no system prompt
EXAMPLES_PER_LANGUAGE = 2
RANDOM_SEED = -1  # the seed field's "no seed": an empty number field is shown as 0 in the browser


# --- languages and examples ---------------------------------------------------------------------------


def language_choices() -> list[tuple[str, str]]:
    """Dropdown choices ``(label, value)``: no system prompt first, then the registry's languages."""
    return [("Any language (no system prompt)", ANY_LANGUAGE)] + [
        (f"{lang.name} ({lang.code})", lang.code) for lang in languages()
    ]


def system_prompt(language: str | None) -> str | None:
    """The system message for a language choice, or None for 'any language'."""
    from okapi_hf.chat import language_system_prompt

    if language in (None, "", ANY_LANGUAGE):
        return None
    return language_system_prompt(get_language(language).code)


def example_prompts(per_language: int = EXAMPLES_PER_LANGUAGE) -> list[list[str]]:
    """``[prompt, language]`` pairs from the project's own sample instructions, ``per_language`` each.

    Only the languages with sample text have examples. Clicking one fills the textbox *and* sets the
    language selector, which Gradio 6 supports directly (examples with additional-input values);
    swapping the example list when the selector changes would need a second examples component
    wired around the ChatInterface's own.
    """
    from okapi_hf.data.sample import SAMPLE_LANGS, sample_rows

    examples = []
    for code in SAMPLE_LANGS:
        for row in sample_rows(code, "sft", per_language):
            prompt = f"{row['instruction']}\n\n{row['input']}" if row["input"] else row["instruction"]
            examples.append([prompt, code])
    return examples


# --- from the browser's history to the pipeline's messages ---------------------------------------------


class ChatInputError(OkapiError, ValueError):
    """A message or history the Space refuses; the text is shown to the visitor."""


def content_text(content: Any, max_chars: int | None = None) -> str | None:
    """The text of one Gradio message content (a string, or a list of parts), or None if it has none.

    Gradio 6 hands the chat function the history the browser sent, whose contents are lists of typed
    parts, while the history it keeps itself between API calls holds plain strings; both occur. Parts
    that are not text (files, components, nested lists) cannot reach a text-only model and are left
    out. At most :data:`MAX_PARTS_PER_MESSAGE` parts are read, and reading stops once the text is
    longer than ``max_chars``: the caller drops such a message anyway.
    """
    if isinstance(content, str):
        return content
    if not isinstance(content, (list, tuple)):
        return None
    texts, length = [], 0
    for part in content[:MAX_PARTS_PER_MESSAGE]:
        if isinstance(part, dict) and part.get("type") == "text":
            part = part.get("text")
        if isinstance(part, str):
            texts.append(part)
            length += len(part) + 1
            if max_chars is not None and length > max_chars:
                break
    return "\n".join(texts) if texts else None


def history_to_messages(
    history: Any, max_entries: int | None = None, max_chars: int | None = None
) -> list[dict[str, str]]:
    """The newest ``max_entries`` entries of Gradio's chat history as ``[{"role", "content"}]`` messages.

    The history comes from the browser, so anything may be in it: entries that are not a user or
    assistant message with text are skipped and counted in the log, never an error. That includes
    ``system`` entries: the Space never puts one in the history (the language prompt is added per
    request), so one there is a visitor's attempt to give the model orders in the owner's name.
    """
    if history is None:
        return []
    if not isinstance(history, (list, tuple)):
        log.info("ignored a chat history of type %s (expected a list of messages)", type(history).__name__)
        return []
    window = history if max_entries is None else history[-max_entries:] if max_entries > 0 else []
    messages, skipped = [], 0
    for item in window:
        role = item.get("role") if isinstance(item, Mapping) else None
        text = content_text(item.get("content"), max_chars) if isinstance(item, Mapping) else None
        if role not in ("user", "assistant") or text is None:
            skipped += 1
            continue
        messages.append({"role": role, "content": text})
    if skipped:
        log.info("ignored %d history entry(ies) that are not user or assistant text", skipped)
    if len(window) < len(history):
        log.info("read the newest %d of %d history entries", len(window), len(history))
    return messages


def trim_history(
    messages: list[dict[str, str]], max_chars: int, max_messages: int | None = None
) -> list[dict[str, str]]:
    """The newest messages whose text fits in ``max_chars`` (and ``max_messages``), starting with a user
    turn; drops are logged. One pass from the newest message back: linear in what it keeps.
    """
    kept: list[dict[str, str]] = []
    total = 0
    for message in reversed(messages):
        total += len(message["content"])
        if total > max_chars or (max_messages is not None and len(kept) >= max_messages):
            break
        kept.append(message)
    kept.reverse()
    while kept and kept[0]["role"] == "assistant":  # a reply without its question would confuse the model
        kept.pop(0)
    if len(kept) < len(messages):
        log.info(
            "history cut to its newest %d of %d messages (%d characters max)",
            len(kept),
            len(messages),
            max_chars,
        )
    return kept


def message_problem(message: Any, max_input_chars: int) -> str | None:
    """Why a visitor's message is refused, or None when it may go to the model."""
    if not isinstance(message, str) or not message.strip():
        return "The message is empty: type something to send."
    if len(message) > max_input_chars:
        return (
            f"The message is {len(message)} characters long; this Space accepts at most "
            f"{max_input_chars} characters per message. Shorten it."
        )
    return None


def language_value(language: Any) -> str | None:
    """The dropdown's value checked against the registry (a client may send anything), or None for 'any'."""
    if language is None or language in ("", ANY_LANGUAGE):
        return None
    return one_of(language, "language", [code for _, code in language_choices()[1:]])


def conversation(
    message: str,
    history: Any,
    language: str | None,
    max_history_chars: int,
    max_history_messages: int = DEFAULT_MAX_HISTORY,
) -> list[dict[str, str]]:
    """The messages for the pipeline: the language's system prompt, the (trimmed) history, the message.

    The cost is bounded by the caps, not by the history sent: only its newest ``max_history_messages``
    entries are read, and each is read up to ``max_history_chars`` characters.
    """
    system = system_prompt(language_value(language))
    head = [{"role": "system", "content": system}] if system else []
    read = history_to_messages(history, max_history_messages, max_history_chars)
    past = trim_history(read, max_history_chars, max_history_messages)
    return [*head, *past, {"role": "user", "content": message}]


ZERO_WIDTH_SPACE = "\u200b"


def defuse_special_tokens(messages: list[dict[str, str]], tokenizer: Any) -> list[dict[str, str]]:
    """Visitor text with any special token it spells (``<|system|>``, ``</s>``) made plain text.

    The tokenizer turns such a string into the real token, so a visitor could close their turn and
    open a system or assistant one inside a message. A zero-width space after the token's first
    character keeps the text readable but no longer the token. The system prompt (the Space's own) is
    left alone. One batched tokenizer call finds which messages hold a special token at all.
    """
    special_ids = set(tokenizer.all_special_ids) | {
        i for i, token in getattr(tokenizer, "added_tokens_decoder", {}).items() if token.special
    }
    visitor = [i for i, m in enumerate(messages) if m["role"] != "system"]
    ids = tokenizer([messages[i]["content"] for i in visitor], add_special_tokens=False)["input_ids"]
    defused = list(messages)
    for i, token_ids in zip(visitor, ids, strict=True):
        found = {t for t in token_ids if t in special_ids}
        if not found:
            continue
        text = messages[i]["content"]
        for token in sorted(tokenizer.convert_ids_to_tokens(sorted(found)), key=len, reverse=True):
            if len(token) > 1:
                text = text.replace(token, token[0] + ZERO_WIDTH_SPACE + token[1:])
        defused[i] = {"role": messages[i]["role"], "content": text}
        log.info("defused special token(s) in a %s message", messages[i]["role"])
    return defused


def seed_value(seed: Any) -> int | None:
    """The seed field's value: None (random) for -1 or nothing, else a whole number in the field's range."""
    if seed is None or seed == RANDOM_SEED:
        return None
    if isinstance(seed, bool) or not isinstance(seed, (int, float)) or not 0 <= seed <= 2**32 - 1:
        raise ChatInputError(
            f"seed {echo(seed)}: expected a whole number from 0 to {2**32 - 1} ({RANDOM_SEED}: random)"
        )
    if seed != int(seed):
        raise ChatInputError(f"seed {seed}: expected a whole number")
    return int(seed)
