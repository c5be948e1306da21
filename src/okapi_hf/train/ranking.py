"""K-wise rankings as training data, shared by the reward model (`reward.py`) and listwise DPO (`dpo.py`).

Both stages read the same rows (one prompt, K responses best first) and need the same things: clean
and tokenize each prompt+response once, count what is dropped, collate a batch of rankings into one
padded batch of K_1 + K_2 + ... sequences, and take ranking losses per prompt. Only what they score
differs (a reward head; a policy's log-probabilities against a reference), so everything else is here.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from accelerate import PartialState
from datasets import Dataset
from transformers import PreTrainedTokenizerBase
from transformers.data.data_collator import DataCollatorMixin
from trl.trainer.utils import pad

from okapi_hf.errors import DataError
from okapi_hf.fsutil import atomic_write_text
from okapi_hf.metrics.ranking import RankingCounts
from okapi_hf.prompts import encode, format_prompt, special_prefix, to_messages
from okapi_hf.train.recipes import choice_field

logger = logging.getLogger(__name__)

DROP_REASONS = ("empty", "duplicate", "overlong")  # per response; rows left with < 2 are dropped too
COUNTED = (*DROP_REASONS, "truncated")  # what data preparation counts per row


@dataclass
class RankingArguments:
    """The data options of a ranking stage (mixed into `RankedRewardConfig` and `ListwiseDPOConfig`)."""

    prompt_format: str = choice_field(
        "okapi",
        ("okapi", "chat"),
        "For rows with instruction/input: 'okapi' renders Okapi's template, 'chat' the tokenizer's chat "
        "template. Rows with a `prompt` column use it as given.",
    )
    overlong: str = choice_field(
        "drop",
        ("drop", "truncate"),
        "A response longer than max_length is dropped from its ranking ('drop', the rest of the ranking "
        "stays valid) or cut at max_length ('truncate'). Either way it is counted.",
    )


# -- losses over each prompt's ranking ------------------------------------------------------------------


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


# -- batches --------------------------------------------------------------------------------------------


@dataclass
class DataCollatorForRanking(DataCollatorMixin):
    """Flattens the K responses of each row into one padded batch and records K per row.

    Under left padding it also builds ``position_ids`` from the attention mask, so a left-padded
    sequence sits at the positions it has alone: models with absolute positions need it; RoPE (Llama)
    and ALiBi (BLOOM, which takes no position_ids) are unaffected by the shift. Subclasses add
    per-token masks (:meth:`token_masks`), padded like the attention mask.
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
        }
        for name, masks in self.token_masks(examples).items():
            batch[name] = pad([m.long() for m in masks], padding_value=0, **kw)
        batch["num_responses"] = [len(ex["response_ids"]) for ex in examples]  # a list: stays on the CPU
        if self.padding_side == "left":
            batch["position_ids"] = (batch["attention_mask"].cumsum(-1) - 1).clamp(min=0)
        return batch

    def token_masks(self, examples: list[dict[str, Any]]) -> dict[str, list[torch.Tensor]]:
        """Extra per-token masks of every sequence, by batch key (none here)."""
        return {}


# -- data preparation -----------------------------------------------------------------------------------


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

    @property
    def changed(self) -> bool:
        """Whether preparation dropped or cut anything (then its summary is a warning)."""
        return (
            self.rows_kept < self.rows_in or self.responses_kept < self.responses_in or bool(self.truncated)
        )


