"""The step runner: resumable JSON Lines output, rejections counted, shards and their merge, prompts."""

from __future__ import annotations

import asyncio
import json

import pytest

from okapi_hf.create.llm import LLMError
from okapi_hf.create.prompts import load_prompt, prompt_names, render
from okapi_hf.create.runner import (
    RowRejected,
    done_marker,
    merge_shards,
    parse_shard,
    read_rows,
    rejected_path,
    run_rows,
    shard_path,
    take_shard,
)
from okapi_hf.errors import DataError

ROWS = [{"id": f"r{i}", "instruction": f"task {i}"} for i in range(10)]


def _lines(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


async def _upper(row):
    await asyncio.sleep(0)
    if row["id"] == "r3":
        raise RowRejected("no good")
    if row["id"] == "r5":
        raise LLMError("endpoint down")
    return {"instruction": row["instruction"].upper()}


async def _ok(row):
    return {"instruction": row["instruction"].upper()}


def test_every_row_is_written_once_and_losses_are_counted(tmp_path):
    out = tmp_path / "out" / "vi.jsonl"
    report = asyncio.run(run_rows(ROWS, _upper, out, step="upper", progress=False, max_in_flight=3))
    rows = _lines(out)
    assert sorted(r["id"] for r in rows) == sorted(f"r{i}" for i in range(10) if i not in (3, 5))
    assert {r["id"]: r["instruction"] for r in rows}["r7"] == "TASK 7"
    [rejection] = _lines(rejected_path(out))
    assert (rejection["id"], rejection["reason"]) == ("r3", "no good") and rejection["source_sha"]
    assert not done_marker(out).exists()  # a row failed: the run is not complete
    assert (report.written, report.resumed, dict(report.rejected), dict(report.failed)) == (
        8,
        0,
        {"no good": 1},
        {"endpoint down": 1},
    )
    assert "1 rejected, 1 failed (of 10)" in report.summary() and "run the command again" in report.summary()

    # a second run only retries the failed row: written and rejected rows are not worked on again
    seen = []

    async def record(row):
        seen.append(row["id"])
        return {"instruction": "again"}

    report = asyncio.run(run_rows(ROWS, record, out, step="upper", progress=False))
    assert seen == ["r5"] and report.resumed == 9 and report.written == 1
    assert sorted(r["id"] for r in _lines(out)) == sorted(f"r{i}" for i in range(10) if i != 3)
    assert json.loads(done_marker(out).read_text())["total"] == 10


def test_rejections_are_tried_again_when_the_settings_change(tmp_path):
    out = tmp_path / "vi.jsonl"
    seen = []

    async def picky(row):
        seen.append(row["id"])
        raise RowRejected("too few responses")

    asyncio.run(run_rows(ROWS[:3], picky, out, step="s", settings={"samples": 1}, progress=False))
    asyncio.run(run_rows(ROWS[:3], picky, out, step="s", settings={"samples": 1}, progress=False))
    assert len(seen) == 3  # same settings: the rejections stand
    report = asyncio.run(run_rows(ROWS[:3], _upper, out, step="s", settings={"samples": 3}, progress=False))
    assert report.retried == 3 and report.written == 3 and not rejected_path(out).exists()
    assert "3 earlier rejection(s) tried again" in report.summary()


def test_an_input_that_changed_since_the_last_run_is_an_error(tmp_path):
    out = tmp_path / "vi.jsonl"
    asyncio.run(run_rows(ROWS[:3], _upper, out, step="s", progress=False))
    changed = [{**ROWS[0], "instruction": "something else"}, *ROWS[1:3]]
    with pytest.raises(DataError, match=r"row 'r0' was made from a different input row"):
        asyncio.run(run_rows(changed, _upper, out, step="s", progress=False))


def test_a_row_the_step_cannot_use_is_rejected_not_retried(tmp_path):
    async def malformed(row):
        raise DataError(f"row {row['id']}: no instruction")

    report = asyncio.run(run_rows(ROWS[:2], malformed, tmp_path / "o.jsonl", step="s", progress=False))
    assert dict(report.rejected) == {"row r0: no instruction": 1, "row r1: no instruction": 1}
    assert not report.failed


def test_a_line_cut_short_by_a_kill_is_dropped_and_redone(tmp_path):
    out = tmp_path / "vi.jsonl"
    out.write_text(
        json.dumps({"id": "r0", "instruction": "TASK 0"}) + "\n" + '{"id": "r1", "instr', encoding="utf-8"
    )
    report = asyncio.run(run_rows(ROWS[:3], _upper, out, step="upper", progress=False))
    assert report.resumed == 1 and report.written == 2
    ids = [r["id"] for r in _lines(out)]
    assert ids[0] == "r0" and sorted(ids) == ["r0", "r1", "r2"]


def test_a_hand_broken_line_is_an_error_naming_it(tmp_path):
    out = tmp_path / "vi.jsonl"
    out.write_text('{"id": "r0"}\nnot json\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"vi\.jsonl, line 2: not JSON"):
        asyncio.run(run_rows(ROWS, _upper, out, step="upper", progress=False))


def test_shards_split_every_row_once_and_merge_back(tmp_path):
    out = tmp_path / "vi.jsonl"
    for i in range(3):
        shard = parse_shard(f"{i}/3")
        part = take_shard(ROWS, shard)
        assert [r["id"] for r in part] == [f"r{k}" for k in range(i, 10, 3)]
        asyncio.run(run_rows(part, _upper, shard_path(out, shard), step="upper", progress=False))
    assert shard_path(out, (1, 3)).name == "vi.shard-1-of-3.jsonl"
    with pytest.raises(DataError, match=r"shard vi\.shard-2-of-3\.jsonl is incomplete \(2 of \? rows done"):
        merge_shards(out, 3)  # r5 failed in shard 2: merging now would lose it
    asyncio.run(
        run_rows(take_shard(ROWS, (2, 3)), _ok, shard_path(out, (2, 3)), step="upper", progress=False)
    )
    assert merge_shards(out, 3) == 9
    assert sorted(r["id"] for r in _lines(out)) == sorted(f"r{i}" for i in range(10) if i != 3)
    assert [r["id"] for r in _lines(rejected_path(out))] == ["r3"]


def test_merge_refuses_missing_shards_and_repeated_ids(tmp_path):
    out = tmp_path / "vi.jsonl"
    shard_path(out, (0, 2)).write_text('{"id": "a"}\n', encoding="utf-8")
    with pytest.raises(DataError, match="missing shard file"):
        merge_shards(out, 2)
    shard_path(out, (1, 2)).write_text('{"id": "a"}\n', encoding="utf-8")
    for i in range(2):
        done_marker(shard_path(out, (i, 2))).write_text('{"total": 1}', encoding="utf-8")
    with pytest.raises(DataError, match="'a' is in both"):
        merge_shards(out, 2)


@pytest.mark.parametrize("spec", ["3/3", "a/b", "1", "-1/2"])
def test_bad_shard_specs_are_refused(spec):
    with pytest.raises(DataError, match="expected i/n"):
        parse_shard(spec)


def test_read_rows_gives_ids_and_refuses_repeats(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"instruction": "a"}\n{"instruction": "b", "id": 7}\n', encoding="utf-8")
    assert [r["id"] for r in read_rows(path)] == ["rows-1", "7"]
    path.write_text('{"id": "x"}\n{"id": "x"}\n', encoding="utf-8")
    with pytest.raises(DataError, match="row 2: id 'x' repeats row 1"):
        read_rows(path)
    path.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(DataError, match="row 1: expected a JSON object"):
        read_rows(path)
    with pytest.raises(DataError, match="does not exist"):
        read_rows(tmp_path / "missing.jsonl")


def test_prompts_are_shipped_files_that_a_folder_can_replace(tmp_path):
    assert {"generate", "translate_system", "rank_translate", "rank_judge", "rank_retry"} <= set(
        prompt_names()
    )
    shipped = render("rank_judge", None, k=3, language="Vietnamese", example="1, 2, 3")
    assert shipped.endswith("Ranking: [[1, 2, 3]]") and "Vietnamese" in shipped
    (tmp_path / "rank_judge.md").write_text("Rank {{ k }} in {{ language }}.", encoding="utf-8")
    assert render("rank_judge", tmp_path, k=3, language="Hindi", example="") == "Rank 3 in Hindi."
    assert "Ranking" in render(
        "rank_retry", tmp_path, k=2, problem="x", example="1, 2"
    )  # others stay shipped
    with pytest.raises(DataError, match=r"prompt 'rank_judge': 'language' is undefined"):
        render("rank_judge", None, k=3, example="1")
    with pytest.raises(DataError, match="no prompt 'nope'"):
        load_prompt("nope")
    (tmp_path / "generate.md").write_text("{% for %}", encoding="utf-8")
    with pytest.raises(DataError, match=r"generate\.md, line 1: not a valid Jinja template"):
        load_prompt("generate", tmp_path)


def test_read_rows_takes_parquet_files_and_built_datasets(tmp_path):
    from okapi_hf.data.build import build_dataset
    from okapi_hf.data.sample import write_sample_raw

    write_sample_raw(tmp_path / "raw", ["vi"], n_sft=20, n_ranking=6, n_rl=8)
    build_dataset(tmp_path / "raw", tmp_path / "built", ["vi"], ["sft", "ranking"], progress=False)
    rows = read_rows(f"{tmp_path / 'built'}:vi-ranking")
    assert rows and all(len(r["responses"]) >= 2 and r["id"].startswith("vi-ranking-") for r in rows)
    validation = read_rows(f"{tmp_path / 'built'}:vi:validation")
    [parquet] = (tmp_path / "built" / "data" / "vi" / "sft").glob("validation-*.parquet")
    assert read_rows(parquet) == validation and len(validation) == 2
    with pytest.raises(DataError, match="cannot read"):
        read_rows(f"{tmp_path / 'built'}:vi-nope")
    with pytest.raises(DataError, match="DATASET:CONFIG"):
        read_rows(tmp_path / "nothing.jsonl")
