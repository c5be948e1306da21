"""Read a JSON array or JSON Lines file of records strictly: every way a file can be wrong is named.

Below every stage: creation reads its input rows, the data stage the release's files, evaluation the
authors' benchmark files, all through :func:`read_records`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from okapi_hf.errors import DataError

# What a file that is not text at all starts with, so the message can say what it is.
_NOT_TEXT = {
    b"\x1f\x8b": "gzip-compressed; decompress it (gunzip) first",
    b"PK\x03\x04": "a zip archive; extract it first",
    b"\xff\xfe": "UTF-16 text; re-encode it as UTF-8",
    b"\xfe\xff": "UTF-16 text; re-encode it as UTF-8",
}


class _Row(dict):
    """A parsed JSON object that had a key twice (json keeps the last value silently)."""

    duplicate_keys: tuple[str, ...] = ()


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    row = dict(pairs)
    if len(row) == len(pairs):
        return row
    marked = _Row(row)
    seen: set[str] = set()
    marked.duplicate_keys = tuple(k for k, _ in pairs if k in seen or seen.add(k))
    return marked


def read_records(path: str | Path) -> list[tuple[int, Any]]:
    """Parse a JSON array or JSON Lines file into (1-based row number, value) pairs.

    UTF-8 with or without a byte-order mark (also at the start of a JSON Lines line, as concatenated
    files have); JSON Lines split on ``\n`` only, because ``ensure_ascii=False`` writers leave U+2028
    and friends raw inside strings. An object with a key twice comes back marked (see :class:`_Row`).
    """
    path = Path(path)
    data = path.read_bytes()
    for magic, what in _NOT_TEXT.items():
        if data.startswith(magic):
            raise DataError(f"{path}: not a JSON text file but {what}")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise DataError(
            f"{path}: not UTF-8 text (invalid byte at offset {e.start}), line {line}; re-encode it as UTF-8"
        ) from None
    body = text.lstrip().lstrip("\ufeff").lstrip()
    if not body:
        raise DataError(f"{path}: file is empty; expected a JSON array or JSON Lines of objects")
    if body.startswith("<"):
        start = " ".join(body[:80].split())[:50]
        raise DataError(
            f"{path}: an HTML or XML page ({start!r}...), not JSON; a failed download? Fetch the file again"
        )
    if body.startswith("["):
        try:
            records = json.loads(body, object_pairs_hook=_object)
        except json.JSONDecodeError as err:
            e = json.JSONDecodeError(err.msg, text, len(text) - len(body) + err.pos)  # positions in the file
            byte = len(text[: e.pos].encode("utf-8"))
            hint = (
                " (more than one JSON value: JSON Lines need one object per line)"
                if e.msg == "Extra data"
                else ""
            )
            raise DataError(
                f"{path}: malformed JSON at line {e.lineno}, column {e.colno} (byte {byte}): {e.msg}{hint}"
            ) from None
        return list(enumerate(records, start=1))
    rows = []
    for lineno, line in enumerate(text.split("\n"), start=1):
        line = line.lstrip("\ufeff")
        if not line.strip():
            continue
        try:
            rows.append((lineno, json.loads(line, object_pairs_hook=_object)))
        except json.JSONDecodeError as e:
            raise DataError(_jsonl_error(path, text, lineno, e)) from None
    return rows


def _jsonl_error(path: Path, text: str, lineno: int, e: json.JSONDecodeError) -> str:
    """Why a JSON Lines line failed; a pretty-printed single object is named as such."""
    try:
        whole = json.loads(text)
    except json.JSONDecodeError:
        whole = None
    if isinstance(whole, dict):
        return (
            f"{path}: one JSON object spanning several lines (keys {', '.join(map(repr, list(whole)[:5]))}), "
            "not rows; expected a JSON array of row objects, or one row object per line"
        )
    return (
        f"{path}: malformed JSON Lines at line {lineno}, column {e.colno}: {e.msg} "
        "(expected a JSON array, or one JSON object per line)"
    )
