"""Run one data-creation step over rows: concurrently, resumably, shardably, and with its count of losses.

Every step is an async function ``work(row) -> new row`` that may raise :class:`RowRejected`. The
runner appends each finished row to a JSON Lines file the moment it is done (one write, then fsync),
so a run killed at any point resumes with the rows it lacks; together with the LLM client's
persistent cache, no completed request is sent twice and every row ends up exactly once. Rejected
rows go to a ``.rejected.jsonl`` file beside the output, with their reason, and are counted.

Each written or rejected line carries ``source_sha``, a digest of the input row, so a resumed run
over an input that changed is an error rather than a silent mix; a rejection also records the
step's settings, and is tried again when they change (``--samples 3`` after ``--samples 1``).
A run that ends with nothing left to do leaves a ``.done.json`` marker, which merging requires.

Ctrl-C cancels the run: requests in flight are dropped (their rows are redone next time), every
row already appended stays, and :func:`run_step` raises :class:`StepInterrupted` saying how far it got.

One process writes an output at a time (a lock beside it; a second run is refused with the holder's
pid). A full disk stops the run with one line naming the file, and leaves only whole rows, so the
same command resumes once there is room; an endpoint that refuses every request (a bad key, an
unknown model) stops it at once rather than failing each row in turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import io
import json
import os
import re
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from tqdm.auto import tqdm

from okapi_hf.data.llm_types import RETRY_ADVICE, CacheError, LLMError, StorageFullError, Usage
from okapi_hf.data.raw import read_records
from okapi_hf.errors import ConfigError, DataError, OkapiError
from okapi_hf.fsutil import atomic_write_text, locked

Work = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
T = TypeVar("T")


class StepInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a data step after its finished rows were safely written; the message says how many.

    A KeyboardInterrupt, so that whatever handles Ctrl-C (the CLI exits with 130) handles this too.
    """


