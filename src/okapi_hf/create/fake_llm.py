"""A fake OpenAI-compatible chat endpoint on localhost, for tests and benchmarks.

The client's promises (bounded concurrency, retries, the cache sending nothing twice) can only be
checked against a real HTTP server that counts what it receives and misbehaves on request. This one is
the standard library's threading HTTP server in a background thread: each connection gets a thread,
so a fixed ``latency`` overlaps across concurrent requests the way a real server's does.

Failure injection (``failures``) is either a list of kinds applied to the first calls in arrival order,
or a function ``(call_index, body) -> kind | None``. Kinds:

- ``"429"``: rate limited, with ``Retry-After: <retry_after>``;
- ``"500"``, ``"502"``, ``"503"``: server errors; ``"400"``, ``"403"``, ``"404"``: client errors; ``"401"``:
  a client error whose message echoes the credentials it got (to check that the client redacts them);
- ``"too_long"``: HTTP 400 saying the prompt exceeds the model's context, as OpenAI and vLLM do;
- ``"malformed"``: HTTP 200 with a body that is not JSON; ``"incomplete"``: JSON without ``choices``;
- ``"timeout"``: answer only after ``hang`` seconds (the client should time out first);
- ``"drop"``: close the connection without answering.
"""

from __future__ import annotations

import base64
import json
import sys
import threading
import time
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

FAILURE_KINDS: tuple[str, ...] = (
    "429", "500", "502", "503", "400", "401", "403", "404", "too_long", "malformed", "incomplete",
    "timeout", "drop",
)  # fmt: skip

Reply = Callable[[list[dict[str, Any]]], str]
Failures = Sequence[str | None] | Callable[[int, dict[str, Any]], str | None]


class _Server(ThreadingHTTPServer):
    # The default listen backlog (5) drops simultaneous connects beyond it, and a dropped SYN is
    # retried only after a second: 16 clients connecting at once would measure that, not the client.
    request_queue_size = 256
    daemon_threads = True
    block_on_close = False  # threads still "hanging" (timeout injection) must not block stop()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet when the client went away (it timed out, or was stopped with Ctrl-C); else a traceback."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def echo(messages: list[dict[str, Any]]) -> str:
    """The default reply: the last message's content, prefixed, so tests can tell requests apart."""
    return f"echo: {messages[-1]['content']}" if messages else "echo:"


class FakeLLMServer:
    """``with FakeLLMServer(latency=0.2) as server: ... server.url`` (``http://127.0.0.1:PORT/v1``).

    Records every POST body (``requests``), its path with the query (``paths``), its headers
    (``headers``), arrival times (``times``), the
    number of POSTs (``count``, failed ones included) and the most requests in flight at once
    (``max_in_flight``).
    """

    def __init__(
        self,
        reply: Reply = echo,
        *,
        latency: float = 0.0,
        failures: Failures = (),
        retry_after: float | None = 0.0,
        hang: float = 5.0,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if not callable(failures):
            unknown = [k for k in failures if k is not None and k not in FAILURE_KINDS]
            if unknown:
                raise ValueError(f"unknown failure kinds {unknown}; expected {', '.join(FAILURE_KINDS)}")
        self.reply = reply
        self.latency = latency
        self.failures = failures
        self.retry_after = retry_after
        self.hang = hang
        self.requests: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.headers: list[dict[str, str]] = []
        self.times: list[float] = []
        self.max_in_flight = 0
        self._in_flight = 0
        self._lock = threading.Lock()
        self._server = _Server((host, port), self._handler_class())
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.requests)

    def reset(self) -> None:
        """Forget what was received (the failure schedule keeps counting from zero again)."""
        with self._lock:
            self.requests.clear()
            self.paths.clear()
            self.headers.clear()
            self.times.clear()
            self.max_in_flight = 0

    def start(self) -> FakeLLMServer:
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="fake-llm", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeLLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- per request --------------------------------------------------------------------------------

    def _admit(self, body: dict[str, Any], headers: dict[str, str], path: str = "") -> str | None:
        """Record one POST and return its failure kind, if any."""
        with self._lock:
            index = len(self.requests)
            self.requests.append(body)
            self.paths.append(path)
            self.headers.append(headers)
            self.times.append(time.monotonic())
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        if callable(self.failures):
            return self.failures(index, body)
        return self.failures[index] if index < len(self.failures) else None

    def _leave(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def _completion(self, body: dict[str, Any]) -> dict[str, Any]:
        messages = body.get("messages") or []
        text = self.reply(messages)
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in messages)
        with self._lock:
            n = len(self.requests)
        return {
            "id": f"fake-{n}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "fake"),
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": len(text.split()),
                "total_tokens": prompt_tokens + len(text.split()),
            },
        }

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real endpoints do
            # Headers and body go out as two writes; with Nagle's algorithm the second waits for the
            # client's delayed ACK (about 40 ms on Linux), which would be measured as server latency.
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def _send(self, status: int, payload: bytes, headers: dict[str, str] | None = None) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for name, value in (headers or {}).items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
                    self.close_connection = True

            def _error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
                payload = {"error": {"message": message, "type": "fake_error", "code": status}}
                self._send(status, json.dumps(payload).encode(), headers)

            def do_GET(self) -> None:
                if self.path.rstrip("/").endswith("/models"):
                    self._send(
                        200,
                        json.dumps({"object": "list", "data": [{"id": "fake", "object": "model"}]}).encode(),
                    )
                else:
                    self._error(404, f"no route {self.path}")

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                # the query (``?api-version=``, a key some proxies take there) is not part of the route
                if not urlsplit(self.path).path.rstrip("/").endswith("/chat/completions"):
                    self._error(404, f"no route {self.path}")
                    return
                try:
                    body = json.loads(raw)
                except json.JSONDecodeError:
                    self._error(400, "request body is not JSON")
                    return
                kind = server._admit(body, {k.lower(): v for k, v in self.headers.items()}, self.path)
                try:
                    if server.latency:
                        time.sleep(server.latency)
                    self._answer(kind, body)
                finally:
                    server._leave()

            def _answer(self, kind: str | None, body: dict[str, Any]) -> None:
                if kind is None:
                    self._send(200, json.dumps(server._completion(body), ensure_ascii=False).encode())
                elif kind == "429":
                    headers = {} if server.retry_after is None else {"Retry-After": f"{server.retry_after:g}"}
                    self._error(429, "Rate limit reached for requests", headers)
                elif kind == "401":  # echoes the key, as some servers do: the client must redact it
                    key = self.headers.get("Authorization", "").removeprefix("Bearer ")
                    if key.startswith("Basic "):  # user:key from the URL
                        key = base64.b64decode(key.removeprefix("Basic ")).decode(errors="replace")
                    self._error(401, f"Incorrect API key provided: {key}")
                elif kind == "too_long":
                    self._error(
                        400,
                        "This model's maximum context length is 4096 tokens. However, your messages "
                        "resulted in 9120 tokens. Please reduce the length of the messages.",
                    )
                elif kind in ("400", "403", "404", "500", "502", "503"):
                    self._error(int(kind), f"injected failure {kind}")
                elif kind == "malformed":
                    self._send(200, b"<html>502 Bad Gateway</html>")
                elif kind == "incomplete":
                    self._send(200, b'{"id": "fake", "object": "chat.completion"}')
                elif kind == "timeout":
                    time.sleep(server.hang)
                    self._send(200, json.dumps(server._completion(body)).encode())
                elif kind == "drop":
                    self.close_connection = True  # no answer at all
                else:
                    self._error(500, f"unknown injected failure {kind!r}")

        return Handler
