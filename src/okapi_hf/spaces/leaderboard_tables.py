"""Leaderboard tables and charts: one view (benchmark and split) and metric, as a table and a figure.

Plain Python over :class:`~okapi_hf.spaces.leaderboard_scores.Score` records, so tests check every
number without a browser. Macro means are plain means over the languages shown that a model has.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from statistics import mean
from typing import TYPE_CHECKING, Any

from okapi_hf.errors import OkapiError
from okapi_hf.eval.report import (
    BENCHMARK_NAMES,
    METRICS,
    headline_metric,
)
from okapi_hf.languages import GROUPS, get_language, languages
from okapi_hf.spaces.leaderboard_scores import BENCHMARKS, REFERENCE_SPLITS, Score, view_of

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)

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
