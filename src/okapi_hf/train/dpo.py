"""Listwise preference optimisation on K-wise rankings: `ListwiseDPOConfig` and `ListwiseDPOTrainer`.

An okapi-hf addition, not in the Okapi paper: Okapi turned its 4 ranked responses per instruction into
a reward model and then ran PPO. DPO (Rafailov et al., 2023) trains the policy on the rankings
directly. The policy's implicit reward of response y to prompt x is

    r(x, y) = beta * (log pi(y|x) - log pi_ref(y|x)),

log-probabilities summed over the response tokens (eos included, prompt tokens masked), with pi_ref a
frozen copy of the starting model. The rewards then go through the same ranking losses as the reward
model (`okapi_hf.train.reward`): ``plackett_luce``, the negative log-likelihood of the whole ranking
(the DPO paper's Plackett-Luce objective), or ``pairwise``, -log sigmoid(r_i - r_j) averaged over a
prompt's C(K,2) pairs. At K = 2 both are exactly the standard DPO loss
-log sigmoid(beta * ((log pi(y_w) - log pi_ref(y_w)) - (log pi(y_l) - log pi_ref(y_l)))).

A row is one prompt with its K responses (best first, K may differ per row); each response is forwarded
once through the policy and once through the reference, never once per pair.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from accelerate.utils import is_peft_model
from datasets import Dataset
from torch.utils.data import DataLoader
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase
from trl.models import prepare_deepspeed, prepare_fsdp
from trl.trainer.base_config import _BaseConfig
from trl.trainer.base_trainer import _BaseTrainer
from trl.trainer.utils import (
    add_fused_lm_head,
    create_model_from_path,
    disable_dropout_in_model,
    use_adapter,
)

from okapi_hf.errors import ConfigError, OkapiError
from okapi_hf.metrics.ranking import RankingCounts
from okapi_hf.prompts import encode
from okapi_hf.train import ranking
from okapi_hf.train.ranking import by_prompt, pairwise_loss, plackett_luce_loss
from okapi_hf.train.recipes import check_choices, choice_field

logger = logging.getLogger(__name__)

LOSS_TYPES = ("plackett_luce", "pairwise")
OWN_CHOICES = ("loss_type", "overlong", "prompt_format")  # fields this config adds that take a fixed set


@dataclass
class ListwiseDPOConfig(ranking.RankingArguments, _BaseConfig):
    """trl's base training config (bf16, gradient checkpointing on) plus listwise DPO's options."""

    _VALID_DICT_FIELDS: ClassVar[list[str]] = [*_BaseConfig._VALID_DICT_FIELDS, "model_init_kwargs"]

    learning_rate: float = field(default=1e-6, metadata={"help": "The initial learning rate for AdamW."})
    model_init_kwargs: dict[str, Any] | str | None = field(
        default=None,
        metadata={
            "help": "Keyword arguments for `AutoModelForCausalLM.from_pretrained` when a path is given."
        },
    )
    trust_remote_code: bool = field(
        default=False, metadata={"help": "Allow models and tokenizers that run their own code from the Hub."}
    )
    disable_dropout: bool = field(
        default=True,
        metadata={
            "help": "Turn dropout off in the policy and the reference, so equal weights give equal rewards."
        },
    )
    dataset_num_proc: int | None = field(
        default=None, metadata={"help": "Processes used to tokenize the rankings."}
    )
    loss_type: str = choice_field(
        "plackett_luce",
        LOSS_TYPES,
        "plackett_luce: negative log-likelihood of the whole ranking under the implicit rewards. pairwise: "
        "mean over each prompt's C(K,2) pairs of -log sigmoid(r_i - r_j). Both are standard DPO at K = 2.",
    )
    beta: float = field(
        default=0.1,
        metadata={
            "help": "Scale of the implicit reward beta * (log pi - log pi_ref); higher keeps the policy closer "
            "to the reference."
        },
    )
    max_length: int | None = field(
        default=1024, metadata={"help": "Longest prompt + response in tokens (None: no limit)."}
    )
    max_prompt_length: int | None = field(
        default=None,
        metadata={"help": "Rows whose prompt alone is longer are dropped and counted (None: no limit)."},
    )
    pad_to_multiple_of: int | None = field(
        default=None, metadata={"help": "Pad each batch to a multiple of this many tokens."}
    )
    precompute_ref_log_probs: bool = field(
        default=False,
        metadata={
            "help": "Score every response with the reference once before training and keep no reference "
            "model in memory (not with DeepSpeed or FSDP)."
        },
    )
    precompute_ref_batch_size: int | None = field(
        default=None,
        metadata={"help": "Rankings per batch when precomputing (default: per_device_eval_batch_size)."},
    )

    def __post_init__(self):
        super().__post_init__()
        check_choices(self, OWN_CHOICES)
        if not self.beta > 0:
            raise ConfigError(f"beta must be positive, got {self.beta}")
        if (
            None not in (self.max_prompt_length, self.max_length)
            and self.max_prompt_length >= self.max_length
        ):
            raise ConfigError(
                f"max_prompt_length ({self.max_prompt_length}) must be below max_length ({self.max_length}), "
                "or no response fits"
            )


@dataclass
class DataCollatorForListwisePreference(ranking.DataCollatorForRanking):
    """`DataCollatorForRanking`, right-padded, plus which tokens are the response's.

    ``completion_mask`` marks the response tokens (everything after the row's ``prompt_length``), the only
    tokens whose log-probabilities count. Precomputed reference log-probabilities travel as ``ref_logps``.
    """

    def token_masks(self, examples: list[dict[str, Any]]) -> dict[str, list[torch.Tensor]]:
        return {
            "completion_mask": [
                torch.arange(len(ids)) >= ex["prompt_length"] for ex in examples for ids in ex["response_ids"]
            ]
        }

    def torch_call(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        batch = super().torch_call(examples)
        if "ref_logps" in examples[0]:
            batch["ref_logps"] = torch.tensor([x for ex in examples for x in ex["ref_logps"]])
        return batch


class _PromptAwareRowTokenizer(ranking.RankingTokenizer):
    """The reward model's row cleaning, plus where each row's prompt ends, so the prompt can be masked.

    The prompt length is the longest prefix the prompt tokenized alone shares with every kept
    prompt+response, so a token merged across the boundary counts as response. A row is dropped
    (``long_prompt``) when its prompt exceeds ``max_prompt_length`` or leaves a response no token.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, args: ListwiseDPOConfig, append_eos: bool):
        super().__init__(tokenizer, args, append_eos)
        self.max_prompt_length = args.max_prompt_length

    def __call__(self, batch: dict[str, list], indices: list[int]) -> dict[str, list]:
        out = super().__call__(batch, indices)
        out["prompt_length"], out["long_prompt"] = [], []
        for b, kept in enumerate(out["response_ids"]):
            prompt_ids = self._prompt_ids(batch, b)
            length = min((_common_prefix(prompt_ids, seq) for seq in kept), default=len(prompt_ids))
            too_long = any(len(seq) <= length for seq in kept) or (
                self.max_prompt_length is not None and len(prompt_ids) > self.max_prompt_length
            )
            out["prompt_length"].append(length)
            out["long_prompt"].append(len(kept) if too_long else 0)
            if too_long:
                out["keep"][b], out["responses_kept"][b] = False, 0
        return out

    def _prompt_ids(self, batch: dict[str, list], b: int) -> list[int]:
        prompt = self.prompt(batch, b)
        if isinstance(prompt, list):
            return self.tokenizer.apply_chat_template(
                prompt, add_generation_prompt=True, tokenize=True, return_dict=True
            )["input_ids"]
        return encode(self.tokenizer, prompt)


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


