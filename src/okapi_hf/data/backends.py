"""The backends behind :class:`okapi_hf.data.llm.LLMClient`: what turns one request into one answer.

:class:`OpenAIBackend` speaks HTTP to any OpenAI-compatible endpoint; :class:`LocalBackend` runs a
causal LM and :class:`Seq2SeqBackend` an NLLB/M2M100 translation model in this process;
:class:`FunctionBackend` answers with a Python function (tests). :func:`make_backend` builds one
from the command line's ``--backend`` string. Retries, the cache and accounting live in the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import hashlib
import inspect
import json
import logging
import os
import re
import threading
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, unquote, urlsplit, urlunsplit

from okapi_hf.data.llm import (
    DEFAULT_OPENAI_BASE_URL,
    RETRYABLE_STATUSES,
    Backend,
    ChatRequest,
    ChatResult,
    LLMError,
)
from okapi_hf.data.llm_types import is_secret_param, redact, redact_url
from okapi_hf.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------------
# Backends
# --------------------------------------------------------------------------------------------------


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


def public_spec(spec: str) -> str:
    """A backend spec as it may be shown or stored: credentials in its URL masked."""
    return redact(spec)


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


def _seed_for(request: ChatRequest) -> int:
    """A torch seed from (seed, sample): K samples of one prompt differ, and each is reproducible."""
    digest = hashlib.sha256(json.dumps([request.seed, request.sample]).encode()).hexdigest()
    return int(digest[:8], 16)


def _model_id(kind: str, model_path: str | Path) -> str:
    path = Path(model_path)
    return f"{kind}:{path.resolve() if path.exists() else model_path}"


# Seconds a generation told to stop (Ctrl-C) gets to end at its next token before the client moves on.
STOP_GRACE = 1.0


class _InProcessBackend:
    """Shared by local backends: lazy loading, one generation at a time, off the event loop.

    Each call runs on its own daemon thread with a stop event that a StoppingCriteria checks at every
    token: when the awaiting task is cancelled (Ctrl-C), generation ends at its next token instead of
    running to ``max_tokens``, and ``asyncio.run`` has no executor thread to wait for.
    """

    timeout_applies = False  # bounded by max_tokens; a retry after a timeout would redo the same work
    kind = "local"

    def __init__(self, model_path: str | Path, device: str = "cpu") -> None:
        self.model_path = str(model_path)
        self.device = device
        self.id = _model_id(self.kind, model_path)
        self._lock = threading.Lock()
        self._loaded: tuple[Any, Any] | None = None
        self._stopping: set[threading.Thread] = set()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.model_path!r}, device={self.device!r})"

    def load(self) -> tuple[Any, Any]:
        """(model, tokenizer), loaded on first use."""
        with self._lock:
            return self._load_locked()

    def _load_locked(self) -> tuple[Any, Any]:
        if self._loaded is None:
            from okapi_hf.models import (  # presets, .gguf files, adapters too
                ModelSourceError,
                load_model,
                load_tokenizer,
            )

            try:
                tokenizer = load_tokenizer(self.model_path)
                model = load_model(self.model_path, self._model_class())
            except (OSError, ModelSourceError) as e:
                raise ConfigError(f"cannot load a model from {self.model_path!r}: {e}") from e
            model.to(self.device).eval()
            self._loaded = (model, tokenizer)
        return self._loaded

    def _model_class(self) -> Any:
        raise NotImplementedError

    async def complete(self, request: ChatRequest) -> ChatResult:
        stop = threading.Event()
        answer, thread = _on_daemon_thread(self._complete_locked, request, stop)
        try:
            return await answer
        except asyncio.CancelledError:
            stop.set()  # the thread ends at its next token; nobody reads what it made
            self._stopping.add(thread)
            raise

    def _complete_locked(self, request: ChatRequest, stop: threading.Event) -> ChatResult | None:
        with self._lock:
            if stop.is_set():  # cancelled while waiting for the lock or the model
                return None
            model, tokenizer = self._load_locked()
            if stop.is_set():
                return None
            return self._generate(model, tokenizer, request, stop)

    async def aclose(self) -> None:
        """Wait up to STOP_GRACE seconds for the threads told to stop (a generation ends at its next
        token): one still inside torch while the interpreter exits can crash it. A thread loading a
        model cannot be stopped and is left behind after that; the data steps load before they start."""
        deadline = time.monotonic() + STOP_GRACE
        while True:
            self._stopping = {thread for thread in self._stopping if thread.is_alive()}
            if not self._stopping or time.monotonic() >= deadline:
                return
            await asyncio.sleep(0.01)

    def _generate(
        self, model: Any, tokenizer: Any, request: ChatRequest, stop: threading.Event | None = None
    ) -> ChatResult:
        raise NotImplementedError

    @staticmethod
    def _sampling(request: ChatRequest) -> dict[str, Any]:
        if request.temperature == 0:
            return {"do_sample": False}
        sampling: dict[str, Any] = {"do_sample": True, "temperature": request.temperature}
        if request.top_p is not None:
            sampling["top_p"] = request.top_p
        return sampling

    @staticmethod
    def _run_generate(
        model: Any, inputs: dict[str, Any], request: ChatRequest, stop: threading.Event | None, **kw: Any
    ) -> Any:
        import torch

        if stop is not None:
            kw["stopping_criteria"] = _stop_when_set(stop)
        with torch.inference_mode(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(_seed_for(request))
            return model.generate(
                **inputs, max_new_tokens=request.max_tokens, **_InProcessBackend._sampling(request), **kw
            )


def _on_daemon_thread(fn: Callable[..., Any], *args: Any) -> tuple[asyncio.Future[Any], threading.Thread]:
    """Run ``fn(*args)`` on a new daemon thread; its result arrives in the returned future.

    Not ``asyncio.to_thread``: ``asyncio.run`` joins the default executor's threads before it returns,
    so Ctrl-C would wait for a model still loading. A result that arrives after the future was
    cancelled, or after its loop closed, is dropped.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def deliver(setter: Callable[[Any], None], value: Any) -> None:
        if not future.done():
            setter(value)

    def run() -> None:
        try:
            outcome: tuple[Callable[[Any], None], Any] = (future.set_result, fn(*args))
        except BaseException as e:  # handed to the awaiting task, as asyncio.to_thread does
            outcome = (future.set_exception, e)
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits for this answer
            loop.call_soon_threadsafe(deliver, *outcome)

    thread = threading.Thread(target=run, name=f"okapi-generate-{id(future):x}", daemon=True)
    thread.start()
    return future, thread


