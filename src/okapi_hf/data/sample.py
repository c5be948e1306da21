"""Small, genuine Okapi-format raw data that the project writes itself.

Tests, the quickstart and the benchmarks need raw files in the exact layout of the original release
(``<raw_dir>/<release_folder>/<lang>.json``) without downloading the release. The rows here are
real tasks with checkable answers (arithmetic, comparisons, list operations, capital cities),
written in each language from one compact phrase table (``sample_phrases.json``, beside this file),
so that tiny models have something to learn: SFT outputs are correct, and every ranking instruction has four responses whose quality
order is unambiguous (complete > terse > wrong > unhelpful).

Number ranges are wide enough for 52K SFT rows or 42K ranking instructions per language without
repeating an (instruction, input) pair.
"""

from __future__ import annotations

import json
import os
import random
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from okapi_hf.data.download import DiskFullError, is_disk_full
from okapi_hf.data.schema import SUBSETS, get_subset
from okapi_hf.errors import DataError, UnknownLanguageError
from okapi_hf.fsutil import atomic_write_text, locked
from okapi_hf.languages import get_language, resolve_langs

__all__ = ["SAMPLE_LANGS", "sample_rows", "write_sample_raw"]

# One language per script family, so encoding and tokenisation problems show up early.
SAMPLE_LANGS: tuple[str, ...] = ("vi", "ru", "zh", "ar", "hi", "bn")  # Latin, Cyrillic, CJK, Arabic, ...


@dataclass(frozen=True)
class _Phrases:
    """The text of one language; every language fills the same fields, the tasks hold the logic."""

    sum_q: str  # {a}, {b}
    sum_a: str  # {a}, {b}, {c}
    product_q: str  # {a}, {b}
    product_a: str  # {a}, {b}, {c}
    compare_q: str  # {a}, {b}
    compare_a: str  # {big}, {small}
    parity_q: str  # {n}
    even_a: str  # {n}
    odd_a: str  # {n}
    even: str
    odd: str
    capital_q: str  # {country}
    capital_a: str  # {country}, {city}
    countries: tuple[tuple[str, str], ...]  # (country, capital), in the form the templates need
    sort_q: str
    sort_a: str  # {items}
    reverse_q: str
    reverse_a: str  # {items}
    count_q: str
    count_a: str  # {n}
    max_q: str
    max_a: str  # {m}
    words: tuple[str, ...]  # everyday nouns for the list tasks
    sep: str  # how the language separates list items
    unhelpful: tuple[str, ...]  # polite non-answers, the worst response in a ranking


def _nfc(value: object) -> object:
    """NFC-normalise strings inside nested lists: hand-typed Indic nuktas are not always NFC.

    Lists become tuples, so a phrase table is immutable like the dataclass holding it.
    """
    if isinstance(value, str):
        return unicodedata.normalize("NFC", value)
    if isinstance(value, (list, tuple)):
        return tuple(_nfc(v) for v in value)
    return value


def _load_phrases(path: Path) -> dict[str, _Phrases]:
    """The phrase tables, one per language, from a JSON file: text is data, the tasks below hold the logic.

    A missing or misspelled field fails at import, not halfway through a run.
    """
    tables = json.loads(path.read_text(encoding="utf-8"))
    return {
        lang: _Phrases(**{name: _nfc(value) for name, value in text.items()})  # type: ignore[arg-type]
        for lang, text in tables.items()
    }


_PHRASES: dict[str, _Phrases] = _load_phrases(Path(__file__).with_name("sample_phrases.json"))


@dataclass(frozen=True)
class _Item:
    """One task instance with the responses a ranking needs, best first."""

    instruction: str
    input: str
    best: str  # correct and complete sentence
    terse: str  # correct, but only the value
    wrong: str  # as fluent as ``best``, with a wrong answer
    number: int | None = None  # the bare answer of arithmetic tasks (RL rows may carry it as an int)


_Task = Callable[[random.Random, _Phrases], _Item]


def _join(p: _Phrases, items: Iterable[object]) -> str:
    return p.sep.join(str(i) for i in items)


def _arithmetic(question: str, answer: str, a: int, b: int, c: int, slip: int) -> _Item:
    """Sum and product share one shape: the right result, or a plausible slip, in one sentence."""
    return _Item(
        question.format(a=a, b=b),
        "",
        answer.format(a=a, b=b, c=c),
        str(c),
        answer.format(a=a, b=b, c=slip),
        c,
    )


def _sum(rng: random.Random, p: _Phrases) -> _Item:
    a, b = rng.randint(10, 9999), rng.randint(10, 9999)
    return _arithmetic(p.sum_q, p.sum_a, a, b, a + b, a + b + rng.choice((-10, -1, 1, 10)))  # a carry error


