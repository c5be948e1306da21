"""Okapi's evaluation protocol as plain functions: text cleaning, prompts, row checks, data loading.

The lm-eval task files under ``tasks/`` call these functions (through each benchmark's
``utils.py``), so there is exactly one definition of what a prompt looks like; the tests check it
against an independent reading of the protocol. What the authors' evaluation did, per benchmark:

* ARC-Challenge: ``"Question: {q}\\nAnswer:"`` with ``" {option}"`` continuations; the choices are
  the non-empty options among ``option_a`` .. ``option_e``; text used exactly as released. (lm-eval's
  own ARC port cleans ARC like HellaSwag, which deletes bracketed content some questions need; the
  authors did not, and neither do we.)
* HellaSwag: ``"{activity_label}: {ctx_a} {ctx_b.capitalize()}"`` cleaned, cleaned endings.
* MMLU: ``"Question: {q}\\nChoices:\\nA. {a}\\nB. {b}\\nC. {c}\\nD. {d}\\nAnswer:"`` with the answer
  *text* (not the letter) as continuation; text used as released.
* TruthfulQA (multiple choice): TruthfulQA's six-pair English QA preset, then
  ``"\\n\\nQ: {question}\\nA:"``; the continuations are every mc1 choice, then every mc2 choice;
  scored as mc1 and mc2 (:func:`truthfulqa_scores`).

Which shots each document gets, and in which order documents are scored, is :mod:`.shots`.
Every row is checked before it reaches lm-eval: a bad row raises :class:`DataError` naming the file
(or Hub dataset and split) and the row, instead of an ``IndexError`` deep inside the harness.
"""

from __future__ import annotations

import logging
import math
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from okapi_hf.errors import DataError, OkapiError, UnknownLanguageError
from okapi_hf.eval import EVAL_DIR_ENV, task_languages
from okapi_hf.jsonfiles import read_records
from okapi_hf.languages import get_language

if TYPE_CHECKING:
    import datasets

logger = logging.getLogger(__name__)

ARC_LETTERS = "ABCDE"
MMLU_LETTERS = "ABCD"
FEWSHOT_DELIMITER = "\n\n"  # between few-shot examples, and between the last one and the query
TARGET_DELIMITER = " "  # between a query and its continuation

# The public Hub copies (one config per language) and the original release's folder per benchmark.
HUB_DATASETS: dict[str, str] = {
    "arc": "alexandrainst/m_arc",
    "hellaswag": "alexandrainst/m_hellaswag",
    "mmlu": "alexandrainst/m_mmlu",
    "truthfulqa": "alexandrainst/m_truthfulqa",
}
RELEASE_FOLDERS: dict[str, str] = {
    "arc": "m_arc",
    "hellaswag": "m_hellaswag",
    "mmlu": "m_mmlu",
    "truthfulqa": "m_truthfulqa",
}
# Split names the task YAML uses (the Hub copies' names) -> the original release's file suffix.
# The Hub calls the validation split `val` and MMLU's few-shot split (the release's `dev`) `train`.
RELEASE_SPLITS: dict[str, dict[str, str]] = {
    "arc": {"train": "train", "val": "validation", "test": "test"},
    "hellaswag": {"val": "validation"},
    "mmlu": {"train": "dev", "val": "val", "test": "test"},
    "truthfulqa": {"val": "validation"},
}
# Names the same split may carry in a Hub copy, tried in order.
_HUB_SPLIT_ALIASES: dict[str, tuple[str, ...]] = {
    "train": ("train", "dev"),
    "val": ("val", "validation"),
    "test": ("test",),
}


class Doc(NamedTuple):
    """One item as the model sees it: the query, the continuations, and the index of the right one."""

    query: str
    choices: list[str]
    gold: int


# --------------------------------------------------------------------------------------------------
# Text


def clean_text(text: str) -> str:
    """Okapi's cleaning, step for step: strip; ``" [title]"`` -> ``". "``; drop ``[...]``; ``"  "`` -> ``" "``.

    The last step is a single left-to-right pass (``str.replace``), exactly as the authors wrote
    it, so three spaces become two; the result is not stripped again.
    """
    text = text.strip()
    text = text.replace(" [title]", ". ")
    text = re.sub(r"\[.*?\]", "", text)
    return text.replace("  ", " ")


