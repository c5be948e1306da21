"""The leaderboard Space: the authors' base-model CSV and `okapi-hf eval run` folders as one sortable table.

Expected numbers are read from a sample of the authors' CSV (tests/fixtures/leaderboard) with the csv
module here, independently of the code under test; eval-run folders are written with the harness's own
report writer (lm-eval itself is not run).
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
from dataclasses import replace
from pathlib import Path
from statistics import mean

import pytest

from okapi_hf.errors import OkapiError
from okapi_hf.eval.harness import write_report
from okapi_hf.languages import GROUPS, get_language, languages
from okapi_hf.spaces import leaderboard as lb

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO / "tests" / "fixtures" / "leaderboard" / "reference_results_base_models_sample.csv"
APP = REPO / "spaces" / "leaderboard" / "app.py"
# How the authors' CSV names the benchmarks, and the benchmark and split each of their rows was scored on
# (their ARC rows are on the validation split: OKAPI_FACTS.md, "Evaluation protocol").
CSV_NAMES = {
    "arc-challenge": ("arc", "validation"),
    "hellaswag": ("hellaswag", "validation"),
    "mmlu": ("mmlu", "test"),
    "truthfulqa-mc": ("truthfulqa", "validation"),
}
REGISTRY_ORDER = [lang.code for lang in languages()]
LANGUAGE_COLUMNS_AFTER = 6  # model, macro mean, languages, split, documents, run

# Runs of small models as `okapi-hf eval run` would leave them; the second sits one folder deeper.
RUNS = {
    "tiny-sft": {
        "okapi_arc_val_vi": {"acc,none": 0.41, "acc_norm,none": 0.44},
        "okapi_arc_val_bn": {"acc,none": 0.22, "acc_norm,none": 0.27},
        "okapi_arc_val_de": {"acc,none": 0.35, "acc_norm,none": 0.333},
        "okapi_arc_vi": {"acc,none": 0.52, "acc_norm,none": 0.55},  # the test split
        "okapi_hellaswag_vi": {"acc,none": 0.30, "acc_norm,none": 0.31},
        "okapi_truthfulqa_vi": {"mc1,none": 0.26, "mc2,none": 0.47},
        "okapi_arc_val": {"acc,none": 0.3, "acc_norm,none": 0.3},  # a group aggregate: not a language score
    },
    "tiny-dpo": {
        "okapi_arc_val_vi": {"acc,none": 0.12, "acc_norm,none": 0.15},
        "okapi_arc_val_ta": {"acc,none": 0.18, "acc_norm,none": 0.19},
    },
    "tiny-limit": {"okapi_arc_val_vi": {"acc,none": 0.30, "acc_norm,none": 0.32}},
}
# lm-eval's n-samples: the tiny-sft run is full, tiny-limit scored 50 of vi's 298 validation questions.
SAMPLES = {
    "tiny-sft": {
        "okapi_arc_val_vi": {"original": 298, "effective": 298},
        "okapi_arc_val_bn": {"original": 296, "effective": 296},
        "okapi_arc_val_de": {"original": 298, "effective": 298},
        "okapi_arc_vi": {"original": 1170, "effective": 1170},
        "okapi_hellaswag_vi": {"original": 9162, "effective": 9162},
        "okapi_truthfulqa_vi": {"original": 788, "effective": 788},
    },
    "tiny-limit": {"okapi_arc_val_vi": {"original": 298, "effective": 50}},
}


def reference_rows() -> list[dict[str, str]]:
    with REFERENCE.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def reference_values(benchmark: str, metric: str) -> dict[str, dict[str, float]]:
    """``{model: {lang: value}}`` for one benchmark and metric, straight from the CSV."""
    values: dict[str, dict[str, float]] = {}
    for row in reference_rows():
        if CSV_NAMES[row["benchmark"]][0] == benchmark and row[metric]:
            values.setdefault(row["model"], {})[row["lang"]] = float(row[metric])
    return values


def write_run(
    folder: Path,
    model: str,
    tasks: dict,
    *,
    with_card: bool = True,
    config: dict | None = None,
    samples: dict | None = None,
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    results = {"results": tasks, **({"config": config} if config else {})}
    if samples:
        results["n-samples"] = samples
    (folder / "results.json").write_text(json.dumps(results), encoding="utf-8")
    if with_card:
        write_report(results, folder, model)
    return folder


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("eval-runs")
    write_run(root / "tiny-sft", "tiny-sft", RUNS["tiny-sft"], samples=SAMPLES["tiny-sft"])
    write_run(root / "dpo" / "seed-1", "tiny-dpo", RUNS["tiny-dpo"])
    write_run(
        root / "tiny-limit",
        "tiny-limit",
        RUNS["tiny-limit"],
        samples=SAMPLES["tiny-limit"],
        config={"limit": 50},
    )
    return root


@pytest.fixture(scope="module")
def scores(runs) -> list[lb.Score]:
    return lb.load_scores(REFERENCE, [runs])


def language_columns(table) -> list[str]:
    return list(table.columns[LANGUAGE_COLUMNS_AFTER:-1])


# --- reading the inputs -----------------------------------------------------------------------


def test_reference_csv_loads_every_number_in_the_file():
    loaded = lb.load_reference_csv(REFERENCE)
    by_key = {(s.model, s.benchmark, s.split, s.lang, s.metric): s.value for s in loaded}
    expected = {
        (row["model"], *CSV_NAMES[row["benchmark"]], row["lang"], metric): float(row[metric])
        for row in reference_rows()
        for metric in ("acc", "acc_norm", "mc1", "mc2")
        if row[metric]
    }
    assert len(loaded) == len(expected) == len(by_key)
    assert by_key == expected
    assert {s.source for s in loaded} == {lb.REFERENCE_SOURCE}
    assert lb.REFERENCE_SOURCE == "Okapi authors' evaluation logs (base models)"
    assert not any(s.partial for s in loaded)
    assert lb.available_views(loaded) == [
        ("arc", "validation"),
        ("hellaswag", "validation"),
        ("mmlu", "test"),
        ("truthfulqa", "validation"),
    ]
    assert lb.available_metrics(loaded, "truthfulqa", "validation") == ["mc1", "mc2"]


def test_reference_arc_rows_are_labelled_validation():
    loaded = lb.load_reference_csv(REFERENCE)
    arc = [s for s in loaded if s.benchmark == "arc"]
    assert arc and {s.split for s in arc} == {"validation"}
    table = lb.leaderboard_table(loaded, "arc", "validation", "acc")
    assert set(table[lb.SPLIT]) == {"validation"} and len(table) == len(reference_values("arc", "acc"))
    # There is no test-split ARC view of the authors' rows.
    assert lb.leaderboard_table(loaded, "arc", "test", "acc").empty
    assert lb.view_label("arc", "validation") == "ARC-Challenge, validation split"


def test_reference_document_counts_come_from_the_standard_errors():
    loaded = lb.load_reference_csv(REFERENCE)
    docs = {(s.model, s.benchmark, s.lang): s.docs for s in loaded}
    # Vietnamese ARC has 298 validation questions and 1,170 test questions (OKAPI_FACTS.md).
    assert {docs[(m, "arc", "vi")] for m in ("llama-7B", "bloom-7b1", "gpt2")} == {298}
    for row in reference_rows():  # n = p(1-p)/se^2 + 1, from whichever 0/1 metric the row has
        metric = "mc1" if row["benchmark"] == "truthfulqa-mc" else "acc"
        p, se = float(row[metric]), float(row[f"{metric}_stderr"])
        key = (row["model"], CSV_NAMES[row["benchmark"]][0], row["lang"])
        assert docs[key] == round(p * (1 - p) / se**2 + 1)
    table = lb.leaderboard_table(loaded, "arc", "validation", "acc", ["high"]).set_index(lb.MODEL)
    assert table.loc["llama-7B", lb.DOCS] == docs[("llama-7B", "arc", "vi")] + docs[("llama-7B", "arc", "de")]
    assert set(table[lb.RUN]) == {lb.FULL}


def test_reference_document_count_is_unknown_when_the_errors_are_rounded_or_absent(tmp_path):
    path = tmp_path / "seed.csv"
    path.write_text(
        HEADER + GOOD.replace("0.3,0.01,0.32,0.01", "0.3,0.0266,0.32,0.027") + "mmlu,vi,m1,t,0.4,,,,,,,\n",
        encoding="utf-8",
    )
    assert {s.docs for s in lb.load_reference_csv(path)} == {None}
    table = lb.leaderboard_table(lb.load_reference_csv(path), "mmlu", "test", "acc")
    assert table[lb.DOCS].isna().all()


def test_eval_runs_are_found_recursively_and_named_from_their_model_index(runs, scores):
    evals = [s for s in scores if s.source == lb.EVAL_SOURCE]
    assert {s.model for s in evals} == {"tiny-sft", "tiny-dpo", "tiny-limit"}
    tiny = {(s.benchmark, s.split, s.lang, s.metric): s.value for s in evals if s.model == "tiny-sft"}
    assert tiny[("arc", "validation", "vi", "acc")] == RUNS["tiny-sft"]["okapi_arc_val_vi"]["acc,none"]
    assert tiny[("arc", "test", "vi", "acc")] == RUNS["tiny-sft"]["okapi_arc_vi"]["acc,none"]
    assert not any(lang == "val" for _, _, lang, _ in tiny)  # the group aggregate is no language
    assert len(tiny) == 2 * 6
    assert len(evals) == 2 * 6 + 4 + 2


def test_eval_run_without_model_card_is_named_from_lm_eval_config_then_folder(tmp_path):
    config = {"model": "hf", "model_args": "pretrained=org/tiny-llama,dtype=float32"}
    write_run(tmp_path / "a", "unused", RUNS["tiny-dpo"], with_card=False, config=config)
    assert {s.model for s in lb.load_eval_results(tmp_path / "a")} == {"org/tiny-llama"}
    write_run(tmp_path / "run-42", "unused", RUNS["tiny-dpo"], with_card=False)
    assert {s.model for s in lb.load_eval_results(tmp_path / "run-42")} == {"run-42"}


def test_eval_runs_carry_split_and_documents(scores):
    evals = {(s.model, s.benchmark, s.split, s.lang): s for s in scores if s.source == lb.EVAL_SOURCE}
    val, test = evals[("tiny-sft", "arc", "validation", "vi")], evals[("tiny-sft", "arc", "test", "vi")]
    assert (val.docs, val.docs_in_split, val.partial) == (298, 298, False)
    assert (test.docs, test.docs_in_split, test.partial) == (1170, 1170, False)
    dpo = evals[("tiny-dpo", "arc", "validation", "vi")]  # no n-samples in its results.json
    assert (dpo.docs, dpo.docs_in_split, dpo.partial) == (None, None, False)


# --- the table and the chart --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("benchmark", "split", "metric"),
    [
        ("arc", "validation", "acc"),
        ("arc", "validation", "acc_norm"),
        ("truthfulqa", "validation", "mc2"),
        ("mmlu", "test", "acc"),
    ],
)
def test_table_cells_and_macro_means_match_the_csv(benchmark, split, metric):
    expected = reference_values(benchmark, metric)
    table = lb.leaderboard_table(lb.load_reference_csv(REFERENCE), benchmark, split, metric)
    langs = language_columns(table)
    assert langs == [c for c in REGISTRY_ORDER if any(c in v for v in expected.values())]
    assert list(table.columns) == [
        "model",
        lb.MACRO,
        lb.COUNT,
        "split",
        "documents",
        "run",
        *langs,
        "source",
    ]
    assert sorted(table["model"]) == sorted(expected)
    for row in table.to_dict("records"):
        values = expected[row["model"]]
        for lang in langs:
            if lang in values:
                assert row[lang] == round(100 * values[lang], 1)
            else:
                assert math.isnan(row[lang])
        assert row[lb.MACRO] == round(100 * mean(values.values()), 1)
        assert row[lb.COUNT] == len(values)
        assert (row["split"], row["run"], row["source"]) == (split, "full", lb.REFERENCE_SOURCE)
    assert list(table[lb.MACRO]) == sorted(table[lb.MACRO], reverse=True)


@pytest.mark.parametrize("group", GROUPS)
def test_group_filter_keeps_that_groups_languages_and_means_over_them(group):
    expected = reference_values("arc", "acc")
    table = lb.leaderboard_table(lb.load_reference_csv(REFERENCE), "arc", "validation", "acc", [group])
    langs = language_columns(table)
    wanted = [c for c in REGISTRY_ORDER if get_language(c).group == group and c in expected["llama-7B"]]
    assert langs == wanted and langs  # the sample has languages of every group
    for row in table.to_dict("records"):
        kept = [v for lang, v in expected[row["model"]].items() if lang in wanted]
        assert row[lb.MACRO] == round(100 * mean(kept), 1)
        assert row[lb.COUNT] == len(kept)


def test_no_group_gives_an_empty_table_and_a_bad_group_is_refused(scores):
    assert lb.leaderboard_table(scores, "arc", "validation", "acc", []).empty
    with pytest.raises(OkapiError, match="unknown resource group"):
        lb.leaderboard_table(scores, "arc", "validation", "acc", ["huge"])


def test_acc_is_the_default_metric_and_mc2_for_truthfulqa(scores):
    for benchmark, split in lb.available_views(scores):
        metrics = lb.available_metrics(scores, benchmark, split)
        assert lb.default_metric(benchmark, metrics) == ("mc2" if benchmark == "truthfulqa" else "acc")
    assert lb.available_metrics(scores, "arc", "validation") == ["acc", "acc_norm"]
    assert lb.default_metric("arc", ["acc_norm"]) == "acc_norm"  # a CSV without acc still shows something
    assert lb.default_metric("arc", []) is None


def test_validation_arc_runs_sit_beside_the_reference_rows_and_test_runs_apart(scores):
    reference = reference_values("arc", "acc")
    val = lb.leaderboard_table(scores, "arc", "validation", "acc").set_index("model")
    assert set(val.index) == set(reference) | {"tiny-sft", "tiny-dpo", "tiny-limit"}
    assert set(val["split"]) == {"validation"}
    tiny = val.loc["tiny-sft"]
    assert tiny["source"] == lb.EVAL_SOURCE and tiny[lb.COUNT] == 3
    assert tiny["vi"] == 41.0 and tiny["de"] == 35.0 and math.isnan(tiny["ta"])
    assert tiny[lb.MACRO] == round(100 * mean([0.41, 0.22, 0.35]), 1)
    assert (tiny["documents"], tiny["run"]) == (298 + 296 + 298, "full")
    assert val.loc["llama-7B", "vi"] == round(100 * reference["llama-7B"]["vi"], 1)

    test = lb.leaderboard_table(scores, "arc", "test", "acc").set_index("model")
    assert list(test.index) == ["tiny-sft"]  # none of the authors' rows: they are not test-split scores
    assert (test.loc["tiny-sft", "split"], test.loc["tiny-sft", "vi"]) == ("test", 52.0)
    assert test.loc["tiny-sft", "documents"] == 1170
    assert lb.available_views(scores) == [
        ("arc", "validation"),
        ("arc", "test"),
        ("hellaswag", "validation"),
        ("mmlu", "test"),
        ("truthfulqa", "validation"),
    ]
    # A benchmark the runs did not score shows the reference models only.
    assert "tiny-sft" not in set(lb.leaderboard_table(scores, "mmlu", "test", "acc")["model"])


def test_a_results_file_saying_fewer_documents_than_the_split_is_marked_partial(scores):
    limited = [s for s in scores if s.model == "tiny-limit"]
    assert limited and all(s.partial and (s.docs, s.docs_in_split) == (50, 298) for s in limited)
    table = lb.leaderboard_table(scores, "arc", "validation", "acc").set_index("model")
    assert table.loc["tiny-limit", "run"] == "partial: 50 of 298 documents"
    assert table.loc["tiny-limit", "documents"] == 50
    assert set(table.drop(index="tiny-limit")["run"]) == {"full"}
    chart = lb.language_chart_data(scores, "arc", "validation", "acc")
    assert "tiny-limit (partial)" in set(chart["model"]) and "tiny-sft" in set(chart["model"])
    # The page's bold "best in column" skips a partial run, even one that scored higher than the rest.
    lucky = [replace(s, value=0.9) if s.model == "tiny-limit" else s for s in scores]
    table = lb.leaderboard_table(lucky, "arc", "validation", "acc")
    style = lb._styled(table)
    style._compute()
    bold = {(table.loc[row, "model"], table.columns[col]) for (row, col), props in style.ctx.items() if props}
    assert table.loc[0, "model"] == "tiny-limit"  # first by macro mean, and marked
    assert ("tiny-sft", "vi") in bold and ("tiny-sft", lb.MACRO) in bold
    assert not {b for b in bold if b[0] == "tiny-limit"}


def test_a_limit_without_sample_counts_is_still_marked_partial(tmp_path):
    write_run(tmp_path / "old", "old", RUNS["tiny-dpo"], config={"limit": 20})
    write_run(tmp_path / "full", "full", RUNS["tiny-dpo"], config={"limit": None})
    table = lb.leaderboard_table(lb.load_eval_results(tmp_path), "arc", "validation", "acc")
    runs = dict(zip(table["model"], table["run"], strict=True))
    assert runs == {"old": "partial", "full": "full"}
    assert table["documents"].isna().all()


def test_truthfulqa_from_an_eval_run_joins_the_reference_rows(scores):
    assert lb.available_metrics(scores, "truthfulqa", "validation") == ["mc1", "mc2"]
    for metric in ("mc1", "mc2"):
        table = lb.leaderboard_table(scores, "truthfulqa", "validation", metric).set_index("model")
        assert set(table.index) == set(reference_values("truthfulqa", metric)) | {"tiny-sft"}
        run = RUNS["tiny-sft"]["okapi_truthfulqa_vi"][f"{metric},none"]
        assert table.loc["tiny-sft", "vi"] == round(100 * run, 1)
        assert (table.loc["tiny-sft", "split"], table.loc["tiny-sft", "documents"]) == ("validation", 788)


def test_chart_is_one_point_per_model_and_language_in_registry_order(scores):
    chart = lb.language_chart_data(scores, "arc", "validation", "acc_norm", ["high", "low"])
    selected = [
        s
        for s in scores
        if (s.benchmark, s.split, s.metric) == ("arc", "validation", "acc_norm")
        and get_language(s.lang).group in ("high", "low")
    ]
    assert len(chart) == len(selected)
    assert set(chart["group"]) == {"high", "low"}
    order = list(dict.fromkeys(chart["language"]))
    assert order == [c for c in REGISTRY_ORDER if c in order]
    point = chart[(chart["model"] == "tiny-dpo") & (chart["language"] == "ta")]
    assert list(point["score"]) == [19.0]

    figure = lb.language_figure(chart, "ARC")
    ax = figure.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == order
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert set(lines) == set(chart["model"])
    ta, vi = order.index("ta"), order.index("vi")
    assert list(zip(lines["tiny-dpo"].get_xdata(), lines["tiny-dpo"].get_ydata(), strict=True)) == [
        (vi, 15.0),
        (ta, 19.0),
    ]
    empty = lb.language_figure(lb.language_chart_data(scores, "arc", "validation", "acc_norm", []), "none")
    assert "no scores" in empty.axes[0].texts[0].get_text()


# --- bad input ----------------------------------------------------------------------------------

HEADER = "benchmark,lang,model,task,acc,acc_stderr,acc_norm,acc_norm_stderr,mc1,mc1_stderr,mc2,mc2_stderr\n"
GOOD = "arc-challenge,vi,m1,arc_vi_challenge,0.3,0.01,0.32,0.01,,,,\n"


@pytest.mark.parametrize(
    ("bad_row", "field", "says"),
    [
        ("arc-challenge,xx,m1,t,0.3,,0.3,,,,,\n", "'lang'", "unknown language code 'xx'"),
        ("winogrande,vi,m1,t,0.3,,0.3,,,,,\n", "'benchmark'", "unknown benchmark 'winogrande'"),
        ("arc-challenge,de,m1,t,high,,0.3,,,,,\n", "'acc'", "expected a number in [0, 1], got 'high'"),
        ("arc-challenge,de,m1,t,0.3,,1.5,,,,,\n", "'acc_norm'", "expected a number in [0, 1], got '1.5'"),
        ("truthfulqa-mc,de,m1,t,,,,,0.2,,-0.1,\n", "'mc2'", "got '-0.1'"),
        ("arc-challenge,de,m1,t,nan,,0.3,,,,,\n", "'acc'", "got 'nan'"),
        ("arc-challenge,de,,t,0.3,,0.3,,,,,\n", "'model'", "empty; every row needs a model"),
        ("arc-challenge,de,m1,t,0.3,big,0.3,,,,,\n", "'acc_stderr'", "expected a standard error"),
        ("truthfulqa-mc,de,m1,t,,,,,0.2,-1,0.3,\n", "'mc1_stderr'", "(a number >= 0), got '-1'"),
    ],
)
def test_bad_csv_row_names_file_row_and_field(tmp_path, bad_row, field, says):
    path = tmp_path / "seed.csv"
    path.write_text(HEADER + GOOD + bad_row, encoding="utf-8")
    with pytest.raises(OkapiError) as err:
        lb.load_reference_csv(path)
    message = str(err.value)
    assert str(path) in message and "row 2 (line 3)" in message
    assert f"field {field}" in message and says in message


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (
            HEADER + GOOD + "arc-challenge,vi,m1,t,0.3,,0.3,,,,,\n",
            "row 2 (line 3): a second row for model 'm1', ARC-Challenge, validation split, vi",
        ),
        (HEADER + GOOD + "arc-challenge,de,m1,t,,,,,,,,\n", "row 2 (line 3): no score in any of the fields"),
        (
            HEADER + GOOD + "arc-challenge,de,m1,t,0.3,,0.3,,,,,,9\n",
            "row 2 (line 3): 13 fields, the header has 12",
        ),
        ("lang,model,acc\nvi,m1,0.3\n", "the header lacks column(s) benchmark"),
        ("benchmark,lang,model,task\narc,vi,m1,t\n", "none of the score columns"),
        ("", "the header lacks column(s) benchmark, lang, model"),
        (HEADER, "a header but no rows"),
    ],
)
def test_bad_csv_structure_is_refused_with_the_reason(tmp_path, text, says):
    path = tmp_path / "seed.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(OkapiError, match="^" + str(path).replace(".", r"\.")) as err:
        lb.load_reference_csv(path)
    assert says in str(err.value)


def test_our_task_names_in_a_csv_keep_their_own_splits(tmp_path):
    path = tmp_path / "seed.csv"
    path.write_text(
        HEADER + "arc,vi,m1,t,0.5,,,,,,,\narc_val,vi,m1,t,0.4,,,,,,,\nmmlu_val,vi,m1,t,0.3,,,,,,,\n"
    )
    loaded = {(s.benchmark, s.split): s.value for s in lb.load_reference_csv(path)}
    assert loaded == {("arc", "test"): 0.5, ("arc", "validation"): 0.4, ("mmlu", "val"): 0.3}


def test_missing_inputs_are_named(tmp_path):
    with pytest.raises(OkapiError, match=f"leaderboard CSV {tmp_path / 'nope.csv'} does not exist"):
        lb.load_reference_csv(tmp_path / "nope.csv")
    with pytest.raises(OkapiError, match=f"eval results folder {tmp_path / 'gone'} does not exist"):
        lb.load_scores(None, [tmp_path / "gone"])
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(OkapiError, match=r"holds no results\.json"):
        lb.load_eval_results(tmp_path / "empty")


def results_with(samples) -> str:
    return json.dumps({"results": {"okapi_arc_vi": {"acc,none": 0.3}}, "n-samples": samples})


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("{not json", "cannot read it as JSON"),
        (
            json.dumps({"results": {"arc_vi": {"acc,none": 0.9}}}),
            "no okapi_* task scores (tasks present: arc_vi)",
        ),
        (
            json.dumps({"results": {"okapi_arc_vi": {"acc,none": 1.2}}}),
            "task 'okapi_arc_vi', field 'acc,none'",
        ),
        (
            json.dumps({"results": {"okapi_arc_xx": {"acc,none": 0.2}}}),
            "'xx' is not a registry language code",
        ),
        (json.dumps({"results": {"okapi_arc_vi": {"acc,none": "N/A"}}}), "a score that is not a number"),
        (json.dumps({"results": {"okapi_arc_vi": 0.3}}), "task 'okapi_arc_vi': expected a mapping"),
        (
            json.dumps({"results": {"okapi_arc_vi": {"alias": "x"}}}),
            "task 'okapi_arc_vi': none of the fields 'acc,none', 'acc_norm,none', 'mc1,none', 'mc2,none'",
        ),
        (json.dumps([1, 2]), "expected lm-eval's results dictionary"),
        (results_with([1]), "field 'n-samples': expected a mapping, got [1]"),
        (results_with({"okapi_arc_vi": 50}), "field 'n-samples.okapi_arc_vi': expected {'effective'"),
        (
            results_with({"okapi_arc_vi": {"effective": "50", "original": 298}}),
            "field 'n-samples.okapi_arc_vi.effective': expected a whole number >= 0, got '50'",
        ),
        (
            results_with({"okapi_arc_vi": {"effective": 50}}),
            "field 'n-samples.okapi_arc_vi.original': expected a whole number >= 0, got None",
        ),
        (
            results_with({"okapi_arc_vi": {"effective": 300, "original": 298}}),
            "field 'n-samples.okapi_arc_vi': 300 documents scored of a split of 298",
        ),
        (
            json.dumps({"results": {"okapi_arc_vi": {"acc,none": 0.3}}, "config": "limit=5"}),
            "field 'config': expected a mapping",
        ),
    ],
)
def test_bad_results_json_names_the_file_and_task(tmp_path, content, says):
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.json").write_text(content, encoding="utf-8")
    with pytest.raises(OkapiError) as err:
        lb.load_eval_results(tmp_path)
    assert str(run / "results.json") in str(err.value) and says in str(err.value)


def test_a_run_configured_twice_is_read_once(runs):
    once = lb.load_scores(None, [runs])
    assert lb.load_scores(None, [runs, runs / "dpo", runs / "tiny-sft" / "results.json"]) == once


def test_two_runs_of_one_model_on_the_same_language_are_refused(tmp_path):
    write_run(tmp_path / "first", "tiny", RUNS["tiny-dpo"])
    write_run(tmp_path / "second", "tiny", {"okapi_arc_val_vi": {"acc,none": 0.5}})
    with pytest.raises(OkapiError, match="two acc scores for model 'tiny'") as err:
        lb.load_scores(None, [tmp_path])
    assert "ARC-Challenge, validation split/vi" in str(err.value)
    assert str(tmp_path / "first" / "results.json") in str(err.value)
    assert str(tmp_path / "second" / "results.json") in str(err.value)


def test_one_model_on_both_arc_splits_is_two_scores_not_a_duplicate(tmp_path):
    write_run(tmp_path / "first", "tiny", RUNS["tiny-dpo"])
    write_run(tmp_path / "second", "tiny", {"okapi_arc_vi": {"acc,none": 0.5}})
    loaded = lb.load_scores(None, [tmp_path])
    assert {(s.split, s.value) for s in loaded if s.lang == "vi" and s.metric == "acc"} == {
        ("validation", 0.12),
        ("test", 0.5),
    }


# --- the Gradio app, built but not served -------------------------------------------------------


def markdown_texts(demo) -> str:
    import gradio as gr

    return "\n".join(block.value for block in demo.blocks.values() if isinstance(block, gr.Markdown))


def test_demo_without_data_is_a_page_naming_the_variables(monkeypatch):
    monkeypatch.delenv(lb.SEED_ENV, raising=False)
    monkeypatch.delenv(lb.RESULTS_ENV, raising=False)
    text = markdown_texts(lb.demo_from_env())
    assert "no data configured" in text and lb.SEED_ENV in text and lb.RESULTS_ENV in text


def test_demo_with_a_bad_file_shows_the_error(tmp_path, monkeypatch):
    path = tmp_path / "seed.csv"
    path.write_text(HEADER + GOOD + "arc-challenge,xx,m1,t,0.3,,0.3,,,,,\n", encoding="utf-8")
    monkeypatch.setenv(lb.SEED_ENV, str(path))
    monkeypatch.setenv(lb.RESULTS_ENV, "")
    text = markdown_texts(lb.demo_from_env())
    assert "cannot be read" in text and f"{path}: row 2 (line 3), field 'lang'" in text


def test_demo_reads_both_variables_and_opens_on_the_authors_arc_split(runs, monkeypatch):
    import gradio as gr

    monkeypatch.setenv(lb.SEED_ENV, str(REFERENCE))
    monkeypatch.setenv(lb.RESULTS_ENV, f"{runs / 'tiny-sft'}{os.pathsep}{runs / 'dpo'}")
    demo = lb.demo_from_env()
    tables = [b for b in demo.blocks.values() if isinstance(b, gr.Dataframe)]
    assert len(tables) == 1
    headers = tables[0].value["headers"]
    rows = {row[0]: dict(zip(headers, row, strict=True)) for row in tables[0].value["data"]}
    assert {"tiny-sft", "tiny-dpo", "llama-7B", "gpt2"} <= set(rows)
    assert {row["split"] for row in rows.values()} == {"validation"}
    assert rows["tiny-sft"]["vi"] == 41.0  # acc of the validation run, not the test run's 52.0
    (radio,) = [b for b in demo.blocks.values() if isinstance(b, gr.Radio)]
    assert radio.value == "acc"
    (dropdown,) = [b for b in demo.blocks.values() if isinstance(b, gr.Dropdown)]
    assert dropdown.value == "arc/validation"
    assert [label for label, _ in dropdown.choices][:2] == [
        "ARC-Challenge, validation split",
        "ARC-Challenge, test split",
    ]
    text = markdown_texts(demo)
    assert "2 model(s) (tiny-dpo, tiny-sft)" in text
    assert "paper" not in text.lower() and lb.REFERENCE_SOURCE in text


# --- the Space, served, through its API and in a real browser ----------------------------------


@pytest.fixture(scope="module")
def space(runs):
    from live import run_space

    env = {lb.SEED_ENV: str(REFERENCE), lb.RESULTS_ENV: str(runs)}
    with run_space(APP, env) as url:
        yield url


EXPECTED_API_ERRORS = ("no 'mc2' scores for arc (validation)", "no 'val' split scores for arc")


@pytest.mark.slow
def test_space_api_returns_the_filtered_table(space):
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    client = Client(space, verbose=False)
    answer = client.predict("arc", "acc_norm", ["low"], api_name="/leaderboard")
    low = [lang.code for lang in languages("low") if lang.code in ("bn", "ta")]  # the low ones with scores
    assert (answer["split"], answer["metric"]) == ("validation", "acc_norm")
    assert answer["headers"] == ["model", lb.MACRO, lb.COUNT, "split", "documents", "run", *low, "source"]
    rows = {row[0]: dict(zip(answer["headers"], row, strict=True)) for row in answer["rows"]}
    reference = reference_values("arc", "acc_norm")
    for model, values in reference.items():
        assert rows[model][lb.MACRO] == round(100 * mean(values[c] for c in low), 1)
        assert rows[model]["source"] == lb.REFERENCE_SOURCE
    assert (
        rows["tiny-sft"]["bn"] == 27.0 and rows["tiny-sft"][lb.COUNT] == 1 and rows["tiny-sft"]["ta"] is None
    )
    assert rows["tiny-sft"]["documents"] == 296 and rows["tiny-dpo"]["documents"] is None
    assert rows["tiny-dpo"]["ta"] == 19.0
    # The test split: the runs' own view, none of the authors' rows.
    answer = client.predict(benchmark="arc", split="test", api_name="/leaderboard")
    assert (answer["split"], answer["metric"]) == ("test", "acc")
    assert [row[0] for row in answer["rows"]] == ["tiny-sft"]
    # No metric: the benchmark's own (TruthfulQA is scored by mc2), with the run that has TruthfulQA.
    answer = client.predict("truthfulqa", api_name="/leaderboard")
    assert answer["metric"] == "mc2"
    assert {row[0] for row in answer["rows"]} == set(reference_values("truthfulqa", "mc2")) | {"tiny-sft"}
    with pytest.raises(
        AppError, match=re.escape("no 'mc2' scores for arc (validation); it has acc, acc_norm")
    ):
        client.predict("arc", "mc2", api_name="/leaderboard")
    with pytest.raises(AppError, match="no 'val' split scores for arc; it has validation, test"):
        client.predict(benchmark="arc", split="val", api_name="/leaderboard")


def server_errors(url: str) -> list[str]:
    """Exception lines in the Space's log (run_space writes it next to the screenshots)."""
    from live import ARTIFACTS

    port = url.rstrip("/").rsplit(":", 1)[1]
    log = (ARTIFACTS / f"{APP.parent.name}-{port}.log").read_text()
    return [line for line in log.splitlines() if re.match(r"^[\w.]+(Error|Exception)\b.*:", line)]


