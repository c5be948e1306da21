"""Data creation end to end over HTTP: the steps chain into `data build`, survive SIGKILL, run on `transformers serve`."""

from __future__ import annotations

import json
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest

from live import transformers_serve
from okapi_hf.cli import main
from okapi_hf.create import steps as create
from okapi_hf.create.fake_llm import FakeLLMServer
from okapi_hf.create.runner import StepFailed
from okapi_hf.create.steps import CACHE_NAME
from okapi_hf.data.build import build_dataset
from okapi_hf.data.load import load_dataset
from okapi_hf.testing import make_tiny_model

WORDS = [f"topic{n}" for n in range(500)]
VI = "Đây là câu trả lời tiếng Việt rất cẩn thận và đầy đủ cho người hỏi"


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def fake_model(name: str):
    """A scripted model that plays each step's part, recognising the step by its prompt."""

    def reply(messages: list[dict]) -> str:
        last = messages[-1]["content"]
        if "Continue the list with tasks" in last:
            start = int(re.search(r"tasks (\d+) to", last)[1])
            rng = random.Random(zlib.crc32(last.encode()))  # each prompt its own, unlike, tasks
            return "\n\n".join(
                f"### Task {start + k}\nInstruction: Describe {' '.join(rng.sample(WORDS, 6))}\n"
                f"Input: <noinput>\nOutput: Answer {k}"
                for k in range(3)
            )
        if messages[0]["role"] == "system" and "translator" in messages[0]["content"]:
            return f"{VI}: {last}"  # the source words and placeholders kept, so rows stay distinct
        if "Translate the instruction" in last:
            return "Instruction: ... Response 1: ... Response 2: ..."
        if "Now rank" in last:  # prefers model b's response, wherever the prompt shows it
            first = messages[0]["content"]
            b_first = first.index("(b)") < first.index("(a)")
            return "Model b's response is more helpful.\nRanking: [[" + ("1, 2" if b_first else "2, 1") + "]]"
        return f"{VI} ({name})"

    return reply


def test_the_four_steps_chain_into_a_dataset(tmp_path, capsys):
    out = tmp_path / "created"
    with FakeLLMServer(fake_model("a")) as a, FakeLLMServer(fake_model("b")) as b:
        backend = f"openai:judge@{a.url}"
        flags = ["--out", str(out), "--concurrency", "4"]
        assert main(["data", "generate", "--num", "6", "--backend", backend, *flags]) == 0
        english = out / "multilingual-alpaca-52k" / "en.jsonl"
        assert len(_lines(english)) == 6 and "generate: 6 new task(s) kept" in capsys.readouterr().out

        assert (
            main(
                ["data", "translate", "--input", str(english), "--langs", "vi", "--backend", backend, *flags]
            )
            == 0
        )
        translated = out / "multilingual-alpaca-52k" / "vi.jsonl"
        rows = _lines(translated)
        assert sorted(r["id"] for r in rows) == sorted(f"en-gen-{n}" for n in range(6))
        assert all(r["lang"] == "vi" and r["instruction"].startswith(VI) for r in rows)
        assert {r["output"] for r in rows} == {f"{VI}: Answer {k}" for k in range(3)}  # numbers restored

        two = f"openai:a@{a.url},openai:b@{b.url}"
        assert main(["data", "respond", "--input", str(translated), "--backend", two, *flags]) == 0
        responses = out / "responses" / "vi.jsonl"
        assert all(r["responses"] == [f"{VI} (a)", f"{VI} (b)"] for r in _lines(responses))

        assert main(["data", "rank", "--input", str(responses), "--backend", backend, *flags]) == 0
        ranked = _lines(out / "multilingual-ranking-data-42k" / "vi.jsonl")
        assert all(r["responses"] == [f"{VI} (b)", f"{VI} (a)"] for r in ranked) and len(ranked) == 6
        printed = capsys.readouterr().out
        assert "rank vi: 6 row(s) written" in printed

        requests = a.count
        assert main(["data", "rank", "--input", str(responses), "--backend", backend, *flags]) == 0
        assert a.count == requests and "6 already done" in capsys.readouterr().out  # nothing sent again

        # TaCo rows from the Vietnamese rows and their English originals: no request needed
        requests = a.count
        taco = [
            "data",
            "taco",
            "--input",
            str(translated),
            "--english",
            str(english),
            "--backend",
            backend,
            *flags,
        ]
        assert main(taco) == 0 and a.count == requests
        records = {r["id"]: r for r in _lines(out / "taco" / "vi.jsonl")}
        source = {r["id"]: r for r in _lines(english)}
        assert set(records) == set(source)
        record = records["en-gen-0"]
        assert record["output"].startswith(f"Instruction in English: {source['en-gen-0']['instruction']}")
        assert "Response in English: Answer 0" in record["output"]
        assert record["output"].endswith(f"Response in Vietnamese: {VI}: Answer 0")

    built = build_dataset(out, tmp_path / "okapi_hf", ["vi"], ["sft", "ranking"], progress=False)
    assert built.splits
    train = load_dataset("vi", "ranking", path=tmp_path / "okapi_hf", split="train")
    assert train[0]["responses"] == [f"{VI} (b)", f"{VI} (a)"]


