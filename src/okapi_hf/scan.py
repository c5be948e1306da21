"""What ``okapi-hf publish`` looks for inside a file before it goes public: secrets and pickles.

Both checks read content, never trust a suffix. Secrets are found by shape (Hugging Face, OpenAI,
AWS, GitHub tokens, PEM private keys), by assignment (``DB_PASSWORD=...``, ``X_TOKEN: ...``) and by
the literal value of every secret-looking environment variable present at publish time. Files are
streamed in chunks that overlap, so a file of any size is read once with bounded memory and a
secret across a chunk boundary is still found. Zip members and gzip/bz2/xz content are searched
inside; a safetensors header is searched in full and its tensor data (numbers) for the secret values
only, which keeps a many-gigabyte model at disk speed. Text files (no NUL byte in the first 8 KiB)
also get the assignment check; in code (``.py``, ``.js``, ...) only quoted literals count, since an
unquoted right-hand side is an expression. Values that are placeholders (``<your-token>``,
``${VAR}``, ``os.environ[...]``, ``xxxx``), or a word or identifier without a digit or symbol (a
label such as ``Passwort`` or ``expired_token``), are not secrets. A finding says what kind of
secret sits where; the secret itself is never kept, printed or logged.

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
import re
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

CHUNK = 4 << 20  # bytes read at a time
CONTEXT = 128  # bytes kept before the unsettled part of a chunk: a name before `=`, a look-behind
MIN_OVERLAP = 4096  # longer than any token shape or assignment the patterns accept
MAX_FINDINGS = 5  # per file; one is enough to refuse it, a few help the user clean it up
HEAD = 64 << 10  # bytes of a file (or of a decompressed stream) the pickle check reads
MAX_ZIP_MEMBERS = 10_000

# Environment variables whose value is a secret by name; any *_TOKEN, *_KEY, *_SECRET, *_PASSWORD too.
SECRET_ENV = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "OPENAI_API_KEY", "AWS_SECRET_ACCESS_KEY")
SECRET_ENV_SUFFIXES = ("_TOKEN", "_KEY", "_SECRET", "_PASSWORD", "_PASSWD")
MIN_SECRET_VALUE = 8

# Token shapes. Each starts with a literal, so the regex engine skips ahead fast; the character
# before a match is checked in Python (a look-behind here would make every scan ten times slower).
SHAPES: tuple[tuple[str, re.Pattern[bytes]], ...] = (
    ("Hugging Face token", re.compile(rb"hf_[A-Za-z0-9]{30,}")),
    ("OpenAI API key", re.compile(rb"sk-(?:(?:proj|svcacct|admin|ant)-)?[A-Za-z0-9_-]{20,}")),
    ("AWS access key id", re.compile(rb"AKIA[A-Z0-9]{16}(?![A-Z0-9])|ASIA[A-Z0-9]{16}(?![A-Z0-9])")),
    ("GitHub token", re.compile(rb"gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,}")),
    ("private key", re.compile(rb"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")),
)
WORD = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")

# `NAME = value`, `NAME: value`, `"name": "value"`: found by the name's last word (in lower case).
ASSIGNMENT = re.compile(rb"(key|token|secret|passwd|password)[\"'`]?[ \t]*(?::=|=>|[:=])(?![=>])")
NAME_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")
# Upper-case names ending in one of these words are secrets unless the word before says otherwise.
NOT_SECRET_WORDS = frozenset(
    [
        "PUBLIC",
        "SORT",
        "CACHE",
        "PRIMARY",
        "FOREIGN",
        "PARTITION",
        "HASH",
        "GROUP",
        "INDEX",
        "LOOKUP",
        "DICT",
        "MAP",
        "REGISTRY",
        "CONFIG",
        "PAD",
        "EOS",
        "BOS",
        "UNK",
        "SEP",
        "CLS",
        "MASK",
        "SPECIAL",
        "START",
        "END",
        "STOP",
        "IMAGE",
        "AUDIO",
        "VIDEO",
        "MAX",
        "MIN",
        "NUM",
    ]
)
# Lower- or mixed-case names are secrets only when they say so this clearly (`token`, `key` alone are
# everyday words in data files and code).
SECRET_LAST_WORDS = frozenset({"password", "passwd", "secret", "apikey"})
SECRET_LAST_PAIRS = frozenset(
    {
        ("api", "key"),
        ("api", "token"),
        ("access", "token"),
        ("auth", "token"),
        ("secret", "key"),
        ("access", "key"),
        ("private", "key"),
        ("hf", "token"),
        ("hub", "token"),
        ("bearer", "token"),
        ("refresh", "token"),
        ("session", "token"),
        ("github", "token"),
        ("client", "secret"),
    }
)
PLACEHOLDER_WORDS = (
    "your",
    "example",
    "placeholder",
    "changeme",
    "change_me",
    "change-me",
    "dummy",
    "redacted",
    "replace",
    "insert",
    "xxxx",
    "...",
    "***",
    "environ",
    "getenv",
    "process.env",
    "secrets.",
    "todo",
    "fixme",
)
PLACEHOLDER_VALUES = frozenset(
    [
        "none",
        "null",
        "nil",
        "true",
        "false",
        "undefined",
        "empty",
        "string",
        "str",
        "bytes",
        "required",
        "optional",
        "default",
        "secret",
        "password",
        "token",
        "key",
        "value",
        "env",
    ]
)
# Files in which an unquoted right-hand side is an expression (`TOKEN = args.token`), not a literal.
CODE_SUFFIXES = (
    ".py",
    ".pyi",
    ".ipynb",
    ".js",
    ".mjs",
    ".cjs",
    ".jsx",
    ".ts",
    ".tsx",
    ".go",
    ".rs",
    ".java",
    ".kt",
    ".scala",
    ".rb",
    ".php",
    ".c",
    ".h",
    ".cc",
    ".cpp",
    ".hpp",
    ".cs",
    ".swift",
    ".jl",
    ".lua",
    ".r",
)
ANNOTATION = re.compile(rb"[ \t]*[A-Za-z_][\w.\[\], |]*?[ \t]*=(?![=>])")


@dataclass(frozen=True)
class Finding:
    """One secret in one file: its kind and place, never its value."""

    kind: str
    offset: int  # of the first byte, in the (decompressed) stream
    line: int | None  # 1-based, for text; None for binary content
    member: str = ""  # the archive member, for a secret inside a zip

    def where(self) -> str:
        place = f"line {self.line}" if self.line is not None else f"byte {self.offset}"
        return f"{self.member}: {place}" if self.member else place

    def __str__(self) -> str:
        return f"{self.where()}: {self.kind}"


def secret_env_values(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Secret-looking environment variables and their values (values shorter than 8 chars or paths skipped)."""
    environ = os.environ if environ is None else environ
    found = {}
    for name, value in environ.items():
        upper = name.upper()
        if upper not in SECRET_ENV and not upper.endswith(SECRET_ENV_SUFFIXES):
            continue
        value = value.strip()
        if len(value) >= MIN_SECRET_VALUE and not value.startswith(("/", "~", "./")):
            found[name] = value
    return found


