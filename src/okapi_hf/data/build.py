"""Build the no-code dataset folder: Parquet shards plus a dataset card with one config each.

The folder is what ``load_dataset(folder, "vi")`` reads and what gets published to the Hub:

    <out>/README.md                               card; YAML declares configs and typed features
    <out>/okapi_build.json                        per file: source sha256, counts, skips by reason
    <out>/data/<lang>/<subset>/<split>-00000-of-00001.parquet

Building more languages into an existing folder adds them; the card always describes the
whole folder. A ``SHA256SUMS`` manifest in the raw folder (``data download`` writes one) is checked.

The folder is replaced whole: the new one is built beside it (``.<out>.build-<pid>``, unchanged files
hard-linked from the old one), then swapped in with one atomic ``renameat2(RENAME_EXCHANGE)`` on Linux,
so a kill at any instant leaves either the old folder or the new one. Where the kernel or file system
cannot exchange, two renames are used and the next run finishes or rolls back a swap cut between them.
The folder is locked for the run (``<out>.lock``): a second build into it is refused with this pid.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import json
import os
import re
import shutil
import signal
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from okapi_hf.data.download import MANIFEST_NAME, DiskFullError, is_disk_full, read_manifest
from okapi_hf.data.raw import IngestReport, ingest_file, raw_path
from okapi_hf.data.schema import SUBSETS, Subset, resolve_subsets
from okapi_hf.errors import DataError
from okapi_hf.fsutil import atomic_write_text, fsync_dir, fsync_tree, locked, remove_tree
from okapi_hf.hub.cards import render_dataset_card
from okapi_hf.languages import get_language, resolve_langs

BUILD_INFO = "okapi_build.json"
MAX_SHARD_ROWS = 250_000
_LEFTOVER = re.compile(r"\.(build|new|old)-\d+|\.staging")  # after ".<out>": what a killed build left


@dataclass
class BuildResult:
    """What a build wrote, with the ingest report of every raw file it read."""

    out_dir: Path
    reports: list[IngestReport] = field(default_factory=list)
    splits: dict[str, dict[str, int]] = field(default_factory=dict)  # config -> split -> rows
    not_applicable: list[tuple[str, str]] = field(default_factory=list)  # (lang, subset) with no data
    recovered: str | None = None  # what this run repaired of an interrupted earlier build

    def summary(self) -> str:
        """A per-language table of rows read, written and skipped by reason."""
        head = f"{'lang':<5} {'subset':<8} {'read':>8} {'written':>8} {'train':>8} {'valid':>7} {'skipped':>8}  reasons"
        lines = [head, "-" * len(head)]
        for r in self.reports:
            split = self.splits.get(SUBSETS[r.subset].config_name(r.lang), {})
            reasons = "; ".join(f"{len(rows)} {reason}" for reason, rows in r.skipped.items())
            lines.append(
                f"{r.lang:<5} {r.subset:<8} {r.read:>8} {r.written:>8} {split.get('train', 0):>8} "
                f"{split.get('validation', 0):>7} {r.n_skipped:>8}  {reasons or '-'}"
            )
        if any(r.subset == "ranking" for r in self.reports):
            lines.append("ranking: 'read' counts pairwise rows, 'written' counts K-wise rankings")
        if any(r.cast for r in self.reports):
            lines.append(f"{sum(r.cast for r in self.reports)} non-string values were cast to strings")
        lines.extend(
            f"{lang}: no {subset} data exists for this language" for lang, subset in self.not_applicable
        )
        return "\n".join(lines)


def split_rows(rows: list[dict[str, Any]], fraction: float, seed: int) -> dict[str, list[dict[str, Any]]]:
    """A seeded train/validation split keyed on each row's source row number.

    Okapi's files are parallel translations of one English list, so keying on the source row
    (not on position among the rows kept) sends the same instruction to validation in every
    language, and no translation of a validation prompt leaks into another language's train.
    At least one validation row whenever there are two rows.
    """
    n_val = max(1, round(len(rows) * fraction)) if len(rows) >= 2 and fraction > 0 else 0
    # Rows that share a prompt (one instruction with two outputs) go to the same split, keyed on the
    # first one's source row: otherwise validation would score a prompt the model was trained on.
    groups: dict[Any, list[dict[str, Any]]] = {}
    first: dict[tuple[Any, Any], str] = {}
    for row in rows:
        source_row = row["id"].rsplit("-", 1)[-1]  # ids are <lang>-<subset>-<source row>
        if "instruction" in row:
            source_row = first.setdefault((row["instruction"], row.get("input", "")), source_row)
        groups.setdefault(source_row, []).append(row)

    def rank(source_row: str) -> bytes:
        return hashlib.blake2b(f"{seed}:{source_row}".encode(), digest_size=8).digest()

    val_ids: set[str] = set()
    for source_row in sorted(groups, key=rank):
        if len(val_ids) >= n_val:
            break
        val_ids.update(row["id"] for row in groups[source_row])
    splits = {
        "train": [r for r in rows if r["id"] not in val_ids],
        "validation": [r for r in rows if r["id"] in val_ids],
    }
    return {name: part for name, part in splits.items() if part}


def _write_split(
    rows: list[dict[str, Any]], subset: Subset, folder: Path, split: str, writing: list[Path] | None = None
) -> int:
    """Write one split as Parquet shards carrying the datasets features; returns Arrow bytes.

    ``writing[0]`` names the shard being written, for a disk-full message.
    """
    table = pa.Table.from_pylist(rows, schema=subset.features.arrow_schema)
    n_shards = max(1, -(-table.num_rows // MAX_SHARD_ROWS))
    for i in range(n_shards):
        shard = table.slice(i * MAX_SHARD_ROWS, MAX_SHARD_ROWS)
        path = folder / f"{split}-{i:05d}-of-{n_shards:05d}.parquet"
        if writing is not None:
            writing[0] = path
        pq.write_table(shard, path)
    return table.nbytes


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def build_dataset(
    raw_dir: str | Path,
    out_dir: str | Path = "okapi_hf",
    langs: str | list[str] = "okapi",
    subsets: str | list[str] | None = None,
    *,
    skip_invalid: bool = False,
    seed: int = 42,
    progress: bool = True,
) -> BuildResult:
    """Ingest ``<raw_dir>/<release folder>/<lang>.json`` files and write the dataset folder.

    The new folder is built beside ``out_dir`` and replaces it whole only when every file passed, so
    a failure, a kill or a full disk leaves the previous build as it was. Rows that cannot be used
    stop the build with a report, unless ``skip_invalid`` is set; then they are left out and counted.
    """
    raw_dir, out_dir = Path(raw_dir), Path(out_dir)
    codes, wanted = resolve_langs(langs), resolve_subsets(subsets)  # bad values fail before any work
    target = _check_paths(raw_dir, out_dir)
    result = BuildResult(out_dir=out_dir)
    with locked(target, what=f"the build folder {out_dir}"):
        result.recovered = recover_interrupted_build(target)
        old_info = _existing_build(target, out_dir)
        jobs = _plan(raw_dir, codes, wanted, result)
        manifest = read_manifest(raw_dir / MANIFEST_NAME)
        work = _sibling(target, "build")
        remove_tree(work)
        writing = [work]  # the file being written, for a disk-full message
        try:
            records = _write_configs(jobs, manifest, work, seed, result, progress, writing)
            bad = [r for r in result.reports if r.n_skipped]
            if bad and not skip_invalid:
                raise DataError(
                    f"{sum(r.n_skipped for r in bad)} row(s) in {len(bad)} file(s) cannot be used; nothing "
                    "was written. Fix the data, or pass --skip-invalid (skip_invalid=True) to leave them out:\n"
                    + "\n".join(r.describe() for r in bad)
                    + f"\n\n{result.summary()}"
                )
            _carry_over(target, work, records, writing)
            info = dict(sorted({**old_info, **records}.items()))
            writing[0] = work / BUILD_INFO
            atomic_write_text(work / BUILD_INFO, json.dumps(info, indent=2, ensure_ascii=False) + "\n")
            writing[0] = work / "README.md"
            atomic_write_text(work / "README.md", render_dataset_card(info))
            writing[0] = work
            fsync_tree(work)
            _swap_in(work, target)
        except OSError as exc:
            if not is_disk_full(exc):
                raise
            kept = f"{out_dir} still holds the previous build" if target.exists() else "nothing was written"
            raise DiskFullError(
                f"{writing[0]}: the disk is full (no space left while building {out_dir}); {kept}; free "
                "some space and build again"
            ) from None
        finally:
            remove_tree(work)
    return result


def _check_paths(raw_dir: Path, out_dir: Path) -> Path:
    """Refuse unusable folders before reading anything; returns ``out_dir`` with links resolved."""
    if not raw_dir.exists():
        raise DataError(
            f"--raw-dir {raw_dir} does not exist; expected a folder in the release layout "
            "(`okapi-hf data download` or `okapi-hf data sample` writes one)"
        )
    if not raw_dir.is_dir():
        raise DataError(f"--raw-dir {raw_dir} is a file; expected a folder in the release layout")
    if out_dir.exists() and not out_dir.is_dir():
        raise DataError(f"--out {out_dir} is a file; expected a folder to build the dataset into")
    target, here = Path(os.path.realpath(out_dir)), Path.cwd().resolve()
    if target == Path(os.path.realpath(raw_dir)):
        raise DataError(f"--out {out_dir} is the --raw-dir folder; build into a folder of its own")
    if target == here or target in here.parents:
        raise DataError(
            f"--out {out_dir} is or contains the current folder; a build replaces its folder whole, "
            "so choose a folder of its own, e.g. --out okapi_hf"
        )
    return target


def _existing_build(target: Path, out_dir: Path) -> dict[str, Any]:
    """The build record of the folder to replace; a folder that `data build` did not write is refused."""
    if not target.exists():
        return {}
    if (target / BUILD_INFO).exists():
        return _read_build_info(target)
    foreign = sorted(p.name for p in target.iterdir())
    if foreign:
        shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        raise DataError(
            f"{out_dir} already holds files that `okapi-hf data build` did not write ({shown}) and no "
            f"{BUILD_INFO}; choose an empty or new --out folder"
        )
    return {}


def _write_configs(
    jobs: list[tuple[str, Subset, Path]],
    manifest: dict[str, str],
    work: Path,
    seed: int,
    result: BuildResult,
    progress: bool,
    writing: list[Path],
) -> dict[str, dict[str, Any]]:
    """Ingest each raw file and write its config's Parquet shards under ``work``; returns the records."""
    records: dict[str, dict[str, Any]] = {}
    for lang, subset, path in tqdm(jobs, desc="building", unit="file", disable=not progress):
        source = f"{subset.release_folder}/{path.name}"
        sha = _sha256(path)
        if manifest.get(source, sha) != sha:
            raise DataError(f"{path}: sha256 {sha} does not match {manifest[source]} in {MANIFEST_NAME}")
        rows, report = ingest_file(path, subset, lang)
        result.reports.append(report)
        folder = work / "data" / lang / subset.name
        writing[0] = folder
        folder.mkdir(parents=True)
        splits = {
            split: {
                "num_examples": len(part),
                "num_bytes": _write_split(part, subset, folder, split, writing),
            }
            for split, part in split_rows(rows, subset.validation_fraction, seed).items()
        }
        result.splits[subset.config_name(lang)] = {s: v["num_examples"] for s, v in splits.items()}
        records[subset.config_name(lang)] = {
            "lang": lang,
            "subset": subset.name,
            "source": source,
            "source_sha256": sha,
            "read": report.read,
            "written": report.written,
            "cast_to_string": report.cast,
            "skipped": {reason: len(rows) for reason, rows in report.skipped.items()},
            "seed": seed,
            "validation_fraction": subset.validation_fraction,
            "splits": splits,
        }
    return records