class RankingTokenizer:
    """``Dataset.map`` function: clean one batch of rankings, tokenize each prompt+response once."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, args: RankingArguments, append_eos: bool):
        # only what changes the output, so the datasets cache fingerprint ignores e.g. the learning rate
        self.tokenizer = tokenizer
        self.max_length = args.max_length
        self.overlong, self.prompt_format = args.overlong, args.prompt_format
        self.eos = tokenizer.eos_token if append_eos else ""

    def __call__(self, batch: dict[str, list], indices: list[int]) -> dict[str, list]:
        out: dict[str, list] = {name: [] for name in ("response_ids", "keep", "row", "responses_in")}
        out.update({name: [] for name in ("responses_kept", *COUNTED)})
        for b, index in enumerate(indices):
            row_id = str(batch["id"][b] if "id" in batch else index)
            responses = batch["responses"][b]
            if not isinstance(responses, list):
                raise DataError(
                    f"row {row_id}: `responses` must be a list of strings, got {type(responses).__name__}"
                )
            counts = dict.fromkeys(COUNTED, 0)
            kept = self._keep(row_id, responses, counts, batch, b)
            out["response_ids"].append(kept)
            out["keep"].append(len(kept) >= 2)
            out["row"].append(row_id)
            out["responses_in"].append(len(responses))
            out["responses_kept"].append(len(kept) if len(kept) >= 2 else 0)
            for reason, n in counts.items():
                out[reason].append(n)
        return out

    def _keep(
        self, row_id: str, responses: list, counts: dict[str, int], batch: dict, b: int
    ) -> list[list[int]]:
        """The token ids of the usable responses of one row, best first; ``counts`` what was not kept."""
        texts = []
        for k, text in enumerate(responses):
            if text is not None and not isinstance(text, str):
                raise DataError(f"row {row_id}: responses[{k}] is {type(text).__name__}, expected a string")
            if text is None or not text.strip():
                counts["empty"] += 1
            elif text in texts:
                counts["duplicate"] += 1  # the better-ranked copy stays
            else:
                texts.append(text)
        kept: list[list[int]] = []
        for seq in self._tokenize(batch, b, texts):
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
        return kept

    def prompt(self, batch: dict[str, list], b: int) -> str | list[dict[str, str]]:
        """Row ``b``'s prompt: its ``prompt`` (text or chat messages), else Okapi's instruction and input."""
        prompt = batch["prompt"][b] if "prompt" in batch else None
        okapi_input = batch["input"][b] if "input" in batch else ""
        if prompt is None and self.prompt_format == "chat":
            return to_messages(batch["instruction"][b], okapi_input)
        return format_prompt(batch["instruction"][b], okapi_input) if prompt is None else prompt

    def _tokenize(self, batch: dict[str, list], b: int, responses: list[str]) -> list[list[int]]:
        prompt = self.prompt(batch, b)
        if isinstance(prompt, list):  # chat messages: the template ends each turn itself
            return [
                self.tokenizer.apply_chat_template(
                    [*prompt, {"role": "assistant", "content": r}], tokenize=True, return_dict=True
                )["input_ids"]
                for r in responses
            ]
        prefix = special_prefix(self.tokenizer)
        return [encode(self.tokenizer, prompt + r + self.eos, prefix=prefix) for r in responses]


def ranking_report(name: str, dataset: Dataset) -> RankingDataReport:
    """Sum the per-row counts a `RankingTokenizer` map left in ``dataset`` into one report."""
    reasons = [*COUNTED, *(["long_prompt"] if "long_prompt" in dataset.column_names else [])]
    columns = {c: dataset[c] for c in ("keep", "row", "responses_in", "responses_kept", *reasons)}
    report = RankingDataReport(name=name, rows_in=len(dataset), responses_in=sum(columns["responses_in"]))
    report.rows_kept = sum(columns["keep"])
    report.rows_too_few = report.rows_in - report.rows_kept
    report.responses_kept = sum(columns["responses_kept"])
    report.dropped = {reason: sum(columns[reason]) for reason in reasons if reason != "truncated"}
    report.truncated = sum(columns["truncated"])
    for reason in reasons:
        report.examples[reason] = [r for r, n in zip(columns["row"], columns[reason], strict=True) if n][:5]
    report.examples["too_few"] = [
        r for r, keep in zip(columns["row"], columns["keep"], strict=True) if not keep
    ][:5]
    return report


class RankingDataMixin:
    """`_prepare_dataset` and `save_data_reports` of a trainer whose rows are rankings.

    A row gives its prompt as ``prompt`` (text, or chat messages) or as Okapi's ``instruction`` and
    ``input``, and ``responses`` (best first). Rows are tokenized by ``row_tokenizer``; a dataset that
    already has ``prepared_columns`` is used as it is.
    """

    row_tokenizer: ClassVar[type[RankingTokenizer]] = RankingTokenizer
    prepared_columns: ClassVar[tuple[str, ...]] = ("response_ids",)
    data_reports: dict[str, RankingDataReport]
    _append_eos: bool

    def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
        if not isinstance(dataset, Dataset):
            raise TypeError(
                f"{type(self).__name__} needs a map-style datasets.Dataset for {dataset_name!r} "
                f"(it counts what it drops), got {type(dataset).__name__}"
            )
        columns = dataset.column_names
        if set(self.prepared_columns) <= set(columns):
            short = [i for i, ids in enumerate(dataset["response_ids"]) if len(ids) < 2]
            if short:
                raise DataError(
                    f"{dataset_name} dataset: rows {short[:5]} have fewer than 2 tokenized responses"
                )
            return dataset
        _check_columns(dataset, processing_class, args, dataset_name)
        tokenize = self.row_tokenizer(processing_class, args, self._append_eos)
        with PartialState().main_process_first():  # one process fills the datasets cache, the others read it
            dataset = dataset.map(
                tokenize,
                with_indices=True,
                batched=True,
                remove_columns=columns,
                num_proc=args.dataset_num_proc,
                desc=f"Tokenizing {dataset_name} rankings",
            )
        report = self.data_reports[dataset_name] = ranking_report(dataset_name, dataset)
        logger.log(logging.WARNING if report.changed else logging.INFO, report.summary())
        if report.rows_kept == 0:
            raise DataError(f"{dataset_name} dataset has no usable rankings left: {report.summary()}")
        with PartialState().main_process_first():
            dataset = dataset.filter(lambda keep: keep, input_columns="keep", num_proc=args.dataset_num_proc)
        return dataset.select_columns(list(self.prepared_columns))

    def save_data_reports(self, output_dir: str | Path | None = None) -> Path:
        """Write what data preparation kept and dropped to ``ranking_data_report.json``."""
        path = Path(output_dir or self.args.output_dir) / "ranking_data_report.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps({k: vars(v) for k, v in self.data_reports.items()}, indent=2))
        return path


class RankingMetricsMixin:
    """Ranking metrics per logging window, gathered from every process, and an exact eval loss.

    Trainer's eval loss averages per-batch means and keeps the padding duplicates of the last batch;
    the one logged here is the mean over prompts.
    """

    accelerator: Any
    model: Any
    _counts: dict[str, RankingCounts]
    _eval_loss: tuple[float, int] = (0.0, 0)  # sum and count of per-prompt eval losses since the last log
    loss_is_scaled_for_ga = False  # compute_loss returns a per-batch mean; let Trainer divide by accumulation

    def _mode(self) -> str:
        return "train" if self.model.training else "eval"

    def _gather_rows(self, values: torch.Tensor, num_responses: list[int]) -> list[list[float]]:
        """``[prompts, K_max]`` values from every process, as one list of per-prompt lists."""
        values = self.accelerator.pad_across_processes(values, dim=1)
        gathered = self.accelerator.gather_for_metrics(values)
        ks = self.accelerator.gather_for_metrics(torch.tensor(num_responses, device=values.device)).tolist()
        return [row[:k] for row, k in zip(gathered.tolist(), ks, strict=True)]

    def _add_eval_losses(self, per_prompt: torch.Tensor) -> None:
        losses = self.accelerator.gather_for_metrics(per_prompt.detach())
        self._eval_loss = (self._eval_loss[0] + losses.sum().item(), self._eval_loss[1] + len(losses))

    def _add_ranking_logs(self, logs: dict[str, float], mode: str, metrics: dict[str, float]) -> None:
        """This window's ``metrics`` (``eval_`` first in evaluation) and exact eval loss into ``logs``; reset."""
        prefix = "eval_" if mode == "eval" else ""
        logs.update({prefix + k: v for k, v in metrics.items()})
        if mode == "eval" and self._eval_loss[1] and "eval_loss" in logs:
            logs["eval_loss"] = self._eval_loss[0] / self._eval_loss[1]
        self._eval_loss = (0.0, 0)
        self._counts[mode] = RankingCounts()


def _check_columns(dataset: Dataset, tokenizer: PreTrainedTokenizerBase, args: Any, name: str) -> None:
    """Refuse a dataset that is not rankings, or that needs a chat template the tokenizer lacks."""
    columns = dataset.column_names
    if len(dataset) == 0:
        raise DataError(f"{name} dataset has no rows")
    if "responses" not in columns or not ({"prompt"} <= set(columns) or {"instruction"} <= set(columns)):
        raise DataError(
            f"{name} dataset: expected a `responses` column (a list, best first) and `prompt` or "
            f"`instruction` (+ `input`); got columns {columns}"
        )
    chat = "prompt" not in columns and args.prompt_format == "chat"
    if (chat or isinstance(dataset[0].get("prompt"), list)) and not tokenizer.chat_template:
        raise DataError(
            f"{name} dataset needs a chat template, and the tokenizer of this model has none; "
            "use prompt_format=okapi or a tokenizer with a chat template"
        )