class SecretScanner:
    """Finds secrets in files and byte streams; ``values`` maps a label to a literal secret to look for."""

    def __init__(self, values: Mapping[str, str] | None = None) -> None:
        by_value: dict[bytes, str] = {}
        for label, value in (values or {}).items():
            by_value.setdefault(value.encode("utf-8"), label)
        self.values = by_value
        longest = max((len(v) for v in by_value), default=0)
        self.overlap = max(MIN_OVERLAP, longest + 16)

    @classmethod
    def from_environment(cls, token: str | None = None) -> SecretScanner:
        """A scanner for the token shapes and every secret value of the environment (and the Hub token)."""
        values = {f"the value of ${name}": value for name, value in secret_env_values().items()}
        if token and token not in values.values():
            values["your Hugging Face token (from the login cache)"] = token
        return cls(values)

    # -- files ------------------------------------------------------------------------------------------

    def scan_file(self, path: Path, name: str = "") -> list[Finding]:
        """Every secret in ``path`` (at most a few); compressed files and zip archives are read inside."""
        name = name or path.name
        with _open_nofollow(path) as f:
            head = f.read(8)
            f.seek(0)
            if head.startswith(b"PK\x03\x04"):
                return self._scan_zip(f)
            header = _safetensors_header(f)
            if header is not None:  # names and metadata in full; the tensor data is numbers: values only
                found = self.scan_bytes(header, name=name + ".json", lines=False, start=8)
                f.seek(8 + len(header))
                return found + self.scan_stream(f, name, start=8 + len(header), shapes=False)
            opener = _decompressor(head)
            if opener is not None:
                try:
                    with opener(f) as inner:
                        return self.scan_stream(inner, name=_strip_compression(name))
                except (OSError, EOFError, lzma.LZMAError, ValueError, zlib.error):
                    f.seek(0)  # not really compressed (a text file that starts with "BZh"): read it as is
            return self.scan_stream(f, name=name)

    def scan_bytes(self, data: bytes, name: str = "", **options: Any) -> list[Finding]:
        return self.scan_stream(io.BytesIO(data), name=name, **options)

    def _scan_zip(self, f: BinaryIO) -> list[Finding]:
        try:
            archive = zipfile.ZipFile(f)
        except (zipfile.BadZipFile, OSError, ValueError):
            return self.scan_stream(f, name="")
        findings: list[Finding] = []
        with archive:
            for info in archive.infolist()[:MAX_ZIP_MEMBERS]:
                if info.is_dir():
                    continue
                try:
                    with archive.open(info) as member:
                        found = self.scan_stream(member, name=info.filename)
                except (zipfile.BadZipFile, RuntimeError, NotImplementedError, EOFError, zlib.error) as e:
                    # encrypted or damaged: what cannot be read cannot be checked, so it is refused
                    raise OSError(f"zip member {info.filename} cannot be read to check it ({e})") from e
                findings += [Finding(x.kind, x.offset, x.line, member=info.filename) for x in found]
                if len(findings) >= MAX_FINDINGS:
                    break
        return findings[:MAX_FINDINGS]

    # -- streams ----------------------------------------------------------------------------------------

    def scan_stream(
        self, stream: BinaryIO, name: str = "", *, start: int = 0, shapes: bool = True, lines: bool = True
    ) -> list[Finding]:
        """Secrets in ``stream``, read in overlapping chunks; text also gets the assignment check.

        ``start`` is added to every offset; ``shapes=False`` looks for the secret values only (fast, for
        tensor data); ``lines=False`` reports byte offsets even for text.
        """
        code = name.lower().endswith(CODE_SUFFIXES)
        findings: list[Finding] = []
        seen: set[tuple[str, int]] = set()
        buf = b""
        base = 0  # offset of buf[0] in the stream
        lines_before = 0  # newlines in the stream before buf[0]
        settled = 0  # stream offset before which every match start has been decided
        text: bool | None = None
        while True:
            data = stream.read(CHUNK)
            buf += data
            if text is None:
                text = b"\0" not in buf[:8192]
            end = len(buf) if not data else len(buf) - self.overlap
            if end > settled - base:
                for kind, pos in self._matches(buf, settled - base, end, text=text, code=code, shapes=shapes):
                    if (kind, base + pos) in seen:
                        continue
                    seen.add((kind, base + pos))
                    line = lines_before + buf.count(b"\n", 0, pos) + 1 if text and lines else None
                    findings.append(Finding(kind, start + base + pos, line))
                settled = base + end
            if not data or len(findings) >= MAX_FINDINGS:
                break
            keep = max(0, min(len(buf) - self.overlap - CONTEXT, settled - base - CONTEXT))
            lines_before += buf.count(b"\n", 0, keep)
            base += keep
            buf = buf[keep:]
        by_offset: dict[int, Finding] = {}
        for x in findings:  # one finding per place; the value of an environment variable says most
            if x.offset not in by_offset or x.kind.startswith("the value of"):
                by_offset[x.offset] = x
        findings = list(by_offset.values())
        shaped = {x.line for x in findings if not _by_assignment(x)}
        findings = [x for x in findings if not (_by_assignment(x) and x.line in shaped)]
        findings.sort(key=lambda x: x.offset)
        return findings[:MAX_FINDINGS]

    def _matches(
        self, buf: bytes, start: int, end: int, *, text: bool, code: bool, shapes: bool
    ) -> Iterator[tuple[str, int]]:
        """(kind, position) of each secret that starts in ``buf[start:end]``."""
        for kind, pattern in SHAPES if shapes else ():
            for m in pattern.finditer(buf, start):
                if m.start() >= end:
                    break
                if _shape_ok(kind, buf, m):
                    yield ("Anthropic API key" if m.group().startswith(b"sk-ant-") else kind), m.start()
        for value, label in self.values.items():
            pos = buf.find(value, start)
            while 0 <= pos < end:
                yield label, pos
                pos = buf.find(value, pos + 1)
        if text and shapes:
            lower = buf.lower()
            for m in ASSIGNMENT.finditer(lower, start):
                if m.start() >= end:
                    break
                found = _assignment(buf, m, code=code)
                if found:
                    yield found

    # -- messages ---------------------------------------------------------------------------------------

    def redact(self, message: str) -> str:
        """``message`` with every secret value and token shape replaced by ``[redacted]``."""
        data = message.encode("utf-8", "surrogateescape")
        for value in sorted(self.values, key=len, reverse=True):
            data = data.replace(value, b"[redacted]")
        for _, pattern in SHAPES[:4]:
            data = pattern.sub(b"[redacted]", data)
        return data.decode("utf-8", "surrogateescape")


