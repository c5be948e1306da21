"""The leaderboard Space: Okapi benchmark scores per model, benchmark, split and language.

Two kinds of input end up as the same long-form records (:class:`Score`): the Okapi authors'
base-model scores (a CSV from their evaluation logs, the Space's seed data) and the folders written
by ``okapi-hf eval run``. The table and chart functions work on those records only, so everything
above :func:`build_demo` is plain Python that tests can check without a browser; the Gradio layout
comes last.

A table is one *view*: one benchmark scored on one split. Scores of different splits are never in
the same table, because they are not comparable: the authors' ARC-Challenge rows were scored on the
validation split, so they sit beside ``okapi_arc_val_*`` runs, while ``okapi_arc_*`` (test) runs
have a view of their own. Every row says its split, how many documents it was scored on, and
whether the run was partial (``--limit``).

Macro means are plain means over the languages shown that a model has, a definition of ours (the
authors define no cross-language aggregate). Models cover different languages (the authors' logs
have only some models on some benchmarks), so the table also says how many languages each mean is
over: compare means over the same languages.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import mean
from typing import TYPE_CHECKING, Any

import yaml

from okapi_hf.errors import DataError, OkapiError, UnknownLanguageError
from okapi_hf.eval.report import (
    BENCHMARK_NAMES,
    METRICS,
    SPLITS,
    collect_scores,
    headline_metric,
    task_details,
)
from okapi_hf.languages import GROUPS, get_language, languages
from okapi_hf.spaces.limits import InputRefused, echo, one_of, redact_credentials, some_of

if TYPE_CHECKING:
    import gradio as gr
    import pandas as pd
    from matplotlib.figure import Figure

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

# Table columns besides the languages.
MODEL = "model"
MACRO = "macro mean"
COUNT = "languages"
SPLIT = "split"
DOCS = "documents"
RUN = "run"
SOURCE = "source"
FULL = "full"
PARTIAL = "partial"
# The most resource-group values one request may send (there are four groups; repeats are harmless).
MAX_GROUP_VALUES = 16


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
    """The ``results.json`` files under ``folder`` (one ``okapi-hf eval run --output`` folder or a parent of many)."""
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


# ---------------------------------------------------------------------------------------------
# Tables and charts
# ---------------------------------------------------------------------------------------------

# Every view there can be, in selector order: benchmarks in BENCHMARKS order, each first on the split
# of the authors' rows (so the page opens like for like with them), then its other splits.
VIEWS: tuple[tuple[str, str], ...] = tuple(
    sorted(
        {view_of(key) for key in BENCHMARK_NAMES},
        key=lambda v: (list(BENCHMARKS).index(v[0]), v[1] != REFERENCE_SPLITS.get(v[0]), v[1]),
    )
)


def available_views(scores: Iterable[Score]) -> list[tuple[str, str]]:
    """``(benchmark, split)`` pairs with at least one score, in :data:`VIEWS` order."""
    present = {(s.benchmark, s.split) for s in scores}
    return [view for view in VIEWS if view in present]


def available_metrics(scores: Iterable[Score], benchmark: str, split: str) -> list[str]:
    """Metrics with at least one score in the view, in :data:`METRICS` order."""
    present = {s.metric for s in scores if s.benchmark == benchmark and s.split == split}
    return [m for m in METRICS if m in present]


def default_metric(benchmark: str, metrics: Sequence[str]) -> str | None:
    """The metric the authors report for the benchmark (``acc``; ``mc2`` for TruthfulQA), when the data has it."""
    headline = headline_metric(benchmark)
    return headline if headline in metrics else (metrics[0] if metrics else None)


def default_split(scores: Iterable[Score], benchmark: str) -> str | None:
    """The split a benchmark is shown on when none is asked for: the authors' rows' split, if present."""
    splits = [split for bench, split in available_views(scores) if bench == benchmark]
    return splits[0] if splits else None


def _shown_languages(scores: Sequence[Score], groups: Iterable[str]) -> list[str]:
    """Codes with a score in ``scores`` that belong to ``groups``, in registry order (high .. extra)."""
    present = {s.lang for s in scores}
    wanted = set(groups)
    return [lang.code for lang in languages() if lang.group in wanted and lang.code in present]


def _selected(
    scores: Iterable[Score], benchmark: str, split: str, metric: str, groups: Iterable[str]
) -> list[Score]:
    """The scores of one view and metric in the languages of ``groups``."""
    unknown = [g for g in groups if g not in GROUPS]
    if unknown:
        raise OkapiError(f"unknown resource group(s) {', '.join(unknown)}; valid: {', '.join(GROUPS)}")
    wanted = set(groups)
    return [
        s
        for s in scores
        if s.benchmark == benchmark
        and s.split == split
        and s.metric == metric
        and get_language(s.lang).group in wanted
    ]


def documents_total(scores: Sequence[Score]) -> int | None:
    """Documents behind a row: the sum over its languages, or ``None`` if any language's count is unknown."""
    counts = [s.docs for s in scores]
    return None if not counts or None in counts else sum(counts)


