"""Load one language, or a multilingual mixture, from a built folder or its Hub repository."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import datasets
import pyarrow as pa
from datasets import DatasetDict, concatenate_datasets

from okapi_hf.data.schema import Subset, get_subset
from okapi_hf.errors import DataError
from okapi_hf.languages import resolve_langs

DEFAULT_DATASET = "okapi_hf"  # the folder `okapi-hf data build` writes; OKAPI_HF_DATASET overrides
logger = logging.getLogger(__name__)


def load_dataset(
    langs: str | list[str],
    subset: str = "sft",
    path: str | os.PathLike | None = None,
    *,
    split: str | None = None,
    revision: str | None = None,
) -> DatasetDict | datasets.Dataset:
    """One language (``"vi"``) or a mixture (``"vi,de"``, ``"low"``) of one subset.

    ``path`` is a folder written by ``okapi-hf data build`` or a Hub repo id (default: the
    ``OKAPI_HF_DATASET`` variable, else ``./okapi_hf``). Mixtures concatenate the languages in
    the order given; the ``lang`` column keeps every row traceable.
    """
    path = str(path or os.environ.get("OKAPI_HF_DATASET", DEFAULT_DATASET))
    sub = get_subset(subset)
    codes = resolve_langs(langs)
    parts = {lang: _load_one(path, sub, lang, revision) for lang in codes}
    splits = sorted({s for p in parts.values() for s in p}, key=lambda s: (s != "train", s))
    for s in splits:
        lacking = [lang for lang, p in parts.items() if s not in p]
        if lacking:
            logger.warning("split %r of %s has no rows for %s", s, path, ", ".join(lacking))
    mixture = DatasetDict({s: concatenate_datasets([p[s] for p in parts.values() if s in p]) for s in splits})
    if split is None:
        return mixture
    if split not in mixture:
        raise DataError(f"split {split!r} not found in {path}; available: {', '.join(mixture)}")
    return mixture[split]


def _load_one(path: str, subset: Subset, lang: str, revision: str | None) -> DatasetDict:
    config = subset.config_name(lang)
    local = Path(path)
    if local.is_dir():
        return _load_local(local, subset, lang, config)
    _refuse_interrupted_build(local)
    if local.is_absolute() or path.startswith(".") or path.count("/") != 1:
        raise DataError(
            f"dataset {path!r} is neither a local folder nor a Hub repo id (ORG/NAME); "
            "build one with `okapi-hf data build --raw-dir DIR --out FOLDER`"
        )
    try:
        return datasets.load_dataset(path, config, revision=revision)
    except ValueError as e:
        if "not found" in str(e).lower() and config in str(e):
            raise DataError(f"config {config!r} is not in {path}: {e}") from None
        raise
    except (ConnectionError, OSError) as e:
        raise DataError(
            f"could not load {path!r} (config {config!r}): it is not a local folder and the Hub could not be "
            f"reached ({type(e).__name__}: {e}). Offline, build the folder with `okapi-hf data build` and "
            "pass its path."
        ) from None


def _load_local(folder: Path, subset: Subset, lang: str, config: str) -> DatasetDict:
    """Read a built folder's Parquet shards directly: same rows as the card's config, no YAML to parse."""
    if not (folder / "README.md").is_file():
        raise DataError(f"{folder} has no README.md: not a folder written by `okapi-hf data build`")
    shards = sorted((folder / "data" / lang / subset.name).glob("*-*-of-*.parquet"))
    if not shards:
        built = sorted(
            p.parent.name if p.name == "sft" else f"{p.parent.name}-{p.name}" for p in folder.glob("data/*/*")
        )
        raise DataError(f"config {config!r} is not in {folder}; it has: {', '.join(built) or 'nothing'}")
    data_files: dict[str, list[str]] = {}
    for shard in shards:
        data_files.setdefault(shard.name.split("-", 1)[0], []).append(str(shard))
    try:
        loaded = datasets.load_dataset("parquet", data_files=data_files, features=subset.features)
    except (pa.ArrowException, datasets.exceptions.DatasetGenerationError) as e:
        cause = e.__cause__ or e
        raise DataError(
            f"{folder}: the Parquet shards of config {config!r} cannot be read ({type(cause).__name__}: "
            f"{str(cause).splitlines()[0] if str(cause) else ''}); build the folder again"
        ) from None
    _check_against_record(folder, config, loaded)
    return loaded


def _check_against_record(folder: Path, config: str, loaded: DatasetDict) -> None:
    """The rows read must be the rows the build recorded: a folder changed by hand is never half-used."""
    path = folder / "okapi_build.json"
    if not path.is_file():
        return  # a folder laid out by hand: nothing to compare with
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not a valid build record ({e}); build the folder again") from None
    splits = record.get(config, {}).get("splits") if isinstance(record, dict) else None
    if not isinstance(splits, dict):
        raise DataError(
            f"{folder}: config {config!r} has Parquet shards but {path.name} does not list it; build the folder again"
        )
    found = {name: part.num_rows for name, part in loaded.items()}
    recorded = {name: info.get("num_examples") for name, info in splits.items()}
    if found != recorded:
        raise DataError(
            f"{folder}: config {config!r} has {found} rows but {path.name} records {recorded}: the folder "
            "was changed after its build; build it again"
        )


def _refuse_interrupted_build(local: Path) -> None:
    """A missing folder that a cut-short swap left beside itself: say so rather than 'not found'."""
    from okapi_hf.data.build import interrupted_build

    if local.parent.is_dir() and (left := interrupted_build(Path(os.path.realpath(local)))):
        raise DataError(
            f"{local} is missing, but an interrupted `okapi-hf data build` left {left} beside it; run the "
            "same build again (it finishes the swap first)"
        )
