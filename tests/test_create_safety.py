"""LLM-driven data creation under hostile input and faults: credentials, bad options, two writers,
shard merges, empty results, full disks and errors that running again cannot fix.

Every case runs against the fake OpenAI-compatible endpoint (a real local HTTP server) or a real full
file system (a small tmpfs), and checks what a user sees: one line naming the option, file or cause,
no traceback, no secret anywhere, and no finished row lost.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import fill_disk
from okapi_hf.cli import main
from okapi_hf.create import steps as create
from okapi_hf.create.backends import OpenAIBackend, make_backend
from okapi_hf.create.fake_llm import FakeLLMServer
from okapi_hf.create.llm import ChatRequest, LLMClient, LLMError
from okapi_hf.create.runner import merge_shards
from okapi_hf.errors import OkapiError
from okapi_hf.eval.judge import judge_answers, judge_spec
from okapi_hf.fsutil import locked

SECRET = "sk-okapi-TopSecretKey-0123456789abcdef"
SECRET2 = "QueryKey-5e3r3t-in-the-url-987654"
VI = "Đây là câu trả lời tiếng Việt rất cẩn thận và đầy đủ cho người hỏi"
RANKED = "multilingual-ranking-data-42k/vi.jsonl"
TRANSLATED = "multilingual-alpaca-52k/vi.jsonl"
GENERATED = "multilingual-alpaca-52k/en.jsonl"


# -- helpers ---------------------------------------------------------------------------------------------


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _rank_rows(path: Path, n: int, *, long: tuple[int, ...] = ()) -> Path:
    rows = [
        {"id": f"q{i}", "lang": "vi", "instruction": f"câu hỏi {i}" + (" LONG" if i in long else ""),
         "responses": [f"{VI} a{i}", f"{VI} b{i}"]}
        for i in range(n)
    ]  # fmt: skip
    return _write(path, rows)


def _questions(path: Path, n: int) -> Path:
    rows = [{"id": f"r{i}", "lang": "vi", "instruction": f"Hãy kể về dòng sông thứ {i}"} for i in range(n)]
    return _write(path, rows)


def _judge(messages: list[dict]) -> str:
    """Rank's two turns: the English translation first, then the ranking line."""
    return "Ranking: [[2, 1]]" if "Now rank" in messages[-1]["content"] else "Instruction: ... Responses: ..."


def _vietnamese(sent: list[str] | None = None):
    """Distinct Vietnamese answers (respond keeps only distinct ones); ``sent`` records them."""
    count = iter(range(1_000_000))

    def reply(messages: list[dict]) -> str:
        text = f"{VI} số {next(count)}"
        if sent is not None:
            sent.append(text)
        return text

    return reply


def _markers(messages: list[dict]) -> str:
    return " ".join(re.findall(r"⟦\d+⟧", messages[-1]["content"]))


def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _one_error(err: str) -> str:
    """The CLI's single error line (progress bars redraw with \\r); no traceback around it."""
    assert "Traceback" not in err, err
    lines = [line for line in re.split(r"[\r\n]", err) if line.startswith("okapi-hf")]
    assert len(lines) == 1, err
    return lines[0]


def _files_holding(folder: Path, *secrets: str) -> list[str]:
    """Files under ``folder`` whose bytes contain any of ``secrets`` (the SQLite WAL included)."""
    return [
        str(p.relative_to(folder))
        for p in sorted(folder.rglob("*"))
        if p.is_file() and any(s.encode() in p.read_bytes() for s in secrets)
    ]


def _host(server: FakeLLMServer) -> str:
    return server.url.split("//", 1)[1]  # 127.0.0.1:PORT/v1


# -- credentials in URLs --------------------------------------------------------------------------------


def _rank_argv(rows: Path, out: Path, url: str) -> list[str]:
    """``okapi-hf data rank`` of ``rows`` into ``out`` with a judge at ``url``."""
    return ["data", "rank", "--input", str(rows), "--out", str(out), "--backend", f"openai:j@{url}"]