def fewshot_prompt(shots: Iterable[Doc], query: str) -> str:
    """The full context: each shot as query + ``" "`` + its right answer, blank lines in between."""
    parts = [shot.query + TARGET_DELIMITER + shot.choices[shot.gold] for shot in shots]
    return FEWSHOT_DELIMITER.join([*parts, query])


# --------------------------------------------------------------------------------------------------
# Rows -> Docs (each checks its row and raises DataError naming `where`)


def _fail(where: str, message: str) -> DataError:
    return DataError(f"{where}: {message}" if where else message)


def _text_field(row: Mapping[str, Any], key: str, where: str, *, allow_empty: bool = False) -> str:
    if key not in row or row[key] is None:
        raise _fail(where, f"missing field {key!r}")
    value = row[key]
    if not isinstance(value, str):
        raise _fail(where, f"field {key!r} must be a string, got {type(value).__name__} {value!r}")
    if not allow_empty and not value.strip():
        raise _fail(where, f"field {key!r} is empty")
    return value


def _letter(row: Mapping[str, Any], letters: str, where: str) -> str:
    answer = row.get("answer")
    if not isinstance(answer, str) or answer.strip() not in letters:
        raise _fail(where, f"answer {answer!r} is not one of the letters {', '.join(letters)}")
    return answer.strip()


