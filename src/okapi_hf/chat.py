"""Talk to a trained model: Okapi's one-shot ``generate`` and a streaming multi-turn ``chat``.

``pipeline(path).generate(instruction, prompt_input)`` keeps the interface of Okapi's chat script
(its template, its sampling settings, the response text back). ``.chat(messages)`` adds what that
script lacked: history, a system prompt, the model's own chat template when it has one, streaming,
stop strings, generation parameters per call and a seed, and LoRA adapters.
"""

from __future__ import annotations

import logging
import math
import numbers
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from okapi_hf.errors import ConfigError, OkapiError
from okapi_hf.generation import OKAPI_STOP_STRINGS as OKAPI_STOP_STRINGS  # re-exported: chat's public name
from okapi_hf.generation import (
    UnknownGenerationParameter,
    decode_replies,
    encode_inputs,
    generate_ids,
    generation_config,
    has_chat_template,
    stream_reply,
)
from okapi_hf.generation import visible_text as visible_text  # re-exported
from okapi_hf.prompts import encode, format_example, format_prompt

logger = logging.getLogger(__name__)

# Okapi's chat settings (its chat script: sampling with nucleus 0.75 and top-k 40, 256 new tokens).
OKAPI_GENERATION: dict[str, Any] = {"max_new_tokens": 256, "do_sample": True, "top_p": 0.75, "top_k": 40}
ROLES = ("system", "user", "assistant")


class ChatError(OkapiError, ValueError):
    """A message, prompt or model path the chat pipeline cannot use."""


class ChatOptionError(ChatError, ConfigError):
    """A generation setting out of range: a ConfigError for the CLI, a ChatError for chat callers."""


# What each generation setting must be: (kind, lowest, lowest allowed?, highest or None, what to say).
# Checked before a model loads (and on every call's overrides), so a bad value is one line naming it,
# not a transformers traceback after a minute of loading.
_OPTION_RULES: dict[str, tuple[str, float, bool, float | None, str]] = {
    "max_new_tokens": ("int", 1, True, None, "a whole number >= 1"),
    "max_input_tokens": ("int", 1, True, None, "a whole number >= 1"),
    "top_k": ("int", 0, True, None, "a whole number >= 0 (0: off)"),
    "temperature": ("float", 0, True, None, "a number >= 0 (0: greedy)"),
    "top_p": ("float", 0, False, 1, "a number > 0 and <= 1"),
    "max_time": ("float", 0, False, None, "a number of seconds > 0"),
    "seed": ("int", -(2**63), True, 2**64 - 1, "a whole number from -2**63 to 2**64-1"),
}


def cli_option(name: str) -> str:
    """How the CLI spells a setting: ``max_new_tokens`` -> ``--max-new-tokens``."""
    return "--" + name.replace("_", "-")


def _shown(value: Any) -> str:
    """A value as the user typed it, cut short: a message must stay one line whatever was passed."""
    if isinstance(value, float):
        text = format(value, "g")
    elif isinstance(value, int) and value.bit_length() > 256:  # str() of a huge int is slow, or refused
        text = f"(a {value.bit_length()}-bit number)"
    else:
        text = repr(value) if isinstance(value, str) else str(value)
    text = " ".join(text.split())  # one line, whatever was passed
    return text if len(text) <= 40 else text[:37] + "..."


def _checked_option(name: str, value: Any, spell: Callable[[str], str]) -> int | float:
    kind, low, low_ok, high, expected = _OPTION_RULES[name]
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        problem = True
    elif isinstance(value, numbers.Integral):
        problem = False
    else:
        problem = not math.isfinite(value) or (kind == "int" and value != int(value))
    if not problem:
        problem = value < low or (value == low and not low_ok) or (high is not None and value > high)
    if problem:
        raise ChatOptionError(f"{spell(name)} {_shown(value)}: expected {expected}")
    return int(value) if kind == "int" else float(value)


