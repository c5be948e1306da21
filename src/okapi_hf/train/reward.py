"""Reward modelling on K-wise rankings: `RankedRewardConfig` and `RankedRewardTrainer`.

Okapi ranked 4 responses per instruction. Expanding them into the C(4,2) = 6 pairs a pairwise trainer
wants forwards 12 sequences where 4 suffice and scatters one prompt's pairs over many batches. Here a
row is one prompt with its K responses (best first, K may differ per row); each response is forwarded
exactly once and the loss is taken over that prompt's pairs (InstructGPT) or its whole ranking
(Plackett-Luce). With equal K the ``instructgpt`` loss and its gradients equal trl's ``RewardTrainer``
on the expanded pairs; ``tests/test_reward.py`` checks it.
"""

from __future__ import annotations

import inspect
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from datasets import Dataset
from transformers import AutoTokenizer, PreTrainedTokenizerBase
from trl import RewardConfig, RewardTrainer

from okapi_hf.errors import OkapiError
from okapi_hf.metrics.ranking import RankingCounts
from okapi_hf.train.ranking import (
    DataCollatorForRanking,
    RankingArguments,
    RankingDataMixin,
    RankingDataReport,
    RankingMetricsMixin,
    by_prompt,
    center_penalty,
    pairwise_loss,
    plackett_luce_loss,
)
from okapi_hf.train.recipes import check_choices, choice_field
from okapi_hf.train.utils import freeze_bottom_layers

__all__ = [
    "DataCollatorForRanking",
    "RankedRewardConfig",
    "RankedRewardTrainer",
    "RankingDataReport",
    "by_prompt",
    "center_penalty",
    "pairwise_loss",
    "plackett_luce_loss",
]

logger = logging.getLogger(__name__)

LOSS_TYPES = ("instructgpt", "plackett_luce")


@dataclass
class RankedRewardConfig(RankingArguments, RewardConfig):
    """`trl.RewardConfig` plus what K-wise rankings and Okapi's recipe need."""

    loss_type: str = choice_field(
        "instructgpt",
        LOSS_TYPES,
        "instructgpt: mean over each prompt's C(K,2) pairs of -log sigmoid(r_i - r_j), prompts weighted "
        "equally. plackett_luce: negative log-likelihood of the whole ranking.",
    )
    margin: float = field(
        default=0.0,
        metadata={"help": "Gap per rank step (instructgpt): pair i above j scores r_i - r_j - margin*(j-i)."},
    )
    padding_side: str | None = choice_field(
        None, ("left", "right"), "'left' or 'right'; default: the tokenizer's (BLOOM pads left)."
    )
    num_unfrozen_layers: int | None = field(
        default=None,
        metadata={"help": "Train only the top N blocks, final norm and head (Okapi: 12). Default: all."},
    )

    def __post_init__(self):
        super().__post_init__()
        check_choices(self)
        if self.margin and self.loss_type != "instructgpt":
            raise ValueError("margin applies to the instructgpt loss only")


