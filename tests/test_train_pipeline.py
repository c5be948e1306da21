"""`okapi-hf train all` chains sft -> rm -> rl in one run folder; the `train` commands and recipe aliases."""

from __future__ import annotations

import json

import pytest
import yaml
from huggingface_hub import ModelCard

from okapi_hf.cli import build_parser, main
from okapi_hf.data.build import build_dataset
from okapi_hf.data.sample import write_sample_raw
from okapi_hf.errors import OkapiError
from okapi_hf.testing import make_tiny_model
from okapi_hf.train import recipes
from okapi_hf.train.pipeline import DEFAULT_RECIPES, run_stage, train_all
from okapi_hf.train.recipes import RECIPES_DIR, recipe_file

OUTPUTS = ("config.json", "model.safetensors", "run_config.yaml", "README.md", "trainer_state.json")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline")
    write_sample_raw(root / "raw", ["vi"])
    build_dataset(root / "raw", root / "okapi_hf", ["vi"], ["sft", "ranking", "rl"], progress=False)
    return {"root": root, "data": str(root / "okapi_hf"), "model": make_tiny_model("llama", root / "llama")}


@pytest.fixture(scope="module")
def pipeline(env):
    """One `train all` with a shared override (every stage) and stage-prefixed ones (one stage each)."""
    runs = env["root"] / "runs"
    argv = ["train", "all", "--recipe", "tiny", "--lang", "vi", "--model", str(env["model"])]
    argv += ["--data", env["data"], "--run", "p", f"runs_dir={runs}"]
    argv += ["max_train_samples=8", "rm.max_steps=2", "rl.max_steps=1", "rl.max_new_tokens=5"]
    assert main(argv) == 0
    return runs / "p"


def _run_config(folder):
    return yaml.safe_load((folder / "run_config.yaml").read_text())


def _state(folder):
    return json.loads((folder / "trainer_state.json").read_text())


def test_train_all_writes_every_stage(pipeline, capsys):
    for stage in ("sft", "rm", "rl"):
        folder = pipeline / stage
        for name in OUTPUTS:
            assert (folder / name).is_file(), f"{stage}/{name}"
        assert not (folder / "pytorch_model.bin").exists()
    assert not (pipeline / "dpo").exists()
    assert json.loads((pipeline / "rm" / "config.json").read_text())["architectures"] == [
        "LlamaForSequenceClassification"
    ]
    assert json.loads((pipeline / "rl" / "config.json").read_text())["architectures"] == ["LlamaForCausalLM"]


def test_train_all_chains_the_stages(pipeline, env):
    assert _run_config(pipeline / "sft")["ModelConfig"]["model_name_or_path"] == str(env["model"])
    for stage in ("rm", "rl"):  # found by convention, not passed on
        assert _run_config(pipeline / stage)["ModelConfig"]["model_name_or_path"] is None
    sft = str(pipeline / "sft")
    assert sft in ModelCard.load(pipeline / "rm" / "README.md").text
    rl_card = ModelCard.load(pipeline / "rl" / "README.md").text
    assert sft in rl_card and str(pipeline / "rm") in rl_card
    # the policy's card lists every stage behind it, from the base model on
    rows = [line for line in rl_card.splitlines() if line.startswith(("| 1 |", "| 2 |", "| 3 |"))]
    assert [row.split("|")[2].strip() for row in rows] == ["sft", "rm", "rl"]
    assert f"`{env['model']}`" in rows[0] and f"`{sft}`" in rows[2]


def test_overrides_reach_their_stages(pipeline):
    configs = {stage: _run_config(pipeline / stage) for stage in ("sft", "rm", "rl")}
    assert [c["RunArguments"]["max_train_samples"] for c in configs.values()] == [8, 8, 8]
    assert configs["sft"]["OkapiSFTConfig"]["max_steps"] == -1
    assert configs["rm"]["RankedRewardConfig"]["max_steps"] == 2
    assert configs["rl"]["PPOConfig"]["max_steps"] == 1 and configs["rl"]["PPOConfig"]["max_new_tokens"] == 5
    assert _state(pipeline / "sft")["global_step"] == 4  # 8 rows, 4 per step, the tiny recipe's 2 epochs
    assert _state(pipeline / "rm")["global_step"] == 2
    iterations = [h for h in _state(pipeline / "rl")["log_history"] if "reward/score" in h]
    assert len(iterations) == 1 and iterations[0]["response_length"] <= 5


def test_a_prefix_for_a_stage_train_all_does_not_run_is_an_error(env, tmp_path, capsys):
    argv = ["train", "all", "--recipe", "tiny", "--lang", "vi", "--model", str(env["model"])]
    assert main([*argv, "--data", env["data"], "--run", "x", f"runs_dir={tmp_path}", "dpo.beta=0.2"]) == 1
    err = capsys.readouterr().err
    assert "okapi-hf: error:" in err and "dpo.beta=0.2" in err and "sft, rm, rl" in err
    assert not (tmp_path / "x").exists()
    with pytest.raises(OkapiError, match="not dpo"):
        train_all(["dpo.beta=0.2"], recipe="tiny", lang="vi")


def test_an_unknown_stage_is_an_error():
    with pytest.raises(OkapiError, match="unknown training stage 'ppo'"):
        run_stage("ppo", [], recipe="tiny", lang="vi")


