"""An LLM judge for generated answers: single-answer grading (1-10) and pairwise comparison.

Okapi's generative evaluation (the multilingual Vicuna benchmark) asks a strong model to grade each
answer, the way MT-bench does. Two things make that trustworthy rather than merely plausible:

- the judge's verdict is *read*, never guessed. :func:`parse_rating` accepts the variants real judges
  write (``Rating: [[7]]``, ``"[[9.5]]".``, ``Rating: 8/10``, ``a score of "8"``...) and returns None
  when the text holds no rating, holds several different ones, or one outside 1-10; such rows are
  kept with ``parsed: false`` and counted, so a report can say how many judgements it could not use;
- pairwise comparison asks twice with the answers swapped, and a model wins only when it wins both
  ways: position bias (judges favour the first answer) then cancels out instead of deciding results.

Judge prompts are Jinja files in :mod:`okapi_hf.eval.prompts` (``judge_system``, ``judge_single``,
``judge_single_reference``, ``judge_pairwise``, ``judge_pairwise_reference``); a folder passed as
``prompts_dir`` overrides any of them. Math and coding questions are checked against a reference
answer when one is given. Judging runs through :func:`okapi_hf.create.runner.run_rows`, so it is
resumable, and through the LLM client's cache, so no judgement is paid for twice.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypedDict
from urllib.parse import urlsplit, urlunsplit

from okapi_hf.create.llm import ChatRequest
from okapi_hf.create.prompts import render
from okapi_hf.errors import ConfigError, DataError, UnknownLanguageError
from okapi_hf.languages import get_language

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing.Unpack from Python 3.11

PROMPTS_PACKAGE = "okapi_hf.eval.prompts"
MODES: tuple[str, ...] = ("single", "pairwise")
# Categories whose answers are right or wrong: the judge compares them with a reference answer.
REFERENCE_CATEGORIES: frozenset[str] = frozenset({"math", "coding"})
DEFAULT_MAX_TOKENS = 1024
RATING_RANGE: tuple[float, float] = (1.0, 10.0)

Verdict = Literal["A", "B", "tie"]
Outcome = Literal["win", "loss", "tie"]


# --------------------------------------------------------------------------------------------------
# Reading the judge's text
# --------------------------------------------------------------------------------------------------

# ``\d`` matches any script's decimal digits and float() reads them, so Persian (۸), Devanagari (८)
# and full-width (８) digits work as well as ASCII ones.
_NUM = r"(\d+(?:\.\d+)?)"
_OPEN2 = r"[\[［【]\s*[\[［【]"
_CLOSE2 = r"[\]］】]\s*[\]］】]"
_DECOR = r"[\s*_\"'“”«»`]*"  # markdown emphasis and quotes judges wrap around a number
# ``[[7]]``, ``[[ 7.5 ]]``, ``[[**8**]]``, ``[[8/10]]``; a bracketed list in quoted code (``[[0] * n]``,
# ``[[1, 2]]``) does not match because only a lone number may stand inside.
_DOUBLE = rf"{_OPEN2}{_DECOR}{_NUM}{_DECOR}(?:/\s*10\s*)?{_CLOSE2}"
_LABEL = r"\b(?:ratings?|score|grade)\b"
# The requested form: a label, at most a few words ("rating is as follows:") and the brackets.
_LABELLED_DOUBLE = re.compile(rf"{_LABEL}[^\d\n\[\]［【]{{0,30}}?{_DOUBLE}", re.IGNORECASE)
_ANY_DOUBLE = re.compile(_DOUBLE)
# Weaker forms, read only when no double brackets are there. Each captures the number and what
# follows it, so a scale other than 10 ("4/5", "7 out of 100") is recognised and refused.
_SCALE = r"(?P<scale>\s*(?:/|out\s+of)\s*(?:\d+|ten)\b)?"
_WHOLE = r"(?![\d.]*\d|\s*[-–]\s*\d)"  # the whole number ("8.5" is not "8"), and not a range ("1-10")
_OBJECT = r"(?:it|this(?:\s+\w+)?|the\s+[\w']+(?:\s+\w+)?)"  # "it", "this response", "the assistant's answer"
_WEAK: tuple[re.Pattern[str], ...] = tuple(
    re.compile(pattern + _SCALE, re.IGNORECASE)
    for pattern in (
        # "Rating: 8", "**Rating:** 8/10", "Score = 7", "Rating: [7]", "rating is as follows: 8"
        rf"{_LABEL}[^\d\n.!?]{{0,30}}?[:=]{_DECOR}[\[［(]?{_DECOR}{_NUM}{_WHOLE}[\]］)]?",
        # "a rating of 6", "score of \"8\"", "my rating is 7", "the grade would be 9"
        rf"{_LABEL}\s+(?:is|of|would\s+be|will\s+be){_DECOR}{_NUM}{_WHOLE}",
        # "I would rate it a 9", "I rate this response an 8", "rated the answer as 7"
        rf"\brat(?:e|ed|es)\s+{_OBJECT}\s+(?:as\s+)?(?:an?\s+)?{_DECOR}{_NUM}{_WHOLE}",
        # "I give it 7/10", "gave the answer a 9."
        rf"\b(?:give|gave|award(?:ed)?)\s+{_OBJECT}\s+(?:an?\s+)?{_DECOR}{_NUM}(?=\s*(?:/|out\s+of|\.|$))",
        # a line holding only "8/10" or "8 out of 10"
        rf"(?m)^{_DECOR}{_NUM}(?=\s*(?:/|out\s+of)\s*(?:10|ten)\b{_DECOR}\.?\s*$)",
    )
)


def _in_range(value: float) -> bool:
    return RATING_RANGE[0] <= value <= RATING_RANGE[1]


def _one_value(values: Iterable[float]) -> float | None:
    """The value when every candidate agrees and lies in 1-10; None when they differ (ambiguous)."""
    distinct = set(values)
    if len(distinct) != 1:
        return None
    value = distinct.pop()
    return value if _in_range(value) else None


def parse_rating(text: str) -> float | None:
    """The 1-10 rating in a judge's text, or None when there is none to read.

    Tried in order, the first form found deciding: ``Rating: [[x]]`` (a label before double
    brackets, so code quoted earlier with ``[[1]]`` in it is not mistaken for a rating), then any
    ``[[x]]``, then the weaker forms judges fall back on (``Rating: 8/10``, ``a rating of 6 out of
    10``, ``I would rate it a 9``, ``score of "8"``). The same rating repeated is fine; different
    ratings of one form are ambiguous and give None, as does a number outside 1-10 or a scale other
    than 10: a rating is never guessed.
    """
    if not isinstance(text, str):
        return None
    for pattern in (_LABELLED_DOUBLE, _ANY_DOUBLE):
        found = [float(m) for m in pattern.findall(text)]
        if found:
            return _one_value(found)
    values = []
    for pattern in _WEAK:
        for match in pattern.finditer(text):
            scale = match.group("scale")
            if scale and not re.search(r"(?:\b10|ten)\s*$", scale, re.IGNORECASE):
                return None  # "4/5": a rating on another scale, which is not ours to convert
            values.append(float(match.group(1)))
    return _one_value(values) if values else None


_VERDICT_DOUBLE = re.compile(rf"{_OPEN2}{_DECOR}(A|B|C|tie){_DECOR}{_CLOSE2}", re.IGNORECASE)
# "Verdict: A", "final verdict: Assistant B", "verdict: tie"; letters must be capitals here, since a
# lowercase "a" is an article ("verdict: a tie").
_VERDICT_WEAK = re.compile(
    r"\bverdict\b[^\n\w]{0,5}(?:is\s*)?[^\n\w]{0,3}"
    r"(?:(?:a\s+)?(tie)\b|(?:assistant\s+)?(?-i:(A|B|C))\b)",  # "A tie" is a tie, not assistant A
    re.IGNORECASE,
)
_VERDICTS: dict[str, Verdict] = {"a": "A", "b": "B", "c": "tie", "tie": "tie"}


def parse_verdict(text: str) -> Verdict | None:
    """``"A"``, ``"B"`` or ``"tie"`` from a pairwise judgement (``[[A]]``, ``[[B]]``, ``[[C]]`` = tie).

    ``Verdict: A`` is read when no double brackets are there. None when there is no verdict or the
    text names different ones (ambiguous): a verdict is never guessed.
    """
    if not isinstance(text, str):
        return None
    found = {_VERDICTS[v.lower()] for v in _VERDICT_DOUBLE.findall(text)}
    if not found:
        found = {_VERDICTS[(tie or letter).lower()] for tie, letter in _VERDICT_WEAK.findall(text)}
    return found.pop() if len(found) == 1 else None


def stored_rating(value: Any) -> float | None:
    """A rating stored by another tool as a number or a string (``9.0``, ``"8"``, ``"8.5"``, ``""``).

    None for an empty or missing value, a boolean, NaN or text that is not a number: normalising
    never invents a rating either.
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return None if math.isnan(number) else number


