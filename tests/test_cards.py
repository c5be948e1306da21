"""Hub cards: render and reload with the right metadata, training stages, local validation, Space READMEs."""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from huggingface_hub import DatasetCard, EvalResult, ModelCard, SpaceCard

from okapi_hf.data.build import build_dataset
from okapi_hf.data.sample import write_sample_raw
from okapi_hf.errors import OkapiError
from okapi_hf.hub.cards import (
    GRADIO_SDK_VERSION,
    render_dataset_card,
    render_model_card,
    render_space_card,
    stage_history,
    validate_card,
    write_space_readmes,
)
from okapi_hf.spaces import chat, leaderboard

REPO = Path(__file__).resolve().parents[1]


def _model_card(**kw) -> str:
    values = {
        "title": "Okapi RLHF policy (vi)",
        "description": "A test card.",
        "stage": "RLHF",
        "init_from": "bigscience/bloom-7b1",
        "langs": ["vi", "ru"],
        "data": "`okapi_hf`, config `vi-rl`",
        "usage": "print('hi')",
        "hyperparameters": {"learning_rate": 1e-5},
    }
    return render_model_card(**{**values, **kw})


# -- dataset and model cards -----------------------------------------------------------------------------


def test_dataset_card_renders_and_reloads_with_its_configs(tmp_path):
    write_sample_raw(tmp_path / "raw", ["vi", "ru"])
    build_dataset(tmp_path / "raw", tmp_path / "out", ["vi", "ru"], ["sft", "rl"], progress=False)
    info = json.loads((tmp_path / "out" / "okapi_build.json").read_text())
    text = render_dataset_card(info, repo_id="org/okapi")
    (tmp_path / "README.md").write_text(text, encoding="utf-8")

    card = DatasetCard.load(tmp_path / "README.md")
    data = card.data.to_dict()
    assert data["language"] == ["ru", "vi"] and data["license"] == "cc-by-nc-4.0"
    configs = {c["config_name"]: c["data_files"] for c in data["configs"]}
    assert set(configs) == {"vi", "vi-rl", "ru", "ru-rl"}
    assert configs["ru-rl"] == [
        {"split": "train", "path": "data/ru/rl/train-*.parquet"},
        {"split": "validation", "path": "data/ru/rl/validation-*.parquet"},
    ]
    assert "@article{lai2023okapi" in card.text and 'load_dataset("org/okapi", "ru-rl")' in card.text
    assert validate_card(tmp_path / "README.md", "dataset").data.license == "cc-by-nc-4.0"


def test_model_card_reloads_with_base_model_languages_and_results():
    results = [
        EvalResult(
            task_type="multiple-choice",
            dataset_type="okapi_arc_vi",
            dataset_name="Okapi ARC-Challenge (Vietnamese)",
            metric_type="acc_norm",
            metric_value=41.5,
        )
    ]
    card = ModelCard(_model_card(eval_results=results, tags=["rlhf"], pipeline_tag="text-generation"))
    assert card.data.base_model == "bigscience/bloom-7b1"
    assert card.data.language == ["vi", "ru"] and card.data.license == "cc-by-nc-4.0"
    assert card.data.library_name == "transformers" and "rlhf" in card.data.tags
    assert card.data.model_name == "Okapi RLHF policy (vi)"
    (got,) = card.data.eval_results
    assert (got.dataset_type, got.metric_type, got.metric_value) == ("okapi_arc_vi", "acc_norm", 41.5)
    assert "Vietnamese (`vi`), Russian (`ru`)" in card.text
    assert "## Training stages" not in card.text  # only with stages=


def test_a_local_start_is_not_a_base_model(tmp_path):
    assert ModelCard(_model_card(init_from=str(tmp_path))).data.base_model is None