def cells(page, column: int) -> list[str]:
    return page.locator(f"#leaderboard-table [role=gridcell][data-col='{column}']").all_inner_texts()


def headers(page) -> list[str]:
    return page.locator("#leaderboard-table th[role=columnheader]").evaluate_all("hs => hs.map(h => h.title)")


def row_of(page, model: str) -> dict[str, str]:
    names = headers(page)
    index = cells(page, 0).index(model)
    return {name: cells(page, col)[index] for col, name in enumerate(names)}


@pytest.mark.slow
def test_browser_shows_filters_and_sorts_the_table(space):
    from live import ARTIFACTS, chromium

    reference = reference_values("arc", "acc")
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 1300})
        page.set_default_timeout(10_000)
        page.goto(space)
        table = page.locator("#leaderboard-table")
        table.locator("[role=gridcell]", has_text="tiny-sft").wait_for(timeout=20_000)
        table.locator("[role=gridcell]", has_text="llama-7B").wait_for()
        # Opens on ARC-Challenge's validation split by acc: best macro mean first, the runs among the authors' models.
        assert page.locator("#metric input[value='acc']").is_checked()
        macro = {model: round(100 * mean(values.values()), 1) for model, values in reference.items()}
        for model, tasks in RUNS.items():
            macro[model] = round(
                100 * mean(v["acc,none"] for t, v in tasks.items() if t.startswith("okapi_arc_val_")), 1
            )
        assert cells(page, 0) == sorted(macro, key=lambda m: (-macro[m], m))
        assert cells(page, 1) == [f"{macro[m]:.1f}" for m in cells(page, 0)]
        assert set(cells(page, 3)) == {"validation"}
        limited, sft = row_of(page, "tiny-limit"), row_of(page, "tiny-sft")
        assert (limited["run"], limited["documents"]) == ("partial: 50 of 298 documents", "50")
        assert (sft["run"], sft["documents"], sft["vi"]) == ("full", str(298 + 296 + 298), "41.0")
        assert row_of(page, "tiny-dpo")["documents"] == ""  # unknown, not 0
        assert "--limit" in page.locator("#leaderboard-notes").inner_text()
        assert "eu" in headers(page)
        chart = page.locator("#language-chart img")
        first_chart = chart.get_attribute("src")
        assert first_chart.startswith("data:image/png")

        # Untick the "extra" group: its languages leave the table, the others stay.
        page.locator("#groups label", has_text="extra").click()
        page.wait_for_function("() => !document.querySelector('#leaderboard-table th[title=\"eu\"]')")
        shown = headers(page)
        assert "vi" in shown and not {"eu", "gu", "hy", "pt", "sv"} & set(shown)
        page.wait_for_function(
            "src => document.querySelector('#language-chart img').src !== src", arg=first_chart
        )  # the chart is redrawn for the languages left

        # Sort by Vietnamese from the column menu: highest first, the runs that lack it last.
        vi = shown.index("vi")
        table.locator("th[title='vi']").hover()  # the menu button shows on hover
        table.locator("th[title='vi'] button.cell-menu-button").click()
        page.get_by_role("menuitem", name="Sort descending").click()
        page.wait_for_function(
            "() => document.querySelector(\"#leaderboard-table [data-testid='cell-0-0']\").innerText === 'tiny-sft'"
        )
        values = [float(v) for v in cells(page, vi) if v]
        assert values == sorted(values, reverse=True) and values[0] == 41.0  # tiny-sft's vi
        page.screenshot(path=str(ARTIFACTS / "leaderboard.png"), full_page=True)

        # ARC-Challenge's test split: the runs' test scores only, none of the authors' rows.
        page.locator("#benchmark input").click()
        page.get_by_role("option", name="ARC-Challenge, test split").click()
        page.wait_for_function(
            "() => ![...document.querySelectorAll(\"#leaderboard-table [role=gridcell][data-col='0']\")]"
            ".some(cell => cell.innerText === 'llama-7B')"
        )
        assert cells(page, 0) == ["tiny-sft"]
        test_row = row_of(page, "tiny-sft")
        assert (test_row["split"], test_row["vi"], test_row["documents"]) == ("test", "52.0", "1170")

        # TruthfulQA is shown by mc2, with the run that scored it beside the authors' models.
        page.locator("#benchmark input").click()
        page.get_by_role("option", name="TruthfulQA (MC), validation split").click()
        page.wait_for_function(
            "() => [...document.querySelectorAll(\"#leaderboard-table [role=gridcell][data-col='0']\")]"
            ".some(cell => cell.innerText === 'llama-7B')"
        )
        assert page.locator("#metric input[value='mc2']").is_checked()
        assert set(cells(page, 0)) == set(reference_values("truthfulqa", "mc2")) | {"tiny-sft"}
        assert row_of(page, "tiny-sft")["vi"] == "47.0"
        page.screenshot(path=str(ARTIFACTS / "leaderboard-truthfulqa.png"), full_page=True)
    # Nothing failed on the server behind the page (the API test's refused calls are the errors expected).
    unexpected = [e for e in server_errors(space) if not any(x in e for x in EXPECTED_API_ERRORS)]
    assert unexpected == []


