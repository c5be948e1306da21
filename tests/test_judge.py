"""The LLM judge: its parser on real GPT-4 judgements, its prompts, both-order pairwise, resumability."""

from __future__ import annotations

import asyncio
import json
import re
from importlib import resources
from pathlib import Path

import pytest

from okapi_hf.create.backends import FunctionBackend
from okapi_hf.create.fake_llm import FakeLLMServer
from okapi_hf.create.llm import LLMClient
from okapi_hf.create.runner import run_rows
from okapi_hf.errors import ConfigError, DataError
from okapi_hf.eval.judge import (
    combine_verdicts,
    judge_answers,
    judge_pairwise_request,
    judge_single_request,
    judge_spec,
    language_name,
    load_references,
    make_judge,
    parse_rating,
    parse_verdict,
    stored_rating,
    unparsed_counts,
)

# Real GPT-4 judgements from the TaCo release: the first ten of each file and the rows that show the
# parser's cases (see tests/fixtures/README.md).
JUDGMENTS = Path(__file__).resolve().parent / "fixtures" / "vicuna-bench" / "judgments"
# An independent reading of the requested format: a lone number in double brackets.
BRACKETED = re.compile(r"\[\[\s*(\d+(?:\.\d+)?)\s*\]\]")


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _shipped(name: str) -> str:
    return (resources.files("okapi_hf.eval.prompts") / f"{name}.md").read_text(encoding="utf-8").strip()


def _row(qid: int, answer: str, *, lang: str = "ne", category: str = "generic", model: str = "m") -> dict:
    return {
        "id": f"{lang}-{qid}",
        "question_id": qid,
        "lang": lang,
        "category": category,
        "turns": [f"Question {qid}?"],
        "answers": [answer],
        "model": model,
    }


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


# -- the parser on the real GPT-4 judgements ----------------------------------------------------------------


def _real_judgements() -> list[tuple[str, dict]]:
    found = []
    for lang in ("ne", "fa"):
        records = json.loads((JUDGMENTS / f"{lang}.json").read_text(encoding="utf-8"))
        found += [(lang, record) for record in records]
    return found


def test_the_parser_recovers_every_real_rating_and_finds_the_stored_ones_that_disagree():
    judgements = _real_judgements()
    assert {lang for lang, _ in judgements} == {"ne", "fa"}  # both files were read
    bracketed = disagree = 0
    disagreements, unbracketed = [], []
    for lang, record in judgements:
        text, parsed = record["judgement"], parse_rating(record["judgement"])
        in_text = {float(x) for x in BRACKETED.findall(text)}
        if in_text:
            bracketed += 1
            assert len(in_text) == 1, f"{lang}-{record['id']} holds several ratings: {in_text}"
            assert parsed == in_text.pop(), f"{lang}-{record['id']}: parsed {parsed} from {text[-80:]!r}"
        elif parsed is not None:  # a weaker form: the number must follow a rating word in the text
            unbracketed.append(f"{lang}-{record['id']}")
            near_label = re.findall(r"(?:rating|score|rate)\D{0,20}?(\d+(?:\.\d+)?)", text, re.IGNORECASE)
            assert parsed in {float(x) for x in near_label}, f"{lang}-{record['id']}: {parsed} from nowhere"
        stored = stored_rating(record["rating_in_number"])
        if parsed is not None and stored != parsed:
            disagree += 1
            disagreements.append(
                f"{lang}-{record['id']} (stored {record['rating_in_number']!r}, text {parsed:g})"
            )
    # Every judgement either holds the requested [[x]] or an explicit weaker rating; none is lost.
    assert all(parse_rating(r["judgement"]) is not None for _, r in judgements)
    assert bracketed + len(unbracketed) == len(judgements)
    assert unbracketed == ["fa-46"]  # the one without [[x]]: 'a score of "8"', read by hand
    print(f"\n{len(judgements)} real judgements parsed; {disagree} stored ratings disagree with the text:")
    print("  " + "; ".join(disagreements))
    assert disagree > 0, "the stored ratings were expected to disagree with the text somewhere"
    # Read by hand: ne-16 ends "Rating: [[9.5]]" but stores 10.0; fa-46 says 'a score of "8"', stores "10".
    assert any(d.startswith("ne-16 (stored 10.0, text 9.5)") for d in disagreements), disagreements[:5]
    assert any(d.startswith("fa-46 (stored '10', text 8)") for d in disagreements), disagreements[:5]


