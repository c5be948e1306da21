"""Invariants of the K-wise reward trainer: what must equal what, the trl way."""

from __future__ import annotations

import copy
import itertools
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from datasets import Dataset
from transformers import AutoModelForSequenceClassification, AutoTokenizer
from trl import RewardConfig, RewardTrainer

from okapi_hf.data.build import build_dataset
from okapi_hf.data.sample import write_sample_raw
from okapi_hf.prompts import format_prompt
from okapi_hf.testing import CPU_TRAINING_ARGS, TINY_ARCHS, make_tiny_model
from okapi_hf.train.reward import (
    RankedRewardConfig,
    RankedRewardTrainer,
    by_prompt,
    pairwise_loss,
    plackett_luce_loss,
)

ROWS = [
    {
        "prompt": format_prompt("Viết một câu về mùa xuân."),
        "responses": ["Mùa xuân hoa nở khắp nơi.", "Mùa xuân đẹp.", "Trời mưa.", "Không biết."],
    },
    {
        "prompt": format_prompt("Dịch sang tiếng Anh", "Xin chào"),
        "responses": ["Hello", "Hi there, friend", "Goodbye", "Xin chào"],
    },
    {
        "prompt": format_prompt("Kể tên ba loại trái cây."),
        "responses": ["Táo, cam và chuối.", "Táo và cam.", "Cà rốt.", "Tôi thích màu xanh lá cây lắm."],
    },
]


def _config(tmp_path: Path, cls=RankedRewardConfig, **kw):
    return cls(**{**CPU_TRAINING_ARGS, "output_dir": str(tmp_path / "out"), "seed": 0, **kw})


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny")
    return {arch: make_tiny_model(arch, root / arch, seed=1) for arch in TINY_ARCHS}


def _reward_model(path: Path):
    torch.manual_seed(0)
    return AutoModelForSequenceClassification.from_pretrained(path, num_labels=1)


def _loss_and_grads(trainer, rows):
    """Loss and gradients of one batch made of ``rows`` of the trainer's prepared dataset."""
    model = trainer.model
    model.zero_grad()
    batch = trainer.data_collator([trainer.train_dataset[i] for i in rows])
    loss = trainer.compute_loss(model, batch)
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def _expanded_pairs(rows, margin=0.0):
    return [
        {
            "prompt": r["prompt"],
            "chosen": r["responses"][i],
            "rejected": r["responses"][j],
            "margin": margin * (j - i),
        }
        for r in rows
        for i, j in itertools.combinations(range(len(r["responses"])), 2)
    ]


@pytest.mark.parametrize("arch", TINY_ARCHS)
@pytest.mark.parametrize(("margin", "center"), [(0.0, None), (0.5, 0.01)])
def test_instructgpt_equals_trl_on_expanded_pairs(tiny, tmp_path, arch, margin, center):
    """Same weights, same prompts: our loss and gradients equal trl's RewardTrainer on all C(4,2) pairs."""
    model = _reward_model(tiny[arch])
    tokenizer = AutoTokenizer.from_pretrained(tiny[arch])
    ours = RankedRewardTrainer(
        copy.deepcopy(model),
        args=_config(tmp_path, margin=margin, center_rewards_coefficient=center),
        train_dataset=Dataset.from_list(ROWS),
        processing_class=tokenizer,
    )
    pairs = _expanded_pairs(ROWS, margin)
    if not margin:
        pairs = [{k: v for k, v in p.items() if k != "margin"} for p in pairs]
    stock = RewardTrainer(
        copy.deepcopy(model),
        args=_config(tmp_path, RewardConfig, center_rewards_coefficient=center),
        train_dataset=Dataset.from_list(pairs),
        processing_class=AutoTokenizer.from_pretrained(tiny[arch]),
    )
    loss, grads = _loss_and_grads(ours, range(len(ROWS)))
    trl_loss, trl_grads = _loss_and_grads(stock, range(len(pairs)))
    assert loss.item() == pytest.approx(trl_loss.item(), abs=1e-5)
    assert grads.keys() == trl_grads.keys()
    for name, grad in grads.items():
        torch.testing.assert_close(grad, trl_grads[name], atol=1e-5, rtol=1e-4, msg=name)
    # 4 responses per prompt were forwarded, where trl forwarded 12
    assert ours.data_collator([ours.train_dataset[i] for i in range(3)])["input_ids"].shape[0] == 12
    assert stock.data_collator([stock.train_dataset[i] for i in range(18)])["input_ids"].shape[0] == 36