def run_label(scores: Sequence[Score]) -> str:
    """``full``, or ``partial: n of N documents`` when any language of the row was a ``--limit`` run."""
    if not any(s.partial for s in scores):
        return FULL
    scored, in_split = documents_total(scores), [s.docs_in_split for s in scores]
    if scored is None or None in in_split:
        return PARTIAL
    return f"{PARTIAL}: {scored} of {sum(in_split)} documents"


def leaderboard_table(
    scores: Iterable[Score], benchmark: str, split: str, metric: str, groups: Iterable[str] = GROUPS
) -> pd.DataFrame:
    """One row per model (and source) in one view: its macro mean, how many languages that is over,
    the split, the documents scored, whether the run was full or partial, one column per language,
    and where the numbers come from.

    Scores are x100 with one decimal, as in ``results.md``; a language a model was not scored on is
    empty (NaN), and so is a document count that is not known. Rows are sorted by macro mean, best first.
    """
    import pandas as pd

    groups = list(groups)
    chosen = _selected(scores, benchmark, split, metric, groups)
    langs = _shown_languages(chosen, groups)
    by_model: dict[tuple[str, str], list[Score]] = {}
    for s in chosen:
        by_model.setdefault((s.model, s.source), []).append(s)
    rows = []
    for (model, source), row_scores in by_model.items():
        values = {s.lang: s.value for s in row_scores}
        row: dict[str, Any] = {
            MODEL: model,
            MACRO: round(100 * mean(values.values()), 1),
            COUNT: len(values),
            SPLIT: split,
            DOCS: documents_total(row_scores),
            RUN: run_label(row_scores),
        }
        row.update({lang: round(100 * values[lang], 1) if lang in values else math.nan for lang in langs})
        row[SOURCE] = source
        rows.append(row)
    table = pd.DataFrame(rows, columns=[MODEL, MACRO, COUNT, SPLIT, DOCS, RUN, *langs, SOURCE])
    table[DOCS] = table[DOCS].astype("Int64")
    table = table.sort_values([MACRO, MODEL], ascending=[False, True], kind="stable")
    return table.reset_index(drop=True)


def language_chart_data(
    scores: Iterable[Score], benchmark: str, split: str, metric: str, groups: Iterable[str] = GROUPS
) -> pd.DataFrame:
    """Long form for a per-language chart: ``language``, ``group``, ``model``, ``score`` (x100).

    A model name that appears under two sources gets its source added, so the chart keeps them apart;
    a partial run gets ``(partial)`` added, so the chart marks it as the table does.
    """
    import pandas as pd

    groups = list(groups)
    chosen = _selected(scores, benchmark, split, metric, groups)
    sources: dict[str, set[str]] = {}
    partial: set[tuple[str, str]] = set()
    for s in chosen:
        sources.setdefault(s.model, set()).add(s.source)
        if s.partial:
            partial.add((s.model, s.source))

    def series(s: Score) -> str:
        name = s.model if len(sources[s.model]) == 1 else f"{s.model} ({s.source})"
        return f"{name} ({PARTIAL})" if (s.model, s.source) in partial else name

    order = {code: i for i, code in enumerate(_shown_languages(chosen, groups))}
    rows = [
        {
            "language": s.lang,
            "group": get_language(s.lang).group,
            "model": series(s),
            "score": round(100 * s.value, 1),
        }
        for s in sorted(chosen, key=lambda s: (order[s.lang], s.model, s.source))
    ]
    return pd.DataFrame(rows, columns=["language", "group", "model", "score"])


