"""The experiment's data: okapi-hf's sample tasks scaled up, with rankings that reflect real quality.

``okapi_hf.data.sample`` writes checkable tasks (sums, products, comparisons, parity, capitals, sorting,
reversing, counting, maxima) in each language, with four ranked responses per ranking instruction:
complete > terse > wrong > a polite refusal in the language. Okapi's rankings also punish answers in
the wrong language, so every other ranking here swaps the refusal for a correct answer in English:
complete > terse > wrong > off-language or refusal. Training data go through ``data build`` like any
release; held-out rankings come from another seed and share no (instruction, input) with any training
row, so no stage sees them (there are only eight capital-city questions per language: with more than
a few dozen training rows all of them are trained on, and none is held out).
"""

from __future__ import annotations

import json
import random
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from okapi_hf.data import sample
from okapi_hf.data.build import build_dataset
from okapi_hf.data.schema import get_subset
from okapi_hf.languages import get_language

TASKS = ("sum", "product", "compare", "parity", "capital", "sort", "reverse", "count", "max")
HELDOUT_SEED_OFFSET = 7919  # held-out rows come from another seed of the same generator
OFF_LANGUAGE = "The answer is {terse}."  # a correct answer, in English: ranked last, as Okapi's judge would


@dataclass
class Ranking:
    """One instruction with its four responses, best first (complete, terse, wrong, off-language/refusal)."""

    id: str
    lang: str
    task: str
    instruction: str
    input: str
    responses: list[str]

    @property
    def reference(self) -> str:
        return self.responses[0]

    @property
    def answer(self) -> str:
        """The bare checkable answer (the terse response)."""
        return self.responses[1]

    def as_dict(self) -> dict:
        return asdict(self)


def regroup(pairs: Iterable[dict]) -> list[tuple[str, str, list[str]]]:
    """Release-style pairwise rows back into (instruction, input, responses best first), by win counts."""
    wins: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    for row in pairs:
        key = (row["instruction"], row["input"])
        wins[key][row["prefered_output"]] = wins[key].get(row["prefered_output"], 0) + 1
        wins[key].setdefault(row["rejected_output"], 0)
    return [(i, x, sorted(w, key=w.__getitem__, reverse=True)) for (i, x), w in wins.items()]


def with_off_language(responses: list[str], index: int) -> list[str]:
    """Every other ranking: the last response becomes the right answer in English (still ranked last)."""
    if index % 2 == 0:
        return responses
    return [*responses[:3], OFF_LANGUAGE.format(terse=responses[1])]


def expand(instruction: str, text_input: str, responses: list[str]) -> list[dict]:
    """A ranking as the release's C(4, 2) pairwise rows (``prefered_output`` sic)."""
    return [
        {"instruction": instruction, "input": text_input, "prefered_output": a, "rejected_output": b}
        for i, a in enumerate(responses)
        for b in responses[i + 1 :]
    ]


def training_rows(lang: str, rows: dict[str, int], seed: int) -> dict[str, list[dict]]:
    """Raw rows of one language per subset; rankings carry the off-language variant."""
    out = {
        name: sample.sample_rows(lang, name, n, seed=seed) for name, n in rows.items() if name != "ranking"
    }
    pairs: list[dict] = []
    grouped = regroup(sample.sample_rows(lang, "ranking", rows["ranking"], seed=seed))
    for index, (instruction, text_input, responses) in enumerate(grouped):
        pairs += expand(instruction, text_input, with_off_language(responses, index))
    random.Random(seed).shuffle(pairs)  # as released: pairs of one instruction are not adjacent
    out["ranking"] = pairs
    return out


def write_training_data(out: Path, langs: list[str], rows: dict[str, int], seed: int) -> tuple[Path, set]:
    """Raw files in the release layout, built into a dataset folder; returns it and every training key."""
    raw, seen = out / "raw", set()
    for lang in langs:
        for name, subset_rows in training_rows(lang, rows, seed).items():
            path = raw / get_subset(name).release_folder / f"{get_language(lang).file_code}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(subset_rows, ensure_ascii=False), encoding="utf-8")
            seen |= {(lang, r["instruction"], r["input"]) for r in subset_rows}
    result = build_dataset(raw, out / "okapi_hf", langs, progress=False)
    return result.out_dir, seen


def heldout_rankings(lang: str, n: int, seed: int, seen: set) -> list[Ranking]:
    """Up to ``n`` rankings no training row shares, the same number of each task type where possible."""
    candidates = regroup(sample.sample_rows(lang, "ranking", max(8 * n, 64), seed=seed + HELDOUT_SEED_OFFSET))
    by_task: dict[str, list[Ranking]] = defaultdict(list)
    for index, (instruction, text_input, responses) in enumerate(candidates):
        if (lang, instruction, text_input) in seen:
            continue
        task = task_of(lang, instruction)
        rid = f"{lang}-heldout-{index}"
        ranking = Ranking(rid, lang, task, instruction, text_input, with_off_language(responses, index))
        by_task[task].append(ranking)
    picked: list[Ranking] = []
    while len(picked) < n and any(by_task.values()):
        for task in sorted(by_task):  # round robin: a few of every task, not thirty sums
            if by_task[task] and len(picked) < n:
                picked.append(by_task[task].pop(0))
    return picked


def task_of(lang: str, instruction: str) -> str:
    """The task type of an instruction, from the sample generator's phrase templates.

    The generator does not label rows with their task (a gap, see the report), so the templates are
    read from its phrase table; an unknown instruction is ``other``.
    """
    for task, pattern in _patterns(lang):
        if pattern.fullmatch(instruction):
            return task
    return "other"


_PATTERN_CACHE: dict[str, list[tuple[str, re.Pattern]]] = {}


def _patterns(lang: str) -> list[tuple[str, re.Pattern]]:
    if lang not in _PATTERN_CACHE:
        phrases = getattr(sample, "_PHRASES", {}).get(lang)
        patterns = []
        for task in TASKS if phrases is not None else ():
            template = getattr(phrases, f"{task}_q", None)
            if isinstance(template, str):
                parts = re.split(r"\{\w+\}", template)
                patterns.append((task, re.compile("(.+?)".join(re.escape(p) for p in parts))))
        _PATTERN_CACHE[lang] = patterns
    return _PATTERN_CACHE[lang]


def write_heldout(path: Path, rankings: list[Ranking]) -> None:
    path.write_text(
        "".join(json.dumps(r.as_dict(), ensure_ascii=False) + "\n" for r in rankings), encoding="utf-8"
    )
