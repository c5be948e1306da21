"""Fetch the original Okapi release files, resumably, and pin them with a sha256 manifest.

Each file streams into ``<file>.part``; a dropped transfer resumes with ``Range`` plus ``If-Range`` (the
first response's ETag or Last-Modified, kept in ``<file>.part.validator``) so a changed file is refetched,
not spliced. ``SHA256SUMS`` (``sha256sum -c`` format) pins what was fetched; re-runs verify, not refetch.
"""

from __future__ import annotations

import codecs
import hashlib
import http.client
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from okapi_hf.data.schema import Subset, resolve_subsets
from okapi_hf.errors import DownloadError, OkapiError
from okapi_hf.fsutil import DiskFullError, atomic_write_text, fsync_dir, is_disk_full, locked
from okapi_hf.languages import get_language, resolve_langs

DEFAULT_BASE_URL = "http://nlp.uoregon.edu/download/okapi-data/datasets"
BASE_URL_ENV = "OKAPI_HF_BASE_URL"
MANIFEST_NAME = "SHA256SUMS"
CHUNK_SIZE = 1 << 16
DEFAULT_BACKOFF = 1.0  # seconds before the second attempt, doubling after; read at call time
# Failures worth another attempt: dropped or stalled connections, short bodies, refused connects.
_TRANSIENT = (http.client.HTTPException, ConnectionError, TimeoutError, urllib.error.URLError)
FULL_PARSE_LIMIT = 64 << 20  # release files up to this size are parsed whole before they are pinned


def check_base_url(base: str) -> str:
    """The release base URL without its trailing slash; refused before any request if it is not http(s)."""
    parts = urllib.parse.urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise DownloadError(
            f"base URL {base!r} (--base-url or ${BASE_URL_ENV}) is not an http:// or https:// URL; "
            f"e.g. {DEFAULT_BASE_URL}"
        )
    return base.rstrip("/")


def _snippet(data: bytes) -> str:
    text = " ".join(data[:200].decode("utf-8", errors="replace").split())
    return repr(text[:60] + ("..." if len(text) > 60 else ""))


def release_json_problem(path: Path) -> str | None:
    """Why ``path`` is not a release file (a UTF-8 JSON array of row objects), or ``None``.

    A server or proxy may answer 200 with an HTML error page or a JSON error object; such a body must
    never be saved as ``vi.json`` nor pinned. Every byte is checked as UTF-8 (streamed, so any size);
    files up to :data:`FULL_PARSE_LIMIT` are parsed whole, larger ones are checked at both ends.
    """
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(CHUNK_SIZE)
        fh.seek(max(0, size - 64))
        tail = fh.read().rstrip()
    body = head.removeprefix(codecs.BOM_UTF8).lstrip()
    if not body:
        return "an empty body"
    if body[:1] == b"<":
        return f"an HTML page ({_snippet(body)})"
    if body[:1] != b"[":
        return f"not a JSON array (it starts with {_snippet(body)})"
    if body[1:].lstrip()[:1] not in (b"{", b"]", b""):
        return f"a JSON array that does not hold row objects (it starts with {_snippet(body)})"
    if not tail.endswith(b"]"):
        return f"a cut-off JSON array (it ends with {_snippet(tail[-40:])})"
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as e:
                return f"not UTF-8 text (invalid byte at offset {offset + e.start})"
            offset += len(chunk)
    if size <= FULL_PARSE_LIMIT:
        try:
            json.loads(path.read_bytes().decode("utf-8-sig"))
        except json.JSONDecodeError as e:
            return f"malformed JSON (line {e.lineno}, column {e.colno}: {e.msg})"
    return None


@dataclass
class DownloadReport:
    """What one run did, so the CLI can say it and the caller can find the files."""

    downloaded: list[Path] = field(default_factory=list)
    verified: list[Path] = field(default_factory=list)  # already present and matching the manifest
    hashed: list[Path] = field(default_factory=list)  # present without an entry; hashed and added
    skipped: list[tuple[str, str, str]] = field(default_factory=list)  # (lang, subset, reason)
    paths: dict[tuple[str, str], Path] = field(default_factory=dict)  # (lang, subset) -> file

    def summary(self) -> str:
        """A few readable lines: the counts, then one line per file."""
        lines = [
            f"downloaded {len(self.downloaded)}, verified {len(self.verified)}, "
            f"hashed {len(self.hashed)}, skipped {len(self.skipped)}"
        ]
        for label in ("downloaded", "verified", "hashed"):
            lines += [f"  {label:<10}  {path}" for path in getattr(self, label)]
        lines += [f"  {'skipped':<10}  {lang} {subset}: {why}" for lang, subset, why in self.skipped]
        return "\n".join(lines)


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks so multi-GB files do not fill memory."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK_SIZE):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifest(path: Path) -> dict[str, str]:
    """``relative/path -> hex`` from a ``sha256sum`` file (both text and ``*binary`` forms)."""
    if not path.exists():
        return {}
    entries: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2 or len(parts[0]) != 64:
            raise DownloadError(f"{path}:{number}: not a sha256sum line: {line!r}")
        entries[parts[1].removeprefix("*")] = parts[0].lower()
    return entries