def test_real_judgements_stripped_of_their_rating_give_none():
    """The rest of a real judgement is no rating: the parser finds none, unless the text says one in words."""
    judgements = _real_judgements()
    found = {}
    for lang, record in judgements:
        cut = BRACKETED.sub("", record["judgement"])
        parsed = parse_rating(cut)
        if parsed is not None:
            near_label = re.findall(r"(?:rating|score|rate)\D{0,20}?(\d+(?:\.\d+)?)", cut, re.IGNORECASE)
            assert parsed in {float(x) for x in near_label}, f"{lang}-{record['id']}: {parsed} from nowhere"
            found[f"{lang}-{record['id']}"] = parsed
    assert len(found) <= 5, found  # e.g. "So I rate this response an 8." stays readable


# -- the parser's variants ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Good answer.\nRating: [[7]]", 7.0),
        ("Rating: [[7.5]]", 7.5),
        ("Rating: [7]", 7.0),
        ("**Rating:** [[8]]", 8.0),
        ("Rating: 8/10", 8.0),
        ("Overall I would give it a rating of 6 out of 10.", 6.0),
        ("Rating: ［［9］］", 9.0),  # full-width brackets
        ("【【4】】", 4.0),
        ("Rating: [[8]]. I hope this helps the user!", 8.0),
        ("Rating: [[8]]\n\nSo, once more: Rating: [[8.0]]", 8.0),  # the same rating twice
        ('Therefore, my rating is as follows: "[[9.8]]".', 9.8),
        ('Considering all these factors, I would give a score of "8".', 8.0),
        ("So I would rate it a 9.", 9.0),
        ("I rate this response an 8.", 8.0),
        ("Rating: **8**", 8.0),
        ("Rating: 10", 10.0),
        ("Rating: [[ 6 ]]", 6.0),
        ("Rating: [[8/10]]", 8.0),
        ("Rating: [[۸]]", 8.0),  # Persian digits
        ("Rating: [[८]]", 8.0),  # Devanagari digits
        ("The judge's verdict.\n7/10", 7.0),
        ("It quotes `dp = [[0] * (n + 1)]` correctly. Rating: [[4]]", 4.0),
        ("The code prints [[1]] for this input. Rating: [[4]]", 4.0),  # labelled rating wins over code
        # no rating, or none to trust: never guessed
        ("The answer is good and detailed.", None),
        ("Rating: [[x]]", None),
        ("Rating: [[7]] for helpfulness, Rating: [[8]] for accuracy", None),
        ("[[1]] and [[4]]", None),
        ("Helpfulness: Rating: 8. Accuracy: Rating: 6.", None),
        ("Rating: [[0]]", None),
        ("Rating: [[11]]", None),
        ("Rating: 4/5", None),  # another scale
        ("Score: 70/100", None),
        ("Rating: 1-10", None),  # a range is no rating
        ("It covers about 1/10 of the population.", None),
        ("The user asks for 5 ideas and gets 3.", None),
        ("", None),
    ],
)
def test_rating_variants(text, expected):
    assert parse_rating(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("A is clearer.\n[[A]]", "A"),
        ("My final verdict: [[B]]", "B"),
        ("[[C]]", "tie"),
        ("[[tie]]", "tie"),
        ("**[[ A ]]**", "A"),
        ("Verdict: [[A]]. Yes, [[A]].", "A"),
        ("Final verdict: Assistant B", "B"),
        ("Verdict: A tie.", "tie"),
        ("[[A]] or maybe [[B]]", None),
        ("Both are fine.", None),
        ("[[D]]", None),
    ],
)
def test_verdict_variants(text, expected):
    assert parse_verdict(text) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [(9.0, 9.0), (7, 7.0), ("8", 8.0), ("8.5", 8.5), (" 9 ", 9.0), ("", None), (None, None), ("n/a", None),
     (True, None), (float("nan"), None)],
)  # fmt: skip
def test_stored_ratings_of_mixed_types(value, expected):
    assert stored_rating(value) == expected