def combine_verdicts(model_first: Verdict | None, model_second: Verdict | None) -> Outcome | None:
    """The model's result over both orders: ``win``/``loss`` only when both orders agree, else ``tie``.

    ``model_first`` is the verdict with the model's answer shown as A, ``model_second`` with it
    shown as B. An unparsable verdict in either order gives None (counted, not guessed).
    """
    if model_first is None or model_second is None:
        return None
    as_a = {"A": "win", "B": "loss", "tie": "tie"}[model_first]
    as_b = {"B": "win", "A": "loss", "tie": "tie"}[model_second]
    return as_a if as_a == as_b else "tie"  # type: ignore[return-value]


# --------------------------------------------------------------------------------------------------
# Building the judge's requests
# --------------------------------------------------------------------------------------------------


def language_name(code: str) -> str:
    """The registry's name for ``code`` (``fa`` -> ``Persian``); the code itself when it is not there."""
    try:
        return get_language(code).name
    except UnknownLanguageError:
        return code


def _history(turns: Sequence[str], answers: Sequence[str]) -> list[dict[str, str]]:
    return [{"question": q, "answer": a} for q, a in zip(turns[:-1], answers[:-1], strict=True)]


def _use_reference(category: str | None, reference: str | None) -> bool:
    return bool(reference and reference.strip()) and (category or "") in REFERENCE_CATEGORIES


