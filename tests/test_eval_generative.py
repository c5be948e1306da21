"""Generative evaluation: questions, answers (local model or endpoint), the report, and the whole loop."""

from __future__ import annotations

import json
from pathlib import Path
from statistics import mean

import pytest
import yaml
from huggingface_hub.repocard_data import model_index_to_eval_results

from okapi_hf.chat import pipeline
from okapi_hf.cli import main
from okapi_hf.create.fake_llm import FakeLLMServer
from okapi_hf.errors import DataError
from okapi_hf.eval.answer import answer_questions, load_questions
from okapi_hf.eval.judge_report import bootstrap_ci, summarize, write_report
from okapi_hf.testing import make_tiny_model

# An excerpt of the real multilingual Vicuna questions (the TaCo release): see tests/fixtures/README.md.
QUESTIONS = Path(__file__).resolve().parent / "fixtures" / "vicuna-bench" / "questions"
VI = "Đây là một câu trả lời bằng tiếng Việt, viết cẩn thận và đầy đủ cho người hỏi."
EN = "This answer is written in English, which is not the language the question was asked in."


def _write_questions(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rows = {
        "vi": [
            {"question_id": 1, "category": "generic", "turns": ["Kể về Hà Nội."], "lang": "vi"},
            {
                "question_id": 2,
                "category": "math",
                "turns": ["Hai cộng hai?", "Nhân ba thì sao?"],
                "lang": "vi",
            },
        ],
        "ru": [{"question_id": 1, "category": "generic", "turns": ["Расскажи о Москве."], "lang": "ru"}],
    }
    for lang, items in rows.items():
        (folder / f"{lang}.jsonl").write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in items)
        )
    return folder


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return make_tiny_model("llama", tmp_path_factory.mktemp("gen") / "llama", seed=2)


# -- questions ---------------------------------------------------------------------------------------------


def test_the_real_vicuna_questions_load():
    questions = load_questions(QUESTIONS, "ne,fa")
    rows = {lang: _lines(QUESTIONS / f"{lang}.jsonl") for lang in ("ne", "fa")}
    expected_ids = [f"{lang}-{row['question_id']}" for lang, items in rows.items() for row in items]
    assert [q["id"] for q in questions] == expected_ids  # every row of both files, in file order
    assert len(set(expected_ids)) == len(expected_ids) and {q["lang"] for q in questions} == {"ne", "fa"}
    assert [q["turns"] for q in questions] == [row["turns"] for items in rows.values() for row in items]
    assert all(q["turns"][0].strip() for q in questions)
    assert {q["category"] for q in questions} >= {"writing", "math", "coding"}


def test_limit_takes_the_first_questions_of_each_language():
    questions = load_questions(QUESTIONS, "ne,fa", limit=3)
    expected = [
        f"{lang}-{row['question_id']}"
        for lang in ("ne", "fa")
        for row in _lines(QUESTIONS / f"{lang}.jsonl")[:3]
    ]
    assert [q["id"] for q in questions] == expected


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "line 1: not JSON"),
        ('{"category": "x", "turns": ["q"]}', "missing field 'question_id'"),
        ('{"question_id": 1, "turns": []}', "'turns' must be a non-empty list"),
        ('{"question_id": 1, "turns": ["q"], "lang": "ru"}', "'lang' is 'ru' in the file for 'vi'"),
    ],
)
def test_bad_question_files_are_named(tmp_path, line, message):
    (tmp_path / "vi.jsonl").write_text(line + "\n")
    with pytest.raises(DataError, match=message):
        load_questions(tmp_path, "vi")
    with pytest.raises(
        DataError, match=r"no questions for ru: .*ru\.jsonl does not exist \(languages there: vi\)"
    ):
        load_questions(tmp_path, "ru")


# -- answering ---------------------------------------------------------------------------------------------


def test_a_local_model_answers_every_turn_greedily_and_resumes(model, tmp_path):
    questions = load_questions(_write_questions(tmp_path / "q"), "vi,ru")
    out = tmp_path / "answers"
    assert (
        answer_questions(questions, out, model=str(model), batch_size=2, max_new_tokens=8, progress=False)
        == 3
    )
    rows = {r["id"]: r for r in _lines(out / "vi.jsonl") + _lines(out / "ru.jsonl")}
    assert set(rows) == {"vi-1", "vi-2", "ru-1"} and len(rows["vi-2"]["answers"]) == 2
    chat = pipeline(model, max_new_tokens=8, do_sample=False)
    first = chat.chat([{"role": "user", "content": "Hai cộng hai?"}])
    assert rows["vi-2"]["answers"][0] == first
    history = [
        {"role": "user", "content": "Hai cộng hai?"},
        {"role": "assistant", "content": first},
        {"role": "user", "content": "Nhân ba thì sao?"},
    ]
    assert rows["vi-2"]["answers"][1] == chat.chat(history)
    assert (
        answer_questions(questions, out, model=str(model), max_new_tokens=8, progress=False) == 0
    )  # resumed: all done


