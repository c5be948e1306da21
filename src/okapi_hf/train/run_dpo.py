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
from trl import ModelConfig

from okapi_hf.hub.cards import POLICY_USAGE
from okapi_hf.train.dpo import ListwiseDPOConfig, ListwiseDPOTrainer
from okapi_hf.train.recipes import RunArguments, training_stage
from okapi_hf.train.stage import OPTIMIZER_HYPERPARAMETERS, Stage, eval_metrics, stage_main

logger = logging.getLogger(__name__)

CARD_HYPERPARAMETERS = (
    "loss_type",
    "beta",
    *OPTIMIZER_HYPERPARAMETERS,
    "max_length",
    "max_prompt_length",
    "seed",
)
CARD_METRICS = ("loss", "pairwise_accuracy", "top1_accuracy", "exact_ranking_accuracy", "rewards/margins")
SUMMARY_METRICS = ("loss", "pairwise_accuracy", "rewards/margins")  # on the terminal at the end


@training_stage
def train_dpo(run_args: RunArguments, config: ListwiseDPOConfig, model_args: ModelConfig) -> Path:
    """The whole stage from Python: data, policy and reference, training, evaluation, saving, card."""
    stage = Stage.start("dpo", run_args, config, model_args)
    train, evaluation = stage.splits("ranking")
    trainer = stage.trainer(
        ListwiseDPOTrainer, AutoModelForCausalLM, train_dataset=train, eval_dataset=evaluation
    )
    return stage.finish(trainer, SUMMARY_METRICS, _write_card, trainer.save_data_reports)


main = stage_main("dpo", ListwiseDPOConfig, train_dpo)


def _write_card(stage: Stage, trainer: ListwiseDPOTrainer, metrics: dict[str, float]) -> None:
    config = stage.config
    description = (
        "An instruction-following model trained directly on K-wise rankings (Okapi's 4 ranked "
        f"responses per instruction) with listwise DPO, `{config.loss_type}` loss and beta "
        f"{config.beta}: no reward model and no RL. This stage is an okapi-hf addition; the Okapi "
        "paper used a reward model and PPO. Prompt it with Okapi's template (`okapi_hf.format_prompt`)."
    )
    usage = POLICY_USAGE.format(path=stage.out)
    stage.write_card(trainer, CARD_HYPERPARAMETERS, eval_metrics(metrics, CARD_METRICS), description, usage)