def _by_assignment(finding: Finding) -> bool:
    return finding.kind.startswith("a secret assigned") or finding.kind == "AWS secret access key"


def _shape_ok(kind: str, buf: bytes, m: re.Match[bytes]) -> bool:
    """Whether a token-shaped match is a real candidate: not inside a longer word, not a placeholder."""
    before = buf[m.start() - 1] if m.start() else None
    if kind == "private key":
        return True
    if before is not None and (before in WORD or (kind == "OpenAI API key" and before == ord("-"))):
        return False
    token = m.group()
    if kind == "OpenAI API key":  # real keys are random: digits, upper and lower case all appear
        body = token[3:]
        return any(c.isdigit() for c in body.decode()) and body.lower() != body and body.upper() != body
    if kind == "AWS access key id":
        return b"EXAMPLE" not in token and len(set(token[4:])) > 2
    return True


def _assignment(buf: bytes, m: re.Match[bytes], *, code: bool) -> tuple[str, int] | None:
    """For a match of ASSIGNMENT (found in lower case), the secret's kind and place, or None."""
    word_end = m.start(1) + len(m.group(1))
    name_start = m.start(1)
    while name_start > 0 and buf[name_start - 1] in NAME_CHARS and word_end - name_start < 80:
        name_start -= 1
    name = buf[name_start:word_end].decode("ascii", "replace")
    if not _secret_name(name):
        return None
    value = _value(buf, m.end(), code=code)
    if value is None or not _secret_value(value):
        return None
    words = [w for w in re.split(r"[._-]", name.lower()) if w]
    if "aws" in words and "secret" in words:
        return "AWS secret access key", name_start
    return f"a secret assigned to {name}", name_start