def test_shards_cover_the_rows_once_and_merge(tmp_path):
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"id": f"r{i}", "instruction": f"Task {i}"}) + "\n" for i in range(9)))
    out = tmp_path / "out"
    with FakeLLMServer(fake_model("a")) as server:
        for i in range(3):
            create.translate(rows, out, "vi", f"openai:m@{server.url}", shard=f"{i}/3", progress=False)
    target = out / "multilingual-alpaca-52k" / "vi.jsonl"
    assert main(["data", "merge", str(target), "--shards", "3"]) == 0
    assert sorted(r["id"] for r in _lines(target)) == sorted(f"r{i}" for i in range(9))


def test_bad_input_is_named(tmp_path, capsys):
    rows = tmp_path / "rows.jsonl"
    rows.write_text(
        '{"id": "a", "instruction": "x", "lang": "vi"}\n{"id": "b", "instruction": "y", "lang": "ru"}\n'
    )
    with FakeLLMServer(fake_model("a")) as server:
        args = ["--backend", f"openai:m@{server.url}", "--out", str(tmp_path / "o")]
        assert main(["data", "rank", "--input", str(rows), *args]) == 1
        assert "rows carry languages ['ru', 'vi']; pass --lang" in capsys.readouterr().err
        assert main(["data", "translate", "--input", str(rows), "--langs", "xx", *args]) == 1
        assert "unknown language code 'xx'" in capsys.readouterr().err
        assert (
            main(["data", "translate", "--input", str(rows), "--langs", "vi", "--shard", "2/2", *args]) == 1
        )
        assert "expected i/n" in capsys.readouterr().err
        assert main(["data", "translate", "--input", str(rows), "--langs", "vi", "--price", "x", *args]) == 1
        assert "--price 'x'" in capsys.readouterr().err
        assert main(["data", "generate", "--num", "1", "--backend", "http://x", "--out", str(tmp_path)]) == 1
        assert "write openai:MODEL@http://x" in capsys.readouterr().err