class RowRejected(OkapiError):
    """A row a step cannot produce (an unparsable judgement, a translation in the wrong language...)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class StepFailed(OkapiError):
    """A step that ran but must not pass its output on: nothing kept, or failures only a change can fix.

    The message is one line saying why and what to change; ``reports`` are the runs' full reports.
    """

    def __init__(self, message: str, reports: Sequence[Any] = ()):
        super().__init__(message)
        self.reports = list(reports)


@dataclass
class RunReport:
    """What a run did: rows written now or before, rejected (by reason) and failed (by error)."""

    step: str
    out: Path
    total: int = 0
    resumed: int = 0
    retried: int = 0  # earlier rejections tried again because the step's settings changed
    written: int = 0
    rejected: Counter = field(default_factory=Counter)
    failed: Counter = field(default_factory=Counter)
    usage: str = ""
    notes: list[str] = field(default_factory=list)  # step-specific counts, e.g. responses dropped
    interrupted: bool = False
    kept_before: int = 0  # rows already in the output when this run started
    permanent: set[str] = field(default_factory=set)  # failures that running again cannot fix

    @property
    def kept(self) -> int:
        """Rows in the output: what the next step gets."""
        return self.kept_before + self.written

    @property
    def done(self) -> int:
        """Rows with a line in the output or the rejections file: what a resumed run skips."""
        return self.resumed + self.written + sum(self.rejected.values())

    def interruption(self) -> str:
        """The line that says where an interrupted run stopped."""
        this_run = self.written + sum(self.rejected.values())
        return (
            f"{self.step}: interrupted with {self.done} of {self.total} row(s) done ({this_run} this run), "
            f"kept in {self.out}; run the same command again to resume"
        )

    def summary(self) -> str:
        lines = [
            f"{self.step}: {self.written} row(s) written to {self.out} this run, {self.resumed} already done "
            f"(written or rejected before), {sum(self.rejected.values())} rejected, "
            f"{sum(self.failed.values())} failed (of {self.total})"
        ]
        if self.retried:
            lines.append(f"  {self.retried} earlier rejection(s) tried again: the step's settings changed")
        lines += [f"  rejected ({n}): {reason}" for reason, n in self.rejected.most_common()]
        lines += [
            f"  failed ({n}): {error}" + ("" if error in self.permanent else f" -- {RETRY_ADVICE}")
            for error, n in self.failed.items()
        ]
        lines += [f"  {note}" for note in self.notes]
        if self.usage:
            lines.append(f"  {self.usage}")
        return "\n".join(lines)


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
        full = _storage_error(e, out, "; the output is as it was before the merge")
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
        full = _storage_error(e, Path(f.name))
        if full is e:
            raise
        raise full from e


def write_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    """All rows at once, atomically: a reader (or a kill) sees the old file or the whole new one."""
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def _storage_error(error: OSError, path: Path, then: str = "") -> OSError:
    """A disk-full error as one line naming the file; any other OSError unchanged."""
    if isinstance(error, StorageFullError):
        return error
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageFullError(
            f"no space left on the disk of {path} while writing it: free some space{then}"
        )
    return error


# -- running -------------------------------------------------------------------------------------------


async def run_rows(
    rows: Sequence[dict[str, Any]],
    work: Work,
    out: str | Path,
    *,
    step: str,
    client: Any = None,
    settings: Mapping[str, Any] | None = None,
    max_in_flight: int = 64,
    progress: bool = True,
    report: RunReport | None = None,
) -> RunReport:
    """Apply ``work`` to the rows not yet in ``out``, appending each result as it finishes.

    ``max_in_flight`` workers take rows one at a time (the client bounds the requests), so 64K rows
    never become 64K pending tasks. A row whose requests fail for good (an :class:`LLMError`) is
    counted as failed and left for the next run; a :class:`RowRejected` row, or one the step finds
    malformed (another :class:`OkapiError`), is recorded as rejected and not retried while
    ``settings`` (what the step was asked to do) stay the same. ``report``, when given, is filled in
    as rows finish, so a caller whose run is cancelled still knows how far it got. ``client`` is the
    step's LLM client, or a list of them (a step with several backends): the usage shown adds them up.

    The output is locked for the run (a second run into it is refused, naming this one's pid). An
    endpoint that refuses every request (a bad key, an unknown model) stops the run at once, and so
    does a full disk; either way every finished row stays in ``out`` and the error is one line.
    """
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ConfigError(
            f"cannot write {out}: {_file_in_the_way(out.parent)} is a file, not a folder"
        ) from None
    report = report if report is not None else RunReport(step=step, out=out)
    report.step, report.out, report.total = step, out, len(rows)
    clients = [] if client is None else list(client) if isinstance(client, (list, tuple)) else [client]
    try:
        with locked(out, what=f"the output {out}"):
            await _run_locked(rows, work, out, clients, settings, max_in_flight, progress, report)
    except OSError as e:
        full = _storage_error(e, out)
        if full is e and not isinstance(e, StorageFullError):
            if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise ConfigError(f"{step}: cannot write {e.filename or out}: {e.strerror}") from e
            raise
        raise StorageFullError(
            f"{step}: {full}; {report.done} of {report.total} row(s) done are kept in {out}, and the same "
            "command run again resumes from there"
        ) from e
    except LLMError as e:
        if not e.fatal:
            raise
        raise LLMError(
            f"{step}: stopped, since every request would get the same answer: {e}. {report.kept} "
            f"finished row(s) are kept in {out}",
            endpoint=e.endpoint,
            status=e.status,
        ) from e
    if clients:
        report.usage = _usage(clients).summary()
    return report


def _usage(clients: Sequence[Any]) -> Usage:
    return Usage.total(c.usage for c in clients)


def _file_in_the_way(folder: Path) -> Path:
    """The first part of ``folder`` that exists as a file (``--out`` given a file's path)."""
    for part in [folder, *folder.parents]:
        if part.exists() and not part.is_dir():
            return part
    return folder


async def _run_locked(
    rows: Sequence[dict[str, Any]],
    work: Work,
    out: Path,
    clients: list[Any],
    settings: Mapping[str, Any] | None,
    max_in_flight: int,
    progress: bool,
    report: RunReport,
) -> None:
    """:func:`run_rows` once it holds the output's lock (reading, repairing and appending are safe)."""
    rejects, marker = rejected_path(out), done_marker(out)
    sources = {row["id"]: digest(row) for row in rows}
    fingerprint = digest(dict(settings or {}))
    written_before = read_done(out, repair=True)
    rejected_before = read_done(rejects, repair=True)
    _check_same_inputs(written_before + rejected_before, sources, out)
    stale = [
        r for r in rejected_before if r.get("settings", fingerprint) != fingerprint and r["id"] in sources
    ]
    if stale:
        stale_ids = {r["id"] for r in stale}
        write_rows(rejects, [r for r in rejected_before if r["id"] not in stale_ids])
        rejected_before = [r for r in rejected_before if r["id"] not in stale_ids]
    done = {row["id"] for row in written_before} | {row["id"] for row in rejected_before}
    todo = [row for row in rows if row["id"] not in done]
    report.resumed, report.retried = len(rows) - len(todo), len(stale)
    report.kept_before = sum(1 for row in written_before if row["id"] in sources)
    marker.unlink(missing_ok=True)
    bar = tqdm(total=len(rows), initial=report.resumed, desc=report.step, unit="row", disable=not progress)
    pending = iter(todo)  # shared by the workers; asyncio switches only at awaits, so this is safe
    stopping = False

    async def worker(f_out: Any, f_rej: Any) -> None:
        for row in pending:
            if stopping:  # cancelled: take no new row
                return
            source = sources[row["id"]]
            try:
                result = await work(row)
            except (StorageFullError, CacheError):  # the cache is unusable: no row is to blame
                raise
            except LLMError as e:  # the endpoint failed for good: the next run tries again
                if e.fatal:  # every other row would fail the same way
                    raise
                report.failed[str(e)] += 1
                if e.permanent:
                    report.permanent.add(str(e))
            except OkapiError as e:  # RowRejected, or a row the step cannot use
                reason = e.reason if isinstance(e, RowRejected) else str(e)
                report.rejected[reason] += 1
                append_row(
                    f_rej, {"id": row["id"], "reason": reason, "source_sha": source, "settings": fingerprint}
                )
            else:
                append_row(f_out, {**result, "id": row["id"], "source_sha": source})
                report.written += 1
            bar.update(1)
            if clients:
                bar.set_postfix(_usage(clients).postfix(), refresh=False)

    def stop() -> None:
        nonlocal stopping
        stopping = True

    try:
        # unbuffered: append_row writes each row whole or not at all (see there)
        with open(out, "ab", buffering=0) as f_out, open(rejects, "ab", buffering=0) as f_rej:
            workers = [
                asyncio.ensure_future(worker(f_out, f_rej)) for _ in range(min(max_in_flight, len(todo)))
            ]
            try:
                await _all_workers(workers, stop)
            except asyncio.CancelledError:
                report.interrupted = True
                raise
    finally:
        bar.close()
        if rejects.is_file() and rejects.stat().st_size == 0:
            rejects.unlink()
    if not report.failed:
        atomic_write_text(marker, json.dumps({"total": len(rows), "step": report.step}))


def check_outcome(reports: Sequence[RunReport], *, what: str = "row") -> None:
    """Refuse to let a step pass on an output that the next step cannot use, in one line.

    Failures that running again cannot fix (a prompt the endpoint refuses) say what to change; a
    step that kept no row at all, with nothing failed, says why its rows were rejected. Failures that
    a later run may fix are left to the caller (its message says to run again).
    """
    lines = []
    for report in reports:
        refused = sum(n for error, n in report.failed.items() if error in report.permanent)
        if refused:
            first = next(e for e in report.failed if e in report.permanent)
            lines.append(
                f"{report.step}: {refused} {what}(s) failed: {first}; {report.kept} {what}(s) are kept in "
                f"{report.out}"
            )
        elif not report.failed and report.kept == 0 and report.total > 0:  # an empty shard is fine
            lines.append(f"{report.step}: {_nothing_kept(report, what)}")
    if lines:
        raise StepFailed(" | ".join(lines), reports)


def _nothing_kept(report: RunReport, what: str) -> str:
    reasons = "; ".join(f"{n}: {reason}" for reason, n in report.rejected.most_common(3))
    return (
        f"no {what} kept: all {report.total} were rejected ({reasons}); see {rejected_path(report.out)}. "
        "The output is empty, so the next step would have nothing to work on: fix the cause first"
    )


async def _all_workers(workers: list[asyncio.Future[None]], stop: Callable[[], None]) -> None:
    """Wait for every worker; when this is cancelled (Ctrl-C) or a worker crashes, end the others first.

    The files they append to close after this returns, so no worker may outlive it.
    """
    if not workers:  # nothing left to do
        return
    try:
        done, _ = await asyncio.wait(workers, return_when=asyncio.FIRST_EXCEPTION)
    except asyncio.CancelledError:
        await _stop_workers(workers, stop)
        raise
    crashed = [w for w in done if not w.cancelled() and w.exception() is not None]
    if crashed:
        await _stop_workers(workers, stop)
        raise crashed[0].exception()


async def _stop_workers(workers: list[asyncio.Future[None]], stop: Callable[[], None]) -> None:
    """Cancel the workers until they have ended; ``stop`` keeps any from taking a new row.

    A worker may swallow a cancellation (library code that catches it, ``asyncio.wait_for`` on Python
    3.11 when its answer arrives at the same moment) and carry on: it is cancelled again, and ends at
    its next await. A finished row is written before a worker next awaits, so none is lost.
    """
    stop()
    running = {w for w in workers if not w.done()}
    while running:
        for w in running:
            w.cancel()
        _, running = await asyncio.wait(running, timeout=0.05)
    for w in workers:  # retrieved, so asyncio does not log them as never retrieved
        if not w.cancelled():
            w.exception()


def run_step(main: Coroutine[Any, Any, T], clients: Sequence[Any], interrupted: Callable[[], str]) -> T:
    """Run a step's coroutine in a fresh event loop, closing its LLM ``clients`` there.

    In-process models are loaded first, here: Ctrl-C while loading is then an ordinary
    KeyboardInterrupt, a model that cannot be loaded fails before any row is touched, and the rows'
    generation threads only generate, which stops at the next token. Ctrl-C during the run cancels
    it: requests in flight are dropped, rows already finished stay written, and
    :class:`StepInterrupted` carries the line ``interrupted()`` gives (e.g. :meth:`RunReport.interruption`).
    """
    from okapi_hf.data.llm import run_async

    try:
        for client in clients:
            load = getattr(client.backend, "load", None)
            if load is not None:
                load()
    except BaseException:
        main.close()  # never started: no "coroutine was never awaited" warning
        raise

    async def go() -> T:
        try:
            return await main
        finally:
            for client in clients:
                await client.aclose()

    try:
        return run_async(go())
    except StepInterrupted:
        raise
    except KeyboardInterrupt:
        raise StepInterrupted(interrupted()) from None


def _check_same_inputs(previous: list[dict[str, Any]], sources: dict[str, str], out: Path) -> None:
    """A line written for an id whose input row has changed since means the output no longer fits."""
    for row in previous:
        source = row.get("source_sha")
        if source is not None and row["id"] in sources and sources[row["id"]] != source:
            raise DataError(
                f"{out}: row {row['id']!r} was made from a different input row than the one given now "
                "(the input changed since the last run); write to a new --out, or delete the old output"
            )
