"""`okapi-hf eval generate`: answer a question set (the multilingual Vicuna benchmark) for a judge to grade.

Questions come from ``<folder>/<lang>.jsonl`` rows ``{question_id, category, turns, lang}`` (the
layout of TaCo's translated Vicuna questions). A local model answers through the chat pipeline in
batches; an endpoint answers through the LLM client. Answers go to ``<out>/<lang>.jsonl`` as rows
``{id, question_id, lang, category, turns, answers, model}``; a run resumes with the rows it lacks.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from okapi_hf.create.runner import append_row, read_done, run_rows_sync
from okapi_hf.errors import DataError
from okapi_hf.languages import resolve_langs

BENCHMARKS = ("vicuna",)
# Evaluation answers greedily by default, so a score does not depend on the sampling luck of one run.
DEFAULT_GENERATION: dict[str, Any] = {"do_sample": False, "max_new_tokens": 512}


def load_questions(
    folder: str | Path, langs: str | list[str], limit: int | None = None
) -> list[dict[str, Any]]:
    """Every question of ``langs`` from ``folder`` (the first ``limit`` of each language, for a smoke run);
    a malformed row is an error naming file, line and field."""
    folder = Path(folder)
    questions = []
    for lang in resolve_langs(langs):
        start = len(questions)
        path = folder / f"{lang}.jsonl"
        if not path.is_file():
            have = ", ".join(sorted(p.stem for p in folder.glob("*.jsonl"))) or "none"
            raise DataError(f"no questions for {lang}: {path} does not exist (languages there: {have})")
        # split on \n only: U+2028 and friends may sit raw inside JSON strings
        for number, line in enumerate(path.read_text(encoding="utf-8").split("\n"), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}, line {number}: not JSON ({e.msg})") from None
            questions.append(_check_question(row, path, number, lang))
        if limit is not None:
            del questions[start + limit :]
    seen: set[str] = set()
    for question in questions:
        if question["id"] in seen:
            raise DataError(
                f"{folder / (question['lang'] + '.jsonl')}: question_id {question['question_id']!r} repeats"
            )
        seen.add(question["id"])
    return questions


def _check_question(row: Any, path: Path, number: int, lang: str) -> dict[str, Any]:
    where = f"{path}, line {number}"
    if not isinstance(row, dict):
        raise DataError(f"{where}: expected an object with question_id, category, turns")
    for name in ("question_id", "turns"):
        if name not in row:
            raise DataError(f"{where}: missing field '{name}'")
    turns = row["turns"]
    if not isinstance(turns, list) or not turns or not all(isinstance(t, str) and t.strip() for t in turns):
        raise DataError(f"{where}: 'turns' must be a non-empty list of non-empty strings")
    if row.get("lang", lang) != lang:
        raise DataError(f"{where}: 'lang' is {row['lang']!r} in the file for {lang!r}")
    return {
        "id": f"{lang}-{row['question_id']}",
        "question_id": row["question_id"],
        "lang": lang,
        "category": str(row.get("category") or "general"),
        "turns": turns,
    }


def _history(question: dict[str, Any], answers: list[str], upto: int) -> list[dict[str, str]]:
    """The conversation up to turn ``upto`` (0-based), with the answers given so far."""
    messages = []
    for k in range(upto + 1):
        messages.append({"role": "user", "content": question["turns"][k]})
        if k < upto:
            messages.append({"role": "assistant", "content": answers[k]})
    return messages


def answer_questions(
    questions: list[dict[str, Any]],
    out: str | Path,
    *,
    model: str | None = None,
    backend: str | None = None,
    batch_size: int = 8,
    gpu: bool = False,
    concurrency: int = 16,
    cache: str | Path | None = None,
    max_new_tokens: int = 512,
    progress: bool = True,
) -> int:
    """Answer every question not yet answered in ``out``, turn by turn and greedily; return the new rows.

    Exactly one of ``model`` (a local model, through the chat pipeline in batches of ``batch_size``) or
    ``backend`` (an OpenAI-compatible endpoint or any backend spec, ``concurrency`` requests at once,
    answers cached in ``cache``) answers.
    """
    if bool(model) == bool(backend):
        raise ValueError("give exactly one of model (a local model) or backend (an endpoint)")
    written = 0
    if model:
        from okapi_hf.chat import pipeline

        chat = pipeline(model, gpu=gpu, **{**DEFAULT_GENERATION, "max_new_tokens": max_new_tokens})
        for lang, todo in _todo_by_lang(questions, out).items():
            written += _answer_locally(
                chat, str(model), todo, Path(out) / f"{lang}.jsonl", batch_size, progress
            )
        return written
    from okapi_hf.create.steps import make_client

    for lang, todo in _todo_by_lang(questions, out).items():
        client = make_client(backend, out, cache=cache, concurrency=concurrency)
        written += _answer_remotely(
            client, backend, todo, Path(out) / f"{lang}.jsonl", max_new_tokens, progress
        )
    return written


def _answer_locally(chat: Any, name: str, todo: list, target: Path, batch_size: int, progress: bool) -> int:
    """One language's questions through the chat pipeline, a batch of conversations per turn."""
    bar = tqdm(total=len(todo), desc=f"answer {target.stem}", unit="question", disable=not progress)
    with target.open("a", encoding="utf-8") as f:
        for start in range(0, len(todo), batch_size):
            chunk = todo[start : start + batch_size]
            answers: list[list[str]] = [[] for _ in chunk]
            for turn in range(max(len(q["turns"]) for q in chunk)):
                active = [i for i, q in enumerate(chunk) if turn < len(q["turns"])]
                conversations = [_history(chunk[i], answers[i], turn) for i in active]
                for i, reply in zip(
                    active, chat.chat_batch(conversations, batch_size=batch_size), strict=True
                ):
                    answers[i].append(reply)
            for question, given in zip(chunk, answers, strict=True):
                append_row(f, {**question, "answers": given, "model": name})
            bar.update(len(chunk))
    bar.close()
    return len(todo)


def _answer_remotely(
    client: Any, backend: str, todo: list, target: Path, max_tokens: int, progress: bool
) -> int:
    """One language's questions through the LLM client, concurrently, resumable row by row."""
    from okapi_hf.create.backends import public_spec
    from okapi_hf.create.llm import ChatRequest

    async def work(question: dict[str, Any]) -> dict[str, Any]:
        answers: list[str] = []
        for turn in range(len(question["turns"])):
            request = ChatRequest.chat(
                _history(question, answers, turn), temperature=0.0, max_tokens=max_tokens
            )
            answers.append((await client.complete(request)).text.strip())
        return {**question, "answers": answers, "model": public_spec(backend)}  # no credential

    report = run_rows_sync(
        todo, work, target, step=f"answer {target.stem}", clients=[client], progress=progress
    )
    if report.failed:
        print(report.summary())
        failed = sum(report.failed.values())
        raise DataError(
            f"answer {target.stem}: {failed} question(s) failed (see above); {report.written} answered"
        )
    return report.written


def _todo_by_lang(questions: list[dict[str, Any]], out: str | Path) -> dict[str, list[dict[str, Any]]]:
    """The questions not yet answered in ``out``, per language (a killed run loses nothing)."""
    Path(out).mkdir(parents=True, exist_ok=True)
    todo: dict[str, list[dict[str, Any]]] = {}
    for question in questions:
        todo.setdefault(question["lang"], [])
    done = {lang: {r["id"] for r in read_done(Path(out) / f"{lang}.jsonl")} for lang in todo}
    for question in questions:
        if question["id"] not in done[question["lang"]]:
            todo[question["lang"]].append(question)
    return todo