class RankedRewardTrainer(RankingDataMixin, RankingMetricsMixin, RewardTrainer):
    """A `trl.RewardTrainer` whose rows are rankings: ``responses`` (best first) plus a prompt.

    A row gives its prompt as ``prompt`` (text, or chat messages) or as Okapi's ``instruction`` and
    ``input``; ``responses`` holds 2..K_max strings. Everything else (model loading, PEFT, saving,
    logging) is trl's.
    """

    _tag_names: ClassVar[list[str]] = ["trl", "reward-trainer", "okapi-hf", "ranked-reward"]

    def __init__(
        self,
        model: Any,
        args: RankedRewardConfig | None = None,
        train_dataset: Dataset | None = None,
        eval_dataset: Dataset | dict[str, Dataset] | None = None,
        processing_class: PreTrainedTokenizerBase | None = None,
        data_collator: Callable | None = None,
        **kwargs: Any,
    ):
        args = args or RankedRewardConfig(output_dir="ranked-reward")
        if not isinstance(args, RankedRewardConfig):
            raise TypeError(f"args must be a RankedRewardConfig, got {type(args).__name__}")
        if args.num_unfrozen_layers is not None and kwargs.get("peft_config") is not None:
            raise ValueError("use either num_unfrozen_layers or a peft_config (LoRA), not both")
        name = model if isinstance(model, str) else model.config._name_or_path
        if processing_class is None:
            processing_class = AutoTokenizer.from_pretrained(name, trust_remote_code=args.trust_remote_code)
        # trl applies these in super().__init__; the collator and the eos decision below must see them first
        if args.eos_token is not None:
            processing_class.eos_token = args.eos_token
        if args.pad_token is not None:
            processing_class.pad_token = args.pad_token
        self._append_eos = _resolve_pad_token(processing_class, name)
        self.data_reports: dict[str, RankingDataReport] = {}
        if data_collator is None:
            data_collator = DataCollatorForRanking(
                pad_token_id=processing_class.pad_token_id,
                padding_side=args.padding_side or processing_class.padding_side,
                pad_to_multiple_of=args.pad_to_multiple_of,
            )
        super().__init__(
            model,
            args=args,
            data_collator=data_collator,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            processing_class=processing_class,
            **kwargs,
        )
        if args.num_unfrozen_layers is not None:
            freeze_bottom_layers(self.model, args.num_unfrozen_layers)
        base = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
        self._takes_position_ids = "position_ids" in inspect.signature(base.forward).parameters
        self._counts = {"train": RankingCounts(), "eval": RankingCounts()}

    def _set_signature_columns_if_needed(self):
        if self._signature_columns is None:
            self._signature_columns = ["response_ids"]

    # -- loss and metrics -------------------------------------------------------------------------
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        mode = self._mode()
        num_responses = inputs.pop("num_responses")
        if not self._takes_position_ids:
            inputs.pop("position_ids", None)  # BLOOM's ALiBi reads positions from the attention mask
        outputs = model(**inputs, use_cache=False)
        rewards, mask = by_prompt(outputs.logits.squeeze(-1).float(), num_responses)
        if self.args.loss_type == "plackett_luce":
            per_prompt = plackett_luce_loss(rewards, mask)
        else:
            per_prompt = pairwise_loss(rewards, mask, self.args.margin)
        if self.args.center_rewards_coefficient is not None:
            per_prompt = per_prompt + self.args.center_rewards_coefficient * center_penalty(rewards, mask)
        loss = per_prompt.mean()

        with torch.no_grad():
            if mode == "train":
                tokens = self.accelerator.gather_for_metrics(inputs["attention_mask"].sum()).sum().item()
                self._total_train_tokens += tokens // getattr(self, "_tp_size", 1)
            else:
                self._add_eval_losses(per_prompt)
            self._metrics[mode]["num_tokens"] = [self._total_train_tokens]
            flat = self._gather_rows(rewards.detach(), num_responses)
            flat = [row for row in flat if not any(math.isnan(r) for r in row)]  # a NaN shows in the loss
            if not flat:
                return (loss, outputs) if return_outputs else loss
            self._counts[mode] += RankingCounts.from_rewards(flat)
            values = [r for row in flat for r in row]
            self._metrics[mode]["min_reward"].append(min(values))
            self._metrics[mode]["mean_reward"].append(sum(values) / len(values))
            self._metrics[mode]["max_reward"].append(max(values))
            gap = [row[0] - row[-1] for row in flat]  # best minus worst response
            self._metrics[mode]["reward_gap"].append(sum(gap) / len(gap))
        return (loss, outputs) if return_outputs else loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        mode = self._mode()
        self._add_ranking_logs(logs, mode, self._counts[mode].metrics())
        super().log(logs, start_time)


def _resolve_pad_token(tokenizer: PreTrainedTokenizerBase, name: str) -> bool:
    """Make sure padding can be told apart from the last real token; return whether to append eos.

    Sequence classification reads the reward at the last token that is not the pad token. When a
    tokenizer has no pad token we pad with eos, and then must not end sequences with eos, or the
    reward would be read one token early.
    """
    if tokenizer.pad_token is not None:
        return tokenizer.eos_token is not None and tokenizer.eos_token != tokenizer.pad_token
    if tokenizer.eos_token is None:
        raise OkapiError(
            f"the tokenizer of {name!r} has neither a pad token nor an eos token, so a batch of responses "
            "cannot be padded; set tokenizer.pad_token (e.g. tokenizer.add_special_tokens({'pad_token': '<pad>'}) "
            "and resize the embeddings) and pass it as processing_class"
        )
    logger.warning(
        "the tokenizer of %r has no pad token: padding with eos (%r) and not appending eos to responses",
        name,
        tokenizer.eos_token,
    )
    tokenizer.pad_token = tokenizer.eos_token
    return False
