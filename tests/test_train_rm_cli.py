"""`okapi-hf train rm` end to end on the sample data and tiny models, and the recipes it reads."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
import yaml
from huggingface_hub import ModelCard
from safetensors.torch import load_file
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from okapi_hf.cli import main
from okapi_hf.data.build import build_dataset
from okapi_hf.data.sample import write_sample_raw
from okapi_hf.errors import OkapiError
from okapi_hf.models import load_model
from okapi_hf.prompts import format_prompt
from okapi_hf.testing import make_tiny_model
from okapi_hf.train.recipes import parse_stage_args, recipe_file
from okapi_hf.train.reward import RankedRewardConfig

SECRET = "okapi-test-secret-" + "do-not-leak"  # any distinctive value: the test checks it is never written


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("train-rm")
    write_sample_raw(root / "raw", ["vi", "ru"])
    built = build_dataset(root / "raw", root / "okapi_hf", ["vi", "ru"], ["ranking"], progress=False)
    models = {arch: make_tiny_model(arch, root / "models" / arch) for arch in ("bloom", "llama")}
    return {"data": str(root / "okapi_hf"), "splits": built.splits, "models": models}


def _train(env, arch, *args, run="t"):
    return main(
        [
            "train",
            "rm",
            "--recipe",
            "tiny",
            "--data",
            env["data"],
            "--run",
            run,
            *(["--model", str(env["models"][arch])] if arch else []),
            *args,
        ]
    )


def _reward(model, tokenizer, text):
    with torch.no_grad():
        logits = model(**tokenizer(text, return_tensors="pt")).logits
    assert logits.shape == (1, 1)
    return logits.item()


def _logged_losses(out):
    state = json.loads((out / "trainer_state.json").read_text())
    return [entry["loss"] for entry in state["log_history"] if "loss" in entry]


# -- the stage end to end --------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["bloom", "llama"])
def test_train_rm_writes_a_loadable_reward_model(env, tmp_path, monkeypatch, capsys, arch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_TOKEN", SECRET)
    assert _train(env, arch, "--lang", "vi", "max_steps=2", "learning_rate=3e-3") == 0
    out = tmp_path / "runs" / "t" / "rm"
    assert f"saved to {out.relative_to(tmp_path)}" in capsys.readouterr().out

    assert (out / "model.safetensors").is_file()
    assert not (out / "pytorch_model.bin").exists()
    assert not (out / "adapter_config.json").exists()
    assert (out / "tokenizer.json").is_file() and (out / "tokenizer_config.json").is_file()

    card = ModelCard.load(out / "README.md")
    assert card.data.language == ["vi"]
    assert card.data.license == "cc-by-nc-4.0"
    assert "reward-model" in card.data.tags
    assert card.data.pipeline_tag == "text-classification"
    assert "Vietnamese" in card.text and "vi-ranking" in card.text
    assert "kept 11/11 rows" in card.text  # the data report
    for path in out.iterdir():
        if path.suffix in (".md", ".yaml", ".json", ".jinja"):
            assert SECRET not in path.read_text(encoding="utf-8"), path.name

    config = yaml.safe_load((out / "run_config.yaml").read_text())
    assert list(config) == ["RunArguments", "RankedRewardConfig", "ModelConfig"]
    assert config["RunArguments"]["lang"] == "vi" and config["RunArguments"]["run"] == "t"
    assert config["RankedRewardConfig"]["max_steps"] == 2
    assert config["RankedRewardConfig"]["learning_rate"] == 3e-3
    assert config["RankedRewardConfig"]["num_unfrozen_layers"] == 1  # from the tiny recipe
    assert config["ModelConfig"]["model_name_or_path"] == str(env["models"][arch])

    report = json.loads((out / "ranking_data_report.json").read_text())
    assert report["train"]["rows_in"] == env["splits"]["vi-ranking"]["train"]
    assert report["train"]["rows_kept"] == report["train"]["rows_in"]
    assert report["eval"]["rows_in"] == env["splits"]["vi-ranking"]["validation"]

    losses = _logged_losses(out)
    assert len(losses) == 2
    assert losses[0] != losses[-1]

    tokenizer = AutoTokenizer.from_pretrained(out)
    model = AutoModelForSequenceClassification.from_pretrained(out).eval()
    assert model.config.num_labels == 1
    assert type(model).__name__.lower().startswith(arch)
    prompt = format_prompt("Thủ đô của Việt Nam là gì?")
    good = _reward(model, tokenizer, prompt + "Thủ đô của Việt Nam là Hà Nội." + tokenizer.eos_token)
    bad = _reward(model, tokenizer, prompt + "Tôi thích màu xanh." + tokenizer.eos_token)
    assert good != bad


@pytest.mark.slow
def test_a_mixture_trains_on_every_language(env, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "mix-out"
    assert _train(env, "llama", "--lang", "vi,ru", "--output-dir", str(out), "max_steps=1") == 0
    report = json.loads((out / "ranking_data_report.json").read_text())
    splits = env["splits"]
    assert report["train"]["rows_in"] == splits["vi-ranking"]["train"] + splits["ru-ranking"]["train"]
    assert (
        report["eval"]["rows_in"] == splits["vi-ranking"]["validation"] + splits["ru-ranking"]["validation"]
    )
    assert ModelCard.load(out / "README.md").data.language == ["vi", "ru"]
    assert not (tmp_path / "runs").exists()  # --output-dir replaces runs/<run>/rm


@pytest.mark.slow
def test_lora_saves_an_adapter_that_loads_merged(env, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # the tiny recipe freezes layers; with LoRA that setting is dropped, since LoRA picks what trains
    overrides = ["use_peft=true", "lora_r=4", "lora_target_modules=q_proj,v_proj"]
    small = ["max_steps=1", "per_device_train_batch_size=2", "eval_strategy=no"]
    assert _train(env, "llama", "--lang", "vi", *small, *overrides) == 0
    out = tmp_path / "runs" / "t" / "rm"
    assert (out / "adapter_model.safetensors").is_file() and not (out / "model.safetensors").exists()
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(env["models"]["llama"].resolve())
    assert config["task_type"] == "SEQ_CLS" and "score" in config["modules_to_save"]
    model = load_model(out, AutoModelForSequenceClassification, num_labels=1)
    base = load_file(env["models"]["llama"] / "model.safetensors")
    key = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(model.state_dict()[key], base[key])  # the trained adapter, merged on loading
    assert "LoRA adapter" in (out / "README.md").read_text()
    assert len(_logged_losses(out)) == 1


@pytest.mark.slow
def test_lora_with_merge_lora_saves_a_plain_model(env, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    overrides = ["use_peft=true", "lora_r=4", "lora_target_modules=q_proj,v_proj", "merge_lora=true"]
    small = ["max_steps=1", "per_device_train_batch_size=2", "eval_strategy=no"]
    assert _train(env, "llama", "--lang", "vi", *small, *overrides) == 0
    out = tmp_path / "runs" / "t" / "rm"
    assert not (out / "adapter_config.json").exists()
    saved = load_file(out / "model.safetensors")
    assert not any("lora" in key or "base_layer" in key for key in saved)
    model, info = AutoModelForSequenceClassification.from_pretrained(out, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    base = load_file(env["models"]["llama"] / "model.safetensors")
    key = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(model.state_dict()[key], base[key])  # the trained adapter was merged in


def test_lora_target_modules_override_takes_a_list():
    _, _, model_args = parse_stage_args(
        "rm", RankedRewardConfig, "tiny", ["lora_target_modules=q_proj,v_proj"], lang="vi"
    )
    assert list(model_args.lora_target_modules) == ["q_proj", "v_proj"]


@pytest.mark.slow
def test_the_default_model_is_the_sft_stage(env, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copytree(env["models"]["llama"], tmp_path / "runs" / "chain" / "sft")
    assert _train(env, None, "--lang", "vi", "max_steps=1", run="chain") == 0
    out = tmp_path / "runs" / "chain" / "rm"
    assert (out / "model.safetensors").is_file()
    assert "runs/chain/sft" in ModelCard.load(out / "README.md").text


def test_without_a_model_or_sft_stage_the_error_names_model(env, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert _train(env, None, "--lang", "vi", "max_steps=1", run="nothing") == 1
    err = capsys.readouterr().err
    assert err.startswith("okapi-hf: error:")
    assert "--model" in err and "runs/nothing/sft" in err
    assert "`okapi-hf train sft --lang vi --run nothing`" in err  # the command that makes it
    assert not (tmp_path / "runs" / "nothing" / "rm").exists()


def test_runs_dir_override_places_the_run(env, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert _train(env, None, "--lang", "vi", f"runs_dir={tmp_path / 'elsewhere'}", run="r") == 1
    assert str(tmp_path / "elsewhere" / "r" / "sft") in capsys.readouterr().err


def test_a_missing_lang_is_an_error(env, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert _train(env, "llama") == 1
    assert "--lang" in capsys.readouterr().err


# -- recipes ---------------------------------------------------------------------------------------------


def test_the_okapi_recipe_has_okapis_hyperparameters():
    path = recipe_file("rm", "okapi")
    assert path.name == "okapi.yaml" and path.is_file()
    recipe = yaml.safe_load(path.read_text())
    expected = {
        "learning_rate": 3e-5,
        "lr_scheduler_type": "cosine",
        "warmup_steps": 50,
        "weight_decay": 1e-4,
        "num_train_epochs": 3,
        "max_length": 768,
        "num_unfrozen_layers": 12,
        "loss_type": "instructgpt",
    }
    assert {k: recipe[k] for k in expected} == expected
    assert recipe["per_device_train_batch_size"] * recipe["gradient_accumulation_steps"] == 16
    _, config, _ = parse_stage_args("rm", RankedRewardConfig, "okapi", ["bf16=false"], lang="vi")
    assert config.learning_rate == 3e-5 and config.weight_decay == 1e-4
    assert config.lr_scheduler_type.value == "cosine"
    assert (config.warmup_steps, config.num_train_epochs, config.max_length) == (50, 3, 768)
    assert (config.num_unfrozen_layers, config.loss_type) == (12, "instructgpt")


def test_an_unknown_recipe_lists_the_shipped_ones():
    with pytest.raises(OkapiError, match="nonesuch") as err:
        recipe_file("rm", "nonesuch")
    assert "okapi" in str(err.value) and "tiny" in str(err.value)
    with pytest.raises(OkapiError, match="does not exist"):
        recipe_file("rm", "no/such/file.yaml")


def test_an_unknown_key_in_a_user_recipe_names_the_file(tmp_path):
    recipe = tmp_path / "mine.yaml"
    recipe.write_text("bf16: false\nlearning_rate: 1.0e-4\nnot_a_field: 3\n")
    with pytest.raises(OkapiError, match="not_a_field") as err:
        parse_stage_args("rm", RankedRewardConfig, str(recipe), [], lang="vi")
    assert str(recipe) in str(err.value)
    recipe.write_text("bf16: false\nlearning_rate: 1.0e-4\nlang: ru\n")
    run_args, config, _ = parse_stage_args("rm", RankedRewardConfig, str(recipe), [])
    assert (run_args.lang, config.learning_rate) == ("ru", 1e-4)


@pytest.mark.parametrize(
    ("item", "message"), [("loss_type=bogus", "invalid choice"), ("num_train_epochs=many", "invalid float")]
)
def test_a_bad_override_value_is_a_one_line_error(env, tmp_path, monkeypatch, capsys, item, message):
    monkeypatch.chdir(tmp_path)
    assert _train(env, "llama", "--lang", "vi", item) == 1
    err = capsys.readouterr().err
    assert message in err and item in err
    assert len(err.strip().splitlines()) == 1, "no usage dump"


@pytest.mark.parametrize("item", ["max_steps", "=3"])
def test_a_malformed_override_is_an_error(item):
    with pytest.raises(OkapiError, match="key=value"):
        parse_stage_args("rm", RankedRewardConfig, "tiny", [item], lang="vi")


def test_a_malformed_override_on_the_command_line_exits_1(env, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert _train(env, "llama", "--lang", "vi", "max_steps") == 1
    assert "key=value" in capsys.readouterr().err


def test_overrides_take_the_field_types():
    run_args, config, model_args = parse_stage_args(
        "rm",
        RankedRewardConfig,
        "tiny",
        ["learning_rate=3e-4", "num_unfrozen_layers=3", "use_peft=true", "lora_r=4", "max_train_samples=5"],
        lang="vi",
    )
    assert isinstance(config.learning_rate, float) and config.learning_rate == 3e-4
    assert isinstance(config.num_unfrozen_layers, int) and config.num_unfrozen_layers == 3
    assert model_args.use_peft is True and model_args.lora_r == 4
    assert run_args.max_train_samples == 5
    _, config, _ = parse_stage_args("rm", RankedRewardConfig, "tiny", ["num_unfrozen_layers=null"], lang="vi")
    assert config.num_unfrozen_layers is None


def test_flags_win_over_overrides_and_the_recipe():
    run_args, config, model_args = parse_stage_args(
        "rm",
        RankedRewardConfig,
        "tiny",
        ["lang=ru", "model_name_or_path=from-override"],
        lang="vi",
        model_name_or_path="from-flag",
    )
    assert run_args.lang == "vi"
    assert model_args.model_name_or_path == "from-flag"
    assert config.max_length == 512  # the tiny recipe's value


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["num_unfrozen_layers=99"], "between 0 and 2"),
        (["resume_from_checkpoint=true"], "no checkpoint-* folder in"),
        (["--model", "./no-such-model"], "does not exist"),
    ],
)
def test_bad_options_end_in_a_one_line_error(env, tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.chdir(tmp_path)
    assert _train(env, "llama" if "--model" not in args else None, "--lang", "vi", *args) == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]  # library warnings may come before it
    assert last.startswith("okapi-hf: error:") and message in last
