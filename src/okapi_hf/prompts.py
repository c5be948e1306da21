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
