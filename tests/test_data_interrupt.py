"""Ctrl-C during a data step: it ends within 2 s, keeps every finished row, and a second run resumes.

Real subprocesses get a real SIGINT, against the fake OpenAI endpoint (whose answers for some rows
never come) and against a tiny local model generating a long answer; the pieces underneath (the
runner's workers, a local generation's stop, the timeout) are checked in-process too.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from okapi_hf.create import steps as create
from okapi_hf.create.backends import LocalBackend
from okapi_hf.create.fake_llm import FakeLLMServer
from okapi_hf.create.llm import ChatRequest, LLMClient, run_async
from okapi_hf.create.runner import RowRejected, RunReport, StepInterrupted, run_rows, run_step
from okapi_hf.create.steps import CACHE_NAME

VI = "Đây là câu trả lời tiếng Việt rất cẩn thận và đầy đủ cho người hỏi"
RANKED = "multilingual-ranking-data-42k/vi.jsonl"
TRANSLATED = "multilingual-alpaca-52k/vi.jsonl"
LIMIT = 2.0  # seconds from SIGINT to the process's exit


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _write_rows(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def _command(step: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "okapi_hf.cli", "data", step, *args]


def _wait_for_rows(proc: subprocess.Popen, path: Path, n: int, timeout: float = 120) -> None:
    """Until ``path`` holds ``n`` finished rows (the process must still be running)."""
    deadline = time.monotonic() + timeout
    while not (path.is_file() and len(path.read_text(encoding="utf-8").splitlines()) >= n):
        assert proc.poll() is None, f"the run ended before it could be interrupted:\n{proc.stderr.read()}"
        assert time.monotonic() < deadline, f"no {n} finished rows in {path} after {timeout} s"
        time.sleep(0.05)


def _interrupt(proc: subprocess.Popen) -> tuple[float, str]:
    """SIGINT, then the seconds until the process ended and its stderr."""
    proc.send_signal(signal.SIGINT)
    sent = time.monotonic()
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail("the process was still running 60 s after SIGINT")
    return time.monotonic() - sent, proc.stderr.read()


# -- an OpenAI-compatible endpoint -------------------------------------------------------------------


def _judge(gate: threading.Event):
    """Rank's two turns, answered at once for fast rows and only when ``gate`` opens for slow ones."""

    def reply(messages: list[dict]) -> str:
        if "slow" in messages[0]["content"]:
            gate.wait(60)  # a request in flight when Ctrl-C comes
        if "Now rank" in messages[-1]["content"]:
            return "The first is better.\nRanking: [[1, 2]]"
        return "Instruction: ... Response 1: ... Response 2: ..."

    return reply


def test_ctrl_c_stops_rank_against_an_endpoint_and_a_second_run_resumes(tmp_path):
    rows = [
        {
            "id": f"{speed}{i}",
            "lang": "vi",
            "instruction": f"{speed} question {i}",
            "responses": [VI, VI + "!"],
        }
        for speed in ("fast", "slow")
        for i in range(3)
    ]
    source = _write_rows(tmp_path / "responses.jsonl", rows)
    out, gate = tmp_path / "out", threading.Event()
    target = out / RANKED
    try:
        with FakeLLMServer(_judge(gate)) as server:
            command = _command(
                "rank", "--input", str(source), "--backend", f"openai:judge@{server.url}", "--out", str(out)
            )
            proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            _wait_for_rows(proc, target, 3)
            deadline = time.monotonic() + 30
            while server.count < 3 * 2 + 3:  # the slow rows' first requests are in flight too
                assert time.monotonic() < deadline
                time.sleep(0.02)
            seconds, stderr = _interrupt(proc)

            assert proc.returncode == 130, stderr
            assert seconds < LIMIT, f"exited {seconds:.2f} s after SIGINT"
            assert f"rank vi: interrupted with 3 of 6 row(s) done (3 this run), kept in {target}" in stderr
            assert "Traceback" not in stderr
            finished = _lines(target)  # every line whole and parsable
            assert sorted(r["id"] for r in finished) == ["fast0", "fast1", "fast2"]
            assert all(sorted(r["responses"]) == [VI, VI + "!"] for r in finished)
            with sqlite3.connect(out / CACHE_NAME) as db:
                assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
                assert db.execute("SELECT COUNT(*) FROM responses").fetchone() == (6,)  # 3 rows x 2 turns

            gate.set()
            server.reset()
            again = subprocess.run(command, capture_output=True, text=True, timeout=120)
            assert again.returncode == 0, again.stderr
            assert "3 row(s) written" in again.stdout and "3 already done" in again.stdout
            assert not [b for b in server.requests if "fast" in b["messages"][0]["content"]]
            assert server.count == 3 * 2  # only the slow rows' two turns
    finally:
        gate.set()  # frees the fake server's handler threads
    ids = [r["id"] for r in _lines(target)]
    assert sorted(ids) == sorted(r["id"] for r in rows) and len(ids) == len(set(ids))


# -- a model in this process ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory) -> Path:
    from okapi_hf.testing import make_tiny_model

    return make_tiny_model("llama", tmp_path_factory.mktemp("interrupt") / "llama", seed=1)


