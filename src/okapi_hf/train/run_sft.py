"""``okapi-hf train sft``: supervised fine-tuning on one language's instructions (or a mixture).

Reads the ``<lang>`` (sft) configs of a built dataset, starts from ``--model`` (a base model: SFT is the
first stage, so there is no earlier stage to default to) and writes a causal LM that loads with
``AutoModelForCausalLM.from_pretrained``, its tokenizer, ``run_config.yaml``, ``trainer_state.json``,
``sft_data_report.json`` and a model card to ``runs/<run>/sft``, where ``okapi-hf train rm`` looks for it.

With ``curriculum_datasets`` (the ``taco`` recipe) the general rows are one phase and each listed
dataset another, trained in that order.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datasets import Dataset, concatenate_datasets
from transformers import AutoModelForCausalLM
from trl import ModelConfig

from okapi_hf.errors import DataError, OkapiError
from okapi_hf.languages import get_language
from okapi_hf.train.recipes import (
    RunArguments,
    check_model_path,
    head,
    load_splits,
    training_stage,
)
from okapi_hf.train.sft import (
    PHASE_COLUMN,
    OkapiSFTConfig,
    OkapiSFTTrainer,
    mix_languages,
    save_data_reports,
)
from okapi_hf.train.stage import Stage, eval_metrics, stage_main

logger = logging.getLogger(__name__)

CARD_HYPERPARAMETERS = (
    "prompt_format",
    "loss_on",
    "lang_weights",
    "curriculum_datasets",
    "packing",
    "packing_strategy",
    "max_length",
    "learning_rate",
    "lr_scheduler_type",
    "warmup_steps",
    "weight_decay",
    "adam_beta1",
    "adam_beta2",
    "num_train_epochs",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "seed",
)
CARD_METRICS = ("loss", "mean_token_accuracy")
SUMMARY_METRICS = CARD_METRICS  # on the terminal at the end of the stage
PROMPTS = {
    "okapi": 'prompt = format_prompt("...instruction...", "...input, or leave it out...")',
    "chat": 'prompt = render_chat(tokenizer, "...instruction...", "...input, or leave it out...")',
}
USAGE = """from transformers import AutoModelForCausalLM, AutoTokenizer
from okapi_hf import {helper}