@pytest.mark.parametrize(
    ("model_first", "model_second", "expected"),
    [
        ("A", "B", "win"),  # the model's answer won in both positions
        ("B", "A", "loss"),
        ("A", "A", "tie"),  # whichever answer came first won: position bias, no result
        ("tie", "tie", "tie"),
        ("A", "tie", "tie"),
        (None, "B", None),  # unparsable in one order: counted, not guessed
        ("A", None, None),
    ],
)
def test_both_orders_combine(model_first, model_second, expected):
    assert combine_verdicts(model_first, model_second) == expected


# -- the requests -------------------------------------------------------------------------------------------


def test_single_request_messages():
    request = judge_single_request(["Kasari?"], ["Yasari."], lang="ne", category="generic", max_tokens=300)
    system, user = request.messages
    assert system == {"role": "system", "content": _shipped("judge_system")}
    assert user["role"] == "user"
    assert user["content"].startswith(_shipped("judge_single").splitlines()[0])
    assert user["content"].endswith(
        "[Question]\nKasari?\n\n[Start of the assistant's answer]\nYasari.\n[End of the assistant's answer]"
    )
    assert "The user wrote in Nepali and expects the answer in Nepali" in user["content"]
    assert "Rating: [[" in user["content"] and "[Earlier turns]" not in user["content"]
    assert (request.temperature, request.max_tokens) == (0.0, 300)


def test_a_reference_is_used_for_math_and_coding_only():
    math = judge_single_request(["2+2?"], ["5"], lang="fa", category="math", reference="4")
    assert "[Start of the reference answer]\n4\n[End of the reference answer]" in math.messages[1]["content"]
    assert math.messages[1]["content"].startswith(_shipped("judge_single_reference").splitlines()[0])
    for category, reference in (("writing", "4"), ("math", None), ("coding", "  ")):
        request = judge_single_request(["2+2?"], ["5"], lang="fa", category=category, reference=reference)
        assert "reference" not in request.messages[1]["content"].lower(), category
    pair = judge_pairwise_request(
        ["f?"], ["a"], ["b"], lang="fa", category="coding", reference="def f(): ..."
    )
    assert "[Start of the reference answer]\ndef f(): ...\n" in pair.messages[1]["content"]


def test_language_names_fall_back_to_the_code():
    assert language_name("ne") == "Nepali"
    assert language_name("xx") == "xx"
    request = judge_single_request(["q"], ["a"], lang="xx", category=None)
    assert "The user wrote in xx" in request.messages[1]["content"]


def test_multi_turn_judges_the_last_turn_with_the_conversation_shown():
    request = judge_single_request(["Q1?", "Q2?"], ["A1", "A2"], lang="vi", category="writing")
    content = request.messages[1]["content"]
    assert "[Earlier turns]\nUser: Q1?\nAssistant: A1\n[End of the earlier turns]" in content
    assert content.endswith(
        "[Question]\nQ2?\n\n[Start of the assistant's answer]\nA2\n[End of the assistant's answer]"
    )
    with pytest.raises(DataError, match="one answer text per turn"):
        judge_single_request(["Q1?", "Q2?"], ["A1"], lang="vi", category="writing")


def test_pairwise_request_places_the_answers():
    request = judge_pairwise_request(["Q?"], ["first"], ["second"], lang="ne", category="generic")
    content = request.messages[1]["content"]
    assert request.messages[0]["content"] == _shipped("judge_system")
    assert content.endswith(
        "[Start of assistant A's answer]\nfirst\n[End of assistant A's answer]\n\n"
        "[Start of assistant B's answer]\nsecond\n[End of assistant B's answer]"
    )
    assert "[[A]]" in content and "[[B]]" in content and "[[C]]" in content