def _check_dialogue(turns: Sequence[str], answers: Sequence[str], what: str) -> None:
    if not turns or not all(isinstance(t, str) for t in turns):
        raise DataError(f"{what}: 'turns' must be a non-empty list of question texts")
    if len(answers) != len(turns) or not all(isinstance(a, str) for a in answers):
        raise DataError(f"{what}: 'answers' must hold one answer text per turn ({len(turns)})")


class _JudgeAskRequired(TypedDict):
    lang: str  # the language the answers should be in (a registry code)
    category: str | None  # the question's category; math and coding use the reference


class JudgeAsk(_JudgeAskRequired, total=False):
    """How the judge is asked, the same for single and pairwise requests (the keywords of both)."""

    reference: str | None  # a reference answer, used for REFERENCE_CATEGORIES only
    prompts_dir: str | Path | None  # a folder whose templates override the packaged ones
    max_tokens: int  # the judge's reply budget (DEFAULT_MAX_TOKENS)


def _request(template: str, ask: JudgeAsk, what: str, **fields: Any) -> ChatRequest:
    """The judge's chat request from ``template``, or from its ``_reference`` variant when the question
    is checked against a reference; every template gets the language and category besides ``fields``."""
    allowed = JudgeAsk.__required_keys__ | JudgeAsk.__optional_keys__
    missing, unknown = JudgeAsk.__required_keys__ - set(ask), set(ask) - allowed
    if missing or unknown:  # what Python says for a wrong keyword of an explicit signature
        problem = f"missing keyword {sorted(missing)}" if missing else f"unexpected keyword {sorted(unknown)}"
        raise TypeError(f"{what}() got a {problem}; expected {', '.join(sorted(allowed))}")
    reference, prompts_dir = ask.get("reference"), ask.get("prompts_dir")
    with_reference = _use_reference(ask["category"], reference)
    name = f"{template}_reference" if with_reference else template
    fields = {"language": language_name(ask["lang"]), "category": ask["category"] or "", **fields}
    if with_reference:
        fields["reference"] = reference
    messages = [
        {"role": "system", "content": render("judge_system", prompts_dir, package=PROMPTS_PACKAGE)},
        {"role": "user", "content": render(name, prompts_dir, package=PROMPTS_PACKAGE, **fields)},
    ]
    return ChatRequest.chat(messages, temperature=0.0, max_tokens=ask.get("max_tokens", DEFAULT_MAX_TOKENS))


