"""Listwise DPO: the loss against hand computations, the reference, the data, and the stage end to end."""

from __future__ import annotations

import json
import math
import shutil

import pytest
import torch
import torch.nn.functional as F
import yaml
from datasets import Dataset
from huggingface_hub import ModelCard
from peft import LoraConfig
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from okapi_hf.data.build import build_dataset
from okapi_hf.data.sample import write_sample_raw
from okapi_hf.errors import ConfigError, OkapiError
from okapi_hf.prompts import format_prompt
from okapi_hf.testing import CPU_TRAINING_ARGS, TINY_ARCHS, make_tiny_model
from okapi_hf.train.dpo import ListwiseDPOConfig, ListwiseDPOTrainer
from okapi_hf.train.recipes import parse_stage_args, recipe_file
from okapi_hf.train.run_dpo import main

# Okapi's columns, K = 4, 3 and 2 responses, best first
ROWS = [
    {
        "id": "spring",
        "instruction": "Viết một câu về mùa xuân.",
        "input": "",
        "responses": ["Mùa xuân hoa nở khắp nơi.", "Mùa xuân đẹp.", "Trời mưa.", "Không biết."],
    },
    {
        "id": "hello",
        "instruction": "Dịch sang tiếng Anh",
        "input": "Xin chào",
        "responses": ["Hello", "Hi there, friend", "Goodbye"],
    },
    {
        "id": "fruit",
        "instruction": "Kể tên ba loại trái cây.",
        "input": "",
        "responses": ["Táo, cam và chuối.", "Cà rốt."],
    },
]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    return {arch: make_tiny_model(arch, root / arch, seed=1) for arch in TINY_ARCHS}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_sample_raw(root / "raw", ["vi"])
    build = build_dataset(root / "raw", root / "okapi_hf", ["vi"], ["ranking"], progress=False)
    return {"path": str(root / "okapi_hf"), "splits": build.splits["vi-ranking"]}


def _trainer(model, tmp_path, rows=ROWS, **kw):
    config = ListwiseDPOConfig(**{**CPU_TRAINING_ARGS, "output_dir": str(tmp_path / "out"), "seed": 0, **kw})
    return ListwiseDPOTrainer(str(model), args=config, train_dataset=Dataset.from_list(rows))


def _batch(trainer):
    return trainer.data_collator([trainer.train_dataset[i] for i in range(len(trainer.train_dataset))])


def _hand_log_prob(model, tokenizer, row, response) -> float:
    """log pi(response + eos | Okapi prompt), from the plain logits of one unpadded sequence."""
    prompt = format_prompt(row["instruction"], row["input"])
    ids = tokenizer(prompt + response + tokenizer.eos_token)["input_ids"]
    start = len(tokenizer(prompt)["input_ids"])
    with torch.no_grad():
        logprobs = model(input_ids=torch.tensor([ids])).logits[0].float().log_softmax(-1)
    return sum(logprobs[t - 1, ids[t]].item() for t in range(start, len(ids)))


# -- the loss ------------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_at_step_zero_rewards_are_zero_and_the_losses_are_hand_computed(tiny, tmp_path, arch):
    """Policy == reference, so every implicit reward is 0: PL gives log K! per prompt, pairwise log 2."""
    trainer = _trainer(tiny[arch], tmp_path)
    batch = _batch(trainer)
    loss, outputs = trainer.compute_loss(trainer.model, batch, return_outputs=True)
    assert torch.equal(outputs["rewards"], torch.zeros(4 + 3 + 2))
    # -sum_i log softmax(0, ..., 0)[i] over the remaining K-i+1 responses = sum_i log(K-i+1)
    per_prompt = [sum(math.log(k - i) for i in range(k)) for k in (4, 3, 2)]
    assert per_prompt == pytest.approx([math.log(24), math.log(6), math.log(2)])
    assert loss.item() == pytest.approx(sum(per_prompt) / 3, abs=1e-6)
    trainer.args.loss_type = "pairwise"
    assert trainer.compute_loss(trainer.model, batch).item() == pytest.approx(math.log(2), abs=1e-6)


