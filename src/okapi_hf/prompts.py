"""Okapi's prompt template, and a tokenizer's chat template as the alternative.

Okapi used one English (Alpaca-style) template for every language, never translated. The
response starts right after ``### Response:\\n``; the answer is what follows the first marker.
"""

from __future__ import annotations

from typing import Any

RESPONSE_MARKER = "### Response:"

PROMPT_WITH_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"
)
PROMPT_NO_INPUT = (
    "Below is an instruction that describes a task. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Response:\n"
)


def format_prompt(instruction: str, input: str | None = "") -> str:
    """The Okapi prompt, ending in ``### Response:\\n``; an empty ``input`` uses the short form."""
    if input:
        return PROMPT_WITH_INPUT.format(instruction=instruction, input=input)
    return PROMPT_NO_INPUT.format(instruction=instruction)


def format_example(instruction: str, input: str | None, output: str) -> str:
    """Prompt plus response: the full text of one training example."""
    return format_prompt(instruction, input) + output


def extract_response(text: str) -> str:
    """The answer after the first ``### Response:``, stripped.

    Text without the marker (for example only the newly generated tokens) is returned stripped,
    so callers may pass either the full decoded output or just the continuation.
    """
    _, marker, after = text.partition(RESPONSE_MARKER)
    return (after if marker else text).strip()


def to_messages(instruction: str, input: str | None = "", output: str | None = None) -> list[dict[str, str]]:
    """An Okapi row as chat messages: the input, if any, follows the instruction after a blank line."""
    user = f"{instruction}\n\n{input}" if input else instruction
    messages = [{"role": "user", "content": user}]
    if output is not None:
        messages.append({"role": "assistant", "content": output})
    return messages


def render_chat(tokenizer: Any, instruction: str, input: str | None = "", output: str | None = None) -> str:
    """Render a row through ``tokenizer``'s chat template instead of Okapi's.

    Without ``output`` the text ends with the generation prompt, ready for ``generate``.
    """
    if getattr(tokenizer, "chat_template", None) is None:
        raise ValueError(
            f"tokenizer {getattr(tokenizer, 'name_or_path', '')!r} has no chat template; "
            "use the Okapi template (format_prompt) or pass a tokenizer with one"
        )
    return tokenizer.apply_chat_template(
        to_messages(instruction, input, output),
        tokenize=False,
        add_generation_prompt=output is None,
    )


# -- the one tokenization rule -----------------------------------------------------------------------------
#
# Every stage that turns a prompt (or a prompt plus its response) into token ids goes through `encode`:
# SFT (trl tokenizes with the tokenizer's default, which this rule equals), the reward model, PPO,
# RLOO/GRPO (trl tokenizes their prompts without special tokens, so they get the prefix as text), listwise
# DPO, chat, the Spaces, generative evaluation and local data-creation backends. Train and serve then see
# the same ids: Gemma and Llama get their BOS exactly once, BLOOM none, as their tokenizers decide.


def special_prefix(tokenizer: Any) -> list[int]:
    """The ids the tokenizer puts before a text by default (Llama, Gemma: ``[bos]``; BLOOM: none)."""
    plain = tokenizer("a", add_special_tokens=False)["input_ids"]
    full = tokenizer("a", add_special_tokens=True)["input_ids"]
    for start in range(len(full) - len(plain) + 1):
        if full[start : start + len(plain)] == plain:
            return list(full[:start])
    return []


def prefix_text(tokenizer: Any) -> str:
    """:func:`special_prefix` as text (``"<bos>"``), for trainers that tokenize without special tokens."""
    prefix = special_prefix(tokenizer)
    return tokenizer.decode(prefix) if prefix else ""


def encode(
    tokenizer: Any, text: str, *, templated: bool = False, prefix: list[int] | None = None
) -> list[int]:
    """The token ids of a prompt (or prompt + response), the same in every stage.

    Text in Okapi's template gets the tokenizer's default prefix (its BOS) once and never a default
    suffix (a prompt does not end a sequence). A rendered chat template (``templated=True``) holds its
    special tokens already and gets none, as ``apply_chat_template(tokenize=True)`` and trl do; a text
    that already starts with the prefix never gets it twice. ``prefix`` saves recomputing
    :func:`special_prefix` in a loop.
    """
    prefix = [] if templated else special_prefix(tokenizer) if prefix is None else prefix
    if prefix and text.startswith(tokenizer.decode(prefix)):
        prefix = []
    return [*prefix, *tokenizer(text, add_special_tokens=False)["input_ids"]]


def encode_batch(tokenizer: Any, texts: list[str], *, templated: bool = False, **pad: Any) -> Any:
    """:func:`encode` for several texts, padded by ``tokenizer.pad`` (``return_tensors="pt"`` and so on)."""
    prefix = special_prefix(tokenizer)
    ids = [encode(tokenizer, text, templated=templated, prefix=prefix) for text in texts]
    return tokenizer.pad({"input_ids": ids}, **pad)
