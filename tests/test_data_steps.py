"""The four data-creation steps with deterministic replies: what is sent, what is kept, what is rejected."""

from __future__ import annotations

import asyncio
import random
import re

import pytest

from okapi_hf.create.backends import FunctionBackend
from okapi_hf.create.generate import Pool, generate_tasks, parse_tasks, rouge_l, why_unsuitable
from okapi_hf.create.llm import LLMClient
from okapi_hf.create.llm_types import Sampling
from okapi_hf.create.rank import make_rank, parse_ranking
from okapi_hf.create.respond import make_respond
from okapi_hf.create.runner import RowRejected
from okapi_hf.create.translate import make_translate, protect, restore
from okapi_hf.langid import language_score

VI = "Đây là một câu tiếng Việt được dịch cẩn thận, giữ nguyên mọi phần đặc biệt"


def _client(reply, **kw) -> LLMClient:
    """A client whose backend answers with ``reply(request)``; requests are recorded on ``.sent``."""
    sent = []

    def fn(request):
        sent.append(request)
        return reply(request)

    client = LLMClient(FunctionBackend(fn), **kw)
    client.sent = sent
    return client


def _run(coro):
    return asyncio.run(coro)


# -- translate ---------------------------------------------------------------------------------------------


def test_code_urls_numbers_and_fields_are_protected_and_restored():
    text = (
        "Run `pip install x` then open https://example.org/a_b?q=1. Mail me@test.org at 14:20, "
        "price 3.14 for {name} or %s <noinput>\n```python\nprint(1)\n```"
    )
    protected, spans = protect(text)
    assert spans == [
        "`pip install x`",
        "https://example.org/a_b?q=1",
        "me@test.org",
        "14:20",
        "3.14",
        "{name}",
        "%s",
        "<noinput>",
        "```python\nprint(1)\n```",
    ]
    assert "example.org" not in protected and "print" not in protected and protected.count("⟦") == 9
    assert restore(protected, spans) == text
    assert protect("H2O and mp3 files")[1] == []  # digits inside words stay
    shuffled = "⟦2⟧ ⟦1⟧ " + " ".join(f"⟦{i}⟧" for i in range(3, 10))
    assert restore(shuffled, spans).startswith("https://example.org/a_b?q=1 `pip install x`")
    with pytest.raises(ValueError, match="do not match"):
        restore(protected.replace("⟦3⟧", ""), spans)
    with pytest.raises(ValueError, match="do not match"):
        restore(protected + " ⟦1⟧", spans)


def _markers(request) -> str:
    return " ".join(re.findall(r"⟦\d+⟧", request.messages[-1]["content"]))


def test_translate_sends_each_field_and_keeps_protected_spans():
    client = _client(lambda r: f"{VI} {_markers(r)}")
    work = make_translate("vi", client)
    row = {
        "id": "a",
        "instruction": "Add 2 and 3.",
        "input": "",
        "output": "The answer is 5, see https://x.org/y",
    }
    out = _run(work(row))
    assert out["lang"] == "vi" and out["input"] == ""
    assert out["instruction"] == f"{VI} 2 3" and out["output"] == f"{VI} 5 https://x.org/y"
    assert len(client.sent) == 2  # the empty input is not sent
    request = client.sent[0]
    assert request.messages[0]["role"] == "system" and "into Vietnamese" in request.messages[0]["content"]
    assert request.messages[1]["content"] == "Add ⟦1⟧ and ⟦2⟧."
    assert dict(request.meta) == {"text": "Add ⟦1⟧ and ⟦2⟧.", "src_lang": "en", "tgt_lang": "vi"}


def test_a_translation_that_loses_placeholders_is_retried_then_rejected():
    client = _client(lambda r: VI if r.sample == 0 else f"{VI} {_markers(r)}")
    assert _run(make_translate("vi", client)({"id": "a", "instruction": "Add 2 and 3."}))[
        "instruction"
    ].endswith("2 3")
    assert [r.sample for r in client.sent] == [0, 1]
    client = _client(lambda r: VI)
    with pytest.raises(RowRejected, match="instruction: placeholders lost or repeated"):
        _run(make_translate("vi", client)({"id": "a", "instruction": "Add 2 and 3."}))


def test_a_translation_in_the_wrong_language_is_rejected():
    english = "This sentence was not translated at all and it is still written in English."
    assert language_score(english, "vi") < 0.5
    client = _client(lambda r: english)
    with pytest.raises(RowRejected, match="instruction: translation not in Vietnamese"):
        _run(make_translate("vi", client)({"id": "a", "instruction": "Say something nice."}))
    with pytest.raises(RowRejected, match="empty instruction"):
        _run(make_translate("vi", client)({"id": "b", "instruction": "  "}))