# -- a run killed halfway -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_killed_run_resumes_without_losing_or_repeating_rows_or_requests(tmp_path):
    rows = tmp_path / "rows.jsonl"
    n = 60
    rows.write_text(
        "".join(json.dumps({"id": f"r{i}", "instruction": f"Task about {WORDS[i]}"}) + "\n" for i in range(n))
    )
    out = tmp_path / "out"
    target = out / "multilingual-alpaca-52k" / "vi.jsonl"
    with FakeLLMServer(fake_model("a"), latency=0.05) as server:
        command = [
            sys.executable, "-m", "okapi_hf.cli", "data", "translate", "--input", str(rows), "--langs", "vi",
            "--backend", f"openai:m@{server.url}", "--out", str(out), "--concurrency", "4",
        ]  # fmt: skip
        first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while not (target.is_file() and len(target.read_text().splitlines()) >= n // 3):
            assert first.poll() is None, "the first run ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.02)
        first.send_signal(signal.SIGKILL)
        first.wait()
        written_before = {r["id"] for r in _lines(target)}
        assert n // 3 <= len(written_before) < n
        with sqlite3.connect(out / CACHE_NAME) as db:
            stored = db.execute("SELECT request FROM responses").fetchall()
        completed = {json.dumps(json.loads(r)["messages"], sort_keys=True) for (r,) in stored}
        sent_before = server.count
        server.reset()

        second = subprocess.run(command, capture_output=True, text=True, timeout=300)
        assert second.returncode == 0, second.stderr[-2000:]
        resent = [b for b in server.requests if json.dumps(b["messages"], sort_keys=True) in completed]
        assert resent == [], "a request that had completed before the kill was sent again"
        assert sent_before >= len(completed) and server.count == n - len(completed)
    ids = [r["id"] for r in _lines(target)]
    assert sorted(ids) == sorted(f"r{i}" for i in range(n)) and len(ids) == len(set(ids))
    assert f"{len(written_before)} already done" in second.stdout


# -- a real OpenAI-compatible server -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def serve(tmp_path_factory):
    """`transformers serve` on 127.0.0.1 with a tiny random Llama that samples (so K responses differ)."""
    model = make_tiny_model("llama", tmp_path_factory.mktemp("served") / "llama", seed=3)
    with transformers_serve(model, sample=True) as spec:
        yield spec


@pytest.mark.slow
def _reports(step, *args, **kwargs) -> list:
    """A step's reports, also when it refused to pass on an output that kept nothing (StepFailed)."""
    try:
        result = step(*args, **kwargs)
    except StepFailed as e:
        return list(e.reports)
    return result if isinstance(result, list) else [result]


def test_every_step_runs_against_transformers_serve(serve, tmp_path):
    """A tiny random model cannot follow the prompts: the rows are rejected with reasons, never lost."""
    rows = tmp_path / "rows.jsonl"
    rows.write_text(
        "".join(
            json.dumps({"id": f"r{i}", "instruction": f"Tổng của {i} và 2 là bao nhiêu?", "lang": "vi"})
            + "\n"
            for i in range(3)
        )
    )
    out = tmp_path / "out"
    [generated] = _reports(create.generate, out, 2, serve, max_tokens=48, progress=False, concurrency=2)
    assert generated.requests == 2 and generated.kept + sum(generated.dropped.values()) == generated.parsed
    assert (out / "multilingual-alpaca-52k" / "en.jsonl").is_file() == (generated.kept > 0)

    [translated] = _reports(create.translate, rows, out, "vi", serve, progress=False, concurrency=2)
    assert translated.written + sum(translated.rejected.values()) == 3 and not translated.failed
    assert translated.usage and "req" in translated.usage.lower()

    [checked] = _reports(
        create.respond, rows, tmp_path / "checked", [serve], samples=2, max_tokens=24, progress=False
    )
    assert checked.written + sum(checked.rejected.values()) == 3 and not checked.failed
    assert any("response not in Vietnamese" in note for note in checked.notes)  # random text is no language
    [responded] = _reports(
        create.respond,
        rows,
        out,
        [serve],
        samples=2,
        max_tokens=24,
        check_language=False,
        progress=False,
        concurrency=2,
    )
    assert responded.written + sum(responded.rejected.values()) == 3 and not responded.failed
    written = _lines(out / "responses" / "vi.jsonl")
    assert all(len(r["responses"]) == 2 for r in written)

    [taco] = _reports(create.taco, rows, out, serve, answer="model", progress=False, concurrency=2)
    assert taco.written + sum(taco.rejected.values()) == 3 and not taco.failed

    [ranked] = _reports(
        create.rank, out / "responses" / "vi.jsonl", out, serve, max_tokens=32, progress=False, concurrency=2
    )
    assert ranked.written + sum(ranked.rejected.values()) == len(written) and not ranked.failed
    assert set(ranked.rejected) <= {
        f"unparsable ranking after a retry ({k})"
        for k in ("no ranking line", "several ranking lines", "not a permutation of the response numbers")
    }


def test_steps_refuse_settings_that_cannot_work_and_fail_loudly(tmp_path, capsys):
    rows = tmp_path / "rows.jsonl"
    rows.write_text(
        '{"id": "a", "instruction": "Chào bạn", "lang": "vi"}\n{"id": "b", "instruction": "x", "lang": "th"}\n'
    )
    with FakeLLMServer(fake_model("a")) as server:
        args = ["--input", str(rows), "--backend", f"openai:m@{server.url}", "--out", str(tmp_path / "o")]
        assert main(["data", "respond", *args, "--lang", "vi"]) == 1  # one backend, one sample
        assert "ranking needs at least 2: pass --samples 2" in capsys.readouterr().err
        assert main(["data", "respond", *args, "--lang", "vi", "--samples", "2"]) == 1
        assert "rows carry language(s) ['th'], not vi" in capsys.readouterr().err
    with FakeLLMServer(failures=lambda i, body: "400") as broken:  # refuses everything: no retry helps
        flags = ["--langs", "vi", "--out", str(tmp_path / "o"), "--backend", f"openai:m@{broken.url}"]
        assert main(["data", "translate", "--input", str(rows), *flags]) == 1
    captured = capsys.readouterr()
    assert "2 failed (of 2)" in captured.out and "2 row(s) failed" in captured.err
