"""RLHF with trl's RLOO and GRPO trainers: Okapi's RL prompts, our reward model, a language reward.

Okapi ran PPO (``okapi_hf.train.ppo``). RLOO and GRPO drop PPO's value model and instead compare a
group of ``num_generations`` samples per prompt with each other, which is cheaper and simpler. Both
stay trl's own trainers; this module adds what the Okapi stage needs: the config fields below, prompt
preparation (Okapi's template, left-truncation to ``max_prompt_length``, counted), reward functions
that score text the way the reward model was trained (``okapi_hf.train.rewards``), and the stage
outputs (``runs/<run>/rl``: weights, tokenizer, ``run_config.yaml``, ``trainer_state.json``, a card).
"""

from __future__ import annotations

import functools
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from accelerate import PartialState
from datasets import Dataset
from transformers import AutoModelForCausalLM, PreTrainedTokenizerBase
from trl import GRPOConfig, GRPOTrainer, ModelConfig, RLOOConfig, RLOOTrainer

from okapi_hf.errors import ConfigError, DataError
from okapi_hf.fsutil import atomic_write_text
from okapi_hf.hub.cards import POLICY_USAGE
from okapi_hf.langid import require_identifier
from okapi_hf.models import load_tokenizer
from okapi_hf.prompts import format_prompt, prefix_text, special_prefix
from okapi_hf.train.recipes import RunArguments, check_model_path, previous_stage, training_stage
from okapi_hf.train.rewards import LANGUAGE_REWARDS, RewardModelScorer
from okapi_hf.train.stage import Stage, eval_metrics
from okapi_hf.train.utils import check_tokenizers_match, freeze_bottom_layers

logger = logging.getLogger(__name__)

TRAINERS = {"rloo": RLOOTrainer, "grpo": GRPOTrainer}
CARD_HYPERPARAMETERS = (
    "algorithm",
    "learning_rate",
    "adam_beta1",
    "adam_beta2",
    "lr_scheduler_type",
    "num_generations",
    "max_prompt_length",
    "max_completion_length",
    "temperature",
    "top_k",
    "top_p",
    "beta",
    "num_iterations",
    "loss_type",
    "scale_rewards",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "generation_batch_size",
    "language_reward_weight",
    "language_reward",
    "num_unfrozen_layers",
    "seed",
)
CARD_METRICS = (
    "reward",
    "reward_std",
    "rewards/reward_model/mean",
    "rewards/language_fidelity_reward/mean",
    "rewards/language_id_reward/mean",
    "kl",
    "completions/mean_length",
)


