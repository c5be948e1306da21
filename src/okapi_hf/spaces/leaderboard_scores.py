"""Leaderboard records: the Okapi authors' CSV and ``okapi-hf eval run`` folders, read into :class:`Score`.

Two kinds of input end up as the same long-form records: the Okapi authors' base-model scores (a CSV
from their evaluation logs, the Space's seed data) and the folders written by ``okapi-hf eval run``.
A *view* is one benchmark scored on one split; :func:`view_of` says which view a task key belongs
to. The tables (:mod:`okapi_hf.spaces.leaderboard_tables`) work on these records only.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from okapi_hf.errors import DataError, UnknownLanguageError
from okapi_hf.eval.report import (
    BENCHMARK_NAMES,
    METRICS,
    SPLITS,
    collect_scores,
    task_details,
)
from okapi_hf.languages import get_language

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)

SEED_ENV = "OKAPI_LEADERBOARD_SEED"
RESULTS_ENV = "OKAPI_LEADERBOARD_RESULTS"

REFERENCE_SOURCE = "Okapi authors' evaluation logs (base models)"
EVAL_SOURCE = "okapi-hf eval run"

# okapi-hf's task keys (okapi_{key}_{lang}) -> the benchmark they score: a `_val` task is the same
# benchmark on another split (SPLITS says which).
TASK_BENCHMARK: dict[str, str] = {key: key.removesuffix("_val") for key in BENCHMARK_NAMES}
# Display names, in the order the benchmark selector lists them.
BENCHMARKS: dict[str, str] = {
    bench: BENCHMARK_NAMES[bench] for bench in dict.fromkeys(TASK_BENCHMARK.values())
}
# The authors' CSV names its benchmarks differently from the tasks. Their ARC rows were scored on the
# validation files (an early loader of theirs read validation for test), so they are `arc_val` rows.
# okapi-hf's own task keys are accepted too, each meaning the split its task scores.
AUTHORS_BENCHMARKS: dict[str, str] = {
    "arc-challenge": "arc_val",
    "hellaswag": "hellaswag",
    "mmlu": "mmlu",
    "truthfulqa-mc": "truthfulqa",
}
CSV_BENCHMARKS: dict[str, str] = {**AUTHORS_BENCHMARKS, **{key: key for key in BENCHMARK_NAMES}}
# The split of the authors' rows per benchmark: the view a benchmark opens on (like for like with them).
REFERENCE_SPLITS: dict[str, str] = {TASK_BENCHMARK[key]: SPLITS[key] for key in AUTHORS_BENCHMARKS.values()}
# Metrics that are a share of right answers, whose standard error gives the number of documents.
BINARY_METRICS: tuple[str, ...] = ("acc", "acc_norm", "mc1")
CSV_REQUIRED: tuple[str, ...] = ("benchmark", "lang", "model")


@dataclass(frozen=True)
class Score:
    """One number: ``value`` (in [0, 1]) of ``metric`` for ``model`` on ``benchmark``/``split`` in ``lang``.

    ``docs`` is how many documents were scored and ``docs_in_split`` how many the split has (``None``
    where unknown); ``partial`` marks a ``--limit`` run, which scored only some of them.
    """

    model: str
    source: str
    benchmark: str
    split: str
    lang: str
    metric: str
    value: float
    docs: int | None
    docs_in_split: int | None
    partial: bool
    origin: str  # where the number was read (file and row), for error messages about duplicates


def view_of(task_key: str) -> tuple[str, str]:
    """``(benchmark, split)`` of one of okapi-hf's task keys (``arc_val`` -> ``("arc", "validation")``)."""
    return TASK_BENCHMARK[task_key], SPLITS[task_key]


def view_label(benchmark: str, split: str) -> str:
    """What the benchmark selector shows: the benchmark and, always, the split."""
    return f"{BENCHMARKS[benchmark]}, {split} split"


def view_key(benchmark: str, split: str) -> str:
    """The selector's value for a view (``arc/validation``); :func:`parse_view_key` reads it back."""
    return f"{benchmark}/{split}"