def check_chat_options(
    options: Mapping[str, Any], *, spell: Callable[[str], str] = cli_option
) -> dict[str, Any]:
    """``options`` with the known generation settings checked and normalised (``None`` means unset).

    ``max_new_tokens``, ``max_input_tokens``, ``top_k``, ``temperature``, ``top_p``, ``max_time`` and
    ``seed`` are checked (NaN and infinities included); other keys pass through. A bad value raises
    :class:`ChatOptionError` (a ConfigError) naming the option as ``spell`` writes it, the CLI's
    ``--top-k`` by default: call this before loading a model.
    """
    return {
        name: _checked_option(name, value, spell) if name in _OPTION_RULES and value is not None else value
        for name, value in options.items()
    }


@dataclass
class ChatPipeline:
    """A causal LM and its tokenizer, ready to answer. Build one with :func:`pipeline`."""

    model: Any
    tokenizer: Any
    generation: dict[str, Any] = field(default_factory=lambda: dict(OKAPI_GENERATION))
    max_input_tokens: int = 2048
    template: str = "auto"  # auto: the chat template if the tokenizer has one, else Okapi's

    @property
    def uses_chat_template(self) -> bool:
        if self.template == "okapi":
            return False
        has = has_chat_template(self.tokenizer)
        if self.template == "chat" and not has:
            raise ChatError(f"template='chat' but the tokenizer of {self.model.name_or_path!r} has none")
        return has

    def generate(
        self, instruction: str, prompt_input: str | None = None, *, seed: int | None = None, **generation: Any
    ) -> str:
        """Okapi's single-turn call: its template, its sampling settings, the response text back."""
        if not instruction or not instruction.strip():
            raise ChatError("the instruction is empty")
        prompt = format_prompt(instruction, prompt_input or "")
        pieces = self._generate(
            prompt, OKAPI_STOP_STRINGS, stream=False, seed=seed, templated=False, **generation
        )
        return "".join(pieces)

    def chat(
        self,
        messages: Sequence[dict[str, str]],
        *,
        stream: bool = False,
        seed: int | None = None,
        stop: Sequence[str] = (),
        **generation: Any,
    ) -> str | Iterator[str]:
        """Answer the last user message of a conversation.

        With ``stream=True`` this returns an iterator of text pieces whose concatenation is exactly what
        ``stream=False`` returns under the same ``seed``. ``generation`` overrides the sampling settings
        (``temperature``, ``top_p``, ``max_new_tokens``...) for this call only.
        """
        messages = check_messages(messages)
        prompt = self.render(messages)
        stops = tuple(stop) if self.uses_chat_template else (*OKAPI_STOP_STRINGS, *stop)
        templated = self.uses_chat_template
        pieces = self._generate(prompt, stops, stream=stream, seed=seed, templated=templated, **generation)
        return pieces if stream else "".join(pieces)

    def chat_batch(
        self,
        conversations: Sequence[Sequence[dict[str, str]]],
        *,
        batch_size: int = 8,
        seed: int | None = None,
        stop: Sequence[str] = (),
        **generation: Any,
    ) -> list[str]:
        """Replies to many conversations, ``batch_size`` at a time (left-padded), in order.

        For evaluation: greedy decoding (``do_sample=False``) gives each reply independently of its
        batch neighbours; with sampling, ``seed`` fixes the whole run, not each reply.
        """
        prompts = [self.render(check_messages(messages)) for messages in conversations]
        templated = self.uses_chat_template
        stops = tuple(stop) if templated else (*OKAPI_STOP_STRINGS, *stop)
        return self._generate_batch(prompts, stops, templated, batch_size, seed, generation)

    def generate_batch(
        self,
        rows: Sequence[tuple[str, str | None]],
        *,
        batch_size: int = 8,
        seed: int | None = None,
        **generation: Any,
    ) -> list[str]:
        """:meth:`generate` for many ``(instruction, input)`` rows, batched as :meth:`chat_batch` is."""
        for instruction, _ in rows:
            if not instruction or not instruction.strip():
                raise ChatError("an instruction is empty")
        prompts = [format_prompt(instruction, prompt_input or "") for instruction, prompt_input in rows]
        return self._generate_batch(prompts, OKAPI_STOP_STRINGS, False, batch_size, seed, generation)

    def _generate_batch(
        self,
        prompts: list[str],
        stops: Sequence[str],
        templated: bool,
        batch_size: int,
        seed: int | None,
        generation: dict[str, Any],
    ) -> list[str]:
        config = self._generation_config(generation, stops)
        seed = check_chat_options({"seed": seed}, spell=str).get("seed")
        if seed is not None:  # once for the whole run, not per batch
            torch.manual_seed(seed)
        replies = []
        side = self.tokenizer.padding_side
        self.tokenizer.padding_side = "left"  # new tokens follow every prompt directly
        try:
            for start in range(0, len(prompts), batch_size):
                batch = encode_inputs(
                    self.tokenizer,
                    prompts[start : start + batch_size],
                    templated=templated,
                    device=self.model.device,
                    padding=True,
                )
                kwargs = {**batch, "generation_config": config, "tokenizer": self.tokenizer}
                output = generate_ids(self.model, kwargs)
                replies += decode_replies(self.tokenizer, output, batch["input_ids"].shape[1], stops)
        finally:
            self.tokenizer.padding_side = side
        return replies

    def render(self, messages: Sequence[dict[str, str]]) -> str:
        """The prompt text for a conversation, oldest turns dropped (and logged) if it is too long.

        The cost stays linear in the conversation: each turn is tokenised once to rule out the turns
        that cannot fit whatever the template adds, then a binary search over where the kept turns
        start renders the prompt O(log turns) times (re-rendering once per dropped turn was quadratic:
        minutes for a few thousand short turns).
        """
        system = [m for m in messages if m["role"] == "system"]
        turns = [m for m in messages if m["role"] != "system"]
        earliest, starts = self._possible_starts(turns)
        if earliest == 0:  # the whole conversation may fit
            text, n_tokens = self._measure([*system, *turns])
            if n_tokens <= self.max_input_tokens:
                return text
        last = len(turns) - 1
        text, n_tokens = self._measure([*system, turns[last]])
        if n_tokens > self.max_input_tokens:
            raise ChatError(
                f"the message is {n_tokens} tokens long; the limit is {self.max_input_tokens} "
                "(max_input_tokens): shorten it"
            )
        low, high = -1, len(starts)  # turns from starts[low] do not fit; from starts[high] (or last) they do
        while high - low > 1:
            middle = (low + high) // 2
            candidate, n_middle = self._measure([*system, *turns[starts[middle] :]])
            if n_middle <= self.max_input_tokens:
                high, text = middle, candidate
            else:
                low = middle
        first = starts[high] if high < len(starts) else last
        logger.warning("dropped the %d oldest message(s) to fit %d tokens", first, self.max_input_tokens)
        return text

    def _measure(self, messages: list[dict[str, str]]) -> tuple[str, int]:
        """The rendered prompt and its length in tokens."""
        text = self._render_once(messages)
        return text, len(encode(self.tokenizer, text, templated=self.uses_chat_template))

    def _possible_starts(self, turns: list[dict[str, str]]) -> tuple[int, list[int]]:
        """The first turn that may fit, and the indexes of the user turns from there (before the last)
        that a kept history could start with.

        Turns whose text alone, counted back from the newest, exceeds the token limit cannot fit
        whatever the template adds. They are counted in batches from the newest, each twice the
        last, so the work is bounded by the token limit, not by the length of the history.
        """
        total, end, batch = 0, len(turns), 256
        earliest = 0
        while end > 0 and not earliest:
            start = max(0, end - batch)
            texts = [m["content"] for m in turns[start:end]]
            counts = self.tokenizer(texts, add_special_tokens=False)["input_ids"]
            for i in range(end - 1, start - 1, -1):
                total += len(counts[i - start]) + 1  # at least one token of template around a message
                if total > self.max_input_tokens:
                    earliest = i + 1
                    break
            end, batch = start, 2 * batch
        return earliest, [i for i in range(earliest, len(turns) - 1) if turns[i]["role"] == "user"]

    def _render_once(self, messages: list[dict[str, str]]) -> str:
        if self.uses_chat_template:
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return okapi_conversation(messages)

    def _generate(
        self,
        prompt: str,
        stops: Sequence[str],
        *,
        stream: bool,
        templated: bool,
        seed: int | None = None,
        **overrides: Any,
    ) -> Iterator[str]:
        inputs = encode_inputs(self.tokenizer, [prompt], templated=templated, device=self.model.device)
        n_prompt = inputs["input_ids"].shape[1]
        if n_prompt > self.max_input_tokens:
            raise ChatError(
                f"the prompt is {n_prompt} tokens long; the limit is {self.max_input_tokens} (max_input_tokens)"
            )
        config = self._generation_config(overrides, stops)
        seed = check_chat_options({"seed": seed}, spell=str).get("seed")
        kwargs = {**inputs, "generation_config": config, "tokenizer": self.tokenizer}
        if stream:
            return stream_reply(self.model, self.tokenizer, kwargs, stops, seed)
        output = generate_ids(self.model, kwargs, seed=seed)
        return iter(decode_replies(self.tokenizer, output, n_prompt, stops))

    def _generation_config(self, overrides: dict[str, Any], stops: Sequence[str]) -> Any:
        """The model's generation config with the pipeline's settings and this call's overrides on top."""
        settings = {**self.generation, **check_chat_options(overrides, spell=str)}
        try:
            return generation_config(self.model, self.tokenizer, settings, stops)
        except UnknownGenerationParameter as e:
            raise ChatError(str(e)) from None


