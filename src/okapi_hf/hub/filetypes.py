"""File formats that ``okapi-hf publish`` recognises by content: pickles, compression, Parquet, safetensors.

A file "needs pickle to load" when it is a pickle stream (any protocol), such a stream compressed
(gzip, bz2, xz, zlib as joblib writes it, zstd and lz4 when their modules are installed), a zip
archive holding one (``torch.save`` writes ``data.pkl``), or a NumPy ``.npy``/``.npz`` array of
Python objects. Loading any of these can run arbitrary code.
"""

from __future__ import annotations

import ast
import bz2
import contextlib
import gzip
import io
import lzma
import os
import pickletools
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

HEAD = 64 << 10  # bytes of a file (or of a decompressed stream) the pickle check reads
MAX_ZIP_MEMBERS = 10_000


# -- pickles ---------------------------------------------------------------------------------------------


def pickle_reason(path: Path) -> str | None:
    """Why loading ``path`` needs pickle (so it must not be published), or None when it does not."""
    with _open_nofollow(path) as f:
        head = f.read(HEAD)
        size = os.fstat(f.fileno()).st_size
        if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
            return _zip_reason(f)
        return _bytes_reason(head, whole=size <= len(head), stream=f)


def _bytes_reason(head: bytes, *, whole: bool, stream: BinaryIO | None = None, depth: int = 0) -> str | None:
    if _is_pickle(head, whole=whole):
        return "a pickle stream"
    if head.startswith(b"\x93NUMPY"):
        return (
            "a NumPy array of Python objects (object dtype: loading it needs pickle)"
            if _npy_has_objects(head)
            else None
        )
    if depth >= 2:
        return None
    for label, decompress in _DECOMPRESSORS:
        if decompress is not None and _has_magic(label, head):
            inner = _decompressed_head(decompress, head, stream)
            if inner is None:
                return None
            reason = _bytes_reason(inner, whole=len(inner) < HEAD, depth=depth + 1)
            return f"{label}-compressed {reason.removeprefix('a ')}" if reason else None
    return None


def _is_pickle(head: bytes, *, whole: bool) -> bool:
    """A pickle stream: protocol 2-5 by its header, protocol 0-1 by parsing to STOP at the very end."""
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return _parse(head, limit=3)[0] >= 3  # a safetensors header length can start with 0x80 0x03
    if not whole or not head or chr(head[0]) not in "(}]cNIKLSVXJMFGdlt)":
        return False
    count, stop_end = _parse(head, limit=None)
    return count >= 2 and stop_end is not None and not head[stop_end:].strip()


def _parse(data: bytes, limit: int | None) -> tuple[int, int | None]:
    """Opcodes that parse from ``data`` (up to ``limit``) and where STOP ended, if reached.

    pickletools.genops only reads opcodes: it imports and runs nothing.
    """
    count = 0
    try:
        for opcode, _arg, pos in pickletools.genops(io.BytesIO(data)):
            count += 1
            if opcode.name == "STOP":
                return count, pos + 1
            if limit is not None and count >= limit:
                break
    except Exception:  # genops raises ValueError and friends on bytes that are not a pickle
        pass
    return count, None


def _npy_has_objects(head: bytes) -> bool:
    """Whether a ``.npy`` header declares Python objects (read with literal_eval: nothing runs)."""
    try:
        major = head[6]
        size_bytes = 2 if major == 1 else 4
        start = 8 + size_bytes
        length = int.from_bytes(head[8:start], "little")
        header = head[start : start + length].decode("utf-8" if major >= 3 else "latin1")
        descr = ast.literal_eval(header)["descr"]
    except Exception:  # not a header numpy could read either
        return False
    try:
        from numpy.lib.format import descr_to_dtype

        return bool(descr_to_dtype(descr).hasobject)
    except ImportError:
        return "O" in repr(descr)
    except Exception:
        return False


def _zip_reason(f: BinaryIO) -> str | None:
    try:
        archive = zipfile.ZipFile(f)
    except (zipfile.BadZipFile, OSError, ValueError):
        return None
    with archive:
        for info in archive.infolist()[:MAX_ZIP_MEMBERS]:
            name = info.filename
            if info.is_dir():
                continue
            if name.lower().endswith((".pkl", ".pickle")):
                return f"a zip archive holding a pickle ({name}, as torch.save writes)"
            try:
                with archive.open(info) as member:
                    head = member.read(HEAD)
            except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError, RuntimeError):
                continue
            reason = _bytes_reason(head, whole=info.file_size <= len(head))
            if reason:
                return f"a zip archive holding {reason} ({name})"
    return None


# -- compression -----------------------------------------------------------------------------------------


def _optional(module: str, attribute: str) -> Any:
    with contextlib.suppress(ImportError):
        return getattr(__import__(module, fromlist=[attribute]), attribute)
    return None


