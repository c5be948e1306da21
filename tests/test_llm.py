"""The LLM client: cache, retries, concurrency, accounting and secrets, against a real local HTTP server.

Everything runs offline: FakeLLMServer (a stdlib HTTP server in a thread) counts what it receives and
misbehaves on request; the local backends run tiny random models built in the test.
"""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from okapi_hf.create.backends import (
    NLLB_CODES,
    FunctionBackend,
    LocalBackend,
    OpenAIBackend,
    Seq2SeqBackend,
    m2m100_code,
    make_backend,
    nllb_code,
)
from okapi_hf.create.fake_llm import FakeLLMServer
from okapi_hf.create.llm import ChatRequest, ChatResult, LLMClient, LLMError, Price, RequestCache, Usage
from okapi_hf.create.openai_backend import _retry_after
from okapi_hf.errors import ConfigError, DataError, OkapiError, UnknownLanguageError

SECRET = "sk-test-ThisIsNotARealKey-0123456789"


def requests_for(n: int, prefix: str = "q") -> list[ChatRequest]:
    return [ChatRequest.user(f"{prefix} {i}") for i in range(n)]


def client_for(server: FakeLLMServer, **kw) -> LLMClient:
    kw.setdefault("backoff", 0.001)
    return LLMClient(OpenAIBackend(server.url, "fake-model", api_key=kw.pop("api_key", None)), **kw)


# -- requests and keys ---------------------------------------------------------------------------------


def test_request_key_covers_every_field_and_backend():
    base = ChatRequest.user("Translate: hello", system="You translate.", meta={"tgt_lang": "vi"})
    key = base.key("b")
    assert len(key) == 64 and key == base.key("b")
    variants = [
        ChatRequest.user("Translate: hello!", system="You translate.", meta={"tgt_lang": "vi"}),
        ChatRequest.user("Translate: hello", system="You translate", meta={"tgt_lang": "vi"}),
        ChatRequest.user("Translate: hello", system="You translate.", meta={"tgt_lang": "de"}),
        ChatRequest.user(
            "Translate: hello", system="You translate.", meta={"tgt_lang": "vi"}, temperature=0.7
        ),
        ChatRequest.user("Translate: hello", system="You translate.", meta={"tgt_lang": "vi"}, max_tokens=8),
        ChatRequest.user("Translate: hello", system="You translate.", meta={"tgt_lang": "vi"}, seed=1),
        ChatRequest.user("Translate: hello", system="You translate.", meta={"tgt_lang": "vi"}, sample=1),
    ]
    keys = {v.key("b") for v in variants} | {key, base.key("other-backend")}
    assert len(keys) == len(variants) + 2
    # not different: int vs float temperature, meta order, list vs tuple input
    same = ChatRequest.chat(
        [{"role": "system", "content": "You translate."}, {"role": "user", "content": "Translate: hello"}],
        meta=[("tgt_lang", "vi")],
        temperature=0,
    )
    assert same.key("b") == key and same == base and hash(same) == hash(base)
    two = ChatRequest.user("x", meta={"b": "2", "a": "1"})
    assert two.key("b") == ChatRequest.user("x", meta={"a": "1", "b": "2"}).key("b")
    assert two.meta == (("a", "1"), ("b", "2")) and two.meta_dict == {"a": "1", "b": "2"}