def _product(rng: random.Random, p: _Phrases) -> _Item:
    a, b = rng.randint(2, 999), rng.randint(2, 99)
    return _arithmetic(p.product_q, p.product_a, a, b, a * b, a * (b + rng.choice((-1, 1))))  # one table off


def _compare(rng: random.Random, p: _Phrases) -> _Item:
    a, b = rng.sample(range(1, 10_000), 2)
    big, small = max(a, b), min(a, b)
    return _Item(
        p.compare_q.format(a=a, b=b),
        "",
        p.compare_a.format(big=big, small=small),
        str(big),
        p.compare_a.format(big=small, small=big),
    )


def _parity(rng: random.Random, p: _Phrases) -> _Item:
    n = rng.randint(1, 99_999)
    right, wrong = (p.even_a, p.odd_a) if n % 2 == 0 else (p.odd_a, p.even_a)
    return _Item(
        p.parity_q.format(n=n), "", right.format(n=n), p.even if n % 2 == 0 else p.odd, wrong.format(n=n)
    )


def _capital(rng: random.Random, p: _Phrases) -> _Item:
    (country, city), (_, other) = rng.sample(p.countries, 2)  # a real capital, of the wrong country
    return _Item(
        p.capital_q.format(country=country),
        "",
        p.capital_a.format(country=country, city=city),
        city,
        p.capital_a.format(country=country, city=other),
    )


def _sort(rng: random.Random, p: _Phrases) -> _Item:
    numbers = rng.sample(range(1, 1000), rng.randint(4, 7))
    ordered = sorted(numbers)
    if numbers == ordered:  # an already sorted input would make the task trivial
        numbers.reverse()
    slip = ordered.copy()
    i = rng.randrange(len(slip) - 1)
    slip[i], slip[i + 1] = slip[i + 1], slip[i]  # one neighbouring pair out of order
    return _Item(
        p.sort_q,
        _join(p, numbers),
        p.sort_a.format(items=_join(p, ordered)),
        _join(p, ordered),
        p.sort_a.format(items=_join(p, slip)),
    )


def _reverse(rng: random.Random, p: _Phrases) -> _Item:
    words = rng.sample(p.words, rng.randint(3, 6))
    backwards = _join(p, reversed(words))
    return _Item(
        p.reverse_q,
        _join(p, words),
        p.reverse_a.format(items=backwards),
        backwards,
        p.reverse_a.format(items=_join(p, words)),
    )  # wrong: the list left as it was


def _count(rng: random.Random, p: _Phrases) -> _Item:
    words = rng.sample(p.words, rng.randint(3, 8))
    n = len(words)
    return _Item(
        p.count_q, _join(p, words), p.count_a.format(n=n), str(n), p.count_a.format(n=n + rng.choice((-1, 1)))
    )


def _max(rng: random.Random, p: _Phrases) -> _Item:
    numbers = rng.sample(range(1, 1000), rng.randint(4, 7))
    ordered = sorted(numbers)
    return _Item(
        p.max_q,
        _join(p, numbers),
        p.max_a.format(m=ordered[-1]),
        str(ordered[-1]),
        p.max_a.format(m=ordered[-2]),
    )  # wrong: the runner-up


# Rows alternate between these two pools, so about half of all rows have an ``input``.
_NO_INPUT: tuple[_Task, ...] = (_sum, _product, _compare, _parity, _capital)
_WITH_INPUT: tuple[_Task, ...] = (_sort, _reverse, _count, _max)
_ARITHMETIC = (_sum, _product)
_MAX_TRIES = 50  # consecutive repeats after which a task counts as used up (capital cities)
MAX_SAMPLE_ROWS = 1_000_000  # instructions per subset; the number ranges hold more without repeats


class _Rotation:
    """Cycles through tasks in seeded shuffled rounds, so even a dozen rows cover every task."""

    def __init__(self, tasks: tuple[_Task, ...], rng: random.Random) -> None:
        self._live = list(tasks)
        self._queue: list[_Task] = []
        self._rng = rng

    def draw(self, p: _Phrases, seen: set[tuple[str, str]]) -> tuple[_Task, _Item]:
        while self._live:
            if not self._queue:
                self._queue = self._live.copy()
                self._rng.shuffle(self._queue)
            task = self._queue.pop()
            for _ in range(_MAX_TRIES):
                item = task(self._rng, p)
                key = (item.instruction, item.input)
                if key not in seen:
                    seen.add(key)
                    return task, item
            self._live.remove(task)  # a finite task has no new rows left
        raise RuntimeError("every sample task ran out of unique rows")


