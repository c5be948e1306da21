"""Bad raw input: each case names the file and row, and nothing is dropped without a count."""

import json

import pytest

from okapi_hf.data.raw import ingest_file, raw_path, read_records
from okapi_hf.data.schema import SUBSETS
from okapi_hf.errors import DataError

SFT, RANKING, RL = SUBSETS["sft"], SUBSETS["ranking"], SUBSETS["rl"]


def _sft(i, **kw):
    return {"instruction": f"Câu hỏi {i}", "input": "", "output": f"Trả lời {i}", **kw}


def test_json_array_and_json_lines_read_the_same(write_raw):
    rows = [_sft(i) for i in range(3)]
    a, _ = ingest_file(write_raw("sft", "vi", rows), SFT, "vi")
    b, _ = ingest_file(write_raw("sft", "vi", rows, jsonl=True), SFT, "vi")
    assert a == b
    assert a[0] == {
        "id": "vi-sft-1",
        "lang": "vi",
        "instruction": "Câu hỏi 0",
        "input": "",
        "output": "Trả lời 0",
    }


def test_malformed_json_names_file_line_and_column(write_raw):
    path = write_raw(
        "sft", "vi", text='[\n  {"instruction": "a", "input": "", "output": "b"},\n  {"instruction": }\n]'
    )
    with pytest.raises(DataError) as err:
        read_records(path)
    assert str(path) in str(err.value)
    assert "line 3, column 19" in str(err.value)


def test_byte_offset_counts_utf8_bytes(write_raw):
    text = '[{"instruction": "Câu hỏi", "input": "", "output": }]'
    path = write_raw("sft", "vi", text=text)
    column = text.index("}]") + 1  # json reports the position of the unexpected "}"
    byte = len(text[: column - 1].encode())
    assert byte == column - 1 + 3  # three two-byte letters before it
    with pytest.raises(DataError, match=rf"line 1, column {column} \(byte {byte}\)"):
        read_records(path)


def test_bom_crlf_blank_lines_and_unicode_separators_are_read(write_raw):
    rows = [_sft(0, output="a\u2028b\u2029c\x85d"), _sft(1)]
    lines = [json.dumps(r, ensure_ascii=False) for r in rows]
    path = write_raw("sft", "vi", text="")
    path.write_bytes(b"\xef\xbb\xbf" + f"{lines[0]}\r\n\r\n{lines[1]}\r\n".encode())
    assert read_records(path) == [(1, rows[0]), (3, rows[1])]
    path.write_bytes(
        b"\xef\xbb\xbf" + json.dumps(rows, ensure_ascii=False, indent=1).replace("\n", "\r\n").encode()
    )
    assert read_records(path) == [(1, rows[0]), (2, rows[1])]


def test_non_utf8_file_is_a_clear_error(write_raw):
    path = write_raw("sft", "vi", text="")
    path.write_bytes('[{"instruction": "café"}]'.encode("latin-1"))
    with pytest.raises(DataError, match=r"not UTF-8 text \(invalid byte at offset 21\)"):
        read_records(path)


def test_malformed_json_lines_names_the_line(write_raw):
    path = write_raw("sft", "vi", text='{"instruction": "a", "input": "", "output": "b"}\n{oops\n')
    with pytest.raises(DataError, match=r"vi.jsonl?: malformed JSON Lines at line 2"):
        read_records(path)


def test_empty_file_is_an_error(write_raw):
    path = write_raw("sft", "vi", text="  \n")
    with pytest.raises(DataError, match=rf"{path}: file is empty"):
        ingest_file(path, SFT, "vi")


def test_missing_fields_wrong_types_and_duplicates_are_counted_by_reason(write_raw):
    rows = [
        _sft(0),
        {"instruction": "no output", "input": ""},  # row 2
        _sft(2, output=["a", "list"]),  # row 3
        _sft(0),  # row 4: duplicate of row 1
        "just a string",  # row 5
        _sft(5, output="   "),  # row 6
        _sft(6, output=42),  # kept, cast to "42"
        {"instruction": "no input key", "output": "fine"},  # kept, input ""
    ]
    out, report = ingest_file(write_raw("sft", "vi", rows), SFT, "vi")
    assert report.read == 8 and report.written == 3 and report.n_skipped == 5
    assert report.skipped == {
        "missing field 'output'": [2],
        "field 'output' is a list, expected a string": [3],
        "duplicate row": [4],
        "not a JSON object (got str)": [5],
        "empty field 'output'": [6],
    }
    assert report.cast == 1
    assert [r["output"] for r in out] == ["Trả lời 0", "42", "fine"]
    assert out[2]["input"] == ""
    text = report.describe()
    assert "rows 2" in text and "duplicate row (rows 4)" in text


