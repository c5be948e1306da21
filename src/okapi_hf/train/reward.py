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
import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from accelerate import PartialState
from datasets import Dataset
from transformers import AutoTokenizer, PreTrainedTokenizerBase
from transformers.data.data_collator import DataCollatorMixin
from trl import RewardConfig, RewardTrainer
from trl.trainer.utils import pad

from okapi_hf.errors import DataError, OkapiError
from okapi_hf.fsutil import atomic_write_text
from okapi_hf.metrics.ranking import RankingCounts
from okapi_hf.prompts import encode, format_prompt, special_prefix, to_messages
from okapi_hf.train.utils import freeze_bottom_layers

logger = logging.getLogger(__name__)

LOSS_TYPES = ("instructgpt", "plackett_luce")
DROP_REASONS = ("empty", "duplicate", "overlong")  # per response; rows left with < 2 are dropped too
COUNTED = (*DROP_REASONS, "truncated")  # what data preparation counts per row


@dataclass
class RankedRewardConfig(RewardConfig):
    """`trl.RewardConfig` plus what K-wise rankings and Okapi's recipe need."""

    loss_type: str = field(
        default="instructgpt",
        metadata={
            "help": "instructgpt: mean over each prompt's C(K,2) pairs of -log sigmoid(r_i - r_j), prompts "
            "weighted equally. plackett_luce: negative log-likelihood of the whole ranking.",
            "choices": list(LOSS_TYPES),
        },
    )
    margin: float = field(
        default=0.0,
        metadata={
            "help": "Reward gap required per rank step (instructgpt only): the pair i above j is scored on "
            "r_i - r_j - margin * (j - i)."
        },
    )
    prompt_format: str = field(
        default="okapi",
        metadata={
            "help": "For rows with instruction/input: 'okapi' renders Okapi's template, 'chat' the tokenizer's "
            "chat template. Rows with a `prompt` column use it as given.",
            "choices": ["okapi", "chat"],
        },
    )
    overlong: str = field(
        default="drop",
        metadata={
            "help": "A response longer than max_length is dropped from its ranking ('drop', the rest of the "
            "ranking stays valid) or cut at max_length ('truncate'). Either way it is counted.",
            "choices": ["drop", "truncate"],
        },
    )
    padding_side: str | None = field(
        default=None,
        metadata={
            "help": "'left' or 'right'; default: the tokenizer's (BLOOM pads left).",
            "choices": ["left", "right"],
        },
    )
    num_unfrozen_layers: int | None = field(
        default=None,
        metadata={"help": "Train only the top N blocks, final norm and head (Okapi: 12). Default: all."},
    )

    def __post_init__(self):
        super().__post_init__()
        for f in fields(RankedRewardConfig):  # the same choices the command line enforces
            allowed = f.metadata.get("choices")
            value = getattr(self, f.name)
            if allowed and value not in allowed and not (value is None and f.default is None):
                raise ValueError(f"{f.name} must be one of {allowed}, got {value!r}")
        if self.margin and self.loss_type != "instructgpt":
            raise ValueError("margin applies to the instructgpt loss only")


def pairwise_loss(rewards: torch.Tensor, mask: torch.Tensor, margin: float = 0.0) -> torch.Tensor:
    """InstructGPT, per prompt: the mean of -log sigmoid(r_i - r_j - margin*(j-i)) over i ranked above j.

    ``rewards`` is ``[prompts, K_max]`` in gold order, ``mask`` marks the real responses. Like the other
    losses here it returns one value per prompt; the batch loss is their mean.
    """
    k = torch.arange(rewards.shape[1], device=rewards.device)
    steps = (k[None, :] - k[:, None]).to(rewards.dtype)  # [i, j] -> j - i
    losses = -F.logsigmoid(rewards[:, :, None] - rewards[:, None, :] - margin * steps)
    return _mean_over_pairs(losses, mask)