def okapi_conversation(messages: Sequence[dict[str, str]]) -> str:
    """A conversation in Okapi's template, which is single-turn: earlier turns become solved examples.

    A system message is put in front of the last instruction, where a model that never saw one is
    most likely to follow it.
    """
    system = "\n".join(m["content"] for m in messages if m["role"] == "system")
    turns = [m for m in messages if m["role"] != "system"]
    parts, pending = [], None
    for m in turns[:-1]:
        if m["role"] == "user":
            pending = m["content"]
        elif pending is not None:
            parts.append(format_example(pending, "", m["content"]))
            pending = None
    last = turns[-1]["content"]
    parts.append(format_prompt(f"{system}\n\n{last}" if system else last))
    return "\n\n".join(parts)


def check_messages(messages: Sequence[dict[str, str]]) -> list[dict[str, str]]:
    """Messages as ``[{"role", "content"}]`` ending with a non-empty user message, or a clear error."""
    if not messages:
        raise ChatError("no messages: pass at least one {'role': 'user', 'content': ...}")
    checked = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            raise ChatError(
                f"message {i} must be a dict with 'role' in {ROLES} and a string 'content', got {m!r:.120}"
            )
        checked.append({"role": m["role"], "content": m["content"]})
    if checked[-1]["role"] != "user":
        raise ChatError(f"the last message must come from the user, not {checked[-1]['role']!r}")
    if not checked[-1]["content"].strip():
        raise ChatError("the last user message is empty")
    return checked