@pytest.mark.parametrize("stage", ["sft", "rm", "rl", "dpo", "all"])
def test_every_train_command_has_help(stage, capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["train", stage, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert f"okapi-hf train {stage}" in out
    assert "--recipe" in out and "--lang" in out and "key=value" in out
    if stage == "all":
        assert "sft.max_steps" in out and "--rl-recipe" in out
    else:
        assert "--output-dir" in out


def test_the_okapi_recipe_of_each_stage():
    assert recipe_file("sft", "okapi") == RECIPES_DIR / "sft" / "bloom-7b1.yaml"  # Okapi's main model
    assert DEFAULT_RECIPES["sft"] == "bloom-7b1" and DEFAULT_RECIPES is recipes.DEFAULT_RECIPES  # one table
    for stage in ("rm", "rl", "dpo"):
        assert recipe_file(stage, "okapi") == RECIPES_DIR / stage / "okapi.yaml"
        assert recipe_file(stage, "tiny") == RECIPES_DIR / stage / "tiny.yaml"
    with pytest.raises(OkapiError, match="no rm recipe named 'bloom-7b1'"):
        recipe_file("rm", "bloom-7b1")  # the alias belongs to the sft stage alone


def test_every_shipped_recipe_says_what_it_was_tuned_for():
    import yaml

    recipes = sorted(RECIPES_DIR.glob("*/*.yaml"))
    stage_recipes = [p for p in recipes if p.parent.name != "accelerate"]
    assert len(stage_recipes) >= 16
    for path in stage_recipes:
        values = yaml.safe_load(path.read_text())
        assert len(values.get("tuned_for") or "") > 20, path
        if path.stem.startswith("tiny"):  # the smoke-test settings refuse real models
            assert values["max_model_parameters"] <= 10_000_000, path
    readme = (RECIPES_DIR / "README.md").read_text()
    for path in stage_recipes:
        assert f"`{path.stem}`" in readme, f"{path} is not in recipes/README.md"


# -- what a stage shows on the terminal, and what it logs -------------------------------------------------

LOG_DICT_KEYS = ("'loss':", "'grad_norm':", "'learning_rate':")


def _sft_stage(env, runs, **kwargs):
    overrides = ["max_train_samples=8", "max_steps=2", f"runs_dir={runs}"]
    return run_stage(
        "sft",
        overrides,
        recipe="tiny",
        lang="vi",
        model_name_or_path=str(env["model"]),
        dataset_path=env["data"],
        run="log",
        **kwargs,
    )


def test_a_stage_shows_progress_and_a_summary_and_logs_the_rest_to_a_file(env, tmp_path, capfd):
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        folder = _sft_stage(env, tmp_path)
    terminal = "".join(capfd.readouterr())
    for key in LOG_DICT_KEYS:
        assert key not in terminal, terminal
    assert "okapi-hf train sft: 2 steps in " in terminal and "loss " in terminal
    assert f"outputs in {folder}; full log in {folder / 'train.log'}" in terminal
    assert "2/2 [" in terminal  # the progress bar stays

    log = (folder / "train.log").read_text(encoding="utf-8")
    assert "== okapi-hf train sft" in log
    steps = [line for line in log.splitlines() if "okapi_hf.train.steps: step " in line]
    assert len([line for line in steps if "'loss':" in line and "'grad_norm':" in line]) == 2
    assert "INFO transformers." in log  # the libraries' info logging, kept off the terminal

    # no warning of our making: none raised in okapi_hf, none about an option our recipes set
    ours = [w for w in caught if "okapi_hf" in w.filename or "checkpointing" in str(w.message)]
    assert not ours, [f"{w.filename}:{w.lineno}: {w.message}" for w in ours]


def test_verbose_puts_the_log_dicts_on_the_terminal_and_appends_to_the_log(env, tmp_path, capfd):
    folder = _sft_stage(env, tmp_path, verbose=True)
    terminal = "".join(capfd.readouterr())
    assert all(key in terminal for key in LOG_DICT_KEYS), terminal
    assert "okapi-hf train sft: 2 steps" in terminal
    _sft_stage(env, tmp_path)  # a second run into the same folder appends
    log = (folder / "train.log").read_text(encoding="utf-8")
    assert log.count("== okapi-hf train sft") == 2
    assert "'loss':" not in "".join(capfd.readouterr())


@pytest.mark.parametrize(
    "path",
    sorted(p for p in RECIPES_DIR.glob("*/*.yaml") if p.parent.name != "accelerate"),
    ids=lambda p: f"{p.parent.name}/{p.stem}",
)
def test_no_shipped_recipe_sets_a_deprecated_option(path):
    import warnings

    from okapi_hf.train import run_rl
    from okapi_hf.train.pipeline import STAGES
    from okapi_hf.train.recipes import parse_stage_args

    stage = path.parent.name
    assert stage in STAGES
    classes = {"sft": "okapi_hf.train.sft:OkapiSFTConfig", "rm": "okapi_hf.train.reward:RankedRewardConfig"}
    classes["dpo"] = "okapi_hf.train.dpo:ListwiseDPOConfig"
    if stage == "rl":
        config_class = run_rl.config_class(run_rl._algorithm(path.stem, []))
    else:
        import importlib

        module, name = classes[stage].split(":")
        config_class = getattr(importlib.import_module(module), name)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        warnings.simplefilter("error", DeprecationWarning)
        parse_stage_args(stage, config_class, path.stem, ["bf16=false", "use_cpu=true"], lang="vi")


def test_an_old_option_name_overrides_the_new_one_without_a_warning():
    import warnings

    from okapi_hf.train.recipes import parse_stage_args
    from okapi_hf.train.sft import OkapiSFTConfig

    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        _, config, _ = parse_stage_args(
            "sft", OkapiSFTConfig, "tiny", ["gradient_checkpointing=true"], lang="vi"
        )
    assert config.activation_checkpointing and config.gradient_checkpointing