def _zstd_reader(f: BinaryIO) -> BinaryIO | None:
    zstandard = _optional("zstandard", "ZstdDecompressor")
    return zstandard().stream_reader(f) if zstandard else None


def _lz4_reader(f: BinaryIO) -> BinaryIO | None:
    lz4_open = _optional("lz4.frame", "open")
    return lz4_open(f) if lz4_open else None


def _zlib_reader(f: BinaryIO) -> BinaryIO:
    return _ZlibReader(f)


class _ZlibReader(io.RawIOBase):
    """A raw zlib stream (joblib's default compression) read as a file."""

    def __init__(self, f: BinaryIO) -> None:
        self._f, self._z, self._pending = f, zlib.decompressobj(), b""

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while not self._pending and not self._z.eof:
            data = self._z.unconsumed_tail or self._f.read(1 << 20)
            if not data:
                break
            self._pending = self._z.decompress(data, len(b))
        n = min(len(b), len(self._pending))
        b[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


_MAGIC = {
    "gzip": (b"\x1f\x8b",),
    "bz2": (b"BZh",),
    "xz": (b"\xfd7zXZ\x00",),
    "zstd": (b"\x28\xb5\x2f\xfd",),
    "lz4": (b"\x04\x22\x4d\x18",),
}
_DECOMPRESSORS = (
    ("gzip", lambda f: gzip.GzipFile(fileobj=f)),
    ("bz2", lambda f: bz2.BZ2File(f)),
    ("xz", lambda f: lzma.LZMAFile(f)),  # noqa: SIM115 (closed by the caller)
    ("zstd", _zstd_reader),
    ("lz4", _lz4_reader),
    ("zlib", _zlib_reader),
)


def _has_magic(label: str, head: bytes) -> bool:
    if label == "zlib":  # no magic number: a valid two-byte zlib header with the deflate method
        return (
            len(head) >= 2
            and head[0] & 0x0F == 8
            and head[0] >> 4 <= 7
            and (head[0] << 8 | head[1]) % 31 == 0
        )
    return head.startswith(_MAGIC[label])


def _decompressor(head: bytes) -> Callable[[BinaryIO], Any] | None:
    """An opener for the compressed stream that ``head`` starts, or None."""
    for label, opener in _DECOMPRESSORS:
        if label != "zlib" and _has_magic(label, head):
            return lambda f, opener=opener: _closing(opener(f))
    return None


@contextlib.contextmanager
def _closing(reader: BinaryIO | None) -> Iterator[BinaryIO]:
    if reader is None:  # the module is not installed: nothing to read inside
        yield io.BytesIO(b"")
        return
    with contextlib.closing(reader):
        yield reader


def _decompressed_head(
    opener: Callable[[BinaryIO], Any], head: bytes, stream: BinaryIO | None
) -> bytes | None:
    """The first HEAD bytes of a compressed stream (only that much is decompressed: no bomb)."""
    source: BinaryIO = io.BytesIO(head)
    if stream is not None:
        stream.seek(0)
        source = stream
    try:
        reader = opener(source)
        if reader is None:
            return None
        with contextlib.closing(reader):
            return _read_up_to(reader, HEAD)
    except Exception:  # corrupt or truncated: whatever it is, it is not a readable pickle
        return None


def _read_up_to(reader: BinaryIO, n: int) -> bytes:
    parts, got = [], 0
    while got < n:
        data = reader.read(n - got)
        if not data:
            break
        parts.append(data)
        got += len(data)
    return b"".join(parts)


def _strip_compression(name: str) -> str:
    for suffix in (".gz", ".bz2", ".xz", ".zst", ".lz4"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


# -- other formats ---------------------------------------------------------------------------------------


def _safetensors_header(f: BinaryIO) -> bytes | None:
    """The JSON header of a safetensors file (8-byte little-endian length, then ``{...}``), or None."""
    f.seek(0)
    size = os.fstat(f.fileno()).st_size
    length = int.from_bytes(f.read(8), "little")
    if not 2 <= length <= min(size - 8, 100 << 20):
        f.seek(0)
        return None
    header = f.read(length)
    f.seek(0)
    return header if header.startswith(b"{") and header.rstrip().endswith(b"}") else None


def parquet_reason(path: Path) -> str | None:
    """Why ``path`` is not a Parquet file (the PAR1 magic at both ends), or None when it is one."""
    with _open_nofollow(path) as f:
        head = f.read(4)
        size = os.fstat(f.fileno()).st_size
        if size >= 12:
            f.seek(-4, os.SEEK_END)
        tail = f.read(4)
    if size < 12 or head != b"PAR1" or tail != b"PAR1":
        return "not a Parquet file (no PAR1 magic at both ends): a dataset shard must be Parquet"
    return None


def _open_nofollow(path: Path) -> BinaryIO:
    """Open a regular file for reading; a symbolic link put in its place since the walk is refused."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    return os.fdopen(fd, "rb")