# -- respond -----------------------------------------------------------------------------------------------


def test_respond_collects_distinct_responses_from_every_model_and_sample():
    a = _client(lambda r: f"Trả lời A{r.seed}")
    b = _client(lambda r: "Trả lời B")  # the same text for every sample: kept once
    out = _run(make_respond([a, b], samples=2)({"id": "x", "lang": "vi", "instruction": "Chào", "input": ""}))
    assert out["responses"] == ["Trả lời A0", "Trả lời A1", "Trả lời B"]
    assert [s.rsplit("#", 1)[1] for s in out["sources"]] == ["0", "1", "0"]
    assert [r.sample for r in a.sent] == [0, 1] and a.sent[0].messages == (
        {"role": "user", "content": "Chào"},
    )
    assert a.sent[0].temperature > 0
    one = _client(lambda r: "Luôn giống nhau")
    work = make_respond([one], samples=3)
    with pytest.raises(RowRejected, match="fewer than 2 usable responses"):
        _run(work({"id": "x", "instruction": "Chào"}))
    assert work.dropped == {"repeats another response": 2}


def test_respond_leaves_out_responses_in_another_language():
    english = "This answer drifted into English, which is what multilingual models often do."
    client = _client(lambda r: english if r.seed == 1 else f"{VI} số {r.seed}")
    work = make_respond([client], samples=4)
    out = _run(work({"id": "x", "lang": "vi", "instruction": "Chào", "input": ""}))
    assert out["responses"] == [f"{VI} số 0", f"{VI} số 2", f"{VI} số 3"]
    assert work.dropped == {"response not in Vietnamese": 1}


# -- rank --------------------------------------------------------------------------------------------------

ROW = {"id": "q", "lang": "vi", "instruction": "Kể chuyện", "input": "", "responses": ["r1", "r2", "r3"]}


def _ranking_by_content(request, best_first: list[str]) -> str:
    """A judge that ranks by the responses' texts, whatever order the prompt shows them in."""
    shown = dict(re.findall(r"Response (\d+):\n(\S+)", request.messages[0]["content"]))
    number = {text: n for n, text in shown.items()}
    return "Ranking: [[" + ", ".join(number[text] for text in best_first) + "]]"


def test_rank_is_two_turns_and_orders_the_responses_best_first():
    def judge(request):
        if len(request.messages) == 1:
            return "Instruction: Tell a story. Response 1: ..."
        return "Reasons...\n" + _ranking_by_content(request, ["r2", "r3", "r1"])

    client = _client(judge)
    out = _run(make_rank(client)({**ROW, "sources": ["a#0", "b#0", "c#0"]}))
    assert out["responses"] == ["r2", "r3", "r1"] and out["sources"] == ["b#0", "c#0", "a#0"]
    first, second = client.sent
    prompt = first.messages[0]["content"]
    assert "Vietnamese" in prompt and all(f"\nr{i}\n" in prompt + "\n" for i in (1, 2, 3))
    assert [m["role"] for m in second.messages] == ["user", "assistant", "user"]
    assert second.messages[1]["content"].startswith("Instruction: Tell a story")
    assert second.messages[2]["content"].endswith("Ranking: [[1, 2, 3]]")


def test_the_judge_sees_the_responses_in_a_shuffled_order_fixed_per_row():
    """An echoing or position-biased judge must not make the first model's response the best."""
    orders = []
    for i in range(12):
        client = _client(lambda r: "t" if len(r.messages) == 1 else "Ranking: [[1, 2, 3]]")
        orders.append(tuple(_run(make_rank(client)({**ROW, "id": f"q{i}"}))["responses"]))
    assert len(set(orders)) > 1 and {o[0] for o in orders} != {"r1"}
    again = _client(lambda r: "t" if len(r.messages) == 1 else "Ranking: [[1, 2, 3]]")
    assert (
        tuple(_run(make_rank(again)({**ROW, "id": "q0"}))["responses"]) == orders[0]
    )  # same row, same order


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("I like the second one.", "no 'Ranking"),
        ("Ranking: [[1, 2]]", "does not list each of 1..3 once"),
        ("Ranking: [[1, 1, 2]]", "does not list each"),
        ("Ranking: [[1, 2, 4]]", "does not list each"),
        ("Ranking: [[a, b, c]]", "not a list of response numbers"),
        ("Ranking: [[1, 2, 3]] ... no wait, Ranking: [[3, 2, 1]]", "2 different ranking lines"),
    ],
)
def test_the_ranking_parser_is_strict(text, problem):
    with pytest.raises(ValueError, match=re.escape(problem)):
        parse_ranking(text, 3)