def parse_view_key(key: str) -> tuple[str, str]:
    """``(benchmark, split)`` of a selector value made by :func:`view_key`."""
    benchmark, _, split = key.partition("/")
    return benchmark, split


# ---------------------------------------------------------------------------------------------
# Reading the inputs
# ---------------------------------------------------------------------------------------------


def _score_value(text: Any, where: str) -> float:
    """A score in [0, 1]; anything else names ``where`` (file, row, field) and what was expected."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise DataError(f"{where}: expected a number in [0, 1], got {text!r}") from None
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise DataError(f"{where}: expected a number in [0, 1], got {text!r}")
    return value


def _stderr_value(text: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise DataError(f"{where}: expected a standard error (a number >= 0), got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise DataError(f"{where}: expected a standard error (a number >= 0), got {text!r}")
    return value


def docs_from_stderr(cells: dict[str, str], where: str) -> int | None:
    """The number of documents behind a row of the authors' logs, which do not state it.

    lm-eval's standard error of a mean of 0/1 scores is ``sqrt(p(1-p)/(n-1))``, so
    ``n = p(1-p)/se^2 + 1``. Only a count that comes out whole, and the same from every 0/1 metric of
    the row, is returned; rounded or missing numbers give ``None`` (unknown) rather than a guess.
    """
    counts = set()
    for metric in BINARY_METRICS:
        value, stderr = cells.get(metric), cells.get(f"{metric}_stderr")
        if not value or not stderr:
            continue
        se = _stderr_value(stderr, f"{where}, field '{metric}_stderr'")
        p = float(value)  # already checked by _score_value
        if se == 0:
            continue  # p is 0 or 1: any n fits
        n = p * (1 - p) / se**2 + 1
        if abs(n - round(n)) > 0.01:
            return None
        counts.add(round(n))
    return counts.pop() if len(counts) == 1 else None


def _csv_row_scores(
    cells: dict[str, str], metric_columns: Sequence[str], source: str, where: str, origin: str
) -> list[Score]:
    """The scores of one CSV row (its required fields already checked)."""
    task_key = CSV_BENCHMARKS.get(cells["benchmark"].lower())
    if task_key is None:
        raise DataError(
            f"{where}, field 'benchmark': unknown benchmark {cells['benchmark']!r}; "
            f"expected one of {', '.join(CSV_BENCHMARKS)}"
        )
    try:
        lang = get_language(cells["lang"]).code
    except UnknownLanguageError as err:
        raise DataError(f"{where}, field 'lang': {err}") from None
    values = {m: _score_value(cells[m], f"{where}, field {m!r}") for m in metric_columns if cells[m]}
    if not values:
        raise DataError(f"{where}: no score in any of the fields {', '.join(metric_columns)}")
    benchmark, split = view_of(task_key)
    docs = docs_from_stderr(cells, where)
    return [
        Score(
            model=cells["model"],
            source=source,
            benchmark=benchmark,
            split=split,
            lang=lang,
            metric=metric,
            value=value,
            docs=docs,
            docs_in_split=None,
            partial=False,  # the authors' logs are of full runs (their counts match the split sizes)
            origin=origin,
        )
        for metric, value in values.items()
    ]


def load_reference_csv(path: str | Path, source: str = REFERENCE_SOURCE) -> list[Score]:
    """Read a CSV shaped like the authors' ``reference_results_base_models.csv``.

    Columns ``benchmark``, ``lang``, ``model`` and at least one of ``acc``, ``acc_norm``, ``mc1``,
    ``mc2``; an empty cell is a metric the row does not have. ``acc_stderr``, ``acc_norm_stderr``
    and ``mc1_stderr``, where present, give the number of documents (:func:`docs_from_stderr`);
    ``task`` and ``mc2_stderr`` are ignored. The authors' benchmark names carry their splits
    (``arc-challenge`` rows are validation-split scores); okapi-hf's task keys mean their task's split.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"leaderboard CSV {path} does not exist (or is not a file)")
    scores: list[Score] = []
    seen: dict[tuple[str, str, str, str], int] = {}
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        missing = [c for c in CSV_REQUIRED if c not in header]
        if missing:
            raise DataError(
                f"{path}: the header lacks column(s) {', '.join(missing)}; "
                f"expected {', '.join(CSV_REQUIRED)} and some of {', '.join(METRICS)}, got {header or 'nothing'}"
            )
        metric_columns = [m for m in METRICS if m in header]
        if not metric_columns:
            raise DataError(f"{path}: the header has none of the score columns {', '.join(METRICS)}")
        for number, row in enumerate(reader, start=1):
            where = f"{path}: row {number} (line {reader.line_num})"
            if row.get(None):  # DictReader puts cells beyond the header under the key None
                raise DataError(
                    f"{where}: {len(header) + len(row[None])} fields, the header has {len(header)}"
                )
            cells = {key: (value or "").strip() for key, value in row.items()}
            for column in CSV_REQUIRED:
                if not cells[column]:
                    raise DataError(f"{where}, field {column!r}: empty; every row needs a {column}")
            found = _csv_row_scores(cells, metric_columns, source, where, f"{path} row {number}")
            first = found[0]
            key = (first.model, first.benchmark, first.split, first.lang)
            if key in seen:
                raise DataError(
                    f"{where}: a second row for model {key[0]!r}, {view_label(*key[1:3])}, {key[3]} "
                    f"(the first is row {seen[key]})"
                )
            seen[key] = number
            scores.extend(found)
    if not scores:
        raise DataError(f"{path}: a header but no rows")
    return scores