@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_at_k2_both_losses_are_standard_dpo_computed_by_hand(tiny, tmp_path, arch):
    rows = [{**row, "responses": row["responses"][:2]} for row in ROWS]
    beta = 0.5
    trainer = _trainer(tiny[arch], tmp_path, rows, beta=beta)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():  # move the policy away from its starting point; the reference must not follow
        for p in trainer.model.parameters():
            p.add_(torch.randn(p.shape, generator=generator) * 0.05)
    reference = AutoModelForCausalLM.from_pretrained(tiny[arch]).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny[arch])
    policy = trainer.model.eval()

    expected = []
    for row in rows:
        chosen, rejected = (
            _hand_log_prob(policy, tokenizer, row, r) - _hand_log_prob(reference, tokenizer, row, r)
            for r in row["responses"]
        )
        expected.append(-F.logsigmoid(torch.tensor(beta * (chosen - rejected))).item())
    expected = sum(expected) / len(expected)
    assert abs(expected - math.log(2)) > 1e-3, "the perturbation should move the rewards"

    batch = _batch(trainer)
    plackett_luce = trainer.compute_loss(policy, batch).item()
    trainer.args.loss_type = "pairwise"
    pairwise = trainer.compute_loss(policy, batch).item()
    assert plackett_luce == pytest.approx(expected, abs=1e-5)
    assert pairwise == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_only_response_tokens_and_eos_are_scored(tiny, tmp_path, arch):
    trainer = _trainer(tiny[arch], tmp_path)
    tokenizer = trainer.processing_class
    batch = _batch(trainer)
    assert (batch["attention_mask"][:, -1] == 0).any(), "the batch must actually be padded"
    sequence = 0
    for row in ROWS:
        prompt_tokens = len(tokenizer(format_prompt(row["instruction"], row["input"]))["input_ids"])
        for response in row["responses"]:
            ids, completion = batch["input_ids"][sequence], batch["completion_mask"][sequence].bool()
            assert not completion[:prompt_tokens].any()
            assert completion.nonzero().min().item() == prompt_tokens
            assert tokenizer.decode(ids[completion]) == response + tokenizer.eos_token
            sequence += 1
    assert batch["num_responses"] == [4, 3, 2]


def test_chat_prompts_score_only_the_assistant_turn(tiny, tmp_path):
    trainer = _trainer(tiny["llama"], tmp_path, ROWS[1:2], prompt_format="chat")
    tokenizer = trainer.processing_class
    batch = _batch(trainer)
    first = tokenizer.decode(batch["input_ids"][0][batch["attention_mask"][0].bool()])
    assert first.startswith("<|user|>") and "<|assistant|>" in first  # the chat template, not Okapi's
    pairs = zip(batch["input_ids"], batch["completion_mask"], strict=True)
    completions = [tokenizer.decode(ids[mask.bool()]) for ids, mask in pairs]
    assert completions == [r + tokenizer.eos_token for r in ROWS[1]["responses"]]


def test_with_lora_the_reference_is_the_base_model(tiny, tmp_path):
    config = ListwiseDPOConfig(**{**CPU_TRAINING_ARGS, "output_dir": str(tmp_path / "out")})
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    trainer = ListwiseDPOTrainer(
        str(tiny["llama"]), args=config, train_dataset=Dataset.from_list(ROWS), peft_config=lora
    )
    assert trainer.ref_model is None  # no copy of the model is kept
    batch = _batch(trainer)
    _, outputs = trainer.compute_loss(trainer.model, batch, return_outputs=True)
    assert torch.equal(outputs["rewards"], torch.zeros(9))  # a fresh adapter changes nothing yet
    with torch.no_grad():
        for name, p in trainer.model.named_parameters():
            if "lora_B" in name:
                p.add_(0.1)
    base = AutoModelForCausalLM.from_pretrained(tiny["llama"]).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny["llama"])
    by_hand = [_hand_log_prob(base, tokenizer, row, r) for row in ROWS for r in row["responses"]]
    torch.testing.assert_close(trainer.reference_log_probs(batch), torch.tensor(by_hand), atol=1e-4, rtol=0)
    policy = trainer.sequence_log_probs(trainer.model, batch)
    assert (policy - torch.tensor(by_hand)).abs().min() > 1e-3  # the adapter is on for the policy