def test_non_string_values_are_cast_like_the_original_loader(write_raw):
    rows = [
        {"instruction": "2+2?", "input": 7, "output": 4},
        {"instruction": "ok?", "input": "", "output": True},
    ]
    out, report = ingest_file(write_raw("rl", "vi", rows), RL, "vi")
    assert [(r["input"], r["output"]) for r in out] == [("7", "4"), ("", "True")]
    assert report.cast == 3 and report.n_skipped == 0


def test_file_with_no_usable_rows_is_an_error(write_raw):
    path = write_raw("sft", "vi", [{"instruction": "x"}])
    with pytest.raises(DataError, match=r"no usable rows \(1 read, 1 skipped\)") as err:
        ingest_file(path, SFT, "vi")
    assert "missing field 'input'" not in str(err.value) and "missing field 'output'" in str(err.value)


def test_ranking_pairs_become_one_ranking_with_bad_groups_counted(write_raw):
    def pair(q, a, b):
        return {"instruction": q, "input": "", "prefered_output": a, "rejected_output": b}

    rows = [
        pair("q1", "b", "c"),
        pair("q1", "a", "b"),
        pair("q1", "a", "c"),  # rows 1-3: a > b > c
        pair("q2", "x", "y"),
        pair("q2", "y", "x"),  # rows 4-5: contradiction
        pair("q1", "a", "b"),  # row 6: duplicate pair
        {"instruction": "q3", "input": "", "prefered_output": "p"},  # row 7: missing rejected_output
    ]
    out, report = ingest_file(write_raw("ranking", "ru", rows), RANKING, "ru")
    assert out == [
        {"id": "ru-ranking-1", "lang": "ru", "instruction": "q1", "input": "", "responses": ["a", "b", "c"]}
    ]
    assert report.read == 7 and report.written == 1
    assert report.skipped == {
        "duplicate row": [6],
        "missing field 'rejected_output'": [7],
        "contradictory pairs (the preferences form a cycle)": [4, 5],
    }


def test_kwise_ranking_rows_are_taken_as_they_are_beside_pairs(write_raw):
    """`okapi-hf data rank` writes K-wise rows; a file may also mix them with release pairs."""
    rows = [
        {"instruction": "q1", "input": "", "responses": ["a", "b", "c", "d"]},  # row 1
        {"instruction": "q2", "input": "x", "prefered_output": "p", "rejected_output": "r"},  # row 2
        {"instruction": "q3", "input": "", "responses": ["only one"]},  # row 3: too few
        {"instruction": "q4", "input": "", "responses": ["a", 2]},  # row 4: not strings
        {"instruction": "q1", "input": "", "responses": ["a", "b", "c", "d"]},  # row 5: duplicate
        {"instruction": "q6", "input": "", "responses": ["same", "same"]},  # row 6: not distinct
    ]
    out, report = ingest_file(write_raw("ranking", "vi", rows, jsonl=True), RANKING, "vi")
    assert [(r["id"], r["responses"]) for r in out] == [
        ("vi-ranking-1", ["a", "b", "c", "d"]),
        ("vi-ranking-2", ["p", "r"]),
    ]
    assert report.skipped == {
        "field 'responses' needs at least 2 distinct responses (got 1)": [3, 6],
        "field 'responses' must be a list of non-empty strings": [4],
        "duplicate row": [5],
    }


def test_raw_path_accepts_the_release_code_and_names_what_is_missing(write_raw, tmp_path):
    write_raw("sft", "jp", [_sft(0)])
    assert raw_path(tmp_path / "raw", SFT, "ja").name == "jp.json"
    with pytest.raises(DataError) as err:
        raw_path(tmp_path / "raw", RL, "vi")
    assert "multilingual-rl-tuning-64k/vi.json" in str(err.value)
