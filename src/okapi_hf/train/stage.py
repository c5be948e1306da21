"""What every training stage does around its trainer, in one place: :class:`Stage`.

A stage module (``run_sft``, ``run_rm``, ``run_dpo``, ``run_rl``, ``rl``) says what is its own: data,
trainer class, card text. The steps they all take the same way are methods here, so a fix to loading,
resuming, saving, logging or the card reaches every stage at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datasets import Dataset
from transformers import AutoModelForSequenceClassification
from trl import ModelConfig, get_peft_config, get_quantization_config

from okapi_hf.fsutil import atomic_write_text
from okapi_hf.hub.cards import render_model_card, stage_history
from okapi_hf.languages import resolve_langs
from okapi_hf.train.recipes import (
    DEFAULT_RECIPES,
    STAGE_NAMES,
    RunArguments,
    check_recipe_fits,
    head,
    load_splits,
    model_init_kwargs,
    output_folder,
    parse_stage_args,
    resolve_resume,
    save_trained,
    start_model,
    trainer_model,
    write_run_config,
)
from okapi_hf.train.stage_log import current_log, quiet_progress, summary

logger = logging.getLogger(__name__)

# What every stage's card lists of its optimisation (trl's and transformers' names)
OPTIMIZER_HYPERPARAMETERS = (
    "learning_rate",
    "lr_scheduler_type",
    "warmup_steps",
    "weight_decay",
    "num_train_epochs",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
)


# Per stage: what its card calls the training, its Hub tags, its pipeline tag.
CARD_FACTS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "sft": ("supervised fine-tuning", ("sft", "trl", "instruction-tuning"), "text-generation"),
    "rm": ("reward model", ("reward-model", "trl", "rlhf"), "text-classification"),
    "rl": ("RLHF", ("rlhf", "trl"), "text-generation"),
    "dpo": ("listwise DPO", ("dpo", "trl", "alignment"), "text-generation"),
}


@dataclass
class Stage:
    """One run of a stage: its parsed arguments, start model, output folder and languages.

    Make it with :meth:`start` inside a :func:`~okapi_hf.train.recipes.training_stage` function, which
    then holds the folder's lock and log file until the stage returns.
    """

    name: str
    run_args: RunArguments
    config: Any
    model_args: ModelConfig
    model: str  # what the stage starts from: a folder or a Hub id
    out: Path
    langs: list[str]
    subset: str = "sft"  # the data configs read: <lang> (sft), <lang>-ranking, <lang>-rl

    @classmethod
    def start(
        cls, name: str, run_args: RunArguments, config: Any, model_args: ModelConfig, model: str | None = None
    ) -> Stage:
        """The output folder first, then ``model`` (default: ``--model``, else this run's SFT output)."""
        out = output_folder(run_args, config, name)
        model = model or start_model(model_args, run_args)
        return cls(name, run_args, config, model_args, model, out, resolve_langs(run_args.lang))

    def splits(self, subset: str) -> tuple[Dataset, Dataset | None]:
        """The first ``max_train_samples`` training rows of ``subset`` and its validation head."""
        self.subset = subset
        train, evaluation = load_splits(self.run_args, self.langs, subset, self.config)
        return head(train, self.run_args.max_train_samples), evaluation

    def trainer(
        self, trainer_class: type, auto_class: type, model_kwargs: dict[str, Any] | None = None, **kwargs: Any
    ) -> Any:
        """``trainer_class`` on the start model with trl's LoRA and quantization settings, refused when
        too big: counted from the weight files before anything loads, and again once the trainer has
        the model (a Hub id is only counted once downloaded)."""
        # LoRA must keep a fresh reward head trainable, and chooses what trains
        classifier = auto_class is AutoModelForSequenceClassification
        self.model_args.lora_task_type = "SEQ_CLS" if classifier else "CAUSAL_LM"
        if self.model_args.use_peft and getattr(self.config, "num_unfrozen_layers", None) is not None:
            logger.info(
                "LoRA chooses what trains: ignoring num_unfrozen_layers=%d", self.config.num_unfrozen_layers
            )
            self.config.num_unfrozen_layers = None
        self.config.model_init_kwargs = model_init_kwargs(self.model_args, self.config.model_init_kwargs)
        check_recipe_fits(self.run_args, self.model)
        loaded, tokenizer = trainer_model(self.model, auto_class, self.config, **(model_kwargs or {}))
        kwargs.setdefault("processing_class", tokenizer)
        trainer = trainer_class(
            loaded,
            args=self.config,
            peft_config=get_peft_config(self.model_args),
            quantization_config=get_quantization_config(self.model_args),
            **kwargs,
        )
        check_recipe_fits(self.run_args, trainer.model)
        return trainer

    def fit(
        self,
        trainer: Any,
        key_metrics: tuple[str, ...],
        write_reports: Callable[[], Any] | None = None,
        peft: bool | None = None,
    ) -> dict[str, float]:
        """Train (resuming if asked), evaluate, save; returns the evaluation metrics.

        Before training, the main process writes ``run_config.yaml`` and the stage's data reports; after,
        ``trainer_state.json`` (every logged step) and the weights (LoRA if ``peft``, by default
        ``use_peft``; see :func:`save_trained`), then prints the summary of ``key_metrics``.
        """
        log = current_log()
        quiet_progress(trainer, verbose=log is not None and log.verbose)
        out = self.out
        if trainer.is_world_process_zero():
            write_run_config(out, self.run_args, self.config, self.model_args)
            if write_reports is not None:
                write_reports()
        trainer.train(resume_from_checkpoint=resolve_resume(self.config.resume_from_checkpoint, out))
        metrics = trainer.evaluate() if trainer.eval_dataset is not None else {}
        trainer.save_state()  # trainer_state.json: the metrics of every logging step and of the final evaluation
        peft = self.model_args.use_peft if peft is None else peft
        save_trained(trainer, out, peft, base=self.model, merge=self.run_args.merge_lora)
        if trainer.is_world_process_zero():
            print(summary(log, self.name, trainer.state, metrics, key_metrics, out), flush=True)
        return metrics

    def finish(
        self,
        trainer: Any,
        key_metrics: tuple[str, ...],
        write_card: Callable[[Stage, Any, dict[str, float]], Any],
        write_reports: Callable[[], Any] | None = None,
        peft: bool | None = None,
    ) -> Path:
        """:meth:`fit`, then the card (``write_card(stage, trainer, metrics)``); returns the output folder."""
        metrics = self.fit(trainer, key_metrics, write_reports, peft)
        if trainer.is_world_process_zero():
            write_card(self, trainer, metrics)
        logger.info("%s saved to %s", STAGE_NAMES.get(self.name, self.name), self.out)
        return self.out

    def data_line(self) -> str:
        """The card's data line: the dataset and the configs the stage read."""
        suffix = "" if self.subset == "sft" else f"-{self.subset}"
        configs = ", ".join(f"`{lang}{suffix}`" for lang in self.langs)
        return f"`{self.run_args.dataset_path or 'okapi_hf'}`, configs {configs}"

    def write_card(
        self,
        trainer: Any,
        hyperparameters: tuple[str, ...],
        metrics: dict[str, float],
        description: str,
        usage: str,
        **card: Any,
    ) -> Path:
        """``README.md``: the stage's card, with its training history, the named config values, the
        ``metrics`` shown, ``description``, ``usage`` and the data reports (``reports``, default the
        trainer's ``data_reports``). Title, training line, tags and pipeline tag follow from the stage
        and the trainer (:data:`CARD_FACTS`); ``card`` overrides them, and its ``tags`` are added."""
        label, tags, pipeline_tag = CARD_FACTS[self.name]
        owner = "okapi-hf" if type(trainer).__module__.startswith("okapi_hf") else "trl"
        card.setdefault("title", f"Okapi {STAGE_NAMES[self.name]} ({', '.join(self.langs)})")
        card.setdefault("stage", f"{label} ({owner} `{type(trainer).__name__}`)")
        card.setdefault("pipeline_tag", pipeline_tag)
        card.setdefault("data", self.data_line())
        card["tags"] = [*tags, *card.get("tags", ())]
        reports = card.pop("reports", None) or getattr(trainer, "data_reports", None)
        if reports and "data_report" not in card:
            card["data_report"] = "\n".join(f"- {r.summary()}" for r in reports.values())
        values = {
            k: getattr(getattr(self.config, k), "value", getattr(self.config, k))  # enums by value
            for k in hyperparameters
            if hasattr(self.config, k)
        }
        text = render_model_card(
            init_from=str(self.model),
            langs=self.langs,
            stages=stage_history(self.out),
            hyperparameters=values,
            metrics=metrics,
            model_dir=self.out,
            description=description,
            usage=usage,
            **card,
        )
        return atomic_write_text(self.out / "README.md", text)


def stage_main(name: str, config_class: type, train: Callable[..., Path]) -> Callable[..., Path]:
    """A stage module's ``main``: parse ``name``'s recipe into ``config_class``, then ``train``."""

    def main(
        argv: list[str], *, recipe: str = DEFAULT_RECIPES[name], verbose: bool = False, **flags: str | None
    ) -> Path:
        """Parse the recipe, overrides and flags, then train; returns the output folder.

        ``verbose`` shows every logging step and INFO log on the terminal, not only in ``train.log``.
        """
        run_args, config, model_args = parse_stage_args(name, config_class, recipe, argv, **flags)
        return train(run_args, config, model_args, verbose=verbose)

    return main


def eval_metrics(metrics: dict[str, float], names: tuple[str, ...]) -> dict[str, float]:
    """The ``eval_<name>`` values of ``metrics`` a card shows, by their plain names."""
    return {k: metrics[f"eval_{k}"] for k in names if f"eval_{k}" in metrics}
