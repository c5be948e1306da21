"""The files a data step reads and writes: input rows, shards, its JSON Lines output, merged shards.

An output is appended one whole row at a time (one write, then fsync), so a run killed at any point
leaves only finished rows; ``<lang>.rejected.jsonl`` beside it holds the rows a step could not make,
and ``<lang>.done.json`` marks a run with nothing left to do. Shards are ``<lang>.shard-i-of-n.jsonl``;
merging checks that every one is complete before it writes anything.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from okapi_hf.create.llm_types import StorageFullError
from okapi_hf.errors import ConfigError, DataError
from okapi_hf.fsutil import atomic_write_text, locked
from okapi_hf.jsonfiles import read_records

# -- reading rows and shards ----------------------------------------------------------------------------


def read_rows(source: str | Path, *, id_prefix: str | None = None) -> list[dict[str, Any]]:
    """Rows from a JSON/JSONL/Parquet file, or ``DATASET:CONFIG[:SPLIT]`` (a built folder or Hub repo).

    Rows without an ``id`` get ``<prefix>-<row number>``; a repeated id is an error naming both rows.
    """
    path = Path(source)
    if path.is_file() and path.suffix == ".parquet":
        records = list(enumerate(_load_table(str(path), None, "train", parquet=True), start=1))
    elif not path.exists() and ":" in str(source):
        name, config, split = [*str(source).split(":"), "train"][:3]
        records = list(enumerate(_load_table(name, config, split), start=1))
        path = Path(name.replace("/", "_") + f"-{config}")
    elif path.is_file():
        records = read_records(path)
    else:
        raise DataError(
            f"input {source} does not exist: give a JSON/JSONL/Parquet file or DATASET:CONFIG[:SPLIT] "
            "(a `data build` folder or a Hub dataset, e.g. okapi_hf:vi or okapi_hf:vi-ranking:validation)"
        )
    rows, seen = [], {}
    for number, obj in records:
        if not isinstance(obj, dict):
            raise DataError(f"{path}, row {number}: expected a JSON object, got {type(obj).__name__}")
        row = dict(obj)
        row.setdefault("id", f"{id_prefix or path.stem}-{number}")
        row["id"] = str(row["id"])
        if row["id"] in seen:
            raise DataError(f"{path}, row {number}: id {row['id']!r} repeats row {seen[row['id']]}")
        seen[row["id"]] = number
        rows.append(row)
    return rows


def _load_table(name: str, config: str | None, split: str, *, parquet: bool = False) -> list[dict[str, Any]]:
    """A split of a dataset as plain rows (through ``datasets``, so folders, Hub repos and Parquet work)."""
    import datasets

    try:
        if parquet:
            return datasets.Dataset.from_parquet(name).to_list()
        return datasets.load_dataset(name, config, split=split).to_list()
    except (FileNotFoundError, ValueError, datasets.exceptions.DatasetNotFoundError) as e:
        raise DataError(f"cannot read {name} (config {config}, split {split}): {e}") from None


def parse_shard(spec: str | None) -> tuple[int, int] | None:
    """``"i/n"`` (0-based ``i``) to ``(i, n)``."""
    if spec is None:
        return None
    match = re.fullmatch(r"(\d+)/(\d+)", spec.strip())
    if not match or not 0 <= int(match[1]) < int(match[2]):
        raise DataError(f"--shard {spec!r}: expected i/n with 0 <= i < n, e.g. 0/4")
    return int(match[1]), int(match[2])


def take_shard(rows: Sequence[dict[str, Any]], shard: tuple[int, int] | None) -> list[dict[str, Any]]:
    """Every n-th row starting at i: shards interleave, so each gets a fair mix of long and short rows."""
    if shard is None:
        return list(rows)
    i, n = shard
    return [row for k, row in enumerate(rows) if k % n == i]


# -- file names ----------------------------------------------------------------------------------------


def shard_path(out: Path, shard: tuple[int, int] | None) -> Path:
    """``vi.jsonl`` -> ``vi.shard-0-of-4.jsonl`` for a shard's own output file."""
    if shard is None:
        return out
    return out.with_name(f"{out.name.removesuffix('.jsonl')}.shard-{shard[0]}-of-{shard[1]}.jsonl")


def rejected_path(out: Path) -> Path:
    return out.with_name(f"{out.name.removesuffix('.jsonl')}.rejected.jsonl")


def output_files(folder: str | Path) -> list[Path]:
    """The ``<lang>.jsonl`` outputs in ``folder``: not rejections, not unmerged shards."""
    files = Path(folder).glob("*.jsonl")
    return sorted(p for p in files if not p.name.endswith(".rejected.jsonl") and ".shard-" not in p.name)


def done_marker(out: Path) -> Path:
    return out.with_name(f"{out.name.removesuffix('.jsonl')}.done.json")


def digest(value: Any) -> str:
    """A short, stable digest of a row or of a step's settings (canonical JSON)."""
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


# -- the output file --------------------------------------------------------------------------------------