def test_the_parser_accepts_case_and_spacing_variants():
    assert parse_ranking("ranking:[[3,1,2]]", 3) == [3, 1, 2]
    assert parse_ranking("**Ranking: [[ 2 , 1 ]]** (repeated) Ranking: [[ 2 , 1 ]]", 2) == [2, 1]


def test_an_unparsable_judgement_is_retried_once_then_rejected():
    replies = iter(["translation", "no ranking here"])
    client = _client(lambda r: next(replies, None) or _ranking_by_content(r, ["r3", "r2", "r1"]))
    assert _run(make_rank(client)(ROW))["responses"] == ["r3", "r2", "r1"]
    assert "no 'Ranking: [[...]]' line" in client.sent[2].messages[-1]["content"]

    client = _client(lambda r: "translation" if len(r.messages) == 1 else "still nothing")
    with pytest.raises(RowRejected, match=r"unparsable ranking after a retry \(no ranking line\)"):
        _run(make_rank(client)(ROW))
    assert len(client.sent) == 3


# -- generate ----------------------------------------------------------------------------------------------

SEEDS = [
    {"instruction": "Name three primary colours.", "input": "", "output": "Red, blue and yellow."},
    {"instruction": "Translate the word into French.", "input": "house", "output": "maison"},
    {"instruction": "Give the square of the number.", "input": "7", "output": "49"},
]


def _tasks(*items) -> str:
    return "\n\n".join(
        f"### Task {i}\nInstruction: {ins}\nInput: {inp or '<noinput>'}\nOutput: {out}"
        for i, (ins, inp, out) in enumerate(items, start=4)
    )


def test_parse_tasks_reads_the_numbered_format():
    text = _tasks(
        ("Write a haiku about rain.", "", "Soft rain on the roof"), ("Sort the list.", "3, 1, 2", "1, 2, 3")
    )
    text += "\n### Task 6\nInstruction: broken, no output"
    assert parse_tasks(text) == [
        {"instruction": "Write a haiku about rain.", "input": "", "output": "Soft rain on the roof"},
        {"instruction": "Sort the list.", "input": "3, 1, 2", "output": "1, 2, 3"},
    ]


def test_rouge_l_and_the_pool_find_near_duplicates():
    assert rouge_l(["a", "b", "c", "d"], ["a", "c", "d"]) == pytest.approx(2 * 3 / 7)
    assert rouge_l([], ["a"]) == 0.0
    pool = Pool(["Name three primary colours."])
    assert pool.too_close("Name the three primary colours.")
    assert not pool.too_close("Explain how a rainbow forms after a storm.")


@pytest.mark.parametrize(
    ("instruction", "reason"),
    [
        ("Hi there", "shorter than 3 words"),
        ("Describe the image below in detail.", "text model lacks"),
        ("- list three fruits please", "starts with punctuation"),
    ],
)
def test_unsuitable_tasks_are_named(instruction, reason):
    assert reason in why_unsuitable({"instruction": instruction, "input": "", "output": "x"})


VOCAB = [f"w{n}" for n in range(300)]


def _fresh(i: int, k: int) -> str:
    """An instruction unlike any other (random words), for request ``i``'s ``k``-th task."""
    return "Explain " + " ".join(random.Random(1000 * i + k).sample(VOCAB, 8))


def test_generate_keeps_new_tasks_in_request_order_whatever_finishes_first():
    def reply(request):
        i = request.seed
        return _tasks(
            (_fresh(i, 0), "", f"A{i}"),
            ("Name three primary colours.", "", "dup of a seed"),
            ("Describe the image below.", "", "needs an image"),
            (_fresh(i, 1), "", f"B{i}"),
        )

    async def slow(request):
        await asyncio.sleep(random.random() / 50)
        return reply(request)

    kept, report = _run(generate_tasks(SEEDS, LLMClient(FunctionBackend(slow)), 5, progress=False, batch=4))
    assert [t["output"] for t in kept] == ["A0", "B0", "A1", "B1", "A2"]
    assert report.kept == 5 and report.requests == 4 and report.parsed == 16
    assert report.dropped["ROUGE-L >= 0.7 with an instruction in the pool"] == 4
    assert report.dropped["needs something a text model lacks (image, file, audio...)"] == 4
    assert report.dropped["beyond the number asked for"] == 3
    # each request shows seed tasks drawn with its own seed, and samples with it
    client = _client(reply)
    _run(generate_tasks(SEEDS, client, 1, progress=False, batch=1))
    prompt = client.sent[0].messages[0]["content"]
    assert client.sent[0].seed == 0 and client.sent[0].temperature == 1.0
    assert "### Task 3" in prompt and "tasks 4 to 11" in prompt


