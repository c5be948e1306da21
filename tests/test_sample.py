"""The sample data generator writes genuine, Okapi-format raw files that tests and demos rely on."""

from __future__ import annotations

import json
import re
import unicodedata
from collections import defaultdict
from itertools import combinations, pairwise
from pathlib import Path

import pytest

from okapi_hf.data.sample import SAMPLE_LANGS, sample_rows, write_sample_raw
from okapi_hf.data.schema import SUBSETS

COUNTS = {"sft": 10, "ranking": 5, "rl": 7}


def _write(out: Path, **kw) -> Path:
    return write_sample_raw(out, n_sft=COUNTS["sft"], n_ranking=COUNTS["ranking"], n_rl=COUNTS["rl"], **kw)


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def _group_pairs(rows: list[dict]) -> dict[tuple[str, str], list[tuple[str, str]]]:
    groups: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    for row in rows:
        groups[row["instruction"], row["input"]].append((row["prefered_output"], row["rejected_output"]))
    return groups


def test_layout_counts_and_json_arrays(tmp_path: Path) -> None:
    assert _write(tmp_path) == tmp_path
    assert len(_files(tmp_path)) == 3 * len(SAMPLE_LANGS)
    for lang in SAMPLE_LANGS:
        for name, subset in SUBSETS.items():
            path = tmp_path / subset.release_folder / f"{lang}.json"
            text = path.read_text(encoding="utf-8")
            assert text.startswith("[") and "\n" not in text  # one indent-free JSON array
            rows = json.loads(text)
            expected = 6 * COUNTS[name] if name == "ranking" else COUNTS[name]
            assert len(rows) == expected
            assert all(set(row) == set(subset.raw_fields) for row in rows)
            assert rows == sample_rows(lang, name, COUNTS[name])  # sample_rows is what gets written


def test_jsonl_and_comma_separated_langs(tmp_path: Path) -> None:
    _write(tmp_path, langs="ru,zh", jsonl=True)
    assert [p.name for p in _files(tmp_path)] == ["ru.jsonl", "zh.jsonl"] * 3
    path = tmp_path / SUBSETS["ranking"].release_folder / "zh.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 6 * COUNTS["ranking"]
    assert [json.loads(line) for line in lines] == sample_rows("zh", "ranking", COUNTS["ranking"])
    assert "\\u" not in lines[0]  # written with ensure_ascii=False


@pytest.mark.parametrize("lang", SAMPLE_LANGS)
@pytest.mark.parametrize("subset", ["sft", "rl"])
def test_unique_keys_with_and_without_input(lang: str, subset: str) -> None:
    rows = sample_rows(lang, subset, 60)
    keys = [(r["instruction"], r["input"]) for r in rows]
    assert len(set(keys)) == len(rows) == 60
    empty = sum(r["input"] == "" for r in rows)
    assert 0.3 * len(rows) <= empty <= 0.7 * len(rows)
    assert all(isinstance(r["instruction"], str) and isinstance(r["input"], str) for r in rows)


@pytest.mark.parametrize("lang", SAMPLE_LANGS)
def test_ranking_pairs_form_one_total_order(lang: str) -> None:
    n = 40
    rows = sample_rows(lang, "ranking", n)
    groups = _group_pairs(rows)
    assert len(groups) == n
    assert sum(key[1] == "" for key in groups) not in (0, n)  # with and without input
    for key, pairs in groups.items():
        responses = {r for pair in pairs for r in pair}
        assert len(pairs) == 6 and len(responses) == 4, key
        assert {frozenset(p) for p in pairs} == {frozenset(c) for c in combinations(responses, 2)}
        wins = {r: sum(best == r for best, _ in pairs) for r in responses}
        assert sorted(wins.values()) == [0, 1, 2, 3], key  # strict, so no cycles
        assert all(wins[better] > wins[worse] for better, worse in pairs)
        ranked = sorted(responses, key=wins.__getitem__, reverse=True)
        assert ranked[1] in ranked[0]  # the complete answer contains the terse one
    # pairs are shuffled across instructions, not stored in blocks of six
    changes = sum(a["instruction"] != b["instruction"] or a["input"] != b["input"] for a, b in pairwise(rows))
    assert changes > 2 * n


