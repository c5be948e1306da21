"""What travels through the LLM client: requests, answers, errors, prices and usage counters.

Kept apart from :mod:`okapi_hf.create.llm` (the client and its cache) so that backends, steps and tests
can name a request without the machinery that sends it.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from dataclasses import fields as dataclass_fields
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from okapi_hf.errors import ConfigError, DataError, OkapiError

ROLES: tuple[str, ...] = ("system", "user", "assistant")
# Statuses worth asking again: timeout, conflict, rate limit and every server-side error.
RETRYABLE_STATUSES: frozenset[int] = frozenset({408, 409, 429})
# Statuses that every request of a run would get too (a bad key, an unknown model or route): the run
# stops at the first one instead of paying for thousands of requests that cannot succeed.
FATAL_STATUSES: frozenset[int] = frozenset({401, 403, 404, 405})
RETRY_ADVICE = "run the command again to retry"


@dataclass(frozen=True)
class ChatRequest:
    """Everything that decides an answer; two equal requests to one backend share one cache entry.

    ``sample`` exists so that K samplings of one prompt (Okapi ranks 4 responses per instruction) are
    K distinct requests, and so K cache entries; a backend that samples locally also derives its seed
    from it. ``meta`` carries backend-specific fields (``src_lang``/``tgt_lang``/``text`` for MT).
    ``top_p`` (nucleus sampling) is left to the backend's own default when None.
    """

    messages: tuple[dict[str, str], ...]
    temperature: float = 0.0
    max_tokens: int = 1024
    seed: int | None = None
    sample: int = 0
    meta: tuple[tuple[str, str], ...] = ()
    top_p: float | None = None  # last, so positional construction keeps its meaning

    def __post_init__(self) -> None:
        if isinstance(self.messages, (str, bytes)) or not isinstance(self.messages, Sequence):
            raise DataError(
                f"ChatRequest.messages must be a sequence of messages, got {type(self.messages).__name__}"
            )
        if not self.messages:
            raise DataError("ChatRequest.messages is empty; a chat request needs at least one message")
        messages = []
        for i, message in enumerate(self.messages):
            if not isinstance(message, Mapping):
                raise DataError(f"ChatRequest.messages[{i}] must be a mapping, got {type(message).__name__}")
            role, content = message.get("role"), message.get("content")
            if role not in ROLES:
                raise DataError(
                    f"ChatRequest.messages[{i}].role is {role!r}; expected one of {', '.join(ROLES)}"
                )
            if not isinstance(content, str):
                raise DataError(
                    f"ChatRequest.messages[{i}].content must be a string, got {type(content).__name__}"
                )
            if not all(isinstance(k, str) and isinstance(v, str) for k, v in message.items()):
                raise DataError(f"ChatRequest.messages[{i}] must map strings to strings")
            messages.append(dict(message))  # a private copy: later edits by the caller change nothing
        object.__setattr__(self, "messages", tuple(messages))

        if isinstance(self.temperature, bool) or not isinstance(self.temperature, (int, float)):
            raise DataError(f"ChatRequest.temperature must be a number, got {self.temperature!r}")
        if self.temperature < 0:
            raise DataError(f"ChatRequest.temperature must be >= 0, got {self.temperature}")
        # 0 and 0.0 are one request: without this they would be two cache keys.
        object.__setattr__(self, "temperature", float(self.temperature))
        if isinstance(self.max_tokens, bool) or not isinstance(self.max_tokens, int) or self.max_tokens < 1:
            raise DataError(f"ChatRequest.max_tokens must be a positive integer, got {self.max_tokens!r}")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int)):
            raise DataError(f"ChatRequest.seed must be an integer or None, got {self.seed!r}")
        if isinstance(self.sample, bool) or not isinstance(self.sample, int) or self.sample < 0:
            raise DataError(f"ChatRequest.sample must be a non-negative integer, got {self.sample!r}")
        if self.top_p is not None:
            if not _is_number(self.top_p) or not 0 < self.top_p <= 1:
                raise DataError(f"ChatRequest.top_p must be a number in (0, 1] or None, got {self.top_p!r}")
            object.__setattr__(self, "top_p", float(self.top_p))

        try:
            meta = dict(self.meta.items()) if isinstance(self.meta, Mapping) else dict(self.meta)
        except (TypeError, ValueError):
            raise DataError(
                f"ChatRequest.meta must be (key, value) pairs or a dict, got {self.meta!r}"
            ) from None
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
            raise DataError(f"ChatRequest.meta must map strings to strings, got {meta!r}")
        object.__setattr__(self, "meta", tuple(sorted(meta.items())))  # order never changes the key

    @classmethod
    def chat(cls, messages: Sequence[Mapping[str, str]], **kw: Any) -> ChatRequest:
        """Build from lists and dicts (``meta`` may be a dict): the convenient way to write one."""
        meta = kw.pop("meta", ())
        if isinstance(meta, Mapping):
            meta = tuple(meta.items())
        return cls(messages=tuple(messages), meta=tuple(meta), **kw)

    @classmethod
    def user(cls, content: str, *, system: str | None = None, **kw: Any) -> ChatRequest:
        """A one-turn request: an optional system message and one user message."""
        messages = [{"role": "system", "content": system}] if system is not None else []
        messages.append({"role": "user", "content": content})
        return cls.chat(messages, **kw)

    @property
    def meta_dict(self) -> dict[str, str]:
        return dict(self.meta)

    def last_user_message(self) -> str:
        """The content of the last user turn (what single-instruction backends answer)."""
        for message in reversed(self.messages):
            if message["role"] == "user":
                return message["content"]
        raise DataError("ChatRequest has no user message")

    def to_dict(self) -> dict[str, Any]:
        """Every field; ``top_p`` only when set, so caches written before it existed keep their keys."""
        fields = {
            "messages": [dict(m) for m in self.messages],
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "seed": self.seed,
            "sample": self.sample,
            "meta": [list(kv) for kv in self.meta],
        }
        if self.top_p is not None:
            fields["top_p"] = self.top_p
        return fields

    def key(self, backend_id: str) -> str:
        """sha256 of the canonical JSON of every field plus the backend's identity (never a secret)."""
        payload = {"backend": backend_id, **self.to_dict()}
        canonical = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def __hash__(self) -> int:  # messages are dicts, so the generated hash would fail
        return hash(self.key(""))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class Sampling:
    """A command's ``--temperature``, ``--top-p`` and ``--max-tokens``; None keeps the step's own choice.

    Each step picks per request (generate samples at 1.0, translate is greedy and samples its retry,
    rank gives its retry a short limit), so the override is applied where the step builds a request:
    ``ChatRequest.chat(messages, **sampling.fields(temperature=0.0, max_tokens=2048))``.
    """

    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None

    def __post_init__(self) -> None:
        if self.temperature is not None and (not _is_number(self.temperature) or self.temperature < 0):
            raise ConfigError(f"temperature must be a number >= 0, got {self.temperature!r}")
        if self.top_p is not None and (not _is_number(self.top_p) or not 0 < self.top_p <= 1):
            raise ConfigError(f"top_p must be a number in (0, 1], got {self.top_p!r}")
        if self.max_tokens is not None and (
            isinstance(self.max_tokens, bool) or not isinstance(self.max_tokens, int) or self.max_tokens < 1
        ):
            raise ConfigError(f"max_tokens must be a whole number >= 1, got {self.max_tokens!r}")

    def fields(self, *, temperature: float, max_tokens: int) -> dict[str, Any]:
        """ChatRequest fields: the values given, else the step's ``temperature`` and ``max_tokens``."""
        return {
            "temperature": temperature if self.temperature is None else self.temperature,
            "max_tokens": max_tokens if self.max_tokens is None else self.max_tokens,
            "top_p": self.top_p,
        }

    def given(self) -> dict[str, Any]:
        """Only the values given: a step's settings record these, so changing one retries rejections."""
        return {name: value for name, value in vars(self).items() if value is not None}


