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

The files themselves (input rows, shards, the output and its rejections, merging) are
:mod:`okapi_hf.create.rowfiles`; their functions are importable from here too.
"""

from __future__ import annotations

import asyncio
import errno
import json
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from tqdm.auto import tqdm

from okapi_hf.create.llm_types import RETRY_ADVICE, CacheError, LLMError, StorageFullError, Usage
from okapi_hf.create.rowfiles import (
    append_row,
    digest,
    done_marker,
    merge_shards,
    output_files,
    parse_shard,
    read_done,
    read_rows,
    rejected_path,
    shard_path,
    storage_error,
    take_shard,
    write_rows,
)
from okapi_hf.errors import ConfigError, DataError, OkapiError
from okapi_hf.fsutil import atomic_write_text, locked

__all__ = [  # the row files' functions too: steps, eval and train import them from here
    "RowRejected",
    "RunReport",
    "StepFailed",
    "StepInterrupted",
    "append_row",
    "check_outcome",
    "digest",
    "done_marker",
    "merge_shards",
    "output_files",
    "parse_shard",
    "read_done",
    "read_rows",
    "rejected_path",
    "run_rows",
    "run_step",
    "shard_path",
    "take_shard",
    "write_rows",
]

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
        full = storage_error(e, out)
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
    from okapi_hf.create.llm import run_async

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


def run_rows_sync(
    rows: Sequence[dict[str, Any]],
    work: Work,
    out: str | Path,
    *,
    step: str,
    clients: Sequence[Any],
    settings: Mapping[str, Any] | None = None,
    progress: bool = True,
) -> RunReport:
    """:func:`run_rows` from synchronous code, through :func:`run_step`: one fresh event loop that
    closes ``clients``, and Ctrl-C as :class:`StepInterrupted` saying how many rows are done."""
    report = RunReport(step=step, out=Path(out), total=len(rows))
    main = run_rows(
        rows, work, out, step=step, client=list(clients), settings=settings, progress=progress, report=report
    )
    return run_step(main, clients, report.interruption)


def _check_same_inputs(previous: list[dict[str, Any]], sources: dict[str, str], out: Path) -> None:
    """A line written for an id whose input row has changed since means the output no longer fits."""
    for row in previous:
        source = row.get("source_sha")
        if source is not None and row["id"] in sources and sources[row["id"]] != source:
            raise DataError(
                f"{out}: row {row['id']!r} was made from a different input row than the one given now "
                "(the input changed since the last run); write to a new --out, or delete the old output"
            )
