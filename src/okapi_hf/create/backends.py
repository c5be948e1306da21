"""The backends behind :class:`okapi_hf.create.llm.LLMClient`: what turns one request into one answer.

:class:`OpenAIBackend` (:mod:`~okapi_hf.create.openai_backend`) speaks HTTP to any OpenAI-compatible
endpoint; :class:`LocalBackend` runs a causal LM and :class:`Seq2SeqBackend` an NLLB/M2M100
translation model in this process (:mod:`~okapi_hf.create.local_backends`); :class:`FunctionBackend`
answers with a Python function (tests). :func:`make_backend` builds one from the command line's
``--backend`` string. Retries, the cache and accounting live in the client.
"""

from __future__ import annotations

import inspect
import os
import re
from collections.abc import Awaitable, Callable
from typing import Any

from okapi_hf.create.llm import DEFAULT_OPENAI_BASE_URL, Backend
from okapi_hf.create.llm_types import ChatRequest, ChatResult, redact
from okapi_hf.create.local_backends import (
    LANG_CODE_STYLES,
    NLLB_CODES,
    LocalBackend,
    Seq2SeqBackend,
    m2m100_code,
    nllb_code,
)
from okapi_hf.create.openai_backend import BaseURL, OpenAIBackend, parse_base_url, parse_chat_response
from okapi_hf.errors import ConfigError

__all__ = [  # the backends, wherever they live, are imported from here
    "BACKEND_SPECS",
    "LANG_CODE_STYLES",
    "NLLB_CODES",
    "BaseURL",
    "FunctionBackend",
    "LocalBackend",
    "OpenAIBackend",
    "Seq2SeqBackend",
    "m2m100_code",
    "make_backend",
    "nllb_code",
    "parse_base_url",
    "parse_chat_response",
    "public_spec",
]


class FunctionBackend:
    """Answers from a Python function (sync or async): deterministic replies for tests.

    The function returns the reply text (token counts are then whitespace-separated words, a stand-in
    for real tokens) or a full ChatResult. Raising ``LLMError(..., retryable=True)`` exercises retries.
    """

    timeout_applies = True

    def __init__(
        self,
        fn: Callable[[ChatRequest], str | ChatResult | Awaitable[str | ChatResult]],
        id: str = "function",
    ):
        self.fn = fn
        self.id = id
        self.calls = 0

    async def complete(self, request: ChatRequest) -> ChatResult:
        self.calls += 1
        out = self.fn(request)
        if inspect.isawaitable(out):
            out = await out
        if isinstance(out, ChatResult):
            return out
        if not isinstance(out, str):
            raise TypeError(
                f"FunctionBackend {self.id!r}: the function returned {type(out).__name__}, not str"
            )
        prompt_tokens = sum(len(m["content"].split()) for m in request.messages)
        return ChatResult(out, prompt_tokens, len(out.split()), finish_reason="stop")


def public_spec(spec: str) -> str:
    """A backend spec as it may be shown or stored: credentials in its URL masked."""
    return redact(spec)


# --------------------------------------------------------------------------------------------------
# Building a backend from a string
# --------------------------------------------------------------------------------------------------

BACKEND_SPECS = (
    "openai:MODEL (base URL from OPENAI_BASE_URL, else https://api.openai.com/v1), "
    "openai:MODEL@http://HOST:PORT/v1, local:PATH_OR_REPO, seq2seq:PATH_OR_REPO"
)
# ``MODEL@URL``: the first '@' that a scheme (``http://``) follows ends the model name.
_MODEL_AT_URL = re.compile(r"(?P<model>.*?)@(?P<url>[A-Za-z][A-Za-z0-9+.-]*://.*)", re.DOTALL)


def make_backend(spec: str, *, option: str = "--backend", **kw: Any) -> Backend:
    """A backend from one string (``--backend`` on the command line); ``kw`` goes to its constructor.

    - ``openai:gpt-4o-mini``: OpenAI, or whatever ``OPENAI_BASE_URL`` points to;
    - ``openai:MODEL@http://127.0.0.1:8000/v1``: any OpenAI-compatible server (vLLM, TGI, ``transformers serve``);
    - ``local:PATH``: :class:`LocalBackend`; ``seq2seq:PATH``: :class:`Seq2SeqBackend`.

    Everything is checked here, before any request: the error names ``option`` and what was expected,
    and shows the spec with any credential in it masked.
    """
    if not isinstance(spec, str):
        raise ConfigError(
            f"{option}: a backend spec is a string ({BACKEND_SPECS}), got {type(spec).__name__}"
        )
    shown = public_spec(spec)
    scheme, sep, rest = spec.strip().partition(":")
    if scheme in ("http", "https"):
        raise ConfigError(
            f"{option} {shown!r} is a URL; write openai:MODEL@{shown} (accepted: {BACKEND_SPECS})"
        )
    if not sep or not rest.strip():
        raise ConfigError(f"{option} {shown!r} has no '<kind>:<target>' form; accepted: {BACKEND_SPECS}")
    if scheme == "openai":
        return _openai_backend(rest, shown, option, **kw)
    if scheme == "local":
        return LocalBackend(rest, **kw)
    if scheme == "seq2seq":
        return Seq2SeqBackend(rest, **kw)
    raise ConfigError(f"{option}: unknown backend kind {scheme!r} in {shown!r}; accepted: {BACKEND_SPECS}")


def _openai_backend(rest: str, shown: str, option: str, **kw: Any) -> OpenAIBackend:
    """``MODEL@URL`` or ``MODEL`` (then ``OPENAI_BASE_URL``, else OpenAI's own API)."""
    match = _MODEL_AT_URL.fullmatch(rest)
    if match:
        model, url = match["model"].strip(), match["url"]
        if not model:
            raise ConfigError(
                f"{option} {shown!r}: the model name before '@' is empty; write openai:MODEL@URL"
            )
        return OpenAIBackend(url, model, option=f"{option} {shown!r}", **kw)
    model = rest.strip()
    if "@" in model:  # "m@notaurl", "m@127.0.0.1:8000/v1": not a model name, and not a URL either
        after = redact(model.partition("@")[2])
        raise ConfigError(
            f"{option} {shown!r}: after '@' expected a base URL starting with http:// or https://, such "
            f"as http://127.0.0.1:8000/v1, got {after!r}"
        )
    env = os.environ.get("OPENAI_BASE_URL")
    if env:
        return OpenAIBackend(env, model, option="OPENAI_BASE_URL", **kw)
    return OpenAIBackend(DEFAULT_OPENAI_BASE_URL, model, option=option, **kw)