STEP_DEFAULTS = Sampling()  # nothing overridden: every step keeps its own choices


@dataclass
class ChatResult:
    """One answer; ``cached`` is True when it came from the cache and no request was sent."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached: bool = False
    finish_reason: str | None = None


class LLMError(OkapiError):
    """A request that failed: for good (after retries, or a non-retryable 4xx), or one retryable attempt.

    The message names the endpoint, the HTTP status (when there is one) and the server's error text;
    never the API key. ``retryable`` tells the client whether asking again may help now;
    :attr:`permanent` whether a later run could fare better at all (a 401 or a prompt too long will
    not), :attr:`fatal` whether every other request would fail the same way, and :attr:`advice` what to
    change (or to run again).
    """

    def __init__(
        self,
        message: str,
        *,
        endpoint: str | None = None,
        status: int | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
        attempts: int = 1,
    ) -> None:
        super().__init__(message)
        self.endpoint = endpoint
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after
        self.attempts = attempts

    @property
    def permanent(self) -> bool:
        """The endpoint refused the request as such (a 4xx other than timeouts and rate limits)."""
        return self.status is not None and 400 <= self.status < 500 and self.status not in RETRYABLE_STATUSES

    @property
    def fatal(self) -> bool:
        """Every request to this endpoint would fail the same way: a bad key, an unknown model or route."""
        return self.status in FATAL_STATUSES

    @property
    def advice(self) -> str:
        """What to do about it: run again when that may help, else what to change."""
        return advice_for(self.status) if self.permanent else RETRY_ADVICE


def advice_for(status: int | None) -> str:
    """What to change after an HTTP error that retrying cannot fix (never the key itself)."""
    if status == 401:
        return (
            "the endpoint refused the API key: set OPENAI_API_KEY (or the key in the endpoint's URL) "
            "to a key this endpoint accepts, then run again"
        )
    if status == 403:
        return (
            "the API key is not allowed to use this model or endpoint: use a key with access to it, "
            "or another model in --backend"
        )
    if status in (404, 405):
        return (
            "the endpoint knows no such model or route: check the model name (openai:MODEL@URL) and "
            "that the URL is the API root (usually ending in /v1)"
        )
    return (
        "the endpoint refused the request itself (often a prompt longer than the model's context, or an "
        "option it does not support): shorten the rows, lower --max-tokens or use another model; "
        "running it again unchanged fails the same way"
    )


class StorageFullError(OkapiError, OSError):
    """The disk filled up while a step wrote its output or its request cache; finished work is kept."""


class CacheError(ConfigError):
    """The request cache could not be read or written mid-run: the run stops (no row is to blame)."""


# --------------------------------------------------------------------------------------------------
# Credentials in URLs and backend specs
# --------------------------------------------------------------------------------------------------

MASK = "***"
# Query parameters that carry a credential (``?api_key=``, ``?key=``, Azure's ``?sig=``...).
_SECRET_PARAM = re.compile(
    r"(?:^|[-_.])(?:key|api[-_]?key|apikey|token|access[-_]?token|secret|password|passwd|pwd|sig|"
    r"signature|auth|authorization|credential|credentials|code)$",
    re.IGNORECASE,
)
_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*:/{1,2}[^\s'\"<>]+")  # one slash: what Path() makes of a URL
_USERINFO = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*:/{1,2})[^\s/?#]*@")
# Token shapes worth hiding wherever they appear (OpenAI, Hugging Face, Anthropic, AWS access keys).
_TOKEN = re.compile(r"\b(?:sk-[A-Za-z0-9_-]{16,}|hf_[A-Za-z0-9]{20,}|AKIA[0-9A-Z]{16})\b")


def is_secret_param(name: str) -> bool:
    """Whether a URL query parameter of this name carries a credential (``api_key``, ``token``, ``sig``)."""
    return bool(_SECRET_PARAM.search(name))


def redact_url(url: str) -> str:
    """``url`` without credentials: ``user:key@`` and secret query values become ``***``."""
    url = _USERINFO.sub(rf"\1{MASK}@", url)
    if "://" not in url:  # scheme:/path, from a URL that went through Path(): urlunsplit would add slashes
        head, sep, query = url.partition("?")
        pairs = [pair.partition("=") for pair in query.split("&")] if sep else []
        return head + sep + "&".join(n + eq + (MASK if is_secret_param(n) else v) for n, eq, v in pairs)
    try:
        parts = urlsplit(url)
    except ValueError:  # an unparsable URL: hide anything that looks like user info
        return re.sub(r"//[^/@\s]*@", f"//{MASK}@", url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rpartition('@')[2]}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(is_secret_param(name) for name, _ in pairs):
            query = urlencode([(n, MASK if is_secret_param(n) else v) for n, v in pairs], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with every URL's credentials, known token shapes and the given ``secrets`` masked."""
    if not isinstance(text, str):
        text = str(text)
    for secret in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    text = _URL.sub(lambda m: redact_url(m.group(0)), text)
    return _TOKEN.sub(MASK, text)