def test_top_p_is_in_the_key_only_when_set():
    """Caches written before top_p existed keep their keys; a request that sets it is another request."""
    import hashlib

    request = ChatRequest.user("hi", temperature=0.7)
    before_top_p = {
        "backend": "b",
        "messages": [{"role": "user", "content": "hi"}],
        "temperature": 0.7,
        "max_tokens": 1024,
        "seed": None,
        "sample": 0,
        "meta": [],
    }
    canonical = json.dumps(before_top_p, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    assert request.key("b") == hashlib.sha256(canonical.encode()).hexdigest()
    nucleus = ChatRequest.user("hi", temperature=0.7, top_p=0.9)
    assert nucleus.key("b") != request.key("b") and nucleus != request
    assert nucleus.key("b") != ChatRequest.user("hi", temperature=0.7, top_p=0.8).key("b")
    assert ChatRequest.user("hi", top_p=1).key("b") == ChatRequest.user("hi", top_p=1.0).key("b")
    assert nucleus.to_dict()["top_p"] == 0.9 and "top_p" not in request.to_dict()


def test_sampling_overrides_only_what_is_given():
    from okapi_hf.create.llm_types import STEP_DEFAULTS, Sampling

    assert STEP_DEFAULTS.fields(temperature=0.7, max_tokens=512) == {
        "temperature": 0.7,
        "max_tokens": 512,
        "top_p": None,
    }
    given = Sampling(temperature=0.0, top_p=0.5, max_tokens=7)
    assert given.fields(temperature=0.7, max_tokens=512) == {
        "temperature": 0.0,
        "max_tokens": 7,
        "top_p": 0.5,
    }
    assert Sampling(top_p=0.5).given() == {"top_p": 0.5} and STEP_DEFAULTS.given() == {}
    for bad, name in (
        ({"temperature": -0.1}, "temperature"),
        ({"top_p": 0}, "top_p"),
        ({"top_p": 1.01}, "top_p"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": 2.5}, "max_tokens"),
    ):
        with pytest.raises(ConfigError, match=name):
            Sampling(**bad)


def test_request_copies_messages():
    messages = [{"role": "user", "content": "hi"}]
    request = ChatRequest.chat(messages)
    messages[0]["content"] = "changed"
    assert request.messages[0]["content"] == "hi"


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"messages": ()}, "empty"),
        ({"messages": "hello"}, "sequence"),
        ({"messages": ({"role": "robot", "content": "x"},)}, "role"),
        ({"messages": ({"role": "user", "content": 3},)}, "content"),
        ({"messages": ({"role": "user", "content": "x"},), "temperature": -1}, "temperature"),
        ({"messages": ({"role": "user", "content": "x"},), "max_tokens": 0}, "max_tokens"),
        ({"messages": ({"role": "user", "content": "x"},), "seed": "1"}, "seed"),
        ({"messages": ({"role": "user", "content": "x"},), "sample": -1}, "sample"),
        ({"messages": ({"role": "user", "content": "x"},), "meta": (("a", 1),)}, "meta"),
        ({"messages": ({"role": "user", "content": "x"},), "meta": ("abc",)}, "meta"),
        ({"messages": ({"role": "user", "content": "x"},), "top_p": 0}, "top_p"),
        ({"messages": ({"role": "user", "content": "x"},), "top_p": 1.5}, "top_p"),
        ({"messages": ({"role": "user", "content": "x"},), "top_p": "0.9"}, "top_p"),
        ({"messages": ({"role": "user", "content": "x"},), "top_p": True}, "top_p"),
    ],
)
def test_request_rejects_bad_fields(kwargs, expected):
    with pytest.raises(DataError, match=expected):
        ChatRequest(**kwargs)


# -- cache ---------------------------------------------------------------------------------------------


def test_cache_hit_sends_no_request_also_in_a_new_client(tmp_path):
    cache = tmp_path / "cache" / "llm.sqlite"
    requests = requests_for(6)
    with FakeLLMServer() as server:
        first = client_for(server, cache=cache)
        results = first.complete_all(requests, progress=False)
        assert server.count == 6
        assert [r.text for r in results] == [f"echo: q {i}" for i in range(6)]
        assert not any(r.cached for r in results)
        again = first.complete_all(requests, progress=False)
        assert server.count == 6 and all(r.cached for r in again)
        assert [r.text for r in again] == [r.text for r in results]
        first.close()

        # a new client on the same file, as a new process would be: still nothing sent
        second = client_for(server, cache=cache)
        mixed = second.complete_all([*requests[:3], *requests_for(2, "new")], progress=False)
        assert server.count == 8
        assert [r.cached for r in mixed] == [True, True, True, False, False]
        assert second.usage.cache_hits == 3 and second.usage.requests == 2
        assert (mixed[0].prompt_tokens, mixed[0].completion_tokens) == (2, 3)  # "q 0" / "echo: q 0"
        second.close()
    assert len(RequestCache(cache)) == 8


def test_same_request_in_flight_is_sent_once():
    with FakeLLMServer(latency=0.1) as server:
        client = client_for(server)
        results = client.complete_all(
            [ChatRequest.user("same")] * 5 + [ChatRequest.user("other")], progress=False
        )
    assert server.count == 2
    assert {r.text for r in results[:5]} == {"echo: same"}
    assert sum(r.cached for r in results) == 4
    assert client.usage.requests == 2 and client.usage.cache_hits == 4


