"""okapi-hf's own PPO trainer on tiny random models: it learns, it freezes what it should, it resumes exactly."""

from __future__ import annotations

import inspect
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml
from datasets import Dataset
from huggingface_hub import ModelCard
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

from okapi_hf.data.build import build_dataset
from okapi_hf.data.sample import write_sample_raw
from okapi_hf.errors import ConfigError, DataError, OkapiError
from okapi_hf.prompts import format_prompt
from okapi_hf.testing import CPU_TRAINING_ARGS, TINY_ARCHS, make_tiny_model
from okapi_hf.train import run_rl
from okapi_hf.train.ppo import PPOConfig, PPOTrainer
from okapi_hf.train.ppo_math import AdaptiveKLController

# small enough for a CPU: one generation chunk of 8 rollouts, two update mini-batches of 4
TINY_PPO = {
    "num_rollouts": 8,
    "chunk_size": 8,
    "per_device_train_batch_size": 4,
    "ppo_epochs": 2,
    "max_new_tokens": 6,
    "learning_rate": 1e-3,
    "num_unfrozen_layers": 1,  # of the tiny models' 2 blocks (PPOConfig's default is Okapi's 5)
    "seed": 0,
}
ITERATION_KEYS = (
    "reward/score",
    "objective/kl",
    "objective/kl_coef",
    "objective/entropy",
    "policy/clipfrac",
    "loss/policy",
    "loss/value",
    "response_length",
    "time/generate",
    "time/forward",
    "time/score",
    "time/update",
    "time/iteration",
)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny-ppo")
    return {arch: make_tiny_model(arch, root / arch, seed=3) for arch in TINY_ARCHS}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """The sample data's Vietnamese RL prompts (15 train, 1 validation)."""
    root = tmp_path_factory.mktemp("ppo-data")
    write_sample_raw(root / "raw", ["vi"])
    build_dataset(root / "raw", root / "okapi_hf", ["vi"], ["rl"], progress=False)
    return root / "okapi_hf"


def _prompts(n: int = 16) -> Dataset:
    rows = [
        {"instruction": f"Viết một câu số {i}.", "input": "", "lang": "vi", "id": str(i)} for i in range(n)
    ]
    return Dataset.from_list(rows)


def _config(out: Path, **kw) -> PPOConfig:
    return PPOConfig(**{**CPU_TRAINING_ARGS, "output_dir": str(out), **TINY_PPO, **kw})


def _iterations(log_history: list[dict]) -> list[dict]:
    return [h for h in log_history if "reward/score" in h]


def _zero_reward(prompts, completions, **kwargs):
    return [0.0] * len(prompts)


def _policy(trainer: PPOTrainer):
    return trainer.accelerator.unwrap_model(trainer.model).policy


# -- learning ----------------------------------------------------------------------------------------------