def write_manifest(path: Path, entries: dict[str, str]) -> None:
    """Write sorted ``<hex>  <path>`` lines atomically, so an interrupted run leaves a valid file."""
    atomic_write_text(path, "".join(f"{entries[name]}  {name}\n" for name in sorted(entries)))


def _mismatch(url: str, path: Path, expected: str, actual: str, manifest: Path) -> DownloadError:
    return DownloadError(
        f"{url}: sha256 {actual} of {path} does not match {expected} recorded in {manifest}; "
        "pass force=True (--force on the CLI) to download it again"
    )


def _attempt(url: str, part: Path, timeout: float, bar: tqdm) -> None:
    """One request: resume ``part`` if the server honours Range (and If-Range), else start it over."""
    have = part.stat().st_size if part.exists() else 0
    validator = Path(f"{part}.validator")
    headers = {"Range": f"bytes={have}-"} if have else {}
    if have and validator.exists():
        headers["If-Range"] = validator.read_text(encoding="utf-8")
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout) as resp:
        if resp.status == 206:
            content_range = resp.headers.get("Content-Range", "")
            if not content_range.startswith(f"bytes {have}-"):
                raise http.client.HTTPException(f"asked for bytes {have}- but got {content_range!r}")
        else:  # 200: the whole (maybe changed) file, so the bytes on disk are useless
            have = 0
            etag = resp.headers.get("ETag", "")
            strong = "" if etag.startswith("W/") else etag  # If-Range must not carry a weak ETag
            validator.unlink(missing_ok=True)
            if tag := strong or resp.headers.get("Last-Modified"):
                validator.write_text(tag, encoding="utf-8")
        length = resp.headers.get("Content-Length")
        expected = have + int(length) if length is not None else None
        bar.reset(total=expected)
        bar.update(have)
        with part.open("ab" if have else "wb") as fh:
            while chunk := resp.read(CHUNK_SIZE):
                fh.write(chunk)
                bar.update(len(chunk))
            fh.flush()
            os.fsync(fh.fileno())  # the rename into place must never publish bytes still in the cache
    size = part.stat().st_size
    if expected is not None and size < expected:  # http.client returns b"" on an early close
        raise http.client.IncompleteRead(b"", expected - size)


def fetch(
    url: str,
    dest: Path,
    *,
    retries: int = 5,
    timeout: float = 60.0,
    backoff: float | None = None,
    progress: bool = True,
    check: Callable[[Path], None] | None = None,
) -> None:
    """Download ``url`` to ``dest`` via ``dest.part``, retrying dropped transfers from where they stopped.

    ``check`` sees the finished part before it is renamed to ``dest``; when it raises, the part is
    deleted and ``dest`` is left as it was. A full disk deletes the part too (a later run must not
    resume from a file whose last write failed) and says which file it was.
    """
    part = dest.with_name(dest.name + ".part")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        _fetch_part(url, part, retries, timeout, backoff, progress)
        if check is not None:
            try:
                check(part)
            except OkapiError:
                _discard(part)
                raise
        os.replace(part, dest)
    except OSError as exc:
        if not is_disk_full(exc):
            raise
        _discard(part)
        raise DiskFullError(
            f"{part}: the disk is full (no space left while downloading {url}); the partial file was "
            f"deleted and {dest} was not changed; free some space and run again"
        ) from None
    fsync_dir(dest.parent)
    Path(f"{part}.validator").unlink(missing_ok=True)


def _fetch_part(
    url: str, part: Path, retries: int, timeout: float, backoff: float | None, progress: bool
) -> None:
    """The retry loop of :func:`fetch`: ``part`` holds the whole body when it returns."""
    last: Exception | None = None
    desc = part.name.removesuffix(".part")
    with tqdm(unit="B", unit_scale=True, unit_divisor=1024, desc=desc, disable=not progress) as bar:
        for attempt in range(1, retries + 1):
            try:
                _attempt(url, part, timeout, bar)
                break
            except urllib.error.HTTPError as exc:
                exc.close()
                if exc.code == 416:  # the part is not a prefix of this file any more: start over
                    _discard(part)
                elif exc.code < 500:
                    raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
                last = exc
            except _TRANSIENT as exc:
                last = exc
            if attempt < retries:
                time.sleep((DEFAULT_BACKOFF if backoff is None else backoff) * 2 ** (attempt - 1))
        else:
            got = part.stat().st_size if part.exists() else 0
            kept = f"kept in {part}; run again to resume from there" if got else "so nothing to resume"
            raise DownloadError(
                f"{url}: gave up after {retries} attempts ({last!r}); received {got} bytes, {kept}"
            ) from last


def _discard(part: Path) -> None:
    part.unlink(missing_ok=True)
    Path(f"{part}.validator").unlink(missing_ok=True)


