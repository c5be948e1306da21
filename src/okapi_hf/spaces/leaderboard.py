"""The leaderboard Space: Okapi benchmark scores per model, benchmark, split and language.

Two kinds of input end up as the same long-form records (:class:`Score`): the Okapi authors'
base-model scores (a CSV from their evaluation logs, the Space's seed data) and the folders written
by ``okapi-hf eval run`` (read in :mod:`okapi_hf.spaces.leaderboard_scores`). The table and chart
functions (:mod:`okapi_hf.spaces.leaderboard_tables`) work on those records only, so they are plain
Python that tests can check without a browser; this module holds the Gradio page and re-exports both.

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

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from okapi_hf.errors import OkapiError
from okapi_hf.languages import GROUPS
from okapi_hf.spaces.leaderboard_scores import (
    EVAL_SOURCE,
    REFERENCE_SOURCE,
    RESULTS_ENV,
    SEED_ENV,
    Score,
    load_eval_results,
    load_reference_csv,
    load_scores,
    parse_view_key,
    view_key,
    view_label,
)
from okapi_hf.spaces.leaderboard_tables import (
    COUNT,
    DOCS,
    FULL,
    MACRO,
    MODEL,
    PARTIAL,
    RUN,
    SOURCE,
    SPLIT,
    available_metrics,
    available_views,
    default_metric,
    default_split,
    language_chart_data,
    language_figure,
    leaderboard_table,
)
from okapi_hf.spaces.limits import InputRefused, echo, one_of, redact_credentials, some_of

# What tests and callers use from ``okapi_hf.spaces.leaderboard``, wherever it is defined.
__all__ = [
    "COUNT",
    "DOCS",
    "EVAL_SOURCE",
    "FULL",
    "MACRO",
    "MODEL",
    "PARTIAL",
    "REFERENCE_SOURCE",
    "RESULTS_ENV",
    "RUN",
    "SEED_ENV",
    "SOURCE",
    "SPLIT",
    "Score",
    "available_metrics",
    "available_views",
    "build_demo",
    "default_metric",
    "default_split",
    "demo_from_env",
    "language_chart_data",
    "language_figure",
    "leaderboard_table",
    "load_eval_results",
    "load_reference_csv",
    "load_scores",
    "view_label",
]

if TYPE_CHECKING:
    import gradio as gr
    import pandas as pd

log = logging.getLogger(__name__)

# The most resource-group values one request may send (there are four groups; repeats are harmless).
MAX_GROUP_VALUES = 16

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
- `{RESULTS_ENV}`: folder(s) written by `okapi-hf eval run --out ...`, separated by `{os.pathsep}`;
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
