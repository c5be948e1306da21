"""The SFT stage: Okapi rows to trl prompt-completion rows, the loss mask, mixtures, packing, the stage script."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest
import torch
import yaml
from datasets import Dataset
from huggingface_hub import ModelCard
from transformers import AutoModelForCausalLM, AutoTokenizer

from okapi_hf.data.build import build_dataset
from okapi_hf.data.load import load_dataset
from okapi_hf.data.sample import write_sample_raw
from okapi_hf.errors import ConfigError, DataError, OkapiError
from okapi_hf.prompts import format_prompt, to_messages
from okapi_hf.testing import CPU_TRAINING_ARGS, TINY_ARCHS, make_tiny_model
from okapi_hf.train.recipes import parse_stage_args, recipe_file
from okapi_hf.train.run_sft import main
from okapi_hf.train.sft import (
    OkapiSFTConfig,
    OkapiSFTTrainer,
    mix_languages,
    prepare_sft_dataset,
    to_prompt_completion,
)

ROWS = [
    {
        "instruction": "Viết một câu về mùa xuân.",
        "input": "",
        "output": "Mùa xuân hoa nở khắp nơi.",
        "lang": "vi",
    },
    {"instruction": "Dịch sang tiếng Anh", "input": "Xin chào", "output": "Hello", "lang": "vi"},
    {"instruction": "Kể tên ba loại trái cây.", "input": "", "output": "Táo, cam và chuối.", "lang": "vi"},
    {
        "instruction": "Tổng của 2 và 3 là bao nhiêu?",
        "input": "",
        "output": "Tổng của 2 và 3 là 5.",
        "lang": "vi",
    },
]
ROWS = [{**row, "id": f"vi-{i}"} for i, row in enumerate(ROWS)]


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict:
    """Sample sft data for vi and ru (36 train and 4 validation rows each) and one tiny model per arch."""
    root = tmp_path_factory.mktemp("sft")
    write_sample_raw(root / "raw", ["vi", "ru"], n_sft=40)
    built = build_dataset(root / "raw", root / "okapi_hf", ["vi", "ru"], ["sft"], progress=False)
    models = {arch: make_tiny_model(arch, root / "models" / arch, seed=1) for arch in TINY_ARCHS}
    return {"data": root / "okapi_hf", "splits": built.splits, "models": models}


def _config(tmp_path: Path, **kw) -> OkapiSFTConfig:
    return OkapiSFTConfig(**{**CPU_TRAINING_ARGS, "output_dir": str(tmp_path / "out"), "seed": 0, **kw})


def _trainer(env, arch, tmp_path, rows=ROWS, **kw) -> OkapiSFTTrainer:
    return OkapiSFTTrainer(
        str(env["models"][arch]), args=_config(tmp_path, **kw), train_dataset=Dataset.from_list(rows)
    )


def _losses(state: dict) -> dict[int, float]:
    return {h["step"]: h["loss"] for h in state["log_history"] if "loss" in h}


# -- rows and the loss mask ------------------------------------------------------------------------------


def test_okapi_rows_become_prompt_completion_rows():
    row = to_prompt_completion(ROWS[1], "okapi")
    assert row == {
        "prompt": format_prompt("Dịch sang tiếng Anh", "Xin chào"),
        "completion": "Hello",
        "lang": "vi",
        "id": "vi-1",
    }
    chat = to_prompt_completion(ROWS[1], "chat")
    assert chat["prompt"] == to_messages("Dịch sang tiếng Anh", "Xin chào")
    assert chat["completion"] == [{"role": "assistant", "content": "Hello"}]
    with pytest.raises(ConfigError, match="prompt_format"):
        to_prompt_completion(ROWS[0], "alpaca")


@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_response_loss_masks_exactly_the_prompt(env, tmp_path, arch):
    tokenizer = AutoTokenizer.from_pretrained(env["models"][arch])
    response = _trainer(env, arch, tmp_path)
    full = _trainer(env, arch, tmp_path, loss_on="full")
    for i, row in enumerate(ROWS):
        prompt_ids = tokenizer(format_prompt(row["instruction"], row["input"]))["input_ids"]
        ids = tokenizer(
            format_prompt(row["instruction"], row["input"]) + row["output"] + tokenizer.eos_token
        )["input_ids"]
        assert ids[: len(prompt_ids)] == prompt_ids and ids[-1] == tokenizer.eos_token_id
        prepared = response.train_dataset[i]
        assert prepared["input_ids"] == ids
        assert prepared["labels"] == [-100] * len(prompt_ids) + ids[len(prompt_ids) :]  # response + EOS
        assert full.train_dataset[i]["labels"] == ids
    assert response.data_reports["train"].rows_kept == len(ROWS)


def test_chat_format_masks_the_templated_prompt(env, tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(env["models"]["llama"])
    assert tokenizer.chat_template  # the tiny tokenizer ships a ChatML-like template
    trainer = _trainer(env, "llama", tmp_path, prompt_format="chat")
    for i, row in enumerate(ROWS):
        messages = to_messages(row["instruction"], row["input"])
        prompt_ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        answer_ids = tokenizer(row["output"] + tokenizer.eos_token)["input_ids"]
        prepared = trainer.train_dataset[i]
        assert prepared["input_ids"] == prompt_ids["input_ids"] + answer_ids
        assert prepared["labels"] == [-100] * len(prompt_ids["input_ids"]) + answer_ids
    assert tokenizer.decode(trainer.train_dataset[1]["input_ids"]).startswith("<|user|>\nDịch sang tiếng Anh")


def test_chat_format_without_a_template_is_refused(env, tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(env["models"]["llama"])
    tokenizer.chat_template = None
    with pytest.raises(ConfigError, match="chat_template_path"):
        OkapiSFTTrainer(
            str(env["models"]["llama"]),
            args=_config(tmp_path, prompt_format="chat"),
            train_dataset=Dataset.from_list(ROWS),
            processing_class=tokenizer,
        )


def test_empty_outputs_are_counted_and_left_out():
    rows = [
        *ROWS,
        {**ROWS[0], "id": "vi-empty", "output": "  "},
        {**ROWS[1], "id": "vi-none", "output": None},
    ]
    prepared, report = prepare_sft_dataset(Dataset.from_list(rows), "okapi")
    assert (report.rows_in, report.rows_kept, report.empty_output) == (6, 4, 2)
    assert report.examples["empty_output"] == ["vi-empty", "vi-none"]
    assert sorted(prepared["id"]) == [f"vi-{i}" for i in range(4)]
    assert "left out 2 rows with an empty output (e.g. rows vi-empty, vi-none)" in report.summary()
    with pytest.raises(DataError, match="all 2 rows have an empty output"):
        prepare_sft_dataset(Dataset.from_list(rows[4:]), "okapi")
    with pytest.raises(DataError, match="missing output"):
        prepare_sft_dataset(Dataset.from_list([{"instruction": "x", "input": ""}]))


def test_rows_cut_by_max_length_are_reported(env, tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(env["models"]["llama"])
    lengths = [len(tokenizer(format_prompt(r["instruction"], r["input"]))["input_ids"]) for r in ROWS]
    cut = min(lengths) + 1  # the shortest prompt fits with one response token, the others do not
    trainer = _trainer(env, "llama", tmp_path, max_length=cut)
    report = trainer.data_reports["train"]
    too_long = [r["id"] for r, n in zip(ROWS, lengths, strict=True) if n >= cut]
    assert report.prompt_too_long == len(too_long) > 0
    assert report.examples["prompt_too_long"] == too_long
    assert report.truncated == len(ROWS) - len(too_long)
    assert len(trainer.train_dataset) == report.rows_kept == len(ROWS) - len(too_long)
    # the whole-sequence loss still learns from a long prompt, so those rows stay (cut)
    full = _trainer(env, "llama", tmp_path, max_length=cut, loss_on="full").data_reports["train"]
    assert (full.rows_kept, full.prompt_too_long, full.truncated) == (len(ROWS), 0, len(ROWS))


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"loss_on": "prompt"}, "loss_on must be one of"),
        ({"prompt_format": "alpaca"}, "prompt_format must be one of"),
        ({"loss_on": "full", "completion_only_loss": True}, "contradicts"),
        ({"lang_weights": [1.0, -1.0]}, "lang_weights"),
        ({"lang_weights": [0.0, 0.0]}, "lang_weights"),
    ],
)
def test_bad_config_values_are_config_errors(tmp_path, kw, message):
    with pytest.raises(ConfigError, match=message):
        _config(tmp_path, **kw)


def test_loss_on_sets_trls_completion_only_loss(tmp_path):
    assert _config(tmp_path).completion_only_loss is True
    assert _config(tmp_path, loss_on="full").completion_only_loss is False


# -- training ----------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_the_loss_goes_down(env, tmp_path, arch):
    rows = load_dataset("vi", "sft", env["data"], split="train").select(range(8))
    trainer = OkapiSFTTrainer(
        str(env["models"][arch]),
        args=_config(
            tmp_path, learning_rate=3e-3, num_train_epochs=3, per_device_train_batch_size=4, logging_steps=1
        ),
        train_dataset=rows,
    )
    trainer.train()
    losses = list(_losses({"log_history": trainer.state.log_history}).values())
    assert len(losses) == 6
    assert losses[-1] < losses[0] - 0.5, losses


# -- mixtures ----------------------------------------------------------------------------------------------


def _langs(counts: dict[str, int]) -> Dataset:
    return Dataset.from_list(
        [{"id": f"{lang}-{i}", "lang": lang} for lang, n in counts.items() for i in range(n)]
    )


@pytest.mark.parametrize(
    ("counts", "weights", "expected"),
    [
        ({"vi": 10, "ru": 4, "zh": 6}, [1, 1, 0], {"vi": 4, "ru": 4, "zh": 0}),
        ({"vi": 10, "ru": 4, "zh": 6}, [1, 1, 1], {"vi": 4, "ru": 4, "zh": 4}),
        ({"vi": 10, "ru": 4, "zh": 6}, [5, 2, 3], {"vi": 10, "ru": 4, "zh": 6}),  # already in proportion
        ({"vi": 30, "ru": 30}, [2, 1], {"vi": 30, "ru": 15}),
        ({"vi": 9, "ru": 30}, [0.25, 0.75], {"vi": 9, "ru": 27}),
    ],
)
def test_mixture_weights_give_the_expected_counts(counts, weights, expected):
    mixed, report = mix_languages(_langs(counts), list(counts), weights, seed=3)
    assert Counter(mixed["lang"]) == Counter({k: v for k, v in expected.items() if v})
    assert report.rows_before == counts and report.rows_after == expected
    assert len(set(mixed["id"])) == len(mixed)  # no row repeated
    assert sum(report.weights.values()) == pytest.approx(1.0)
    again, _ = mix_languages(_langs(counts), list(counts), weights, seed=3)
    assert again["id"] == mixed["id"]  # seeded


def test_a_mixture_without_weights_keeps_every_row():
    data = _langs({"vi": 3, "ru": 2})
    mixed, report = mix_languages(data, ["vi", "ru"])
    assert mixed["id"] == data["id"]
    assert report.rows_after == {"vi": 3, "ru": 2} and "as loaded" in report.summary()


def test_bad_mixtures_are_errors():
    data = _langs({"vi": 3, "ru": 2})
    with pytest.raises(ConfigError, match="2 values for 3 languages"):
        mix_languages(data, ["vi", "ru", "zh"], [1, 1])
    with pytest.raises(DataError, match="zh, which has no training rows"):
        mix_languages(data, ["vi", "ru", "zh"], [1, 1, 1])
    with pytest.raises(DataError, match="rows of ru"):
        mix_languages(data, ["vi"], [1])


# -- packing -----------------------------------------------------------------------------------------------


def _packed(env, tmp_path, arch, rows):
    return OkapiSFTTrainer(
        str(env["models"][arch]),
        args=_config(tmp_path, packing=True, max_length=512, per_device_train_batch_size=6),
        train_dataset=rows,
    )


def test_packed_llama_batch_equals_the_sequences_run_alone(env, tmp_path):
    """trl's bfd packing flattens a batch into one row; Llama's block-diagonal mask keeps the sequences apart."""
    rows = load_dataset("vi", "sft", env["data"], split="train").select(range(6))
    trainer = _packed(env, tmp_path, "llama", rows)
    model = trainer.model.eval()
    batch = trainer.data_collator(list(trainer.train_dataset))
    assert batch["input_ids"].shape[0] == 1 and "attention_mask" not in batch
    starts = (batch["position_ids"][0] == 0).nonzero().flatten().tolist()
    assert len(starts) == 6, "all six examples in one packed row"
    bounds = [*starts, batch["input_ids"].shape[1]]
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    with torch.no_grad():
        packed = model(**inputs).logits[0]
        unmasked = model(input_ids=batch["input_ids"]).logits[0]  # what a model ignoring position_ids sees
        for a, b in itertools.pairwise(bounds):
            alone = model(input_ids=batch["input_ids"][:, a:b]).logits[0]
            torch.testing.assert_close(packed[a:b], alone, atol=1e-5, rtol=1e-4)
        later = slice(bounds[1], bounds[-1])
        assert not torch.allclose(unmasked[later], packed[later], atol=1e-3)  # the check can fail

    # and the packed loss is the loss of the same six examples padded side by side
    padded = _trainer(env, "llama", tmp_path, rows=list(rows))
    padded_batch = padded.data_collator(list(padded.train_dataset))
    with torch.no_grad():
        loss = trainer.compute_loss(model, dict(batch))
        reference = padded.compute_loss(padded.model.eval(), dict(padded_batch))
    assert loss.item() == pytest.approx(reference.item(), abs=1e-5)


def test_bloom_ignores_position_ids_so_packing_is_refused(env, tmp_path):
    with pytest.raises(ConfigError, match="takes no position_ids") as err:
        _packed(env, tmp_path, "bloom", Dataset.from_list(ROWS))
    assert "packing=false" in str(err.value) and "group_by_length" in str(err.value)
    with pytest.raises(ConfigError, match="padding_free=true"):
        _trainer(env, "bloom", tmp_path, padding_free=True, max_length=None)
    # why: BLOOM's logits for a sequence change when another sequence precedes it, position_ids or not
    model = AutoModelForCausalLM.from_pretrained(env["models"]["bloom"]).eval()
    first, second = torch.arange(5, 25)[None], torch.arange(40, 52)[None]
    positions = torch.cat([torch.arange(20), torch.arange(12)])[None]
    with torch.no_grad():
        alone = model(input_ids=second).logits[0]
        packed = model(input_ids=torch.cat([first, second], 1), position_ids=positions).logits[0, 20:]
    assert not torch.allclose(alone, packed, atol=1e-3)


# -- the stage script ------------------------------------------------------------------------------------


def _main(env, tmp_path, arch="llama", *overrides, recipe="tiny", lang="vi", out="out", **flags):
    model = str(env["models"][arch]) if arch else None
    flags = {"lang": lang, "model_name_or_path": model, "dataset_path": str(env["data"]), **flags}
    return main(["disable_tqdm=true", *overrides], recipe=recipe, output_dir=str(tmp_path / out), **flags)


@pytest.mark.slow
def test_the_stage_writes_a_loadable_model_and_its_records(env, tmp_path):
    out = _main(env, tmp_path, "bloom", "max_steps=2", "lang_weights=2,1", lang="vi,ru")
    assert out == tmp_path / "out"
    names = {p.name for p in out.iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json"} <= names
    assert {"run_config.yaml", "README.md", "trainer_state.json", "sft_data_report.json"} <= names
    assert not [n for n in names if n.startswith(("pytorch_model", "adapter"))]  # safetensors, merged

    config = yaml.safe_load((out / "run_config.yaml").read_text())
    assert list(config) == ["RunArguments", "OkapiSFTConfig", "ModelConfig"]
    assert config["OkapiSFTConfig"]["lang_weights"] == [2.0, 1.0]
    assert config["OkapiSFTConfig"]["loss_on"] == "response"
    report = json.loads((out / "sft_data_report.json").read_text())
    assert report["mixture"]["rows_after"] == {"vi": 36, "ru": 18}
    assert report["train"]["rows_in"] == 54 and report["train"]["rows_per_lang"] == {"vi": 36, "ru": 18}
    assert report["eval"]["rows_in"] == 8  # validation is not resampled
    assert len(_losses(json.loads((out / "trainer_state.json").read_text()))) == 2

    card = ModelCard.load(out / "README.md")
    assert card.data.pipeline_tag == "text-generation" and card.data.language == ["vi", "ru"]
    assert "format_prompt(" in card.text and "model.generate(" in card.text
    assert "vi 36 -> 36" in card.text and "ru 36 -> 18" in card.text

    tokenizer = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out).eval()
    assert type(model).__name__ == "BloomForCausalLM"
    inputs = tokenizer(format_prompt("Thủ đô của Việt Nam là gì?"), return_tensors="pt")
    generated = model.generate(**inputs, max_new_tokens=4, do_sample=False)
    assert generated.shape[1] > inputs["input_ids"].shape[1]


@pytest.mark.slow
def test_resuming_from_a_checkpoint_continues_the_same_loss_curve(env, tmp_path):
    args = ["max_steps=4", "max_train_samples=16", "save_strategy=steps", "save_steps=2", "eval_strategy=no"]
    whole = _main(env, tmp_path, "llama", *args, out="whole")
    assert (whole / "checkpoint-2").is_dir()
    checkpoint = shutil.copytree(whole / "checkpoint-2", tmp_path / "resumed" / "checkpoint-2")
    # mark the checkpoint's record of step 1: a run that resumes keeps it, a run from scratch would not
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    state["log_history"][0]["loss"] = 123.0
    (checkpoint / "trainer_state.json").write_text(json.dumps(state))
    resumed = _main(env, tmp_path, "llama", *args, "resume_from_checkpoint=true", out="resumed")
    expected = _losses(json.loads((whole / "trainer_state.json").read_text()))
    got = _losses(json.loads((resumed / "trainer_state.json").read_text()))
    assert sorted(expected) == sorted(got) == [1, 2, 3, 4]
    assert got[1] == 123.0, "the second run must continue from checkpoint-2, not start again"
    assert [got[s] for s in (3, 4)] == pytest.approx([expected[s] for s in (3, 4)], abs=1e-4)
    assert expected[3] != pytest.approx(expected[1], abs=1e-3), "the loss should move"


def test_bloom_with_packing_is_refused_before_training(env, tmp_path):
    with pytest.raises(OkapiError, match="takes no position_ids"):
        _main(env, tmp_path, "bloom", "packing=true")
    assert not (tmp_path / "out").exists()


def test_a_missing_model_names_model(env, tmp_path):
    with pytest.raises(OkapiError, match="--model"):
        _main(env, tmp_path, None)


@pytest.mark.parametrize(
    ("overrides", "recipe", "message"),
    [
        (["not_a_field=3"], "tiny", "not_a_field"),
        (["loss_on=prompt"], "tiny", "invalid choice"),
        ([], "nonesuch", "bloom-7b1, llama-7b, small, taco, tiny"),
    ],
)
def test_unknown_recipe_keys_and_names_are_okapi_errors(env, tmp_path, overrides, recipe, message):
    with pytest.raises(OkapiError, match=message):
        _main(env, tmp_path, "llama", *overrides, recipe=recipe)


def test_resume_without_a_checkpoint_is_an_error(env, tmp_path):
    with pytest.raises(OkapiError, match="no checkpoint-\\* folder"):
        _main(env, tmp_path, "llama", "resume_from_checkpoint=true", "max_steps=1")


@pytest.mark.parametrize(
    ("recipe", "model", "packing"),
    [
        ("llama-7b", "huggyllama/llama-7b", True),
        ("bloom-7b1", "bigscience/bloom-7b1", False),
    ],
)
def test_the_7b_recipes_have_okapis_hyperparameters(recipe, model, packing):
    _, config, model_args = parse_stage_args("sft", OkapiSFTConfig, recipe, ["bf16=false"], lang="vi")
    assert model_args.model_name_or_path == model
    assert (config.max_length, config.num_train_epochs, config.learning_rate) == (512, 3, 1e-5)
    assert config.lr_scheduler_type.value == "cosine" and config.warmup_steps == 300
    assert (config.weight_decay, config.adam_beta1, config.adam_beta2) == (0.05, 0.9, 0.95)
    assert config.per_device_train_batch_size * config.gradient_accumulation_steps == 16
    assert (config.prompt_format, config.loss_on, config.completion_only_loss) == ("okapi", "response", True)
    assert config.packing is packing
    if not packing:
        assert config.train_sampling_strategy == "group_by_length"
    recipe_text = yaml.safe_load(recipe_file("sft", recipe).read_text())
    assert recipe_text["bf16"] is True


@pytest.mark.slow
def test_two_processes_give_the_loss_curve_of_one(env, tmp_path):
    """`accelerate launch` over 2 CPU processes, 2 rows each per step, equals 1 process with 4 per step."""
    script = tmp_path / "train.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import sys
            from okapi_hf.train.run_sft import main

            out = main(sys.argv[2:], recipe="tiny", lang="vi", model_name_or_path={str(env["models"]["llama"])!r},
                       dataset_path={str(env["data"])!r}, run="two", runs_dir={str(tmp_path / "runs")!r},
                       output_dir=sys.argv[1])
            print("saved to", out)
            """
        )
    )
    common = ["max_train_samples=8", "eval_strategy=no", "disable_tqdm=true", "use_cpu=true"]
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
    runs = {
        "one": [sys.executable, str(script), str(tmp_path / "one"), *common, "per_device_train_batch_size=4"],
        "two": [
            *launch,
            "--main_process_port",
            "29533",
            str(script),
            str(tmp_path / "two"),
            *common,
            "per_device_train_batch_size=2",
        ],
    }
    curves = {}
    for name, cmd in runs.items():
        proc = subprocess.run(
            cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert proc.stdout.count("saved to") == (2 if name == "two" else 1), "one line per process"
        assert (tmp_path / name / "model.safetensors").is_file()
        curves[name] = _losses(json.loads((tmp_path / name / "trainer_state.json").read_text()))
    assert sorted(curves["one"]) == [1, 2, 3, 4]  # 8 rows, 4 per step, 2 epochs
    assert curves["two"] == pytest.approx(curves["one"], abs=1e-5)
