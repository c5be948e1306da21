"""``okapi-hf train rl``: RLHF of the SFT policy against the reward model, by PPO (default), RLOO or GRPO.

The recipe's ``algorithm`` key (or ``algorithm=...``) picks the trainer: ``ppo`` is okapi-hf's own
``PPOTrainer`` with Okapi's settings; ``rloo`` and ``grpo`` go through trl (``okapi_hf.train.rl``).
The policy defaults to ``runs/<run>/sft`` and the reward model to ``runs/<run>/rm``; the result, a
plain causal LM, goes to ``runs/<run>/rl``.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import yaml
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification
from trl import ModelConfig

from okapi_hf.errors import OkapiError
from okapi_hf.hub.cards import POLICY_USAGE
from okapi_hf.models import load_model, load_tokenizer
from okapi_hf.train.ppo import PPOTrainer
from okapi_hf.train.ppo_config import PPOConfig
from okapi_hf.train.recipes import (
    DEFAULT_RECIPES,
    RunArguments,
    check_model_path,
    check_recipe_fits,
    head,
    load_splits,
    model_init_kwargs,
    parse_stage_args,
    previous_stage,
    recipe_file,
    training_stage,
)
from okapi_hf.train.stage import Stage
from okapi_hf.train.utils import check_tokenizers_match

logger = logging.getLogger(__name__)

ALGORITHMS = ("ppo", "rloo", "grpo")
SUMMARY_METRICS = ("reward/score", "objective/kl", "score")  # on the terminal at the end of the stage
CARD_HYPERPARAMETERS = (
    "num_rollouts",
    "ppo_epochs",
    "init_kl_coef",
    "target_kl",
    "kl_horizon",
    "gamma",
    "lam",
    "cliprange",
    "cliprange_value",
    "vf_coef",
    "reward_clip",
    "num_unfrozen_layers",
    "learning_rate",
    "max_prompt_length",
    "max_new_tokens",
    "temperature",
    "language_reward_weight",
    "language_reward",
    "seed",
)


def config_class(algorithm: str) -> type:
    """The config dataclass of an RL algorithm."""
    if algorithm == "ppo":
        return PPOConfig
    from okapi_hf.train.rl import OkapiGRPOConfig, OkapiRLOOConfig

    if algorithm == "rloo":
        return OkapiRLOOConfig
    if algorithm == "grpo":
        return OkapiGRPOConfig
    raise OkapiError(f"unknown RL algorithm {algorithm!r}; expected one of: {', '.join(ALGORITHMS)}")


def main(
    argv: list[str], *, recipe: str = DEFAULT_RECIPES["rl"], verbose: bool = False, **flags: str | None
) -> Path:
    """Parse the recipe (whose ``algorithm`` picks the config), overrides and flags, then train."""
    algorithm = _algorithm(recipe, argv)
    run_args, config, model_args = parse_stage_args("rl", config_class(algorithm), recipe, argv, **flags)
    if algorithm == "ppo":
        return train_ppo(run_args, config, model_args, verbose=verbose)
    from okapi_hf.train.rl import train_trl_rl

    return train_trl_rl(run_args, config, model_args, verbose=verbose)


def _algorithm(recipe: str, argv: list[str]) -> str:
    for item in argv:
        key, _, value = item.partition("=")
        if key.removeprefix("--") == "algorithm":
            return value
    values = yaml.safe_load(recipe_file("rl", recipe).read_text()) or {}
    return values.get("algorithm", "ppo")


@training_stage
def train_ppo(run_args: RunArguments, config: PPOConfig, model_args: ModelConfig) -> Path:
    """The PPO stage from Python: policy, reference, reward model, prompts, training, saving, card."""
    stage = Stage.start("rl", run_args, config, model_args)
    policy_path = stage.model
    stage.subset = "rl"
    rm_path = check_model_path(config.reward_model_path or previous_stage(run_args, "rm"))

    tokenizer = load_tokenizer(policy_path, revision=model_args.model_revision)
    rm_tokenizer = load_tokenizer(rm_path)
    check_tokenizers_match(tokenizer, rm_tokenizer, policy_path, rm_path)  # before any weights load
    train, evaluation = load_splits(run_args, stage.langs, "rl")
    train = head(train, run_args.max_train_samples)

    init = model_init_kwargs(model_args)
    check_recipe_fits(run_args, policy_path)
    policy = load_model(policy_path, AutoModelForCausalLM, **init)
    reward_model = load_model(rm_path, AutoModelForSequenceClassification, num_labels=1, **init)
    reward_funcs, weights = [], []
    if config.language_reward_weight:
        from okapi_hf.train.rewards import LANGUAGE_REWARDS

        reward_funcs, weights = [LANGUAGE_REWARDS[config.language_reward]], [config.language_reward_weight]
    trainer = PPOTrainer(
        policy,
        config,
        tokenizer,
        train,
        reward_model=reward_model,
        reward_funcs=reward_funcs,
        reward_weights=weights,
        eval_dataset=evaluation,
    )
    card = functools.partial(_write_card, rm_path=rm_path)
    return stage.finish(trainer, SUMMARY_METRICS, card, peft=False)  # the policy, whole or not at all


def _write_card(stage: Stage, trainer: PPOTrainer, metrics: dict[str, float], rm_path: str) -> None:
    last = next((h for h in reversed(trainer.state.log_history) if "reward/score" in h), {})
    shown = {
        k: last[k]
        for k in ("reward/score", "objective/kl", "objective/entropy", "response_length")
        if k in last
    }
    shown.update(metrics)
    description = (
        "An instruction-following model tuned with PPO against a K-wise ranked reward model "
        f"(`{rm_path}`), with a per-token KL penalty to its SFT starting point, as in Okapi."
    )
    usage = POLICY_USAGE.format(path=stage.out)
    stage.write_card(
        trainer,
        CARD_HYPERPARAMETERS,
        shown,
        description,
        usage,
        data_report=trainer.prompt_summary(),
        tags=["ppo"],
    )