@dataclass
class OkapiRLArguments:
    """What the Okapi RL stage adds to trl's RLOO and GRPO configs (the ``algorithm`` field is per class)."""

    reward_model_path: str | None = field(
        default=None,
        metadata={"help": "Reward model folder from `okapi-hf train rm` (default: runs/<run>/rm)."},
    )
    language_reward_weight: float = field(
        default=0.0,
        metadata={
            "help": "Weight of the language-fidelity reward (1 when a completion is in the prompt's language) "
            "next to the reward model's weight 1; 0 turns it off."
        },
    )
    language_reward: str = field(
        default="heuristic",
        metadata={
            "help": "The language reward that language_reward_weight weighs: heuristic (a script and "
            "function-word score, no extra dependency) or identifier (1 when the language identifier names "
            "the prompt's language, else 0; tells apart languages of one script; needs okapi-hf[eval]).",
            "choices": list(LANGUAGE_REWARDS),
        },
    )
    num_unfrozen_layers: int | None = field(
        default=None,
        metadata={"help": "Train only the top N blocks, final norm and head (Okapi's PPO: 5). Default: all."},
    )
    max_prompt_length: int | None = field(
        default=256,
        metadata={
            "help": "Prompts longer than this many tokens keep their last tokens (Okapi: 256, left-truncated); "
            "trl 1.16 has no such option, so it happens in data preparation and is counted. null: no limit."
        },
    )
    reward_batch_size: int = field(
        default=8, metadata={"help": "Completions the reward model scores per forward pass."}
    )

    def __post_init__(self):
        self._check_okapi_fields(self.__dataclass_fields__["algorithm"].default)
        super().__post_init__()  # trl's config, next in the subclass's bases

    def reward_weights_for_funcs(self) -> list[float]:
        """trl's ``reward_weights``: the reward model's 1, then the language reward's weight if it is on."""
        return [1.0, self.language_reward_weight] if self.language_reward_weight > 0 else [1.0]

    def _check_okapi_fields(self, algorithm: str) -> None:
        """Validated before trl's own checks, so a bad recipe fails when it is parsed."""
        name = type(self).__name__
        if getattr(self, "algorithm", None) != algorithm:
            raise ConfigError(
                f"{name}: algorithm must be {algorithm!r}, got {getattr(self, 'algorithm', None)!r}"
            )
        if self.language_reward_weight < 0:
            raise ConfigError(
                f"{name}: language_reward_weight must be >= 0, got {self.language_reward_weight}"
            )
        if self.language_reward not in LANGUAGE_REWARDS:
            raise ConfigError(
                f"{name}: language_reward must be one of {', '.join(LANGUAGE_REWARDS)}, "
                f"got {self.language_reward!r}"
            )
        if self.language_reward == "identifier" and self.language_reward_weight > 0:
            require_identifier()  # a missing lingua fails when the recipe is parsed, not mid-training
        weights = getattr(self, "reward_weights", None)
        if weights is not None and list(weights) != self.reward_weights_for_funcs():
            raise ConfigError(
                f"{name}: set language_reward_weight (the reward model weighs 1) instead of reward_weights; "
                f"got reward_weights={list(weights)}"
            )
        if self.num_unfrozen_layers is not None and self.num_unfrozen_layers < 0:
            raise ConfigError(f"{name}: num_unfrozen_layers must be >= 0, got {self.num_unfrozen_layers}")
        if self.max_prompt_length is not None and self.max_prompt_length < 1:
            raise ConfigError(f"{name}: max_prompt_length must be >= 1 or null, got {self.max_prompt_length}")
        if self.reward_batch_size < 1:
            raise ConfigError(f"{name}: reward_batch_size must be >= 1, got {self.reward_batch_size}")


def _algorithm(name: str) -> Any:
    return field(
        default=name,
        metadata={"help": "RL algorithm of the rl stage (fixed for this config).", "choices": [name]},
    )


@dataclass
class OkapiRLOOConfig(OkapiRLArguments, RLOOConfig):
    """`trl.RLOOConfig` plus the Okapi RL stage's fields."""

    algorithm: str = _algorithm("rloo")


@dataclass
class OkapiGRPOConfig(OkapiRLArguments, GRPOConfig):
    """`trl.GRPOConfig` plus the Okapi RL stage's fields."""

    algorithm: str = _algorithm("grpo")


# -- prompts --------------------------------------------------------------------------------------------


@dataclass
class PromptDataReport:
    """What preparing one split of RL prompts changed: nothing is dropped, long prompts are cut."""

    name: str
    rows: int = 0
    truncated: int = 0
    max_prompt_length: int | None = None
    examples: list[str] = field(default_factory=list)  # ids of a few truncated rows

    def summary(self) -> str:
        text = f"{self.name}: {self.rows} prompt{'s' if self.rows != 1 else ''}"
        if self.truncated:
            text += (
                f", {self.truncated} left-truncated to {self.max_prompt_length} tokens "
                f"(e.g. rows {', '.join(self.examples)})"
            )
        return text