def _plan(
    raw_dir: Path, codes: list[str], wanted: list[Subset], result: BuildResult
) -> list[tuple[str, Subset, Path]]:
    """The (lang, subset, raw file) jobs; every missing file is named up front."""
    jobs, missing = [], []
    for lang in codes:
        for subset in wanted:
            if subset.name not in get_language(lang).subsets:
                result.not_applicable.append((lang, subset.name))
                continue
            try:
                jobs.append((lang, subset, raw_path(raw_dir, subset, lang)))
            except DataError as e:
                missing.append(str(e))
    if missing:
        raise DataError(f"{len(missing)} raw file(s) missing under {raw_dir}:\n" + "\n".join(missing))
    if not jobs:
        names = ",".join(s.name for s in wanted)
        raise DataError(
            f"nothing to build: no raw data exists for langs={','.join(codes)!r}, subsets={names!r}"
        )
    return jobs


def _carry_over(target: Path, work: Path, records: dict[str, dict[str, Any]], writing: list[Path]) -> None:
    """Give the new folder everything of the old one that this build does not replace.

    Files are hard-linked (no copy, no extra space; nothing is ever rewritten in place), copied where
    the file system has no hard links; symbolic links stay links.
    """
    if not target.exists():
        return
    replaced = {Path("data", rec["lang"], rec["subset"]) for rec in records.values()}
    replaced |= {Path(BUILD_INFO), Path("README.md")}
    for root, dirs, files in os.walk(target):
        rel = Path(root).relative_to(target)
        (work / rel).mkdir(exist_ok=True)
        for name in [*dirs, *files]:
            src, dst = Path(root, name), work / rel / name
            if rel / name in replaced or (name in dirs and not src.is_symlink()):
                continue
            writing[0] = dst
            if src.is_symlink():
                os.symlink(os.readlink(src), dst)
                continue
            try:
                os.link(src, dst)
            except OSError as exc:
                if exc.errno not in (errno.EPERM, errno.EXDEV, errno.EMLINK, errno.ENOTSUP):
                    raise
                shutil.copy2(src, dst)
        dirs[:] = [d for d in dirs if rel / d not in replaced and not Path(root, d).is_symlink()]


