"""The chat Space: talk to one model, streamed, in the language the visitor picks.

Whoever runs the Space chooses the model (``OKAPI_CHAT_MODEL``); a visitor only chooses the language,
the sampling settings and what to say. Everything that decides what reaches the model is plain Python
(history conversion and the input checks in :mod:`okapi_hf.spaces.chat_input`, re-exported here; the
sampling settings and the reply loop above :func:`build_demo`), so tests can check it without a
server; the Gradio layout comes last.

A Space that is missing its model, or whose model cannot be loaded, still starts: it shows a page that
says what to set, because a crashed Space only shows its owner a log.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from okapi_hf.errors import ConfigError, OkapiError
from okapi_hf.spaces.chat_input import (
    ANY_LANGUAGE,
    DEFAULT_MAX_HISTORY,
    EXAMPLES_PER_LANGUAGE,
    MAX_PARTS_PER_MESSAGE,
    RANDOM_SEED,
    ChatInputError,
    content_text,
    conversation,
    defuse_special_tokens,
    example_prompts,
    history_to_messages,
    language_choices,
    language_value,
    message_problem,
    seed_value,
    system_prompt,
    trim_history,
)
from okapi_hf.spaces.limits import redact_credentials

# What tests and callers use from ``okapi_hf.spaces.chat``, wherever it is defined.
__all__ = [
    "ANY_LANGUAGE",
    "CONCURRENCY_ENV",
    "DEFAULT_MAX_HISTORY",
    "EXAMPLES_PER_LANGUAGE",
    "GPU_ENV",
    "MAX_HISTORY_ENV",
    "MAX_INPUT_CHARS_ENV",
    "MAX_PARTS_PER_MESSAGE",
    "MAX_SECONDS_ENV",
    "MODEL_ENV",
    "RANDOM_SEED",
    "ChatInputError",
    "ChatSpaceConfig",
    "Sampling",
    "build_demo",
    "config_from_env",
    "content_text",
    "conversation",
    "defuse_special_tokens",
    "demo_from_env",
    "example_prompts",
    "generation_settings",
    "history_to_messages",
    "language_choices",
    "language_value",
    "make_respond",
    "message_problem",
    "okapi_sampling",
    "seed_value",
    "system_prompt",
    "trim_history",
]

if TYPE_CHECKING:
    import gradio as gr

    from okapi_hf.chat import ChatPipeline

log = logging.getLogger(__name__)

MODEL_ENV = "OKAPI_CHAT_MODEL"
MAX_INPUT_CHARS_ENV = "OKAPI_CHAT_MAX_INPUT_CHARS"
CONCURRENCY_ENV = "OKAPI_CHAT_CONCURRENCY"
GPU_ENV = "OKAPI_CHAT_GPU"
MAX_HISTORY_ENV = "OKAPI_CHAT_MAX_HISTORY"
MAX_SECONDS_ENV = "OKAPI_CHAT_MAX_SECONDS"

DEFAULT_MAX_INPUT_CHARS = 2000
DEFAULT_CONCURRENCY = 1
# One reply may take this long (transformers' max_time); then it ends, marked as cut, and the next
# visitor's turn comes.
DEFAULT_MAX_SECONDS = 60
# Visitors waiting beyond this are turned away at once instead of waiting minutes for a CPU Space.
MAX_QUEUE_SIZE = 32
# The history sent along is cut to this many times the message limit (oldest turns first): the browser
# sends the history, so without a cap a crafted request could make every tokenisation arbitrarily slow.
# The pipeline then drops further turns if the prompt is still over the model's token limit.
HISTORY_CHARS_PER_INPUT_CHAR = 8
MAX_NEW_TOKENS_LIMIT = 1024
EMPTY_REPLY = "(the model ended its reply without writing anything)"


@dataclass(frozen=True)
class Sampling:
    """The values the sliders start at: Okapi's chat settings (temperature is transformers' default)."""

    temperature: float
    top_p: float
    top_k: int
    max_new_tokens: int


def okapi_sampling() -> Sampling:
    """Slider defaults read from the chat pipeline's settings, so the two cannot drift apart."""
    from okapi_hf.chat import OKAPI_GENERATION

    return Sampling(
        temperature=float(OKAPI_GENERATION.get("temperature", 1.0)),
        top_p=float(OKAPI_GENERATION["top_p"]),
        top_k=int(OKAPI_GENERATION["top_k"]),
        max_new_tokens=int(OKAPI_GENERATION["max_new_tokens"]),
    )