def test_a_prompts_folder_overrides_one_prompt(tmp_path):
    (tmp_path / "judge_single.md").write_text("Grade {{ answer }} in {{ language }}. Rating: [[x]]")
    request = judge_single_request(["q"], ["the answer"], lang="ne", category="generic", prompts_dir=tmp_path)
    assert request.messages[1]["content"] == "Grade the answer in Nepali. Rating: [[x]]"
    assert request.messages[0]["content"] == _shipped("judge_system")  # the others stay shipped


# -- judging rows through the runner ------------------------------------------------------------------------


def _grader(request) -> str:
    """A scripted judge: grades the answer it is shown, and mumbles for 'mumble'."""
    answer = (
        request.messages[-1]["content"].split("[Start of the assistant's answer]\n")[1].split("\n[End")[0]
    )
    return {"good": "Fine work.\nRating: [[9]]", "bad": "Wrong.\nRating: [[2]]"}.get(
        answer, "Hmm, I like it."
    )


def _run(work, rows, out: Path, client: LLMClient):
    async def go():
        try:
            return await run_rows(rows, work, out, step="judge", client=client, progress=False)
        finally:
            await client.aclose()

    return asyncio.run(go())


def test_single_judging_keeps_unparsable_rows_and_sends_nothing_twice(tmp_path):
    rows = [_row(1, "good"), _row(2, "bad"), _row(3, "mumble", lang="fa", category="coding")]
    out, cache = tmp_path / "judged.jsonl", tmp_path / "cache.sqlite"
    backend = FunctionBackend(_grader, id="grader")
    client = LLMClient(backend, cache=cache)
    report = _run(make_judge(client), rows, out, client)
    assert (report.written, sum(report.rejected.values()), sum(report.failed.values())) == (3, 0, 0)
    judged = {r["id"]: r for r in _lines(out)}
    assert [judged[k]["rating"] for k in ("ne-1", "ne-2", "fa-3")] == [9.0, 2.0, None]
    assert [judged[k]["parsed"] for k in ("ne-1", "ne-2", "fa-3")] == [True, True, False]
    assert judged["fa-3"]["judge_text"] == "Hmm, I like it."
    assert judged["ne-1"].pop("source_sha")  # the runner's digest of the answer row it judged
    assert judged["ne-1"] == {
        **{"id": "ne-1", "question_id": 1, "lang": "ne", "category": "generic", "model": "m"},
        **{"mode": "single", "judge": "grader", "turn": 0, "reference_used": False},
        **{"rating": 9.0, "verdict": None, "judge_text": "Fine work.\nRating: [[9]]", "parsed": True},
    }
    assert unparsed_counts(judged.values()) == {("fa", "coding"): 1}
    assert backend.calls == 3

    client = LLMClient(backend, cache=cache)
    _run(make_judge(client), rows, out, client)
    assert backend.calls == 3 and len(_lines(out)) == 3  # resumed from the output: nothing sent
    out.unlink()
    client = LLMClient(backend, cache=cache)
    _run(make_judge(client), rows, out, client)
    assert backend.calls == 3 and client.usage.cache_hits == 3  # output lost: the cache answers
    assert len(_lines(out)) == 3


def test_references_reach_the_judge_for_math_rows(tmp_path):
    seen = []

    def judge(request):
        seen.append(request.messages[-1]["content"])
        return "Rating: [[5]]"

    refs = _write_jsonl(
        tmp_path / "refs.jsonl",
        [{"question_id": 7, "reference": "x = 3"}, {"question_id": 8, "lang": "fa", "reference": ["y = 1"]}],
    )
    references = load_references(refs)
    assert references == {"7": "x = 3", "fa-8": ["y = 1"]}
    rows = [_row(7, "x = 4", category="math"), _row(8, "y = 2", lang="fa", category="math")]
    rows.append(_row(9, "ok", category="writing"))
    client = LLMClient(FunctionBackend(judge))
    references = {**references, 9: "unused"}  # an int key works too
    _run(make_judge(client, references=references), rows, tmp_path / "o.jsonl", client)
    judged = {r["id"]: r for r in _lines(tmp_path / "o.jsonl")}
    assert [judged[k]["reference_used"] for k in ("ne-7", "fa-8", "ne-9")] == [True, True, False]
    assert any("\nok\n" in s and "reference" not in s.lower() for s in seen)  # writing: no reference
    assert sum("reference answer]\nx = 3\n" in s for s in seen) == 1
    assert sum("reference answer]\ny = 1\n" in s for s in seen) == 1
    assert not any("unused" in s for s in seen)

    (tmp_path / "bad.jsonl").write_text('{"question_id": 1, "reference": 5}\n')
    with pytest.raises(DataError, match=r"bad\.jsonl, row 1: 'reference' must be a text"):
        load_references(tmp_path / "bad.jsonl")