@dataclass(frozen=True)
class Price:
    """USD per million tokens, input and output (what providers publish)."""

    input_per_million: float
    output_per_million: float

    def __post_init__(self) -> None:
        if self.input_per_million < 0 or self.output_per_million < 0:
            raise ConfigError(f"prices must be >= 0, got {self.input_per_million}/{self.output_per_million}")

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.input_per_million + completion_tokens * self.output_per_million) / 1e6


@dataclass
class Usage:
    """Live counters of one client.

    ``requests`` are answers received from the backend (each one paid for); ``retries`` are attempts
    that failed and were tried again; ``failures`` are requests given up on; so the backend saw
    ``requests + retries + failures`` attempts. ``cache_hits`` sent nothing. Tokens and ``cost`` count
    received answers only (cache hits are free). ``seconds`` is the summed latency of received answers
    (it exceeds wall time under concurrency; ``seconds / requests`` is the mean latency).
    """

    requests: int = 0
    cache_hits: int = 0
    retries: int = 0
    failures: int = 0
    cost: float | None = None  # what the received answers cost; None without a price
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0

    @property
    def attempts(self) -> int:
        return self.requests + self.retries + self.failures

    @classmethod
    def total(cls, usages: Iterable[Usage]) -> Usage:
        """The counters of several clients added up (a step with several backends pays for each)."""
        usages = list(usages)
        out = cls(cost=None)
        for usage in usages:
            for f in dataclass_fields(cls):
                if f.name == "cost":
                    continue
                setattr(out, f.name, getattr(out, f.name) + getattr(usage, f.name))
            if usage.cost is not None:
                out.cost = (out.cost or 0.0) + usage.cost
        return out

    def postfix(self) -> dict[str, str]:
        """Short fields for ``tqdm.set_postfix``."""
        out = {"req": str(self.requests), "hits": str(self.cache_hits)}
        if self.retries:
            out["retry"] = str(self.retries)
        if self.failures:
            out["fail"] = str(self.failures)
        out["tok"] = _short_count(self.prompt_tokens + self.completion_tokens)
        if self.cost is not None:
            out["cost"] = f"${self.cost:.4f}"
        return out

    def summary(self) -> str:
        parts = [
            f"{self.requests:,} requests ({self.retries:,} retries, {self.failures:,} failed)",
            f"{self.cache_hits:,} cache hits",
            f"{self.prompt_tokens:,} prompt + {self.completion_tokens:,} completion tokens",
        ]
        if self.cost is not None:
            parts.append(f"${self.cost:.4f}")
        if self.requests:
            parts.append(f"mean latency {self.seconds / self.requests:.2f} s")
        return ", ".join(parts)


def _short_count(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1e6:.1f}M"
    if n >= 10_000:
        return f"{n / 1e3:.0f}k"
    return str(n)
