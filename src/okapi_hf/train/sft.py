"""Supervised fine-tuning on Okapi's instruction data: `OkapiSFTConfig` and `OkapiSFTTrainer`.

trl's `SFTTrainer` already does the work of Okapi's SFT stage (tokenize, mask, pack, train). This module
adds what Okapi's data and recipe need around it:

- rows (instruction, input, output, lang, id) become trl prompt-completion rows, rendered with Okapi's
  template or with the tokenizer's chat template; every response ends with EOS, as in Okapi;
- the loss covers the response only (the default) or the whole sequence, as Okapi trained it;
- a multilingual mixture can be resampled to per-language shares (`mix_languages`);
- rows that cannot teach anything (an empty output, a prompt that fills ``max_length``) are counted,
  reported and left out, never dropped silently;
- a curriculum (TaCo's: general instructions first, then chain-of-thought rows) keeps its phases in
  order: rows carry a ``phase`` and `CurriculumSampler` shuffles within a phase, never across;
- trl's padding-free packing is refused for models whose forward takes no ``position_ids`` (BLOOM):
  there, packed sequences would attend to each other.
"""

from __future__ import annotations

import inspect
import json
import logging
import math
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from accelerate import PartialState
from datasets import Dataset
from transformers import MODEL_FOR_CAUSAL_LM_MAPPING, AutoConfig, PreTrainedTokenizerBase
from trl import SFTConfig, SFTTrainer
from trl.data_utils import common_prefix_length

from okapi_hf.errors import ConfigError, DataError
from okapi_hf.fsutil import atomic_write_text
from okapi_hf.prompts import format_prompt, to_messages
from okapi_hf.train.recipes import choice_field

logger = logging.getLogger(__name__)

PROMPT_FORMATS = ("okapi", "chat")
LOSS_ON = ("response", "full")
PADDING_FREE_STRATEGIES = ("bfd", "bfd_split")  # the packing strategies trl runs padding-free
PHASE_COLUMN = "phase"  # curriculum phase of a training row: 0 first, then 1, ...
CURRICULUM_SAMPLING = ("random", "sequential")  # within a phase: shuffled, or in the order loaded


@dataclass
class OkapiSFTConfig(SFTConfig):
    """`trl.SFTConfig` plus Okapi's prompt format, the loss choice and per-language mixture weights."""

    prompt_format: str = choice_field(
        "okapi",
        PROMPT_FORMATS,
        "okapi: Okapi's Alpaca-style template (the same English template for every language). chat: the "
        "tokenizer's chat template, the instruction as the user turn and the output as the assistant turn.",
    )
    loss_on: str = choice_field(
        "response",
        LOSS_ON,
        "response: the loss covers the response (and its EOS) only. full: prompt and response, as Okapi "
        "trained; the model then also learns to write prompts.",
    )
    lang_weights: list[float] | None = field(
        default=None,
        metadata={
            "help": "Sampling weights of the languages of a mixture, one per language in --lang order (e.g. "
            "2,1). The training rows are resampled so each language's share matches the normalised weights, "
            "without repeating rows. Default: every row as loaded."
        },
    )
    curriculum_datasets: list[str] | None = field(
        default=None,
        metadata={
            "help": "A curriculum: datasets trained after the general data (dataset_path), one phase each, in "
            "this order, as TaCo trains its chain-of-thought rows after general instruction data. Each is a "
            "folder from `okapi-hf data build`, a Hub repo id, or a JSON/JSONL file of sft rows (`{lang}` in "
            "its path stands for each language). Every pass over a phase (num_train_epochs of them) comes "
            "before the next phase; rows are shuffled within a phase, never across. max_train_samples "
            "applies to each phase."
        },
    )

    def __post_init__(self):
        super().__post_init__()
        for name, allowed in (("prompt_format", PROMPT_FORMATS), ("loss_on", LOSS_ON)):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name} must be one of {list(allowed)}, got {getattr(self, name)!r}")
        if self.lang_weights is not None:
            weights = list(self.lang_weights)
            if not weights or any(not math.isfinite(w) or w < 0 for w in weights) or sum(weights) <= 0:
                raise ConfigError(
                    f"lang_weights must be finite numbers >= 0 with a positive sum, got {self.lang_weights}"
                )
        response_only = self.loss_on == "response"
        if self.completion_only_loss is None:
            self.completion_only_loss = response_only  # what trl reads
        elif self.completion_only_loss != response_only:
            raise ConfigError(
                f"loss_on={self.loss_on} contradicts completion_only_loss={self.completion_only_loss}; "
                "set loss_on only (response or full)"
            )
        if self.assistant_only_loss and not response_only:
            raise ConfigError("assistant_only_loss=true masks the prompt, which contradicts loss_on=full")
        if self.curriculum_datasets:
            check_curriculum(self)