@pytest.mark.slow
def test_browser_unconfigured_and_broken_spaces_show_a_clear_page(tmp_path):
    from live import ARTIFACTS, chromium, run_space

    broken = tmp_path / "seed.csv"
    broken.write_text(HEADER + GOOD + "arc-challenge,de,m1,t,0.3,,7,,,,,\n", encoding="utf-8")
    with chromium() as browser:
        page = browser.new_page()
        with run_space(APP, {lb.SEED_ENV: "", lb.RESULTS_ENV: ""}) as url:
            page.goto(url)
            message = page.locator("#leaderboard-message")
            message.get_by_text("no data configured").wait_for(timeout=20_000)
            assert lb.SEED_ENV in message.inner_text() and lb.RESULTS_ENV in message.inner_text()
            page.screenshot(path=str(ARTIFACTS / "leaderboard-unconfigured.png"))
        with run_space(APP, {lb.SEED_ENV: str(broken), lb.RESULTS_ENV: ""}) as url:
            page.goto(url)
            page.get_by_text("the data cannot be read").wait_for(timeout=20_000)
            text = page.locator("#leaderboard-message").inner_text()
            assert f"{broken}: row 2 (line 3), field 'acc_norm'" in text and "got '7'" in text
            page.screenshot(path=str(ARTIFACTS / "leaderboard-bad-data.png"))