def _items(p: _Phrases, n: int, rng: random.Random) -> Iterator[tuple[_Task, _Item]]:
    """``n`` task instances with distinct (instruction, input)."""
    pools = (_Rotation(_NO_INPUT, rng), _Rotation(_WITH_INPUT, rng))
    seen: set[tuple[str, str]] = set()
    for i in range(n):
        yield pools[i % 2].draw(p, seen)


def _sample_code(lang: str) -> str:
    """The registry code for ``lang``, refusing registry languages that have no phrase table."""
    code = get_language(lang).code
    if code not in _PHRASES:
        raise UnknownLanguageError(
            f"no sample text for language {lang!r}; sample text exists for: {', '.join(_PHRASES)}"
        )
    return code


def sample_rows(lang: str, subset: str, n: int, *, seed: int = 0) -> list[dict]:
    """The raw rows :func:`write_sample_raw` writes for one language and subset.

    ``n`` counts instructions: ``sft`` and ``rl`` give ``n`` rows, ``ranking`` gives ``6 * n``
    pairwise rows (every pair of four ranked responses), shuffled across instructions as in the
    release, so that the ranking can only be recovered by regrouping on (instruction, input).
    """
    code = _sample_code(lang)
    name = get_subset(subset).name
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    p = _PHRASES[code]
    rng = random.Random(f"okapi-sample/{seed}/{code}/{name}")  # str seeds are stable across runs
    items = _items(p, n, rng)

    if name == "sft":
        return [{"instruction": it.instruction, "input": it.input, "output": it.best} for _, it in items]

    if name == "rl":
        rows: list[dict] = []
        arithmetic = 0
        for task, it in items:
            output: str | int = it.best
            if task in _ARITHMETIC:
                # like the real release, a few outputs are JSON numbers rather than strings
                if it.number is not None and arithmetic % 3 == 0:
                    output = it.number
                arithmetic += 1
            rows.append({"instruction": it.instruction, "input": it.input, "output": output})
        return rows

    pairs: list[dict] = []
    for _, it in items:
        ranked = (it.best, it.terse, it.wrong, rng.choice(p.unhelpful))
        for i in range(4):
            for j in range(i + 1, 4):
                pairs.append(
                    {
                        "instruction": it.instruction,
                        "input": it.input,
                        "prefered_output": ranked[i],
                        "rejected_output": ranked[j],
                    }
                )
    rng.shuffle(pairs)
    return pairs


def _write(path: Path, rows: list[dict], jsonl: bool) -> None:
    # json.dumps (not json.dump) so the C encoder does the work: 250K rows in well under a second
    if jsonl:
        text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    else:
        text = json.dumps(rows, ensure_ascii=False)
    try:
        atomic_write_text(path, text)  # a kill or a full disk never leaves half a file for `data build`
    except OSError as exc:
        if not is_disk_full(exc):
            raise
        raise DiskFullError(
            f"{path}: the disk is full (no space left for the sample data); the file was not changed; "
            "free some space and run again"
        ) from None


def write_sample_raw(
    out_dir: str | Path,
    langs: str | Iterable[str] | None = None,
    *,
    n_sft: int = 36,
    n_ranking: int = 12,
    n_rl: int = 16,
    seed: int = 0,
    jsonl: bool = False,
) -> Path:
    """Write ``<out_dir>/<release_folder>/<lang>.json`` for the three subsets; returns ``out_dir``.

    ``langs`` is a list or a comma-separated string of codes (``None``: :data:`SAMPLE_LANGS`);
    ``n_ranking`` counts instructions (six pairwise rows each). ``jsonl=True`` writes JSON Lines
    to ``<lang>.jsonl`` instead of one JSON array.
    """
    root = Path(out_dir)
    codes = list(SAMPLE_LANGS) if langs is None else resolve_langs(langs)
    codes = [_sample_code(c) for c in codes]  # check every language before writing anything
    counts = {"sft": n_sft, "ranking": n_ranking, "rl": n_rl}
    for name, n in counts.items():
        if n < 0 or n > MAX_SAMPLE_ROWS:
            raise DataError(f"n_{name} (--n-{name}) must be 0 to {MAX_SAMPLE_ROWS}, got {n}")
    if root.exists() and not root.is_dir():
        raise DataError(f"--out {root} is a file; expected a folder for the sample raw data")
    real = Path(os.path.realpath(root))
    with locked(real, what=f"the raw folder {root}"):
        for code in codes:
            file_name = f"{get_language(code).file_code}.{'jsonl' if jsonl else 'json'}"
            for name, n in counts.items():
                folder = root / SUBSETS[name].release_folder
                folder.mkdir(parents=True, exist_ok=True)
                _write(folder / file_name, sample_rows(code, name, n, seed=seed), jsonl)
    return root