def _pair_judge(prefers: str):
    """Judges that prefer the answer saying 'strong', the first shown (position bias), or mumble."""

    def judge(request) -> str:
        content = request.messages[-1]["content"]
        first = content.split("[Start of assistant A's answer]\n")[1].split("\n[End")[0]
        if prefers == "first":
            return "The first one.\n[[A]]"
        if prefers == "mumble" and first == "weak":
            return "Both have merits."
        return "[[A]]" if first == "strong" else "[[B]]" if "\nstrong\n" in content else "[[C]]"

    return judge


@pytest.mark.parametrize(
    ("prefers", "answer", "verdict", "orders"),
    [
        ("strong", "strong", "win", ["win", "win"]),
        ("strong", "weak", "loss", ["loss", "loss"]),
        ("first", "strong", "tie", ["win", "loss"]),  # position bias cancels out
        ("mumble", "strong", None, ["win", None]),  # one order unparsable: counted, not guessed
    ],
)
def test_pairwise_asks_both_orders(tmp_path, prefers, answer, verdict, orders):
    other = "weak" if answer == "strong" else "strong"
    baseline = {"ne-1": _row(1, other, model="base")}
    backend = FunctionBackend(_pair_judge(prefers))
    client = LLMClient(backend)
    report = _run(
        make_judge(client, mode="pairwise", baseline=baseline),
        [_row(1, answer)],
        tmp_path / "p.jsonl",
        client,
    )
    [row] = _lines(tmp_path / "p.jsonl")
    assert report.written == 1 and backend.calls == 2
    assert (row["verdict"], row["order_verdicts"], row["parsed"]) == (verdict, orders, verdict is not None)
    assert (row["mode"], row["model"], row["baseline"], row["rating"]) == ("pairwise", "m", "base", None)
    assert len(row["judge_text"]) == 2


def test_pairwise_needs_a_baseline():
    with pytest.raises(ConfigError, match="baseline"):
        make_judge(LLMClient(FunctionBackend(lambda r: "")), mode="pairwise")
    with pytest.raises(ConfigError, match="judge mode 'triple' unknown"):
        make_judge(LLMClient(FunctionBackend(lambda r: "")), mode="triple")


# -- files in, files out ------------------------------------------------------------------------------------


def test_judge_answers_over_http_resumes_and_counts_what_it_could_not_read(tmp_path):
    answers = _write_jsonl(
        tmp_path / "answers.jsonl",
        [_row(1, "good"), _row(2, "mumble"), _row(3, "bad", lang="fa", category="math")],
    )
    out = tmp_path / "judged" / "single.jsonl"

    def reply(messages):
        text = messages[-1]["content"]
        return "Rating: [[9]]" if "\ngood\n" in text else "Rating: 2/10" if "\nbad\n" in text else "Nice."

    with FakeLLMServer(reply) as server:
        spec = f"openai:judge@{server.url}"
        report = judge_answers(answers, out, spec, progress=False, concurrency=2, max_tokens=64)
        assert server.count == 3 and all(body["max_tokens"] == 64 for body in server.requests)
        assert all(body["temperature"] == 0.0 for body in server.requests)
        assert (out.parent / ".okapi_llm_cache.sqlite").is_file()  # the cache sits beside the output
        assert report.written == 3 and "1 of 3 judgement(s) without a readable rating" in report.summary()
        assert "ne/generic 1" in report.summary() and "requests" in report.usage
        assert {r["id"]: r["rating"] for r in _lines(out)} == {"ne-1": 9.0, "ne-2": None, "fa-3": 2.0}
        assert {r["judge"] for r in _lines(out)} == {"judge"}

        again = judge_answers(answers, out, spec, progress=False)
        assert server.count == 3 and again.resumed == 3 and again.written == 0

        baseline = _write_jsonl(tmp_path / "base.jsonl", [_row(1, "x"), _row(2, "y")])
        with pytest.raises(DataError, match=r"base\.jsonl: no baseline answer for 1 question.*fa-3"):
            judge_answers(answers, tmp_path / "p.jsonl", spec, mode="pairwise", baseline_path=baseline)
        assert server.count == 3  # refused before any request


