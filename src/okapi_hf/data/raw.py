"""Read the original release's files and check every row against its subset's schema.

Nothing is dropped silently: each skipped row is recorded in an :class:`IngestReport` under its
reason, with its row number, so ``data build`` can print what happened and refuse to continue
unless the user accepts the skips.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from okapi_hf.data.rankings import pairs_to_rankings
from okapi_hf.data.schema import Subset
from okapi_hf.errors import DataError
from okapi_hf.languages import get_language

OPTIONAL_FIELDS = frozenset({"input"})  # Alpaca rows without context may omit it; it becomes ""


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
    """Where the release kept one language's file; the release's own code (``jp``) is accepted too."""
    language = get_language(lang)
    folder = Path(raw_dir) / subset.release_folder
    for code in dict.fromkeys((language.code, language.file_code)):
        for suffix in (".json", ".jsonl"):
            if (folder / f"{code}{suffix}").is_file():
                return folder / f"{code}{suffix}"
    raise DataError(
        f"missing raw file for {lang}/{subset.name}: looked for {folder / (language.file_code + '.json')} "
        f"(or .jsonl); the release layout is <raw-dir>/{subset.release_folder}/<lang>.json"
    )


def read_records(path: str | Path) -> list[tuple[int, Any]]:
    """Parse a JSON array or JSON Lines file into (1-based row number, value) pairs.

    UTF-8 with or without a byte-order mark; JSON Lines split on ``\n`` only, because
    ``ensure_ascii=False`` writers leave U+2028 and friends raw inside strings.
    """
    path = Path(path)
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(
            f"{path}: not UTF-8 text (invalid byte at offset {e.start}); re-encode it as UTF-8"
        ) from None
    if not text.strip():
        raise DataError(f"{path}: file is empty; expected a JSON array or JSON Lines of objects")
    if text.lstrip().startswith("["):
        try:
            records = json.loads(text)
        except json.JSONDecodeError as e:
            byte = len(text[: e.pos].encode("utf-8"))
            raise DataError(
                f"{path}: malformed JSON at line {e.lineno}, column {e.colno} (byte {byte}): {e.msg}"
            ) from None
        return list(enumerate(records, start=1))
    rows = []
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            rows.append((lineno, json.loads(line)))
        except json.JSONDecodeError as e:
            raise DataError(
                f"{path}: malformed JSON Lines at line {lineno}, column {e.colno}: {e.msg} "
                "(expected a JSON array, or one JSON object per line)"
            ) from None
    return rows


def _clean_row(obj: Any, fields: tuple[str, ...]) -> tuple[dict[str, str], int] | str:
    """The row's fields as strings with the number of values cast, or why it cannot be used."""
    if not isinstance(obj, dict):
        return f"not a JSON object (got {type(obj).__name__})"
    row, cast = {}, 0
    for name in fields:
        value = obj.get(name)
        if value is None:
            if name in OPTIONAL_FIELDS:
                value = ""
            else:
                return f"missing field '{name}'"
        if isinstance(value, bool | int | float):
            value, cast = str(value), cast + 1
        elif not isinstance(value, str):
            return f"field '{name}' is a {type(value).__name__}, expected a string"
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
    if len(responses) < 2 or len(set(responses)) != len(responses):
        return f"field 'responses' needs at least 2 distinct responses (got {len(set(responses))})"
    return {**row, "responses": responses}, cast


def ingest_file(path: str | Path, subset: Subset, lang: str) -> tuple[list[dict[str, Any]], IngestReport]:
    """Read one raw file into rows of ``subset``'s schema (with ``id`` and ``lang``) and a report."""
    lang = get_language(lang).code
    report = IngestReport(lang=lang, subset=subset.name, path=Path(path))
    records = read_records(path)
    report.read = len(records)
    clean: list[tuple[int, dict[str, str]]] = []
    seen: dict[tuple[str, ...], int] = {}
    ranked: list[tuple[int, dict[str, Any]]] = []  # K-wise rows need no regrouping
    for row_number, obj in records:
        kwise = subset.name == "ranking" and isinstance(obj, dict) and "responses" in obj
        cleaned = _clean_ranked(obj) if kwise else _clean_row(obj, subset.raw_fields)
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
        if kwise:
            ranked.append((row_number, row))
            continue
        clean.append((row_number, row))

    if subset.name == "ranking":
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
        out += [{"id": f"{lang}-ranking-{n}", "lang": lang, **row} for n, row in ranked]
        out.sort(key=lambda r: int(r["id"].rsplit("-", 1)[1]))
    else:
        out = [{"id": f"{lang}-{subset.name}-{n}", "lang": lang, **row} for n, row in clean]
    report.written = len(out)
    if not out:
        raise DataError(
            f"{path}: no usable rows ({report.read} read, {report.n_skipped} skipped)\n{report.describe()}"
        )
    return out, report