def plackett_luce_loss(rewards: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Plackett-Luce, per prompt: -sum_i log softmax(r_i, ..., r_K)[i], the NLL of the gold order.

    At K = 2 it is exactly the pairwise loss.
    """
    filled = rewards.masked_fill(~mask, -1e9)  # finite, so the backward pass stays NaN-free
    suffix = torch.logcumsumexp(filled.flip(-1), dim=-1).flip(-1)
    return torch.where(mask, suffix - rewards, 0.0).sum(-1)


def center_penalty(rewards: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per prompt, the mean of (r_i + r_j)^2 over its pairs: trl's centring term, taken on the same pairs."""
    return _mean_over_pairs((rewards[:, :, None] + rewards[:, None, :]) ** 2, mask)


def _mean_over_pairs(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per prompt, the mean of ``values[:, i, j]`` over its real pairs i ranked above j."""
    k = torch.arange(mask.shape[1], device=mask.device)
    pairs = mask[:, :, None] & mask[:, None, :] & (k[:, None] < k[None, :])
    return torch.where(pairs, values, 0.0).sum((1, 2)) / pairs.sum((1, 2))


def by_prompt(rewards: torch.Tensor, num_responses: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat per-response rewards to ``[prompts, K_max]`` plus the mask of real responses.

    ``num_responses`` is a plain list (the collator keeps it off the accelerator), so splitting the
    rewards never waits for the device.
    """
    padded = torch.nn.utils.rnn.pad_sequence(torch.split(rewards, num_responses), batch_first=True)
    lengths = torch.tensor(num_responses, device=rewards.device)
    mask = torch.arange(padded.shape[1], device=rewards.device)[None, :] < lengths[:, None]
    return padded, mask


@dataclass
class DataCollatorForRanking(DataCollatorMixin):
    """Flattens the K responses of each row into one padded batch and records K per row.

    Under left padding it also builds ``position_ids`` from the attention mask, so a left-padded
    sequence sits at the positions it has alone: models with absolute positions need it; RoPE (Llama)
    and ALiBi (BLOOM, which takes no position_ids) are unaffected by the shift.
    """

    pad_token_id: int
    padding_side: str = "right"
    pad_to_multiple_of: int | None = None
    return_tensors: str = "pt"

    def torch_call(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        seqs = [torch.tensor(ids) for ex in examples for ids in ex["response_ids"]]
        kw = {"padding_side": self.padding_side, "pad_to_multiple_of": self.pad_to_multiple_of}
        batch = {
            "input_ids": pad(seqs, padding_value=self.pad_token_id, **kw),
            "attention_mask": pad([torch.ones_like(s) for s in seqs], padding_value=0, **kw),
            "num_responses": [
                len(ex["response_ids"]) for ex in examples
            ],  # a list: Trainer leaves it on the CPU
        }
        if self.padding_side == "left":
            batch["position_ids"] = (batch["attention_mask"].cumsum(-1) - 1).clamp(min=0)
        return batch


@dataclass
class RankingDataReport:
    """What preparing one dataset kept and dropped, and why; nothing is dropped without a count."""

    name: str
    rows_in: int = 0
    rows_kept: int = 0
    responses_in: int = 0
    responses_kept: int = 0
    dropped: dict[str, int] = field(default_factory=dict)  # reason -> responses removed
    rows_too_few: int = 0  # rows left with fewer than 2 responses
    truncated: int = 0
    examples: dict[str, list[str]] = field(default_factory=dict)  # reason -> a few row ids

    def summary(self) -> str:
        parts = [
            f"{self.name}: kept {self.rows_kept}/{self.rows_in} rows, {self.responses_kept}/{self.responses_in} responses"
        ]
        for reason, n in self.dropped.items():
            if n:
                parts.append(f"dropped {n} {reason} responses (e.g. rows {', '.join(self.examples[reason])})")
        if self.truncated:
            parts.append(
                f"truncated {self.truncated} overlong responses (e.g. rows {', '.join(self.examples['truncated'])})"
            )
        if self.rows_too_few:
            parts.append(
                f"dropped {self.rows_too_few} rows with fewer than 2 usable responses "
                f"(e.g. rows {', '.join(self.examples['too_few'])})"
            )
        return "; ".join(parts)


class RankedRewardTrainer(RewardTrainer):
    """A `trl.RewardTrainer` whose rows are rankings: ``responses`` (best first) plus a prompt.

    A row gives its prompt as ``prompt`` (text, or chat messages) or as Okapi's ``instruction`` and
    ``input``; ``responses`` holds 2..K_max strings. Everything else (model loading, PEFT, saving,
    logging) is trl's.
    """

    _tag_names: ClassVar[list[str]] = ["trl", "reward-trainer", "okapi-hf", "ranked-reward"]
    loss_is_scaled_for_ga = False  # compute_loss returns a per-batch mean; let Trainer divide by accumulation

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
        self._eval_loss = (0.0, 0)  # sum and count of per-prompt eval losses since the last log

    # -- data -------------------------------------------------------------------------------------
    def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
        if not isinstance(dataset, Dataset):
            raise TypeError(
                f"{type(self).__name__} needs a map-style datasets.Dataset for {dataset_name!r} "
                f"(it counts what it drops), got {type(dataset).__name__}"
            )
        columns = dataset.column_names
        if "response_ids" in columns:
            short = [i for i, ids in enumerate(dataset["response_ids"]) if len(ids) < 2]
            if short:
                raise DataError(
                    f"{dataset_name} dataset: rows {short[:5]} have fewer than 2 tokenized responses"
                )
            return dataset
        if len(dataset) == 0:
            raise DataError(f"{dataset_name} dataset has no rows")
        if "responses" not in columns or not ({"prompt"} <= set(columns) or {"instruction"} <= set(columns)):
            raise DataError(
                f"{dataset_name} dataset: expected a `responses` column (a list, best first) and `prompt` or "
                f"`instruction` (+ `input`); got columns {columns}"
            )
        chat = "prompt" not in columns and args.prompt_format == "chat"
        if (
            chat or (len(dataset) and isinstance(dataset[0].get("prompt"), list))
        ) and not processing_class.chat_template:
            raise DataError(
                f"{dataset_name} dataset needs a chat template, and the tokenizer of this model has none; "
                "use prompt_format=okapi or a tokenizer with a chat template"
            )
        tokenize = _RowTokenizer(processing_class, args, self._append_eos)
        with PartialState().main_process_first():  # one process fills the datasets cache, the others read it
            dataset = dataset.map(
                tokenize,
                with_indices=True,
                batched=True,
                remove_columns=columns,
                num_proc=args.dataset_num_proc,
                desc=f"Tokenizing {dataset_name} rankings",
            )
        report = _report(dataset_name, dataset)
        self.data_reports[dataset_name] = report
        changed = (
            report.rows_kept < report.rows_in
            or report.responses_kept < report.responses_in
            or report.truncated
        )
        logger.log(logging.WARNING if changed else logging.INFO, report.summary())
        if report.rows_kept == 0:
            raise DataError(f"{dataset_name} dataset has no usable rankings left: {report.summary()}")
        with PartialState().main_process_first():
            dataset = dataset.filter(lambda keep: keep, input_columns="keep", num_proc=args.dataset_num_proc)
        return dataset.select_columns(["response_ids"])

    def _set_signature_columns_if_needed(self):
        if self._signature_columns is None:
            self._signature_columns = ["response_ids"]

    # -- loss and metrics -------------------------------------------------------------------------
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        mode = "train" if self.model.training else "eval"
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
            else:  # Trainer's eval loss averages per-batch means and keeps padding duplicates; ours is exact
                losses = self.accelerator.gather_for_metrics(per_prompt.detach())
                self._eval_loss = (self._eval_loss[0] + losses.sum().item(), self._eval_loss[1] + len(losses))
            self._metrics[mode]["num_tokens"] = [self._total_train_tokens]
            rewards = self.accelerator.pad_across_processes(rewards.detach(), dim=1)
            all_rewards = self.accelerator.gather_for_metrics(rewards)
            all_k = self.accelerator.gather_for_metrics(
                torch.tensor(num_responses, device=rewards.device)
            ).tolist()
            flat = [row[:k] for row, k in zip(all_rewards.tolist(), all_k, strict=True)]
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
        mode = "train" if self.model.training else "eval"
        prefix = "eval_" if mode == "eval" else ""
        logs.update({prefix + k: v for k, v in self._counts[mode].metrics().items()})
        self._counts[mode] = RankingCounts()
        if mode == "eval" and self._eval_loss[1] and "eval_loss" in logs:
            logs["eval_loss"] = self._eval_loss[0] / self._eval_loss[1]
        self._eval_loss = (0.0, 0)
        super().log(logs, start_time)

    def save_data_reports(self, output_dir: str | Path | None = None) -> Path:
        """Write what data preparation kept and dropped to ``ranking_data_report.json``."""
        path = Path(output_dir or self.args.output_dir) / "ranking_data_report.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps({k: vars(v) for k, v in self.data_reports.items()}, indent=2))
        return path


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


class _RowTokenizer:
    """``Dataset.map`` function: clean one batch of rankings, tokenize each prompt+response once."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, args: RankedRewardConfig, append_eos: bool):
        # only what changes the output, so the datasets cache fingerprint ignores e.g. the learning rate
        self.tokenizer = tokenizer
        self.max_length, self.overlong, self.prompt_format = (
            args.max_length,
            args.overlong,
            args.prompt_format,
        )
        self.eos = tokenizer.eos_token if append_eos else ""

    def __call__(self, batch: dict[str, list], indices: list[int]) -> dict[str, list]:
        out: dict[str, list] = {
            "response_ids": [],
            "keep": [],
            "row": [],
            "responses_in": [],
            "responses_kept": [],
        }
        out.update({reason: [] for reason in COUNTED})
        for b, index in enumerate(indices):
            row_id = str(batch["id"][b] if "id" in batch else index)
            responses = batch["responses"][b]
            if not isinstance(responses, list):
                raise DataError(
                    f"row {row_id}: `responses` must be a list of strings, got {type(responses).__name__}"
                )
            counts = dict.fromkeys(COUNTED, 0)
            texts = []
            for k, text in enumerate(responses):
                if text is not None and not isinstance(text, str):
                    raise DataError(
                        f"row {row_id}: responses[{k}] is {type(text).__name__}, expected a string"
                    )
                if text is None or not text.strip():
                    counts["empty"] += 1
                elif text in texts:
                    counts["duplicate"] += 1  # the better-ranked copy stays
                else:
                    texts.append(text)
            ids = self._tokenize(batch, b, texts)
            kept: list[list[int]] = []
            for seq in ids:
                if self.max_length is not None and len(seq) > self.max_length:
                    if self.overlong == "drop":
                        counts["overlong"] += 1
                        continue
                    seq = seq[: self.max_length]
                    counts["truncated"] += 1
                if seq in kept:  # truncation can make two responses identical
                    counts["duplicate"] += 1
                    continue
                kept.append(seq)
            out["response_ids"].append(kept)
            out["keep"].append(len(kept) >= 2)
            out["row"].append(row_id)
            out["responses_in"].append(len(responses))
            out["responses_kept"].append(len(kept) if len(kept) >= 2 else 0)
            for reason, n in counts.items():
                out[reason].append(n)
        return out

    def _tokenize(self, batch: dict[str, list], b: int, responses: list[str]) -> list[list[int]]:
        prompt = batch["prompt"][b] if "prompt" in batch else None
        okapi_input = batch["input"][b] if "input" in batch else ""
        if prompt is None and self.prompt_format == "chat":
            prompt = to_messages(batch["instruction"][b], okapi_input)
        if isinstance(prompt, list):  # chat messages: the template ends each turn itself
            return [
                self.tokenizer.apply_chat_template(
                    [*prompt, {"role": "assistant", "content": r}], tokenize=True, return_dict=True
                )["input_ids"]
                for r in responses
            ]
        if prompt is None:
            prompt = format_prompt(batch["instruction"][b], okapi_input)
        prefix = special_prefix(self.tokenizer)
        return [encode(self.tokenizer, prompt + r + self.eos, prefix=prefix) for r in responses]


def _report(name: str, dataset: Dataset) -> RankingDataReport:
    columns = {c: dataset[c] for c in ("keep", "row", "responses_in", "responses_kept", *COUNTED)}
    report = RankingDataReport(name=name, rows_in=len(dataset), responses_in=sum(columns["responses_in"]))
    report.rows_kept = sum(columns["keep"])
    report.rows_too_few = report.rows_in - report.rows_kept
    report.responses_kept = sum(columns["responses_kept"])
    report.dropped = {reason: sum(columns[reason]) for reason in DROP_REASONS}
    report.truncated = sum(columns["truncated"])
    for reason in COUNTED:
        report.examples[reason] = [r for r, n in zip(columns["row"], columns[reason], strict=True) if n][:5]
    report.examples["too_few"] = [
        r for r, keep in zip(columns["row"], columns["keep"], strict=True) if not keep
    ][:5]
    return report