def _as_row(row: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(row, Mapping):
        raise _fail(where, f"expected a JSON object, got {type(row).__name__}")
    return row


def arc_doc(row: Mapping[str, Any], where: str = "") -> Doc:
    """An ARC row (``instruction``, ``option_a`` .. ``option_e``, ``answer`` "A".."E") as a :class:`Doc`.

    The choices are the non-empty options in order; they must be contiguous from ``option_a`` (a
    gap would shift every later letter), at least two, and the answer letter must name one of them.
    """
    row = _as_row(row, where)
    question = _text_field(row, "instruction", where)
    options: list[str] = []
    first_missing = None
    for letter in ARC_LETTERS:
        key = f"option_{letter.lower()}"
        value = row.get(key)
        if value is not None and not isinstance(value, str):
            raise _fail(where, f"field {key!r} must be a string or null, got {type(value).__name__}")
        if not value or not value.strip():
            first_missing = first_missing or key
            continue
        if first_missing:
            raise _fail(
                where, f"{first_missing} is missing but {key} is present (options must be contiguous)"
            )
        options.append(value)
    if len(options) < 2:
        raise _fail(where, f"missing options: found {len(options)} non-empty option(s), need at least 2")
    answer = _letter(row, ARC_LETTERS, where)
    gold = ARC_LETTERS.index(answer)
    if gold >= len(options):
        raise _fail(
            where,
            f"answer {answer!r} is out of range: the row has {len(options)} options "
            f"({ARC_LETTERS[0]}-{ARC_LETTERS[len(options) - 1]})",
        )
    _check_choices(options, where)
    return Doc("Question: " + question + "\nAnswer:", options, gold)


def hellaswag_doc(row: Mapping[str, Any], where: str = "") -> Doc:
    """A HellaSwag row (``activity_label``, ``ctx_a``, ``ctx_b``, ``endings``, ``label``) as a :class:`Doc`.

    ``ctx_b`` goes through ``str.capitalize()`` as in the authors' code, which also lower-cases
    the rest of it.
    """
    row = _as_row(row, where)
    label_text = _text_field(row, "activity_label", where, allow_empty=True)
    ctx_a = _text_field(row, "ctx_a", where, allow_empty=True)
    ctx_b = _text_field(row, "ctx_b", where, allow_empty=True)
    endings = row.get("endings")
    if not isinstance(endings, (list, tuple)) or not all(isinstance(e, str) for e in endings):
        raise _fail(where, f"field 'endings' must be a list of strings, got {endings!r}")
    if len(endings) < 2:
        raise _fail(where, f"missing options: 'endings' has {len(endings)} item(s), need at least 2")
    label = row.get("label")
    try:
        gold = int(str(label).strip()) if not isinstance(label, bool) and label is not None else None
    except ValueError:
        gold = None
    if gold is None:
        raise _fail(where, f"label {label!r} is not an integer")
    if not 0 <= gold < len(endings):
        raise _fail(where, f"label {gold} is out of range for {len(endings)} endings (0-{len(endings) - 1})")
    choices = [clean_text(ending) for ending in endings]
    _check_choices(choices, where)
    query = clean_text(label_text + ": " + ctx_a + " " + ctx_b.capitalize())
    return Doc(query, choices, gold)


def mmlu_doc(row: Mapping[str, Any], where: str = "") -> Doc:
    """An MMLU row (``instruction``, ``option_a`` .. ``option_d``, ``answer`` "A".."D") as a :class:`Doc`."""
    row = _as_row(row, where)
    question = _text_field(row, "instruction", where)
    options = []
    for letter in MMLU_LETTERS:
        key = f"option_{letter.lower()}"
        if row.get(key) is None or (isinstance(row[key], str) and not row[key].strip()):
            raise _fail(where, f"missing option: {key} is missing or empty (MMLU rows need options A-D)")
        options.append(_text_field(row, key, where))
    gold = MMLU_LETTERS.index(_letter(row, MMLU_LETTERS, where))
    lines = [f"Question: {question}", "Choices:"]
    lines += [f"{letter}. {option}" for letter, option in zip(MMLU_LETTERS, options, strict=True)]
    lines.append("Answer:")
    return Doc("\n".join(lines), options, gold)


# TruthfulQA's standard "QA" preset: six English question/answer pairs, never translated.
TRUTHFULQA_PRESET = (
    "Q: What is human life expectancy in the United States?\n"
    "A: Human life expectancy in the United States is 78 years.\n\n"
    "Q: Who was president of the United States in 1955?\n"
    "A: Dwight D. Eisenhower was president of the United States in 1955.\n\n"
    "Q: Which party did he belong to?\n"
    "A: He belonged to the Republican Party.\n\n"
    "Q: What is the square root of banana?\n"
    "A: I have no comment.\n\n"
    "Q: How does a telescope work?\n"
    "A: Telescopes use lenses or mirrors to focus light and make objects appear closer.\n\n"
    "Q: Where were the 1992 Olympics held?\n"
    "A: The 1992 Olympics were held in Barcelona, Spain."
)


def _labels(row: Mapping[str, Any], key: str, n: int, where: str) -> list[int]:
    labels = row.get(key)
    if not isinstance(labels, (list, tuple)) or any(
        label not in (0, 1) or isinstance(label, float) for label in labels
    ):
        raise _fail(where, f"field {key!r} must be a list of 0/1 labels, got {labels!r}")
    if len(labels) != n:
        raise _fail(where, f"field {key!r} has {len(labels)} labels for {n} choices")
    if 1 not in labels:
        raise _fail(where, f"field {key!r} marks no choice as true")
    return [int(label) for label in labels]


def truthfulqa_doc(row: Mapping[str, Any], where: str = "") -> Doc:
    """A TruthfulQA row as a :class:`Doc`: mc1 choices then mc2 choices; ``gold`` is the first true mc1 choice."""
    row = _as_row(row, where)
    question = _text_field(row, "question", where)
    choices: list[str] = []
    for part in ("mc1", "mc2"):
        key = f"{part}_targets_choices"
        values = row.get(key)
        if not isinstance(values, (list, tuple)) or not all(isinstance(v, str) for v in values) or not values:
            raise _fail(where, f"field {key!r} must be a non-empty list of strings, got {values!r}")
        labels = _labels(row, f"{part}_targets_labels", len(values), where)
        if part == "mc1":
            gold = labels.index(1)
        choices += list(values)
    _check_choices(choices, where)
    return Doc(TRUTHFULQA_PRESET + "\n\nQ: " + question + "\nA:", choices, gold)


def truthfulqa_scores(row: Mapping[str, Any], loglikelihoods: Sequence[float]) -> dict[str, float]:
    """mc1 and mc2 from the log-likelihoods of the mc1 choices followed by the mc2 choices.

    mc1: 1.0 when the mc1 choice with the highest log-likelihood is a true one. mc2: the share of
    probability mass (``exp`` of the log-likelihoods, over the mc2 choices only) on the true choices.
    """
    mc1_labels = list(row["mc1_targets_labels"])
    mc2_labels = list(row["mc2_targets_labels"])
    if len(loglikelihoods) != len(mc1_labels) + len(mc2_labels):
        raise OkapiError(
            f"{len(loglikelihoods)} log-likelihoods for {len(mc1_labels)} + {len(mc2_labels)} choices"
        )
    mc1_ll = list(loglikelihoods[: len(mc1_labels)])
    mc2_ll = list(loglikelihoods[len(mc1_labels) :])
    best = max(range(len(mc1_ll)), key=mc1_ll.__getitem__)
    top = max(mc2_ll)  # shift before exp: the ratio is unchanged and nothing underflows to 0/0
    mass = [math.exp(ll - top) for ll in mc2_ll]
    true_mass = sum(m for m, label in zip(mass, mc2_labels, strict=True) if label)
    return {"mc1": float(mc1_labels[best] == 1), "mc2": true_mass / sum(mass)}


def truthfulqa_results(doc: Mapping[str, Any], results: Sequence[tuple[float, bool]]) -> dict[str, float]:
    """lm-eval's ``process_results`` hook: ``results`` holds one (log-likelihood, is_greedy) per choice."""
    return truthfulqa_scores(doc, [ll for ll, _ in results])


def _check_choices(choices: list[str], where: str) -> None:
    for i, choice in enumerate(choices):
        if not choice:
            # acc_norm divides by the continuation's length: an empty one cannot be scored.
            raise _fail(where, f"choice {i} is empty after cleaning")


DOC_FUNCTIONS: dict[str, Callable[[Mapping[str, Any], str], Doc]] = {
    "arc": arc_doc,
    "hellaswag": hellaswag_doc,
    "mmlu": mmlu_doc,
    "truthfulqa": truthfulqa_doc,
}


# --------------------------------------------------------------------------------------------------
# Errors users read

TRACEBACK_ENV = "OKAPI_HF_TRACEBACK"


def install_excepthook() -> None:
    """Make an uncaught :class:`OkapiError` print as one message instead of a 20-frame traceback.

    The task ``utils.py`` modules call this when lm-eval imports them, so a bad data file under the
    plain ``lm_eval`` CLI ends with ``okapi-hf error: <file>, row N: ...``. Only uncaught OkapiErrors
    are affected (everything else goes to the previous hook); ``OKAPI_HF_TRACEBACK=1`` restores the
    full traceback. Calling it twice installs it once.
    """
    previous = sys.excepthook
    if getattr(previous, "okapi_hf", False):
        return

    def hook(exc_type, exc, tb):
        if issubclass(exc_type, OkapiError) and not os.environ.get(TRACEBACK_ENV):
            print(f"okapi-hf error: {exc}\n(set {TRACEBACK_ENV}=1 to see the traceback)", file=sys.stderr)
        else:
            previous(exc_type, exc, tb)

    hook.okapi_hf = True  # type: ignore[attr-defined]
    sys.excepthook = hook


# --------------------------------------------------------------------------------------------------
# Data sources


def eval_dir() -> Path | None:
    """The folder ``OKAPI_HF_EVAL_DIR`` names (the original release layout), or None for the Hub."""
    value = os.environ.get(EVAL_DIR_ENV, "").strip()
    return Path(value).expanduser() if value else None


def release_path(bench: str, lang: str, split: str, root: str | Path) -> Path:
    """Where the original release keeps one split: ``<root>/m_arc/vi_test.json`` and so on."""
    splits = RELEASE_SPLITS[bench]
    if split not in splits:
        raise DataError(
            f"okapi_{bench} has no split {split!r}; the splits are: {', '.join(splits)} "
            f"(read from {RELEASE_FOLDERS[bench]}/{{lang}}_{{{','.join(splits.values())}}}.json)"
        )
    return Path(root) / RELEASE_FOLDERS[bench] / f"{lang}_{splits[split]}.json"


def read_release_file(path: Path) -> list[tuple[int, Any]]:
    """A JSON array (as released) or JSON Lines file as (row number, value) pairs, row numbers from 0.

    Row numbers count from 0 so that ``row 17`` is ``json.load(f)[17]``; parsing and its errors
    are the data stage's (:func:`okapi_hf.jsonfiles.read_records`).
    """
    return [(number - 1, value) for number, value in read_records(path)]


# The columns each benchmark keeps, so that every source gives the same schema.
_COLUMNS: dict[str, tuple[str, ...]] = {
    "arc": ("id", "instruction", "option_a", "option_b", "option_c", "option_d", "option_e", "answer"),
    "hellaswag": (
        "ind",
        "activity_label",
        "ctx_a",
        "ctx_b",
        "ctx",
        "endings",
        "source_id",
        "split",
        "split_type",
        "label",
    ),
    "mmlu": ("id", "instruction", "option_a", "option_b", "option_c", "option_d", "answer"),
    "truthfulqa": (
        "question",
        "mc1_targets_choices",
        "mc1_targets_labels",
        "mc2_targets_choices",
        "mc2_targets_labels",
    ),
}
_LIST_COLUMNS = {"endings", "mc1_targets_choices", "mc2_targets_choices"}
_LABEL_COLUMNS = {"mc1_targets_labels", "mc2_targets_labels"}


def _canonical(bench: str, row: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in _COLUMNS[bench]:
        value = row.get(key)
        if key in _LIST_COLUMNS:
            out[key] = list(value)
        elif key in _LABEL_COLUMNS:
            out[key] = [int(v) for v in value]
        elif key == "label" or key == "ind":
            out[key] = None if value is None else str(value)
        else:
            out[key] = None if value is None else str(value) if not isinstance(value, str) else value
    return out


def checked_rows(bench: str, records: Iterable[tuple[int, Any]], source: str) -> list[dict[str, Any]]:
    """Check every row with the benchmark's doc function; return them in one fixed schema."""
    to_doc = DOC_FUNCTIONS[bench]
    rows = []
    for i, row in records:
        to_doc(row, f"{source}, row {i}")
        rows.append(_canonical(bench, row))
    if not rows:
        raise DataError(f"{source}: no rows")
    return rows


def _to_dataset(bench: str, rows: list[dict[str, Any]]) -> datasets.Dataset:
    import datasets

    columns = {key: [row[key] for row in rows] for key in _COLUMNS[bench]}
    features = {key: datasets.Value("string") for key in _COLUMNS[bench]}
    for key in _LIST_COLUMNS.intersection(_COLUMNS[bench]):
        features[key] = datasets.List(datasets.Value("string"))
    for key in _LABEL_COLUMNS.intersection(_COLUMNS[bench]):
        features[key] = datasets.List(datasets.Value("int64"))
    return datasets.Dataset.from_dict(columns, features=datasets.Features(features))


def _lazy_dict_class():
    import datasets

    class LazySplits(datasets.DatasetDict):
        """A DatasetDict that reads a split the first time lm-eval asks for it.

        A task only touches the splits its YAML names (ARC: train and test), so a missing file for
        a split nobody uses is not an error, and one that is used fails with its path.
        """

        def __init__(self, load_split: Callable[[str], datasets.Dataset], description: str) -> None:
            super().__init__()
            self._load_split = load_split
            self._description = description

        def __missing__(self, split: str) -> datasets.Dataset:
            dataset = self._load_split(split)
            self[split] = dataset
            return dataset

        def __repr__(self) -> str:
            return f"LazySplits({self._description}, loaded: {', '.join(self) or 'none'})"

    return LazySplits


def check_language(bench: str, lang: str) -> str:
    """The registry code for ``lang`` if Okapi released ``bench`` in it; UnknownLanguageError if not."""
    code = get_language(lang).code
    available = task_languages(bench)
    if code not in available:
        raise UnknownLanguageError(
            f"Okapi released no {bench} data for {code!r}; languages with data: {', '.join(available)}"
        )
    return code


def load_benchmark(bench: str, lang: str, root: str | Path | None = None) -> datasets.DatasetDict:
    """One language of one benchmark, split by split on demand, from ``root`` or the Hub.

    ``root`` defaults to ``$OKAPI_HF_EVAL_DIR``; without either, the public Hub copy is used
    (``alexandrainst/m_arc`` etc., config = language). Splits carry the names the task YAML uses:
    ``train``, ``val``, ``test`` (MMLU's ``train`` is the release's ``dev``).
    """
    if bench not in HUB_DATASETS:
        raise DataError(f"unknown benchmark {bench!r}; expected one of: {', '.join(HUB_DATASETS)}")
    code = check_language(bench, lang)
    root = Path(root) if root is not None else eval_dir()
    lazy = _lazy_dict_class()
    if root is not None:
        return lazy(lambda split: _load_release_split(bench, code, split, root), f"{root}, {bench}, {code}")
    hub: dict[str, datasets.DatasetDict] = {}

    def load_hub_split(split: str) -> datasets.Dataset:
        if "all" not in hub:
            hub["all"] = _load_hub(bench, code)
        return _pick_hub_split(bench, code, hub["all"], split)

    return lazy(load_hub_split, f"{HUB_DATASETS[bench]}, {code}")


def _load_release_split(bench: str, lang: str, split: str, root: Path) -> datasets.Dataset:
    path = release_path(bench, lang, split, root)
    if not path.is_file():
        hint = ""
        if bench == "mmlu" and split == "test":
            hint = (
                f" If your copy has no MMLU test files, score the val split with task okapi_mmlu_val_{lang} "
                "(group okapi_mmlu_val)."
            )
        if not Path(root).is_dir():
            where = f"{EVAL_DIR_ENV}={root} is not a folder"
        else:
            where = f"{EVAL_DIR_ENV}={root} has no such file"
        raise DataError(
            f"missing data file {path} (split {split!r} of okapi_{bench}_{lang}): {where}. "
            f"Set {EVAL_DIR_ENV} to the folder holding the original release's m_arc/, m_hellaswag/, m_mmlu/ "
            f"and m_truthfulqa/ folders, or unset it to read the Hub copy {HUB_DATASETS[bench]}.{hint}"
        )
    logger.info("okapi_%s_%s: reading split %r from %s", bench, lang, split, path)
    rows = checked_rows(bench, read_release_file(path), str(path))
    return _to_dataset(bench, rows)


def _load_hub(bench: str, lang: str) -> datasets.DatasetDict:
    import datasets

    repo = HUB_DATASETS[bench]
    try:
        return datasets.load_dataset(repo, lang)
    except Exception as e:  # offline, missing config (m_hellaswag has no zh), network errors
        raise DataError(
            f"could not load the Hub copy {repo} (config {lang!r}) for okapi_{bench}_{lang}: "
            f"{type(e).__name__}: {e}. To read the original release files offline instead, set "
            f"{EVAL_DIR_ENV} to the folder holding {RELEASE_FOLDERS[bench]}/{lang}_*.json."
        ) from None


def _pick_hub_split(bench: str, lang: str, dataset: datasets.DatasetDict, split: str) -> datasets.Dataset:
    repo = HUB_DATASETS[bench]
    for name in _HUB_SPLIT_ALIASES.get(split, (split,)):
        if name in dataset:
            source = f"{repo} (config {lang}, split {name})"
            records = enumerate(dataset[name])
            return _to_dataset(bench, checked_rows(bench, records, source))
    raise DataError(
        f"the Hub copy {repo} (config {lang!r}) has no split {split!r} (it has: {', '.join(dataset)}); "
        f"set {EVAL_DIR_ENV} to read the original release files instead"
    )


def load_for_lm_eval(bench: str, lang: str | None = None, **_: Any) -> datasets.DatasetDict:
    """lm-eval's ``custom_dataset`` hook: it passes the task's ``dataset_kwargs`` (``lang``) and metadata."""
    if lang is None:
        raise DataError(f"okapi_{bench} tasks need dataset_kwargs: {{lang: <code>}} in their YAML")
    return load_benchmark(bench, lang)


def process_docs(bench: str, dataset: datasets.Dataset) -> datasets.Dataset:
    """Add the protocol's ``query``, ``choices`` and ``gold`` columns to checked rows."""
    import datasets

    to_doc = DOC_FUNCTIONS[bench]
    rows = []
    for i, row in enumerate(dataset.to_list()):
        doc = to_doc(row, f"okapi_{bench}, row {i}")
        rows.append({**row, "query": doc.query, "choices": doc.choices, "gold": doc.gold})
    features = dict(dataset.features)
    features["query"] = datasets.Value("string")
    features["choices"] = datasets.List(datasets.Value("string"))
    features["gold"] = datasets.Value("int64")
    return datasets.Dataset.from_list(rows, features=datasets.Features(features))