def check_curriculum(args: SFTConfig) -> None:
    """Refuse settings that would mix the phases of a curriculum.

    Packing concatenates rows of any phase into one sequence (and trl drops the ``phase`` column to do
    it); the length-grouped samplers order rows by length across phases.
    """
    if args.packing:
        raise ConfigError(
            "a curriculum (curriculum_datasets, or a `phase` column) needs packing=false: packing puts rows "
            "of different phases into one sequence"
        )
    if args.train_sampling_strategy not in CURRICULUM_SAMPLING:
        raise ConfigError(
            f"a curriculum orders rows by phase, so train_sampling_strategy must be one of "
            f"{list(CURRICULUM_SAMPLING)} (within a phase), got {args.train_sampling_strategy!r}"
        )


# -- rows ------------------------------------------------------------------------------------------------


def to_prompt_completion(row: dict[str, Any], prompt_format: str = "okapi") -> dict[str, Any]:
    """One Okapi row as a trl prompt-completion row; ``lang`` and ``id`` come along.

    With ``okapi`` the completion is the bare output: trl appends the tokenizer's EOS to it, so the model
    learns to stop after the response as in Okapi. With ``chat`` the template closes the assistant turn.
    """
    instruction, okapi_input, output = row["instruction"], row.get("input") or "", row["output"]
    if prompt_format == "okapi":
        prompt, completion = format_prompt(instruction, okapi_input), output
    elif prompt_format == "chat":
        prompt, completion = to_messages(instruction, okapi_input), [{"role": "assistant", "content": output}]
    else:
        raise ConfigError(f"prompt_format must be one of {list(PROMPT_FORMATS)}, got {prompt_format!r}")
    kept = {k: row[k] for k in ("lang", "id", PHASE_COLUMN) if k in row}
    return {"prompt": prompt, "completion": completion, **kept}


@dataclass
class SFTDataReport:
    """What preparing one dataset kept and left out, and why."""

    name: str
    rows_in: int = 0
    rows_kept: int = 0
    empty_output: int = 0  # left out: nothing to learn but an immediate EOS
    prompt_too_long: int = 0  # left out: the prompt alone fills max_length, no response token remains
    truncated: int = (
        0  # kept, longer than max_length: cut (packing_strategy=bfd_split moves the rest to another pack)
    )
    max_length: int | None = None
    rows_per_lang: dict[str, int] = field(default_factory=dict)  # kept rows
    examples: dict[str, list[str]] = field(default_factory=dict)  # reason -> a few row ids

    def summary(self) -> str:
        parts = [f"{self.name}: kept {self.rows_kept}/{self.rows_in} rows"]
        if len(self.rows_per_lang) > 1:
            parts[0] += " (" + ", ".join(f"{k} {v}" for k, v in self.rows_per_lang.items()) + ")"
        reasons = (
            ("empty_output", "left out {n} rows with an empty output"),
            ("prompt_too_long", "left out {n} rows whose prompt fills max_length={m}"),
            ("truncated", "cut {n} responses at max_length={m}"),
        )
        for reason, text in reasons:
            if n := getattr(self, reason):
                ids = ", ".join(self.examples.get(reason, []))
                parts.append(text.format(n=n, m=self.max_length) + f" (e.g. rows {ids})")
        return "; ".join(parts)