def language_figure(chart: pd.DataFrame, title: str) -> Figure:
    """A dot per model and language (languages in registry order, resource groups shaded).

    Drawn on the server with matplotlib, so the page shows exactly the numbers of the table; Gradio 6's
    native plots redrew with the previous update's data when their value changed.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    langs = list(dict.fromkeys(chart["language"]))
    position = {lang: i for i, lang in enumerate(langs)}
    fig = Figure(figsize=(max(8.0, 0.34 * len(langs) + 4.5), 4.2), layout="constrained")
    ax = fig.add_subplot()
    ax.set_title(title, fontsize=11, pad=18)
    if chart.empty:
        ax.text(0.5, 0.5, "no scores for this choice", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    for shade, group in enumerate(GROUPS):
        xs = [position[lang] for lang in langs if get_language(lang).group == group]
        if xs:
            ax.axvspan(
                min(xs) - 0.5, max(xs) + 0.5, color="0.5", alpha=0.12 if shade % 2 == 0 else 0.04, lw=0
            )
            label = group if group == "extra" else f"{group} resource"
            ax.text(
                mean(xs),
                1.01,
                label,
                transform=ax.get_xaxis_transform(),
                ha="center",
                va="bottom",
                fontsize=8,
            )
    # Best models first in the legend, so it reads like the table.
    models = (
        chart.groupby("model", sort=False)["score"].mean().sort_values(ascending=False, kind="stable").index
    )
    markers = "oDs^vP*Xhp<>"
    for i, model in enumerate(models):
        points = chart[chart["model"] == model]
        ax.plot(
            [position[lang] for lang in points["language"]],
            points["score"],
            linestyle="none",
            marker=markers[i % len(markers)],
            color=f"C{i % 10}",
            markersize=6,
            alpha=0.85,
            label=model,
        )
    ax.set_xticks(range(len(langs)), langs, fontsize=9)
    ax.set_xlim(-0.5, len(langs) - 0.5)
    ax.set_ylabel("score x100")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    return fig


# ---------------------------------------------------------------------------------------------
# The Gradio app
# ---------------------------------------------------------------------------------------------

INTRO = """# Okapi leaderboard