def _stop_when_set(stop: threading.Event) -> Any:
    """A StoppingCriteriaList that ends generation at the next token once ``stop`` is set."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class StopWhenSet(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            return torch.full((input_ids.shape[0],), stop.is_set(), dtype=torch.bool, device=input_ids.device)

    return StoppingCriteriaList([StopWhenSet()])


def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
    eos = getattr(model.generation_config, "eos_token_id", None)
    ids = set(eos if isinstance(eos, (list, tuple)) else [eos] if eos is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return ids


def _trim(new_ids: list[int], stop_ids: set[int]) -> tuple[list[int], str]:
    """Generated ids up to and including the first stop id, and the finish reason."""
    for i, token in enumerate(new_ids):
        if token in stop_ids:
            return new_ids[: i + 1], "stop"
    return new_ids, "length"


class LocalBackend(_InProcessBackend):
    """A causal LM in this process: the tokenizer's chat template, or Okapi's prompt if it has none.

    Okapi's template holds one instruction, so without a chat template only the last user message is
    used. Greedy at temperature 0, else sampling (with ``top_p`` when the request sets it) seeded from
    the request's ``seed`` and ``sample``.
    """

    kind = "local"

    def _model_class(self) -> Any:
        from transformers import AutoModelForCausalLM

        return AutoModelForCausalLM

    def prompt(self, request: ChatRequest) -> str:
        """The text the model continues."""
        _, tokenizer = self.load()
        return self._prompt(tokenizer, request)

    @staticmethod
    def _prompt(tokenizer: Any, request: ChatRequest) -> str:
        if getattr(tokenizer, "chat_template", None):
            return tokenizer.apply_chat_template(
                [dict(m) for m in request.messages], tokenize=False, add_generation_prompt=True
            )
        from okapi_hf.prompts import format_prompt

        return format_prompt(request.last_user_message())

    def _generate(
        self, model: Any, tokenizer: Any, request: ChatRequest, stop: threading.Event | None = None
    ) -> ChatResult:
        templated = bool(getattr(tokenizer, "chat_template", None))
        text = self._prompt(tokenizer, request)
        from okapi_hf.prompts import encode_batch  # the one tokenization rule of every stage

        inputs = encode_batch(tokenizer, [text], templated=templated, return_tensors="pt").to(model.device)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        output = self._run_generate(model, dict(inputs), request, stop, pad_token_id=pad)
        prompt_len = inputs["input_ids"].shape[1]
        new_ids, finish = _trim(output[0, prompt_len:].tolist(), _eos_ids(model, tokenizer))
        reply = tokenizer.decode(new_ids, skip_special_tokens=True)
        return ChatResult(reply, prompt_len, len(new_ids), finish_reason=finish)


# NLLB-200's codes (ISO 639-3 plus script) for the registry's languages. Arabic is Modern Standard
# Arabic (arb), Chinese simplified script, Nepali npi: the variants Okapi's data is written in.
NLLB_CODES: dict[str, str] = {
    "ru": "rus_Cyrl", "de": "deu_Latn", "zh": "zho_Hans", "fr": "fra_Latn", "es": "spa_Latn",
    "it": "ita_Latn", "nl": "nld_Latn", "vi": "vie_Latn", "id": "ind_Latn", "ar": "arb_Arab",
    "hu": "hun_Latn", "ro": "ron_Latn", "da": "dan_Latn", "sk": "slk_Latn", "uk": "ukr_Cyrl",
    "ca": "cat_Latn", "sr": "srp_Cyrl", "hr": "hrv_Latn", "hi": "hin_Deva", "bn": "ben_Beng",
    "ta": "tam_Taml", "ne": "npi_Deva", "ml": "mal_Mlym", "mr": "mar_Deva", "te": "tel_Telu",
    "kn": "kan_Knda", "en": "eng_Latn", "eu": "eus_Latn", "gu": "guj_Gujr", "hy": "hye_Armn",
    "pt": "por_Latn", "sv": "swe_Latn", "ja": "jpn_Jpan", "fa": "pes_Arab",
}  # fmt: skip


def nllb_code(lang: str) -> str:
    """``vi`` -> ``vie_Latn`` (registry codes and aliases accepted)."""
    from okapi_hf.languages import get_language

    code = get_language(lang).code
    if code not in NLLB_CODES:
        raise ConfigError(f"no NLLB code known for language {code!r}; pass lang_code= to Seq2SeqBackend")
    return NLLB_CODES[code]


def m2m100_code(lang: str) -> str:
    """``vi`` -> ``__vi__``, M2M100's token for a language."""
    from okapi_hf.languages import get_language

    return f"__{get_language(lang).code}__"


