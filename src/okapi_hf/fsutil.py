"""Writes that a later run reads: atomic files and folders, and a lock per output.

A kill at any instant must leave either the old state or the new one, never half of each: files are
written to a temporary sibling, flushed to disk and renamed over the target; folders are built under a
temporary name and renamed into place. Two runs writing one output would interleave, so the writer
holds a lock (an ``flock`` on a hidden sibling ``.<name>.lock`` file, released by the kernel when the process dies).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from okapi_hf.errors import OkapiError


class LockedError(OkapiError):
    """Another process holds the lock of an output this run wants to write."""


class DiskFullError(OkapiError, OSError):
    """A write that found no space left: names the file and what was kept."""


def is_disk_full(exc: BaseException) -> bool:
    """ENOSPC / EDQUOT, also from pyarrow, whose OSErrors carry the errno only in their text."""
    if not isinstance(exc, OSError):
        return False
    return exc.errno in (errno.ENOSPC, errno.EDQUOT) or "No space left on device" in str(exc)


def fsync_dir(folder: str | Path) -> None:
    """Make a rename inside ``folder`` durable (the directory entry itself is flushed)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` so that a reader sees the old file or the whole new one."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """:func:`atomic_write_bytes` for UTF-8 text."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def fsync_tree(folder: str | Path) -> None:
    """Flush every file under ``folder`` to disk, before the folder is renamed into place."""
    for path in sorted(Path(folder).rglob("*")):
        if path.is_file():
            with open(path, "rb") as f:
                os.fsync(f.fileno())
    fsync_dir(folder)


def move_into_place(tmp: str | Path, target: str | Path) -> Path:
    """Rename a finished folder ``tmp`` to ``target`` (which must not exist), durably."""
    tmp, target = Path(tmp), Path(target)
    fsync_tree(tmp)
    os.rename(tmp, target)
    fsync_dir(target.parent)
    return target


@contextlib.contextmanager
def locked(path: str | Path, *, wait: bool = False, what: str | None = None) -> Iterator[Path]:
    """Hold an exclusive lock on ``.<name>.lock`` beside ``path`` for the block.

    ``wait=False`` refuses at once with the holder's pid (a second writer of one output); ``wait=True``
    waits for the holder to finish (a second process preparing the same cached model reuses its work).
    """
    path = Path(path)
    lock_file = path.with_name(f".{path.name}.lock")  # hidden: it stays after the run, harmless
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "another process"
            raise LockedError(
                f"{what or path} is being written by process {holder} (lock {lock_file}); "
                "wait for it to finish, or write somewhere else"
            ) from None
        with contextlib.suppress(
            OSError
        ):  # the pid only helps the message; a full disk must not stop the run
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield path
    finally:
        os.close(fd)  # closing releases the lock; the file stays, so no race on who creates it


def remove_tree(path: str | Path) -> None:
    """Delete a folder if it exists (a stale temporary one from a killed run)."""
    shutil.rmtree(path, ignore_errors=True)