class ListwiseDPOTrainer(ranking.RankingDataMixin, ranking.RankingMetricsMixin, _BaseTrainer):
    """DPO on rankings: rows hold ``responses`` (best first) and a prompt, like `RankedRewardTrainer`'s.

    A row gives its prompt as ``prompt`` (text, or chat messages) or as Okapi's ``instruction`` and
    ``input``. The reference is ``ref_model`` if given, else a frozen copy of ``model`` as passed in;
    with a ``peft_config`` it is the same model with the adapter switched off, so no copy is kept, and
    with ``precompute_ref_log_probs`` it is scored once before training and not kept either.
    """

    _tag_names: ClassVar[list[str]] = ["trl", "dpo", "okapi-hf", "listwise-dpo"]
    _name = "Listwise DPO"
    row_tokenizer = _PromptAwareRowTokenizer
    prepared_columns: ClassVar[tuple[str, ...]] = ("response_ids", "prompt_length")

    def __init__(
        self,
        model: Any,
        ref_model: Any | None = None,
        args: ListwiseDPOConfig | None = None,
        train_dataset: Dataset | None = None,
        eval_dataset: Dataset | None = None,
        processing_class: PreTrainedTokenizerBase | None = None,
        data_collator: Callable | None = None,
        peft_config: Any | None = None,
        quantization_config: Any | None = None,
        **kwargs: Any,
    ):
        args = args or ListwiseDPOConfig(output_dir="listwise-dpo")
        if not isinstance(args, ListwiseDPOConfig):
            raise TypeError(f"args must be a ListwiseDPOConfig, got {type(args).__name__}")
        if train_dataset is None:
            raise ValueError("train_dataset is required")
        if isinstance(model, str):
            init = dict(args.model_init_kwargs or {})
            init.setdefault("trust_remote_code", args.trust_remote_code)
            if quantization_config is not None:
                init["quantization_config"] = quantization_config
            if args.distributed_state.distributed_type in ("MULTI_GPU", "DEEPSPEED"):
                init["device_map"] = None  # "auto" fails under distributed training
            model = create_model_from_path(model, AutoModelForCausalLM, **init)
        name = model.config._name_or_path
        if is_peft_model(model) and peft_config is None and ref_model is None:
            raise ConfigError(
                f"{name} already carries a PEFT adapter: merge it into the model first, or pass ref_model"
            )
        if processing_class is None:
            processing_class = AutoTokenizer.from_pretrained(name, trust_remote_code=args.trust_remote_code)
        append_eos = _resolve_pad_token(processing_class, name)
        model.config.get_text_config().pad_token_id = processing_class.pad_token_id

        # The reference: the starting weights, copied before anything below patches or wraps the model
        self.precompute = args.precompute_ref_log_probs
        if ref_model is None and peft_config is None and not self.precompute:
            ref_model = copy.deepcopy(model)
        if ref_model is not None:
            ref_model.requires_grad_(False).eval()
        if args.disable_dropout:
            disable_dropout_in_model(model)
            if ref_model is not None:
                disable_dropout_in_model(ref_model)
        # model(..., labels=..., fused_lm_head=True).log_probs: per-token log-probabilities without building
        # the [tokens, vocabulary] logits, which for BLOOM's 250k vocabulary dwarf the activations
        add_fused_lm_head(model)
        if ref_model is not None:
            add_fused_lm_head(ref_model)
        if peft_config is not None:
            from peft import get_peft_model

            model = get_peft_model(model, peft_config)
            if args.activation_checkpointing:
                model.enable_input_require_grads()

        self.data_reports: dict[str, ranking.RankingDataReport] = {}
        self._append_eos = append_eos
        train_dataset = self._prepare_dataset(train_dataset, processing_class, args, "train")
        if eval_dataset is not None:
            eval_dataset = self._prepare_dataset(eval_dataset, processing_class, args, "eval")
        if data_collator is None:
            data_collator = DataCollatorForListwisePreference(
                pad_token_id=processing_class.pad_token_id, pad_to_multiple_of=args.pad_to_multiple_of
            )
        super().__init__(
            model=model,
            args=args,
            data_collator=data_collator,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            processing_class=processing_class,
            **kwargs,
        )
        if args.n_gpu > 1:
            raise ConfigError(
                f"{type(self).__name__} does not support nn.DataParallel over {args.n_gpu} GPUs: launch with "
                "`accelerate launch` (or make one GPU visible with CUDA_VISIBLE_DEVICES)"
            )
        self.can_return_loss = True  # evaluation calls compute_loss although the rows carry no labels
        self.label_names = []
        self.model.add_model_tags(self._tag_names)

        self.ref_model = ref_model
        if ref_model is not None:
            if self.is_deepspeed_enabled:
                self.ref_model = prepare_deepspeed(ref_model, self.accelerator)
            elif self.is_fsdp_enabled:
                self.ref_model = prepare_fsdp(ref_model, self.accelerator)
            else:
                self.ref_model = self.accelerator.prepare_model(ref_model, evaluation_mode=True)
        if self.precompute:
            if self.is_deepspeed_enabled or self.is_fsdp_enabled:
                raise ConfigError("precompute_ref_log_probs is not supported with DeepSpeed or FSDP here")
            batch_size = args.precompute_ref_batch_size or args.per_device_eval_batch_size
            self.train_dataset = self._precompute_ref_log_probs(self.train_dataset, "train", batch_size)
            if self.eval_dataset is not None:
                self.eval_dataset = self._precompute_ref_log_probs(self.eval_dataset, "eval", batch_size)

        self._counts: dict[str, RankingCounts] = {}
        self._sums: dict[str, dict[str, float]] = {}
        self._reset_metrics("train")
        self._reset_metrics("eval")

    # -- data (preparation and reports: RankingDataMixin) -----------------------------------------
    def _set_signature_columns_if_needed(self):
        if self._signature_columns is None:
            self._signature_columns = [*self.prepared_columns, "ref_logps"]

    # -- log-probabilities ------------------------------------------------------------------------
    @staticmethod
    def sequence_log_probs(model, batch: dict[str, Any]) -> torch.Tensor:
        """Sum of log pi(token) over each sequence's response tokens: one value per sequence."""
        labels = batch["input_ids"].masked_fill(batch["completion_mask"] == 0, -100)
        out = model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            labels=labels,
            fused_lm_head=True,
            use_cache=False,
        )
        return out.log_probs.sum(-1)  # zero wherever the label is -100

    def reference_log_probs(self, batch: dict[str, Any]) -> torch.Tensor:
        """log pi_ref of each response: precomputed, the reference model's, or the policy's without adapter."""
        if "ref_logps" in batch:
            return batch["ref_logps"]
        with torch.no_grad(), self.accelerator.autocast():
            if self.ref_model is not None:
                return self.sequence_log_probs(self.ref_model, batch)
            unwrapped = self.accelerator.unwrap_model(self.model)
            if is_peft_model(unwrapped):  # the base model is the reference: switch the adapter off
                with (
                    use_adapter(unwrapped, adapter_name=None),
                    _no_activation_checkpointing(self.model, self.args.activation_checkpointing_kwargs),
                ):
                    return self.sequence_log_probs(self.model, batch)
            if self.state.global_step == 0:  # precomputing: the policy has not moved from the reference yet
                return self.sequence_log_probs(self.model, batch)
        raise ConfigError(
            "no reference log-probabilities for this batch: with precompute_ref_log_probs and no LoRA, the "
            "reference is gone once training starts; pass every dataset to the trainer when creating it"
        )

    def _precompute_ref_log_probs(self, dataset: Dataset, name: str, batch_size: int) -> Dataset:
        """Add ``ref_logps`` (one per response) to ``dataset``, scored by the model as it is before training."""
        loader = DataLoader(dataset, batch_size=batch_size, collate_fn=self.data_collator, shuffle=False)
        loader = self.accelerator.prepare(loader)  # shards over processes; gathering restores the order
        training = self.model.training
        self.model.eval()
        rows = []
        try:
            for batch in loader:
                logps = self.reference_log_probs(batch).float()
                rows += self._gather_rows(by_prompt(logps, batch["num_responses"])[0], batch["num_responses"])
        finally:
            self.model.train(training)
        logger.info("precomputed reference log-probabilities of %d %s rankings", len(rows), name)
        return dataset.add_column("ref_logps", rows)

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix="eval"):
        """Also takes a raw ranking dataset, prepared (and its reference scored) like those given at init."""
        self._reset_metrics("eval")  # e.g. batches scored by calling compute_loss directly
        if isinstance(eval_dataset, Dataset):
            eval_dataset = self._prepare_dataset(
                eval_dataset, self.processing_class, self.args, metric_key_prefix
            )
            if self.precompute and "ref_logps" not in eval_dataset.column_names:
                batch_size = self.args.precompute_ref_batch_size or self.args.per_device_eval_batch_size
                eval_dataset = self._precompute_ref_log_probs(eval_dataset, metric_key_prefix, batch_size)
        return super().evaluate(eval_dataset, ignore_keys=ignore_keys, metric_key_prefix=metric_key_prefix)

    # -- loss and metrics -------------------------------------------------------------------------
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        mode = self._mode()
        num_responses = inputs["num_responses"]
        logps = self.sequence_log_probs(model, inputs)
        ref_logps = self.reference_log_probs(inputs)
        rewards = self.args.beta * (logps.float() - ref_logps.float())
        by_row, mask = by_prompt(rewards, num_responses)
        if self.args.loss_type == "plackett_luce":
            per_prompt = plackett_luce_loss(by_row, mask)
        else:
            per_prompt = pairwise_loss(by_row, mask)
        loss = per_prompt.mean()

        with torch.no_grad():
            if mode == "eval":
                self._add_eval_losses(per_prompt)
            self._track(
                mode, by_row.detach(), by_prompt(logps.detach().float(), num_responses)[0], num_responses
            )
        return (loss, {"rewards": rewards.detach()}) if return_outputs else loss

    def _track(self, mode: str, rewards: torch.Tensor, logps: torch.Tensor, num_responses: list[int]) -> None:
        """Ranking metrics of the implicit rewards, and the mean reward of the best and the other responses."""
        rows = zip(
            self._gather_rows(rewards, num_responses), self._gather_rows(logps, num_responses), strict=True
        )
        rows = [(r, lp) for r, lp in rows if not any(math.isnan(x) for x in r)]  # a NaN shows in the loss
        if not rows:
            return
        self._counts[mode] += RankingCounts.from_rewards([r for r, _ in rows])
        sums = self._sums[mode]
        for r, lp in rows:
            sums["prompts"] += 1
            sums["rewards/chosen"] += r[0]
            sums["rewards/rejected"] += sum(r[1:]) / len(r[1:])
            sums["logps/chosen"] += lp[0]
            sums["logps/rejected"] += sum(lp[1:]) / len(lp[1:])

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad(), self.compute_loss_context_manager():
            loss = self.compute_loss(model, inputs)
        return loss.detach(), None, None

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        mode = self._mode()
        metrics = self._counts[mode].metrics()
        sums = self._sums[mode]
        if sums["prompts"]:
            metrics.update({k: v / sums["prompts"] for k, v in sums.items() if k != "prompts"})
            metrics["rewards/margins"] = metrics["rewards/chosen"] - metrics["rewards/rejected"]
        self._add_ranking_logs(logs, mode, metrics)
        self._reset_metrics(mode)
        super().log(logs, start_time)

    def _reset_metrics(self, mode: str) -> None:
        self._counts[mode] = RankingCounts()
        self._sums[mode] = defaultdict(float)  # sums over prompts, and their count under "prompts"
        if mode == "eval":
            self._eval_loss = (0.0, 0)  # sum and count of per-prompt eval losses since the last log


@contextlib.contextmanager
def _no_activation_checkpointing(model: Any, kwargs: dict | None) -> Iterator[None]:
    """trl's ``disable_gradient_checkpointing`` by transformers 5's names (the old ones warn)."""
    enabled = model.is_activation_checkpointing
    if enabled:
        model.activation_checkpointing_disable()
    try:
        yield
    finally:
        if enabled:
            model.activation_checkpointing_enable(kwargs)


def _resolve_pad_token(tokenizer: PreTrainedTokenizerBase, name: str) -> bool:
    """Pad with eos when there is no pad token (the attention mask tells them apart); return whether to append eos.

    Unlike a reward model, a policy must learn to stop, so responses end with eos whenever there is one.
    """
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise OkapiError(
                f"the tokenizer of {name!r} has neither a pad token nor an eos token, so a batch of responses "
                "cannot be padded; set tokenizer.pad_token and pass it as processing_class"
            )
        tokenizer.pad_token = tokenizer.eos_token
    if tokenizer.eos_token is None:
        logger.warning(
            "the tokenizer of %r has no eos token: responses are trained without an end marker", name
        )
        return False
    return True