def test_answer_is_durable_when_complete_returns_even_after_sigkill(tmp_path):
    """The child kills itself right after complete() returns; the parent finds the answer cached."""
    cache = tmp_path / "llm.sqlite"
    child = textwrap.dedent(
        f"""
        import asyncio, os, signal
        from okapi_hf.create.backends import FunctionBackend
        from okapi_hf.create.llm import ChatRequest, LLMClient
        client = LLMClient(FunctionBackend(lambda r: "answer " + r.messages[-1]["content"], id="f"),
                           cache={str(cache)!r})
        async def main():
            for i in range(3):
                await client.complete(ChatRequest.user(f"q {{i}}"))
            os.kill(os.getpid(), signal.SIGKILL)
        asyncio.run(main())
        """
    )
    proc = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=60)
    assert proc.returncode == -9, proc.stderr

    def never(request):
        raise AssertionError(f"sent again: {request}")

    client = LLMClient(FunctionBackend(never, id="f"), cache=cache)
    results = client.complete_all(requests_for(3), progress=False)
    assert [r.text for r in results] == ["answer q 0", "answer q 1", "answer q 2"]
    assert all(r.cached for r in results) and client.usage.requests == 0


def test_two_processes_write_one_cache_at_once(tmp_path):
    cache = tmp_path / "shared.sqlite"
    child = textwrap.dedent(
        f"""
        import sys
        from okapi_hf.create.backends import FunctionBackend
        from okapi_hf.create.llm import ChatRequest, LLMClient
        tag = sys.argv[1]
        client = LLMClient(FunctionBackend(lambda r: "a " + r.messages[-1]["content"], id="f"),
                           cache={str(cache)!r}, concurrency=8)
        client.complete_all([ChatRequest.user(f"{{tag}} {{i}}") for i in range(60)], progress=False)
        """
    )
    procs = [subprocess.Popen([sys.executable, "-c", child, tag], stderr=subprocess.PIPE) for tag in "ab"]
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err.decode()
    store = RequestCache(cache)
    assert len(store) == 120
    assert store.get(ChatRequest.user("b 59").key("f")).text == "a b 59"


def test_cache_is_shared_between_threads_of_one_client(tmp_path):
    calls = []
    client = LLMClient(FunctionBackend(lambda r: calls.append(r) or "x", id="f"), cache=tmp_path / "c.db")

    async def inside_a_running_loop():
        # complete_all from async code runs on a worker thread with its own loop, same cache
        return client.complete_all(requests_for(4), progress=False)

    first = asyncio.run(inside_a_running_loop())
    second = client.complete_all(requests_for(4), progress=False)
    assert len(calls) == 4 and not any(r.cached for r in first) and all(r.cached for r in second)


def test_cache_file_that_is_not_sqlite_is_a_clear_error(tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("this is not a database, " * 200)
    with pytest.raises(ConfigError, match=r"notes\.txt"):
        LLMClient(FunctionBackend(lambda r: "x"), cache=bad)


# -- retries and failures ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["429", "500", "502", "503", "malformed", "incomplete", "drop", "timeout"])
def test_retries_each_transient_failure_then_succeeds(kind):
    with FakeLLMServer(failures=[kind, kind], hang=3.0) as server:
        # timeout only has to beat `hang`; elsewhere it is generous so a loaded machine cannot trip it
        client = client_for(server, timeout=0.5 if kind == "timeout" else 30.0, max_retries=3)
        result = client.complete_all([ChatRequest.user("hello")], progress=False)[0]
    assert result.text == "echo: hello" and not result.cached
    assert server.count == 3
    assert (client.usage.requests, client.usage.retries, client.usage.failures) == (1, 2, 0)


def test_retry_after_is_honoured():
    with FakeLLMServer(failures=["429"], retry_after=0.4) as server:
        client = client_for(server, backoff=0.001)
        client.complete_all([ChatRequest.user("hello")], progress=False)
    assert server.count == 2
    assert server.times[1] - server.times[0] >= 0.38  # not the 1 ms backoff


def test_backoff_grows_exponentially_without_retry_after():
    with FakeLLMServer(failures=["500", "500", "500"]) as server:
        client = client_for(server, backoff=0.1, max_backoff=10.0)
        client.complete_all([ChatRequest.user("hello")], progress=False)
    gaps = [b - a for a, b in zip(server.times, server.times[1:], strict=False)]
    # jitter keeps each wait within [0.5, 1] x 0.1 * 2**attempt (the upper bound allows a loaded machine)
    for attempt, gap in enumerate(gaps):
        assert 0.05 * 2**attempt - 0.01 <= gap <= 0.1 * 2**attempt + 0.5, gaps
    assert len(gaps) == 3


def test_retry_after_header_forms():
    assert _retry_after("2") == 2.0 and _retry_after("0.5") == 0.5 and _retry_after(None) is None
    http_date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))
    assert 25 <= _retry_after(http_date) <= 31
    assert _retry_after("soon") is None


