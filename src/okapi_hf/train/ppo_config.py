"""PPO's settings, with Okapi's (trlx) values as the defaults; the trainer lives in ``ppo.py``."""

from __future__ import annotations

from dataclasses import dataclass, field

from trl.trainer.base_config import _BaseConfig

from okapi_hf.errors import ConfigError


@dataclass
class PPOConfig(_BaseConfig):
    """PPO settings; the defaults are Okapi's (trlx) values, so a recipe only states what differs.

    ``max_steps`` counts PPO iterations (rollout + update); when it is -1, ``num_train_epochs`` passes
    over the prompts decide. ``per_device_train_batch_size`` is the update mini-batch.
    """

    algorithm: str = field(
        default="ppo", metadata={"help": "RL algorithm of the rl stage.", "choices": ["ppo"]}
    )
    reward_model_path: str | None = field(
        default=None, metadata={"help": "Reward model folder (default: runs/<run>/rm)."}
    )
    num_rollouts: int = field(
        default=128, metadata={"help": "Responses sampled per iteration, over all processes (Okapi: 128)."}
    )
    chunk_size: int = field(default=16, metadata={"help": "Prompts per generation batch on each process."})
    ppo_epochs: int = field(default=4, metadata={"help": "Passes over each iteration's rollouts."})
    init_kl_coef: float = field(
        default=0.1, metadata={"help": "Initial coefficient of the per-token KL penalty."}
    )
    target_kl: float | None = field(
        default=6.0,
        metadata={"help": "KL the adaptive controller aims at; null keeps the coefficient fixed."},
    )
    kl_horizon: int = field(default=10000, metadata={"help": "Horizon of the adaptive KL controller."})
    gamma: float = field(default=1.0, metadata={"help": "Discount factor."})
    lam: float = field(default=0.95, metadata={"help": "GAE lambda."})
    cliprange: float = field(default=0.2, metadata={"help": "Clip range of the policy ratio."})
    cliprange_value: float = field(default=0.2, metadata={"help": "Clip range of the value update."})
    vf_coef: float = field(default=1.0, metadata={"help": "Weight of the value loss."})
    reward_clip: float | None = field(
        default=10.0, metadata={"help": "Clip scores to +-this; null: no clip."}
    )
    whiten_advantages: bool = field(default=True, metadata={"help": "Normalise advantages per iteration."})
    num_unfrozen_layers: int | None = field(
        default=5, metadata={"help": "Train only the top N blocks (Okapi: 5); null trains everything."}
    )
    max_prompt_length: int = field(default=256, metadata={"help": "Prompts are left-truncated to this."})
    max_new_tokens: int = field(default=256, metadata={"help": "Longest sampled response."})
    temperature: float = field(default=1.0, metadata={"help": "Sampling temperature."})
    top_k: int = field(default=0, metadata={"help": "Top-k sampling; 0 turns it off."})
    top_p: float = field(default=1.0, metadata={"help": "Nucleus sampling; 1.0 turns it off."})
    language_reward_weight: float = field(
        default=0.0, metadata={"help": "Weight of the language-fidelity reward added to the score; 0 = off."}
    )
    language_reward: str = field(
        default="heuristic",
        metadata={
            "help": "The language reward that language_reward_weight weighs: heuristic (script and function "
            "words, no extra dependency) or identifier (1 when okapi_hf.langid.identify names the prompt's "
            "language; needs okapi-hf[eval]).",
            "choices": ["heuristic", "identifier"],
        },
    )
    learning_rate: float = field(default=1e-6, metadata={"help": "AdamW learning rate (Okapi: 1e-6)."})
    adam_beta2: float = field(default=0.95, metadata={"help": "AdamW beta2 (Okapi: 0.95)."})
    lr_scheduler_type: str = field(
        default="constant", metadata={"help": "Okapi's rate was constant in effect."}
    )
    logging_steps: float = field(default=1, metadata={"help": "Log every N iterations."})

    def __post_init__(self):
        if self.algorithm != "ppo":
            raise ConfigError(f"PPOConfig: algorithm must be 'ppo', got {self.algorithm!r}")
        for name in ("num_rollouts", "chunk_size", "ppo_epochs", "max_new_tokens", "max_prompt_length"):
            if getattr(self, name) < 1:
                raise ConfigError(f"PPOConfig: {name} must be at least 1, got {getattr(self, name)}")
        if self.temperature <= 0:
            raise ConfigError(f"PPOConfig: temperature must be positive, got {self.temperature}")
        if self.language_reward not in ("heuristic", "identifier"):
            raise ConfigError(
                f"PPOConfig: language_reward must be heuristic or identifier, got {self.language_reward!r}"
            )
        super().__post_init__()