def test_cleaning_counts_what_it_drops(tiny, tmp_path):
    rows = [
        {"id": "dup", "instruction": "Nói xin chào.", "input": "", "responses": ["Chào!", "", "Chào!", "Ừ."]},
        {
            "id": "long",
            "instruction": "Tóm tắt.",
            "input": "Một câu rất dài. " * 10,
            "responses": ["A.", "B."],
        },
        {
            "id": "ok",
            "instruction": "Đếm đến ba.",
            "input": "",
            "responses": ["Một, hai, ba.", "Ba.", "Hai."],
        },
        {"id": "big", "instruction": "Viết.", "input": "", "responses": ["Ngắn.", "Dài " * 200, "Vừa."]},
    ]
    trainer = _trainer(tiny["llama"], tmp_path, rows, max_length=256, max_prompt_length=128)
    report = trainer.data_reports["train"]
    assert report.dropped == {"empty": 1, "duplicate": 1, "overlong": 1, "long_prompt": 2}
    assert (report.rows_in, report.rows_kept, report.responses_kept) == (4, 3, 2 + 3 + 2)
    assert report.examples["long_prompt"] == ["long"] and report.examples["overlong"] == ["big"]
    assert "dropped 2 long_prompt responses (e.g. rows long)" in report.summary()
    assert [len(r) for r in trainer.train_dataset["response_ids"]] == [2, 3, 2]
    with pytest.raises(OkapiError, match="no usable rankings"):
        _trainer(tiny["llama"], tmp_path, rows[1:2], max_length=256, max_prompt_length=128)


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ({"loss_type": "listnet"}, "loss_type must be one of"),
        ({"beta": 0.0}, "beta must be positive"),
        ({"max_length": 64, "max_prompt_length": 64}, "must be below max_length"),
    ],
)
def test_bad_options_are_config_errors(tmp_path, option, message):
    with pytest.raises(ConfigError, match=message):
        ListwiseDPOConfig(**{**CPU_TRAINING_ARGS, "output_dir": str(tmp_path), **option})


@pytest.mark.slow
def test_accumulation_and_precomputed_reference_give_the_same_loss_curve(tiny, tmp_path):
    data = ROWS * 4  # 12 rankings: 3 updates of 4
    curves = {}
    for name, kw in {
        "4x1": {"per_device_train_batch_size": 4},
        "2x2": {"per_device_train_batch_size": 2, "gradient_accumulation_steps": 2},
        "precomputed": {"per_device_train_batch_size": 4, "precompute_ref_log_probs": True},
    }.items():
        trainer = _trainer(
            tiny["llama"], tmp_path, data, learning_rate=1e-3, logging_steps=1, num_train_epochs=1, **kw
        )
        assert (trainer.ref_model is None) == (name == "precomputed")
        trainer.train()
        curves[name] = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert len(curves["4x1"]) == 3
    assert curves["2x2"] == pytest.approx(curves["4x1"], abs=1e-5)
    assert curves["precomputed"] == pytest.approx(curves["4x1"], abs=1e-5)
    assert curves["4x1"][-1] < curves["4x1"][0] - 1e-3, "the loss should move down"


# -- the stage end to end ------------------------------------------------------------------------


