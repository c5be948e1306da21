"""The three sizes of the experiment: the same arms and measures, different counts.

``toy`` is for the test (tiny random models, the shipped ``tiny`` recipes, a few steps). ``cpu`` fits 60
minutes on 2 idle CPU cores with Gemma 3 270M: the shipped ``small`` recipes (LoRA SFT and reward model,
PPO on the top 2 blocks) with step counts budgeted from the quickstart's measured stage times
(benchmarks/README.md). ``gpu`` is the same experiment at thousands of rows and hundreds of RL iterations.
GRPO/RLOO and DPO have no shipped ``small`` recipe, so the real sizes start from the Okapi-scale recipe
and override what does not fit (bf16, batch, LoRA): every value is stated here, nothing is hidden.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

# Arms in training order; "base" is the untrained start model.
ARMS = ("base", "sft", "ppo", "group", "dpo", "ppo_lang")
LANGUAGE_REWARD_WEIGHT = 1.0  # next to the reward model's weight 1 (its scores span a few units)


@dataclass(frozen=True)
class Stage:
    """One call of ``okapi_hf.train.pipeline.run_stage``: stage name, shipped recipe, key=value overrides."""

    stage: str
    recipe: str
    overrides: tuple[str, ...] = ()

    def with_overrides(self, *extra: str) -> Stage:
        """Later overrides win (argparse keeps the last value), so extras refine a recipe."""
        return replace(self, overrides=(*self.overrides, *extra))


@dataclass(frozen=True)
class Size:
    """Counts per language, generation settings and the stage of every trained arm (plus the reward model)."""

    name: str
    model: str | None  # None: a tiny random Llama built under --out
    rows: dict[str, int]  # per language: sft rows, ranking instructions, rl prompts
    heldout: int  # held-out prompts (and rankings) per language
    max_new_tokens: int
    gen_batch: int
    eval_docs: dict[str, int]  # Okapi benchmark -> documents per language (only with OKAPI_HF_EVAL_DIR)
    eval_shots: int = 0  # ARC shots (the authors used 25; 0 fits the CPU budget); TruthfulQA is 0-shot
    stages: dict[str, Stage] = field(default_factory=dict)  # "rm" and every arm but "base"
    note: str = ""


_LORA = ("use_peft=true", "lora_r=16", "lora_alpha=32", "lora_dropout=0.05", "lora_target_modules=all-linear")
_CPU = ("bf16=false", "gradient_checkpointing=false")
_GPU = ("bf16=true", "gradient_checkpointing=false")

# trl's GRPO/RLOO at a scale of minutes: 2 prompts x 4 samples per step, one pass, LoRA on the SFT policy.
_GROUP_CPU = (
    *_CPU,
    *_LORA,
    "learning_rate=1e-4",
    "num_generations=4",
    "per_device_train_batch_size=8",
    "per_device_eval_batch_size=8",
    "gradient_accumulation_steps=1",
    "steps_per_generation=1",
    "num_iterations=1",
    "max_completion_length=32",
    "eval_strategy=no",
    "save_strategy=no",
    "logging_steps=1",
    "report_to=none",
    "max_model_parameters=2000000000",
    "max_steps=6",
    "max_eval_samples=8",
)
# Listwise DPO (Plackett-Luce over the 4-way rankings) with LoRA, 2 rankings per step.
_DPO_CPU = (
    *_CPU,
    *_LORA,
    "learning_rate=5e-5",
    "warmup_steps=0",
    "per_device_train_batch_size=2",
    "per_device_eval_batch_size=2",
    "gradient_accumulation_steps=1",
    "max_length=256",
    "max_prompt_length=192",
    "eval_strategy=no",
    "save_strategy=no",
    "logging_steps=2",
    "max_model_parameters=2000000000",
    "max_steps=12",
    "max_eval_samples=4",
)


def _stages(sft: Stage, rm: Stage, ppo: Stage, group: Stage, dpo: Stage) -> dict[str, Stage]:
    """Every trained arm; the language arm is the PPO arm with the language-fidelity reward added."""
    lang = ppo.with_overrides(f"language_reward_weight={LANGUAGE_REWARD_WEIGHT}")
    return {"sft": sft, "rm": rm, "ppo": ppo, "group": group, "dpo": dpo, "ppo_lang": lang}


# One PPO iteration of 4 rollouts of 8 tokens: the trainer's every phase runs, in seconds.
_TOY_PPO = (
    "max_steps=1",
    "num_rollouts=4",
    "chunk_size=4",
    "per_device_train_batch_size=4",
    "max_new_tokens=8",
    "max_eval_samples=2",
)

TOY = Size(
    name="toy",
    model=None,
    rows={"sft": 24, "ranking": 16, "rl": 16},
    heldout=8,
    max_new_tokens=8,
    gen_batch=16,
    eval_docs={"arc": 2, "truthfulqa": 2},
    stages=_stages(
        Stage("sft", "tiny", ("max_steps=2",)),
        Stage("rm", "tiny", ("max_steps=2",)),
        Stage("rl", "tiny", _TOY_PPO),
        Stage("rl", "tiny-grpo", ("max_steps=1", "max_completion_length=8", "max_eval_samples=2")),
        Stage("dpo", "tiny", ("max_steps=1", "max_eval_samples=2")),
    ),
    note="tiny random models: checks that every stage and measure runs; nothing is learned",
)

# Budget for 2 idle cores and Gemma 3 270M, from the quickstart's measured stages (benchmarks/README.md):
# SFT ~9 s per step of 4 rows (~30 ms per token, forward and backward through the 262k-word head), the
# reward model ~4 s per step of 2 rankings (no LM head), PPO ~52 s per iteration of 8 rollouts x 32 tokens,
# greedy answers ~15 s per batch. SFT 32 steps ~310 s; RM 32 steps ~125 s; PPO 5 iterations ~295 s (twice);
# GRPO 6 steps of 2 prompts x 4 samples ~180 s; DPO 12 steps of 2 rankings (policy and reference) ~305 s;
# 6 arms x 64 held-out answers ~240 s; reward-model scores of 640 replies/responses ~140 s; Okapi items
# (only with OKAPI_HF_EVAL_DIR) ~310 s. About 37 minutes in all, plus ~90 s to convert Gemma on first use.
CPU = Size(
    name="cpu",
    model="gemma-3-270m",
    rows={"sft": 256, "ranking": 128, "rl": 64},
    heldout=32,
    max_new_tokens=48,  # the longest reference answer is 44 Gemma tokens
    gen_batch=32,  # decoding is memory-bound on the CPU: 32 replies cost little more than 16
    eval_docs={"arc": 10, "truthfulqa": 5},
    stages=_stages(
        Stage("sft", "small", (*_CPU, "max_steps=32")),
        Stage("rm", "small", (*_CPU, "max_steps=32")),
        Stage("rl", "small", (*_CPU, "max_steps=5", "max_eval_samples=8")),
        Stage("rl", "grpo", _GROUP_CPU),
        Stage("dpo", "okapi", _DPO_CPU),
    ),
    note="Gemma 3 270M, LoRA, a few dozen steps per stage: within 60 minutes on 2 CPU cores",
)

GPU = Size(
    name="gpu",
    model="gemma-3-270m",
    rows={"sft": 4000, "ranking": 3000, "rl": 2000},
    heldout=200,
    max_new_tokens=64,
    gen_batch=64,
    eval_docs={"arc": 300, "truthfulqa": 200},
    eval_shots=25,
    stages=_stages(
        Stage(
            "sft", "small", (*_GPU, "max_steps=-1", "num_train_epochs=1", "per_device_train_batch_size=16")
        ),
        Stage("rm", "small", (*_GPU, "max_steps=-1", "num_train_epochs=1", "per_device_train_batch_size=8")),
        Stage(
            "rl",
            "small",
            (
                *_GPU,
                "max_steps=200",
                "num_rollouts=64",
                "chunk_size=32",
                "per_device_train_batch_size=16",
                "ppo_epochs=4",
                "max_new_tokens=64",
                "max_eval_samples=64",
            ),
        ),
        Stage(
            "rl",
            "grpo",
            (
                *_GROUP_CPU,
                *_GPU,
                "max_steps=200",
                "per_device_train_batch_size=32",
                "per_device_eval_batch_size=32",
                "max_completion_length=64",
                "max_eval_samples=64",
            ),
        ),
        Stage(
            "dpo",
            "okapi",
            (
                *_DPO_CPU,
                *_GPU,
                "max_steps=-1",
                "num_train_epochs=1",
                "per_device_train_batch_size=8",
                "max_eval_samples=64",
            ),
        ),
    ),
    note="one GPU: thousands of rows, 200 RL iterations (64 rollouts each for PPO), bf16",
)

SIZES = {size.name: size for size in (TOY, CPU, GPU)}

# --smoke: a size's own recipes and overrides, with every count cut to seconds on tiny models.
_SMOKE = {
    "sft": ("max_steps=2", "bf16=false"),
    "rm": ("max_steps=2", "bf16=false"),
    "ppo": (
        *("max_steps=1", "bf16=false", "num_rollouts=4", "chunk_size=4", "per_device_train_batch_size=4"),
        *("max_new_tokens=8", "max_eval_samples=4"),
    ),
    "group": (
        *("max_steps=1", "bf16=false", "num_generations=2", "per_device_train_batch_size=4"),
        *("per_device_eval_batch_size=4", "max_completion_length=8", "max_eval_samples=4"),
    ),
    "dpo": ("max_steps=2", "bf16=false", "max_eval_samples=4"),
}


def smoke(size: Size) -> Size:
    """``size`` with its recipes intact but toy counts: checks a size's plumbing in a minute on tiny models."""
    stages = {}
    for arm, stage in size.stages.items():
        key = "ppo" if arm == "ppo_lang" else arm
        stages[arm] = stage.with_overrides(*_SMOKE[key])
    return replace(
        size,
        name=f"{size.name} (smoke)",
        rows=TOY.rows,
        heldout=TOY.heldout,
        max_new_tokens=TOY.max_new_tokens,
        gen_batch=TOY.gen_batch,
        eval_docs=TOY.eval_docs,
        eval_shots=0,
        stages=stages,
        note=f"{size.name} recipes at toy counts (--smoke): plumbing only, nothing is learned",
    )


def group_recipe(size: Size, algorithm: str) -> Size:
    """Swap the group arm's algorithm (grpo, the default, or rloo) keeping every override."""
    if algorithm == "grpo":
        return size
    stage = size.stages["group"]
    recipe = stage.recipe.replace("grpo", algorithm)
    return replace(size, stages={**size.stages, "group": replace(stage, recipe=recipe)})