LANG_CODE_STYLES: dict[str, Callable[[str], str]] = {"nllb": nllb_code, "m2m100": m2m100_code}


class Seq2SeqBackend(_InProcessBackend):
    """Machine translation with an NLLB or M2M100 model (``AutoModelForSeq2SeqLM``) in this process.

    Translates ``meta["text"]`` (or the last user message) from ``meta["src_lang"]`` to
    ``meta["tgt_lang"]``, both registry codes. ``lang_code`` maps a registry code to the model's
    language token: a function, ``"nllb"`` (``vie_Latn``), ``"m2m100"`` (``__vi__``), or None to pick
    whichever of the two the tokenizer knows. The target token is forced as the first generated token
    (``forced_bos_token_id``), which is how these models are told the output language.
    """

    kind = "seq2seq"

    def __init__(
        self,
        model_path: str | Path,
        lang_code: Callable[[str], str] | str | None = None,
        device: str = "cpu",
    ) -> None:
        super().__init__(model_path, device)
        if isinstance(lang_code, str):
            if lang_code not in LANG_CODE_STYLES:
                raise ConfigError(
                    f"lang_code {lang_code!r} unknown; expected one of {', '.join(LANG_CODE_STYLES)} or a function"
                )
            lang_code = LANG_CODE_STYLES[lang_code]
        self.lang_code = lang_code
        self._vocab: set[str] | None = None

    def _model_class(self) -> Any:
        from transformers import AutoModelForSeq2SeqLM

        return AutoModelForSeq2SeqLM

    def model_code(self, lang: str) -> str:
        """The model's language token for registry code ``lang``; ConfigError if the model lacks it."""
        _, tokenizer = self.load()
        return self._model_code(tokenizer, lang)

    def _model_code(self, tokenizer: Any, lang: str) -> str:
        if self._vocab is None:
            self._vocab = set(tokenizer.get_vocab())
        styles = [self.lang_code] if self.lang_code is not None else list(LANG_CODE_STYLES.values())
        tried = []
        for style in styles:
            code = style(lang)
            if code in self._vocab:
                return code
            tried.append(code)
        raise ConfigError(
            f"model {self.model_path!r} has no language token for {lang!r} (tried {', '.join(tried)}); "
            "pass Seq2SeqBackend(lang_code=...) mapping registry codes to this model's tokens"
        )

    def _generate(
        self, model: Any, tokenizer: Any, request: ChatRequest, stop: threading.Event | None = None
    ) -> ChatResult:
        import torch

        meta = request.meta_dict
        for name in ("src_lang", "tgt_lang"):
            if not meta.get(name):
                raise DataError(
                    f"Seq2SeqBackend needs meta[{name!r}] (a registry language code) in each request"
                )
        text = meta.get("text", None)
        if text is None:
            text = request.last_user_message()
        src, tgt = (
            self._model_code(tokenizer, meta["src_lang"]),
            self._model_code(tokenizer, meta["tgt_lang"]),
        )
        if hasattr(tokenizer, "src_lang"):  # NLLB/M2M100 tokenizers add the source token themselves
            tokenizer.src_lang = src
            inputs = dict(tokenizer(text, return_tensors="pt"))
        else:  # any other tokenizer: NLLB's layout, [src] tokens </s>
            ids = [
                tokenizer.convert_tokens_to_ids(src),
                *tokenizer(text, add_special_tokens=False)["input_ids"],
            ]
            ids.append(tokenizer.eos_token_id)
            inputs = {
                "input_ids": torch.tensor([ids]),
                "attention_mask": torch.ones(1, len(ids), dtype=torch.long),
            }
        inputs = {k: v.to(model.device) for k, v in inputs.items()}
        forced = tokenizer.convert_tokens_to_ids(tgt)
        output = self._run_generate(model, inputs, request, stop, forced_bos_token_id=forced)
        # output[0] = decoder start, then the forced language token, then the translation
        new_ids, finish = _trim(output[0, 1:].tolist(), _eos_ids(model, tokenizer))
        reply = tokenizer.decode(new_ids, skip_special_tokens=True)
        return ChatResult(reply, inputs["input_ids"].shape[1], len(new_ids), finish_reason=finish)


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