class _PromptBuilder:
    """``Dataset.map`` function: Okapi's prompt text per row, its start cut off when too long.

    trl tokenizes RLOO/GRPO prompts without special tokens, so the tokenizer's default prefix (Gemma's
    and Llama's BOS) is written into the text: the policy sees the ids every other stage gives it.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, max_length: int | None):
        self.tokenizer, self.max_length = tokenizer, max_length
        self.prefix = prefix_text(tokenizer)
        self.num_special = len(special_prefix(tokenizer))
        if max_length is not None and max_length <= self.num_special:
            raise ConfigError(f"max_prompt_length={max_length} leaves no room next to the special tokens")

    def __call__(self, batch: dict[str, list], indices: list[int]) -> dict[str, list]:
        prompts, truncated = [], []
        for b, index in enumerate(indices):
            instruction = batch["instruction"][b]
            if not isinstance(instruction, str) or not instruction.strip():
                raise DataError(
                    f"RL prompt row {batch['id'][b] if 'id' in batch else index}: empty instruction"
                )
            prompts.append(format_prompt(instruction, batch["input"][b] if "input" in batch else ""))
        lengths = [len(ids) + self.num_special for ids in self._ids(prompts)]
        for b, length in enumerate(lengths):
            cut = self.max_length is not None and length > self.max_length
            if cut:
                prompts[b] = self._left_truncate(prompts[b])
            truncated.append(cut)
        return {"prompt": [self.prefix + p for p in prompts], "truncated": truncated}

    def _ids(self, texts: list[str]) -> list[list[int]]:
        return self.tokenizer(texts, add_special_tokens=False)["input_ids"]

    def _left_truncate(self, text: str) -> str:
        """The longest end of ``text`` that tokenizes to at most ``max_length`` tokens.

        trl receives text and re-tokenizes it, so the cut is made at a token boundary of the text
        (offsets), then checked by tokenizing again; byte-level merges can shift by a token.
        """
        budget = self.max_length - self.num_special
        encoded = self.tokenizer(
            text, add_special_tokens=False, return_offsets_mapping=self.tokenizer.is_fast
        )
        n = len(encoded["input_ids"])
        for first in range(n - budget, n):
            if self.tokenizer.is_fast:
                tail = text[encoded["offset_mapping"][first][0] :]
            else:
                tail = self.tokenizer.decode(encoded["input_ids"][first:])
            if len(self._ids([tail])[0]) + self.num_special <= self.max_length:
                return tail
        raise DataError(f"could not cut a prompt to {self.max_length} tokens: {text[:80]!r}...")


def prepare_prompts(
    dataset: Dataset, tokenizer: PreTrainedTokenizerBase, max_prompt_length: int | None, name: str
) -> tuple[Dataset, PromptDataReport]:
    """Okapi RL rows (instruction, input, lang, id) to trl's ``prompt`` column, keeping ``lang`` and ``id``."""
    missing = {"instruction", "lang"} - set(dataset.column_names)
    if missing:
        raise DataError(
            f"{name} RL prompts lack {', '.join(sorted(missing))}; got columns {dataset.column_names}"
        )
    if len(dataset) == 0:
        raise DataError(f"{name} RL prompts: no rows")
    with PartialState().main_process_first():  # one process fills the datasets cache, the others read it
        prompts = dataset.map(
            _PromptBuilder(tokenizer, max_prompt_length),
            with_indices=True,
            batched=True,
            remove_columns=[c for c in dataset.column_names if c not in ("lang", "id")],
            desc=f"Preparing {name} prompts",
        )
    flags = prompts["truncated"]
    ids = prompts["id"] if "id" in prompts.column_names else [str(i) for i in range(len(prompts))]
    report = PromptDataReport(
        name=name,
        rows=len(prompts),
        truncated=sum(flags),
        max_prompt_length=max_prompt_length,
        examples=[i for i, cut in zip(ids, flags, strict=True) if cut][:5],
    )
    logger.log(logging.WARNING if report.truncated else logging.INFO, report.summary())
    return prompts.remove_columns("truncated"), report


# -- the stage ------------------------------------------------------------------------------------------