def _sibling(target: Path, kind: str, pid: int | None = None) -> Path:
    return target.parent / f".{target.name}.{kind}-{os.getpid() if pid is None else pid}"


def _leftovers(target: Path) -> dict[str, list[Path]]:
    """Folders a killed build left beside ``target``, by kind (build, new, old, staging)."""
    found: dict[str, list[Path]] = {"build": [], "new": [], "old": [], "staging": []}
    prefix = f".{target.name}"
    if not target.parent.is_dir():
        return found
    for path in target.parent.iterdir():
        rest = path.name[len(prefix) :] if path.name.startswith(prefix) else ""
        if match := _LEFTOVER.fullmatch(rest):
            found[match.group(1) or "staging"].append(path)
    return found


def interrupted_build(target: Path) -> Path | None:
    """The complete folder a swap cut short left beside a missing ``target`` (new, else old), if any."""
    found = _leftovers(target)
    for kind in ("new", "old"):
        if found[kind]:
            return max(found[kind], key=lambda p: p.stat().st_mtime)
    return None


def recover_interrupted_build(target: Path) -> str | None:
    """Finish or roll back a swap that a kill cut short, and delete what killed builds left.

    Call with the folder's lock held. Returns (and prints) one line saying what was done, or ``None``.
    """
    found = _leftovers(target)
    if not any(found.values()):
        return None
    note = None
    if not target.exists() and (keep := interrupted_build(target)):
        os.rename(keep, target)
        fsync_dir(target.parent)
        done = "finished" if keep in found["new"] else "rolled back"
        what = "the new build" if done == "finished" else "the previous build"
        note = f"{done} a build that was interrupted while swapping folders: {target} holds {what} again"
    for paths in found.values():
        for path in paths:
            if path.exists():
                remove_tree(path)
    note = note or f"removed what an interrupted build left beside {target}"
    print(f"okapi-hf: {note}", file=sys.stderr)
    return note