# -- training stages -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The run_config.yaml files of sft -> rm -> rl, written the way the stages write them (no training).

    As with `okapi-hf train all`, only SFT names its model; rm and rl find the earlier stages in the
    run folder, so their run_config.yaml says model_name_or_path: null. runs_dir is relative, as by default.
    """
    from okapi_hf.train.ppo_config import PPOConfig
    from okapi_hf.train.recipes import output_folder, parse_stage_args, write_run_config
    from okapi_hf.train.reward import RankedRewardConfig
    from okapi_hf.train.sft import OkapiSFTConfig

    root = tmp_path_factory.mktemp("run")
    base = root / "base-model"
    base.mkdir()
    stages = [
        ("sft", OkapiSFTConfig, ["max_steps=3"], {"model_name_or_path": str(base)}),
        ("rm", RankedRewardConfig, ["margin=0.5"], {}),
        ("rl", PPOConfig, ["init_kl_coef=0.05"], {}),
    ]
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        for stage, config_class, overrides, flags in stages:
            run_args, config, model_args = parse_stage_args(
                stage, config_class, "tiny", [*overrides, "runs_dir=runs"], lang="vi", run="p", **flags
            )
            write_run_config(output_folder(run_args, config, stage), run_args, config, model_args)
    return {"root": root, "base": base}


def test_stage_history_walks_back_from_the_policy(run, monkeypatch):
    monkeypatch.chdir(run["root"])  # where training ran: the recorded relative paths resolve
    history = stage_history("runs/p/rl")
    assert [s["stage"] for s in history] == ["sft", "rm", "rl"]
    sft, rm, rl = history
    assert sft["init_from"] == str(run["base"]) and sft["output"] == "runs/p/sft"
    assert rm["init_from"] == "runs/p/sft" and rm["reward_model"] is None
    assert rl["init_from"] == "runs/p/sft" and rl["reward_model"] == "runs/p/rm"
    written = yaml.safe_load(Path("runs/p/rl/run_config.yaml").read_text())["PPOConfig"]
    assert rl["hyperparameters"]["init_kl_coef"] == 0.05 == written["init_kl_coef"]
    assert rl["hyperparameters"]["algorithm"] == "ppo"
    assert rl["hyperparameters"]["learning_rate"] == written["learning_rate"]
    assert rm["hyperparameters"]["margin"] == 0.5 and "max_steps" not in rm["hyperparameters"]  # -1: epochs
    assert sft["hyperparameters"]["max_steps"] == 3 and sft["hyperparameters"]["loss_on"] == "response"
    assert stage_history("runs/p/rm") == [sft, rm]


def test_stage_history_finds_a_moved_run_by_its_sibling_folders(run, tmp_path, monkeypatch):
    moved = Path(shutil.copytree(run["root"] / "runs" / "p", tmp_path / "elsewhere" / "p"))
    monkeypatch.chdir(tmp_path)  # the recorded runs/p/... do not exist from here
    history = stage_history(moved / "rl")
    assert [s["stage"] for s in history] == ["sft", "rm", "rl"]
    assert history[2]["init_from"] == str(moved / "sft") and history[2]["reward_model"] == str(moved / "rm")


def test_stages_render_as_a_table_on_the_card(run, monkeypatch):
    monkeypatch.chdir(run["root"])
    text = _model_card(stages=stage_history("runs/p/rl"))
    table = text[text.index("## Training stages") : text.index("## Training hyperparameters")]
    rows = [line for line in table.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert [row.split(" | ")[1] for row in rows] == ["sft", "rm", "rl"]
    assert f"`{run['base']}`" in rows[0] and "`margin=0.5`" in rows[1]
    assert "`runs/p/sft`; reward model `runs/p/rm`" in rows[2] and "`init_kl_coef=0.05`" in rows[2]
    validate_card(text, "model")


def test_stage_history_errors_name_the_file(tmp_path):
    with pytest.raises(OkapiError, match=r"has no run_config\.yaml"):
        stage_history(tmp_path)
    (tmp_path / "run_config.yaml").write_text("RunArguments: [unclosed\n")
    with pytest.raises(OkapiError, match=r"run_config\.yaml: not valid YAML"):
        stage_history(tmp_path)
    (tmp_path / "run_config.yaml").write_text("RunArguments: {lang: vi}\nSomethingElse: {}\n")
    with pytest.raises(OkapiError, match="no stage config section"):
        stage_history(tmp_path)


# -- validation ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "edit", "field"),
    [
        ("model", ("license: cc-by-nc-4.0\n", ""), "`license`"),
        ("model", ("library_name: transformers\n", ""), "`library_name`"),
        ("model", ("language:\n- vi\n- ru\n", "language: []\n"), "`language`"),
        (
            "model",
            ("license:", "model-index:\n- name: x\n  results:\n  - task: {type: a}\nlicense:"),
            "`model-index`",
        ),
        ("space", ("sdk: gradio\n", ""), "`sdk`"),
        ("space", ("sdk: gradio\n", "sdk: flask\n"), "`sdk`"),
        ("space", ("app_file: app.py\n", ""), "`app_file`"),
        ("space", ("title: Okapi chat\n", ""), "`title`"),
        ("space", ("colorFrom: yellow", "colorFrom: teal"), "`colorFrom`"),
        (
            "space",
            ("short_description: Chat", "short_description: " + "x" * 61 + " Chat"),
            "`short_description`",
        ),
    ],
)
def test_an_invalid_card_names_the_field(kind, edit, field):
    text = _model_card() if kind == "model" else render_space_card("chat")
    assert edit[0] in text
    with pytest.raises(OkapiError, match=field):
        validate_card(text.replace(edit[0], edit[1], 1), kind)


def test_invalid_dataset_cards_name_the_config():
    card = "---\nlanguage: [vi]\nlicense: cc-by-nc-4.0\nconfigs:\n- config_name: vi\n  data_files: []\n---\n"
    with pytest.raises(OkapiError, match="config 'vi' has no `data_files`"):
        validate_card(card, "dataset")
    with pytest.raises(OkapiError, match="`configs` entry 0 has no `config_name`"):
        validate_card(card.replace("config_name: vi", "name: vi"), "dataset")
    with pytest.raises(OkapiError, match="`configs`"):
        validate_card("---\nlanguage: [vi]\nlicense: cc-by-nc-4.0\n---\n", "dataset")


def test_cards_without_a_readable_header_are_refused(tmp_path):
    with pytest.raises(OkapiError, match="no YAML metadata header"):
        validate_card("# just a title\n", "model")
    path = tmp_path / "README.md"
    path.write_text("---\nlicense: [unclosed\n---\n")
    with pytest.raises(OkapiError, match=f"{path}: the YAML header cannot be parsed"):
        validate_card(path, "model")
    with pytest.raises(OkapiError, match="unknown card kind"):
        validate_card("---\na: 1\n---\n", "kernel")


# -- Spaces ----------------------------------------------------------------------------------------------


def test_chat_space_card_reloads_and_documents_the_apps_settings():
    text = render_space_card("chat")
    card = SpaceCard(text)
    assert (card.data.sdk, card.data.app_file, card.data.title) == ("gradio", "app.py", "Okapi chat")
    assert card.data.sdk_version == GRADIO_SDK_VERSION and card.data.license == "apache-2.0"
    assert card.data.emoji and card.data.colorFrom == "yellow" and card.data.short_description
    # the settings the README explains are the ones the app reads, with its defaults
    assert f"| `{chat.MODEL_ENV}` | required |" in text
    assert f"| `{chat.MAX_INPUT_CHARS_ENV}` | `{chat.DEFAULT_MAX_INPUT_CHARS}` |" in text
    assert f"| `{chat.CONCURRENCY_ENV}` | `{chat.DEFAULT_CONCURRENCY}` |" in text
    assert f"`{chat.GPU_ENV}`" in text
    assert "OKAPI_CHAT_MODEL=runs/okapi-vi/rl python spaces/chat/app.py" in text


def test_leaderboard_space_card_documents_its_data_sources():
    text = render_space_card("leaderboard", models=["org/okapi-vi"], datasets=["org/okapi"])
    card = SpaceCard(text)
    assert card.data.title == "Okapi leaderboard" and card.data.models == ["org/okapi-vi"]
    assert card.data.datasets == ["org/okapi"] and "leaderboard" in card.data.tags
    assert "[`org/okapi-vi`](https://huggingface.co/org/okapi-vi)" in card.text
    assert "[`org/okapi`](https://huggingface.co/datasets/org/okapi)" in card.text
    assert f"`{leaderboard.SEED_ENV}`" in text and f"`{leaderboard.RESULTS_ENV}`" in text
    assert "reference_results_base_models.csv" in text and "okapi-hf eval run" in text


def test_space_card_fields_are_checked():
    assert SpaceCard(render_space_card("chat", emoji="💬", title="My chat")).data.title == "My chat"
    with pytest.raises(OkapiError, match="unknown Space card field"):
        render_space_card("chat", colour="red")
    with pytest.raises(OkapiError, match="unknown Space 'forum'"):
        render_space_card("forum")
    with pytest.raises(OkapiError, match="`short_description`"):
        render_space_card("chat", short_description="x" * 61)


def test_the_pinned_gradio_is_the_installed_major_version():
    installed = importlib.metadata.version("gradio")
    assert GRADIO_SDK_VERSION.split(".")[0] == installed.split(".")[0], (GRADIO_SDK_VERSION, installed)


def _run_module(module: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """``python -m module args`` as a user types it, from ``cwd``, with this checkout importable."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def test_committed_space_readmes_are_a_fresh_rendering(tmp_path):
    for kind in ("chat", "leaderboard"):
        committed = (REPO / "spaces" / kind / "README.md").read_text(encoding="utf-8")
        assert committed == render_space_card(kind), (
            f"spaces/{kind}/README.md: run `python -m okapi_hf.hub.cards`"
        )
    # the documented command, under its old name too (an alias module run as __main__)
    done = _run_module("okapi_hf.cards", str(tmp_path), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "RuntimeWarning" not in done.stderr, done.stderr
    assert (tmp_path / "spaces" / "chat" / "README.md").read_text() == render_space_card("chat")
    assert write_space_readmes(tmp_path) == [
        tmp_path / "spaces" / k / "README.md" for k in ("chat", "leaderboard")
    ]


@pytest.mark.parametrize("module", ["okapi_hf.hub.cards", "okapi_hf.cards"])
def test_cards_help_prints_usage_and_writes_nothing(tmp_path, module):
    done = _run_module(module, "--help", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: python -m okapi_hf.hub.cards"), done.stdout
    assert "hub_cards/" in done.stdout and "RuntimeWarning" not in done.stderr, done.stderr
    assert list(tmp_path.iterdir()) == []  # once, `--help` was taken for the folder to write into


def test_the_old_cards_module_name_is_the_moved_module():
    """``okapi_hf.cards`` (documented as a command) is the hub module itself, so patching either works."""
    import okapi_hf.cards
    import okapi_hf.hub.cards

    assert okapi_hf.cards is okapi_hf.hub.cards