def judge_single_request(
    question_turns: Sequence[str], answers: Sequence[str], **ask: Unpack[JudgeAsk]
) -> ChatRequest:
    """The request grading the answer to the last turn (earlier turns shown as context).

    ``ask`` (:class:`JudgeAsk`): ``lang`` and ``category``, optionally ``reference``, ``prompts_dir``
    and ``max_tokens``. The reference answer is used for math and coding questions only
    (``judge_single_reference``); elsewhere there is no single right answer to compare with, so it is
    left out.
    """
    _check_dialogue(question_turns, answers, "judge_single_request")
    return _request(
        "judge_single",
        ask,
        "judge_single_request",
        history=_history(question_turns, answers),
        question=question_turns[-1],
        answer=answers[-1],
    )


def judge_pairwise_request(
    question_turns: Sequence[str],
    answers_a: Sequence[str],
    answers_b: Sequence[str],
    **ask: Unpack[JudgeAsk],
) -> ChatRequest:
    """The request comparing answer A with answer B to the last turn (one order; see :func:`make_judge`).

    ``ask`` as for :func:`judge_single_request`.
    """
    _check_dialogue(question_turns, answers_a, "judge_pairwise_request (A)")
    _check_dialogue(question_turns, answers_b, "judge_pairwise_request (B)")
    return _request(
        "judge_pairwise",
        ask,
        "judge_pairwise_request",
        question=question_turns[-1],
        history_a=_history(question_turns, answers_a),
        history_b=_history(question_turns, answers_b),
        answer_a=answers_a[-1],
        answer_b=answers_b[-1],
    )


# --------------------------------------------------------------------------------------------------
# Judging rows
# --------------------------------------------------------------------------------------------------


def check_answer_row(row: Mapping[str, Any], where: str) -> None:
    """An answers row as ``okapi-hf eval generate`` writes it; DataError names ``where`` and the field."""
    for name in ("id", "lang"):
        if not isinstance(row.get(name), str) or not row[name]:
            raise DataError(f"{where}: field {name!r} must be a non-empty string, got {row.get(name)!r}")
    turns, answers = row.get("turns"), row.get("answers")
    if not isinstance(turns, list) or not isinstance(answers, list):
        raise DataError(f"{where} (id {row['id']!r}): fields 'turns' and 'answers' must be lists of texts")
    _check_dialogue(turns, answers, f"{where} (id {row['id']!r})")


def _reference_for(row: Mapping[str, Any], references: Mapping[str, Any] | None) -> str | None:
    """The reference for the judged turn: by row id (``fa-61``) first, then by question id alone."""
    if not references:
        return None
    found = references.get(row["id"])
    question = row.get("question_id")
    if found is None and question is not None:
        found = references.get(str(question), references.get(question))  # "7" or 7 as the key
    if isinstance(found, list):  # one reference per turn
        index = len(row["turns"]) - 1
        found = found[index] if index < len(found) else None
    return found if isinstance(found, str) else None


def _judge_name(client: Any) -> str:
    backend = client.backend
    return str(getattr(backend, "model", None) or backend.id)


