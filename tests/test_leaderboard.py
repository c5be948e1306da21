"""The leaderboard Space: the authors' base-model CSV and `okapi-hf eval run` folders as one sortable table.

Expected numbers are read from the real CSV with the csv module here, independently of the code under
test; eval-run folders are written with the harness's own report writer (lm-eval itself is not run).
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
from pathlib import Path
from statistics import mean

import pytest

from okapi_hf.errors import OkapiError
from okapi_hf.eval.harness import write_report
from okapi_hf.languages import GROUPS, get_language, languages
from okapi_hf.spaces import leaderboard as lb

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO.parent / "shared" / "data" / "okapi-eval" / "reference_results_base_models.csv"
APP = REPO / "spaces" / "leaderboard" / "app.py"
# How the authors' CSV names the benchmarks, and what the leaderboard calls them.
CSV_NAMES = {"arc-challenge": "arc", "hellaswag": "hellaswag", "mmlu": "mmlu", "truthfulqa-mc": "truthfulqa"}
REGISTRY_ORDER = [lang.code for lang in languages()]

# Two runs of small models as `okapi-hf eval run` would leave them; the second sits one folder deeper.
RUNS = {
    "tiny-sft": {
        "okapi_arc_vi": {"acc,none": 0.41, "acc_norm,none": 0.44},
        "okapi_arc_bn": {"acc,none": 0.22, "acc_norm,none": 0.27},
        "okapi_arc_de": {"acc,none": 0.35, "acc_norm,none": 0.333},
        "okapi_hellaswag_vi": {"acc,none": 0.30, "acc_norm,none": 0.31},
        "okapi_arc": {"acc,none": 0.3, "acc_norm,none": 0.3},  # a group aggregate: not a language score
    },
    "tiny-dpo": {
        "okapi_arc_vi": {"acc,none": 0.12, "acc_norm,none": 0.15},
        "okapi_arc_ta": {"acc,none": 0.18, "acc_norm,none": 0.19},
    },
}


def reference_rows() -> list[dict[str, str]]:
    with REFERENCE.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def reference_values(benchmark: str, metric: str) -> dict[str, dict[str, float]]:
    """``{model: {lang: value}}`` for one benchmark and metric, straight from the CSV."""
    values: dict[str, dict[str, float]] = {}
    for row in reference_rows():
        if CSV_NAMES[row["benchmark"]] == benchmark and row[metric]:
            values.setdefault(row["model"], {})[row["lang"]] = float(row[metric])
    return values


def write_run(folder: Path, model: str, tasks: dict, *, with_card: bool = True, config: dict | None = None):
    folder.mkdir(parents=True, exist_ok=True)
    results = {"results": tasks, **({"config": config} if config else {})}
    (folder / "results.json").write_text(json.dumps(results), encoding="utf-8")
    if with_card:
        write_report(results, folder, model)
    return folder


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("eval-runs")
    write_run(root / "tiny-sft", "tiny-sft", RUNS["tiny-sft"])
    write_run(root / "dpo" / "seed-1", "tiny-dpo", RUNS["tiny-dpo"])
    return root


@pytest.fixture(scope="module")
def scores(runs) -> list[lb.Score]:
    return lb.load_scores(REFERENCE, [runs])


# --- reading the inputs -----------------------------------------------------------------------


def test_reference_csv_loads_every_number_in_the_file():
    loaded = lb.load_reference_csv(REFERENCE)
    by_key = {(s.model, s.benchmark, s.lang, s.metric): s.value for s in loaded}
    expected = {
        (row["model"], CSV_NAMES[row["benchmark"]], row["lang"], metric): float(row[metric])
        for row in reference_rows()
        for metric in ("acc", "acc_norm", "mc1", "mc2")
        if row[metric]
    }
    assert len(loaded) == len(expected) == len(by_key)
    assert by_key == expected
    assert {s.source for s in loaded} == {lb.REFERENCE_SOURCE}
    assert lb.available_benchmarks(loaded) == ["arc", "hellaswag", "mmlu", "truthfulqa"]
    # TruthfulQA has only mc1/mc2 in the file and is shown by mc2, as the paper did; the others by acc_norm.
    assert lb.available_metrics(loaded, "truthfulqa") == ["mc1", "mc2"]
    assert lb.default_metric(lb.available_metrics(loaded, "truthfulqa")) == "mc2"
    assert lb.default_metric(lb.available_metrics(loaded, "arc")) == "acc_norm"


def test_eval_runs_are_found_recursively_and_named_from_their_model_index(runs, scores):
    evals = [s for s in scores if s.source == lb.EVAL_SOURCE]
    assert {s.model for s in evals} == {"tiny-sft", "tiny-dpo"}
    tiny = {(s.benchmark, s.lang, s.metric): s.value for s in evals if s.model == "tiny-sft"}
    assert tiny[("arc", "vi", "acc_norm")] == RUNS["tiny-sft"]["okapi_arc_vi"]["acc_norm,none"]
    assert ("arc", "arc", "acc") not in tiny and len(tiny) == 8  # the group aggregate is no language
    assert len(evals) == 8 + 4


def test_eval_run_without_model_card_is_named_from_lm_eval_config_then_folder(tmp_path):
    config = {"model": "hf", "model_args": "pretrained=org/tiny-llama,dtype=float32"}
    write_run(tmp_path / "a", "unused", RUNS["tiny-dpo"], with_card=False, config=config)
    assert {s.model for s in lb.load_eval_results(tmp_path / "a")} == {"org/tiny-llama"}
    write_run(tmp_path / "run-42", "unused", RUNS["tiny-dpo"], with_card=False)
    assert {s.model for s in lb.load_eval_results(tmp_path / "run-42")} == {"run-42"}


# --- the table and the chart --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("benchmark", "metric"), [("arc", "acc_norm"), ("truthfulqa", "mc2"), ("mmlu", "acc")]
)
def test_table_cells_and_macro_means_match_the_csv(benchmark, metric):
    expected = reference_values(benchmark, metric)
    table = lb.leaderboard_table(lb.load_reference_csv(REFERENCE), benchmark, metric)
    langs = [c for c in table.columns if c not in ("model", "source", lb.MACRO, lb.COUNT)]
    assert langs == [c for c in REGISTRY_ORDER if any(c in v for v in expected.values())]
    assert list(table.columns) == ["model", lb.MACRO, lb.COUNT, *langs, "source"]
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
    assert list(table[lb.MACRO]) == sorted(table[lb.MACRO], reverse=True)


@pytest.mark.parametrize("group", GROUPS)
def test_group_filter_keeps_that_groups_languages_and_means_over_them(group):
    expected = reference_values("arc", "acc_norm")
    table = lb.leaderboard_table(lb.load_reference_csv(REFERENCE), "arc", "acc_norm", [group])
    langs = [c for c in table.columns if c not in ("model", "source", lb.MACRO, lb.COUNT)]
    wanted = [c for c in REGISTRY_ORDER if get_language(c).group == group and c in expected["llama-7B"]]
    assert langs == wanted and langs  # the CSV has languages of every group
    for row in table.to_dict("records"):
        kept = [v for lang, v in expected[row["model"]].items() if lang in wanted]
        assert row[lb.MACRO] == round(100 * mean(kept), 1)
        assert row[lb.COUNT] == len(kept)


def test_no_group_gives_an_empty_table_and_a_bad_group_is_refused(scores):
    assert lb.leaderboard_table(scores, "arc", "acc_norm", []).empty
    with pytest.raises(OkapiError, match="unknown resource group"):
        lb.leaderboard_table(scores, "arc", "acc_norm", ["huge"])


def test_eval_runs_join_the_table_next_to_the_reference_models(scores):
    table = lb.leaderboard_table(scores, "arc", "acc_norm").set_index("model")
    reference = reference_values("arc", "acc_norm")
    assert set(table.index) == set(reference) | {"tiny-sft", "tiny-dpo"}
    tiny = table.loc["tiny-sft"]
    assert tiny["source"] == lb.EVAL_SOURCE and tiny[lb.COUNT] == 3
    assert tiny["de"] == round(100 * 0.333, 1) and math.isnan(tiny["ru"])
    assert tiny[lb.MACRO] == round(100 * mean([0.44, 0.27, 0.333]), 1)
    assert table.loc["llama-7B", "vi"] == round(100 * reference["llama-7B"]["vi"], 1)
    # A benchmark the runs did not score shows the reference models only.
    assert "tiny-sft" not in set(lb.leaderboard_table(scores, "mmlu", "acc_norm")["model"])


def test_chart_is_one_point_per_model_and_language_in_registry_order(scores):
    chart = lb.language_chart_data(scores, "arc", "acc_norm", ["high", "low"])
    selected = [
        s
        for s in scores
        if s.benchmark == "arc" and s.metric == "acc_norm" and get_language(s.lang).group in ("high", "low")
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
    empty = lb.language_figure(lb.language_chart_data(scores, "arc", "acc_norm", []), "none")
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
            "row 2 (line 3): a second row for model 'm1'",
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


def test_missing_inputs_are_named(tmp_path):
    with pytest.raises(OkapiError, match=f"leaderboard CSV {tmp_path / 'nope.csv'} does not exist"):
        lb.load_reference_csv(tmp_path / "nope.csv")
    with pytest.raises(OkapiError, match=f"eval results folder {tmp_path / 'gone'} does not exist"):
        lb.load_scores(None, [tmp_path / "gone"])
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(OkapiError, match=r"holds no results\.json"):
        lb.load_eval_results(tmp_path / "empty")


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
        (json.dumps([1, 2]), "expected lm-eval's results dictionary"),
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
    write_run(tmp_path / "second", "tiny", {"okapi_arc_vi": {"acc,none": 0.5}})
    with pytest.raises(OkapiError, match="two acc scores for model 'tiny'") as err:
        lb.load_scores(None, [tmp_path])
    assert str(tmp_path / "first" / "results.json") in str(err.value)
    assert str(tmp_path / "second" / "results.json") in str(err.value)


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


def test_demo_reads_both_variables(runs, monkeypatch):
    import gradio as gr

    monkeypatch.setenv(lb.SEED_ENV, str(REFERENCE))
    monkeypatch.setenv(lb.RESULTS_ENV, f"{runs / 'tiny-sft'}{os.pathsep}{runs / 'dpo'}")
    demo = lb.demo_from_env()
    tables = [b for b in demo.blocks.values() if isinstance(b, gr.Dataframe)]
    assert len(tables) == 1
    models = {row[0] for row in tables[0].value["data"]}
    assert {"tiny-sft", "tiny-dpo", "llama-7B", "gpt2"} <= models
    assert "2 model(s) (tiny-dpo, tiny-sft)" in markdown_texts(demo)


# --- the Space, served, through its API and in a real browser ----------------------------------


@pytest.fixture(scope="module")
def space(runs):
    from live import run_space

    env = {lb.SEED_ENV: str(REFERENCE), lb.RESULTS_ENV: str(runs)}
    with run_space(APP, env) as url:
        yield url


@pytest.mark.slow
def test_space_api_returns_the_filtered_table(space):
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    client = Client(space, verbose=False)
    answer = client.predict("arc", "acc_norm", ["low"], api_name="/leaderboard")
    low = [lang.code for lang in languages("low")]
    assert answer["metric"] == "acc_norm"
    assert answer["headers"] == ["model", lb.MACRO, lb.COUNT, *low, "source"]
    rows = {row[0]: dict(zip(answer["headers"], row, strict=True)) for row in answer["rows"]}
    reference = reference_values("arc", "acc_norm")
    for model, values in reference.items():
        assert rows[model][lb.MACRO] == round(100 * mean(values[c] for c in low), 1)
        assert rows[model]["source"] == lb.REFERENCE_SOURCE
    assert (
        rows["tiny-sft"]["bn"] == 27.0 and rows["tiny-sft"][lb.COUNT] == 1 and rows["tiny-sft"]["ta"] is None
    )
    assert rows["tiny-dpo"]["ta"] == 19.0
    # No metric: the benchmark's own (TruthfulQA is scored by mc2), and the runs, which lack it, drop out.
    answer = client.predict("truthfulqa", api_name="/leaderboard")
    assert answer["metric"] == "mc2"
    assert {row[0] for row in answer["rows"]} == set(reference_values("truthfulqa", "mc2"))
    with pytest.raises(AppError, match="no 'mc2' scores for arc; it has acc, acc_norm"):
        client.predict("arc", "mc2", api_name="/leaderboard")


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


@pytest.mark.slow
def test_browser_shows_filters_and_sorts_the_table(space):
    from live import ARTIFACTS, chromium

    reference = reference_values("arc", "acc_norm")
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 1300})
        page.set_default_timeout(10_000)
        page.goto(space)
        table = page.locator("#leaderboard-table")
        table.locator("[role=gridcell]", has_text="tiny-sft").wait_for(timeout=20_000)
        table.locator("[role=gridcell]", has_text="llama-7B").wait_for()
        # Best macro mean first, the runs among the paper's models.
        macro = {model: round(100 * mean(values.values()), 1) for model, values in reference.items()}
        for model, tasks in RUNS.items():
            macro[model] = round(
                100 * mean(v["acc_norm,none"] for t, v in tasks.items() if t.startswith("okapi_arc_")), 1
            )
        assert cells(page, 0) == sorted(macro, key=lambda m: (-macro[m], m))
        assert cells(page, 1) == [f"{macro[m]:.1f}" for m in cells(page, 0)]
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
        assert values == sorted(values, reverse=True) and values[0] == 44.0  # tiny-sft's vi
        page.screenshot(path=str(ARTIFACTS / "leaderboard.png"), full_page=True)

        # Another benchmark: TruthfulQA is shown by mc2 and has no eval-run rows.
        page.locator("#benchmark input").click()
        page.get_by_role("option", name="TruthfulQA (MC)").click()
        page.wait_for_function(
            "() => ![...document.querySelectorAll(\"#leaderboard-table [role=gridcell][data-col='0']\")]"
            ".some(cell => cell.innerText === 'tiny-sft')"
        )
        assert page.locator("#metric input[value='mc2']").is_checked()
        assert set(cells(page, 0)) == set(reference_values("truthfulqa", "mc2"))
        page.screenshot(path=str(ARTIFACTS / "leaderboard-truthfulqa.png"), full_page=True)
    # Nothing failed on the server behind the page (the API test's refused call is the one expected error).
    unexpected = [e for e in server_errors(space) if "no 'mc2' scores for arc" not in e]
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