def _slider_name(name: str) -> str:
    """How the page names a setting (its slider's label)."""
    return {"top_p": "top-p", "top_k": "top-k"}.get(name, name.replace("_", " "))


def generation_settings(temperature: float, top_p: float, top_k: int, max_new_tokens: int) -> dict[str, Any]:
    """The pipeline's generation overrides for the slider values; temperature 0 means greedy decoding.

    A client can send any number, NaN included, past the sliders: out-of-range values are refused
    (:class:`okapi_hf.chat.ChatOptionError`, naming the setting), and so is a reply longer than
    :data:`MAX_NEW_TOKENS_LIMIT`, which is what bounds the time a reply can take.
    """
    from okapi_hf.chat import ChatOptionError, check_chat_options

    values = {"temperature": temperature, "top_p": top_p, "top_k": top_k, "max_new_tokens": max_new_tokens}
    checked = check_chat_options(values, spell=_slider_name)
    for name, value in checked.items():
        if value is None:
            raise ChatOptionError(f"{_slider_name(name)}: no value given")
    temperature, top_p, top_k, max_new_tokens = checked.values()
    if max_new_tokens > MAX_NEW_TOKENS_LIMIT:
        raise ChatOptionError(
            f"max new tokens {max_new_tokens}: this Space allows at most {MAX_NEW_TOKENS_LIMIT}"
        )
    if temperature <= 0:
        return {"do_sample": False, "max_new_tokens": int(max_new_tokens)}
    return {
        "do_sample": True,
        "temperature": float(temperature),
        "top_p": float(top_p),
        "top_k": int(top_k),
        "max_new_tokens": int(max_new_tokens),
    }


def cut_note(max_seconds: float) -> str:
    """What ends a reply that reached the time limit, so the visitor knows why it stops mid-sentence."""
    return f"\n\n(cut: this Space stops a reply after {max_seconds:g} seconds)"


def make_respond(
    pipe: ChatPipeline,
    max_input_chars: int = DEFAULT_MAX_INPUT_CHARS,
    *,
    max_history: int = DEFAULT_MAX_HISTORY,
    max_seconds: float = DEFAULT_MAX_SECONDS,
) -> Callable[..., Iterator[str]]:
    """The ChatInterface function: checks everything a visitor sent, then yields the reply as it grows.

    Whatever arrives, the visitor sees the reply or one message (a ``gr.Error``), never a traceback;
    the work is bounded by the caps: at most ``max_history`` history entries of at most
    ``HISTORY_CHARS_PER_INPUT_CHAR * max_input_chars`` characters in all, and ``max_seconds`` of
    generation.
    """
    import gradio as gr

    max_history_chars = HISTORY_CHARS_PER_INPUT_CHAR * max_input_chars

    def respond(
        message: str,
        history: list[dict[str, Any]],
        language: str | None,
        temperature: float,
        top_p: float,
        top_k: int,
        max_new_tokens: int,
        seed: float | None,
    ) -> Iterator[str]:
        problem = message_problem(message, max_input_chars)
        if problem:
            raise gr.Error(problem)
        reply = ""
        try:
            generation = generation_settings(temperature, top_p, top_k, max_new_tokens)
            fixed_seed = seed_value(seed)
            messages = conversation(message, history, language, max_history_chars, max_history)
            messages = defuse_special_tokens(messages, pipe.tokenizer)
            pieces = pipe.chat(messages, stream=True, seed=fixed_seed, max_time=max_seconds, **generation)
            started = time.monotonic()
            with contextlib.closing(pieces):  # a Stop click closes this generator; that stops generation
                for piece in pieces:
                    reply += piece
                    yield reply
        except OkapiError as e:  # the chat pipeline's, the input checks' and the language registry's
            raise gr.Error(str(e)) from e
        except Exception as e:  # a bug: the owner gets the traceback in the log, the visitor one line
            log.error("the reply failed:\n%s", redact_credentials(traceback.format_exc()))
            raise gr.Error(f"the reply failed on the server ({type(e).__name__}); try again") from None
        if time.monotonic() - started >= max_seconds:
            yield (reply or EMPTY_REPLY) + cut_note(max_seconds)
        elif not reply:
            yield EMPTY_REPLY  # Gradio cannot show a reply that never came

    return respond