def download_release(
    out_dir: str | os.PathLike[str],
    langs: str | Iterable[str],
    subsets: str | list[str] | None = None,
    base_url: str | None = None,
    *,
    retries: int = 5,
    timeout: float = 60.0,
    force: bool = False,
    progress: bool = True,
    backoff: float | None = None,
) -> DownloadReport:
    """Fetch ``<base>/<release_folder>/<file_code>.json`` for each language and subset into ``out_dir``.

    The layout matches the original release, which ``okapi-hf data build --raw-dir`` reads.
    ``base_url`` defaults to ``$OKAPI_HF_BASE_URL``, then to the original (now offline) host.
    A file that fails does not stop the others; one ``DownloadError`` at the end lists every failure.
    A body that is not a JSON array of rows (an HTML error page, say) is never saved nor pinned. The
    folder is locked for the run, so a second download into it is refused with this one's pid.
    """
    out = Path(out_dir)
    base = check_base_url(base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL)
    if retries < 1:
        raise DownloadError(f"retries must be 1 or more (--retries), got {retries}")
    codes, wanted = resolve_langs(langs), resolve_subsets(subsets)  # bad values fail before any request
    if out.exists() and not out.is_dir():
        raise DownloadError(f"--out {out} is a file; expected the raw folder to download into")
    real = Path(os.path.realpath(out))
    if not real.name:
        raise DownloadError(f"--out {out} is the root folder; choose a folder for the raw release files")
    with locked(real, what=f"the raw folder {out}"):
        return _download(out, codes, wanted, base, retries, timeout, force, progress, backoff)


def _download(
    out: Path,
    codes: list[str],
    wanted: list[Subset],
    base: str,
    retries: int,
    timeout: float,
    force: bool,
    progress: bool,
    backoff: float | None,
) -> DownloadReport:
    """The loop of :func:`download_release`, under its lock."""
    manifest_path = out / MANIFEST_NAME
    manifest = read_manifest(manifest_path)
    report, failures = DownloadReport(), []
    for code in codes:
        lang = get_language(code)
        for subset in wanted:
            if subset.name not in lang.subsets:
                reason = f"the release has no {subset.name} data for {lang.name}"
                report.skipped.append((code, subset.name, reason))
                continue
            rel = f"{subset.release_folder}/{lang.file_code}.json"
            report.paths[(code, subset.name)] = dest = out / rel
            url, expected = f"{base}/{rel}", manifest.get(rel)
            try:
                actual = _one_file(
                    url, dest, expected, manifest_path, report, force, retries, timeout, backoff, progress
                )
            except DiskFullError:
                raise  # every later file would fail the same way
            except DownloadError as exc:  # keep going: the other files may well be fine
                failures.append(exc)
                continue
            if actual != expected:
                manifest[rel] = actual
                try:
                    write_manifest(manifest_path, manifest)
                except OSError as exc:
                    if not is_disk_full(exc):
                        raise
                    raise DiskFullError(
                        f"{manifest_path}: the disk is full; {dest} is complete but not yet pinned, and the "
                        "previous manifest is unchanged; free some space and run again to pin it"
                    ) from None
    if len(failures) == 1 and len(report.paths) == 1:
        raise failures[0]  # one file asked for, one line to say what went wrong
    if failures:
        listed = "\n".join(f"  {exc}" for exc in failures)
        raise DownloadError(f"{len(failures)} of {len(report.paths)} files failed:\n{listed}") from failures[
            0
        ]
    return report


def _one_file(
    url: str,
    dest: Path,
    expected: str | None,
    manifest_path: Path,
    report: DownloadReport,
    force: bool,
    retries: int,
    timeout: float,
    backoff: float | None,
    progress: bool,
) -> str:
    """Verify, hash or fetch one file; returns its sha256 once its content is a release file."""
    if dest.exists() and not force:
        actual = sha256_file(dest)
        if expected is not None and actual != expected:
            raise _mismatch(url, dest, expected, actual, manifest_path)
        if problem := release_json_problem(dest):
            raise DownloadError(
                f"{dest} is {problem}, not a release file, so it is not pinned in {manifest_path.name}; "
                "delete it, or pass force=True (--force on the CLI) to download it again"
            )
        (report.hashed if expected is None else report.verified).append(dest)
        return actual
    if force:
        _discard(dest.with_name(dest.name + ".part"))
    digest: dict[str, str] = {}

    def check(part: Path) -> None:
        digest["sha"] = sha256_file(part)
        if expected is not None and digest["sha"] != expected and not force:  # changed upstream
            raise DownloadError(
                f"{url}: sha256 {digest['sha']} of the download does not match {expected} recorded in "
                f"{manifest_path}, so nothing was saved; pass force=True (--force on the CLI) to take the "
                "changed file"
            )
        if problem := release_json_problem(part):
            raise DownloadError(
                f"{url}: the server answered but sent {problem}, not the release's JSON array; nothing "
                f"was saved as {dest} nor pinned (a proxy or error page? check the base URL)"
            )

    fetch(url, dest, retries=retries, timeout=timeout, backoff=backoff, progress=progress, check=check)
    report.downloaded.append(dest)
    return digest["sha"]
