"""One client for every model that writes Okapi's data: an OpenAI-compatible endpoint or a local model.

Okapi's four data steps (generate instructions, translate, generate responses, rank) and TaCo's
chain-of-thought translation are tens of thousands of chat requests each. What makes that practical is
the same whatever answers the requests (OpenAI, vLLM, TGI, ``transformers serve``, a model in this
process):

- bounded concurrency, because a sequential client spends its time waiting on the network;
- retries with exponential backoff and jitter on rate limits (429, honouring ``Retry-After``), server
  errors (5xx), timeouts, dropped connections and malformed JSON, while a request the server rejects
  (other 4xx) fails at once with the server's own words;
- a persistent request cache (SQLite, WAL, one commit per answer), so a run killed halfway and started
  again sends no request that had already been answered, and re-running a step costs nothing;
- token and cost accounting, shown live on a progress bar.

A backend turns one :class:`ChatRequest` into one :class:`ChatResult`; :class:`LLMClient` adds
everything above around any backend. The backends (HTTP, local causal LM, local NLLB/M2M100,
a Python function) and ``make_backend`` are in :mod:`okapi_hf.create.backends`; the request, answer,
error and usage types in :mod:`okapi_hf.create.llm_types` (importable from here too).

The API key is read from ``OPENAI_API_KEY`` (or passed), sent only as the ``Authorization`` header,
and kept out of cache keys, the cache file, log records and error messages; so are credentials given
in a base URL (``https://user:key@host/v1``, ``?api_key=``), which are shown masked everywhere. A full
disk under the cache is one :class:`StorageFullError` naming the file; the answers committed before
stay readable.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import errno
import json
import logging
import random
import shutil
import sqlite3
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol, TypeVar

from okapi_hf.create.llm_types import RETRYABLE_STATUSES as RETRYABLE_STATUSES  # re-exported
from okapi_hf.create.llm_types import (
    CacheError,
    ChatRequest,
    ChatResult,
    LLMError,
    Price,
    StorageFullError,
    Usage,
)
from okapi_hf.errors import ConfigError, OkapiError

logger = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_OPENAI_BASE_URL = "https://api.openai.com/v1"
# SQLite's primary result code for "database or disk is full".
_SQLITE_FULL = 13


# --------------------------------------------------------------------------------------------------
# The persistent cache
# --------------------------------------------------------------------------------------------------


class RequestCache:
    """Answers by request key in one SQLite file, safe across threads and processes.

    WAL journal plus autocommit: every ``put`` is its own committed transaction before it returns, so
    an answer survives the process being killed (SIGKILL) the instant after; ``synchronous=NORMAL``
    means only a power cut can lose the last few. Readers never block the writer, and a second process
    on the same file waits (``busy_timeout``) instead of failing.
    """

    SCHEMA_VERSION = 1

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise ConfigError(
                f"--cache {self.path} is a folder; give the path of a file (an SQLite database)"
            )
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            raise ConfigError(
                f"--cache {self.path}: {self.path.parent} is a file, not a folder; give another cache path"
            ) from None
        except OSError as e:
            raise self._os_error(e, "create the folder of") from e
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        try:
            self._db = sqlite3.connect(self.path, timeout=60.0, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA busy_timeout = 60000")
            self._setup(deadline=time.monotonic() + 60.0)
        except sqlite3.DatabaseError as e:
            self._close_quietly()
            if self._disk_full(e):
                raise self._full() from e
            raise ConfigError(f"cannot use {self.path} as the LLM request cache (an SQLite file): {e}") from e

    def _disk_full(self, error: sqlite3.Error) -> bool:
        """SQLITE_FULL, or an I/O error or a file it could not open on a disk with no room left."""
        if (
            getattr(error, "sqlite_errorcode", None) is not None
            and error.sqlite_errorcode & 0xFF == _SQLITE_FULL
        ):
            return True
        if "disk is full" in str(error):
            return True
        try:
            return shutil.disk_usage(self.path.parent).free < 64 * 1024
        except OSError:
            return False

    def _full(self) -> StorageFullError:
        return StorageFullError(
            f"no space left on the disk of {self.path} (the LLM request cache, whose earlier answers are "
            "kept): free some space, or pass --cache a file on another disk"
        )

    def _os_error(self, error: OSError, doing: str) -> OkapiError:
        if error.errno == errno.ENOSPC:
            return self._full()
        return ConfigError(f"cannot {doing} the LLM request cache {self.path}: {error.strerror or error}")

    def _close_quietly(self) -> None:
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()

    def _setup(self, deadline: float) -> None:
        """Switch to WAL and create the table, waiting out other processes doing the same.

        Changing the journal mode answers "database is locked" at once, without the busy handler, while
        another connection opens the same new file; so that step retries for up to a minute.
        """
        while True:
            try:
                self._db.execute("PRAGMA journal_mode = WAL")
                break
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) or time.monotonic() > deadline:
                    raise
                time.sleep(0.02 + random.random() * 0.03)
        self._db.execute("PRAGMA synchronous = NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS responses ("
            " key TEXT PRIMARY KEY, backend TEXT NOT NULL, request TEXT NOT NULL, text TEXT NOT NULL,"
            " prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL, finish_reason TEXT,"
            " created REAL NOT NULL)"
        )
        if self._db.execute("PRAGMA user_version").fetchone()[0] == 0:
            self._db.execute(f"PRAGMA user_version = {self.SCHEMA_VERSION}")

    def get(self, key: str) -> ChatResult | None:
        try:
            with self._lock:
                row = self._db.execute(
                    "SELECT text, prompt_tokens, completion_tokens, finish_reason FROM responses WHERE key = ?",
                    (key,),
                ).fetchone()
        except sqlite3.Error as e:  # a file damaged or replaced under a running step
            raise CacheError(f"cannot read the LLM request cache {self.path}: {e}") from e
        if row is None:
            return None
        return ChatResult(row[0], row[1], row[2], cached=True, finish_reason=row[3])

    def put(self, key: str, backend_id: str, request: ChatRequest, result: ChatResult) -> None:
        """Store and commit at once (autocommit): durable when this returns."""
        record = (
            key,
            backend_id,
            json.dumps(request.to_dict(), ensure_ascii=False, sort_keys=True),
            result.text,
            result.prompt_tokens,
            result.completion_tokens,
            result.finish_reason,
            time.time(),
        )
        try:
            with self._lock:
                self._db.execute("INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?, ?, ?, ?)", record)
        except sqlite3.Error as e:
            if self._disk_full(e):
                raise self._full() from e
            raise CacheError(f"cannot write the LLM request cache {self.path}: {e}") from e

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1 FROM responses WHERE key = ?", (key,)).fetchone() is not None

    def close(self) -> None:
        """Close the file; an error here (a full disk at the last checkpoint) loses no committed answer."""
        with self._lock:
            self._close_quietly()


# --------------------------------------------------------------------------------------------------
# Running an event loop that Ctrl-C stops at once
# --------------------------------------------------------------------------------------------------


async def _within(seconds: float, awaitable: Awaitable[T]) -> T:
    """``awaitable``, or TimeoutError after ``seconds``.

    Not ``asyncio.wait_for`` on Python 3.11: a cancellation arriving as the answer does is swallowed
    there, and a data step cancelled by Ctrl-C would go on with its next request.
    """
    if hasattr(asyncio, "timeout"):  # Python 3.11+
        async with asyncio.timeout(seconds):
            return await awaitable
    return await asyncio.wait_for(awaitable, seconds)


class DaemonThreadExecutor(concurrent.futures.ThreadPoolExecutor):
    """An event loop's default executor whose calls each run on a daemon thread, waited for by nobody.

    ``asyncio.run`` ends by joining its default executor's threads, so a DNS lookup that hangs (the
    HTTP client resolves host names there) would hold Ctrl-C for as long as it hangs.
    """

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[T]:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                result = fn(*args, **kwargs)
            except BaseException as e:  # handed to whoever waits, as ThreadPoolExecutor does
                future.set_exception(e)
            else:
                future.set_result(result)

        threading.Thread(target=run, name="okapi-executor", daemon=True).start()
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Nothing to wait for: a thread still running ends with the process."""


