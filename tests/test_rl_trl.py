"""RLOO and GRPO through trl: our reward model as a reward function, the language-fidelity reward, the stage."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from huggingface_hub import ModelCard
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

from okapi_hf.data.build import build_dataset
from okapi_hf.data.load import load_dataset
from okapi_hf.data.sample import SAMPLE_LANGS, sample_rows, write_sample_raw
from okapi_hf.errors import ConfigError, DataError, OkapiError
from okapi_hf.langid import language_score
from okapi_hf.prompts import format_prompt
from okapi_hf.testing import make_tiny_model
from okapi_hf.train import rl
from okapi_hf.train.recipes import parse_stage_args
from okapi_hf.train.rewards import RewardModelScorer, language_fidelity_reward
from okapi_hf.train.rl import OkapiGRPOConfig, OkapiRLOOConfig, prepare_prompts, train_trl_rl

ENGLISH = (
    "The answer is the sum of the two numbers, which you can check with a calculator.",
    "This list has five items and they are all fruits.",
    "Paris is the capital of France and it is known for its museums.",
    "I am sorry, but I do not know the answer to this question.",
    "To sort the numbers, compare each pair and swap them if they are in the wrong order.",
)
CONFIGS = {"rloo": OkapiRLOOConfig, "grpo": OkapiGRPOConfig}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("rl-trl")
    write_sample_raw(root / "raw", ["vi", "ru"])
    build_dataset(root / "raw", root / "okapi_hf", ["vi", "ru"], ["rl"], progress=False)
    sft = make_tiny_model("llama", root / "sft")
    other = make_tiny_model("llama", root / "other-sft", vocab_size=600)  # another vocabulary
    return {
        "data": str(root / "okapi_hf"),
        "sft": sft,
        "rm": _reward_model(sft, root / "rm"),
        "other_rm": _reward_model(other, root / "other-rm"),
    }


def _reward_model(model_dir, out):
    """A fresh scalar head on the tiny model, saved like `okapi-hf train rm` saves one."""
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=1)
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(model_dir).save_pretrained(out)
    return out


def _parse(env, algorithm, *overrides, tmp_path, lang="vi", model=True):
    return parse_stage_args(
        "rl",
        CONFIGS[algorithm],
        f"tiny-{algorithm}",
        [f"runs_dir={tmp_path / 'runs'}", *overrides],
        lang=lang,
        dataset_path=env["data"],
        model_name_or_path=str(env["sft"]) if model else None,
        run="t",
    )


def _by_hand(model, tokenizer, text):
    with torch.no_grad():
        return model(**tokenizer(text, return_tensors="pt")).logits[0, 0].item()


# -- the language-fidelity reward ------------------------------------------------------------------------


@pytest.mark.parametrize("lang", SAMPLE_LANGS)
def test_language_score_is_high_on_sample_text_and_low_on_english(lang):
    native = [language_score(row["output"], lang) for row in sample_rows(lang, "sft", 20)]
    english = [language_score(text, lang) for text in ENGLISH]
    assert min(native) >= 0.9, native
    assert max(english) <= 0.2, english
    assert all(0.0 <= s <= 1.0 for s in native + english)


@pytest.mark.parametrize(
    ("lang", "text"),
    [
        ("de", "Die Hauptstadt von Deutschland ist Berlin, und der Zug fährt um acht Uhr ab."),
        ("fr", "La capitale de la France est Paris, une ville très célèbre pour ses musées."),
        ("es", "La capital de España es Madrid, una ciudad muy grande y antigua."),
    ],
)
def test_latin_script_languages_are_told_from_english(lang, text):
    assert language_score(text, lang) >= 0.9
    assert max(language_score(e, lang) for e in ENGLISH) <= 0.2


def test_partial_drift_and_missing_diacritics_score_in_between():
    vi = sample_rows("vi", "sft", 4)[0]["output"]
    plain = "Tong cua hai so nay la mot so rat lon, ban co the tu kiem tra lai bang may tinh"
    assert 0.3 <= language_score(plain, "vi") <= 0.7  # Vietnamese letters, but no diacritics
    ru = "Столица Франции — Париж. The capital of France is Paris."
    assert 0.2 < language_score(ru, "ru") < 0.8
    assert language_score(vi, "vi") > language_score(plain, "vi")


@pytest.mark.parametrize("text", ["", "   ", "4001", "12, 7, 3.", "..."])
def test_text_without_letters_scores_zero(text):
    assert language_score(text, "vi") == 0.0
    assert language_score(text, "zh") == 0.0


def test_language_fidelity_reward_takes_trls_arguments():
    zh, ru = sample_rows("zh", "sft", 1)[0]["output"], sample_rows("ru", "sft", 1)[0]["output"]
    completions = [zh, ENGLISH[0], "", [{"role": "assistant", "content": ru}]]
    scores = language_fidelity_reward(
        prompts=["p"] * 4,
        completions=completions,
        lang=["zh", "zh", "zh", "ru"],
        completion_ids=[[1]] * 4,
        trainer_state=None,
        id=["a", "b", "c", "d"],
    )
    assert scores == [1.0, 0.0, 0.0, 1.0]
    assert language_fidelity_reward.__name__ == "language_fidelity_reward"  # trl logs it by this name
    with pytest.raises(DataError, match="`lang` column"):
        language_fidelity_reward(prompts=["p"], completions=["x"])


# -- the reward model as a reward function ---------------------------------------------------------------


def test_reward_model_scorer_scores_like_training(env):
    tokenizer = AutoTokenizer.from_pretrained(env["rm"])
    model = AutoModelForSequenceClassification.from_pretrained(env["rm"]).eval()
    rows = sample_rows("vi", "rl", 3)
    prompts = [format_prompt(r["instruction"], r["input"]) for r in rows]
    completions = ["Hà Nội.", "Tổng của hai số là một số rất lớn, bạn có thể kiểm tra lại.", ""]

    scorer = RewardModelScorer(env["rm"], batch_size=2)  # a padded batch and a batch of one
    scores = scorer(prompts=prompts, completions=completions, lang=["vi"] * 3)
    assert scorer.__name__ == "reward_model"
    assert all(isinstance(s, float) for s in scores)
    expected = [
        _by_hand(model, tokenizer, p + c + tokenizer.eos_token)
        for p, c in zip(prompts, completions, strict=True)
    ]
    assert scores == pytest.approx(expected, abs=1e-5)
    without_eos = [_by_hand(model, tokenizer, p + c) for p, c in zip(prompts, completions, strict=True)]
    assert scores != pytest.approx(without_eos, abs=1e-5)  # what trl's path-string reward model would read
    assert not scorer.model.training
    assert not any(p.requires_grad for p in scorer.model.parameters())


def test_a_tokenizer_without_pad_token_scores_without_eos_as_in_training(env):
    tokenizer = AutoTokenizer.from_pretrained(env["rm"])
    tokenizer.pad_token = None  # reward.py then pads with eos and never appends it
    model = AutoModelForSequenceClassification.from_pretrained(env["rm"]).eval()
    prompt, completions = format_prompt("Thủ đô của Pháp là gì?"), ["Paris.", "Thủ đô của Pháp là Paris."]
    scores = RewardModelScorer(model, tokenizer, batch_size=2)([prompt] * 2, completions)
    assert scores == pytest.approx([_by_hand(model, tokenizer, prompt + c) for c in completions], abs=1e-5)


def test_a_classifier_with_several_outputs_is_refused(env, tmp_path):
    AutoModelForSequenceClassification.from_pretrained(env["sft"], num_labels=3).save_pretrained(tmp_path)
    with pytest.raises(ConfigError, match="num_labels=1"):
        RewardModelScorer(tmp_path, AutoTokenizer.from_pretrained(env["sft"]))


# -- prompts ---------------------------------------------------------------------------------------------


def test_prompts_are_left_truncated_and_counted(env):
    tokenizer = AutoTokenizer.from_pretrained(env["sft"])
    rows = load_dataset("vi", "rl", env["data"], split="train")
    full = [format_prompt(r["instruction"], r["input"]) for r in rows]
    lengths = [len(tokenizer(p)["input_ids"]) for p in full]
    limit = sorted(lengths)[len(lengths) // 2]  # about half the prompts are longer
    prompts, report = prepare_prompts(rows, tokenizer, limit, "train")

    assert prompts.column_names == ["id", "lang", "prompt"]
    assert prompts["lang"] == ["vi"] * len(rows)
    longer = [i for i, n in enumerate(lengths) if n > limit]
    assert 0 < report.truncated == len(longer) < len(rows)
    assert report.rows == len(rows)
    assert report.examples == [rows[i]["id"] for i in longer][:5]
    for text, original, n in zip(prompts["prompt"], full, lengths, strict=True):
        assert len(tokenizer(text)["input_ids"]) <= limit
        assert original.endswith(text)  # the end, where the response begins, is kept
        assert (text == original) == (n <= limit)
        assert text.endswith("### Response:\n")
    assert f"{len(longer)} left-truncated to {limit} tokens" in report.summary()

    untouched, report = prepare_prompts(rows, tokenizer, None, "train")
    assert untouched["prompt"] == full and report.truncated == 0


def test_an_empty_instruction_names_its_row(env):
    rows = load_dataset("vi", "rl", env["data"], split="train").select(range(3))
    rows = rows.map(lambda r: {"instruction": " " if r["id"] == rows[1]["id"] else r["instruction"]})
    with pytest.raises(DataError, match=rows[1]["id"]):
        prepare_prompts(rows, AutoTokenizer.from_pretrained(env["sft"]), 256, "train")


# -- the stage -------------------------------------------------------------------------------------------


def _log_history(out):
    return json.loads((out / "trainer_state.json").read_text())["log_history"]


@pytest.mark.slow
@pytest.mark.parametrize(("algorithm", "weight"), [("rloo", 0.0), ("grpo", 0.5)])
def test_trl_rl_writes_a_loadable_policy(env, tmp_path, algorithm, weight):
    run_args, config, model_args = _parse(
        env,
        algorithm,
        f"reward_model_path={env['rm']}",
        f"language_reward_weight={weight}",
        tmp_path=tmp_path,
    )
    out = train_trl_rl(run_args, config, model_args)
    assert out == tmp_path / "runs" / "t" / "rl"

    assert (out / "model.safetensors").is_file() and not (out / "pytorch_model.bin").exists()
    model, info = AutoModelForCausalLM.from_pretrained(out, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert (
        AutoTokenizer.from_pretrained(out).get_vocab()
        == AutoTokenizer.from_pretrained(env["sft"]).get_vocab()
    )
    before, after = load_file(env["sft"] / "model.safetensors"), model.state_dict()
    top, bottom = "model.layers.1.mlp.up_proj.weight", "model.layers.0.mlp.up_proj.weight"
    assert not torch.equal(after[top], before[top])  # the tiny recipe trains the top block only
    assert torch.equal(after[bottom], before[bottom])
    assert torch.equal(after["model.embed_tokens.weight"], before["model.embed_tokens.weight"])

    card = ModelCard.load(out / "README.md")
    assert card.data.pipeline_tag == "text-generation" and card.data.language == ["vi"]
    assert algorithm in card.data.tags
    assert "train: 15 prompts" in card.text and "vi-rl" in card.text

    saved = yaml.safe_load((out / "run_config.yaml").read_text())
    assert list(saved) == ["RunArguments", CONFIGS[algorithm].__name__, "ModelConfig"]
    section = saved[CONFIGS[algorithm].__name__]
    assert section["algorithm"] == algorithm and section["reward_model_path"] == str(env["rm"])
    assert section["reward_weights"] == ([1.0, weight] if weight else [1.0])
    report = json.loads((out / "prompt_data_report.json").read_text())
    assert (report["train"]["rows"], report["train"]["truncated"]) == (15, 0)

    logs = _log_history(out)
    train_logs = [entry for entry in logs if "reward" in entry]
    assert len(train_logs) == 2  # max_steps=2, logging_steps=1
    names = {k.split("/")[1] for entry in train_logs for k in entry if k.startswith("rewards/")}
    assert names == ({"reward_model", "language_fidelity_reward"} if weight else {"reward_model"})
    if weight:  # the logged total is the weighted sum of the two rewards
        for entry in train_logs:
            total = (
                entry["rewards/reward_model/mean"] + weight * entry["rewards/language_fidelity_reward/mean"]
            )
            assert entry["reward"] == pytest.approx(total, abs=1e-4)
    assert any("eval_reward" in entry for entry in logs)  # the 5% validation prompts


def test_a_reward_model_with_another_tokenizer_is_refused_before_training(env, tmp_path, monkeypatch):
    def no_trainer(*args, **kwargs):
        raise AssertionError("the trainer must not be built")

    monkeypatch.setitem(rl.TRAINERS, "rloo", no_trainer)
    run_args, config, model_args = _parse(
        env, "rloo", f"reward_model_path={env['other_rm']}", tmp_path=tmp_path
    )
    with pytest.raises(ConfigError, match="different tokenizers") as err:
        train_trl_rl(run_args, config, model_args)
    assert str(env["sft"]) in str(err.value) and str(env["other_rm"]) in str(err.value)
    assert not (tmp_path / "runs" / "t" / "rl").exists()


def test_a_missing_reward_model_stage_names_the_command(env, tmp_path):
    run_args, config, model_args = _parse(env, "grpo", tmp_path=tmp_path)
    with pytest.raises(OkapiError, match="no reward model at") as err:
        train_trl_rl(run_args, config, model_args)
    assert "`okapi-hf train rm --lang vi --run t" in str(err.value)


def test_a_missing_sft_stage_names_the_command(env, tmp_path):
    run_args, config, model_args = _parse(env, "rloo", tmp_path=tmp_path, model=False)
    with pytest.raises(OkapiError, match="`okapi-hf train sft --lang vi --run t"):
        train_trl_rl(run_args, config, model_args)


# -- configs and recipes ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("algorithm", "item", "message"),
    [
        ("rloo", "algorithm=grpo", "invalid choice: 'grpo'"),
        ("rloo", "language_reward_weight=-1", "language_reward_weight must be >= 0"),
        ("grpo", "reward_weights=1,2", "instead of reward_weights"),
        ("rloo", "max_prompt_length=0", "max_prompt_length must be >= 1"),
    ],
)
def test_bad_rl_options_are_refused_when_parsed(env, tmp_path, algorithm, item, message):
    with pytest.raises(OkapiError, match=message):
        _parse(env, algorithm, item, tmp_path=tmp_path)


@pytest.mark.parametrize(("config", "recipe"), [(OkapiRLOOConfig, "grpo"), (OkapiGRPOConfig, "tiny-rloo")])
def test_a_recipe_for_another_algorithm_is_refused(config, recipe):
    expected = config.__dataclass_fields__["algorithm"].default
    with pytest.raises(
        OkapiError, match=f"algorithm must be '{expected}', got '{recipe.removeprefix('tiny-')}'"
    ):
        parse_stage_args("rl", config, recipe, ["bf16=false"], lang="vi")


def test_configs_validate_in_python_too():
    with pytest.raises(ConfigError, match="algorithm must be 'grpo'"):
        OkapiGRPOConfig(output_dir="x", algorithm="rloo", use_cpu=True, bf16=False)
    config = OkapiRLOOConfig(output_dir="x", language_reward_weight=0.3, use_cpu=True, bf16=False)
    assert config.reward_weights_for_funcs() == [1.0, 0.3]
    config = OkapiRLOOConfig(
        output_dir="x", reward_weights=[1.0, 0.3], language_reward_weight=0.3, bf16=False
    )
    assert config.reward_weights == [1.0, 0.3]  # a saved run_config.yaml parses again


@pytest.mark.parametrize("algorithm", ["rloo", "grpo"])
def test_the_recipes_carry_okapis_rl_settings(algorithm):
    _, config, _ = parse_stage_args("rl", CONFIGS[algorithm], algorithm, ["bf16=false"], lang="vi")
    assert config.algorithm == algorithm
    assert (config.max_prompt_length, config.max_completion_length) == (256, 256)
    assert (config.temperature, config.top_k, config.top_p) == (1.0, 0, 1.0)
    assert config.learning_rate == 1e-6 and (config.adam_beta1, config.adam_beta2) == (0.9, 0.95)
    assert config.lr_scheduler_type.value == "constant"
    assert config.num_unfrozen_layers == 5
    assert config.generation_batch_size == 128 and config.num_iterations == 4
    assert config.eval_strategy.value != "no"
    assert config.reward_model_path is None and config.language_reward_weight == 0.0
    _, tiny, _ = parse_stage_args("rl", CONFIGS[algorithm], f"tiny-{algorithm}", [], lang="vi")
    assert tiny.algorithm == algorithm and tiny.use_cpu and not tiny.bf16