def _brute_force_pl(rewards: list[float]) -> float:
    nll = 0.0
    for i in range(len(rewards)):
        nll -= rewards[i] - math.log(sum(math.exp(r) for r in rewards[i:]))
    return nll


@pytest.mark.parametrize("k", [2, 3, 4])
def test_plackett_luce_equals_brute_force(k):
    torch.manual_seed(k)
    rewards = torch.randn(5, k, dtype=torch.float64) * 2
    mask = torch.ones_like(rewards, dtype=torch.bool)
    expected = sum(_brute_force_pl(row) for row in rewards.tolist()) / 5
    assert plackett_luce_loss(rewards, mask).mean().item() == pytest.approx(expected, rel=1e-12)


def test_plackett_luce_equals_pairwise_at_k2():
    rewards = torch.tensor([[1.5, -0.3], [0.2, 0.9], [-2.0, -2.0]])
    mask = torch.ones_like(rewards, dtype=torch.bool)
    torch.testing.assert_close(plackett_luce_loss(rewards, mask), pairwise_loss(rewards, mask))  # per prompt


def test_losses_ignore_padding_and_weight_prompts_equally():
    """A K=2 row and a K=4 row padded together give the mean of their own losses, gradients finite."""
    short, long = torch.tensor([0.3, 1.0]), torch.tensor([2.0, 0.5, -1.0, 0.1])
    rewards, mask = by_prompt(torch.cat([short, long]).requires_grad_(), [2, 4])
    for loss_fn in (pairwise_loss, plackett_luce_loss):
        alone = [loss_fn(r[None], torch.ones(1, len(r), dtype=torch.bool))[0] for r in (short, long)]
        together = loss_fn(rewards, mask).mean()
        torch.testing.assert_close(together, (alone[0] + alone[1]) / 2)
        (grad,) = torch.autograd.grad(together, rewards)
        assert torch.isfinite(grad).all() and (grad[0, 2:] == 0).all()
    # pairwise: mean over each prompt's own pairs (1 pair and 6 pairs), not over all 7 pairs
    lone_pair = -torch.nn.functional.logsigmoid(short[0] - short[1])
    long_pairs = pairwise_loss(long[None], torch.ones(1, 4, dtype=torch.bool))[0]
    assert pairwise_loss(rewards, mask).mean().item() != pytest.approx(
        ((lone_pair + long_pairs * 6) / 7).item()
    )


@pytest.mark.parametrize("arch", TINY_ARCHS)
@pytest.mark.parametrize("loss_type", ["instructgpt", "plackett_luce"])
def test_mixed_k_batch_equals_rows_one_by_one(tiny, tmp_path, arch, loss_type):
    rows = [
        {**ROWS[0], "responses": ROWS[0]["responses"][:2]},
        ROWS[1],
        {**ROWS[2], "responses": ROWS[2]["responses"][:3]},
    ]
    trainer = RankedRewardTrainer(
        _reward_model(tiny[arch]),
        args=_config(tmp_path, loss_type=loss_type),
        train_dataset=Dataset.from_list(rows),
        processing_class=AutoTokenizer.from_pretrained(tiny[arch]),
    )
    batch_loss, batch_grads = _loss_and_grads(trainer, range(3))
    single = [_loss_and_grads(trainer, [i]) for i in range(3)]
    assert batch_loss.item() == pytest.approx(sum(loss.item() for loss, _ in single) / 3, abs=1e-6)
    for name, grad in batch_grads.items():
        torch.testing.assert_close(grad, sum(g[name] for _, g in single) / 3, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("arch", TINY_ARCHS)
@pytest.mark.parametrize("side", ["left", "right"])
def test_reward_is_read_at_the_last_real_token(tiny, tmp_path, arch, side):
    """Padded on either side, each response gets the reward it gets alone, which is the head on its last token."""
    trainer = RankedRewardTrainer(
        _reward_model(tiny[arch]),
        args=_config(tmp_path, padding_side=side),
        train_dataset=Dataset.from_list(ROWS),
        processing_class=AutoTokenizer.from_pretrained(tiny[arch]),
    )
    model = trainer.model.eval()
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(3)])
    lengths = batch["attention_mask"].sum(-1)
    assert len(set(lengths.tolist())) > 1, "the batch must actually be padded"
    first_pad = batch["attention_mask"][:, 0 if side == "left" else -1]
    assert (first_pad == 0).any()
    batch.pop("num_responses")
    if "position_ids" in batch and arch == "bloom":
        batch.pop("position_ids")
    with torch.no_grad():
        padded = model(**batch).logits[:, 0]
        backbone = getattr(model, model.base_model_prefix)
        for row, ids in enumerate(batch["input_ids"]):
            real = ids[batch["attention_mask"][row].bool()][None]
            alone = model(input_ids=real).logits[0, 0]
            hidden = backbone(input_ids=real).last_hidden_state[0, -1]
            assert padded[row].item() == pytest.approx(alone.item(), abs=1e-5)
            assert model.score(hidden).item() == pytest.approx(alone.item(), abs=1e-5)