def _secret_name(name: str) -> bool:
    words = [w for w in re.split(r"[._-]+", name) if w]
    if not words:
        return False
    if name.isupper():
        last = words[-1]
        if last not in ("KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD"):
            return False  # MONKEY=, BROKEN=
        return len(words) == 1 or words[-2] not in NOT_SECRET_WORDS
    lower = [w.lower() for w in words]
    return lower[-1] in SECRET_LAST_WORDS or tuple(lower[-2:]) in SECRET_LAST_PAIRS


def _value(buf: bytes, pos: int, *, code: bool) -> bytes | None:
    """The literal assigned at ``pos`` (after the separator), or None when it is an expression."""
    if code:
        skip = ANNOTATION.match(buf, pos)  # `API_KEY: str = "..."`
        if skip and buf[pos - 1 : pos] == b":":
            pos = skip.end()
    while pos < len(buf) and buf[pos] in b" \t":
        pos += 1
    if buf[pos : pos + 1] == b"\\":  # an escaped quote inside a JSON string (a notebook cell)
        pos += 1
    quote = buf[pos : pos + 1]
    if quote in (b'"', b"'", b"`"):
        close = buf.find(quote, pos + 1, pos + 1 + 512)
        if close < 0:
            return None
        value = buf[pos + 1 : close].rstrip(b"\\")
        return None if re.search(rb"\s", value) else value
    if code:
        return None
    m = re.compile(rb"[^\s\"'`,;#}\])]{1,512}").match(buf, pos)
    return m.group() if m else None


def _secret_value(value: bytes) -> bool:
    """Whether an assigned literal looks like a secret rather than a placeholder, a word or code."""
    text = value.decode("utf-8", "replace").strip()
    lower = text.lower()
    if len(text) < 6 or lower in PLACEHOLDER_VALUES:
        return False
    if text[0] in "$<{%[(@*&!" or re.search(r"[\s{}\[\]()<>;,`\u2026]", text):
        return False  # ${VAR}, <your-token>, {{ secrets.X }}, %(x)s, a call, a data structure
    if any(word in lower for word in PLACEHOLDER_WORDS):
        return False
    if len(set(lower) - set("x*.#-_ ")) <= 1:
        return False  # xxxxxxxx, ********, aaaaaaaa
    if all(c.isalpha() or c in "_.-" for c in text):
        return (
            False  # a word or identifier in any script (`Passwort`, `expired_token`): a label, not a secret
        )
    return not re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+", text)  # args.token, settings.KEY


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


def describe(findings: Iterable[Finding]) -> str:
    """``line 3: OpenAI API key; line 9: ...`` for a refusal."""
    return "; ".join(str(x) for x in findings)
