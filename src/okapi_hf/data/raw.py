"""Read the original release's files and check every row against its subset's schema.

Nothing is dropped silently: each skipped row is recorded in an :class:`IngestReport` under its
reason, with its row number, so ``data build`` can print what happened and refuse to continue
unless the user accepts the skips.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from okapi_hf.data.rankings import pairs_to_rankings
from okapi_hf.data.schema import Subset
from okapi_hf.errors import DataError, UnknownLanguageError
from okapi_hf.jsonfiles import read_records
from okapi_hf.languages import get_language

OPTIONAL_FIELDS = frozenset({"input"})  # Alpaca rows without context may omit it; it becomes ""
CONFLICT = "conflicting rankings of one prompt (same instruction and input, different responses or order)"
_SURROGATE = re.compile("[\ud800-\udfff]")
# Field names people spell the way English does; the release spells them otherwise.
_SPELLINGS = {"prefered_output": "preferred_output"}


@dataclass
class IngestReport:
    """What happened to one raw file: rows read, rows written, rows skipped by reason."""

    lang: str
    subset: str
    path: Path
    read: int = 0
    written: int = 0
    cast: int = 0  # non-string values turned into strings (kept, as the original loader did)
    skipped: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))

    def skip(self, reason: str, row: int) -> None:
        self.skipped[reason].append(row)

    @property
    def n_skipped(self) -> int:
        return sum(len(rows) for rows in self.skipped.values())

    def describe(self, max_rows: int = 5) -> str:
        """One line per skip reason, naming the first few row numbers."""
        lines = []
        for reason, rows in sorted(self.skipped.items(), key=lambda kv: -len(kv[1])):
            shown = ", ".join(map(str, rows[:max_rows])) + (", ..." if len(rows) > max_rows else "")
            lines.append(f"  {self.path}: {len(rows)} row(s) skipped, {reason} (rows {shown})")
        return "\n".join(lines)


def raw_path(raw_dir: str | Path, subset: Subset, lang: str) -> Path:
    """Where the release kept one language's file; the release's own code (``jp``) is accepted too.

    Two candidates (``vi.json`` and ``vi.jsonl``, or ``ja.json`` and ``jp.json``) are refused: taking
    either one silently would build from a file the user may think was replaced.
    """
    language = get_language(lang)
    folder = Path(raw_dir) / subset.release_folder
    found = [
        folder / f"{code}{suffix}"
        for code in dict.fromkeys((language.code, language.file_code))
        for suffix in (".json", ".jsonl")
        if (folder / f"{code}{suffix}").is_file()
    ]
    if len(found) > 1:  # one of them is stale (a download beside a `data translate` output, say)
        raise DataError(
            f"{folder}: {' and '.join(p.name for p in found)} both hold {lang} rows; keep the one to build "
            "and move the other away"
        )
    if found:
        return found[0]
    raise DataError(
        f"missing raw file for {lang}/{subset.name}: looked for {folder / (language.file_code + '.json')} "
        f"(or .jsonl); the release layout is <raw-dir>/{subset.release_folder}/<lang>.json"
    )


def _clean_value(name: str, value: Any) -> tuple[str, int] | str:
    """One field as text, with 1 if it was cast from a number, or why it cannot be used."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"field '{name}' is NaN or Infinity, not text"
    if isinstance(value, bool | int | float):
        return str(value), 1
    if not isinstance(value, str):
        return f"field '{name}' is a {type(value).__name__}, expected a string"
    if _SURROGATE.search(value):
        return f"field '{name}' holds an unpaired UTF-16 surrogate escape, which is not valid Unicode"
    return value, 0


def _clean_row(obj: Any, fields: tuple[str, ...]) -> tuple[dict[str, str], int] | str:
    """The row's fields as strings with the number of values cast, or why it cannot be used."""
    if not isinstance(obj, dict):
        return f"not a JSON object (got {type(obj).__name__})"
    twice = [k for k in getattr(obj, "duplicate_keys", ()) if k in fields or k in ("responses", "lang")]
    if twice:
        return f"field '{twice[0]}' appears twice in the row (which value is meant?)"
    row, cast = {}, 0
    for name in fields:
        value = obj.get(name)
        if value is None:
            if name in OPTIONAL_FIELDS:
                value = ""
            elif _SPELLINGS.get(name) in obj:
                return f"missing field '{name}' (found '{_SPELLINGS[name]}'; the release spells it '{name}')"
            else:
                return f"missing field '{name}'"
        cleaned = _clean_value(name, value)
        if isinstance(cleaned, str):
            return cleaned
        value, n_cast = cleaned
        cast += n_cast
        if name not in OPTIONAL_FIELDS and not value.strip():
            return f"empty field '{name}'"
        row[name] = value
    return row, cast