def test_an_endpoint_answers_with_the_conversation_so_far(tmp_path):
    questions = load_questions(_write_questions(tmp_path / "q"), "vi")
    with FakeLLMServer() as server:  # echoes the last message
        assert (
            answer_questions(questions, tmp_path / "a", backend=f"openai:m@{server.url}", progress=False) == 2
        )
        second_turn = [b for b in server.requests if len(b["messages"]) == 3]
    rows = {r["id"]: r for r in _lines(tmp_path / "a" / "vi.jsonl")}
    assert rows["vi-2"]["answers"] == ["echo: Hai cộng hai?", "echo: Nhân ba thì sao?"]
    assert second_turn[0]["messages"][1] == {"role": "assistant", "content": "echo: Hai cộng hai?"}
    assert second_turn[0]["temperature"] == 0


# -- the report --------------------------------------------------------------------------------------------


def test_bootstrap_interval_is_seeded_and_brackets_the_mean():
    values = [3.0, 7.0, 8.0, 5.0, 9.0, 6.0]
    low, high = bootstrap_ci(values)
    assert low < mean(values) < high and (low, high) == bootstrap_ci(values)
    assert bootstrap_ci([4.0, 4.0]) == (4.0, 4.0)


def _answers_and_judgements():
    answers = [
        {"id": f"vi-{i}", "lang": "vi", "category": cat, "answers": [text], "model": "m"}
        for i, (cat, text) in enumerate([("math", VI), ("math", EN), ("writing", VI), ("writing", VI)])
    ]
    ratings = [8, None, 6, 4]
    judgements = [
        {"id": a["id"], "lang": "vi", "category": a["category"], "model": "m", "mode": "single", "rating": r}
        for a, r in zip(answers, ratings, strict=True)
    ]
    return answers, judgements


def test_the_report_scores_counts_failures_and_measures_fidelity():
    answers, judgements = _answers_and_judgements()
    rows = {(r.lang, r.category): r for r in summarize(judgements, answers)}
    overall = rows[("vi", "all")]
    assert (overall.answers, overall.judged, overall.unparsed) == (4, 4, 1)
    assert overall.score == pytest.approx(6.0) and overall.ci_low <= 6.0 <= overall.ci_high
    assert overall.fidelity == pytest.approx(0.75)  # the English answer is not in Vietnamese
    assert overall.mean_chars == pytest.approx(mean(len(a["answers"][0]) for a in answers))
    assert rows[("vi", "math")].score == 8.0 and rows[("vi", "math")].unparsed == 1
    assert rows[("vi", "writing")].score == 5.0 and rows[("vi", "writing")].fidelity == 1.0