def test_gives_up_after_max_retries_naming_status_and_endpoint():
    with FakeLLMServer(failures=lambda i, body: "503") as server:
        client = client_for(server, max_retries=2)
        with pytest.raises(LLMError) as info:
            client.complete_all([ChatRequest.user("hello")], progress=False)
    assert server.count == 3
    message = str(info.value)
    assert "503" in message and f"{server.url}/chat/completions" in message
    assert "gave up after 3 attempts" in message and "injected failure 503" in message
    assert info.value.status == 503 and isinstance(info.value, OkapiError)
    assert (client.usage.requests, client.usage.retries, client.usage.failures) == (0, 2, 1)


@pytest.mark.parametrize("kind", ["400", "404"])
def test_client_errors_are_not_retried(kind):
    with FakeLLMServer(failures=[kind]) as server:
        client = client_for(server, max_retries=5)

        async def one():
            return await client.complete(ChatRequest.user("hello"))

        with pytest.raises(LLMError, match=f"HTTP {kind}: injected failure {kind}") as info:
            asyncio.run(one())
    assert server.count == 1 and info.value.status == int(kind) and not info.value.retryable
    assert client.usage.failures == 1 and client.usage.retries == 0


def test_complete_all_finishes_the_others_then_reports_failures(tmp_path):
    def fail_bad(index, body):
        return "400" if body["messages"][-1]["content"].startswith("bad") else None

    requests = [*requests_for(3), ChatRequest.user("bad 1"), ChatRequest.user("bad 2")]
    with FakeLLMServer(failures=fail_bad) as server:
        client = client_for(server, cache=tmp_path / "c.db")
        with pytest.raises(LLMError, match="2 of 5 requests failed") as info:
            client.complete_all(requests, progress=False)
        assert info.value.status == 400
        # the three good ones are cached: asking again sends only the two bad ones
        results = client.complete_all(requests, progress=False, return_exceptions=True)
    assert server.count == 7
    assert [type(r).__name__ for r in results] == ["ChatResult"] * 3 + ["LLMError"] * 2
    assert all(r.cached for r in results[:3])


# -- concurrency ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("concurrency", [1, 4])
def test_concurrency_bound_is_respected(concurrency):
    with FakeLLMServer(latency=0.05) as server:
        client = client_for(server, concurrency=concurrency)
        start = time.perf_counter()
        client.complete_all(requests_for(24), progress=False)
        elapsed = time.perf_counter() - start
    assert server.max_in_flight == concurrency
    assert elapsed >= 24 / concurrency * 0.05 * 0.95


def test_retries_hold_their_slot():
    """A request backing off keeps its slot, so a rate limit does not raise the load."""
    with FakeLLMServer(latency=0.02, failures=["429"] * 6, retry_after=0.05) as server:
        client = client_for(server, concurrency=2)
        client.complete_all(requests_for(8), progress=False)
    assert server.max_in_flight <= 2 and server.count == 14


# -- usage and cost ------------------------------------------------------------------------------------


def test_usage_and_cost_arithmetic(tmp_path):
    price = Price(input_per_million=1.5, output_per_million=6.0)
    requests = [ChatRequest.user("one two three"), ChatRequest.user("four five", system="be brief")]
    with FakeLLMServer() as server:
        client = client_for(server, price=price, cache=tmp_path / "c.db")
        results = client.complete_all(requests, progress=False)
        # the fake counts whitespace words: prompt = all message words, completion = "echo:" + last message
        assert [(r.prompt_tokens, r.completion_tokens) for r in results] == [(3, 4), (4, 3)]
        usage = client.usage
        assert (usage.requests, usage.prompt_tokens, usage.completion_tokens) == (2, 7, 7)
        assert usage.cost == pytest.approx((7 * 1.5 + 7 * 6.0) / 1e6)
        client.complete_all(requests, progress=False)  # cache hits are free
    assert usage.cost == pytest.approx(52.5e-6) and usage.cache_hits == 2 and usage.prompt_tokens == 7
    assert usage.seconds > 0 and usage.attempts == 2
    assert usage.postfix() == {"req": "2", "hits": "2", "tok": "14", "cost": "$0.0001"}
    assert (
        "2 requests (0 retries, 0 failed), 2 cache hits, 7 prompt + 7 completion tokens, $0.0001"
        in usage.summary()
    )
    assert Price(2.0, 8.0).cost(1_000_000, 500_000) == pytest.approx(6.0)
    no_price = Usage()
    assert no_price.cost is None and "cost" not in no_price.postfix() and "$" not in no_price.summary()
    with pytest.raises(ConfigError):
        Price(-1.0, 1.0)


