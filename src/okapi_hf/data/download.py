"""Fetch the original Okapi release files, resumably, and pin them with a sha256 manifest.

Each file streams into ``<file>.part``; a dropped transfer resumes with ``Range`` plus ``If-Range`` (the
first response's ETag or Last-Modified, kept in ``<file>.part.validator``) so a changed file is refetched,
not spliced. ``SHA256SUMS`` (``sha256sum -c`` format) pins what was fetched; re-runs verify, not refetch.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from okapi_hf.data.schema import resolve_subsets
from okapi_hf.errors import DownloadError
from okapi_hf.languages import get_language, resolve_langs

DEFAULT_BASE_URL = "http://nlp.uoregon.edu/download/okapi-data/datasets"
BASE_URL_ENV = "OKAPI_HF_BASE_URL"
MANIFEST_NAME = "SHA256SUMS"
CHUNK_SIZE = 1 << 16
DEFAULT_BACKOFF = 1.0  # seconds before the second attempt, doubling after; read at call time
# Failures worth another attempt: dropped or stalled connections, short bodies, refused connects.
_TRANSIENT = (http.client.HTTPException, ConnectionError, TimeoutError, urllib.error.URLError)


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
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(f"{entries[name]}  {name}\n" for name in sorted(entries)), encoding="utf-8")
    os.replace(tmp, path)


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
) -> None:
    """Download ``url`` to ``dest`` via ``dest.part``, retrying dropped transfers from where they stopped."""
    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    last: Exception | None = None
    with tqdm(unit="B", unit_scale=True, unit_divisor=1024, desc=dest.name, disable=not progress) as bar:
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
    os.replace(part, dest)
    Path(f"{part}.validator").unlink(missing_ok=True)


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
    """
    out = Path(out_dir)
    base = (base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL).rstrip("/")
    manifest_path = out / MANIFEST_NAME
    manifest = read_manifest(manifest_path)
    report, failures = DownloadReport(), []
    for code in resolve_langs(langs):
        lang = get_language(code)
        for subset in resolve_subsets(subsets):
            if subset.name not in lang.subsets:
                reason = f"the release has no {subset.name} data for {lang.name}"
                report.skipped.append((code, subset.name, reason))
                continue
            rel = f"{subset.release_folder}/{lang.file_code}.json"
            report.paths[(code, subset.name)] = dest = out / rel
            url, expected = f"{base}/{rel}", manifest.get(rel)
            try:
                if dest.exists() and not force:
                    actual = sha256_file(dest)
                    if expected is not None and actual != expected:
                        raise _mismatch(url, dest, expected, actual, manifest_path)
                    (report.hashed if expected is None else report.verified).append(dest)
                else:
                    if force:
                        _discard(dest.with_name(dest.name + ".part"))
                    fetch(url, dest, retries=retries, timeout=timeout, backoff=backoff, progress=progress)
                    actual = sha256_file(dest)
                    if expected is not None and actual != expected and not force:  # changed upstream
                        raise _mismatch(url, dest, expected, actual, manifest_path)
                    report.downloaded.append(dest)
            except DownloadError as exc:  # keep going: the other files may well be fine
                failures.append(exc)
                continue
            if actual != expected:
                manifest[rel] = actual
                write_manifest(manifest_path, manifest)
    if failures:
        listed = "\n".join(f"  {exc}" for exc in failures)
        raise DownloadError(f"{len(failures)} of {len(report.paths)} files failed:\n{listed}") from failures[
            0
        ]
    return report