def read_done(path: Path, *, repair: bool = False) -> list[dict[str, Any]]:
    """The rows a previous run finished; a last line cut short by a kill is skipped.

    With ``repair`` (the runner, about to append) that partial line is also cut from the file; readers
    leave the file alone, since a run may still be writing it.
    """
    if not path.is_file():
        return []
    data = path.read_bytes()
    lines = data.split(b"\n")
    complete, tail = lines[:-1], lines[-1]
    rows = []
    for number, line in enumerate(complete, start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise DataError(
                    f"{path}, line {number}: not JSON ({e.msg}); the file was changed by hand?"
                ) from None
    if tail.strip() and repair:  # the kill came mid-line: that row was not finished
        with path.open("r+b") as f:
            f.truncate(len(data) - len(tail))
    return rows


def append_row(f: Any, row: dict[str, Any]) -> None:
    """One finished row, durable when this returns (a kill afterwards loses nothing).

    Written straight to the file descriptor, bypassing any buffer, so that a write the disk has no
    room for leaves nothing pending: a line written in part is cut off again, the file keeps only
    whole rows, and :class:`StorageFullError` names it.
    """
    data = (json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8")
    if isinstance(f, io.TextIOBase):
        f.flush()  # anything the caller wrote through the text layer goes first
    fd = f.fileno()
    start = os.fstat(fd).st_size
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except OSError as e:
        with contextlib.suppress(OSError):  # else the next run's read_done(repair=True) drops it
            os.ftruncate(fd, start)  # no half line for the next reader
        full = storage_error(e, Path(f.name))
        if full is e:
            raise
        raise full from e


def write_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    """All rows at once, atomically: a reader (or a kill) sees the old file or the whole new one."""
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def storage_error(error: OSError, path: Path, then: str = "") -> OSError:
    """A disk-full error as one line naming the file; any other OSError unchanged."""
    if isinstance(error, StorageFullError):
        return error
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageFullError(
            f"no space left on the disk of {path} while writing it: free some space{then}"
        )
    return error


# -- merging shards --------------------------------------------------------------------------------------


def merge_shards(out: str | Path, n: int) -> int:
    """Join the ``n`` shard files of ``out`` into ``out`` (and their rejections); return the row count.

    Everything is checked before anything is written: ``n`` is a count of 1 or more, every shard is
    there and complete, and no id appears twice; so a merged file is never partial by accident, and a
    wrong ``--shards`` leaves a complete output as it was. The output is replaced atomically.
    """
    out = Path(out)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"--shards {n}: expected the number of shards, a whole number of 1 or more")
    parts = [shard_path(out, (i, n)) for i in range(n)]
    missing = [str(p) for p in parts if not p.is_file()]
    if missing:
        on_disk = _shard_counts(out)
        hint = ""
        if on_disk and n not in on_disk:
            counts = " or ".join(str(c) for c in sorted(on_disk))
            hint = f"; the shard files there are of {counts} shard(s): pass --shards {counts.split()[0]}"
        raise DataError(f"cannot merge {out}: missing shard file(s) {', '.join(missing)}{hint}")
    try:
        with locked(out, what=f"the output {out}"):
            rows = _checked_join(out, parts, n)
            if rejected := _join([rejected_path(p) for p in parts]):
                write_rows(rejected_path(out), rejected)
            write_rows(out, rows)
    except OSError as e:
        full = storage_error(e, out, "; the output is as it was before the merge")
        if full is e:
            raise
        raise full from e
    return len(rows)


def _checked_join(out: Path, parts: list[Path], n: int) -> list[dict[str, Any]]:
    """The shards' rows, once each shard is known complete and the join holds at least one row."""
    for part in parts:
        marker = done_marker(part)
        done = len(read_done(part)) + len(read_done(rejected_path(part)))
        total = json.loads(marker.read_text())["total"] if marker.is_file() else None
        if total is None or done != total:
            raise DataError(
                f"cannot merge {out}: shard {part.name} is incomplete ({done} of {total or '?'} rows "
                "done, some failed or the run was stopped); run that shard again first"
            )
    rows = _join(parts)
    if not rows:
        rejected = sum(len(read_done(rejected_path(p))) for p in parts)
        raise DataError(
            f"cannot merge {out}: its {n} shard(s) kept no row ({rejected} rejected, see their "
            ".rejected.jsonl files); nothing was written, so the next step does not start on an empty file"
        )
    return rows


def _shard_counts(out: Path) -> set[int]:
    """The shard counts ``n`` of the ``out.shard-i-of-n.jsonl`` files on disk."""
    stem = re.escape(out.name.removesuffix(".jsonl"))
    pattern = re.compile(rf"{stem}\.shard-\d+-of-(\d+)\.jsonl")
    if not out.parent.is_dir():
        return set()
    return {int(m[1]) for p in out.parent.iterdir() if (m := pattern.fullmatch(p.name))}


def _join(parts: list[Path]) -> list[dict[str, Any]]:
    rows, origin = [], {}
    for part in parts:
        for row in read_done(part):
            if row["id"] in origin:
                raise DataError(f"id {row['id']!r} is in both {origin[row['id']]} and {part}")
            origin[row["id"]] = part
            rows.append(row)
    return rows
