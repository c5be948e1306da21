"""Build the no-code dataset folder: Parquet shards plus a dataset card with one config each.

The folder is what ``load_dataset(folder, "vi")`` reads and what gets published to the Hub:

    <out>/README.md                               card; YAML declares configs and typed features
    <out>/okapi_build.json                        per file: source sha256, counts, skips by reason
    <out>/data/<lang>/<subset>/<split>-00000-of-00001.parquet

Building more languages into an existing folder adds them; the card always describes the
whole folder.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from okapi_hf.cards import render_dataset_card
from okapi_hf.data.raw import IngestReport, ingest_file, raw_path
from okapi_hf.data.schema import Subset, resolve_subsets
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
            split = self.splits.get(_config(r.lang, r.subset), {})
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


def _config(lang: str, subset: str) -> str:
    return lang if subset == "sft" else f"{lang}-{subset}"


def split_rows(rows: list[dict[str, Any]], fraction: float, seed: int) -> dict[str, list[dict[str, Any]]]:
    """A seeded train/validation split; at least one validation row whenever there are two rows."""
    n_val = max(1, round(len(rows) * fraction)) if len(rows) >= 2 and fraction > 0 else 0
    order = np.random.default_rng(seed).permutation(len(rows))
    val_idx = set(order[:n_val].tolist())
    splits = {
        "train": [r for i, r in enumerate(rows) if i not in val_idx],
        "validation": [r for i, r in enumerate(rows) if i in val_idx],
    }
    return {name: part for name, part in splits.items() if part}


def _write_split(rows: list[dict[str, Any]], subset: Subset, folder: Path, split: str) -> int:
    """Write one split as Parquet shards carrying the datasets features; returns Arrow bytes."""
    schema = subset.features.arrow_schema
    table = pa.Table.from_pylist(rows, schema=schema)
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

    Every raw file is checked before anything is written. Rows that cannot be used stop the
    build with a report, unless ``skip_invalid`` is set; then they are left out and counted.
    """
    out_dir = Path(out_dir)
    result = BuildResult(out_dir=out_dir)
    jobs: list[tuple[str, Subset, Path]] = []
    missing = []
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

    ingested = []
    for lang, subset, path in tqdm(jobs, desc="reading raw files", unit="file", disable=not progress):
        rows, report = ingest_file(path, subset, lang)
        result.reports.append(report)
        ingested.append((lang, subset, path, rows, report))
    bad = [r for r in result.reports if r.n_skipped]
    if bad and not skip_invalid:
        details = "\n".join(r.describe() for r in bad)
        raise DataError(
            f"{sum(r.n_skipped for r in bad)} row(s) in {len(bad)} file(s) cannot be used; nothing was "
            f"written. Fix the data, or pass --skip-invalid (skip_invalid=True) to leave them out:\n"
            f"{details}\n\n{result.summary()}"
        )

    info = _read_build_info(out_dir)
    for lang, subset, path, rows, report in tqdm(
        ingested, desc="writing parquet", unit="file", disable=not progress
    ):
        folder = out_dir / "data" / lang / subset.name
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        config = subset.config_name(lang)
        split_info = {}
        for split, part in split_rows(rows, subset.validation_fraction, seed).items():
            split_info[split] = {
                "num_examples": len(part),
                "num_bytes": _write_split(part, subset, folder, split),
            }
        result.splits[config] = {s: v["num_examples"] for s, v in split_info.items()}
        info[config] = {
            "lang": lang,
            "subset": subset.name,
            "source": f"{subset.release_folder}/{path.name}",
            "source_sha256": _sha256(path),
            "read": report.read,
            "written": report.written,
            "cast_to_string": report.cast,
            "skipped": {reason: len(rows) for reason, rows in report.skipped.items()},
            "splits": split_info,
        }
    (out_dir / BUILD_INFO).write_text(
        json.dumps(dict(sorted(info.items())), indent=2, ensure_ascii=False) + "\n"
    )
    (out_dir / "README.md").write_text(render_dataset_card(info), encoding="utf-8")
    return result


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