def test_bad_answers_rows_are_named_before_anything_is_sent(tmp_path):
    bad = _write_jsonl(tmp_path / "answers.jsonl", [_row(1, "good"), {**_row(2, "x"), "answers": []}])
    with FakeLLMServer() as server:
        with pytest.raises(
            DataError, match=r"answers\.jsonl, answers row 2 \(id 'ne-2'\): 'answers' must hold"
        ):
            judge_answers(bad, tmp_path / "o.jsonl", f"openai:j@{server.url}", progress=False)
        assert server.count == 0


def test_judge_spec_from_the_command_line_flags():
    assert judge_spec("http://127.0.0.1:8000", "gpt-4") == "openai:gpt-4@http://127.0.0.1:8000/v1"
    assert judge_spec("http://127.0.0.1:8000/v1/", "m") == "openai:m@http://127.0.0.1:8000/v1/"
    assert judge_spec(None, "gpt-4o") == "openai:gpt-4o"
    with pytest.raises(ConfigError, match="expected an http"):
        judge_spec("127.0.0.1:8000", "m")


# -- a real OpenAI-compatible server ------------------------------------------------------------------------


@pytest.mark.slow
def test_the_judge_runs_against_transformers_serve(greedy_server, tmp_path):
    """A tiny random model writes no rating: every row is kept, parsed or counted, never guessed."""
    rows = [
        _row(1, "यो राम्रो उत्तर हो।"),
        _row(2, "پاسخ خوب است.", lang="fa", category="math"),
        _row(3, "An answer in English.", lang="fa", category="writing"),
    ]
    answers = _write_jsonl(tmp_path / "answers.jsonl", rows)
    out = tmp_path / "judged.jsonl"
    report = judge_answers(answers, out, greedy_server, progress=False, concurrency=2, max_tokens=12)
    assert (report.written, sum(report.failed.values()), sum(report.rejected.values())) == (3, 0, 0)
    judged = _lines(out)
    assert sorted(r["id"] for r in judged) == ["fa-2", "fa-3", "ne-1"]
    for row in judged:
        assert isinstance(row["judge_text"], str)
        assert row["rating"] == parse_rating(row["judge_text"]) and row["parsed"] == (
            row["rating"] is not None
        )
    unparsed = sum(not r["parsed"] for r in judged)
    assert f"{unparsed} of 3 judgement(s) without a readable rating" in report.summary()
    assert "3 requests" in report.usage

    baseline = _write_jsonl(
        tmp_path / "base.jsonl", [{**r, "answers": ["..."], "model": "base"} for r in rows[:2]]
    )
    answers2 = _write_jsonl(tmp_path / "answers2.jsonl", rows[:2])
    options = {"mode": "pairwise", "baseline_path": baseline, "progress": False, "max_tokens": 8}
    pair = judge_answers(answers2, tmp_path / "pair.jsonl", greedy_server, **options)
    assert pair.written == 2 and "4 requests" in pair.usage
    for row in _lines(tmp_path / "pair.jsonl"):
        first, second = (parse_verdict(text) for text in row["judge_text"])
        assert row["verdict"] == combine_verdicts(first, second) and row["parsed"] == (
            row["verdict"] is not None
        )