def test_progress_bar_shows_rate_hits_and_cost(capsys):
    with FakeLLMServer() as server:
        client = client_for(server, price=Price(1.0, 1.0))
        client.complete_all(requests_for(3), desc="translate vi")
    err = capsys.readouterr().err
    assert "translate vi" in err and "3/3" in err and "req/s" in err
    assert "req=3" in err and "hits=0" in err and "cost=$0.0000" in err


# -- the API key ---------------------------------------------------------------------------------------


def test_api_key_is_sent_as_header_and_nowhere_else(tmp_path, caplog, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    caplog.set_level(logging.DEBUG)
    cache = tmp_path / "c.db"
    with FakeLLMServer(failures=["429", "500"]) as server:
        backend = OpenAIBackend(server.url, "fake-model")  # key from the environment
        client = LLMClient(backend, cache=cache, backoff=0.001)
        client.complete_all(requests_for(3), progress=False)
        client.close()
        assert server.headers[0]["authorization"] == f"Bearer {SECRET}"
        assert all(SECRET not in json.dumps(body) for body in server.requests)
    assert SECRET not in repr(backend) and SECRET not in repr(client)
    for path in tmp_path.iterdir():  # the database and its WAL/SHM files
        assert SECRET.encode() not in path.read_bytes(), path
    assert caplog.records and all(SECRET not in r.getMessage() for r in caplog.records)
    assert all(SECRET not in r for r in ChatRequest.user("q 0").to_dict()["messages"][0].values())


def test_api_key_echoed_by_the_server_is_redacted_from_errors(caplog):
    caplog.set_level(logging.DEBUG)
    with FakeLLMServer(failures=["401"]) as server:
        client = client_for(server, api_key=SECRET)
        with pytest.raises(LLMError) as info:
            client.complete_all([ChatRequest.user("hello")], progress=False)
    assert "HTTP 401" in str(info.value) and "Incorrect API key provided: ***" in str(info.value)
    assert SECRET not in str(info.value) and SECRET not in str(info.value.__cause__)
    assert all(SECRET not in r.getMessage() for r in caplog.records)


def test_no_key_no_authorization_header(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with FakeLLMServer() as server:
        client_for(server).complete_all([ChatRequest.user("hello")], progress=False)
    assert "authorization" not in server.headers[0]


def test_request_body_sent_to_the_endpoint():
    request = ChatRequest.user(
        "hello", system="sys", temperature=0.7, max_tokens=33, seed=5, sample=2, meta={"a": "b"}
    )
    with FakeLLMServer() as server:
        client_for(server).complete_all([request], progress=False)
    assert server.requests[0] == {
        "model": "fake-model",
        "messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": "hello"}],
        "temperature": 0.7,
        "max_tokens": 33,
        "seed": 5,
    }
    assert (
        OpenAIBackend("http://x/v1", "o3", token_field="max_completion_tokens").body(request)[
            "max_completion_tokens"
        ]
        == 33
    )
    with FakeLLMServer() as server:
        client_for(server).complete_all(
            [ChatRequest.user("hello", temperature=1.0, top_p=0.25)], progress=False
        )
    assert server.requests[0]["top_p"] == 0.25 and server.requests[0]["temperature"] == 1.0


# -- FunctionBackend -----------------------------------------------------------------------------------


def test_function_backend_sync_async_and_results():
    async def shout(request):
        await asyncio.sleep(0)
        return request.last_user_message().upper()

    full = ChatResult("fixed", prompt_tokens=10, completion_tokens=20, finish_reason="length")
    assert (
        LLMClient(FunctionBackend(shout)).complete_all([ChatRequest.user("a b")], progress=False)[0].text
        == "A B"
    )
    sync = LLMClient(FunctionBackend(lambda r: "one two", id="sync"))
    result = sync.complete_all([ChatRequest.user("x y z")], progress=False)[0]
    assert (result.text, result.prompt_tokens, result.completion_tokens) == ("one two", 3, 2)
    assert LLMClient(FunctionBackend(lambda r: full)).complete_all(
        [ChatRequest.user("x")], progress=False
    ) == [full]
    with pytest.raises(TypeError, match="returned int"):
        LLMClient(FunctionBackend(lambda r: 3)).complete_all([ChatRequest.user("x")], progress=False)


def test_function_backend_retryable_errors_and_timeouts():
    attempts = []

    def flaky(request):
        attempts.append(request)
        if len(attempts) < 3:
            raise LLMError("busy", retryable=True)
        return "ok"

    client = LLMClient(FunctionBackend(flaky), backoff=0.001)
    assert client.complete_all([ChatRequest.user("x")], progress=False)[0].text == "ok"
    assert len(attempts) == 3 and client.usage.retries == 2

    async def slow(request):
        await asyncio.sleep(5)
        return "late"

    client = LLMClient(FunctionBackend(slow, id="slow"), timeout=0.05, max_retries=1, backoff=0.001)
    with pytest.raises(
        LLMError, match=r"gave up after 2 attempts: slow: no answer within 0.05 s \(timeout\)"
    ):
        client.complete_all([ChatRequest.user("x")], progress=False)