def test_credentials_in_backend_urls_are_sent_but_never_stored_logged_or_shown(tmp_path, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    rows, out = _questions(tmp_path / "q.jsonl", 3), tmp_path / "out"
    reply = _vietnamese()  # one counter for both servers: every response differs
    with FakeLLMServer(reply) as a, FakeLLMServer(reply) as b:
        spec_a = f"openai:m1@http://okapi:{SECRET}@{_host(a)}"
        spec_b = f"openai:m2@{b.url}?api_key={SECRET2}&api-version=2024-06-01"
        code, stdout, err = _cli(
            capsys,
            "data",
            "respond",
            "--input",
            str(rows),
            "--out",
            str(out),
            "--backend",
            f"{spec_a},{spec_b}",
        )
        assert code == 0, err
        # used for every request: user:key as basic auth, the query as given
        assert (
            a.headers[0]["authorization"] == "Basic " + base64.b64encode(f"okapi:{SECRET}".encode()).decode()
        )
        assert all(p == f"/v1/chat/completions?api_key={SECRET2}&api-version=2024-06-01" for p in b.paths)
    assert _files_holding(out, SECRET, SECRET2) == []  # rows, rejections, the cache and its WAL
    sources = {s for row in _lines(out / "responses" / "vi.jsonl") for s in row["sources"]}
    assert sources == {
        f"openai:m1@http://***@{_host(a)}#0",
        f"openai:m2@{b.url}?api_key=***&api-version=2024-06-01#0",
    }
    with sqlite3.connect(out / ".okapi_llm_cache.sqlite") as db:
        backends = {row[0] for row in db.execute("SELECT backend FROM responses")}
    assert backends == {s.removesuffix("#0") for s in sources}
    assert SECRET not in stdout + err and SECRET2 not in stdout + err
    assert caplog.records and not [r for r in caplog.records if SECRET2 in r.getMessage()]


def test_a_base_url_from_the_environment_keeps_its_credentials_out_of_the_cache(tmp_path, monkeypatch):
    rows, out = _rank_rows(tmp_path / "r.jsonl", 2), tmp_path / "out"
    with FakeLLMServer(_judge) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", f"http://okapi:{SECRET}@{_host(server)}")
        report = create.rank(rows, out, "openai:judge", progress=False)
    assert report.written == 2 and "***" not in (out / RANKED).read_text()
    assert _files_holding(out, SECRET) == []


def test_credentials_in_error_messages_are_masked():
    # the endpoint echoes what it got (user:key, decoded from basic auth); nothing listens on port 9
    with FakeLLMServer(failures=["401"]) as server:
        client = LLMClient(OpenAIBackend(f"http://okapi:{SECRET}@{_host(server)}", "m"), max_retries=0)
        with pytest.raises(LLMError) as refused:
            client.complete_all([ChatRequest.user("hi")], progress=False)
    down = LLMClient(OpenAIBackend(f"http://okapi:{SECRET}@127.0.0.1:9/v1?key={SECRET2}", "m"), max_retries=0)
    with pytest.raises(LLMError) as failed:
        down.complete_all([ChatRequest.user("hi")], progress=False)
    for error in (refused.value, failed.value):
        text = f"{error} {error.__cause__} {error.endpoint}"
        assert SECRET not in text and SECRET2 not in text and "***" in text
    assert "http://***@127.0.0.1:9/v1/chat/completions?key=***" in str(failed.value)


def test_the_judge_stores_no_credential_of_its_endpoint(tmp_path):
    answers = _write(
        tmp_path / "vi.jsonl",
        [{"id": "vi-1", "question_id": 1, "lang": "vi", "category": "generic", "turns": ["Chào?"],
          "answers": [VI], "model": "m"}],
    )  # fmt: skip
    with FakeLLMServer(lambda messages: "Rating: [[7]]") as server:
        spec = judge_spec(f"http://okapi:{SECRET}@{_host(server).removesuffix('/v1')}", "judge")
        report = judge_answers(answers, tmp_path / "judged" / "vi.jsonl", spec, progress=False)
        assert report.written == 1 and server.headers[0]["authorization"].startswith("Basic ")
    assert _files_holding(tmp_path / "judged", SECRET) == []


# -- several backends: usage and cost ------------------------------------------------------------------


def test_requests_and_cost_add_up_over_every_backend(tmp_path, capsys):
    rows, sent = _questions(tmp_path / "q.jsonl", 2), []
    reply = _vietnamese(sent)
    with FakeLLMServer(reply) as a, FakeLLMServer(reply) as b:
        backends = f"openai:m1@{a.url},openai:m2@{b.url}"
        argv = ["data", "respond", "--input", str(rows), "--out", str(tmp_path / "o"), "--backend", backends]
        code, stdout, err = _cli(capsys, *argv, "--price", "1000,2000")
        bodies = a.requests + b.requests
    assert code == 0, err
    assert (len(a.requests), len(b.requests)) == (2, 2)
    prompt = sum(len(m["content"].split()) for body in bodies for m in body["messages"])
    completion = sum(len(text.split()) for text in sent)
    cost = (prompt * 1000 + completion * 2000) / 1e6
    assert (
        f"4 requests (0 retries, 0 failed), 0 cache hits, {prompt} prompt + {completion} completion" in stdout
    )
    assert f"${cost:.4f}" in stdout


# -- option values checked before any work --------------------------------------------------------------

BAD_SPECS = [
    ("openai:judge@http://127.0.0.1:99999/v1", "must be a whole number from 1 to 65535"),
    ("openai:judge@http://127.0.0.1:abc/v1", "must be a whole number from 1 to 65535"),
    ("openai:judge@http://127.0.0.1:0/v1", "must be a whole number from 1 to 65535"),
    ("openai:@http://127.0.0.1:8000/v1", "the model name before '@' is empty"),
    ("openai:   @http://127.0.0.1:8000/v1", "the model name before '@' is empty"),
    ("ollama:llama3", "unknown backend kind 'ollama'"),
    ("openai:judge@notaurl", "after '@' expected a base URL starting with http:// or https://"),
    ("openai:judge@http://:8000/v1", "names no host"),
    ("openai:judge@http://127.0.0.1 :8000/v1", "contains a space"),
    ("openai:judge@http://[::1/v1", "is not a valid URL"),
    (f"openai:judge@ftp://okapi:{SECRET}@127.0.0.1/v1", "must start with http:// or https://"),
    (f"https://okapi:{SECRET}@127.0.0.1/v1", "is a URL; write openai:MODEL@https://***@127.0.0.1/v1"),
]


@pytest.mark.parametrize(("spec", "expected"), BAD_SPECS)
def test_a_bad_backend_spec_is_one_line_naming_the_option_before_anything_is_made(
    spec, expected, tmp_path, capsys
):
    rows, out = _rank_rows(tmp_path / "r.jsonl", 2), tmp_path / "out"
    code, stdout, err = _cli(
        capsys, "data", "rank", "--input", str(rows), "--out", str(out), "--backend", spec
    )
    line = _one_error(err)
    assert code == 1 and "--backend" in line and expected in line, line
    assert SECRET not in stdout + err
    assert not out.exists()  # nothing made, nothing sent


def test_a_bad_openai_base_url_in_the_environment_is_named(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "notaurl")
    rows, out = _rank_rows(tmp_path / "r.jsonl", 1), tmp_path / "out"
    code, _, err = _cli(
        capsys, "data", "rank", "--input", str(rows), "--out", str(out), "--backend", "openai:m"
    )
    line = _one_error(err)
    assert code == 1 and "OPENAI_BASE_URL: 'notaurl' has no scheme; expected an http(s) URL" in line
    assert not out.exists()


def _bad_options(tmp: Path, url: str) -> dict[str, tuple]:
    """Step calls with one bad option each, and what the error must say."""
    rank_rows, questions = _rank_rows(tmp / "r.jsonl", 2), _questions(tmp / "q.jsonl", 2)
    (tmp / "a_file").write_text("x")
    (tmp / "no_rows.json").write_text("[]")
    (tmp / "prompts").mkdir()
    (tmp / "prompts" / "rank_judgment.md").write_text("a misspelt prompt file")
    judge, out = f"openai:judge@{url}", tmp / "out"
    return {
        "concurrency 0": (create.rank, (rank_rows, out, judge), {"concurrency": 0}, r"--concurrency 0: expected"),
        "concurrency -3": (create.rank, (rank_rows, out, judge), {"concurrency": -3}, r"--concurrency -3"),
        "price -1,1": (create.rank, (rank_rows, out, judge), {"price": "-1,1"}, r"--price '-1,1'.* 0 or more"),
        "price nan,1": (create.rank, (rank_rows, out, judge), {"price": "nan,1"}, r"--price 'nan,1'"),
        "price inf,1": (create.rank, (rank_rows, out, judge), {"price": "inf,1"}, r"--price 'inf,1'"),
        "num 0": (create.generate, (out, 0, judge), {}, r"--num 0: expected"),
        "num -5": (create.generate, (out, -5, judge), {}, r"--num -5: expected"),
        "samples 0": (create.respond, (questions, out, [judge, judge]), {"samples": 0}, r"--samples 0"),
        "samples -1": (create.respond, (questions, out, [judge, judge]), {"samples": -1}, r"--samples -1"),
        "empty spec in the list": (create.respond, (questions, out, [judge, "", judge]), {}, r"empty spec"),
        "out is a file": (create.rank, (rank_rows, tmp / "a_file", judge), {}, r"--out .*a_file is a file"),
        "out under a file": (create.rank, (rank_rows, tmp / "a_file" / "o", judge), {}, r"a_file is a file"),
        "prompts missing": (
            create.rank, (rank_rows, out, judge), {"prompts_dir": tmp / "nope"}, r"--prompts .*does not exist"
        ),
        "prompts misspelt": (
            create.rank, (rank_rows, out, judge), {"prompts_dir": tmp / "prompts"}, r"none of the prompt files"
        ),
        "cache is a folder": (create.rank, (rank_rows, out, judge), {"cache": tmp}, r"--cache .* is a folder"),
        "cache under a file": (
            create.rank, (rank_rows, out, judge), {"cache": tmp / "a_file" / "c.sqlite"}, r"a_file is a file"
        ),
        "input without rows": (
            create.rank, (tmp / "no_rows.json", out, judge), {"lang": "vi"}, r"--input .*no_rows.json holds no rows"
        ),
        "judge concurrency 0": (
            judge_answers, (tmp / "vi.jsonl", tmp / "j" / "vi.jsonl", judge), {"concurrency": 0}, r"--concurrency 0"
        ),
    }  # fmt: skip


@pytest.mark.parametrize(
    "case",
    [
        "concurrency 0", "concurrency -3", "price -1,1", "price nan,1", "price inf,1", "num 0", "num -5",
        "samples 0", "samples -1", "empty spec in the list", "out is a file", "out under a file",
        "prompts missing", "prompts misspelt", "cache is a folder", "cache under a file", "input without rows",
        "judge concurrency 0",
    ],
)  # fmt: skip
def test_a_bad_option_value_is_one_error_naming_it_before_any_request(case, tmp_path):
    with FakeLLMServer(_judge) as server:
        step, args, kw, expected = _bad_options(tmp_path, server.url)[case]
        with pytest.raises(OkapiError, match=expected):
            step(*args, progress=False, **kw)
        assert server.count == 0
    assert not (tmp_path / "out").exists() and not (tmp_path / "j").exists()  # nothing made


# -- one writer per output ------------------------------------------------------------------------------


def test_a_second_run_into_a_locked_output_is_refused_with_the_holders_pid(tmp_path, capsys):
    rows, out = _rank_rows(tmp_path / "r.jsonl", 2), tmp_path / "out"
    with FakeLLMServer(_judge) as server:
        argv = _rank_argv(rows, out, server.url)
        with locked(out / RANKED):  # another writer, on its own open file: flock refuses this run
            code, _, err = _cli(capsys, *argv)
        line = _one_error(err)
        assert code == 1 and f"is being written by process {os.getpid()}" in line and RANKED in line
        assert server.count == 0 and not (out / RANKED).exists()
        assert _cli(capsys, *argv)[0] == 0  # released: the run goes ahead
    assert sorted(r["id"] for r in _lines(out / RANKED)) == ["q0", "q1"]


def test_two_processes_into_one_output_write_every_row_once(tmp_path, capsys):
    """A real second process: the first holds the output while its requests wait; the second is refused."""
    rows, out = _rank_rows(tmp_path / "r.jsonl", 3), tmp_path / "out"
    gate = threading.Event()

    def slow_judge(messages: list[dict]) -> str:
        gate.wait(30)
        return _judge(messages)

    with FakeLLMServer(slow_judge) as server:
        argv = _rank_argv(rows, out, server.url)
        first = subprocess.Popen(
            [sys.executable, "-m", "okapi_hf.cli", *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 60
            while server.count == 0:  # the first run is mid-way, holding its output
                assert first.poll() is None and time.monotonic() < deadline, first.stderr.read()
                time.sleep(0.05)
            opener = threading.Timer(3.0, gate.set)  # were the second run let in, it would finish too
            opener.start()
            code, _, err = _cli(capsys, *argv)
            assert code == 1 and f"is being written by process {first.pid}" in _one_error(err)
            gate.set()
            assert first.wait(60) == 0, first.stderr.read()
        finally:
            gate.set()
            first.kill()
            first.wait()
    ids = [r["id"] for r in _lines(out / RANKED)]
    assert sorted(ids) == ["q0", "q1", "q2"]


# -- merging shards --------------------------------------------------------------------------------------


def _shards(folder: Path, n: int, rows_each: int) -> Path:
    """``n`` complete shard files of ``folder/vi.jsonl`` (with their done markers)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        _write(
            folder / f"vi.shard-{i}-of-{n}.jsonl", [{"id": f"{i}-{k}", "text": VI} for k in range(rows_each)]
        )
        (folder / f"vi.shard-{i}-of-{n}.done.json").write_text(json.dumps({"total": rows_each, "step": "t"}))
    return folder / "vi.jsonl"


@pytest.mark.parametrize(("shards", "expected"), [(0, "--shards 0: expected"), (-1, "--shards -1: expected"),
                                                   (4, re.escape("the shard files there are of 2 shard(s): pass --shards 2"))])  # fmt: skip
def test_a_wrong_shard_count_leaves_a_complete_output_as_it_was(shards, expected, tmp_path, capsys):
    out = _shards(tmp_path, 2, 3)
    assert merge_shards(out, 2) == 6
    before = out.read_bytes()
    with pytest.raises(OkapiError, match=expected):
        merge_shards(out, shards)
    code, _, err = _cli(capsys, "data", "merge", str(out), f"--shards={shards}")
    assert code != 0 and "Traceback" not in err
    assert out.read_bytes() == before


def test_merging_shards_that_kept_nothing_writes_nothing(tmp_path):
    out = _shards(tmp_path, 2, 0)
    out.write_text('{"id": "older", "text": "kept from an earlier merge"}\n')
    with pytest.raises(OkapiError, match="kept no row"):
        merge_shards(out, 2)
    assert _lines(out) == [{"id": "older", "text": "kept from an earlier merge"}]


def test_a_merge_into_a_locked_output_is_refused(tmp_path):
    out = _shards(tmp_path, 2, 1)
    with locked(out), pytest.raises(OkapiError, match=f"process {os.getpid()}"):
        merge_shards(out, 2)
    assert not out.exists()


def test_a_merge_on_a_full_disk_keeps_the_old_output(small_disk, tmp_path):
    disk = small_disk(256)
    out = _shards(disk, 2, 40)
    out.write_text('{"id": "older"}\n')
    fill_disk(disk)
    with pytest.raises(OkapiError, match=f"no space left on the disk of {out}.*as it was before"):
        merge_shards(out, 2)
    assert _lines(out) == [{"id": "older"}]
    assert not [p for p in disk.iterdir() if p.name.endswith(".tmp")]


# -- a step that keeps nothing --------------------------------------------------------------------------


def test_a_step_that_keeps_no_row_fails_saying_why(tmp_path, capsys):
    rows = _write(tmp_path / "en.jsonl", [{"id": f"e{i}", "instruction": "Name a river", "output": "Mekong"}
                                           for i in range(3)])  # fmt: skip
    out = tmp_path / "out"
    with FakeLLMServer(lambda messages: "Sorry, I can only answer in English today.") as server:
        flags = [
            "--input",
            str(rows),
            "--langs",
            "vi",
            "--out",
            str(out),
            "--backend",
            f"openai:t@{server.url}",
        ]
        code, _, err = _cli(capsys, "data", "translate", *flags)
        line = _one_error(err)
        assert code == 1 and "no row kept: all 3 were rejected" in line and "translation not in" in line
        assert str(out / "multilingual-alpaca-52k" / "vi.rejected.jsonl") in line
        # an empty shard is no failure: it just had no rows to work on
        assert _cli(capsys, "data", "translate", *flags, "--shard", "3/4")[0] == 0


def test_generate_that_keeps_no_task_leaves_the_earlier_tasks(tmp_path, capsys):
    out = tmp_path / "out"
    (out / GENERATED).parent.mkdir(parents=True)
    earlier = _write(out / GENERATED, [{"id": "en-gen-0"}])
    before = earlier.read_bytes()
    with FakeLLMServer(lambda messages: "I cannot think of any tasks.") as server:
        argv = ["data", "generate", "--num", "3", "--out", str(out), "--backend", f"openai:g@{server.url}"]
        code, _, err = _cli(capsys, *argv)
    line = _one_error(err)
    assert code == 1 and "generate: no task kept" in line and "nothing written to" in line
    assert earlier.read_bytes() == before


# -- a full disk ----------------------------------------------------------------------------------------


_ANSWERS = iter(range(10**9))


def _big_answers(messages: list[dict]) -> str:
    """About 2 KB of Vietnamese, different each time."""
    return f"{VI} " * 30 + f"số {next(_ANSWERS)}"


def _respond_args(rows: Path, out: Path, url: str, *extra: str) -> list[str]:
    spec = f"openai:a@{url},openai:b@{url}"
    return ["data", "respond", "--input", str(rows), "--out", str(out), "--backend", spec, *extra]


def test_a_full_disk_under_the_output_keeps_whole_rows_and_a_later_run_resumes(small_disk, tmp_path, capsys):
    disk, rows = small_disk(512), _questions(tmp_path / "q.jsonl", 40)
    out = disk / "out"
    target = out / "responses" / "vi.jsonl"
    with FakeLLMServer(_big_answers) as server:
        argv = _respond_args(
            rows, out, server.url, "--cache", str(tmp_path / "cache.sqlite"), "--concurrency", "4"
        )
        out.mkdir()
        filler = fill_disk(disk, leave=40 * 1024)
        code, _, err = _cli(capsys, *argv)
        line = _one_error(err)
        assert (
            code == 1 and f"no space left on the disk of {target}" in line and "row(s) done are kept" in line
        )
        kept = _lines(target)  # whole rows only: no line cut in half
        assert 0 < len(kept) < 40
        filler.unlink()
        assert _cli(capsys, *argv)[0] == 0
    ids = [r["id"] for r in _lines(target)]
    assert len(ids) == 40 and sorted(set(ids)) == sorted(ids)


def test_a_full_disk_under_the_cache_is_one_line_and_the_cache_stays_usable(small_disk, tmp_path, capsys):
    disk, rows, out = small_disk(8192), _questions(tmp_path / "q.jsonl", 40), tmp_path / "out"
    cache = disk / "cache.sqlite"
    with FakeLLMServer(_big_answers) as server:
        argv = _respond_args(rows, out, server.url, "--cache", str(cache), "--concurrency", "8")
        LLMClient(make_backend(f"openai:a@{server.url}"), cache=cache).close()  # an existing cache
        filler = fill_disk(disk, leave=128 * 1024)  # room to open it, not for every answer
        code, _, err = _cli(capsys, *argv)
        line = _one_error(err)
        assert code == 1 and f"no space left on the disk of {cache} (the LLM request cache" in line
        assert err.count("okapi-hf: error") == 1 and server.count > 0, line  # answers came: a put failed
        filler.unlink()
        code, _, err = _cli(capsys, *argv)
        assert code == 0, err
    with sqlite3.connect(cache) as db:
        assert db.execute("SELECT COUNT(*) FROM responses").fetchone()[0] == 80
    assert len(_lines(out / "responses" / "vi.jsonl")) == 40


def test_a_cache_created_on_a_full_disk_says_the_disk_is_full(small_disk, tmp_path, capsys):
    disk, rows = small_disk(128), _rank_rows(tmp_path / "r.jsonl", 1)
    fill_disk(disk)
    with FakeLLMServer(_judge) as server:
        argv = _rank_argv(rows, tmp_path / "o", server.url)
        code, _, err = _cli(capsys, *argv, "--cache", str(disk / "c.sqlite"))
        assert server.count == 0
    line = _one_error(err)
    assert code == 1 and f"no space left on the disk of {disk / 'c.sqlite'}" in line


def test_generate_on_a_full_disk_keeps_the_earlier_file(small_disk, tmp_path, capsys):
    disk = small_disk(256)
    target = disk / "out" / GENERATED
    target.parent.mkdir(parents=True)
    target.write_text('{"id": "en-gen-0"}\n')

    def tasks(messages: list[dict]) -> str:
        n = len(messages[-1]["content"]) + int(time.monotonic_ns() % 100000)
        words = " ".join(f"w{n}x{k}" for k in range(12))
        return "\n\n".join(f"### Task {i}\nInstruction: Explain {words} {i}\nInput: \nOutput: {VI * 10}"
                           for i in range(1, 3))  # fmt: skip

    with FakeLLMServer(tasks) as server:
        (disk / "out" / GENERATED).with_name(f".{Path(GENERATED).name}.lock").write_text(
            "1234"
        )  # left by an earlier run: its page is reused
        fill_disk(disk)
        argv = [
            "data",
            "generate",
            "--num",
            "30",
            "--out",
            str(disk / "out"),
            "--backend",
            f"openai:g@{server.url}",
        ]
        code, _, err = _cli(capsys, *argv, "--cache", str(tmp_path / "c.sqlite"))
        assert server.count >= 15  # the tasks were made: the final write is what failed
    line = _one_error(err)
    assert code == 1 and f"no space left on the disk of {target}" in line and "cached" in line
    assert target.read_text() == '{"id": "en-gen-0"}\n'


# -- errors that running again cannot fix ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "advice"),
    [
        ("401", "the endpoint refused the API key: set OPENAI_API_KEY"),
        ("403", "the API key is not allowed to use this model"),
        ("404", "check the model name (openai:MODEL@URL)"),
    ],
)
def test_a_refused_key_or_unknown_model_stops_at_once_saying_what_to_change(kind, advice, tmp_path, capsys,
                                                                           monkeypatch):  # fmt: skip
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    rows, out = _rank_rows(tmp_path / "r.jsonl", 20), tmp_path / "out"
    with FakeLLMServer(_judge, failures=lambda i, body: kind) as server:
        spec = f"openai:j@http://okapi:{SECRET2}@{_host(server)}"
        argv = [
            "data",
            "rank",
            "--input",
            str(rows),
            "--out",
            str(out),
            "--backend",
            spec,
            "--concurrency",
            "1",
        ]
        code, stdout, err = _cli(capsys, *argv)
        assert server.count < 5  # not one refused request per row
    line = _one_error(err)
    assert code == 1 and f"HTTP {kind}" in line and advice in line
    assert "run the command again" not in stdout + err and "run the same command again" not in stdout + err
    assert SECRET not in stdout + err and SECRET2 not in stdout + err


def test_a_prompt_too_long_fails_its_row_saying_what_to_change(tmp_path, capsys):
    rows, out = _rank_rows(tmp_path / "r.jsonl", 3, long=(1,)), tmp_path / "out"

    def too_long(index: int, body: dict) -> str | None:
        return "too_long" if any("LONG" in m["content"] for m in body["messages"]) else None

    with FakeLLMServer(_judge, failures=too_long) as server:
        argv = _rank_argv(rows, out, server.url)
        code, stdout, err = _cli(capsys, *argv)
    line = _one_error(err)
    assert code == 1 and "1 row(s) failed" in line and "maximum context length" in line
    assert "lower --max-tokens" in line and "running it again unchanged fails the same way" in line
    assert "run the command again" not in stdout + err and "run the same command again" not in stdout + err
    assert sorted(r["id"] for r in _lines(out / RANKED)) == ["q0", "q2"]


def test_the_judge_stops_on_a_refused_key_saying_what_to_change(tmp_path):
    answers = _write(
        tmp_path / "vi.jsonl",
        [
            {"id": f"vi-{i}", "question_id": i, "lang": "vi", "turns": ["Chào?"], "answers": [VI]}
            for i in range(9)
        ],
    )
    with FakeLLMServer(failures=lambda i, body: "401") as server:
        with pytest.raises(LLMError, match=r"HTTP 401.*set OPENAI_API_KEY") as info:
            judge_answers(
                answers, tmp_path / "j" / "vi.jsonl", f"openai:j@{server.url}", concurrency=1, progress=False
            )
        assert server.count < 5
    assert "run the same command again" not in str(info.value)