def test_text_with_nothing_to_translate_is_kept_and_a_retry_samples():
    client = _client(lambda r: f"{VI} {_markers(r)}" if r.sample else "lost")
    out = _run(
        make_translate("vi", client)({"id": "a", "instruction": "Add 2 and 3.", "input": "42, https://x.org"})
    )
    assert out["input"] == "42, https://x.org"  # only a number and a link: not sent
    assert [(r.sample, r.temperature) for r in client.sent] == [(0, 0.0), (1, 0.7)]


# -- --max-tokens, --temperature, --top-p ---------------------------------------------------------------


def _sampled(requests) -> set[tuple]:
    return {(r.temperature, r.top_p, r.max_tokens) for r in requests}


def test_a_translate_retry_samples_unless_a_temperature_above_zero_is_given():
    def lost_then_kept(r):
        return f"{VI} {_markers(r)}" if r.sample else "lost"

    row = {"id": "a", "instruction": "Add 2 and 3."}
    cases = {
        None: [(0.0, None, 1024), (0.7, None, 1024)],  # the step's own: greedy, then a sampled retry
        Sampling(temperature=0.0, max_tokens=99): [(0.0, None, 99), (0.7, None, 99)],  # 0 would repeat
        Sampling(temperature=0.4, top_p=0.5, max_tokens=99): [(0.4, 0.5, 99), (0.4, 0.5, 99)],
    }
    for sampling, expected in cases.items():
        client = _client(lost_then_kept)
        kw = {} if sampling is None else {"sampling": sampling}
        _run(make_translate("vi", client, **kw)(row))
        assert [(r.temperature, r.top_p, r.max_tokens) for r in client.sent] == expected


def test_a_rank_retry_gets_64_tokens_unless_max_tokens_is_given():
    def judge(request):
        return "translation" if len(request.messages) == 1 else "no ranking here"

    client = _client(judge)
    with pytest.raises(RowRejected):
        _run(make_rank(client)(ROW))
    assert [(r.temperature, r.top_p, r.max_tokens) for r in client.sent] == [
        (0.0, None, 2048),
        (0.0, None, 2048),
        (0.0, None, 64),
    ]
    client = _client(judge)
    with pytest.raises(RowRejected):
        _run(make_rank(client, sampling=Sampling(temperature=0.2, top_p=0.9, max_tokens=300))(ROW))
    assert _sampled(client.sent) == {(0.2, 0.9, 300)} and len(client.sent) == 3


def test_respond_generate_and_taco_requests_carry_the_given_sampling():
    from okapi_hf.create.generate import generate_request
    from okapi_hf.create.taco import taco_record

    given = Sampling(temperature=0.25, top_p=0.8, max_tokens=40)
    client = _client(lambda r: f"{VI} {r.sample}")
    _run(make_respond([client], samples=2)({"id": "x", "lang": "vi", "instruction": "Chào"}))
    _run(make_respond([client], samples=2, sampling=given)({"id": "x", "lang": "vi", "instruction": "Chào"}))
    assert [(r.temperature, r.top_p, r.max_tokens) for r in client.sent] == [(0.7, None, 512)] * 2 + [
        (0.25, 0.8, 40)
    ] * 2

    assert _sampled([generate_request(SEEDS, 0)]) == {(1.0, None, 2048)}
    assert _sampled([generate_request(SEEDS, 0, sampling=given)]) == {(0.25, 0.8, 40)}

    client = _client(lambda r: "Please add two and three." if r.meta_dict["tgt_lang"] == "en" else "?")
    row = {"id": "vi-1", "lang": "vi", "instruction": "Hãy cộng hai với ba.", "input": "", "output": VI}
    _run(taco_record(row, client, lang="vi"))
    assert _sampled(client.sent) == {(0.0, None, 1024)}
    client.sent.clear()
    _run(taco_record(row, client, lang="vi", sampling=given))
    assert _sampled(client.sent) == {(0.25, 0.8, 40)} and len(client.sent) == 2