def pipeline(
    model_path: str | Path,
    gpu: bool = False,
    *,
    dtype: str | torch.dtype | None = None,
    max_input_tokens: int | None = None,
    template: str = "auto",
    trust_remote_code: bool = False,
    **generation: Any,
) -> ChatPipeline:
    """Load a model for chatting: a folder, a LoRA adapter folder, a ``.gguf`` file, a preset or a Hub id.

    ``gpu=True`` puts the model on CUDA in bfloat16 as Okapi did; on the CPU it stays in float32.
    ``generation`` overrides Okapi's sampling defaults for every call. Out-of-range settings are refused
    (:func:`check_chat_options`) before the model loads; a credential in a URL-like model path never
    appears in an error.
    """
    from okapi_hf.models import ModelSourceError, load_model, load_tokenizer
    from okapi_hf.spaces.limits import redact_credentials

    checked = check_chat_options({"max_input_tokens": max_input_tokens, **generation})
    max_input_tokens = checked.pop("max_input_tokens")
    generation = checked
    if template not in ("auto", "okapi", "chat"):
        raise ChatError(f"template must be 'auto', 'okapi' or 'chat', not {template!r}")
    if gpu and not torch.cuda.is_available():
        raise ChatError("gpu=True but torch sees no CUDA device; use gpu=False")
    dtype = dtype or (torch.bfloat16 if gpu else torch.float32)
    try:
        model = load_model(model_path, dtype=dtype, trust_remote_code=trust_remote_code)
        tokenizer = load_tokenizer(model_path, trust_remote_code=trust_remote_code)
    except ModelSourceError as e:
        raise ChatError(redact_credentials(str(e))) from None
    except OSError as e:
        raise ChatError(redact_credentials(f"could not load a model from {str(model_path)!r}: {e}")) from None
    model.to("cuda" if gpu else "cpu").eval()
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if max_input_tokens is None:
        limit = getattr(model.config, "max_position_embeddings", None) or 2048
        new_tokens = generation.get("max_new_tokens") or 256
        max_input_tokens = min(limit, 4096) - new_tokens
        if max_input_tokens < 1:  # a long reply on a long-context model: the window decides
            max_input_tokens = limit - new_tokens
        if max_input_tokens < 1:
            raise ChatError(
                f"--max-new-tokens {new_tokens} leaves no room for a prompt: "
                f"{redact_credentials(str(model_path))} reads at most {limit} tokens in all"
            )
    return ChatPipeline(model, tokenizer, {**OKAPI_GENERATION, **generation}, max_input_tokens, template)