def _model_name(run_folder: Path, results: dict[str, Any]) -> str:
    """The name a run is shown under: its model card's model-index, else lm-eval's model_args, else the folder."""
    index_file = run_folder / "model_index.yaml"
    if index_file.is_file():
        try:
            index = yaml.safe_load(index_file.read_text(encoding="utf-8"))
            name = index["model-index"][0]["name"]
        except (yaml.YAMLError, KeyError, IndexError, TypeError) as err:
            raise DataError(
                f"{index_file}: expected model-index[0].name ({type(err).__name__}: {err})"
            ) from None
        if isinstance(name, str) and name.strip():
            return name.strip()
        raise DataError(f"{index_file}, field model-index[0].name: expected a non-empty string, got {name!r}")
    model_args = results["config"].get("model_args")
    if isinstance(model_args, dict) and model_args.get("pretrained"):
        return str(model_args["pretrained"])
    if isinstance(model_args, str) and model_args.strip():
        args = dict(part.partition("=")[::2] for part in model_args.split(","))
        return args.get("pretrained") or model_args.strip()
    return run_folder.name


def _read_results_json(file: Path) -> dict[str, Any]:
    """lm-eval's results dictionary, with the parts the leaderboard reads checked for shape.

    A missing ``config`` becomes ``{}``, so later steps need not ask again.
    """
    try:
        results = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"{file}: cannot read it as JSON ({err})") from None
    if not isinstance(results, dict) or not isinstance(results.get("results"), dict):
        raise DataError(f"{file}: expected lm-eval's results dictionary with a 'results' mapping")
    for task, values in results["results"].items():
        if task.startswith("okapi_") and not isinstance(values, dict):
            raise DataError(f"{file}, task {task!r}: expected a mapping of metrics, got {values!r}")
    for field in ("config", "n-samples"):
        if not isinstance(results.get(field) or {}, dict):
            raise DataError(f"{file}, field {field!r}: expected a mapping, got {results[field]!r}")
    results["config"] = results.get("config") or {}
    return results