def make_judge(
    client: Any,
    *,
    mode: str = "single",
    references: Mapping[str, Any] | None = None,
    baseline: Mapping[str, Mapping[str, Any]] | None = None,
    prompts_dir: str | Path | None = None,
    max_tokens: int = DEFAULT_MAX_TOKENS,
) -> Any:
    """The runner's per-row work: one answers row in, one judgement row out.

    Output: ``id``, ``question_id``, ``lang``, ``category``, ``model``, ``mode``, ``judge``, ``turn``
    (0-based index of the judged turn), ``reference_used``, ``rating`` (single) or ``verdict``
    (pairwise: ``win``/``loss``/``tie`` for the model against the baseline), ``judge_text`` and
    ``parsed``. Pairwise rows also carry ``baseline``, ``order_verdicts`` (the model's result with
    its answer shown first, then second) and ``judge_text`` as the two texts in that order.

    A judgement the parser cannot read is *not* a :class:`~okapi_hf.create.runner.RowRejected`: the row
    is written with ``rating``/``verdict`` None and ``parsed`` False, so every question stays in the
    output and the report can count parse failures per language and category. ``references`` maps a
    row id or question id to a reference answer (a string, or one per turn); ``baseline`` maps row
    ids to the baseline model's answers rows (pairwise).
    """
    if mode not in MODES:
        raise ConfigError(f"judge mode {mode!r} unknown; expected one of {', '.join(MODES)}")
    if mode == "pairwise" and baseline is None:
        raise ConfigError("pairwise judging needs the baseline model's answers (baseline=...)")
    judge = _judge_name(client)

    async def work(row: dict[str, Any]) -> dict[str, Any]:
        check_answer_row(row, f"answers row {row.get('id')!r}")
        turns, answers = row["turns"], row["answers"]
        reference = _reference_for(row, references)
        common = {
            "id": row["id"],
            "question_id": row.get("question_id"),
            "lang": row["lang"],
            "category": row.get("category"),
            "model": row.get("model"),
            "mode": mode,
            "judge": judge,
            "turn": len(turns) - 1,
            "reference_used": _use_reference(row.get("category"), reference),
        }
        ask: JudgeAsk = {"lang": row["lang"], "category": row.get("category"), "reference": reference}
        ask.update(prompts_dir=prompts_dir, max_tokens=max_tokens)
        if mode == "single":
            result = await client.complete(judge_single_request(turns, answers, **ask))
            rating = parse_rating(result.text)
            parsed = {
                "rating": rating,
                "verdict": None,
                "judge_text": result.text,
                "parsed": rating is not None,
            }
            return {**common, **parsed}

        other = (baseline or {}).get(row["id"])
        if other is None:
            raise DataError(f"answers row {row['id']!r}: the baseline answers have no row with this id")
        check_answer_row(other, f"baseline row {row['id']!r}")
        if other["turns"] != turns:
            raise DataError(f"answers row {row['id']!r}: the baseline row asks different questions")
        first, second = await asyncio.gather(
            client.complete(judge_pairwise_request(turns, answers, other["answers"], **ask)),
            client.complete(judge_pairwise_request(turns, other["answers"], answers, **ask)),
        )
        as_a, as_b = parse_verdict(first.text), parse_verdict(second.text)
        verdict = combine_verdicts(as_a, as_b)
        return {
            **common,
            "baseline": other.get("model"),
            "rating": None,
            "verdict": verdict,
            "order_verdicts": [_outcome(as_a, "A"), _outcome(as_b, "B")],
            "judge_text": [first.text, second.text],
            "parsed": verdict is not None,
        }

    return work


def _outcome(verdict: Verdict | None, model_is: str) -> Outcome | None:
    """One order's verdict from the model's side (None when unparsable)."""
    if verdict is None:
        return None
    if verdict == "tie":
        return "tie"
    return "win" if verdict == model_is else "loss"


def unparsed_counts(rows: Iterable[Mapping[str, Any]]) -> Counter:
    """Judgements the parser could not read, by ``(lang, category)``."""
    return Counter((r.get("lang"), r.get("category")) for r in rows if not r.get("parsed"))


# --------------------------------------------------------------------------------------------------
# Files in, files out (what the CLI calls)
# --------------------------------------------------------------------------------------------------


def judge_spec(endpoint: str | None, model: str) -> str:
    """The backend spec for ``--judge-endpoint URL --judge-model NAME``.

    No endpoint means OpenAI (or ``OPENAI_BASE_URL``). A URL without a path gets ``/v1``, where
    OpenAI-compatible servers (vLLM, TGI, ``transformers serve``) answer.
    """
    from okapi_hf.create.backends import parse_base_url

    if not model or not model.strip():
        raise ConfigError("--judge-model is required: the judge model's name at the endpoint")
    if not endpoint:
        return f"openai:{model}"
    parse_base_url(endpoint, "--judge-endpoint")  # one line naming the flag; never the URL's key
    parts = urlsplit(endpoint)
    if parts.path in ("", "/"):
        endpoint = urlunsplit((parts.scheme, parts.netloc, "/v1", parts.query, parts.fragment))
    return f"openai:{model}@{endpoint}"


