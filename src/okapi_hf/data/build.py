"""Build the no-code dataset folder: Parquet shards plus a dataset card with one config each.

The folder is what ``load_dataset(folder, "vi")`` reads and what gets published to the Hub:

    <out>/README.md                               card; YAML declares configs and typed features
    <out>/okapi_build.json                        per file: source sha256, counts, skips by reason
    <out>/data/<lang>/<subset>/<split>-00000-of-00001.parquet

Building more languages into an existing folder adds them; the card always describes the
whole folder. A ``SHA256SUMS`` manifest in the raw folder (``data download`` writes one) is checked.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from okapi_hf.cards import render_dataset_card
from okapi_hf.data.download import MANIFEST_NAME, read_manifest
from okapi_hf.data.raw import IngestReport, ingest_file, raw_path
from okapi_hf.data.schema import SUBSETS, Subset, resolve_subsets
from okapi_hf.errors import DataError
from okapi_hf.languages import get_language, resolve_langs

BUILD_INFO = "okapi_build.json"
MAX_SHARD_ROWS = 250_000


@dataclass
class BuildResult:
    """What a build wrote, with the ingest report of every raw file it read."""

    out_dir: Path
    reports: list[IngestReport] = field(default_factory=list)
    splits: dict[str, dict[str, int]] = field(default_factory=dict)  # config -> split -> rows
    not_applicable: list[tuple[str, str]] = field(default_factory=list)  # (lang, subset) with no data

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

    def rank(row: dict[str, Any]) -> bytes:
        source_row = row["id"].rsplit("-", 1)[-1]  # ids are <lang>-<subset>-<source row>
        return hashlib.blake2b(f"{seed}:{source_row}".encode(), digest_size=8).digest()

    val_ids = {row["id"] for row in sorted(rows, key=rank)[:n_val]}
    splits = {
        "train": [r for r in rows if r["id"] not in val_ids],
        "validation": [r for r in rows if r["id"] in val_ids],
    }
    return {name: part for name, part in splits.items() if part}


def _write_split(rows: list[dict[str, Any]], subset: Subset, folder: Path, split: str) -> int:
    """Write one split as Parquet shards carrying the datasets features; returns Arrow bytes."""
    table = pa.Table.from_pylist(rows, schema=subset.features.arrow_schema)
    n_shards = max(1, -(-table.num_rows // MAX_SHARD_ROWS))
    for i in range(n_shards):
        shard = table.slice(i * MAX_SHARD_ROWS, MAX_SHARD_ROWS)
        pq.write_table(shard, folder / f"{split}-{i:05d}-of-{n_shards:05d}.parquet")
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

    Files are read one at a time and staged beside ``out_dir``; only when every file passed
    does the staged data replace the old. Rows that cannot be used stop the build with a
    report, unless ``skip_invalid`` is set; then they are left out and counted.
    """
    out_dir = Path(out_dir)
    result = BuildResult(out_dir=out_dir)
    jobs = _plan(Path(raw_dir), out_dir, langs, subsets, result)
    manifest = read_manifest(Path(raw_dir) / MANIFEST_NAME)
    staging = out_dir.parent / f".{out_dir.name}.staging"
    shutil.rmtree(staging, ignore_errors=True)
    records: dict[str, dict[str, Any]] = {}
    try:
        for lang, subset, path in tqdm(jobs, desc="building", unit="file", disable=not progress):
            source = f"{subset.release_folder}/{path.name}"
            sha = _sha256(path)
            if manifest.get(source, sha) != sha:
                raise DataError(f"{path}: sha256 {sha} does not match {manifest[source]} in {MANIFEST_NAME}")
            rows, report = ingest_file(path, subset, lang)
            result.reports.append(report)
            folder = staging / "data" / lang / subset.name
            folder.mkdir(parents=True)
            splits = {
                split: {"num_examples": len(part), "num_bytes": _write_split(part, subset, folder, split)}
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
        bad = [r for r in result.reports if r.n_skipped]
        if bad and not skip_invalid:
            raise DataError(
                f"{sum(r.n_skipped for r in bad)} row(s) in {len(bad)} file(s) cannot be used; nothing was "
                f"written. Fix the data, or pass --skip-invalid (skip_invalid=True) to leave them out:\n"
                + "\n".join(r.describe() for r in bad)
                + f"\n\n{result.summary()}"
            )
        _publish(staging, out_dir, records)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return result


def _plan(
    raw_dir: Path, out_dir: Path, langs: str | list[str], subsets: str | list[str] | None, result: BuildResult
) -> list[tuple[str, Subset, Path]]:
    """The (lang, subset, raw file) jobs; every missing file and a foreign output are named up front."""
    if (out_dir / "README.md").exists() and not (out_dir / BUILD_INFO).exists():
        raise DataError(
            f"{out_dir} already has a README.md that `okapi-hf data build` did not write; "
            "choose an empty or new --out folder"
        )
    jobs, missing = [], []
    for lang in resolve_langs(langs):
        for subset in resolve_subsets(subsets):
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
        raise DataError(f"nothing to build: no raw data exists for langs={langs!r}, subsets={subsets!r}")
    return jobs


def _publish(staging: Path, out_dir: Path, records: dict[str, dict[str, Any]]) -> None:
    """Move staged configs into ``out_dir`` and rewrite the build record and the card."""
    info = _read_build_info(out_dir)
    for rec in records.values():
        target = out_dir / "data" / rec["lang"] / rec["subset"]
        shutil.rmtree(target, ignore_errors=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        (staging / "data" / rec["lang"] / rec["subset"]).rename(target)
    info = dict(sorted({**info, **records}.items()))
    (out_dir / BUILD_INFO).write_text(json.dumps(info, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out_dir / "README.md").write_text(render_dataset_card(info), encoding="utf-8")


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
