"""The OpenAI-compatible HTTP backend: one POST to ``{base_url}/chat/completions`` per request.

What the endpoint answered becomes a :class:`ChatResult` or an :class:`LLMError` that says whether
asking again may help; credentials in the base URL are used for requests and masked everywhere else.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import os
import time
import weakref
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, unquote, urlsplit, urlunsplit

from okapi_hf.create.llm_types import (
    RETRYABLE_STATUSES,
    ChatRequest,
    ChatResult,
    LLMError,
    is_secret_param,
    redact,
    redact_url,
)
from okapi_hf.errors import ConfigError


class OpenAIBackend:
    """POST ``{base_url}/chat/completions``: OpenAI, vLLM, TGI, ``transformers serve`` and the like.

    ``api_key`` defaults to ``OPENAI_API_KEY`` and may be absent (local servers). ``id`` (the cache
    identity) defaults to ``openai:MODEL@BASE_URL``; pass a stable one when the same model is served
    at changing addresses (a local server on a random port). ``token_field`` is the name of the
    length limit in the body (``max_completion_tokens`` for OpenAI's reasoning models).

    Credentials in the URL (``https://user:key@host/v1``, sent as HTTP basic auth, or a secret query
    parameter such as ``?api_key=``, sent as given) are used for the requests only: ``base_url``,
    ``endpoint``, ``id`` and every message show the URL with them masked (``https://***@host/v1``),
    so they reach no cache, row, log or error.
    """

    timeout_applies = True

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        *,
        id: str | None = None,
        token_field: str = "max_tokens",
        option: str = "base_url",
    ) -> None:
        url = parse_base_url(base_url, option)
        if not isinstance(model, str) or not model.strip():
            raise ConfigError(f"{option}: the model name is empty; write openai:MODEL@{url.public}")
        self.base_url = url.public
        self.model = model
        self.endpoint = url.endpoint(public=True)
        self._request_url = url.endpoint(public=False)
        self._auth = url.auth
        self.id = id or f"openai:{model}@{self.base_url}"
        self.token_field = token_field
        self._api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY") or None
        self._secrets = (self._api_key, *url.secrets)
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = weakref.WeakKeyDictionary()
        self._ssl_context: Any = None  # built once: loading the CA bundle costs tens of ms per client
        _hide_secrets_in_http_logs()

    def __repr__(self) -> str:  # never the key
        return (
            f"OpenAIBackend({self.base_url!r}, {self.model!r}, api_key={'set' if self._api_key else 'unset'})"
        )

    def body(self, request: ChatRequest) -> dict[str, Any]:
        """The JSON body for ``request`` (``sample`` and ``meta`` stay local: they are cache identity)."""
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [dict(m) for m in request.messages],
            "temperature": request.temperature,
            self.token_field: request.max_tokens,
        }
        if request.top_p is not None:  # unset: the server's own default, as before top_p existed
            body["top_p"] = request.top_p
        if request.seed is not None:
            body["seed"] = request.seed
        return body

    def _client(self) -> Any:
        import httpx

        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            headers = {"Content-Type": "application/json", "Accept": "application/json"}
            if self._api_key:
                headers["Authorization"] = f"Bearer {self._api_key}"
            if self._ssl_context is None:
                self._ssl_context = httpx.create_ssl_context()
            client = httpx.AsyncClient(
                headers=headers,
                auth=self._auth,  # user:key from the URL, as basic auth (it replaces a Bearer header)
                verify=self._ssl_context,
                timeout=httpx.Timeout(None),  # LLMClient bounds each attempt itself
                limits=httpx.Limits(max_connections=None, max_keepalive_connections=64),
            )
            self._clients[loop] = client
        return client

    async def complete(self, request: ChatRequest) -> ChatResult:
        import httpx

        try:
            response = await self._client().post(self._request_url, json=self.body(request))
        except httpx.TransportError as e:  # refused, reset, dropped mid-answer
            raise LLMError(
                self._redact(f"{self.endpoint}: connection failed ({type(e).__name__}: {e})"),
                endpoint=self.endpoint,
                retryable=True,
            ) from None
        status = response.status_code
        if status != 200:
            retryable = status in RETRYABLE_STATUSES or status >= 500
            raise LLMError(
                self._redact(f"{self.endpoint} answered HTTP {status}: {_error_text(response.content)}"),
                endpoint=self.endpoint,
                status=status,
                retryable=retryable,
                retry_after=_retry_after(response.headers.get("retry-after")) if retryable else None,
            )
        try:
            return parse_chat_response(response.content)
        except ValueError as e:  # a proxy's HTML page, a truncated body: worth asking again
            raise LLMError(
                self._redact(f"{self.endpoint} answered HTTP 200 with a malformed body: {e}"),
                endpoint=self.endpoint,
                status=status,
                retryable=True,
            ) from None

    def _redact(self, text: str) -> str:
        return redact(text, self._secrets)

    async def aclose(self) -> None:
        """Close the HTTP connections opened on the running event loop."""
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()


@dataclass(frozen=True)
class BaseURL:
    """A checked base URL: what requests go to, what may be shown, and the credentials it carried."""

    scheme: str
    host: str  # host[:port], without user info
    path: str
    query: str
    auth: tuple[str, str] | None
    secrets: tuple[str, ...]
    public: str  # the URL with credentials masked, no trailing slash

    def endpoint(self, *, public: bool) -> str:
        """``.../chat/completions``, keeping the query (``?api-version=``, a key some proxies want)."""
        if public:
            parts = urlsplit(self.public)
            return urlunsplit((parts.scheme, parts.netloc, f"{parts.path}/chat/completions", parts.query, ""))
        return urlunsplit((self.scheme, self.host, f"{self.path}/chat/completions", self.query, ""))


def parse_base_url(url: Any, option: str = "base_url") -> BaseURL:
    """Check an endpoint's base URL before any request; ConfigError names ``option`` and what is wrong.

    Messages never show the credentials the URL may carry.
    """
    example = "http://127.0.0.1:8000/v1"
    if not isinstance(url, str) or not url.strip():
        raise ConfigError(f"{option}: expected an http(s) base URL such as {example}, got {url!r}")
    shown = redact_url(url)
    if any(c.isspace() for c in url):
        raise ConfigError(f"{option}: the base URL {shown!r} contains a space; expected one like {example}")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        if "port" in str(e).lower():
            raise ConfigError(
                f"{option}: the port in {shown!r} must be a whole number from 1 to 65535"
            ) from None
        raise ConfigError(
            f"{option}: {shown!r} is not a valid URL ({e}); expected one like {example}"
        ) from None
    if parts.scheme.lower() not in ("http", "https"):
        what = f"the scheme {parts.scheme!r}" if parts.scheme else "no scheme"
        raise ConfigError(
            f"{option}: {shown!r} has {what}; expected an http(s) URL such as {example} (it must start "
            "with http:// or https://)"
        )
    if not parts.hostname:
        raise ConfigError(f"{option}: {shown!r} names no host; expected a URL such as {example}")
    if port is not None and port < 1:
        raise ConfigError(f"{option}: the port in {shown!r} must be a whole number from 1 to 65535")
    host = parts.netloc.rpartition("@")[2]
    auth, secrets = None, []
    if parts.username is not None or parts.password is not None:
        user, password = unquote(parts.username or ""), unquote(parts.password or "")
        auth = (user, password)
        secrets += [user, password, parts.username or "", parts.password or ""] if password else [user]
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if is_secret_param(name) and value:
            secrets += [value, quote(value, safe=""), quote_plus(value)]
    public = redact_url(url).rstrip("/")
    path = parts.path.rstrip("/")
    return BaseURL(parts.scheme.lower(), host, path, parts.query, auth, tuple(secrets), public)


class _SecretFilter(logging.Filter):
    """Masks credentials in the HTTP client's own log lines (httpx logs each request's URL at INFO)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            args = record.args if isinstance(record.args, tuple) else (record.args,)
            record.args = tuple(redact(str(a)) if not isinstance(a, (int, float)) else a for a in args)
        record.msg = redact(str(record.msg))
        return True


_SECRET_FILTER = _SecretFilter()


def _hide_secrets_in_http_logs() -> None:
    for name in ("httpx", "httpcore"):
        http_logger = logging.getLogger(name)
        if _SECRET_FILTER not in http_logger.filters:
            http_logger.addFilter(_SECRET_FILTER)


def parse_chat_response(content: bytes | str) -> ChatResult:
    """A ChatResult from an OpenAI chat-completions body; ValueError says what is missing."""
    try:
        data = json.loads(content)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(
            f"not JSON ({e.__class__.__name__}: {e}); body starts {_snippet(content)!r}"
        ) from None
    try:
        choice = data["choices"][0]
        text = choice["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise ValueError(f"no choices[0].message.content; body starts {_snippet(content)!r}") from None
    if text is None:  # a refusal or tool call: nothing to use, said by finish_reason
        text = ""
    if not isinstance(text, str):
        raise ValueError(f"choices[0].message.content is {type(text).__name__}, not a string")
    usage = data.get("usage") or {}
    try:
        prompt_tokens = int(usage.get("prompt_tokens") or 0)
        completion_tokens = int(usage.get("completion_tokens") or 0)
    except (TypeError, ValueError, AttributeError):
        raise ValueError(f"usage is not token counts: {usage!r}") from None
    return ChatResult(text, prompt_tokens, completion_tokens, finish_reason=choice.get("finish_reason"))


def _snippet(content: bytes | str, n: int = 120) -> str:
    text = content.decode("utf-8", "replace") if isinstance(content, bytes) else content
    return text[:n]


def _error_text(content: bytes) -> str:
    """The server's own words: OpenAI-style ``{"error": {"message": ...}}`` or the body's start."""
    try:
        data = json.loads(content)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return _snippet(content, 300).strip() or "(empty body)"
    if isinstance(data, dict):
        error = data.get("error", data.get("detail", data.get("message")))
        if isinstance(error, dict):
            error = error.get("message", error)
        if error is not None:
            return str(error)[:300]
    return _snippet(content, 300)


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header: a number or an HTTP date."""
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)