tokenizer = AutoTokenizer.from_pretrained("{path}")
model = AutoModelForCausalLM.from_pretrained("{path}")
{prompt}
inputs = tokenizer(prompt, return_tensors="pt"{special})
output = model.generate(**inputs, max_new_tokens=256, do_sample=True, top_p=0.75, top_k=40)
print(tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True).strip())"""


@training_stage
def train_sft(run_args: RunArguments, config: OkapiSFTConfig, model_args: ModelConfig) -> Path:
    """The whole stage from Python: data, mixture, model, training, evaluation, saving, card."""
    if not model_args.model_name_or_path:
        raise OkapiError(
            "no base model to fine-tune: pass --model (a Hub id such as bigscience/bloom-7b1, or a folder), "
            "or set model_name_or_path in the recipe"
        )
    model = check_model_path(model_args.model_name_or_path)
    stage = Stage.start("sft", run_args, config, model_args, model)

    train, evaluation, data_reports = load_training_data(run_args, stage.langs, config)
    trainer = stage.trainer(
        OkapiSFTTrainer, AutoModelForCausalLM, train_dataset=train, eval_dataset=evaluation
    )
    reports = {**data_reports, **trainer.data_reports}
    card = functools.partial(_write_card, reports=reports)
    return stage.finish(trainer, SUMMARY_METRICS, card, lambda: save_data_reports(stage.out, reports))


main = stage_main("sft", OkapiSFTConfig, train_sft)


@dataclass
class PhaseReport:
    """One phase of a curriculum: where its rows came from, and those left out for validation."""

    phase: int
    source: str
    rows: int
    held_out: int = 0  # rows made from a row of the general validation split

    def summary(self) -> str:
        text = f"phase {self.phase} ({self.source}): {self.rows} training rows"
        if self.held_out:
            text += f", left out {self.held_out} made from a row of the validation split"
        return text


def load_training_data(
    run_args: RunArguments, langs: list[str], config: OkapiSFTConfig
) -> tuple[Dataset, Dataset | None, dict[str, Any]]:
    """The training rows (mixed, cut to ``max_train_samples``), the validation rows and their reports.

    With ``curriculum_datasets`` the general rows are phase 0 and each dataset the next phase: each is
    mixed and cut on its own and its rows get a ``phase`` column, which the trainer's sampler follows.
    A later phase's row made from a general validation row (same language and source row number, the
    last part of its id) is left out and counted, so validation stays unseen; validation covers every
    phase that has a split.
    """
    train, evaluation = load_splits(run_args, langs, "sft", config)
    if not config.curriculum_datasets:
        # mix before taking the first N rows: the mixture comes back shuffled, so N rows keep its shares
        train, mixture = mix_languages(train, langs, config.lang_weights, config.seed)
        return head(train, run_args.max_train_samples), evaluation, {"mixture": mixture}

    phases = [(run_args.dataset_path or "okapi_hf", train, evaluation)]
    for number, source in enumerate(config.curriculum_datasets, start=1):
        try:
            phases.append((source, *_load_phase(source, run_args, langs)))
        except OkapiError as e:
            raise type(e)(f"curriculum_datasets[{number - 1}] {source!r}: {e}") from None
    held_out = set(_source_rows(evaluation)) if evaluation is not None else set()
    parts, validations, reports = [], [], {}
    for number, (source, rows, validation) in enumerate(phases):
        left_out = 0
        if number and held_out:
            keep = [i for i, key in enumerate(_source_rows(rows)) if key not in held_out]
            left_out, rows = len(rows) - len(keep), rows.select(keep)
        rows, mixture = mix_languages(rows, langs, config.lang_weights, config.seed)
        rows = head(rows, run_args.max_train_samples)
        reports["mixture" if number == 0 else f"mixture (phase {number})"] = mixture
        reports[f"phase {number}"] = report = PhaseReport(number, source, len(rows), left_out)
        logger.info(report.summary())
        parts.append(rows.add_column(PHASE_COLUMN, [number] * len(rows)))
        if validation is not None:
            validations.append(validation)
    return concatenate_datasets(parts), concatenate_datasets(validations) if validations else None, reports


def _source_rows(rows: Dataset) -> list[tuple[str, str]]:
    """(language, source row number) of each row: the number is the last ``-``-separated part of its id."""
    return [
        (lang, str(row_id).rsplit("-", 1)[-1]) for lang, row_id in zip(rows["lang"], rows["id"], strict=True)
    ]


def _load_phase(source: str, run_args: RunArguments, langs: list[str]) -> tuple[Dataset, Dataset | None]:
    """A curriculum dataset: a JSON/JSONL file of sft rows (``{lang}`` per language), else a built one."""
    if source.replace("{lang}", "x").endswith((".json", ".jsonl")):
        return _read_rows_file(source, langs), None
    return load_splits(dataclasses.replace(run_args, dataset_path=source), langs, "sft")


def _read_rows_file(pattern: str, langs: list[str]) -> Dataset:
    """Sft rows of JSON/JSONL files as `okapi-hf data taco` writes them; ids kept, rows checked."""
    from okapi_hf.create.runner import read_rows
    from okapi_hf.data.schema import get_subset

    files = (
        [(pattern.replace("{lang}", lang), lang) for lang in langs]
        if "{lang}" in pattern
        else [(pattern, None)]
    )
    rows = []
    for path, lang in files:
        for row in read_rows(path, id_prefix=lang):
            where = f"{path}, row {row['id']}"
            row_lang = row.get("lang") or lang or (langs[0] if len(langs) == 1 else None)
            if row_lang is None:
                raise DataError(f"{where}: no `lang` field; give each row one, or put {{lang}} in the path")
            code = get_language(str(row_lang)).code
            if code not in ([lang] if lang else langs):
                raise DataError(f"{where}: lang {code}, expected {lang or ', '.join(langs)}")
            for name in ("instruction", "output"):
                if not isinstance(row.get(name), str) or not row[name].strip():
                    raise DataError(f"{where}: field {name!r} must be non-empty text")
            if not isinstance(row.get("input") or "", str):
                raise DataError(f"{where}: field 'input' must be text")
            rows.append(
                {
                    "id": row["id"],
                    "lang": code,
                    **{k: row.get(k) or "" for k in ("instruction", "input", "output")},
                }
            )
    if not rows:
        raise DataError(f"{pattern}: no rows")
    return Dataset.from_list(rows, features=get_subset("sft").features)


def _write_card(stage: Stage, trainer: OkapiSFTTrainer, metrics: dict[str, float], reports: dict) -> None:
    config = stage.config
    loss = "the response tokens only" if config.loss_on == "response" else "prompt and response, as Okapi did"
    template = (
        "Okapi's prompt template" if config.prompt_format == "okapi" else "the tokenizer's chat template"
    )
    chat = config.prompt_format == "chat"
    usage = USAGE.format(
        path=stage.out,
        helper="render_chat" if chat else "format_prompt",
        prompt=PROMPTS[config.prompt_format],
        special=", add_special_tokens=False" if chat else "",  # the chat template already adds them
    )
    description = (
        f"An instruction-following model fine-tuned on Okapi's translated instructions with {template}; "
        f"the loss covered {loss}. Prompt it the same way (see below); the answer is the text it "
        "generates after the prompt."
    )
    stage.write_card(
        trainer,
        CARD_HYPERPARAMETERS,
        eval_metrics(metrics, CARD_METRICS),
        description,
        usage,
        reports=reports,
        stage="supervised fine-tuning (okapi-hf `OkapiSFTTrainer`, built on trl's `SFTTrainer`)",
        data=stage.data_line() + "".join(f", then `{source}`" for source in config.curriculum_datasets or []),
    )