def test_client_rejects_bad_settings_and_use_after_close():
    backend = FunctionBackend(lambda r: "x")
    for kw in ({"concurrency": 0}, {"max_retries": -1}, {"timeout": 0}, {"backoff": -1}):
        with pytest.raises(ConfigError):
            LLMClient(backend, **kw)
    with pytest.raises(ConfigError, match="not an LLM backend"):
        LLMClient(object())
    client = LLMClient(backend)
    client.close()
    with pytest.raises(ConfigError, match="closed"):
        client.complete_all([ChatRequest.user("x")], progress=False)


# -- make_backend --------------------------------------------------------------------------------------


def test_make_backend_specs(monkeypatch, tmp_path):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    backend = make_backend("openai:gpt-4o-mini")
    assert isinstance(backend, OpenAIBackend)
    assert (backend.model, backend.endpoint) == ("gpt-4o-mini", "https://api.openai.com/v1/chat/completions")
    assert backend.id == "openai:gpt-4o-mini@https://api.openai.com/v1"
    monkeypatch.setenv("OPENAI_BASE_URL", "http://10.0.0.5:8000/v1/")
    assert make_backend("openai:gpt-4o-mini").endpoint == "http://10.0.0.5:8000/v1/chat/completions"
    served = make_backend("openai:meta-llama/Llama-3.1-8B-Instruct@http://127.0.0.1:8000/v1", api_key="k")
    assert (served.model, served.base_url) == ("meta-llama/Llama-3.1-8B-Instruct", "http://127.0.0.1:8000/v1")
    assert OpenAIBackend("http://a/v1", "m", id="stable").id == "stable"

    local = make_backend(f"local:{tmp_path}", device="cpu")
    assert isinstance(local, LocalBackend) and local.id == f"local:{tmp_path.resolve()}"
    mt = make_backend("seq2seq:facebook/nllb-200-distilled-600M", lang_code="nllb")
    assert isinstance(mt, Seq2SeqBackend) and mt.id == "seq2seq:facebook/nllb-200-distilled-600M"


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("", "kind"),
        ("gpt-4o", "kind"),
        ("foo:bar", "unknown backend kind 'foo'"),
        ("http://127.0.0.1:8000/v1", "openai:MODEL@http://127.0.0.1:8000/v1"),
        ("openai:", "kind"),
        ("openai:m@ftp://host/v1", "must start with http"),
        ("seq2seq:x", None),
    ],
)
def test_make_backend_errors(spec, expected):
    if expected is None:
        with pytest.raises(ConfigError, match="lang_code 'klingon' unknown"):
            make_backend(spec, lang_code="klingon")
        return
    with pytest.raises(ConfigError, match=expected):
        make_backend(spec)


# -- local causal LM -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory):
    from okapi_hf.testing import make_tiny_model

    return make_tiny_model("llama", tmp_path_factory.mktemp("tiny-llama"))


def test_local_backend_greedy_is_deterministic_and_counted(tiny_llama, tmp_path):
    from transformers import AutoTokenizer

    request = ChatRequest.user("Xin chào, bạn khỏe không?", system="Answer in Vietnamese.", max_tokens=12)
    backend = LocalBackend(tiny_llama)
    client = LLMClient(backend, cache=tmp_path / "c.db")
    first = client.complete_all([request], progress=False)[0]
    again = LLMClient(LocalBackend(tiny_llama)).complete_all([request], progress=False)[0]
    assert isinstance(first.text, str) and first.text == again.text
    assert 1 <= first.completion_tokens <= 12 and first.finish_reason in ("stop", "length")

    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    prompt = tokenizer.apply_chat_template(list(request.messages), tokenize=False, add_generation_prompt=True)
    assert backend.prompt(request) == prompt and prompt.endswith("<|assistant|>\n")
    assert first.prompt_tokens == len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    assert client.complete_all([request], progress=False)[0].cached  # local answers are cached too