@pytest.mark.slow
def test_ctrl_c_stops_a_local_model_mid_generation_and_a_second_run_resumes(tiny_llama, tmp_path):
    # rows with nothing to translate (numbers only) finish at once; the others each wait for a
    # 1900-token generation (tens of seconds here), which Ctrl-C must cut short
    rows = [{"id": f"n{i}", "instruction": f"{i} + {i} = {2 * i}"} for i in range(2)]
    rows += [
        {"id": f"t{i}", "instruction": f"Write a long story about {w}."}
        for i, w in enumerate(["rivers", "owls"])
    ]
    source = _write_rows(tmp_path / "en.jsonl", rows)
    out = tmp_path / "out"
    target = out / TRANSLATED
    args = ["--input", str(source), "--langs", "vi", "--backend", f"local:{tiny_llama}", "--out", str(out)]
    proc = subprocess.Popen(
        _command("translate", *args, "--max-tokens", "1900"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for_rows(proc, target, 2)  # the model is loaded before rows start: it is generating now
    time.sleep(0.5)
    seconds, stderr = _interrupt(proc)

    assert proc.returncode == 130, stderr
    assert seconds < LIMIT, f"exited {seconds:.2f} s after SIGINT"
    assert f"translate vi: interrupted with 2 of 4 row(s) done (2 this run), kept in {target}" in stderr
    assert "Traceback" not in stderr
    finished = _lines(target)
    assert [(r["id"], r["instruction"]) for r in finished] == [("n0", "0 + 0 = 0"), ("n1", "1 + 1 = 2")]

    # resumed here (with short answers, to be quick): the two finished rows are skipped, not redone
    [report] = create.translate(source, out, "vi", f"local:{tiny_llama}", max_tokens=4, progress=False)
    assert (report.resumed, report.written + sum(report.rejected.values())) == (2, 2)
    assert _lines(target)[:2] == finished and [r["id"] for r in _lines(target)].count("n0") == 1


def test_a_cancelled_local_generation_stops_at_its_next_token(tiny_llama):
    backend = LocalBackend(tiny_llama)
    backend.load()
    client = LLMClient(backend)
    request = ChatRequest.user("Tell me everything.", max_tokens=1900)  # tens of seconds if not stopped

    async def go() -> float:
        task = asyncio.ensure_future(client.complete(request))
        await asyncio.sleep(0.5)
        assert not task.done()
        started = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await client.aclose()  # waits for the stopped thread
        assert not any(t.is_alive() for t in backend._stopping)
        return time.monotonic() - started

    assert run_async(go()) < 1.0
    assert client.usage.requests == 0  # a cut-short answer is neither counted nor kept


# -- the runner --------------------------------------------------------------------------------------------


def test_a_cancelled_run_keeps_finished_rows_and_takes_no_new_one(tmp_path):
    out = tmp_path / "vi.jsonl"
    rows = [{"id": f"r{i}"} for i in range(20)]
    started: list[str] = []
    stubborn = {"r1"}  # swallows its first cancellation, as asyncio.wait_for can on Python 3.11

    async def work(row):
        started.append(row["id"])
        if row["id"] == "r0":
            return {"text": "quick"}
        if row["id"] == "r2":
            raise RowRejected("no good")
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            if row["id"] not in stubborn:
                raise
            stubborn.discard(row["id"])
            await asyncio.sleep(60)  # carries on as if nothing happened
        return {"text": "slow"}

    async def go():
        report = RunReport(step="s", out=out)
        task = asyncio.ensure_future(run_rows(rows, work, out, step="s", max_in_flight=4, report=report))
        await asyncio.sleep(0.2)
        task.cancel()
        started_at_cancel = list(started)
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 5)
        return report, started_at_cancel

    report, at_cancel = asyncio.run(go())
    assert report.interrupted and report.done == 2 and report.total == 20
    assert started == at_cancel  # no row was begun after the cancellation
    assert [r["id"] for r in _lines(out)] == ["r0"]
    assert "interrupted with 2 of 20 row(s) done (2 this run)" in report.interruption()

    async def later(row):
        return {"text": "later"}

    report = asyncio.run(run_rows(rows, later, out, step="s", progress=False))
    assert report.resumed == 2 and report.written == 18


def test_keyboard_interrupt_in_a_step_becomes_step_interrupted_with_its_line():
    closed = []

    class Client:
        backend = object()

        async def aclose(self):
            closed.append(True)

    async def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(StepInterrupted) as caught:
        run_step(interrupted(), [Client()], lambda: "step: 3 of 5 done")
    assert str(caught.value) == "step: 3 of 5 done" and isinstance(caught.value, KeyboardInterrupt)
    assert closed == [True]  # the clients are closed on the way out


def test_a_cancellation_arriving_with_the_answer_is_not_swallowed():
    """``asyncio.wait_for`` (Python 3.11) returns the answer then, and a cancelled worker went on."""
    from okapi_hf.create.backends import FunctionBackend

    async def go() -> None:
        answer = asyncio.get_running_loop().create_future()
        client = LLMClient(FunctionBackend(lambda request: answer), timeout=5)
        task = asyncio.ensure_future(client.complete(ChatRequest.user("x")))
        for _ in range(5):  # until the backend waits for its answer
            await asyncio.sleep(0)
        answer.set_result("late answer")
        task.cancel()  # in the same turn of the loop as the answer
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(go())