def _check_sample_counts(results: dict[str, Any], tasks: Iterable[str], file: Path) -> None:
    """``n-samples`` of each task, where present, must be ``{"effective": n, "original": N}`` with n <= N."""
    counts = results.get("n-samples") or {}
    for task in tasks:
        if task not in counts:
            continue
        entry = counts[task]
        where = f"{file}, field 'n-samples.{task}"
        if not isinstance(entry, dict):
            raise DataError(f"{where}': expected {{'effective': n, 'original': N}}, got {entry!r}")
        for key in ("effective", "original"):
            value = entry.get(key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise DataError(f"{where}.{key}': expected a whole number >= 0, got {value!r}")
        if entry["effective"] > entry["original"]:
            raise DataError(
                f"{where}': {entry['effective']} documents scored of a split of {entry['original']}"
            )


def _run_details(results: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """Split, document counts and the partial flag of every task, from lm-eval's ``n-samples``.

    A results file without counts for a task (older lm-eval) but with a ``--limit`` in its config is
    marked partial: a limited run must never pass for a full one.
    """
    details = task_details(results)
    limited = results["config"].get("limit") is not None
    for detail in details.values():
        if detail["docs"] is None and limited:
            detail["partial"] = True
    return details


def _read_run(file: Path, source: str) -> list[Score]:
    """The scores of one ``results.json`` (lm-eval's results dict, as ``okapi-hf eval run`` writes it)."""
    results = _read_results_json(file)
    try:
        collected = collect_scores(results)
    except (TypeError, ValueError) as err:
        raise DataError(f"{file}: a score that is not a number ({err})") from None
    if not collected:
        raise DataError(
            f"{file}: no okapi_* task scores (tasks present: {', '.join(results['results']) or 'none'})"
        )
    _check_sample_counts(results, (f"okapi_{key}_{lang}" for key, lang in collected), file)
    details = _run_details(results)
    model = _model_name(file.parent, results)
    scores = []
    for (task_key, lang), values in sorted(collected.items()):
        task = f"okapi_{task_key}_{lang}"
        try:
            code = get_language(lang).code
        except UnknownLanguageError:
            raise DataError(f"{file}, task {task!r}: {lang!r} is not a registry language code") from None
        if not values:
            fields = ", ".join(f"'{m},none'" for m in METRICS)
            raise DataError(f"{file}, task {task!r}: none of the fields {fields} is present")
        benchmark, split = view_of(task_key)
        detail = details[(task_key, lang)]
        for metric, value in values.items():
            scores.append(
                Score(
                    model=model,
                    source=source,
                    benchmark=benchmark,
                    split=split,
                    lang=code,
                    metric=metric,
                    value=_score_value(value, f"{file}, task {task!r}, field '{metric},none'"),
                    docs=detail["docs"],
                    docs_in_split=detail["docs_in_split"],
                    partial=detail["partial"],
                    origin=str(file),
                )
            )
    return scores


def result_files(folder: str | Path) -> list[Path]:
    """The ``results.json`` files under ``folder`` (one ``okapi-hf eval run --out`` folder or a parent of many)."""
    folder = Path(folder)
    if not folder.exists():
        raise DataError(f"eval results folder {folder} does not exist")
    files = [folder] if folder.is_file() else sorted(folder.rglob("results.json"))
    if not files:
        raise DataError(
            f"eval results folder {folder} holds no results.json (searched recursively); "
            "expected the output folder(s) of `okapi-hf eval run`"
        )
    return files


def load_eval_results(folder: str | Path, source: str = EVAL_SOURCE) -> list[Score]:
    """The scores of every ``results.json`` under ``folder``."""
    return [score for file in result_files(folder) for score in _read_run(file, source)]


def check_unique(scores: Iterable[Score]) -> list[Score]:
    """Refuse two numbers for the same model, source, view, language and metric (which one would win?)."""
    seen: dict[tuple[str, ...], Score] = {}
    for score in scores:
        key = (score.model, score.source, score.benchmark, score.split, score.lang, score.metric)
        if key in seen:
            raise DataError(
                f"two {score.metric} scores for model {score.model!r} ({score.source}) on "
                f"{view_label(score.benchmark, score.split)}/{score.lang}: {seen[key].origin} and "
                f"{score.origin}; remove one, or give the runs different model names (model_index.yaml)"
            )
        seen[key] = score
    return list(seen.values())


def load_scores(seed_csv: str | Path | None, results_dirs: Sequence[str | Path] = ()) -> list[Score]:
    """All configured inputs as one list; any bad file raises naming it (nothing is skipped silently)."""
    scores: list[Score] = []
    if seed_csv is not None:
        scores += load_reference_csv(seed_csv)
    # A folder and one inside it may both be configured: read each file once.
    files = {file.resolve(): file for folder in results_dirs for file in result_files(folder)}
    for file in files.values():
        scores += _read_run(file, EVAL_SOURCE)
    return check_unique(scores)