def _letters(text: str) -> list[str]:
    return [c for c in text if unicodedata.category(c)[0] in "LM"]  # letters and combining signs


BLOCKS = {
    "ru": (0x0400, 0x04FF),
    "zh": (0x4E00, 0x9FFF),
    "ar": (0x0600, 0x06FF),
    "hi": (0x0900, 0x097F),
    "bn": (0x0980, 0x09FF),
}


@pytest.mark.parametrize("lang", SAMPLE_LANGS)
def test_text_is_in_the_language_script(lang: str) -> None:
    rows = sample_rows(lang, "sft", 80)
    texts = [r["instruction"] for r in rows] + [r["output"] for r in rows]
    assert all(unicodedata.normalize("NFC", t) == t for t in texts + [r["input"] for r in rows])
    letters = _letters(" ".join(texts))
    assert len(letters) > 500
    if lang == "vi":
        assert all(unicodedata.name(c).startswith("LATIN") for c in letters)
        accented = [c for c in letters if not c.isascii()]
        assert len(accented) > 0.15 * len(letters)
        assert {"ơ", "ư", "đ"} & set(letters) and any(0x1EA0 <= ord(c) <= 0x1EF9 for c in letters)
    else:
        low, high = BLOCKS[lang]
        in_block = sum(low <= ord(c) <= high for c in letters)
        assert in_block > 0.95 * len(letters)


def test_determinism(tmp_path: Path) -> None:
    a, b, c = (_write(tmp_path / name, seed=seed) for name, seed in (("a", 0), ("b", 0), ("c", 1)))
    files_a = _files(a)
    assert [p.relative_to(a) for p in files_a] == [p.relative_to(b) for p in _files(b)]
    for path in files_a:
        rel = path.relative_to(a)
        assert path.read_bytes() == (b / rel).read_bytes()
        assert path.read_bytes() != (c / rel).read_bytes()


@pytest.mark.parametrize("lang", SAMPLE_LANGS)
def test_some_rl_outputs_are_int_answers(lang: str) -> None:
    rows = sample_rows(lang, "rl", 30)
    ints = [r for r in rows if isinstance(r["output"], int)]
    assert ints and all(isinstance(r["output"], str) for r in rows if r not in ints)
    # only a few: other arithmetic rows keep their sentence answer (two numbers asked, three said)
    assert any(
        len(re.findall(r"\d+", r["instruction"])) == 2 and len(re.findall(r"\d+", r["output"])) == 3
        for r in rows
        if r not in ints
    )
    for row in ints:
        a, b = map(int, re.findall(r"\d+", row["instruction"]))
        assert row["output"] in (a + b, a * b) and row["input"] == ""


@pytest.mark.parametrize("lang", SAMPLE_LANGS)
def test_arithmetic_answers_are_correct(lang: str) -> None:
    checked = 0
    for row in sample_rows(lang, "sft", 100):
        asked = [int(x) for x in re.findall(r"\d+", row["instruction"])]
        said = [int(x) for x in re.findall(r"\d+", row["output"])]
        if len(asked) == 2 and len(said) == 3:
            assert said[:2] == asked and said[2] in (asked[0] + asked[1], asked[0] * asked[1]), row
            checked += 1
    assert checked >= 10


def test_languages_without_sample_text_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"no sample text.*'de'.*vi, ru, zh, ar, hi, bn"):
        write_sample_raw(tmp_path, ["vi", "de"])
    assert _files(tmp_path) == []  # checked before anything is written
    with pytest.raises(ValueError, match="sample text exists for"):
        sample_rows("jp", "sft", 3)
    with pytest.raises(ValueError, match="unknown language code"):
        sample_rows("xx", "sft", 3)


def test_scale_stays_unique() -> None:
    rows = sample_rows("vi", "sft", 52_000)
    assert len({(r["instruction"], r["input"]) for r in rows}) == 52_000
    pairs = sample_rows("ar", "ranking", 42_000)
    assert len(pairs) == 6 * 42_000
    assert len({(r["instruction"], r["input"]) for r in pairs}) == 42_000