def load_references(path: str | Path) -> dict[str, Any]:
    """Reference answers from JSON/JSONL rows ``{question_id, reference}``, optionally with ``lang``.

    Keys are ``<lang>-<question_id>`` when the row names a language (as answers rows' ids do), else
    the question id alone; ``reference`` is a string or a list with one per turn.
    """
    from okapi_hf.jsonfiles import read_records

    path = Path(path)
    out: dict[str, Any] = {}
    for number, obj in read_records(path):
        if not isinstance(obj, dict) or obj.get("question_id") is None:
            raise DataError(f"{path}, row {number}: expected an object with 'question_id' and 'reference'")
        reference = obj.get("reference")
        per_turn = isinstance(reference, list) and all(isinstance(r, str) for r in reference)
        if not (isinstance(reference, str) or per_turn):
            raise DataError(
                f"{path}, row {number}: 'reference' must be a text or a list of texts (one per turn)"
            )
        key = f"{obj['lang']}-{obj['question_id']}" if obj.get("lang") else str(obj["question_id"])
        if key in out:
            raise DataError(f"{path}, row {number}: a second reference for {key!r}")
        out[key] = reference
    return out


def _read_answers(path: str | Path, what: str) -> list[dict[str, Any]]:
    from okapi_hf.create.runner import read_rows

    rows = read_rows(path)
    for number, row in enumerate(rows, start=1):
        check_answer_row(row, f"{path}, {what} row {number}")
    return rows


def judge_answers(
    answers_path: str | Path,
    out_path: str | Path,
    backend_spec: str,
    *,
    mode: str = "single",
    baseline_path: str | Path | None = None,
    references_path: str | Path | None = None,
    cache: str | Path | None = None,
    concurrency: int = 16,
    prompts_dir: str | Path | None = None,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    price: str | None = None,
    progress: bool = True,
) -> Any:
    """Judge every row of an answers file into ``out_path`` (JSON Lines); returns the RunReport.

    Resumable: rows already in ``out_path`` are kept and not judged again (use one output file per
    model and mode), and the request cache (``cache``, default a file beside the output) means a
    killed run pays for nothing twice. Every input row must be well formed, and in pairwise mode have
    a baseline row with the same id and questions, before any request is sent. The report's notes
    say how many judgements in the whole output could not be parsed, by language and category.
    """
    from okapi_hf.create.backends import make_backend
    from okapi_hf.create.runner import check_outcome, read_done, run_rows_sync
    from okapi_hf.create.steps import check_cache_path, check_concurrency, make_client, parse_price

    if mode not in MODES:
        raise ConfigError(f"judge mode {mode!r} unknown; expected one of {', '.join(MODES)}")
    check_concurrency(concurrency)  # every option checked before any file is read or made
    parse_price(price)
    check_cache_path(cache)
    make_backend(backend_spec, option="--judge-backend")
    rows = _read_answers(answers_path, "answers")
    baseline = None
    if mode == "pairwise":
        if baseline_path is None:
            raise ConfigError("pairwise judging needs the baseline model's answers file (--baseline)")
        baseline = {row["id"]: row for row in _read_answers(baseline_path, "baseline")}
        missing = [row["id"] for row in rows if row["id"] not in baseline]
        if missing:
            raise DataError(
                f"{baseline_path}: no baseline answer for {len(missing)} question(s) of {answers_path}, "
                f"e.g. {', '.join(missing[:5])}"
            )
        differ = [row["id"] for row in rows if baseline[row["id"]]["turns"] != row["turns"]]
        if differ:
            raise DataError(
                f"{baseline_path}: {len(differ)} row(s) ask other questions than {answers_path}, "
                f"e.g. {', '.join(differ[:5])}"
            )
    references = load_references(references_path) if references_path else None

    out_path = Path(out_path)
    client = make_client(
        backend_spec,
        out_path.parent,
        cache=cache,
        concurrency=concurrency,
        price=price,
        option="--judge-backend",
    )
    work = make_judge(
        client,
        mode=mode,
        references=references,
        baseline=baseline,
        prompts_dir=prompts_dir,
        max_tokens=max_tokens,
    )

    report = run_rows_sync(rows, work, out_path, step=f"judge {mode}", clients=[client], progress=progress)
    check_outcome([report], what="judgement")  # failures that running again cannot fix
    judged = read_done(out_path)
    unparsed = unparsed_counts(judged)
    total = sum(unparsed.values())
    what = "rating" if mode == "single" else "verdict"
    note = f"{total} of {len(judged)} judgement(s) without a readable {what} (counted, not guessed)"
    if total:
        note += ": " + ", ".join(f"{lang}/{cat} {n}" for (lang, cat), n in sorted(unparsed.items(), key=str))
    report.notes.append(note)
    return report
