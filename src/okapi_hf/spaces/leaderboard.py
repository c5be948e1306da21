"""The leaderboard Space: Okapi benchmark scores per model, benchmark and language.

Two kinds of input end up as the same long-form records (:class:`Score`): the Okapi authors'
base-model scores (a CSV, the Space's seed data) and the folders written by ``okapi-hf eval run``.
The table and chart functions work on those records only, so everything above :func:`build_demo`
is plain Python that tests can check without a browser; the Gradio layout comes last.

Macro means are plain means over the languages shown that a model has, as Okapi reported them.
Models cover different languages (the paper scored only some models on some benchmarks), so the
table also says how many languages each mean is over: compare means over the same languages.
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
from okapi_hf.eval.report import BENCHMARK_NAMES, collect_scores
from okapi_hf.languages import GROUPS, get_language, languages

if TYPE_CHECKING:
    import gradio as gr
    import pandas as pd
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)

SEED_ENV = "OKAPI_LEADERBOARD_SEED"
RESULTS_ENV = "OKAPI_LEADERBOARD_RESULTS"

REFERENCE_SOURCE = "Okapi paper (base models)"
EVAL_SOURCE = "okapi-hf eval run"

# Display names, in the order the dropdown lists them; TruthfulQA is only in the authors' CSV.
BENCHMARKS: dict[str, str] = {**BENCHMARK_NAMES, "truthfulqa": "TruthfulQA (MC)"}
# The authors' CSV names its benchmarks differently from the lm-eval tasks; our own names are accepted too.
CSV_BENCHMARKS: dict[str, str] = {
    "arc-challenge": "arc",
    "hellaswag": "hellaswag",
    "mmlu": "mmlu",
    "truthfulqa-mc": "truthfulqa",
    **{name: name for name in BENCHMARKS},
}
METRICS: tuple[str, ...] = ("acc", "acc_norm", "mc1", "mc2")
# acc_norm is what Okapi's tables report for the multiple-choice benchmarks; mc2 for TruthfulQA.
PREFERRED_METRICS: tuple[str, ...] = ("acc_norm", "mc2", "acc", "mc1")
CSV_REQUIRED: tuple[str, ...] = ("benchmark", "lang", "model")

MACRO = "macro mean"
COUNT = "languages"


@dataclass(frozen=True)
class Score:
    """One number: ``value`` (in [0, 1]) of ``metric`` for ``model`` on ``benchmark`` in ``lang``."""

    model: str
    source: str
    benchmark: str
    lang: str
    metric: str
    value: float
    origin: str  # where the number was read (file and row), for error messages about duplicates


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


def load_reference_csv(path: str | Path, source: str = REFERENCE_SOURCE) -> list[Score]:
    """Read a CSV shaped like the authors' ``reference_results_base_models.csv``.

    Columns ``benchmark``, ``lang``, ``model`` and at least one of ``acc``, ``acc_norm``, ``mc1``,
    ``mc2``; an empty cell is a metric the row does not have (``*_stderr`` and ``task`` are ignored).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"leaderboard CSV {path} does not exist (or is not a file)")
    scores: list[Score] = []
    seen: dict[tuple[str, str, str], int] = {}
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
            bench = CSV_BENCHMARKS.get(cells["benchmark"].lower())
            if bench is None:
                raise DataError(
                    f"{where}, field 'benchmark': unknown benchmark {cells['benchmark']!r}; "
                    f"expected one of {', '.join(CSV_BENCHMARKS)}"
                )
            try:
                lang = get_language(cells["lang"]).code
            except UnknownLanguageError as err:
                raise DataError(f"{where}, field 'lang': {err}") from None
            key = (cells["model"], bench, lang)
            if key in seen:
                raise DataError(
                    f"{where}: a second row for model {key[0]!r}, {bench}, {lang} (the first is row {seen[key]})"
                )
            seen[key] = number
            found = [
                Score(
                    cells["model"],
                    source,
                    bench,
                    lang,
                    metric,
                    _score_value(cells[metric], f"{where}, field {metric!r}"),
                    f"{path} row {number}",
                )
                for metric in metric_columns
                if cells[metric]
            ]
            if not found:
                raise DataError(f"{where}: no score in any of the fields {', '.join(metric_columns)}")
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
    model_args = (results.get("config") or {}).get("model_args")
    if isinstance(model_args, dict) and model_args.get("pretrained"):
        return str(model_args["pretrained"])
    if isinstance(model_args, str) and model_args.strip():
        args = dict(part.partition("=")[::2] for part in model_args.split(","))
        return args.get("pretrained") or model_args.strip()
    return run_folder.name