def _run(tiny, built, arch, *overrides, run="t", model=True):
    flags = {"lang": "vi", "dataset_path": built["path"], "run": run}
    if model:
        flags["model_name_or_path"] = str(tiny[arch])
    return main(list(overrides), recipe="tiny", **flags)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("arch", "lora"),
    [
        ("bloom", []),
        # merge_lora: the policy is written merged (LoRA stages save adapters unless asked)
        (
            "llama",
            [
                "use_peft=true",
                "lora_r=8",
                "lora_alpha=16",
                "lora_target_modules=q_proj,v_proj",
                "merge_lora=true",
            ],
        ),
    ],
)
def test_train_dpo_learns_the_rankings_and_writes_a_loadable_policy(
    tiny, built, tmp_path, monkeypatch, arch, lora
):
    monkeypatch.chdir(tmp_path)
    lr = ["learning_rate=1e-2"] if lora else []
    small = ["max_steps=4", "max_train_samples=4", "per_device_train_batch_size=2", "eval_strategy=no"]
    out = _run(tiny, built, arch, *small, *lr, *lora)  # 2 epochs of 2 steps, then one evaluation
    assert out.resolve() == (tmp_path / "runs" / "t" / "dpo").resolve()

    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    train = [h for h in history if "loss" in h]
    assert len(train) == 4
    assert train[0]["loss"] == pytest.approx(
        math.log(24), abs=1e-5
    )  # all rewards 0: 4! equally likely orders
    assert train[0]["rewards/margins"] == 0 and train[0]["pairwise_accuracy"] == 0  # ties rank nothing
    assert train[-1]["loss"] < train[0]["loss"]
    assert train[-1]["rewards/margins"] > 0
    assert train[-1]["pairwise_accuracy"] > 0.5
    final = history[-1]  # the evaluation after training
    assert final["eval_loss"] > 0 and 0 <= final["eval_pairwise_accuracy"] <= 1
    assert "eval_rewards/margins" in final and "rewards/margins" not in final  # prefixed like eval_loss

    assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()
    assert not (out / "adapter_config.json").exists()
    saved = load_file(out / "model.safetensors")
    assert not any("lora" in key or "base_layer" in key for key in saved)
    start = load_file(tiny[arch] / "model.safetensors")
    assert any(not torch.equal(saved[k], start[k]) for k in start if k in saved), "the policy should change"
    model, info = AutoModelForCausalLM.from_pretrained(out, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert type(model).__name__.lower().startswith(arch)
    tokenizer = AutoTokenizer.from_pretrained(out)
    inputs = tokenizer(format_prompt("Thủ đô của Việt Nam là gì?"), return_tensors="pt")
    generated = model.generate(**inputs, max_new_tokens=3, do_sample=False)
    assert generated.shape[1] > inputs["input_ids"].shape[1]

    config = yaml.safe_load((out / "run_config.yaml").read_text())
    assert list(config) == ["RunArguments", "ListwiseDPOConfig", "ModelConfig"]
    assert (
        config["ListwiseDPOConfig"]["loss_type"] == "plackett_luce"
        and config["ListwiseDPOConfig"]["beta"] == 0.1
    )
    assert config["ModelConfig"]["use_peft"] is bool(lora)
    report = json.loads((out / "ranking_data_report.json").read_text())
    assert report["train"]["rows_in"] == 4 and report["train"]["rows_kept"] == 4
    assert report["eval"]["rows_in"] == built["splits"]["validation"]
    card = ModelCard.load(out / "README.md")
    assert card.data.pipeline_tag == "text-generation" and card.data.language == ["vi"]
    assert "dpo" in card.data.tags and "vi-ranking" in card.text
    assert "okapi-hf addition" in card.text


def test_the_default_model_is_the_sft_stage_and_its_absence_names_the_command(
    tiny, built, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(OkapiError) as err:
        _run(tiny, built, None, "max_steps=1", run="nothing", model=False)
    assert "`okapi-hf train sft --lang vi --run nothing`" in str(err.value)
    assert "runs/nothing/sft" in str(err.value) and "--model" in str(err.value)
    assert not (tmp_path / "runs" / "nothing" / "dpo").exists()

    shutil.copytree(tiny["llama"], tmp_path / "runs" / "chain" / "sft")
    out = _run(
        tiny, built, None, "max_steps=1", "max_train_samples=4", "eval_strategy=no", run="chain", model=False
    )
    assert (out / "model.safetensors").is_file()
    assert "runs/chain/sft" in ModelCard.load(out / "README.md").text


# -- recipes -------------------------------------------------------------------------------------


def test_the_okapi_recipe():
    recipe = yaml.safe_load(recipe_file("dpo", "okapi").read_text())
    assert recipe["loss_type"] == "plackett_luce" and recipe["beta"] == 0.1
    assert 5e-7 <= recipe["learning_rate"] <= 1e-6
    assert recipe["max_length"] == 768 and recipe["bf16"] is True
    assert recipe["per_device_train_batch_size"] * recipe["gradient_accumulation_steps"] == 16
    assert "okapi-hf addition" in recipe_file("dpo", "okapi").read_text()
    _, config, _ = parse_stage_args("dpo", ListwiseDPOConfig, "okapi", ["bf16=false"], lang="vi")
    assert (config.learning_rate, config.beta, config.max_length) == (recipe["learning_rate"], 0.1, 768)
    assert (config.adam_beta1, config.adam_beta2) == (0.9, 0.95)  # Okapi's AdamW betas
    _, tiny_config, _ = parse_stage_args("dpo", ListwiseDPOConfig, "tiny", [], lang="vi")
    assert tiny_config.use_cpu and not tiny_config.bf16 and not tiny_config.gradient_checkpointing


def test_unknown_recipes_keys_and_values_are_errors(tmp_path):
    with pytest.raises(OkapiError, match=r"no dpo recipe named 'nonesuch'.*okapi, tiny"):
        recipe_file("dpo", "nonesuch")
    recipe = tmp_path / "mine.yaml"
    recipe.write_text("bf16: false\nbeta: 0.2\nnot_a_field: 3\n")
    with pytest.raises(OkapiError, match="not_a_field") as err:
        parse_stage_args("dpo", ListwiseDPOConfig, str(recipe), [], lang="vi")
    assert str(recipe) in str(err.value)
    with pytest.raises(OkapiError, match="invalid choice"):
        parse_stage_args("dpo", ListwiseDPOConfig, "tiny", ["loss_type=listnet"], lang="vi")
    with pytest.raises(OkapiError, match="beta must be positive"):
        parse_stage_args("dpo", ListwiseDPOConfig, "tiny", ["beta=0"], lang="vi")
