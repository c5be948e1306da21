"""Language fidelity: the share of a model's answers written in the language of the question.

Multilingual models drift into English (or a neighbouring language) when they answer in a
low-resource one; a judge's score does not show it. This is the evaluation's metric; the identifier
under it, :func:`okapi_hf.langid.identify`, lives in the foundation module ``okapi_hf.langid``
because the RL stage rewards the same thing and training must not import evaluation.

Undetermined answers (empty, only digits, punctuation or code, a script no candidate writes) are
counted, never guessed, and count against fidelity: such an answer was not shown to be in the
question's language. ``determined_fidelity`` leaves them out, to read drift alone.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from okapi_hf.errors import DataError, UnknownLanguageError
from okapi_hf.langid import identify
from okapi_hf.languages import get_language, resolve_langs

UNDETERMINED = "und"  # BCP 47's code for an undetermined language: stands for None in JSON and tables


class _Shares:
    """The two fidelity shares, from ``answers``, ``matched`` and ``undetermined``."""

    answers: int
    matched: int
    undetermined: int

    @property
    def fidelity(self) -> float | None:
        """matched / answers (undetermined answers count against it); None without answers."""
        return self.matched / self.answers if self.answers else None

    @property
    def determined_fidelity(self) -> float | None:
        """matched / answers whose language was determined; None when none was."""
        determined = self.answers - self.undetermined
        return self.matched / determined if determined else None


@dataclass(frozen=True)
class LanguageFidelity(_Shares):
    """The answers expected in one language: how many, how many were in it, how many undetermined."""

    lang: str
    answers: int
    matched: int
    undetermined: int


@dataclass(frozen=True)
class FidelityReport(_Shares):
    """Per answer, the language expected and the one identified; totals per language and a confusion.

    ``confusion[expected][identified]`` counts answers, with None for undetermined.
    """

    expected: list[str]
    identified: list[str | None]
    by_lang: dict[str, LanguageFidelity] = field(default_factory=dict)
    confusion: dict[str, dict[str | None, int]] = field(default_factory=dict)

    @property
    def answers(self) -> int:
        return len(self.expected)

    @property
    def matched(self) -> int:
        return sum(row.matched for row in self.by_lang.values())

    @property
    def undetermined(self) -> int:
        return sum(row.undetermined for row in self.by_lang.values())

    def misses(self) -> list[int]:
        """Indices of the answers not identified as their expected language (undetermined included)."""
        return [i for i, (e, f) in enumerate(zip(self.expected, self.identified, strict=True)) if e != f]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: totals, per language, the confusion (``"und"`` for undetermined), per answer."""
        return {
            "fidelity": self.fidelity,
            "determined_fidelity": self.determined_fidelity,
            "answers": self.answers,
            "matched": self.matched,
            "undetermined": self.undetermined,
            "by_lang": {
                lang: {
                    "fidelity": row.fidelity,
                    "determined_fidelity": row.determined_fidelity,
                    "answers": row.answers,
                    "matched": row.matched,
                    "undetermined": row.undetermined,
                }
                for lang, row in self.by_lang.items()
            },
            "confusion": {
                lang: {_label(code): n for code, n in row.items()} for lang, row in self.confusion.items()
            },
            "identified": list(self.identified),
        }

    def summary(self) -> str:
        """One line per expected language, with where its other answers went."""
        lines = [f"language fidelity {_share(self.fidelity)} over {self.answers} answers"]
        for lang, row in self.by_lang.items():
            others = ", ".join(
                f"{_label(code)} {n}" for code, n in self.confusion[lang].items() if code != lang
            )
            lines.append(
                f"  {lang}: {_share(row.fidelity)} ({row.matched}/{row.answers})"
                + (f"; identified instead: {others}" if others else "")
            )
        return "\n".join(lines)


def language_fidelity(
    texts: Sequence[str], langs: Sequence[str], candidates: Sequence[str] | str | None = None
) -> FidelityReport:
    """Identify each text's language and compare it with the language it should be in.

    ``langs[i]`` is the registry code (or alias) of the question ``texts[i]`` answers. ``candidates``
    are the languages an answer can be identified as (default: every registry language; see
    :func:`~okapi_hf.langid.identify`); they must include every expected language. A text repeated in
    the input is identified once.
    """
    if isinstance(texts, str) or isinstance(langs, str):
        raise DataError("language_fidelity takes a sequence of texts and one of language codes, not a str")
    if len(texts) != len(langs):
        raise DataError(f"language_fidelity: {len(texts)} texts but {len(langs)} languages")
    expected = [_expected(lang, i) for i, lang in enumerate(langs)]
    allowed = None if candidates is None else set(resolve_langs(candidates))
    if allowed is not None and not set(expected) <= allowed:
        raise UnknownLanguageError(
            f"expected languages {', '.join(sorted(set(expected) - allowed))} are not among the candidates "
            f"({', '.join(sorted(allowed))}): no answer could ever match them"
        )
    found: dict[str, str | None] = {}
    identified = []
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise DataError(f"language_fidelity: text {i} is {type(text).__name__}, not a str")
        if text not in found:
            found[text] = identify(text, candidates)
        identified.append(found[text])

    confusion: dict[str, Counter[str | None]] = {}
    for want, got in zip(expected, identified, strict=True):
        confusion.setdefault(want, Counter())[got] += 1
    by_lang = {
        lang: LanguageFidelity(
            lang=lang, answers=sum(row.values()), matched=row[lang], undetermined=row[None]
        )
        for lang, row in confusion.items()
    }
    return FidelityReport(
        expected=expected,
        identified=identified,
        by_lang=by_lang,
        confusion={lang: dict(row.most_common()) for lang, row in confusion.items()},
    )


def _expected(lang: str, index: int) -> str:
    if not isinstance(lang, str):
        raise DataError(f"language_fidelity: language {index} is {type(lang).__name__}, not a code")
    try:
        return get_language(lang).code
    except UnknownLanguageError as e:
        raise UnknownLanguageError(f"language_fidelity: language {index}: {e}") from None


def _label(code: str | None) -> str:
    return UNDETERMINED if code is None else code


def _share(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