def make_validator(max_input_chars: int) -> Callable[[Any], dict[str, Any]]:
    """The textbox check the browser gets before the message enters the chat (the API path checks again)."""
    import gradio as gr

    def validate(message: Any) -> dict[str, Any]:
        problem = message_problem(message, max_input_chars)
        return gr.validate(problem is None, problem or "")

    return validate


# --- configuration -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChatSpaceConfig:
    """What the Space's owner sets; the visitor can change none of it."""

    model: str | None
    max_input_chars: int = DEFAULT_MAX_INPUT_CHARS
    concurrency: int = DEFAULT_CONCURRENCY
    gpu: bool = False
    max_history: int = DEFAULT_MAX_HISTORY
    max_seconds: int = DEFAULT_MAX_SECONDS


def _env_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value < 1:
        raise ConfigError(f"{name} must be at least 1, got {value}")
    return value


def _env_bool(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in ("", "0", "false", "no"):
        return False
    if raw in ("1", "true", "yes"):
        return True
    raise ConfigError(f"{name} must be 1 (use CUDA) or 0 (CPU), got {raw!r}")


def config_from_env(env: Mapping[str, str] | None = None) -> ChatSpaceConfig:
    """The Space's settings from environment variables (a Space's variables); bad values raise ConfigError."""
    env = os.environ if env is None else env
    return ChatSpaceConfig(
        model=env.get(MODEL_ENV, "").strip() or None,
        max_input_chars=_env_int(env, MAX_INPUT_CHARS_ENV, DEFAULT_MAX_INPUT_CHARS),
        concurrency=_env_int(env, CONCURRENCY_ENV, DEFAULT_CONCURRENCY),
        gpu=_env_bool(env, GPU_ENV),
        max_history=_env_int(env, MAX_HISTORY_ENV, DEFAULT_MAX_HISTORY),
        max_seconds=_env_int(env, MAX_SECONDS_ENV, DEFAULT_MAX_SECONDS),
    )


# --- pages ---------------------------------------------------------------------------------------------

NO_MODEL_TEXT = f"""\
## This chat Space has no model configured

Set the environment variable `{MODEL_ENV}` to the model to chat with: a model folder
(for example one written by `okapi-hf train sft`, a LoRA adapter too), a Hub model id, a `.gguf` file or
a preset such as `gemma-3-270m` (see `okapi-hf models list`). On a Hugging Face Space this is a
*variable* under Settings → Variables and secrets; then restart the Space. Visitors cannot choose the
model.

Optional: `{MAX_INPUT_CHARS_ENV}` (longest message accepted, default {DEFAULT_MAX_INPUT_CHARS}),
`{CONCURRENCY_ENV}` (replies generated at once, default {DEFAULT_CONCURRENCY}), `{GPU_ENV}=1` (use CUDA),
`{MAX_HISTORY_ENV}` (newest history messages read, default {DEFAULT_MAX_HISTORY}), `{MAX_SECONDS_ENV}`
(longest a reply may take, default {DEFAULT_MAX_SECONDS} seconds).
"""


def message_page(text: str) -> gr.Blocks:
    """A page that only explains what is wrong with the Space's setup."""
    import gradio as gr

    with gr.Blocks(title="Okapi chat") as demo:
        gr.Markdown(text, elem_id="chat-setup-message")
    return demo


def _load_error_text(model: str, error: BaseException) -> str:
    """The page for a model that failed to load; a credential in a URL is masked (the page is public)."""
    model, reason = redact_credentials(model), redact_credentials(f"{type(error).__name__}: {error}")
    return (
        f"## The chat model could not be loaded\n\n`{MODEL_ENV}` is `{model}`, and loading it failed:\n\n"
        f"```\n{reason}\n```\n\n"
        f"Point `{MODEL_ENV}` at a model folder (with config.json), a LoRA adapter folder, a .gguf file, a "
        "preset (`okapi-hf models list`) or a Hub model id this Space can download, then restart the Space."
    )


def _model_label(model: str) -> str:
    """How the page names the model: a Hub id as is, a local folder by its name only."""
    path = Path(model)
    return path.name if path.is_dir() else redact_credentials(model)


# --- the app -------------------------------------------------------------------------------------------


def build_demo(
    model: str | Path | ChatPipeline | None,
    *,
    max_input_chars: int = DEFAULT_MAX_INPUT_CHARS,
    concurrency: int = DEFAULT_CONCURRENCY,
    gpu: bool = False,
    max_history: int = DEFAULT_MAX_HISTORY,
    max_seconds: float = DEFAULT_MAX_SECONDS,
) -> gr.Blocks:
    """The chat app for ``model`` (a path, a Hub id or a loaded pipeline), loaded once, here.

    Without a model, or with one that fails to load, the app is a page saying what to set.
    ``concurrency`` is how many replies are generated at once; seeds are only reproducible at 1, since
    concurrent generations share torch's random state. ``max_history`` and ``max_seconds`` bound
    what one request costs (:func:`make_respond`).
    """
    if max_input_chars < 1 or concurrency < 1 or max_history < 1 or not max_seconds > 0:
        raise ConfigError(
            "max_input_chars, concurrency, max_history and max_seconds must be >= 1 (max_seconds > 0), got "
            f"{max_input_chars}, {concurrency}, {max_history}, {max_seconds}"
        )
    if model is None or (isinstance(model, str) and not model.strip()):
        return message_page(NO_MODEL_TEXT)

    import gradio as gr

    from okapi_hf.chat import ChatPipeline, pipeline  # torch is imported only for a Space with a model

    if isinstance(model, ChatPipeline):
        pipe, label = model, _model_label(str(model.model.name_or_path))
    else:
        try:
            pipe = pipeline(model, gpu=gpu)
        except Exception as e:  # any load failure becomes a page; the traceback goes to the Space's log
            log.error(
                "could not load the chat model %s:\n%s",
                redact_credentials(str(model)),
                redact_credentials(traceback.format_exc()),
            )
            return message_page(_load_error_text(str(model), e))
        label = _model_label(str(model))

    defaults = okapi_sampling()
    with gr.Blocks(title="Okapi chat", fill_height=True) as demo:
        gr.Markdown(
            f"# Okapi chat\n\nModel: `{label}`. Messages up to {max_input_chars} characters; long "
            "conversations forget their oldest turns. Choosing a language tells the model, in a system "
            "prompt, to answer in it."
        )
        language = gr.Dropdown(
            choices=language_choices(), value=ANY_LANGUAGE, label="Answer language", elem_id="chat-language"
        )
        settings = [  # not rendered here: the ChatInterface puts them in its "Sampling settings" accordion
            gr.Slider(
                0.0, 2.0, value=defaults.temperature, step=0.05, label="Temperature (0: greedy)", render=False
            ),
            gr.Slider(0.05, 1.0, value=defaults.top_p, step=0.05, label="top-p (nucleus)", render=False),
            gr.Slider(0, 200, value=defaults.top_k, step=1, label="top-k (0: off)", render=False),
            gr.Slider(
                1,
                MAX_NEW_TOKENS_LIMIT,
                value=defaults.max_new_tokens,
                step=1,
                label="Max new tokens",
                render=False,
            ),
            gr.Number(
                value=RANDOM_SEED,
                precision=0,
                minimum=RANDOM_SEED,
                maximum=2**32 - 1,
                render=False,
                label=f"Seed ({RANDOM_SEED}: random)",
            ),
        ]
        gr.ChatInterface(
            make_respond(pipe, max_input_chars, max_history=max_history, max_seconds=max_seconds),
            additional_inputs=[language, *settings],
            additional_inputs_accordion="Sampling settings",
            examples=example_prompts(),
            examples_label="Example prompts (clicking one also sets the language)",
            cache_examples=False,  # caching would run the model on every example at startup
            validator=make_validator(max_input_chars),
            textbox=gr.Textbox(
                label="Message",
                placeholder="Type a message and press Enter",
                elem_id="chat-input",
                show_label=False,
                scale=7,
                autofocus=True,
                submit_btn=True,
                stop_btn=True,
            ),
            concurrency_limit=concurrency,
            api_name="chat",
        )
    demo.queue(default_concurrency_limit=concurrency, max_size=MAX_QUEUE_SIZE)
    return demo


def demo_from_env(env: Mapping[str, str] | None = None) -> gr.Blocks:
    """The app as the Space's environment configures it; a bad setting gives a page naming it."""
    try:
        config = config_from_env(env)
    except ConfigError as e:
        return message_page(f"## The chat Space is misconfigured\n\n{e}\n\nFix the variable and restart.")
    return build_demo(
        config.model,
        max_input_chars=config.max_input_chars,
        concurrency=config.concurrency,
        gpu=config.gpu,
        max_history=config.max_history,
        max_seconds=config.max_seconds,
    )