@training_stage
def train_trl_rl(
    run_args: RunArguments, config: OkapiRLOOConfig | OkapiGRPOConfig, model_args: ModelConfig
) -> Path:
    """The whole RLOO/GRPO stage from Python: prompts, policy, rewards, training, saving, card."""
    if config.algorithm not in TRAINERS:
        raise ConfigError(f"train_trl_rl runs {', '.join(TRAINERS)}, not {config.algorithm!r}")
    stage = Stage.start("rl", run_args, config, model_args)
    config.reward_model_path = check_model_path(config.reward_model_path or previous_stage(run_args, "rm"))

    trust = config.trust_remote_code
    tokenizer = load_tokenizer(stage.model, revision=model_args.model_revision, trust_remote_code=trust)
    reward_tokenizer = load_tokenizer(config.reward_model_path, trust_remote_code=trust)
    check_tokenizers_match(tokenizer, reward_tokenizer, stage.model, config.reward_model_path)

    train, evaluation = stage.splits("rl")
    train, train_report = prepare_prompts(train, tokenizer, config.max_prompt_length, "train")
    reports = {"train": train_report}
    if evaluation is not None:
        evaluation, reports["eval"] = prepare_prompts(evaluation, tokenizer, config.max_prompt_length, "eval")

    reward_funcs: list[Any] = [_reward_model(config, model_args, reward_tokenizer)]
    if config.language_reward_weight > 0:
        reward_funcs.append(LANGUAGE_REWARDS[config.language_reward])
    config.reward_weights = config.reward_weights_for_funcs()
    trainer = stage.trainer(
        TRAINERS[config.algorithm],
        AutoModelForCausalLM,
        reward_funcs=reward_funcs,
        train_dataset=train,
        eval_dataset=evaluation,
        processing_class=tokenizer,
    )
    if config.num_unfrozen_layers is not None:  # before train(), which builds the optimizer
        freeze_bottom_layers(trainer.model, config.num_unfrozen_layers)

    def write_reports() -> None:
        text = json.dumps({k: asdict(v) for k, v in reports.items()}, indent=2)
        atomic_write_text(stage.out / "prompt_data_report.json", text)

    card = functools.partial(_write_card, reports=reports)
    return stage.finish(trainer, ("reward", "kl"), card, write_reports)


def _reward_model(config, model_args: ModelConfig, tokenizer) -> RewardModelScorer:
    """The reward model on this process's device, in the training precision unless a dtype is given."""
    dtype = model_args.dtype if model_args.dtype not in (None, "auto") else None
    if dtype is None:
        dtype = torch.bfloat16 if config.bf16 else torch.float16 if config.fp16 else torch.float32
    return RewardModelScorer(
        config.reward_model_path,
        tokenizer,
        batch_size=config.reward_batch_size,
        device=config.device,
        dtype=dtype,
        trust_remote_code=config.trust_remote_code,
    )


def _write_card(stage: Stage, trainer: Any, metrics: dict[str, float], reports: dict[str, Any]) -> None:
    config = stage.config
    if metrics:
        shown = eval_metrics(metrics, CARD_METRICS)
    else:  # no validation split: the last training log
        logged = [entry for entry in trainer.state.log_history if "reward" in entry]
        shown = {k: logged[-1][k] for k in CARD_METRICS if logged and k in logged[-1]}
    rewards = "the reward model's score on prompt + response"
    if config.language_reward_weight > 0:
        rewards += (
            f" plus {config.language_reward_weight} x a language-fidelity reward ({config.language_reward})"
        )
    algorithm = config.algorithm.upper()
    description = (
        f"An instruction-following model tuned with {algorithm} (trl) on Okapi's RL prompts; reward: "
        f"{rewards} (reward model `{config.reward_model_path}`). Prompts use Okapi's template "
        "(`okapi_hf.format_prompt`)."
    )
    stage.write_card(
        trainer,
        CARD_HYPERPARAMETERS,
        shown,
        description,
        POLICY_USAGE.format(path=stage.out),
        reports=reports,
        title=f"Okapi {algorithm} policy ({', '.join(stage.langs)})",
        tags=[config.algorithm],
    )