def test_local_backend_sampling_is_seeded_by_seed_and_sample(tiny_llama):
    backend = LocalBackend(tiny_llama)

    def text(**kw) -> str:  # a fresh client each time: no in-memory sharing between calls
        requests = [ChatRequest.user("Tell me a story.", temperature=1.0, max_tokens=16, **kw)]
        return LLMClient(backend).complete_all(requests, progress=False)[0].text

    assert text(seed=1, sample=0) == text(seed=1, sample=0)
    # a random 1024-token model sampled at T=1: distinct samples (and seeds) give distinct texts
    assert len({text(seed=1, sample=k) for k in range(4)}) >= 3
    assert len({text(seed=s) for s in (1, 2, 3)}) >= 2
    greedy = LLMClient(backend).complete_all(
        [ChatRequest.user("Tell me a story.", max_tokens=16)], progress=False
    )
    assert greedy[0].text not in {text(seed=1, sample=k) for k in range(2)}


def test_local_backend_samples_within_top_p(tiny_llama):
    backend = LocalBackend(tiny_llama)

    def text(**kw) -> str:
        request = ChatRequest.user("Tell me a story.", max_tokens=16, **kw)
        return LLMClient(backend).complete_all([request], progress=False)[0].text

    greedy = text()
    # a random model at T=1 samples freely; with a nucleus too small for a second token it is greedy
    assert {text(temperature=1.0, seed=s) for s in range(3)} != {greedy}
    assert {text(temperature=1.0, seed=s, top_p=1e-6) for s in range(3)} == {greedy}


def test_local_backend_without_chat_template_uses_okapi_prompt(tiny_llama):
    from okapi_hf.prompts import format_prompt

    backend = LocalBackend(tiny_llama)
    _, tokenizer = backend.load()
    tokenizer.chat_template = None
    request = ChatRequest.user("Name three rivers.", system="ignored by Okapi's template", max_tokens=5)
    assert backend.prompt(request) == format_prompt("Name three rivers.")
    result = LLMClient(backend).complete_all([request], progress=False)[0]
    assert result.prompt_tokens == len(tokenizer(format_prompt("Name three rivers."))["input_ids"])


def test_local_backend_missing_model_is_a_clear_error(tmp_path):
    client = LLMClient(LocalBackend(tmp_path / "nowhere"))
    with pytest.raises(ConfigError, match="nowhere"):
        client.complete_all([ChatRequest.user("x")], progress=False)