def _read_run(file: Path, source: str) -> list[Score]:
    """The scores of one ``results.json`` (lm-eval's results dict, as ``okapi-hf eval run`` writes it)."""
    try:
        results = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"{file}: cannot read it as JSON ({err})") from None
    if not isinstance(results, dict) or not isinstance(results.get("results"), dict):
        raise DataError(f"{file}: expected lm-eval's results dictionary with a 'results' mapping")
    for task, values in results["results"].items():
        if task.startswith("okapi_") and not isinstance(values, dict):
            raise DataError(f"{file}, task {task!r}: expected a mapping of metrics, got {values!r}")
    try:
        collected = collect_scores(results)
    except (TypeError, ValueError) as err:
        raise DataError(f"{file}: a score that is not a number ({err})") from None
    if not collected:
        raise DataError(
            f"{file}: no okapi_* task scores (tasks present: {', '.join(results['results']) or 'none'})"
        )
    model = _model_name(file.parent, results)
    scores = []
    for (bench, lang), values in sorted(collected.items()):
        task = f"okapi_{bench}_{lang}"
        try:
            code = get_language(lang).code
        except UnknownLanguageError:
            raise DataError(f"{file}, task {task!r}: {lang!r} is not a registry language code") from None
        if not values:
            raise DataError(f"{file}, task {task!r}: neither 'acc,none' nor 'acc_norm,none' is present")
        for metric, value in values.items():
            checked = _score_value(value, f"{file}, task {task!r}, field '{metric},none'")
            scores.append(Score(model, source, bench, code, metric, checked, str(file)))
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
    """Refuse two numbers for the same model, source, benchmark, language and metric (which one would win?)."""
    seen: dict[tuple[str, str, str, str, str], Score] = {}
    for score in scores:
        key = (score.model, score.source, score.benchmark, score.lang, score.metric)
        if key in seen:
            raise DataError(
                f"two {score.metric} scores for model {score.model!r} ({score.source}) on {score.benchmark}/"
                f"{score.lang}: {seen[key].origin} and {score.origin}; remove one, or give the runs "
                "different model names (model_index.yaml)"
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


def available_benchmarks(scores: Iterable[Score]) -> list[str]:
    """Benchmarks with at least one score, in :data:`BENCHMARKS` order."""
    present = {s.benchmark for s in scores}
    return [b for b in BENCHMARKS if b in present]


def available_metrics(scores: Iterable[Score], benchmark: str) -> list[str]:
    """Metrics with at least one score on ``benchmark``, in :data:`METRICS` order."""
    present = {s.metric for s in scores if s.benchmark == benchmark}
    return [m for m in METRICS if m in present]


def default_metric(metrics: Sequence[str]) -> str | None:
    """The metric Okapi reported for the benchmark, when the data has it."""
    return next((m for m in PREFERRED_METRICS if m in metrics), metrics[0] if metrics else None)


def _shown_languages(scores: Sequence[Score], groups: Iterable[str]) -> list[str]:
    """Codes with a score in ``scores`` that belong to ``groups``, in registry order (high .. extra)."""
    present = {s.lang for s in scores}
    wanted = set(groups)
    return [lang.code for lang in languages() if lang.group in wanted and lang.code in present]


def _selected(scores: Iterable[Score], benchmark: str, metric: str, groups: Iterable[str]) -> list[Score]:
    unknown = [g for g in groups if g not in GROUPS]
    if unknown:
        raise OkapiError(f"unknown resource group(s) {', '.join(unknown)}; valid: {', '.join(GROUPS)}")
    wanted = set(groups)
    return [
        s
        for s in scores
        if s.benchmark == benchmark and s.metric == metric and get_language(s.lang).group in wanted
    ]


def leaderboard_table(
    scores: Iterable[Score], benchmark: str, metric: str, groups: Iterable[str] = GROUPS
) -> pd.DataFrame:
    """One row per model (and source): its macro mean, how many languages that is over, one column per
    language, and where the numbers come from.

    Scores are x100 with one decimal, as in ``results.md``; a language a model was not scored on is
    empty (NaN). Rows are sorted by macro mean, best first.
    """
    import pandas as pd

    groups = list(groups)
    chosen = _selected(scores, benchmark, metric, groups)
    langs = _shown_languages(chosen, groups)
    by_model: dict[tuple[str, str], dict[str, float]] = {}
    for s in chosen:
        by_model.setdefault((s.model, s.source), {})[s.lang] = s.value
    rows = []
    for (model, source), values in by_model.items():
        row: dict[str, Any] = {
            "model": model,
            MACRO: round(100 * mean(values.values()), 1),
            COUNT: len(values),
        }
        row.update({lang: round(100 * values[lang], 1) if lang in values else math.nan for lang in langs})
        row["source"] = source
        rows.append(row)
    table = pd.DataFrame(rows, columns=["model", MACRO, COUNT, *langs, "source"])
    table = table.sort_values([MACRO, "model"], ascending=[False, True], kind="stable")
    return table.reset_index(drop=True)


def language_chart_data(
    scores: Iterable[Score], benchmark: str, metric: str, groups: Iterable[str] = GROUPS
) -> pd.DataFrame:
    """Long form for a per-language chart: ``language``, ``group``, ``model``, ``score`` (x100).

    A model name that appears under two sources gets its source added, so the chart keeps them apart.
    """
    import pandas as pd

    groups = list(groups)
    chosen = _selected(scores, benchmark, metric, groups)
    sources: dict[str, set[str]] = {}
    for s in chosen:
        sources.setdefault(s.model, set()).add(s.source)
    order = {code: i for i, code in enumerate(_shown_languages(chosen, groups))}
    rows = [
        {
            "language": s.lang,
            "group": get_language(s.lang).group,
            "model": s.model if len(sources[s.model]) == 1 else f"{s.model} ({s.source})",
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
Scores are x100. The **macro mean** is the plain mean over the languages shown that a model has;
**languages** says how many that is, so compare means over the same languages. Sort by any column
from the ⋮ menu in its header; tick resource groups to choose the languages.
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
        folders = ", ".join(f"`{d}`" for d in results_dirs)
        lines.append(
            f"- {EVAL_SOURCE}: {folders}, {count} scores of {len(models)} model(s) ({', '.join(sorted(models))})"
        )
    return "Data:\n\n" + "\n".join(lines)


def _styled(table: pd.DataFrame):
    """Always one decimal, blanks for languages a model lacks, the best score of each column in bold."""
    numeric = [c for c in table.columns if c not in ("model", "source", COUNT)]
    return (
        table.style.format(precision=1, na_rep="", subset=numeric)
        .highlight_max(subset=numeric, props="font-weight: bold")
        .hide(axis="index")
    )


def _message_page(text: str) -> gr.Blocks:
    import gradio as gr

    with gr.Blocks(title="Okapi leaderboard") as demo:
        gr.Markdown(text, elem_id="leaderboard-message")
    return demo


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
    except OkapiError as err:
        log.error("cannot load the leaderboard data: %s", err)
        return _message_page(
            "# Okapi leaderboard: the data cannot be read\n\n"
            f"```text\n{err}\n```\n\n"
            f"Fix the file, or the paths in `{SEED_ENV}` / `{RESULTS_ENV}`, and restart the Space."
        )

    benchmarks = available_benchmarks(scores)
    first = benchmarks[0]
    metrics = available_metrics(scores, first)
    first_metric = default_metric(metrics)
    first_chart = language_chart_data(scores, first, first_metric)

    def pick_metric(benchmark: str):
        """A new benchmark brings its own metrics (TruthfulQA has mc1/mc2, not acc/acc_norm)."""
        choices = available_metrics(scores, benchmark)
        return gr.Radio(choices=choices, value=default_metric(choices))

    def render(benchmark: str, metric: str, groups: list[str]):
        """Table and chart for the current choices."""
        chart = language_chart_data(scores, benchmark, metric, groups)
        return (
            _styled(leaderboard_table(scores, benchmark, metric, groups)),
            language_figure(chart, f"{BENCHMARKS[benchmark]}, {metric} x100"),
        )

    def leaderboard(benchmark: str, metric: str = "", groups: list[str] | None = None) -> dict[str, Any]:
        """The table as JSON: ``headers`` and ``rows`` (null where a model has no score); empty metric = default."""
        if benchmark not in benchmarks:
            raise gr.Error(f"unknown benchmark {benchmark!r}; this leaderboard has {', '.join(benchmarks)}")
        choices = available_metrics(scores, benchmark)
        metric = metric or default_metric(choices)
        if metric not in choices:
            raise gr.Error(f"no {metric!r} scores for {benchmark}; it has {', '.join(choices)}")
        try:
            frame = leaderboard_table(scores, benchmark, metric, GROUPS if groups is None else groups)
        except OkapiError as err:
            raise gr.Error(str(err)) from None
        table = json.loads(frame.to_json(orient="split", index=False))  # NaN -> null, numpy -> JSON types
        return {"benchmark": benchmark, "metric": metric, "headers": table["columns"], "rows": table["data"]}

    with gr.Blocks(title="Okapi leaderboard") as demo:
        gr.Markdown(INTRO)
        with gr.Row():
            benchmark = gr.Dropdown(
                [(BENCHMARKS[b], b) for b in benchmarks], value=first, label="Benchmark", elem_id="benchmark"
            )
            metric = gr.Radio(metrics, value=first_metric, label="Metric", elem_id="metric")
            groups = gr.CheckboxGroup(
                list(GROUPS), value=list(GROUPS), label="Resource groups", elem_id="groups"
            )
        table = gr.Dataframe(
            _styled(leaderboard_table(scores, first, first_metric)),
            label="Scores (x100)",
            interactive=False,
            elem_id="leaderboard-table",
            max_height=600,
            pinned_columns=1,
            buttons=["fullscreen", "copy"],
        )
        chart = gr.Plot(
            language_figure(first_chart, f"{BENCHMARKS[first]}, {first_metric} x100"),
            format="png",
            label="Per language",
            show_label=False,
            elem_id="language-chart",
        )
        gr.Markdown(_sources_note(scores, seed, folders))
        # The UI's own events stay off the API: the Radio checks its value against the choices the
        # session last saw, which a client that never changed the benchmark does not know.
        inputs, outputs = [benchmark, metric, groups], [table, chart]
        benchmark.input(pick_metric, benchmark, metric, api_visibility="private").then(
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