def prepare_sft_dataset(
    dataset: Dataset, prompt_format: str = "okapi", name: str = "train", *, num_proc: int | None = None
) -> tuple[Dataset, SFTDataReport]:
    """Okapi sft rows to prompt-completion rows, leaving out (and counting) rows with an empty output.

    Rows that already have ``prompt`` and ``completion`` pass through unchanged.
    """
    columns = dataset.column_names
    report = SFTDataReport(name=name, rows_in=len(dataset))
    if {"prompt", "completion"} <= set(columns):
        report.rows_kept = len(dataset)
        report.rows_per_lang = dict(Counter(dataset["lang"])) if "lang" in columns else {}
        return dataset, report
    missing = [c for c in ("instruction", "output") if c not in columns]
    if missing:
        raise DataError(
            f"{name} dataset: expected Okapi sft rows (instruction, input, output) or prompt/completion rows; "
            f"missing {', '.join(missing)} in columns {columns}"
        )
    row_ids = [str(i) for i in dataset["id"]] if "id" in columns else [str(i) for i in range(len(dataset))]
    keep = []
    for index, output in enumerate(dataset["output"]):
        if output is not None and not isinstance(output, str):
            raise DataError(
                f"{name} dataset, row {row_ids[index]}: output is {type(output).__name__}, not text"
            )
        if output is None or not output.strip():
            report.empty_output += 1
            report.examples.setdefault("empty_output", [])
            if len(report.examples["empty_output"]) < 5:
                report.examples["empty_output"].append(row_ids[index])
        else:
            keep.append(index)
    if not keep:
        raise DataError(f"{name} dataset: all {len(dataset)} rows have an empty output")
    if len(keep) < len(dataset):
        dataset = dataset.select(keep)
    with PartialState().main_process_first():  # one process fills the datasets cache, the others read it
        dataset = dataset.map(
            to_prompt_completion,
            fn_kwargs={"prompt_format": prompt_format},
            remove_columns=columns,
            num_proc=num_proc,
            desc=f"Formatting {name} dataset ({prompt_format})",
        )
    report.rows_kept = len(dataset)
    report.rows_per_lang = dict(Counter(dataset["lang"])) if "lang" in dataset.column_names else {}
    return dataset, report


# -- mixtures --------------------------------------------------------------------------------------------


@dataclass
class MixReport:
    """Rows per language before and after resampling a mixture to its weights."""

    weights: dict[str, float]  # normalised; empty when the mixture is taken as loaded
    rows_before: dict[str, int]
    rows_after: dict[str, int]

    def summary(self) -> str:
        total = sum(self.rows_after.values()) or 1
        shares = ", ".join(
            f"{lang} {self.rows_before[lang]} -> {n} ({100 * n / total:.0f}%)"
            for lang, n in self.rows_after.items()
        )
        how = "resampled to lang_weights" if self.weights else "as loaded"
        return f"mixture {how}: {shares}"


def mix_languages(
    dataset: Dataset, langs: list[str], weights: list[float] | None = None, seed: int = 0
) -> tuple[Dataset, MixReport]:
    """Resample a dataset with a ``lang`` column so each language's share of rows matches ``weights``.

    The rule: keep the largest mixture that has exactly the normalised shares without repeating a row.
    The language with the fewest rows per unit of weight keeps all its rows; the others get a seeded
    random subset. Repeating rows (upsampling) would make the model memorise the small languages' answers,
    and 3 epochs already show every row 3 times; to see more of a language, give it more data.

    ``weights`` are given in ``langs`` order; a weight of 0 leaves that language out. Without weights every
    row is kept as loaded. The rows come back in a seeded random order, so ``max_train_samples`` (the first
    N rows) keeps about the same shares.
    """
    if "lang" not in dataset.column_names:
        raise DataError(
            f"cannot mix languages: the dataset has no `lang` column (columns {dataset.column_names})"
        )
    langs = list(langs)
    column = dataset["lang"]
    before = {lang: 0 for lang in langs} | dict(Counter(column))
    unexpected = sorted(set(before) - set(langs))
    if unexpected:
        raise DataError(
            f"the dataset has rows of {', '.join(unexpected)}, which are not in {', '.join(langs)}"
        )
    if weights is None:
        return dataset, MixReport(weights={}, rows_before=before, rows_after=dict(before))
    if len(weights) != len(langs):
        raise ConfigError(
            f"lang_weights has {len(weights)} values for {len(langs)} languages ({', '.join(langs)}); "
            "give one weight per language, in --lang order"
        )
    total = sum(weights)
    shares = {lang: w / total for lang, w in zip(langs, weights, strict=True)}
    empty = [lang for lang, share in shares.items() if share > 0 and before[lang] == 0]
    if empty:
        raise DataError(f"lang_weights gives weight to {', '.join(empty)}, which has no training rows")
    scale = min(before[lang] / share for lang, share in shares.items() if share > 0)
    after = {lang: min(before[lang], math.floor(share * scale + 1e-9)) for lang, share in shares.items()}

    rng = np.random.default_rng(seed)
    by_lang: dict[str, list[int]] = {lang: [] for lang in langs}
    for index, lang in enumerate(column):
        by_lang[lang].append(index)
    chosen = [
        int(i) for lang, n in after.items() if n for i in rng.choice(by_lang[lang], size=n, replace=False)
    ]
    rng.shuffle(chosen)
    report = MixReport(weights=shares, rows_before=before, rows_after=after)
    logger.info(report.summary())
    return dataset.select(chosen), report


