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
from trl import ModelConfig

from okapi_hf.train.recipes import RunArguments, training_stage
from okapi_hf.train.reward import RankedRewardConfig, RankedRewardTrainer
from okapi_hf.train.stage import OPTIMIZER_HYPERPARAMETERS, Stage, eval_metrics, stage_main

logger = logging.getLogger(__name__)

CARD_HYPERPARAMETERS = (
    "loss_type",
    "margin",
    "num_unfrozen_layers",
    *OPTIMIZER_HYPERPARAMETERS,
    "max_length",
    "seed",
)
CARD_METRICS = ("loss", "pairwise_accuracy", "top1_accuracy", "exact_ranking_accuracy", "kendall_tau")
SUMMARY_METRICS = ("loss", "pairwise_accuracy")  # on the terminal at the end of the stage
USAGE = """import torch
from transformers import AutoModelForSequenceClassification
from okapi_hf import format_prompt
from okapi_hf.models import load_model, load_tokenizer  # a LoRA adapter (chain) is merged on loading

tokenizer = load_tokenizer("{path}")
model = load_model("{path}", AutoModelForSequenceClassification, num_labels=1)
text = format_prompt("...instruction...") + "...response..." + tokenizer.eos_token
with torch.no_grad():
    reward = model(**tokenizer(text, return_tensors="pt")).logits[0, 0].item()"""


@training_stage
def train_reward_model(run_args: RunArguments, config: RankedRewardConfig, model_args: ModelConfig) -> Path:
    """The whole stage from Python: data, model, training, evaluation, saving, card."""
    stage = Stage.start("rm", run_args, config, model_args)
    train, evaluation = stage.splits("ranking")
    trainer = stage.trainer(
        RankedRewardTrainer,
        AutoModelForSequenceClassification,
        model_kwargs={"num_labels": 1},
        train_dataset=train,
        eval_dataset=evaluation,
    )
    return stage.finish(trainer, SUMMARY_METRICS, _write_card, trainer.save_data_reports)


main = stage_main("rm", RankedRewardConfig, train_reward_model)


def _write_card(stage: Stage, trainer: RankedRewardTrainer, metrics: dict[str, float]) -> None:
    description = (
        "A reward model that scores a response to an instruction with one scalar, trained on K-wise "
        f"rankings (Okapi's 4 ranked responses per instruction) with the `{stage.config.loss_type}` "
        "loss. Higher means better; use it for RLHF or best-of-n sampling."
    )
    stage.write_card(
        trainer,
        CARD_HYPERPARAMETERS,
        eval_metrics(metrics, CARD_METRICS),
        description,
        USAGE.format(path=stage.out),
    )