def _clean_ranked(obj: dict[str, Any]) -> tuple[dict[str, Any], int] | str:
    """A K-wise ranking row (``responses`` best first, as ``okapi-hf data rank`` writes), or why not."""
    cleaned = _clean_row(obj, ("instruction", "input"))
    if isinstance(cleaned, str):
        return cleaned
    row, cast = cleaned
    responses = obj["responses"]
    if not isinstance(responses, list) or not all(isinstance(r, str) and r.strip() for r in responses):
        return "field 'responses' must be a list of non-empty strings"
    if any(_SURROGATE.search(r) for r in responses):
        return "field 'responses' holds an unpaired UTF-16 surrogate escape, which is not valid Unicode"
    if len(responses) < 2 or len(set(responses)) != len(responses):
        return f"field 'responses' needs at least 2 distinct responses (got {len(set(responses))})"
    return {**row, "responses": responses}, cast


def _wrong_lang(obj: Any, lang: str) -> str | None:
    """Why a row's own ``lang`` field says it belongs in another language's file, if it does."""
    value = obj.get("lang") if isinstance(obj, dict) else None
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        if get_language(value.strip()).code == lang:
            return None
    except UnknownLanguageError:
        pass
    return f"field 'lang' is {value!r}, but the file is for {lang}"


def _refuse_wrapper(path: Path, records: list[tuple[int, Any]]) -> None:
    """A file that is one object holding the rows (``{"data": [...]}``) is named, not read as one bad row."""
    if len(records) != 1 or not isinstance(obj := records[0][1], dict) or "instruction" in obj:
        return
    for key, value in obj.items():
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            raise DataError(
                f"{path}: one JSON object holding {len(value)} rows under {key!r}, not rows; expected a "
                "JSON array of row objects, or one row object per line"
            )


def ingest_file(path: str | Path, subset: Subset, lang: str) -> tuple[list[dict[str, Any]], IngestReport]:
    """Read one raw file into rows of ``subset``'s schema (with ``id`` and ``lang``) and a report."""
    lang = get_language(lang).code
    report = IngestReport(lang=lang, subset=subset.name, path=Path(path))
    records = read_records(path)
    _refuse_wrapper(Path(path), records)
    report.read = len(records)
    clean: list[tuple[int, dict[str, str]]] = []
    seen: dict[tuple[str, ...], int] = {}
    ranked: dict[tuple[str, str], tuple[int, dict[str, Any]]] = {}  # K-wise rows need no regrouping
    conflicts: dict[tuple[str, str], list[int]] = defaultdict(list)
    for row_number, obj in records:
        kwise = subset.name == "ranking" and isinstance(obj, dict) and "responses" in obj
        cleaned = _wrong_lang(obj, lang) or (
            _clean_ranked(obj) if kwise else _clean_row(obj, subset.raw_fields)
        )
        if isinstance(cleaned, str):
            report.skip(cleaned, row_number)
            continue
        row, cast = cleaned
        key = tuple(
            str(row[f]) for f in (("instruction", "input", "responses") if kwise else subset.raw_fields)
        )
        if key in seen:
            report.skip("duplicate row", row_number)
            continue
        seen[key] = row_number
        report.cast += cast
        if not kwise:
            clean.append((row_number, row))
            continue
        prompt = (row["instruction"], row["input"])
        if prompt in conflicts:
            conflicts[prompt].append(row_number)
        elif prompt in ranked:  # the same prompt ranked twice, in another order or over other responses
            conflicts[prompt] = [ranked.pop(prompt)[0], row_number]
        else:
            ranked[prompt] = (row_number, row)

    if subset.name == "ranking":
        clean = _drop_conflicts(clean, ranked, conflicts)
        for rows in conflicts.values():
            for row_number in sorted(rows):
                report.skip(CONFLICT, row_number)
        rankings, problems = pairs_to_rankings(clean)
        for reason, rows in problems.items():
            for row_number in rows:
                report.skip(reason, row_number)
        out = [
            {
                "id": f"{lang}-ranking-{first}",
                "lang": lang,
                "instruction": ins,
                "input": inp,
                "responses": resp,
            }
            for first, ins, inp, resp in rankings
        ]
        out += [{"id": f"{lang}-ranking-{n}", "lang": lang, **row} for n, row in ranked.values()]
        out.sort(key=lambda r: int(r["id"].rsplit("-", 1)[1]))
    else:
        out = [{"id": f"{lang}-{subset.name}-{n}", "lang": lang, **row} for n, row in clean]
    report.written = len(out)
    if not out:
        details = report.describe()
        raise DataError(
            f"{path}: no usable rows ({report.read} read, {report.n_skipped} skipped)"
            + (f"\n{details}" if details else "")
        )
    return out, report


def _drop_conflicts(
    pairs: list[tuple[int, dict[str, str]]],
    ranked: dict[tuple[str, str], tuple[int, dict[str, Any]]],
    conflicts: dict[tuple[str, str], list[int]],
) -> list[tuple[int, dict[str, str]]]:
    """Pairwise rows of a prompt that a K-wise row ranks too conflict with it: all of them go to ``conflicts``."""
    kept = []
    for row_number, row in pairs:
        prompt = (row["instruction"], row["input"])
        if prompt in ranked:
            conflicts[prompt] = [ranked.pop(prompt)[0]]
        if prompt in conflicts:
            conflicts[prompt].append(row_number)
        else:
            kept.append((row_number, row))
    return kept
