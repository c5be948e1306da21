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

Pickles, compression and the other formats are recognised in :mod:`okapi_hf.hub.filetypes`.
"""

from __future__ import annotations

import io
import lzma
import os
import re
import zipfile
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from okapi_hf.hub.filetypes import (  # the formats a secret may hide in
    MAX_ZIP_MEMBERS,
    _decompressor,
    _open_nofollow,
    _safetensors_header,
    _strip_compression,
)

CHUNK = 4 << 20  # bytes read at a time
CONTEXT = 128  # bytes kept before the unsettled part of a chunk: a name before `=`, a look-behind
MIN_OVERLAP = 4096  # longer than any token shape or assignment the patterns accept
MAX_FINDINGS = 5  # per file; one is enough to refuse it, a few help the user clean it up

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


def describe(findings: Iterable[Finding]) -> str:
    """``line 3: OpenAI API key; line 9: ...`` for a refusal."""
    return "; ".join(str(x) for x in findings)
