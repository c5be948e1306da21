"""``okapi-hf train dpo``: train the policy directly on one language's rankings (or a mixture), no RL.

An okapi-hf addition beside Okapi's reward model + PPO: listwise DPO reads the same ``<lang>-ranking``
configs as ``train rm``, starts from ``--model`` (else the SFT stage's output ``runs/<run>/sft``) and
writes a causal LM that loads with ``AutoModelForCausalLM.from_pretrained`` (LoRA merged), its
tokenizer, ``run_config.yaml``, ``trainer_state.json``, ``ranking_data_report.json`` and a model card to
``runs/<run>/dpo``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from transformers import AutoModelForCausalLM
from trl import ModelConfig, get_peft_config, get_quantization_config

from okapi_hf.cards import POLICY_USAGE, render_model_card, stage_history
from okapi_hf.fsutil import atomic_write_text
from okapi_hf.languages import resolve_langs
from okapi_hf.train.dpo import ListwiseDPOConfig, ListwiseDPOTrainer
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

logger = logging.getLogger(__name__)

CARD_HYPERPARAMETERS = (
    "loss_type",
    "beta",
    "learning_rate",
    "lr_scheduler_type",
    "warmup_steps",
    "weight_decay",
    "num_train_epochs",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "max_length",
    "max_prompt_length",
    "seed",
)
CARD_METRICS = ("loss", "pairwise_accuracy", "top1_accuracy", "exact_ranking_accuracy", "rewards/margins")


def main(argv: list[str], *, recipe: str = "okapi", **flags: str | None) -> Path:
    """Parse the recipe, overrides and flags, then train; returns the output folder."""
    run_args, config, model_args = parse_stage_args("dpo", ListwiseDPOConfig, recipe, argv, **flags)
    return train_dpo(run_args, config, model_args)


@locks_output
def train_dpo(run_args: RunArguments, config: ListwiseDPOConfig, model_args: ModelConfig) -> Path:
    """The whole stage from Python: data, policy and reference, training, evaluation, saving, card."""
    out = output_folder(run_args, config, "dpo")
    model = start_model(model_args, run_args)
    langs = resolve_langs(run_args.lang)

    train, evaluation = load_splits(run_args, langs, "ranking", config)
    train = head(train, run_args.max_train_samples)

    model_args.lora_task_type = "CAUSAL_LM"
    config.model_init_kwargs = model_init_kwargs(model_args, config.model_init_kwargs)
    check_recipe_fits(run_args, model)  # from the weight files' headers, before anything loads
    loaded, tokenizer = trainer_model(model, AutoModelForCausalLM, config)
    trainer = ListwiseDPOTrainer(
        loaded,
        processing_class=tokenizer,
        args=config,
        train_dataset=train,
        eval_dataset=evaluation,
        peft_config=get_peft_config(model_args),
        quantization_config=get_quantization_config(model_args),
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
    logger.info("DPO policy saved to %s", out)
    return out


def _write_card(out, model, langs, run_args, config, trainer, metrics) -> None:
    shown = {k: metrics[f"eval_{k}"] for k in CARD_METRICS if f"eval_{k}" in metrics}
    card = render_model_card(
        title=f"Okapi listwise DPO policy ({', '.join(langs)})",
        description=(
            "An instruction-following model trained directly on K-wise rankings (Okapi's 4 ranked "
            f"responses per instruction) with listwise DPO, `{config.loss_type}` loss and beta "
            f"{config.beta}: no reward model and no RL. This stage is an okapi-hf addition; the Okapi "
            "paper used a reward model and PPO. Prompt it with Okapi's template (`okapi_hf.format_prompt`)."
        ),
        stage="listwise DPO (okapi-hf `ListwiseDPOTrainer`)",
        init_from=str(model),
        langs=langs,
        data=f"`{run_args.dataset_path or 'okapi_hf'}`, configs "
        + ", ".join(f"`{lang}-ranking`" for lang in langs),
        usage=POLICY_USAGE.format(path=out),
        stages=stage_history(out),
        hyperparameters={
            k: getattr(getattr(config, k), "value", getattr(config, k)) for k in CARD_HYPERPARAMETERS
        },
        metrics=shown,
        data_report="\n".join(f"- {r.summary()}" for r in trainer.data_reports.values()),
        model_dir=out,
        tags=["dpo", "trl", "alignment"],
        pipeline_tag="text-generation",
    )
    atomic_write_text(Path(out) / "README.md", card)