def run_async(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)``, with :class:`DaemonThreadExecutor` as the loop's default executor.

    On Python 3.11+ Ctrl-C cancels ``main`` (requests in flight are dropped, ``finally`` blocks run)
    and then raises KeyboardInterrupt; with no thread to join, that takes as long as ``main``'s own
    clean-up. In-process backends stop their generation threads themselves (see ``backends``).
    """

    async def with_daemon_executor() -> T:
        asyncio.get_running_loop().set_default_executor(DaemonThreadExecutor(max_workers=1))
        return await main

    return asyncio.run(with_daemon_executor())


# --------------------------------------------------------------------------------------------------
# The client
# --------------------------------------------------------------------------------------------------


class Backend(Protocol):
    """What :class:`LLMClient` needs: a cache identity and one async call per request."""

    id: str

    async def complete(self, request: ChatRequest) -> ChatResult: ...


@dataclass
class _LoopState:
    """asyncio primitives belong to one event loop; ``complete_all`` runs a fresh loop per call."""

    semaphore: asyncio.Semaphore
    inflight: dict[str, asyncio.Future[ChatResult]] = field(default_factory=dict)


class LLMClient:
    """Bounded, retried, cached, accounted requests to any backend.

    ``cache=None`` keeps nothing between runs; a path keeps every answer in that SQLite file (created
    with its folders). ``timeout`` bounds one attempt on backends that talk to a server (local models
    are bounded by ``max_tokens`` instead). Identical requests in flight at the same time are sent once.
    """

    def __init__(
        self,
        backend: Backend,
        *,
        concurrency: int = 16,
        cache: str | Path | None = None,
        max_retries: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        timeout: float = 120.0,
        price: Price | None = None,
    ) -> None:
        if not isinstance(getattr(backend, "id", None), str) or not hasattr(backend, "complete"):
            raise ConfigError(f"{backend!r} is not an LLM backend (it needs an `id` string and `complete`)")
        if concurrency < 1:
            raise ConfigError(f"concurrency must be >= 1, got {concurrency}")
        if max_retries < 0:
            raise ConfigError(f"max_retries must be >= 0, got {max_retries}")
        if backoff < 0 or max_backoff < 0 or timeout <= 0:
            raise ConfigError(
                f"backoff/max_backoff must be >= 0 and timeout > 0, got {backoff}/{max_backoff}/{timeout}"
            )
        self.backend = backend
        self.concurrency = concurrency
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.timeout = timeout
        self.price = price
        self.cache = RequestCache(cache) if cache is not None else None
        self.usage = Usage(cost=0.0 if price is not None else None)
        self._usage_lock = threading.Lock()
        self._closed = False
        self._states: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = (
            weakref.WeakKeyDictionary()
        )

    def __repr__(self) -> str:
        cache = str(self.cache.path) if self.cache is not None else None
        return f"LLMClient({self.backend.id!r}, concurrency={self.concurrency}, cache={cache!r})"

    # -- one request --------------------------------------------------------------------------------

    async def complete(self, request: ChatRequest) -> ChatResult:
        """The answer to ``request``: from the cache if there, else from the backend (then cached)."""
        if not isinstance(request, ChatRequest):
            raise TypeError(f"LLMClient.complete takes a ChatRequest, got {type(request).__name__}")
        if self._closed:
            raise ConfigError(f"{self!r} is closed")
        key = request.key(self.backend.id)
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                self._count(cache_hits=1)
                return hit
        state = self._state()
        pending = state.inflight.get(key)
        if pending is not None:  # the same request is on its way: wait for that answer
            result = await asyncio.shield(pending)
            self._count(cache_hits=1)
            return replace(result, cached=True)

        future: asyncio.Future[ChatResult] = asyncio.get_running_loop().create_future()
        state.inflight[key] = future
        try:
            result = await self._send(request, key, state.semaphore)
        except BaseException as e:
            if isinstance(e, asyncio.CancelledError):
                future.cancel()
            else:
                future.set_exception(e)
                future.exception()  # retrieved: nobody may be waiting on it
            raise
        else:
            future.set_result(result)
            return result
        finally:
            del state.inflight[key]

    async def _send(self, request: ChatRequest, key: str, semaphore: asyncio.Semaphore) -> ChatResult:
        """Attempts with backoff, holding one concurrency slot throughout (backoff is back-pressure)."""
        timed = getattr(self.backend, "timeout_applies", True)
        async with semaphore:
            attempt = 0
            while True:
                start = time.perf_counter()
                try:
                    if timed:
                        result = await _within(self.timeout, self.backend.complete(request))
                    else:
                        result = await self.backend.complete(request)
                except (asyncio.TimeoutError, TimeoutError):
                    endpoint = getattr(self.backend, "endpoint", self.backend.id)
                    error = LLMError(
                        f"{endpoint}: no answer within {self.timeout:g} s (timeout)",
                        endpoint=endpoint,
                        retryable=True,
                    )
                except LLMError as e:
                    error = e
                else:
                    if not isinstance(result, ChatResult):
                        raise TypeError(
                            f"backend {self.backend.id!r} returned {type(result).__name__}, not ChatResult"
                        )
                    if self.cache is not None:
                        self.cache.put(key, self.backend.id, request, result)
                    self._count(
                        requests=1,
                        prompt_tokens=result.prompt_tokens,
                        completion_tokens=result.completion_tokens,
                        seconds=time.perf_counter() - start,
                    )
                    return result

                if not error.retryable or attempt >= self.max_retries:
                    self._count(failures=1)
                    if not error.retryable and not error.permanent:
                        raise error
                    # retries used up: say so; refused as such: say what to change, asking again cannot help
                    message = (
                        f"gave up after {attempt + 1} attempts: {error}"
                        if error.retryable
                        else f"{error}; {error.advice}"
                    )
                    raise LLMError(
                        message, endpoint=error.endpoint, status=error.status, attempts=attempt + 1
                    ) from error
                delay = self._delay(attempt, error.retry_after)
                self._count(retries=1)
                logger.info("%s; retry %d/%d in %.2f s", error, attempt + 1, self.max_retries, delay)
                await asyncio.sleep(delay)
                attempt += 1

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        """Retry-After when the server gave one (up to ``max_backoff``); else exponential with jitter."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_backoff)
        base = min(self.max_backoff, self.backoff * 2**attempt)
        return base * (0.5 + random.random() / 2)  # jitter: clients hit by one 429 do not retry in step

    def _count(self, **deltas: float) -> None:
        with self._usage_lock:
            for name, delta in deltas.items():
                setattr(self.usage, name, getattr(self.usage, name) + delta)
            if self.price is not None and ("prompt_tokens" in deltas or "completion_tokens" in deltas):
                self.usage.cost = (self.usage.cost or 0.0) + self.price.cost(
                    int(deltas.get("prompt_tokens", 0)), int(deltas.get("completion_tokens", 0))
                )

    def _state(self) -> _LoopState:
        loop = asyncio.get_running_loop()
        state = self._states.get(loop)
        if state is None:
            state = self._states[loop] = _LoopState(asyncio.Semaphore(self.concurrency))
        return state

    # -- many requests ------------------------------------------------------------------------------

    def complete_all(
        self,
        requests: Sequence[ChatRequest],
        desc: str = "requests",
        *,
        progress: bool = True,
        return_exceptions: bool = False,
    ) -> list[ChatResult]:
        """Answers in the order of ``requests``, with a progress bar (rate, hits, cost).

        Every request runs to its end even when some fail, so each answer received is cached; then
        the first failure is raised as an :class:`LLMError` counting them all, unless
        ``return_exceptions`` puts each failure's LLMError in its place in the list. Works from
        synchronous code and from inside a running event loop (it then runs on a worker thread).
        """
        requests = list(requests)

        def run() -> list[ChatResult]:
            return run_async(self._complete_all(requests, desc, progress, return_exceptions))

        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return run()
        with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="okapi-llm") as pool:
            return pool.submit(run).result()

    async def _complete_all(
        self, requests: list[ChatRequest], desc: str, progress: bool, return_exceptions: bool
    ) -> list[Any]:
        from tqdm import tqdm

        results: list[Any] = [None] * len(requests)
        bar = tqdm(total=len(requests), desc=desc, unit="req", disable=not progress, dynamic_ncols=True)

        async def one(i: int, request: ChatRequest) -> None:
            try:
                results[i] = await self.complete(request)
            except LLMError as e:
                results[i] = e
            bar.update(1)
            bar.set_postfix(self.usage.postfix(), refresh=False)

        try:
            await asyncio.gather(*(one(i, r) for i, r in enumerate(requests)))
        finally:
            bar.close()
            await self._release_loop()
        failed = [r for r in results if isinstance(r, LLMError)]
        if failed and not return_exceptions:
            raise LLMError(
                f"{len(failed)} of {len(requests)} requests failed (the {len(requests) - len(failed)} answered "
                f"are cached when a cache is set); first: {failed[0]}",
                endpoint=failed[0].endpoint,
                status=failed[0].status,
            ) from failed[0]
        return results

    async def _release_loop(self) -> None:
        """Close what the backend opened on this event loop (``asyncio.run`` is about to close it)."""
        self._states.pop(asyncio.get_running_loop(), None)
        release = getattr(self.backend, "aclose", None)
        if release is not None:
            await release()

    # -- closing ------------------------------------------------------------------------------------

    async def aclose(self) -> None:
        await self._release_loop()
        self.close()

    def close(self) -> None:
        """Close the cache file; the client takes no more requests."""
        if not self._closed and self.cache is not None:
            self.cache.close()
        self._closed = True

    def __enter__(self) -> LLMClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> LLMClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