def language_system_prompt(code: str) -> str:
    """The system message ``/lang xx`` sets: answer in that language (named from the registry)."""
    from okapi_hf.languages import get_language

    return f"Always answer in {get_language(code).name}."


CHAT_HELP = "commands: /reset (forget the conversation), /lang xx (answer in language xx; /lang off), /quit"


def terminal_chat(
    pipe: ChatPipeline,
    *,
    lang: str | None = None,
    stream: bool = True,
    seed: int | None = None,
    input_fn: Any = None,
    write: Any = None,
) -> int:
    """A multi-turn chat in the terminal; returns the number of replies given.

    ``input_fn`` and ``write`` stand in for the keyboard and the screen, so the loop is testable.
    """
    import sys

    def out(text: str, end: str = "\n") -> None:
        if write is not None:
            write(text + end)
        else:
            sys.stdout.write(text + end)
            sys.stdout.flush()

    seed = check_chat_options({"seed": seed}).get("seed")
    read = input_fn or input
    system = language_system_prompt(lang) if lang else None
    history: list[dict[str, str]] = []
    replies = 0
    out(CHAT_HELP)
    while True:
        try:
            line = read("you> ").strip()
        except EOFError:
            out("")
            return replies
        if not line:
            continue
        if line.startswith("/"):
            command, _, arg = line.partition(" ")
            if command in ("/quit", "/exit"):
                return replies
            if command == "/reset":
                history = []
                out("(conversation forgotten)")
            elif command == "/lang":
                try:
                    system = None if arg.strip() in ("", "off") else language_system_prompt(arg.strip())
                except OkapiError as e:
                    out(f"(error: {e})")
                    continue
                out(f"(system prompt: {system})" if system else "(no system prompt)")
            else:
                out(f"(unknown command {command}; {CHAT_HELP})")
            continue
        history.append({"role": "user", "content": line})
        messages = [{"role": "system", "content": system}, *history] if system else history
        out("bot> ", end="")
        try:
            if stream:
                reply = ""
                for piece in pipe.chat(messages, stream=True, seed=seed):
                    reply += piece
                    out(piece, end="")
                out("")
            else:
                reply = pipe.chat(messages, seed=seed)
                out(reply)
        except ChatError as e:
            history.pop()
            out(f"(error: {e})")
            continue
        history.append({"role": "assistant", "content": reply})
        replies += 1