Multilingual ARC-Challenge, HellaSwag, MMLU and TruthfulQA (Okapi's translations), per language.
Scores are x100, by default the metric the Okapi authors report: `acc` (`mc2` for TruthfulQA).
Each table is one benchmark **on one split**: scores of different splits are never side by side.
The **macro mean** is the plain mean over the languages shown that a model has; **languages** says
how many that is, so compare means over the same languages. Sort by any column from the ⋮ menu in
its header; tick resource groups to choose the languages.
"""

NOTES = f"""**{SPLIT}**: the split that was scored. The Okapi authors' ARC-Challenge scores were computed
on the ARC *validation* split, so they are under "ARC-Challenge, validation split", beside
`okapi_arc_val_*` runs; `okapi_arc_*` runs score *test* and have a view of their own. Their MMLU
scores are on *test* (`okapi_mmlu_*`); `okapi_mmlu_val_*` scores MMLU's *val* split.

**{DOCS}**: documents scored, summed over the languages shown (empty where unknown); for the
authors' rows, recovered from the standard errors in their logs.

**{RUN}**: *{PARTIAL}* marks an `okapi-hf eval run --limit` run, scored on only part of the split
(the chart adds "({PARTIAL})" to its name): do not rank it against full runs.
"""

UNCONFIGURED = f"""# Okapi leaderboard: no data configured

This Space shows nothing until it is told where its scores are. Set one or both environment
variables (in a Hugging Face Space: *Settings -> Variables*), then restart it:

- `{SEED_ENV}`: path of a CSV shaped like the Okapi authors' `reference_results_base_models.csv`
  (columns `benchmark,lang,model` and some of `acc,acc_norm,mc1,mc2`).
- `{RESULTS_ENV}`: folder(s) written by `okapi-hf eval run --output ...`, separated by `{os.pathsep}`;
  each is searched for `results.json` files.
"""


def _sources_note(scores: Sequence[Score], seed_csv: Path | None, results_dirs: Sequence[Path]) -> str:
    """What was loaded, with counts, so a missing model is not a mystery."""
    lines = []
    if seed_csv is not None:
        models = {s.model for s in scores if s.source == REFERENCE_SOURCE}
        count = sum(s.source == REFERENCE_SOURCE for s in scores)
        lines.append(f"- {REFERENCE_SOURCE}: `{seed_csv}`, {count} scores of {len(models)} model(s)")
    if results_dirs:
        models = {s.model for s in scores if s.source == EVAL_SOURCE}
        count = sum(s.source == EVAL_SOURCE for s in scores)
        partial = sorted({s.model for s in scores if s.source == EVAL_SOURCE and s.partial})
        folders = ", ".join(f"`{d}`" for d in results_dirs)
        lines.append(
            f"- {EVAL_SOURCE}: {folders}, {count} scores of {len(models)} model(s) ({', '.join(sorted(models))})"
            + (f"; partial (`--limit`) runs: {', '.join(partial)}" if partial else "")
        )
    return redact_credentials("Data:\n\n" + "\n".join(lines))


def _styled(table: pd.DataFrame):
    """Always one decimal, blanks for what a model lacks, the best full-run score of each column in bold.

    A partial run's score is never in bold: it was scored on other (fewer) documents than the rest.
    """
    import pandas as pd

    numeric = [c for c in table.columns if c not in (MODEL, COUNT, SPLIT, DOCS, RUN, SOURCE)]
    full_rows = table.index[table[RUN] == FULL]
    style = table.style.format(precision=1, na_rep="", subset=numeric).format(na_rep="", subset=[DOCS])
    if len(full_rows):
        style = style.highlight_max(subset=pd.IndexSlice[full_rows, numeric], props="font-weight: bold")
    return style.hide(axis="index")


def _message_page(text: str) -> gr.Blocks:
    import gradio as gr

    with gr.Blocks(title="Okapi leaderboard") as demo:
        gr.Markdown(text, elem_id="leaderboard-message")
    return demo


def _chart_title(benchmark: str, split: str, metric: str) -> str:
    return f"{view_label(benchmark, split)}, {metric} x100"


def build_demo(seed_csv: str | Path | None, results_dirs: Sequence[str | Path] = ()) -> gr.Blocks:
    """The leaderboard app; with no data, or data that cannot be read, a page that says what to fix."""
    import gradio as gr

    seed = Path(seed_csv) if seed_csv else None
    folders = [Path(d) for d in results_dirs]
    if seed is None and not folders:
        log.warning("no leaderboard data configured: set %s and/or %s", SEED_ENV, RESULTS_ENV)
        return _message_page(UNCONFIGURED)
    try:
        scores = load_scores(seed, folders)
    except OkapiError as err:  # the page is public: a credential in a configured URL is masked
        reason = redact_credentials(str(err))
        log.error("cannot load the leaderboard data: %s", reason)
        return _message_page(
            "# Okapi leaderboard: the data cannot be read\n\n"
            f"```text\n{reason}\n```\n\n"
            f"Fix the file, or the paths in `{SEED_ENV}` / `{RESULTS_ENV}`, and restart the Space."
        )

    views = available_views(scores)
    first_bench, first_split = views[0]
    metrics = available_metrics(scores, first_bench, first_split)
    first_metric = default_metric(first_bench, metrics)
    first_chart = language_chart_data(scores, first_bench, first_split, first_metric)

    view_keys = [view_key(*v) for v in views]

    def visitor_view(view: Any) -> tuple[str, str]:
        """The selector's value, checked: a client can send any JSON value past the dropdown."""
        try:
            return parse_view_key(one_of(view, "benchmark and split", view_keys))
        except InputRefused as err:
            raise gr.Error(str(err)) from None

    def visitor_groups(groups: Any) -> list[str]:
        """The ticked resource groups (``None``: all), checked and capped before any work."""
        try:
            return (
                list(GROUPS)
                if groups is None
                else some_of(groups, "resource groups", GROUPS, max_items=MAX_GROUP_VALUES)
            )
        except InputRefused as err:
            raise gr.Error(str(err)) from None

    def pick_metric(view: str):
        """A new view brings its own metrics (TruthfulQA has mc1/mc2, not acc/acc_norm)."""
        benchmark, split = visitor_view(view)
        choices = available_metrics(scores, benchmark, split)
        return gr.Radio(choices=choices, value=default_metric(benchmark, choices))

    def render(view: str, metric: str, groups: list[str]):
        """Table and chart for the current choices."""
        benchmark, split = visitor_view(view)
        groups = visitor_groups(groups)
        chart = language_chart_data(scores, benchmark, split, metric, groups)
        return (
            _styled(leaderboard_table(scores, benchmark, split, metric, groups)),
            language_figure(chart, _chart_title(benchmark, split, metric)),
        )

    def leaderboard(
        benchmark: str, metric: str = "", groups: list[str] | None = None, split: str = ""
    ) -> dict[str, Any]:
        """The table as JSON: ``headers`` and ``rows`` (null where a model has no score).

        An empty metric is the benchmark's headline metric; an empty split is the split of the
        authors' rows for that benchmark (validation for ARC-Challenge), where the data has it.
        Every value is checked before use (any JSON can arrive), and quoted back cut short.
        """
        names = list(dict.fromkeys(b for b, _ in views))
        if not isinstance(benchmark, str) or benchmark not in names:
            raise gr.Error(f"unknown benchmark {echo(benchmark)}; this leaderboard has {', '.join(names)}")
        splits = [s for b, s in views if b == benchmark]
        split = split or default_split(scores, benchmark)
        if not isinstance(split, str) or split not in splits:
            raise gr.Error(f"no {echo(split)} split scores for {benchmark}; it has {', '.join(splits)}")
        choices = available_metrics(scores, benchmark, split)
        metric = metric or default_metric(benchmark, choices)
        if not isinstance(metric, str) or metric not in choices:
            raise gr.Error(f"no {echo(metric)} scores for {benchmark} ({split}); it has {', '.join(choices)}")
        groups = visitor_groups(groups)
        try:
            frame = leaderboard_table(scores, benchmark, split, metric, groups)
        except OkapiError as err:
            raise gr.Error(str(err)) from None
        table = json.loads(frame.to_json(orient="split", index=False))  # NaN -> null, numpy -> JSON types
        return {
            "benchmark": benchmark,
            "split": split,
            "metric": metric,
            "headers": table["columns"],
            "rows": table["data"],
        }

    with gr.Blocks(title="Okapi leaderboard") as demo:
        gr.Markdown(INTRO)
        with gr.Row():
            view = gr.Dropdown(
                [(view_label(*v), view_key(*v)) for v in views],
                value=view_key(first_bench, first_split),
                label="Benchmark and split",
                elem_id="benchmark",
            )
            metric = gr.Radio(metrics, value=first_metric, label="Metric", elem_id="metric")
            groups = gr.CheckboxGroup(
                list(GROUPS), value=list(GROUPS), label="Resource groups", elem_id="groups"
            )
        table = gr.Dataframe(
            _styled(leaderboard_table(scores, first_bench, first_split, first_metric)),
            label="Scores (x100)",
            interactive=False,
            elem_id="leaderboard-table",
            max_height=600,
            pinned_columns=1,
            buttons=["fullscreen", "copy"],
        )
        gr.Markdown(NOTES, elem_id="leaderboard-notes")
        chart = gr.Plot(
            language_figure(first_chart, _chart_title(first_bench, first_split, first_metric)),
            format="png",
            label="Per language",
            show_label=False,
            elem_id="language-chart",
        )
        gr.Markdown(_sources_note(scores, seed, folders))
        # The UI's own events stay off the API: the Radio checks its value against the choices the
        # session last saw, which a client that never changed the benchmark does not know.
        inputs, outputs = [view, metric, groups], [table, chart]
        view.input(pick_metric, view, metric, api_visibility="private").then(
            render, inputs, outputs, api_visibility="private"
        )
        gr.on([metric.input, groups.input], render, inputs, outputs, api_visibility="private")
        gr.api(leaderboard, api_name="leaderboard")
    return demo


def _env_paths(value: str | None) -> list[Path]:
    return [Path(part) for part in (value or "").split(os.pathsep) if part.strip()]


def demo_from_env() -> gr.Blocks:
    """The app as a Space runs it: data paths from :data:`SEED_ENV` and :data:`RESULTS_ENV`."""
    seed = os.environ.get(SEED_ENV, "").strip() or None
    return build_demo(seed, _env_paths(os.environ.get(RESULTS_ENV)))