@contextlib.contextmanager
def _deferred_interrupts() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM back for the few renames of a swap; they act right after it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    signals = [sig for sig in (signal.SIGINT, signal.SIGTERM) if signal.getsignal(sig) is not None]
    previous = {sig: signal.signal(sig, lambda signum, frame: caught.append(signum)) for sig in signals}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if caught:
            signal.raise_signal(caught[0])


def _exchange(a: Path, b: Path) -> bool:
    """Swap two folders in one atomic step (Linux ``renameat2`` with ``RENAME_EXCHANGE``).

    Returns False where the C library, kernel or file system cannot, so the caller falls back.
    """
    if not sys.platform.startswith("linux"):
        return False
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EXDEV, errno.EPERM, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def _swap_in(work: Path, target: Path) -> None:
    """Put the finished ``work`` folder at ``target``; the old folder ends up at ``work`` or is deleted."""
    with _deferred_interrupts():
        if not target.exists():
            os.rename(work, target)
        elif not _exchange(work, target):
            new, old = _sibling(target, "new"), _sibling(target, "old")
            os.rename(work, new)  # complete: a kill from here on is finished by the next run
            os.rename(target, old)
            os.rename(new, target)
            fsync_dir(target.parent)
            remove_tree(old)
        fsync_dir(target.parent)


def _read_build_info(out_dir: Path) -> dict[str, Any]:
    path = out_dir / BUILD_INFO
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(
            f"{path}: not a valid build record ({e.msg}); delete the folder and build again"
        ) from None