def test_the_report_files_and_model_index(tmp_path, capsys):
    answers, judgements = _answers_and_judgements()
    for folder, rows in (("answers", answers), ("judgements", judgements)):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "vi.jsonl").write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        )
    args = ["--judgements", str(tmp_path / "judgements"), "--answers", str(tmp_path / "answers")]
    assert main(["eval", "report", *args, "--out", str(tmp_path / "report")]) == 0
    assert "m vi: score 6.00" in capsys.readouterr().out
    report = tmp_path / "report"
    assert (report / "report.png").stat().st_size > 0
    assert "| m | Vietnamese (`vi`) | **all** | 4 | 4 | 1 | 6.00 |" in (report / "report.md").read_text()
    index = yaml.safe_load((report / "model_index.yaml").read_text())["model-index"]
    name, results = model_index_to_eval_results(index)
    assert name == "m" and {(r.dataset_type, r.metric_type) for r in results} == {
        ("vicuna_vi", "judge_score"),
        ("vicuna_vi", "language_fidelity"),
    }
    # the model card's evaluation block: `publish model --eval-results REPORT` puts these scores in it
    from okapi_hf.hub import publish
    from okapi_hf.hub.cards import render_model_card

    folder = make_tiny_model("llama", tmp_path / "model")
    card = render_model_card(
        title="m",
        description="d",
        stage="sft",
        init_from="x/y",
        langs=["vi"],
        data="d",
        usage="",
        hyperparameters={},
    )
    (folder / "README.md").write_text(card, encoding="utf-8")
    planned = publish("model", folder, "org/m", dry_run=True, eval_results=report)
    assert any("2 model-index score(s)" in change for change in planned.plan.card_changes)
    assert (
        main(
            [
                "eval",
                "report",
                "--judgements",
                str(tmp_path / "nothing"),
                "--answers",
                str(tmp_path),
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 1
    )
    assert "no judgements in" in capsys.readouterr().err


def test_eval_generate_needs_one_model_source(tmp_path, capsys):
    _write_questions(tmp_path / "q")
    assert (
        main(
            ["eval", "generate", "--questions", str(tmp_path / "q"), "--langs", "vi", "--out", str(tmp_path)]
        )
        == 1
    )
    assert "exactly one of --model" in capsys.readouterr().err


# -- the whole loop ------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_generate_judge_and_report_run_end_to_end(model, greedy_server, tmp_path, capsys):
    """Answers from a local model and from an endpoint, graded by a real local endpoint, then the report."""
    questions = _write_questions(tmp_path / "q")
    local, served = tmp_path / "answers-local", tmp_path / "answers-served"
    common = ["eval", "generate", "--questions", str(questions), "--langs", "vi,ru", "--max-new-tokens", "8"]
    assert main([*common, "--model", str(model), "--out", str(local)]) == 0
    assert main([*common, "--backend", greedy_server, "--out", str(served)]) == 0
    assert "3 new answer(s) to 3 vicuna question(s)" in capsys.readouterr().out
    url, name = greedy_server.split("@")[1], greedy_server.split(":", 1)[1].split("@")[0]

    judged = tmp_path / "judged"
    judge = ["eval", "judge", "--answers", str(local), "--out", str(judged), "--judge-endpoint", url]
    assert main([*judge, "--judge-model", name, "--concurrency", "2"]) == 0
    rows = _lines(judged / "vi.jsonl") + _lines(judged / "ru.jsonl")
    assert sorted(r["id"] for r in rows) == ["ru-1", "vi-1", "vi-2"]
    unparsed = sum(not r["parsed"] for r in rows)  # a random model writes no rating: counted, never guessed
    assert all((r["rating"] is None) == (not r["parsed"]) for r in rows)

    pairwise = tmp_path / "pairwise"
    args = [
        "eval",
        "judge",
        "--answers",
        str(local),
        "--out",
        str(pairwise),
        "--judge-backend",
        greedy_server,
    ]
    assert main([*args, "--mode", "pairwise", "--baseline", str(served)]) == 0
    assert all(r["mode"] == "pairwise" for r in _lines(pairwise / "vi.jsonl"))
    capsys.readouterr()

    report = tmp_path / "report"
    assert (
        main(["eval", "report", "--judgements", str(judged), "--answers", str(local), "--out", str(report)])
        == 0
    )
    saved = {(r["lang"], r["category"]): r for r in json.loads((report / "report.json").read_text())}
    assert saved[("vi", "all")]["answers"] == 2 and saved[("ru", "all")]["answers"] == 1
    assert sum(saved[(lang, "all")]["unparsed"] for lang in ("vi", "ru")) == unparsed
    assert (report / "report.png").is_file() and (report / "model_index.yaml").is_file()


def test_questions_split_on_newlines_only_and_repeats_are_named(tmp_path):
    row = {"question_id": 1, "category": "writing", "turns": ["Một\u2028hai"], "lang": "vi"}
    (tmp_path / "vi.jsonl").write_text(json.dumps(row, ensure_ascii=False) + "\n")
    assert load_questions(tmp_path, "vi")[0]["turns"] == ["Một\u2028hai"]
    (tmp_path / "vi.jsonl").write_text((json.dumps(row, ensure_ascii=False) + "\n") * 2)
    with pytest.raises(DataError, match=r"vi\.jsonl: question_id 1 repeats"):
        load_questions(tmp_path, "vi")


def test_the_report_takes_rows_from_other_tools_and_names_endpoint_models(tmp_path, caplog):
    answers = [
        {
            "id": "vi-1",
            "lang": "vi",
            "category": None,
            "answers": [VI],
            "model": "openai:tiny@http://127.0.0.1:1/v1",
        },
        {"id": "vi-2", "lang": "vi", "answers": [VI], "model": "openai:tiny@http://127.0.0.1:1/v1"},
    ]
    judgements = [
        {
            "id": "vi-1",
            "lang": "vi",
            "category": None,
            "model": "openai:tiny@http://127.0.0.1:1/v1",
            "rating": 7,
        },
        {"id": "vi-2", "lang": "vi", "model": "openai:tiny@http://127.0.0.1:1/v1", "rating": 5},
        {"id": "ru-9", "lang": "ru", "model": None, "rating": 3},  # no answer for it in the folder
    ]
    for folder, rows in (("a", answers), ("j", judgements)):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "x.jsonl").write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        )
    rows = {
        (r.model, r.lang, r.category): r for r in write_report(tmp_path / "j", tmp_path / "a", tmp_path / "r")
    }
    assert rows[("tiny", "vi", "all")].score == 6.0 and rows[("tiny", "vi", "general")].answers == 2
    assert rows[("model", "ru", "all")].fidelity is None
    assert "1 judgement(s) have no matching answer" in (tmp_path / "r" / "report.md").read_text()
    index = yaml.safe_load((tmp_path / "r" / "model_index.yaml").read_text())["model-index"]
    assert sorted(entry["name"] for entry in index) == ["model", "tiny"]


def test_answering_takes_exactly_one_of_a_model_or_an_endpoint(tmp_path):
    questions = load_questions(_write_questions(tmp_path / "q"), "vi")
    for kwargs in ({}, {"model": "m", "backend": "openai:m@http://127.0.0.1:9"}):
        with pytest.raises(ValueError, match="exactly one of model"):
            answer_questions(questions, tmp_path / "a", **kwargs)
    assert not (tmp_path / "a").exists()  # refused before anything is written