# -- seq2seq translation -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_nllb(tmp_path_factory) -> Path:
    """A random M2M100-architecture model with a real NllbTokenizer (BPE trained here, 202 language codes)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import NllbTokenizer

    from okapi_hf.testing import corpus_texts

    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    special = ["<s>", "<pad>", "</s>", "<unk>"]
    bpe.train_from_iterator(
        corpus_texts(), trainers.BpeTrainer(vocab_size=800, special_tokens=special, show_progress=False)
    )
    model_json = json.loads(bpe.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model_json["merges"]]
    tokenizer = NllbTokenizer(vocab=model_json["vocab"], merges=merges)
    model = _tiny_m2m100(tokenizer, d_model=32)
    out = tmp_path_factory.mktemp("tiny-nllb")
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def test_seq2seq_backend_forces_the_target_language(tiny_nllb):
    backend = Seq2SeqBackend(tiny_nllb)
    model, tokenizer = backend.load()
    seen = []
    generate = model.generate

    def recording_generate(**kw):
        output = generate(**kw)
        seen.append((kw["input_ids"][0].tolist(), output[0].tolist()))
        return output

    model.generate = recording_generate
    request = ChatRequest.user(
        "Translate this.", max_tokens=6, meta={"src_lang": "en", "tgt_lang": "vi", "text": "Hello world"}
    )
    result = LLMClient(backend).complete_all([request], progress=False)[0]
    inputs, output = seen[0]
    ids = tokenizer.convert_tokens_to_ids
    assert inputs[0] == ids("eng_Latn") and inputs[-1] == tokenizer.eos_token_id  # NLLB: [src] text </s>
    assert (
        inputs[1:-1] == tokenizer("Hello world", add_special_tokens=False)["input_ids"]
    )  # meta text, not the message
    assert output[1] == ids("vie_Latn")
    assert isinstance(result.text, str) and result.prompt_tokens == len(inputs)
    assert 1 <= result.completion_tokens <= 6

    # the last user message when there is no meta text; another target language, another forced token
    german = ChatRequest.user("Hello world", max_tokens=4, meta={"src_lang": "en", "tgt_lang": "de"})
    LLMClient(backend).complete_all([german], progress=False)
    assert seen[1][0] == inputs and seen[1][1][1] == ids("deu_Latn")
    assert backend.model_code("jp") == "jpn_Jpan"  # aliases resolve through the registry


def test_seq2seq_backend_with_a_tokenizer_that_knows_no_languages(tmp_path):
    """Any tokenizer with the language tokens added works: the backend lays out [src] text </s> itself."""

    from okapi_hf.testing import train_tiny_tokenizer

    tokenizer = train_tiny_tokenizer(vocab_size=300)
    tokenizer.add_special_tokens({"additional_special_tokens": ["__en__", "__vi__"]})
    _tiny_m2m100(tokenizer, d_model=16).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)

    backend = Seq2SeqBackend(tmp_path)  # auto-detects the M2M100 style: there is no vie_Latn
    model, loaded = backend.load()
    seen = []
    generate = model.generate
    model.generate = lambda **kw: seen.append(kw) or generate(**kw)
    request = ChatRequest.user("Hello", max_tokens=3, meta={"src_lang": "en", "tgt_lang": "vi"})
    result = LLMClient(backend).complete_all([request], progress=False)[0]
    ids = loaded.convert_tokens_to_ids
    expected = [ids("__en__"), *loaded("Hello", add_special_tokens=False)["input_ids"], loaded.eos_token_id]
    assert seen[0]["input_ids"][0].tolist() == expected
    assert seen[0]["forced_bos_token_id"] == ids("__vi__") and isinstance(result.text, str)


def test_seq2seq_backend_errors(tiny_nllb):
    backend = Seq2SeqBackend(tiny_nllb)
    client = LLMClient(backend)
    with pytest.raises(DataError, match="tgt_lang"):
        client.complete_all([ChatRequest.user("x", meta={"src_lang": "en"})], progress=False)
    with pytest.raises(UnknownLanguageError, match="xx"):
        client.complete_all(
            [ChatRequest.user("x", meta={"src_lang": "en", "tgt_lang": "xx"})], progress=False
        )
    m2m_style = Seq2SeqBackend(tiny_nllb, lang_code="m2m100")
    with pytest.raises(ConfigError, match="no language token for 'en' \\(tried __en__\\)"):
        LLMClient(m2m_style).complete_all(
            [ChatRequest.user("x", meta={"src_lang": "en", "tgt_lang": "vi"})], progress=False
        )
    custom = Seq2SeqBackend(tiny_nllb, lang_code=lambda code: {"en": "eng_Latn", "vi": "vie_Latn"}[code])
    assert custom.model_code("vi") == "vie_Latn"


def test_language_code_tables():
    from transformers.models.nllb.tokenization_nllb import FAIRSEQ_LANGUAGE_CODES

    from okapi_hf.languages import LANGUAGES

    assert set(NLLB_CODES) == set(LANGUAGES)
    assert set(NLLB_CODES.values()) <= set(FAIRSEQ_LANGUAGE_CODES)  # real NLLB-200 tokens
    assert nllb_code("vi") == "vie_Latn" and nllb_code("JP") == "jpn_Jpan"
    assert m2m100_code("vi") == "__vi__" and m2m100_code("jp") == "__ja__"
    with pytest.raises(UnknownLanguageError):
        nllb_code("xx")


# -- a real OpenAI-compatible server -------------------------------------------------------------------


@pytest.mark.slow
def test_against_transformers_serve(greedy_server, tmp_path):
    """OpenAIBackend + LLMClient against `transformers serve`; greedy answers match LocalBackend's."""
    model, url = greedy_server.removeprefix("openai:").split("@", 1)
    requests = [ChatRequest.user(f"Question {i}: what is {i} + {i}?", max_tokens=8) for i in range(4)]
    client = LLMClient(OpenAIBackend(url, model), concurrency=4, cache=tmp_path / "c.db")
    results = client.complete_all(requests, progress=False)
    assert client.usage.requests == 4 and client.usage.failures == 0
    assert all(isinstance(r.text, str) and r.completion_tokens > 0 and r.prompt_tokens > 0 for r in results)
    local = LLMClient(LocalBackend(model)).complete_all(requests, progress=False)
    assert [r.text for r in results] == [r.text for r in local]
    assert [r.prompt_tokens for r in results] == [r.prompt_tokens for r in local]
    again = client.complete_all(requests, progress=False)
    assert all(r.cached for r in again) and client.usage.requests == 4


def _tiny_m2m100(tokenizer, d_model: int):
    """A random one-layer M2M100 (NLLB's architecture) sized for ``tokenizer``, the same for a given size."""
    import torch
    from transformers import M2M100Config, M2M100ForConditionalGeneration

    config = M2M100Config(
        vocab_size=len(tokenizer),
        d_model=d_model,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=2 * d_model,
        decoder_ffn_dim=2 * d_model,
        max_position_embeddings=256,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.eos_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return M2M100ForConditionalGeneration(config)
