"""``okapi-hf train rm``: train a K-wise reward model on one language's rankings (or a mixture).

Reads the ``<lang>-ranking`` configs of a built dataset, starts from ``--model`` (else the SFT stage's
output ``runs/<run>/sft``), writes a sequence-classification model that loads with
``AutoModelForSequenceClassification.from_pretrained``, its tokenizer, ``run_config.yaml``,
``ranking_data_report.json`` and a model card to ``runs/<run>/rm``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from transformers import AutoModelForSequenceClassification
from trl import ModelConfig, get_peft_config, get_quantization_config

from okapi_hf.cards import render_model_card, stage_history
from okapi_hf.fsutil import atomic_write_text
from okapi_hf.languages import resolve_langs
from okapi_hf.train.recipes import (
    RunArguments,
    check_recipe_fits,
    head,
    load_splits,
    locks_output,
    model_init_kwargs,
    output_folder,
    parse_stage_args,
    resolve_resume,
    save_trained,
    start_model,
    trainer_model,
    write_run_config,
)
from okapi_hf.train.reward import RankedRewardConfig, RankedRewardTrainer

logger = logging.getLogger(__name__)

CARD_HYPERPARAMETERS = (
    "loss_type",
    "margin",
    "num_unfrozen_layers",
    "learning_rate",
    "lr_scheduler_type",
    "warmup_steps",
    "weight_decay",
    "num_train_epochs",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "max_length",
    "seed",
)
CARD_METRICS = ("loss", "pairwise_accuracy", "top1_accuracy", "exact_ranking_accuracy", "kendall_tau")
USAGE = """import torch
from transformers import AutoModelForSequenceClassification
from okapi_hf import format_prompt
from okapi_hf.models import load_model, load_tokenizer  # a LoRA adapter (chain) is merged on loading

tokenizer = load_tokenizer("{path}")
model = load_model("{path}", AutoModelForSequenceClassification, num_labels=1)
text = format_prompt("...instruction...") + "...response..." + tokenizer.eos_token
with torch.no_grad():
    reward = model(**tokenizer(text, return_tensors="pt")).logits[0, 0].item()"""


def main(argv: list[str], *, recipe: str = "okapi", **flags: str | None) -> Path:
    """Parse the recipe, overrides and flags, then train; returns the output folder."""
    run_args, config, model_args = parse_stage_args("rm", RankedRewardConfig, recipe, argv, **flags)
    return train_reward_model(run_args, config, model_args)


@locks_output
def train_reward_model(run_args: RunArguments, config: RankedRewardConfig, model_args: ModelConfig) -> Path:
    """The whole stage from Python: data, model, training, evaluation, saving, card."""
    out = output_folder(run_args, config, "rm")
    model = start_model(model_args, run_args)
    langs = resolve_langs(run_args.lang)

    train, evaluation = load_splits(run_args, langs, "ranking", config)
    train = head(train, run_args.max_train_samples)

    model_args.lora_task_type = "SEQ_CLS"  # LoRA must keep the fresh reward head trainable
    if model_args.use_peft and config.num_unfrozen_layers is not None:
        logger.info("LoRA chooses what trains: ignoring num_unfrozen_layers=%d", config.num_unfrozen_layers)
        config.num_unfrozen_layers = None
    quantization = get_quantization_config(model_args)
    config.model_init_kwargs = model_init_kwargs(model_args, config.model_init_kwargs)
    check_recipe_fits(run_args, model)  # from the weight files' headers, before anything loads
    loaded, tokenizer = trainer_model(model, AutoModelForSequenceClassification, config, num_labels=1)
    trainer = RankedRewardTrainer(
        loaded,
        args=config,
        train_dataset=train,
        eval_dataset=evaluation,
        processing_class=tokenizer,
        peft_config=get_peft_config(model_args),
        quantization_config=quantization,
    )
    check_recipe_fits(run_args, trainer.model)
    if trainer.is_world_process_zero():
        write_run_config(out, run_args, config, model_args)
        trainer.save_data_reports(out)
    trainer.train(resume_from_checkpoint=resolve_resume(config.resume_from_checkpoint, out))
    metrics = trainer.evaluate() if evaluation is not None else {}
    trainer.save_state()  # trainer_state.json: the metrics of every logging step and of the final evaluation

    save_trained(trainer, out, model_args.use_peft, base=model, merge=run_args.merge_lora)
    if trainer.is_world_process_zero():
        _write_card(out, model, langs, run_args, config, trainer, metrics)
    logger.info("reward model saved to %s", out)
    return out


def _write_card(out, model, langs, run_args, config, trainer, metrics) -> None:
    shown = {k: metrics[f"eval_{k}"] for k in CARD_METRICS if f"eval_{k}" in metrics}
    reports = trainer.data_reports
    card = render_model_card(
        title=f"Okapi reward model ({', '.join(langs)})",
        description=(
            "A reward model that scores a response to an instruction with one scalar, trained on K-wise "
            f"rankings (Okapi's 4 ranked responses per instruction) with the `{config.loss_type}` loss. "
            "Higher means better; use it for RLHF or best-of-n sampling."
        ),
        stage="reward model (okapi-hf `RankedRewardTrainer`)",
        init_from=str(model),
        langs=langs,
        data=f"`{run_args.dataset_path or 'okapi_hf'}`, configs "
        + ", ".join(f"`{lang}-ranking`" for lang in langs),
        usage=USAGE.format(path=out),
        stages=stage_history(out),
        hyperparameters={
            k: getattr(getattr(config, k), "value", getattr(config, k)) for k in CARD_HYPERPARAMETERS
        },
        metrics=shown,
        data_report="\n".join(f"- {r.summary()}" for r in reports.values()),
        model_dir=out,
        tags=["reward-model", "trl", "rlhf"],
        pipeline_tag="text-classification",
    )
    atomic_write_text(Path(out) / "README.md", card)