def test_each_response_is_forwarded_once_per_step(tiny, tmp_path):
    rows = [
        ROWS[0],
        {**ROWS[1], "responses": ROWS[1]["responses"][:3]},
        {**ROWS[2], "responses": ROWS[2]["responses"][:2]},
    ]
    trainer = RankedRewardTrainer(
        _reward_model(tiny["llama"]),
        args=_config(tmp_path, per_device_train_batch_size=3, max_steps=1, logging_steps=1),
        train_dataset=Dataset.from_list(rows),
        processing_class=AutoTokenizer.from_pretrained(tiny["llama"]),
    )
    seen = []
    trainer.model.register_forward_hook(
        lambda module, args, kwargs, out: seen.append(kwargs["input_ids"].shape[0]), with_kwargs=True
    )
    trainer.train()
    assert seen == [4 + 3 + 2]


def _loss_curve(trainer) -> list[float]:
    trainer.train()
    return [h["loss"] for h in trainer.state.log_history if "loss" in h]


@pytest.mark.slow
def test_gradient_accumulation_gives_the_same_loss_curve(tiny, tmp_path):
    data = Dataset.from_list(ROWS * 4)
    curves = []
    for batch, accumulation in ((4, 1), (2, 2), (1, 4)):
        trainer = RankedRewardTrainer(
            str(tiny["llama"]),
            args=_config(
                tmp_path,
                per_device_train_batch_size=batch,
                gradient_accumulation_steps=accumulation,
                learning_rate=1e-3,
                logging_steps=1,
                num_train_epochs=1,
            ),
            train_dataset=data,
        )
        curves.append(_loss_curve(trainer))
    assert len(curves[0]) == 3
    for curve in curves[1:]:
        assert curve == pytest.approx(curves[0], abs=1e-5)
    assert curves[0][0] != pytest.approx(curves[0][-1], abs=1e-4), "the loss should move"


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write_sample_raw(root / "raw", ["vi"], n_ranking=100)  # 95 train rows, 5 validation rows
    build_dataset(root / "raw", root / "okapi_hf", ["vi"], ["ranking"])
    return root / "okapi_hf"


@pytest.mark.slow
def test_two_processes_give_the_loss_curve_of_one(tiny, built, tmp_path):
    """`accelerate launch` of the CLI over 2 CPU processes, 2 prompts each, equals 1 process with 4 per step.

    Evaluation too: 5 validation rankings in batches of 2 per process leave an uneven last batch that
    accelerate pads with a duplicate, which must not count.
    """
    cli = [
        "-m",
        "okapi_hf.cli",
        "train",
        "rm",
        "--lang",
        "vi",
        "--recipe",
        "tiny",
        "--model",
        str(tiny["bloom"]),
    ]
    cli += ["--data", str(built), "max_train_samples=8", "per_device_eval_batch_size=2", "disable_tqdm=true"]
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
    runs = {
        "one": [sys.executable, *cli, "--output-dir", str(tmp_path / "one"), "per_device_train_batch_size=4"],
        "two": [
            *launch,
            "--main_process_port",
            "29517",
            *cli,
            "--output-dir",
            str(tmp_path / "two"),
            "per_device_train_batch_size=2",
        ],
    }
    curves, evals = {}, {}
    for name, cmd in runs.items():
        proc = subprocess.run(
            cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert proc.stdout.count("saved to") == (2 if name == "two" else 1), "one line per process"
        state = json.loads((tmp_path / name / "trainer_state.json").read_text())
        curves[name] = [h["loss"] for h in state["log_history"] if "loss" in h]
        evals[name] = [
            {k: v for k, v in h.items() if k in ("eval_loss", "eval_pairwise_accuracy", "eval_kendall_tau")}
            for h in state["log_history"]
            if "eval_loss" in h
        ]
    assert len(curves["one"]) == 4  # 8 rows, 4 per step, 2 epochs
    assert curves["two"] == pytest.approx(curves["one"], abs=1e-5)
    assert len(evals["one"]) == 3  # after each epoch, then the stage's final evaluation
    for two, one in zip(evals["two"], evals["one"], strict=True):
        assert two == pytest.approx(one, abs=1e-5)
