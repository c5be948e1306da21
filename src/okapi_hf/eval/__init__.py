"""Okapi's benchmarks (ARC-Challenge, HellaSwag, MMLU, TruthfulQA) as lm-eval tasks that follow the authors' protocol.

The task files live in :func:`tasks_path`; pass that folder to lm-eval::

    lm_eval --include_path "$(okapi-hf eval tasks-path)" --tasks okapi_mmlu_vi ...

Task names are ``okapi_{benchmark}_{lang}`` (:func:`task_name`), groups ``okapi_{benchmark}``,
``okapi_{lang}``, ``okapi_{high,medium,low,extra}`` and ``okapi``; ``okapi_arc_val_{lang}`` scores ARC
on its validation split (the authors' reference scores' split) and ``okapi_mmlu_val_{lang}`` MMLU on
``val`` for copies of the data without the test files. See
``tasks/README.md`` for the protocol and the data sources. This module imports neither lm-eval
nor datasets.
"""

from __future__ import annotations

from pathlib import Path

from okapi_hf.errors import OkapiError, UnknownLanguageError
from okapi_hf.languages import GROUPS, get_language, languages

BENCHMARKS: tuple[str, ...] = ("arc", "hellaswag", "mmlu", "truthfulqa")
# Extra task variants: name -> the benchmark whose data and protocol it uses.
# okapi_arc_val_{lang}: ARC on its validation split, the split of the authors' published ARC scores.
# okapi_mmlu_val_{lang}: MMLU on val, for copies of the release without MMLU test files.
VARIANTS: dict[str, str] = {"arc_val": "arc", "mmlu_val": "mmlu"}
EVAL_DIR_ENV = "OKAPI_HF_EVAL_DIR"
# Task metadata key choosing the few-shot stream (okapi_hf.eval.shots): the authors' (default) or lm-eval's.
SHOTS_KEY = "shots"
SHOT_MODES: tuple[str, ...] = ("authors", "lm-eval")

# Registry languages Okapi released no translated benchmark for: English is the source language of
# the benchmarks, and Japanese appears in the training data only.
# Persian (fa) is in the registry for the multilingual Vicuna benchmark only: Okapi has no ARC/MMLU for it.
_NO_EVAL_DATA: frozenset[str] = frozenset({"en", "ja", "fa"})


class UnknownBenchmarkError(OkapiError, ValueError):
    """A benchmark name that is not one of :data:`BENCHMARKS` (or a variant)."""


def tasks_path() -> Path:
    """The folder to pass to lm-eval's ``--include_path`` (``TaskManager(include_path=...)``)."""
    return Path(__file__).resolve().parent / "tasks"


def _base_benchmark(bench: str) -> str:
    if bench in BENCHMARKS:
        return bench
    if bench in VARIANTS:
        return VARIANTS[bench]
    raise UnknownBenchmarkError(
        f"unknown benchmark {bench!r}; valid: {', '.join(BENCHMARKS)} (variants: {', '.join(VARIANTS)})"
    )


def task_languages(bench: str) -> list[str]:
    """Registry codes that have a task for ``bench``: the 26 Okapi languages, then the extras with data."""
    _base_benchmark(bench)
    return [lang.code for lang in languages() if lang.code not in _NO_EVAL_DATA]


def task_name(bench: str, lang: str) -> str:
    """``okapi_{bench}_{lang}``; aliases resolve (``jp`` -> ``ja``), languages without data raise."""
    _base_benchmark(bench)
    code = get_language(lang).code  # UnknownLanguageError for codes the registry does not know
    if code not in task_languages(bench):
        raise UnknownLanguageError(
            f"no Okapi {bench} task for {code!r}: the release has no translated {bench} data for it; "
            f"languages with data: {', '.join(task_languages(bench))}"
        )
    return f"okapi_{bench}_{code}"


def group_name(scope: str) -> str:
    """The group for a benchmark (``arc``), a language (``vi``), a resource group (``low``) or ``all``.

    ``group_name("all")`` is ``okapi``: the three benchmarks over the 26 Okapi languages.
    """
    if scope == "all":
        return "okapi"
    if scope in BENCHMARKS or scope in VARIANTS or scope in GROUPS:
        return f"okapi_{scope}"
    return f"okapi_{task_name('arc', scope).removeprefix('okapi_arc_')}"