def _first_token_probs(model, tokenizer, prompts: list[str]) -> torch.Tensor:
    """Mean next-token distribution after each prompt (left-padded, as the trainer generates)."""
    enc = tokenizer(prompts, return_tensors="pt", padding=True, padding_side="left")
    kwargs = {}
    if "position_ids" in inspect.signature(model.forward).parameters:
        kwargs["position_ids"] = (enc.attention_mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        return model(**enc, **kwargs).logits[:, -1].softmax(-1).mean(0)


# Llama's sharpened head overshoots above ~3e-4; BLOOM's (tied to its input embeddings) moves far slower
LEARNING = {
    "llama": {"learning_rate": 1e-4, "max_steps": 4},
    "bloom": {"learning_rate": 3e-3, "max_steps": 10},
}


@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_a_reward_for_one_token_raises_its_probability(tiny, tmp_path, arch):
    """Reward 1 when a response opens with one chosen token: PPO must carry that reward, paid at the last
    token, back to the first one and make the token more likely."""
    path = tiny[arch]
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    prompts = [format_prompt(f"Viết một câu số {i}.") for i in range(16)]
    before = _first_token_probs(model, tokenizer, prompts[:8])
    while before.max() < 0.25:  # sharpen until one token is sampled often enough to learn from, not always
        with torch.no_grad():
            model.get_output_embeddings().weight.mul_(1.25)
        before = _first_token_probs(model, tokenizer, prompts[:8])
    target = int(before.argmax())
    assert before[target] < 0.5

    def opens_with_target(prompts, completions, completion_ids, **kwargs):
        return [float(ids[0] == target) for ids in completion_ids]

    config = _config(
        tmp_path,
        num_rollouts=16,
        chunk_size=16,
        per_device_train_batch_size=8,
        max_new_tokens=4,
        num_unfrozen_layers=None,
        init_kl_coef=0.0,
        target_kl=None,
        **LEARNING[arch],
    )
    data = Dataset.from_list([{"prompt": p} for p in prompts])
    torch.manual_seed(0)  # the value head is drawn before the trainer seeds (see test_the_seed_alone_...)
    trainer = PPOTrainer(model, config, tokenizer, data, reward_funcs=[opens_with_target])
    trainer.train()
    after = _first_token_probs(_policy(trainer), tokenizer, prompts[:8])
    scores = [h["reward/score"] for h in _iterations(trainer.state.log_history)]
    assert after[target] > before[target] + 0.3, (before[target].item(), after[target].item(), scores)
    assert len(scores) == LEARNING[arch]["max_steps"]
    assert scores[-1] > scores[0] + 0.3, scores
    assert max(h["response_length"] for h in _iterations(trainer.state.log_history)) > 1


@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_iterations_against_a_reward_model_train_only_the_top_block(tiny, tmp_path, arch):
    tokenizer = AutoTokenizer.from_pretrained(tiny[arch])
    model = AutoModelForCausalLM.from_pretrained(tiny[arch])
    torch.manual_seed(0)
    reward_model = AutoModelForSequenceClassification.from_pretrained(tiny[arch], num_labels=1)
    original = load_file(tiny[arch] / "model.safetensors")
    config = _config(tmp_path, max_steps=2)
    trainer = PPOTrainer(model, config, tokenizer, _prompts(), reward_model=reward_model)
    value_head = trainer.model.value_head.weight.detach().clone()
    trainer.train()

    logs = _iterations(trainer.state.log_history)
    assert len(logs) == 2
    for entry in logs:
        missing = [k for k in ITERATION_KEYS if k not in entry]
        assert not missing, missing
        assert all(torch.isfinite(torch.tensor(entry[k])) for k in ITERATION_KEYS)
        assert 1 <= entry["response_length"] <= TINY_PPO["max_new_tokens"]
    assert logs[0]["objective/kl"] == pytest.approx(0.0, abs=1e-5)  # the policy starts as its reference
    assert logs[1]["loss/value"] != logs[0]["loss/value"]
    assert not torch.equal(trainer.accelerator.unwrap_model(trainer.model).value_head.weight, value_head)

    policy = _policy(trainer).state_dict()
    changed = {k for k, v in policy.items() if k in original and not torch.equal(v, original[k])}
    blocks = "model.layers." if arch == "llama" else "transformer.h."
    assert not any(k.startswith(f"{blocks}0.") for k in changed), "the bottom block is frozen"
    assert not any("embed" in k for k in changed), "the embeddings are frozen"
    assert any(k.startswith(f"{blocks}1.") for k in changed), "the top block trains"
    reference = trainer.ref_model.state_dict()
    assert all(torch.equal(reference[k], original[k]) for k in original if k in reference)
    assert not any(p.requires_grad for p in trainer.ref_model.parameters())
    assert not any(p.requires_grad for p in trainer.reward_model.parameters())


def test_the_response_mask_ends_at_the_first_eos():
    eos, pad = 2, 3
    tok = SimpleNamespace(processing_class=SimpleNamespace(eos_token_id=eos, pad_token_id=pad))
    responses = torch.tensor(
        [
            [10, 11, eos, 12, eos, 13],  # EOS itself is kept, the rest is not
            [eos, 10, 11, 12, 13, 14],
            [10, 11, 12, 13, 14, 15],  # no EOS: the length limit ended it
            [10, 11, 12, 13, 14, eos],
        ]
    )
    mask = PPOTrainer._response_mask(tok, responses)
    assert mask.tolist() == [
        [1, 1, 1, 0, 0, 0],
        [1, 0, 0, 0, 0, 0],
        [1, 1, 1, 1, 1, 1],
        [1, 1, 1, 1, 1, 1],
    ]


def test_the_seed_alone_decides_the_value_head(tiny, tmp_path):
    """A run is reproducible from ``seed``: the value head must not depend on what drew random numbers before."""
    path = tiny["llama"]
    tokenizer = AutoTokenizer.from_pretrained(path)
    heads = {}
    for global_seed, seed in ((1, 0), (2, 0), (1, 5)):
        torch.manual_seed(global_seed)  # the state some earlier code left behind
        model = AutoModelForCausalLM.from_pretrained(path)
        trainer = PPOTrainer(
            model, _config(tmp_path, seed=seed), tokenizer, _prompts(8), reward_funcs=[_zero_reward]
        )
        heads[global_seed, seed] = trainer.model.value_head.weight.detach().clone()
    assert torch.equal(heads[1, 0], heads[2, 0])
    assert not torch.equal(heads[1, 0], heads[1, 5])


# -- the KL penalty ----------------------------------------------------------------------------------------


def test_the_adaptive_kl_coefficient_follows_the_measured_kl(tiny, tmp_path):
    path = tiny["llama"]
    tokenizer = AutoTokenizer.from_pretrained(path)
    # a short horizon makes each step of the controller visible: coef *= 1 + e * 8 / 40
    config = _config(
        tmp_path, max_steps=3, init_kl_coef=0.1, target_kl=0.5, kl_horizon=40, learning_rate=3e-3
    )
    model = AutoModelForCausalLM.from_pretrained(path)
    trainer = PPOTrainer(
        model, config, tokenizer, _prompts(), reward_funcs=[lambda prompts, **kw: [1.0] * len(prompts)]
    )
    trainer.train()
    logs = _iterations(trainer.state.log_history)
    assert logs[0]["objective/kl_coef"] == pytest.approx(0.1)
    expected = AdaptiveKLController(value=0.1, target=0.5, horizon=40)
    for entry in logs:
        assert entry["objective/kl_coef"] == pytest.approx(expected.value, rel=1e-6)
        expected.update(entry["objective/kl"], n_steps=8)
    assert trainer.kl_ctl.value == pytest.approx(expected.value, rel=1e-6)
    coefs = [entry["objective/kl_coef"] for entry in logs]
    assert coefs[1] < coefs[0]  # no KL yet after the first iteration: the coefficient shrinks by 20%/5
    assert len(set(coefs)) == 3


def test_a_fixed_kl_coefficient_and_zero_rewards(tiny, tmp_path):
    path = tiny["llama"]
    config = _config(tmp_path, max_steps=2, init_kl_coef=0.0, target_kl=None, learning_rate=3e-3)
    trainer = PPOTrainer(
        AutoModelForCausalLM.from_pretrained(path),
        config,
        AutoTokenizer.from_pretrained(path),
        _prompts(),
        reward_funcs=[_zero_reward],
    )
    trainer.train()
    logs = _iterations(trainer.state.log_history)
    assert [entry["objective/kl_coef"] for entry in logs] == [0.0, 0.0]
    assert trainer.kl_ctl.value == 0.0
    assert logs[1]["objective/kl"] != 0.0  # the policy moved, but no coefficient means no penalty
    for entry in logs:
        assert entry["reward/score"] == 0.0
        assert entry["objective/non_score_reward"] == 0.0
        assert entry["objective/rlhf_reward"] == 0.0


# -- checkpoints -------------------------------------------------------------------------------------------


def _resumable_run(path: Path, out: Path, **kw) -> PPOTrainer:
    def short_and_varied(prompts, completions, completion_ids, **kwargs):
        return [1.0 / len(ids) + 0.01 * (ids[0] % 7) for ids in completion_ids]

    config = _config(out, max_steps=4, save_strategy="steps", save_steps=2, **kw)
    return PPOTrainer(
        AutoModelForCausalLM.from_pretrained(path),
        config,
        AutoTokenizer.from_pretrained(path),
        _prompts(),
        reward_funcs=[short_and_varied],
    )


@pytest.mark.parametrize("schedule", ["constant", "linear"])
def test_resuming_from_a_checkpoint_repeats_the_same_iterations(tiny, tmp_path, schedule):
    """Run A saves at iterations 2 and 4; run B starts from A's checkpoint-2 alone and must log A's 3 and 4.

    That needs the policy, value head, optimizer, learning-rate schedule, KL coefficient and sampling RNG
    all restored; 8 of 16 prompts per iteration also checks the prompt order carries on where it stopped.
    """
    path = tiny["llama"]
    first = _resumable_run(path, tmp_path / "a", lr_scheduler_type=schedule)
    first.train()
    assert sorted(p.name for p in (tmp_path / "a").glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
    shutil.copytree(tmp_path / "a" / "checkpoint-2", tmp_path / "b" / "checkpoint-2")
    second = _resumable_run(path, tmp_path / "b", lr_scheduler_type=schedule)
    second.train(resume_from_checkpoint=str(tmp_path / "b" / "checkpoint-2"))

    a, b = _iterations(first.state.log_history), _iterations(second.state.log_history)
    assert len(a) == len(b) == 4
    assert b[:2] == a[:2]  # the history comes from the checkpoint
    keys = ("reward/score", "loss/policy", "loss/value", "objective/kl", "objective/kl_coef", "learning_rate")
    for later_a, later_b in zip(a[2:], b[2:], strict=True):
        assert {k: later_b[k] for k in keys} == pytest.approx({k: later_a[k] for k in keys}, abs=1e-5)
    final_a, final_b = _policy(first).state_dict(), _policy(second).state_dict()
    for key, value in final_a.items():
        torch.testing.assert_close(final_b[key], value, atol=1e-5, rtol=0)


def test_resuming_from_a_folder_without_ppo_state_is_a_config_error(tiny, tmp_path):
    (tmp_path / "not-a-checkpoint").mkdir()
    trainer = _resumable_run(tiny["llama"], tmp_path / "out")
    with pytest.raises(ConfigError, match="not a PPO checkpoint"):
        trainer.train(resume_from_checkpoint=str(tmp_path / "not-a-checkpoint"))


# -- configuration -----------------------------------------------------------------------------------------


def test_invalid_settings_are_config_errors(tiny, tmp_path):
    path = tiny["llama"]
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    reward = [_zero_reward]
    with pytest.raises(ConfigError, match="per_device_train_batch_size x gradient_accumulation_steps = 8"):
        PPOTrainer(
            model,
            _config(tmp_path, num_rollouts=12, per_device_train_batch_size=4, gradient_accumulation_steps=2),
            tokenizer,
            _prompts(),
            reward_funcs=reward,
        )
    with pytest.raises(ConfigError, match="'rloo'"):
        _config(tmp_path, algorithm="rloo")
    with pytest.raises(ConfigError, match="num_rollouts"):
        _config(tmp_path, num_rollouts=0)
    with pytest.raises(ConfigError, match="temperature"):
        _config(tmp_path, temperature=0.0)
    with pytest.raises(ConfigError, match="reward_model or at least one reward function"):
        PPOTrainer(model, _config(tmp_path), tokenizer, _prompts())
    with pytest.raises(ConfigError, match="reward_weights"):
        PPOTrainer(
            model, _config(tmp_path), tokenizer, _prompts(), reward_funcs=reward, reward_weights=[1, 2]
        )


def test_bad_prompts_are_data_errors(tiny, tmp_path):
    path = tiny["llama"]
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    trainer = PPOTrainer(model, _config(tmp_path), tokenizer, _prompts(5), reward_funcs=[_zero_reward])
    with pytest.raises(DataError, match="5 training prompts are fewer than num_rollouts=8"):
        trainer.train()
    with pytest.raises(DataError, match="`prompt` or an `instruction` column"):
        PPOTrainer(
            model,
            _config(tmp_path),
            tokenizer,
            Dataset.from_list([{"text": "x"}] * 8),
            reward_funcs=[_zero_reward],
        )


def test_an_empty_validation_split_is_no_evaluation(tiny, tmp_path):
    """`max_eval_samples=0` leaves an empty validation split: nothing to score, and the card still renders."""
    path = tiny["llama"]
    trainer = PPOTrainer(
        AutoModelForCausalLM.from_pretrained(path),
        _config(tmp_path),
        AutoTokenizer.from_pretrained(path),
        _prompts(8),
        reward_funcs=[_zero_reward],
        eval_dataset=_prompts(8).select([]),
    )
    assert trainer.evaluate() == {}
    assert "- train: 8 prompts, 0 left-truncated" in trainer.prompt_summary()


def test_long_prompts_are_left_truncated_and_counted(tiny, tmp_path):
    path = tiny["llama"]
    tokenizer = AutoTokenizer.from_pretrained(path)
    rows = [{"prompt": format_prompt("Viết một câu." + " Thêm nữa." * (40 * (i % 2)))} for i in range(8)]
    limit = len(tokenizer(rows[0]["prompt"]).input_ids) + 4  # the short prompts fit, the long ones do not
    trainer = PPOTrainer(
        AutoModelForCausalLM.from_pretrained(path),
        _config(tmp_path, max_prompt_length=limit),
        tokenizer,
        Dataset.from_list(rows),
        reward_funcs=[_zero_reward],
    )
    data = trainer.train_dataset
    assert data["truncated"] == [False, True] * 4
    assert [len(ids) for ids in data["prompt_ids"][:2]] == [limit - 4, limit]
    full = tokenizer(rows[1]["prompt"]).input_ids
    assert data[1]["prompt_ids"][-20:] == full[-20:]  # the end, where the response begins, is kept
    assert f"8 prompts, 4 left-truncated to {limit} tokens" in trainer.prompt_summary()


# -- `okapi-hf train rl` from Python -----------------------------------------------------------------------


def _train_rl(built, tmp_path, *argv, **flags):
    flags = {
        "lang": "vi",
        "dataset_path": str(built),
        "run": "r",
        "runs_dir": str(tmp_path / "runs"),
        **flags,
    }
    return run_rl.main(list(argv), recipe="tiny", **flags)


def test_train_ppo_saves_a_plain_causal_lm_with_a_card(tiny, built, tmp_path, capfd):
    rm = tmp_path / "rm"
    shutil.copytree(tiny["llama"], rm)  # a fresh reward model, from a folder of its own
    out = _train_rl(
        built,
        tmp_path,
        "max_steps=2",
        "max_new_tokens=6",
        model_name_or_path=str(tiny["llama"]),
        reward_model_path=str(rm),
    )
    assert out == tmp_path / "runs" / "r" / "rl"
    assert (out / "model.safetensors").is_file() and (out / "config.json").is_file()
    assert not (out / "pytorch_model.bin").exists()
    assert (out / "tokenizer.json").is_file() and (out / "tokenizer_config.json").is_file()
    saved = load_file(out / "model.safetensors")
    assert not any("value_head" in key for key in saved)
    assert set(saved) == set(load_file(tiny["llama"] / "model.safetensors"))
    model, info = AutoModelForCausalLM.from_pretrained(out, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert type(model).__name__ == "LlamaForCausalLM"

    config = yaml.safe_load((out / "run_config.yaml").read_text())
    assert list(config) == ["RunArguments", "PPOConfig", "ModelConfig"]
    assert config["PPOConfig"]["reward_model_path"] == str(rm)
    assert config["PPOConfig"]["max_steps"] == 2 and config["PPOConfig"]["num_rollouts"] == 8
    state = json.loads((out / "trainer_state.json").read_text())
    assert len(_iterations(state["log_history"])) == 2
    assert any("eval_score" in h for h in state["log_history"])  # the validation prompt was scored

    card = ModelCard.load(out / "README.md")
    assert card.data.language == ["vi"]
    assert "ppo" in card.data.tags and card.data.pipeline_tag == "text-generation"
    assert str(rm) in card.text and str(tiny["llama"]) in card.text
    assert "15 prompts" in card.text  # the prompt report

    # the terminal: progress and a summary; each iteration's log dict is in train.log only
    terminal = "".join(capfd.readouterr())
    assert "'reward/score'" not in terminal and "'objective/kl'" not in terminal
    assert "okapi-hf train rl: 2 steps in " in terminal and "reward/score " in terminal
    assert f"full log in {out / 'train.log'}" in terminal
    log = (out / "train.log").read_text(encoding="utf-8")
    assert len([line for line in log.splitlines() if "step " in line and "'reward/score':" in line]) == 2


def test_the_language_reward_can_be_the_identifier(tiny, built, tmp_path, monkeypatch):
    from okapi_hf.train import rewards

    calls = []

    def spy(prompts, completions, lang=None, **kw):
        calls.append(list(lang))
        return rewards.language_id_reward(prompts, completions, lang=lang, **kw)

    monkeypatch.setitem(rewards.LANGUAGE_REWARDS, "identifier", spy)
    models = {"model_name_or_path": str(tiny["llama"]), "reward_model_path": str(tiny["llama"])}
    options = ["max_steps=1", "max_new_tokens=4", "language_reward_weight=1.0", "language_reward=identifier"]
    out = _train_rl(built, tmp_path, *options, **models)
    assert calls and all(set(langs) == {"vi"} for langs in calls)  # every rollout batch was scored by it
    assert (
        yaml.safe_load((out / "run_config.yaml").read_text())["PPOConfig"]["language_reward"] == "identifier"
    )
    with pytest.raises(
        OkapiError, match=r"invalid choice: .fasttext. \(choose from .heuristic., .identifier.\)"
    ):
        _train_rl(built, tmp_path, "language_reward=fasttext", **models)


def test_train_rl_resumes_from_its_newest_checkpoint(tiny, built, tmp_path):
    models = {"model_name_or_path": str(tiny["llama"]), "reward_model_path": str(tiny["llama"])}
    saving = ["save_strategy=steps", "save_steps=1", "max_new_tokens=4"]
    out = _train_rl(built, tmp_path, "max_steps=2", *saving, **models)
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-2"]
    first = _iterations(json.loads((out / "trainer_state.json").read_text())["log_history"])
    _train_rl(built, tmp_path, "max_steps=3", "resume_from_checkpoint=true", *saving, **models)
    second = _iterations(json.loads((out / "trainer_state.json").read_text())["log_history"])
    assert len(second) == 3 and second[:2] == first  # iteration 3 only, after checkpoint-2
    assert (out / "checkpoint-3").is_dir()


def test_a_reward_model_with_another_tokenizer_is_refused_before_training(tiny, built, tmp_path):
    other = make_tiny_model("llama", tmp_path / "other-rm", vocab_size=512)
    with pytest.raises(ConfigError, match="different tokenizers") as err:
        _train_rl(built, tmp_path, model_name_or_path=str(tiny["llama"]), reward_model_path=str(other))
    assert str(tiny["llama"]) in str(err.value) and str(other) in str(err.value)
    assert not (tmp_path / "runs" / "r" / "rl").exists()


def test_missing_stages_name_the_command_that_makes_them(tiny, built, tmp_path):
    with pytest.raises(OkapiError, match="`okapi-hf train rm --lang vi --run r") as err:
        _train_rl(built, tmp_path, model_name_or_path=str(tiny["llama"]))
    assert str(tmp_path / "runs" / "r" / "rm") in str(err.value)
    with pytest.raises(OkapiError, match="`okapi-hf train sft --lang vi --run r"):
        _train_rl(built, tmp_path, reward_model_path=str(tiny["llama"]))
    assert not (tmp_path / "runs" / "r" / "rl").exists()


def test_an_unknown_recipe_key_is_an_error(tiny, built, tmp_path):
    with pytest.raises(OkapiError, match="not_a_key"):
        _train_rl(
            built,
            tmp_path,
            "not_a_key=1",
            model_name_or_path=str(tiny["llama"]),
            reward_model_path=str(tiny["llama"]),
        )


def test_the_algorithm_key_picks_the_config():
    assert run_rl.config_class("ppo") is PPOConfig
    with pytest.raises(OkapiError, match="unknown RL algorithm 'a2c'"):
        run_rl.config_class("a2c")
    assert run_rl._algorithm("tiny", []) == "ppo"
    assert run_rl._algorithm("tiny", ["algorithm=grpo"]) == "grpo"
    recipe = yaml.safe_load(run_rl.recipe_file("rl", "okapi").read_text())
    okapi = {
        "num_rollouts": 128,
        "ppo_epochs": 4,
        "init_kl_coef": 0.1,
        "target_kl": 6.0,
        "num_unfrozen_layers": 5,
        "learning_rate": 1e-6,
        "kl_horizon": 10000,
        "lam": 0.95,
        "gamma": 1.0,
        "cliprange": 0.2,
    }
    assert {k: recipe[k] for k in okapi} == okapi
    defaults = PPOConfig(output_dir="x", use_cpu=True, bf16=False)
    assert {k: getattr(defaults, k) for k in okapi} == okapi  # the recipe restates the defaults


# -- two processes -----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_two_cpu_processes_train_and_save_once(tiny, built, tmp_path):
    runs = tmp_path / "runs"
    cmd = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--main_process_port",
        "29541",
        "-m",
        "okapi_hf.cli",
        "train",
        "rl",
        "--recipe",
        "tiny",
        "--lang",
        "vi",
        "--model",
        str(tiny["llama"]),
        "--data",
        str(built),
        "--run",
        "ddp",
        f"reward_model_path={tiny['llama']}",
        "use_cpu=true",
        f"runs_dir={runs}",
        "max_new_tokens=6",
        "disable_tqdm=true",
    ]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=240
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = runs / "ddp" / "rl"
    assert proc.stdout.count("saved to") == 2, "one line per process"
    assert (out / "model.safetensors").is_file() and (out / "README.md").is_file()
    AutoModelForCausalLM.from_pretrained(out)
    state = json.loads((out / "trainer_state.json").read_text())
    logs = _iterations(state["log_history"])
    assert len(logs) == 3  # the tiny recipe's max_steps
    assert all(1 <= entry["response_length"] <= 6 for entry in logs)
    # one validation prompt for two processes: the uneven share is padded, and the padding not counted
    evals = [h for h in state["log_history"] if "eval_score" in h]
    assert len(evals) == 1 and evals[0]["eval_response_length"] <= 6