# -- curriculum ------------------------------------------------------------------------------------------


class CurriculumSampler(torch.utils.data.Sampler[int]):
    """Training row indices phase by phase: every pass over phase 0, then every pass over phase 1, ...

    The whole run is one sequence of ``passes`` shuffled passes over each phase's rows, phases in
    order. The Trainer asks for one epoch at a time (``set_epoch``) and epoch ``e`` gets the ``e``-th
    stretch of ``len(phases)`` indices, so an epoch keeps its usual length, the learning-rate schedule
    spans the whole curriculum, and no row of a later phase comes before the last pass over an earlier
    one. Epochs beyond ``passes`` (a ``max_steps`` that overshoots) repeat the last phase. The order
    depends only on ``seed`` and the epoch, so every process and a resumed run see the same sequence.
    """

    def __init__(self, phases: Sequence[int], passes: int, *, seed: int = 0, shuffle: bool = True):
        if not len(phases):
            raise DataError("a curriculum needs at least one training row")
        if passes < 1:
            raise ConfigError(f"a curriculum needs at least one pass over its phases, got {passes}")
        self.phases = np.asarray(list(phases), dtype=np.int64)
        self.passes, self.seed, self.shuffle, self.epoch = passes, seed, shuffle, 0
        self.by_phase = {int(p): np.flatnonzero(self.phases == p) for p in np.unique(self.phases)}
        self._sequence: np.ndarray | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.phases)

    def _pass(self, rng: np.random.Generator, indices: np.ndarray) -> np.ndarray:
        return rng.permutation(indices) if self.shuffle else indices

    def sequence(self) -> np.ndarray:
        """The indices of all ``passes`` epochs, phase by phase."""
        if self._sequence is None:
            rng = np.random.default_rng(self.seed)
            self._sequence = np.concatenate(
                [self._pass(rng, rows) for rows in self.by_phase.values() for _ in range(self.passes)]
            )
        return self._sequence

    def __iter__(self) -> Iterator[int]:
        n, start = len(self), self.epoch * len(self)
        if start < len(self.sequence()):
            chunk = self.sequence()[start : start + n]
        else:  # past the planned passes: stay on the last phase
            rng = np.random.default_rng([self.seed, self.epoch])
            last = self.by_phase[max(self.by_phase)]
            chunk = np.concatenate([self._pass(rng, last) for _ in range(-(-n // len(last)))])[:n]
        return iter(chunk.tolist())


def save_data_reports(output_dir: str | Path, reports: dict[str, SFTDataReport | MixReport]) -> Path:
    """Write what data preparation and mixing kept and left out to ``sft_data_report.json``."""
    path = Path(output_dir) / "sft_data_report.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(
        path, json.dumps({k: asdict(v) for k, v in reports.items()}, indent=2, ensure_ascii=False)
    )
    return path


# -- packing ---------------------------------------------------------------------------------------------


def forward_takes_position_ids(
    model: Any, *, revision: str | None = None, trust_remote_code: bool = False
) -> bool:
    """Whether the causal LM's forward has a ``position_ids`` parameter; ``model`` is a name or a model.

    A name is resolved through its config alone, so nothing is loaded. A model class that swallows
    ``position_ids`` in ``**kwargs`` (BLOOM) counts as not taking them: it would ignore them.
    """
    if isinstance(model, str):
        config = AutoConfig.from_pretrained(model, revision=revision, trust_remote_code=trust_remote_code)
        if type(config) not in MODEL_FOR_CAUSAL_LM_MAPPING:
            return True  # remote code, or not a causal LM: nothing to inspect before loading, trl decides
        model_class = MODEL_FOR_CAUSAL_LM_MAPPING[type(config)]
    else:
        model_class = type(model.get_base_model() if hasattr(model, "get_base_model") else model)
    return "position_ids" in inspect.signature(model_class.forward).parameters


def check_packing(model: Any, args: SFTConfig) -> None:
    """Refuse padding-free batches for models that cannot tell the packed sequences apart.

    trl's ``bfd`` packing (and ``padding_free``) concatenates a batch into one row and marks where each
    sequence starts only through ``position_ids``. Llama builds a block-diagonal attention mask from them;
    BLOOM's ALiBi takes no position ids, so every token would attend to the sequences packed before it.
    """
    eval_packing = args.packing if args.eval_packing is None else args.eval_packing
    packs = (args.packing or eval_packing) and args.packing_strategy in PADDING_FREE_STRATEGIES
    if not (packs or args.padding_free):
        return
    kwargs = args.model_init_kwargs if isinstance(args.model_init_kwargs, dict) else {}
    if forward_takes_position_ids(
        model, revision=kwargs.get("revision"), trust_remote_code=args.trust_remote_code
    ):
        return
    name = model if isinstance(model, str) else model.config._name_or_path
    what = (
        "padding_free=true" if args.padding_free else f"packing with packing_strategy={args.packing_strategy}"
    )
    raise ConfigError(
        f"{what} is wrong for {name}: its forward takes no position_ids (BLOOM's ALiBi reads positions from "
        "the attention mask), so sequences packed into one row would attend to each other. Use packing=false "
        "and padding_free=false (with train_sampling_strategy=group_by_length to cut padding), or "
        "packing_strategy=wrapped if attention across examples is acceptable"
    )


# -- trainer ---------------------------------------------------------------------------------------------


class OkapiSFTTrainer(SFTTrainer):
    """A `trl.SFTTrainer` that takes Okapi sft rows and reports what it leaves out.

    Two overrides. ``__init__`` checks packing before trl loads the model or touches the data. Data
    preparation turns Okapi rows into prompt-completion rows and measures them before trl tokenizes them;
    it runs inside trl's ``__init__`` because it needs the tokenizer as trl sets it up (eos token, chat
    template), and it leaves out (and counts) rows whose prompt fills ``max_length``. Tokenizing, masking,
    packing, the loss and saving are trl's.
    """

    _tag_names: ClassVar[list[str]] = ["trl", "sft", "okapi-hf"]

    def __init__(self, model: Any, args: OkapiSFTConfig | None = None, **kwargs: Any):
        args = args or OkapiSFTConfig(output_dir="okapi-sft")
        if not isinstance(args, OkapiSFTConfig):
            raise TypeError(f"args must be an OkapiSFTConfig, got {type(args).__name__}")
        check_packing(model, args)
        train = kwargs.get("train_dataset")
        if PHASE_COLUMN in (getattr(train, "column_names", None) or []):
            check_curriculum(args)
        self.data_reports: dict[str, SFTDataReport] = {}
        super().__init__(model, args=args, **kwargs)

    def _get_train_sampler(self, train_dataset=None):
        """A `CurriculumSampler` when the training rows carry a ``phase``; the Trainer's sampler otherwise.

        The phases are read from ``self.train_dataset``: the dataset passed here has lost every column
        the model does not take.
        """
        columns = getattr(self.train_dataset, "column_names", None) or []
        if PHASE_COLUMN not in columns:
            return super()._get_train_sampler(train_dataset)
        phases = self.train_dataset[PHASE_COLUMN]
        args = self.args
        passes = math.ceil(args.num_train_epochs)
        if args.max_steps > 0:  # the Trainer counts epochs from max_steps then: cover the rows it will draw
            rows_per_step = args.train_batch_size * args.gradient_accumulation_steps * args.world_size
            passes = max(1, math.ceil(args.max_steps * rows_per_step / len(phases)))
        seed = args.data_seed if args.data_seed is not None else args.seed
        shuffle = args.train_sampling_strategy == "random"
        return CurriculumSampler(phases, passes, seed=seed, shuffle=shuffle)

    def _prepare_dataset(self, dataset, processing_class, args, packing, formatting_func, dataset_name):
        if not isinstance(dataset, Dataset) and "instruction" in (dataset.column_names or []):
            raise DataError(
                f"{dataset_name} dataset: Okapi rows must come as a map-style datasets.Dataset (rows left out "
                f"are counted), got {type(dataset).__name__}; or pass prompt/completion rows"
            )
        if isinstance(dataset, Dataset) and "input_ids" not in dataset.column_names:
            if len(dataset) == 0:
                raise DataError(f"{dataset_name} dataset has no rows")
            dataset, report = prepare_sft_dataset(
                dataset, args.prompt_format, dataset_name, num_proc=args.dataset_num_proc
            )
            template = self.chat_template or getattr(self._tokenizer, "chat_template", None)
            if isinstance(dataset[0]["prompt"], list) and not template:
                raise ConfigError(
                    f"prompt_format=chat needs a chat template and the tokenizer {self._tokenizer.name_or_path!r} "
                    "has none; set chat_template_path (a .jinja file or a tokenizer with one) or use "
                    "prompt_format=okapi"
                )
            if args.max_length is not None:
                dataset = self._measure(dataset, report, args)
            self.data_reports[dataset_name] = report
            changed = report.rows_kept < report.rows_in or report.truncated
            logger.log(logging.WARNING if changed else logging.INFO, report.summary())
        return super()._prepare_dataset(
            dataset, processing_class, args, packing, formatting_func, dataset_name
        )

    def _measure(self, dataset: Dataset, report: SFTDataReport, args: OkapiSFTConfig) -> Dataset:
        """Count the rows ``max_length`` cuts; leave out those with no response token left to learn."""
        lengths = _Lengths(self._tokenizer, self.chat_template)
        with PartialState().main_process_first():
            measured = dataset.map(
                lengths,
                batched=True,
                remove_columns=dataset.column_names,
                num_proc=args.dataset_num_proc,
                desc=f"Measuring {report.name} dataset",
            )
        prompt_lengths, total_lengths = measured["prompt_length"], measured["length"]
        row_ids = dataset["id"] if "id" in dataset.column_names else [str(i) for i in range(len(dataset))]
        m = report.max_length = args.max_length
        # a prompt that fills max_length leaves no response token to learn; with loss_on=full it still
        # trains on the prompt, so trl keeps such rows, and so do we
        useless = [self.completion_only_loss and p >= m for p in prompt_lengths]
        too_long = [i for i, flag in enumerate(useless) if flag]
        cut = [i for i, n in enumerate(total_lengths) if n > m and not useless[i]]
        report.prompt_too_long, report.truncated = len(too_long), len(cut)
        report.examples["prompt_too_long"] = [str(row_ids[i]) for i in too_long[:5]]
        report.examples["truncated"] = [str(row_ids[i]) for i in cut[:5]]
        if too_long:
            drop = set(too_long)
            dataset = dataset.select([i for i in range(len(dataset)) if i not in drop])
            report.rows_kept = len(dataset)
            if "lang" in dataset.column_names:
                report.rows_per_lang = dict(Counter(dataset["lang"]))
            if not len(dataset):
                raise DataError(
                    f"{report.name} dataset: every prompt fills max_length={m}: {report.summary()}"
                )
        return dataset


class _Lengths:
    """``Dataset.map`` function: token counts of the prompt and of prompt + completion, as trl tokenizes them."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, chat_template: str | None):
        self.tokenizer, self.chat_template = tokenizer, chat_template

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        prompts, completions = batch["prompt"], batch["completion"]
        if prompts and isinstance(prompts[0], list):  # conversational: the template ends the assistant turn
            kw = {"tokenize": True, "return_dict": True, "chat_template": self.chat_template}
            template = self.tokenizer.apply_chat_template
            prompt_ids = [template(p, add_generation_prompt=True, **kw)["input_ids"] for p in prompts]
            full_ids = [template(p + c, **kw)["input_ids"] for p, c in zip(prompts, completions, strict=True)]
        else:  # one batched call each, as trl appends EOS to a completion that lacks it
            eos = self.tokenizer.eos_token
            texts = [
                p + c + ("" if c.endswith(eos) else eos) for p, c in zip(prompts, completions, strict=True)
            ]
            prompt_ids, full_ids = self.tokenizer(prompts)["input_ids"], self.tokenizer(texts)["input_ids"]
        return {
            "prompt_length": [common_prefix_length(p, f) for p, f in zip(prompt_ids, full_ids, strict=True)],
            "length": [len(f) for f in full_ids],
        }
