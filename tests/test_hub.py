"""`okapi-hf publish`: the plan per kind, the Hub calls (to an autospec'd HfApi) and the token's safety."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from unittest.mock import create_autospec

import httpx2
import pytest
import yaml
from huggingface_hub import CommitOperationAdd, HfApi, ModelCard, constants
from huggingface_hub.errors import HfHubHTTPError

import okapi_hf.hub as hub
from okapi_hf.cli import main
from okapi_hf.data.build import build_dataset
from okapi_hf.data.sample import write_sample_raw
from okapi_hf.errors import OkapiError
from okapi_hf.eval.harness import write_report
from okapi_hf.hub import publishing
from okapi_hf.hub.cards import render_model_card
from okapi_hf.testing import make_tiny_model

SPACES = Path(__file__).resolve().parents[1] / "spaces"
# Built at run time so no token-like literal sits in the repository.
FAKE_TOKEN = "hf_" + "".join(chr(ord("a") + (7 * i) % 26) for i in range(30))
MODEL_FILES = {
    "README.md",
    "chat_template.jinja",
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "run_config.yaml",
    "tokenizer.json",
    "tokenizer_config.json",
}
DATASET_FILES = {
    "README.md",
    "okapi_build.json",
    *(
        f"data/vi/{subset}/{split}-00000-of-00001.parquet"
        for subset in ("sft", "ranking", "rl")
        for split in ("train", "validation")
    ),
}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    """One of each kind of folder, plus an eval folder; tests copy what they change."""
    root = tmp_path_factory.mktemp("publish")
    write_sample_raw(root / "raw", ["vi"])
    build_dataset(root / "raw", root / "dataset", ["vi"], ["sft", "ranking", "rl"], progress=False)

    model = make_tiny_model("llama", root / "model")
    card = render_model_card(
        title="Okapi SFT model (vi)",
        description="A tiny test model.",
        stage="supervised fine-tuning",
        init_from="meta-llama/Llama-2-7b-hf",
        langs=["vi"],
        data="`okapi_hf`, config `vi`",
        usage="print('hi')",
        hyperparameters={"learning_rate": 2e-5},
    )
    (model / "README.md").write_text(card, encoding="utf-8")
    (model / "run_config.yaml").write_text("RunArguments:\n  lang: vi\n", encoding="utf-8")
    (model / "training_args.bin").write_bytes(b"\x80\x04pickled")
    (model / "checkpoint-2").mkdir()
    (model / "checkpoint-2" / "optimizer.pt").write_bytes(b"\x80\x04" + b"0" * 100)
    (model / "checkpoint-2" / "model.safetensors").write_bytes(b"0" * 50)

    space = root / "space"
    shutil.copytree(SPACES / "chat", space)
    (space / "__pycache__").mkdir()
    (space / "__pycache__" / "app.cpython-311.pyc").write_bytes(b"\0")
    (space / "flagged").mkdir()
    (space / "flagged" / "log.csv").write_text("visitor input\n")
    (space / ".env").write_text("OKAPI_CHAT_MODEL=x\n")

    evals = root / "eval"
    evals.mkdir()
    results = {
        "okapi_arc_vi": {"acc,none": 0.3012, "acc_norm,none": 0.3456},
        "okapi_hellaswag_vi": {"acc,none": 0.4, "acc_norm,none": 0.45},
    }
    write_report({"results": results}, evals, "tiny")
    return {"dataset": root / "dataset", "model": model, "space": space, "eval": evals}


@pytest.fixture
def copy(built, tmp_path):
    """A private copy of one of the built folders, for tests that change it."""

    def make(kind: str) -> Path:
        return Path(shutil.copytree(built[kind], tmp_path / kind))

    return make


@pytest.fixture
def no_token(monkeypatch, tmp_path):
    """No HF_TOKEN and an empty login cache."""
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "empty-home" / "token"))


@pytest.fixture
def token(no_token, monkeypatch) -> str:
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    return FAKE_TOKEN


@pytest.fixture
def online(monkeypatch):
    """The suite runs with HF_HUB_OFFLINE=1, which a real publish refuses; the doubles need no network."""
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


@pytest.fixture
def api_class(monkeypatch, online):
    """`HfApi` replaced by an autospec double: calls with a wrong signature fail as they would."""
    cls = create_autospec(HfApi)
    monkeypatch.setattr(publishing, "HfApi", cls)  # where publish looks it up
    return cls


def _publish(*argv: str) -> int:
    return main(["publish", *map(str, argv)])


def _uploaded(api) -> dict[str, str | bytes]:
    """path_in_repo -> what went up (a local path or bytes), from the one create_commit call."""
    api.create_commit.assert_called_once()
    operations = api.create_commit.call_args.kwargs["operations"]
    assert all(isinstance(op, CommitOperationAdd) for op in operations)
    return {op.path_in_repo: op.path_or_fileobj for op in operations}


def _assert_no_token_anywhere(token: str, printed: str, caplog, *folders: Path) -> None:
    """Not in what was printed, not in any log record, not in any file of the published folders."""
    assert token not in printed
    assert token not in caplog.text
    assert all(token not in str(r.args) for r in caplog.records)
    for folder in folders:
        for path in folder.rglob("*"):
            if path.is_file():
                assert token.encode() not in path.read_bytes(), path


# -- dry runs --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "expected", "left_out"),
    [
        ("dataset", DATASET_FILES, {}),
        (
            "model",
            MODEL_FILES,
            {"training_args.bin": "pickled TrainingArguments", "checkpoint-2/": "checkpoint"},
        ),
        (
            "space",
            {"README.md", "app.py", "requirements.txt"},
            {"__pycache__/": "bytecode", "flagged/": "flagging", ".env": "hidden"},
        ),
    ],
)
def test_dry_run_prints_every_file_and_where_it_goes(
    built, kind, expected, left_out, api_class, no_token, capsys
):
    folder = built[kind]
    assert _publish(kind, folder, "--repo-id", "org/name", "--dry-run") == 0
    out = capsys.readouterr().out
    assert out.startswith(f"Dry run, nothing uploaded. Plan: {kind} repo org/name (public)")
    prefix = {"dataset": "datasets/", "space": "spaces/"}.get(kind, "")
    assert f"https://huggingface.co/{prefix}org/name" in out
    assert "Hub token: not found" in out
    planned = {line.split(" -> ")[1].split("  (")[0] for line in out.splitlines() if " -> " in line}
    assert planned == expected
    for name in expected:
        assert f"{folder / name}" in out  # the local file, on the same line as its repo path
        line = next(line for line in out.splitlines() if line.strip().startswith(f"{folder / name} "))
        assert line.split(" -> ")[1].startswith(name + "  (")
    for name, reason in left_out.items():
        line = next(line for line in out.splitlines() if line.strip().startswith(name))
        assert reason in line
    assert (f"Left out ({len(left_out)}):" if left_out else "Left out: nothing") in out
    api_class.assert_not_called()


def test_dry_run_says_a_token_was_found_without_showing_it(built, api_class, token, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    assert _publish("model", built["model"], "--repo-id", "org/name", "--dry-run", "--private") == 0
    out = capsys.readouterr().out
    assert "Hub token: found" in out and "(private)" in out
    assert token not in out and token not in caplog.text
    api_class.assert_not_called()


# -- real publishing (to the double) ---------------------------------------------------------------------


def test_publish_model_uploads_exactly_the_plan(built, api_class, token, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    argv = ["model", built["model"], "--repo-id", "org/okapi-vi", "--private", "--commit-message", "first"]
    assert _publish(*argv) == 0

    api_class.assert_called_once_with(token=token)  # the token goes to HfApi and nowhere else
    api = api_class.return_value
    api.create_repo.assert_called_once_with("org/okapi-vi", repo_type="model", private=True, exist_ok=True)
    api.repo_info.assert_called_once_with("org/okapi-vi", repo_type="model")
    uploaded = _uploaded(api)
    assert uploaded == {name: str(built["model"] / name) for name in MODEL_FILES}
    kwargs = api.create_commit.call_args.kwargs
    assert api.create_commit.call_args.args == ("org/okapi-vi",)
    assert kwargs["repo_type"] == "model" and kwargs["commit_message"] == "first"
    assert "token" not in kwargs and "token" not in api.create_repo.call_args.kwargs
    out, err = capsys.readouterr()
    assert "Published: model repo org/okapi-vi (private)" in out
    assert "training_args.bin: pickled" in out
    _assert_no_token_anywhere(token, out + err, caplog, built["model"])


def test_publish_dataset_and_space_use_their_repo_types(built, api_class, token, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    api = api_class.return_value
    assert _publish("dataset", built["dataset"], "--repo-id", "org/okapi-data") == 0
    api.create_repo.assert_called_once_with(
        "org/okapi-data", repo_type="dataset", private=False, exist_ok=True
    )
    api.repo_info.assert_not_called()  # only checked when --private asks for a private repo
    assert _uploaded(api) == {name: str(built["dataset"] / name) for name in DATASET_FILES}
    assert api.create_commit.call_args.kwargs["repo_type"] == "dataset"

    api.reset_mock()
    assert _publish("space", built["space"], "--repo-id", "org/okapi-chat") == 0
    api.create_repo.assert_called_once_with(
        "org/okapi-chat", repo_type="space", private=False, exist_ok=True, space_sdk="gradio"
    )
    assert set(_uploaded(api)) == {"README.md", "app.py", "requirements.txt"}
    assert api.create_commit.call_args.kwargs["repo_type"] == "space"
    out, err = capsys.readouterr()
    assert out.count("Published: ") == 2
    _assert_no_token_anywhere(token, out + err, caplog, built["dataset"], built["space"])


def test_publishing_without_a_token_is_refused(built, api_class, no_token, capsys):
    assert _publish("model", built["model"], "--repo-id", "org/name") == 1
    err = capsys.readouterr().err
    assert "okapi-hf: error: no Hugging Face token" in err
    assert "HF_TOKEN" in err and "hf auth login" in err
    api_class.assert_not_called()


def test_offline_mode_is_refused_before_any_call(built, api_class, token, monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(OkapiError, match="HF_HUB_OFFLINE"):
        hub.publish("space", built["space"], "org/name")
    api_class.assert_not_called()


def test_an_existing_public_repo_is_not_published_as_private(built, api_class, token):
    api = api_class.return_value
    api.repo_info.return_value.private = False
    with pytest.raises(OkapiError, match="already exists and is public"):
        hub.publish("model", built["model"], "org/name", private=True)
    api.create_commit.assert_not_called()


def test_hub_errors_become_okapi_errors(built, api_class, token):
    request = httpx2.Request("POST", "https://huggingface.co/api/repos/create")
    response = httpx2.Response(403, request=request)
    api_class.return_value.create_repo.side_effect = HfHubHTTPError("403 Forbidden", response=response)
    with pytest.raises(OkapiError, match="the Hub refused to publish dataset org/name: 403 Forbidden"):
        hub.publish("dataset", built["dataset"], "org/name")


def test_an_explicit_api_object_is_used_as_given(built, token, online):
    api = create_autospec(HfApi, instance=True)
    result = hub.publish("space", built["space"], "org/name", api=api)
    assert api.create_repo.call_count == 1 and api.create_commit.call_count == 1
    assert not result.dry_run and "Files uploaded (3," in result.summary()


# -- the token never travels -----------------------------------------------------------------------------


def test_a_file_holding_the_token_is_refused_without_showing_it(copy, api_class, token, capsys, caplog):
    space = copy("space")
    (space / "notes.txt").write_text(f"my token is {token}\n")
    assert _publish("space", space, "--repo-id", "org/name", "--dry-run") == 1  # the plan lists the refusal
    out, err = capsys.readouterr()
    assert "notes.txt: holds a secret (line 1: the value of $HF_TOKEN)" in out
    assert _publish("space", space, "--repo-id", "org/name") == 1
    err += capsys.readouterr().err
    assert "refused to publish org/name: 1 file(s)" in err and "--dry-run" in err
    assert token not in out + err and token not in caplog.text
    api_class.assert_not_called()


# -- folders that are not what they claim ----------------------------------------------------------------


def test_a_model_with_only_pickled_weights_is_refused(copy, api_class, token, capsys):
    model = copy("model")
    (model / "model.safetensors").unlink()
    (model / "pytorch_model.bin").write_bytes(b"\x80\x04weights")
    assert _publish("model", model, "--repo-id", "org/name", "--dry-run") == 1
    err = capsys.readouterr().err
    assert "the only weights are pickled (pytorch_model.bin)" in err and "safetensors" in err
    api_class.assert_not_called()


def test_pickled_weights_next_to_safetensors_stay_behind(copy, token):
    model = copy("model")
    (model / "pytorch_model.bin").write_bytes(b"\x80\x04weights")
    plan = hub.plan_publish("model", model)
    assert "pytorch_model.bin" not in {f.path_in_repo for f in plan.files}
    left = {item.path: item for item in plan.left_out}
    assert "pickled weights" in left["pytorch_model.bin"].reason
    assert left["checkpoint-2/"].files == 2 and left["checkpoint-2/"].size == 152


def test_sharded_weights_need_every_shard(copy):
    model = copy("model")
    (model / "model.safetensors").rename(model / "model-00001-of-00002.safetensors")
    index = {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}
    (model / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(OkapiError, match=r"model-00002-of-00002\.safetensors"):
        hub.plan_publish("model", model)
    (model / "model-00002-of-00002.safetensors").write_bytes(b"0")
    assert "model-00002-of-00002.safetensors" in {
        f.path_in_repo for f in hub.plan_publish("model", model).files
    }


@pytest.mark.parametrize(
    ("kind", "source", "message"),
    [
        ("model", "dataset", "has no config.json"),
        ("dataset", "model", "has no okapi_build.json"),
        ("space", "model", "space card needs `title`"),
        ("model", "space", "has no config.json"),
    ],
)
def test_a_folder_of_another_kind_is_refused(built, kind, source, message):
    with pytest.raises(OkapiError, match=message):
        hub.publish(kind, built[source], "org/name", dry_run=True)


def test_missing_pieces_are_named(copy, tmp_path):
    model = copy("model")
    (model / "tokenizer.json").unlink()
    with pytest.raises(OkapiError, match="has no tokenizer"):
        hub.plan_publish("model", model)

    dataset = copy("dataset")
    shutil.rmtree(dataset / "data" / "vi" / "rl")
    with pytest.raises(
        OkapiError, match=r"config 'vi-rl' reads data/vi/rl/train-\*.parquet, which matches no"
    ):
        hub.plan_publish("dataset", dataset)

    space = copy("space")
    (space / "requirements.txt").unlink()
    with pytest.raises(OkapiError, match=r"has no requirements\.txt"):
        hub.plan_publish("space", space)

    with pytest.raises(OkapiError, match="is not a folder"):
        hub.plan_publish("space", tmp_path / "nowhere")


def test_extra_files_in_a_dataset_folder_are_listed_not_uploaded(copy):
    dataset = copy("dataset")
    (dataset / "notes.txt").write_text("scratch")
    (dataset / "data" / "vi" / "old.parquet").write_bytes(b"PAR1")
    plan = hub.plan_publish("dataset", dataset)
    assert {f.path_in_repo for f in plan.files} == DATASET_FILES
    reasons = {item.path: item.reason for item in plan.left_out}
    assert "not part of an `okapi-hf data build` output" in reasons["notes.txt"]
    assert reasons["data/vi/old.parquet"] == "no config in README.md reads it"


def test_an_invalid_card_is_refused_before_upload(copy, api_class, token, capsys):
    model = copy("model")
    readme = model / "README.md"
    readme.write_text(readme.read_text().replace("license: cc-by-nc-4.0\n", ""))
    assert _publish("model", model, "--repo-id", "org/name") == 1
    err = capsys.readouterr().err
    assert f"{readme}: model card needs `license`" in err
    api_class.return_value.create_repo.assert_not_called()


@pytest.mark.parametrize("repo_id", ["name-only", "org/na me", "a/b/c"])
def test_a_bad_repo_id_is_refused(built, repo_id):
    with pytest.raises(OkapiError, match="repo-id"):
        hub.publish("space", built["space"], repo_id, dry_run=True)


# -- --eval-results --------------------------------------------------------------------------------------


def test_eval_results_dry_run_says_what_the_card_gets(built, no_token, capsys):
    before = (built["model"] / "README.md").read_bytes()
    argv = ["model", built["model"], "--repo-id", "org/name", "--dry-run", "--eval-results", built["eval"]]
    assert _publish(*argv) == 0
    out = capsys.readouterr().out
    assert f"Card: README.md gets 4 model-index score(s) from {built['eval'] / 'model_index.yaml'}" in out
    assert "Okapi ARC-Challenge (Vietnamese), Okapi HellaSwag (Vietnamese)" in out
    readme_line = next(line for line in out.splitlines() if "-> README.md  (" in line)
    assert readme_line.endswith("[with the new model-index, sent from memory; the local file is unchanged]")
    assert (built["model"] / "README.md").read_bytes() == before


def test_eval_results_go_into_the_uploaded_card(copy, built, api_class, token, tmp_path):
    model = copy("model")
    before = (model / "README.md").read_bytes()
    argv = ["model", model, "--repo-id", "org/okapi-vi", "--eval-results", built["eval"]]
    assert _publish(*argv) == 0
    uploaded = _uploaded(api_class.return_value)
    assert isinstance(uploaded["README.md"], bytes) and token.encode() not in uploaded["README.md"]
    assert uploaded["config.json"] == str(model / "config.json")
    assert (model / "README.md").read_bytes() == before  # the user's file is not rewritten

    card_path = tmp_path / "uploaded.md"
    card_path.write_bytes(uploaded["README.md"])
    card = ModelCard.load(card_path)
    expected = yaml.safe_load((built["eval"] / "model_index.yaml").read_text())["model-index"][0]["results"]
    got = {(r.dataset_type, r.metric_type): r.metric_value for r in card.data.eval_results}
    want = {(x["dataset"]["type"], m["type"]): m["value"] for x in expected for m in x["metrics"]}
    assert got == want and got[("okapi_arc_vi", "acc")] == pytest.approx(30.12)
    assert card.data.model_name == "okapi-vi"
    assert card.data.license == "cc-by-nc-4.0" and card.data.language == ["vi"]
    assert card.text == ModelCard.load(model / "README.md").text  # the body is kept as it was


def test_eval_results_replace_old_scores_of_the_same_metric(copy, built):
    model = copy("model")
    first = hub.plan_publish("model", model)
    hub.add_eval_results(first, built["eval"], default_name="m")
    (model / "README.md").write_bytes(first.file("README.md").content)
    evals = Path(shutil.copytree(built["eval"], model.parent / "eval2"))
    index = yaml.safe_load((evals / "model_index.yaml").read_text())
    index["model-index"][0]["results"] = index["model-index"][0]["results"][:1]  # arc only
    index["model-index"][0]["results"][0]["metrics"][0]["value"] = 99.0
    (evals / "model_index.yaml").write_text(yaml.safe_dump(index))

    second = hub.plan_publish("model", model)
    hub.add_eval_results(second, evals, default_name="m")
    assert "2 replaced, 2 kept" in second.card_changes[0]
    card = ModelCard(second.file("README.md").content.decode())
    values = {(r.dataset_type, r.metric_type): r.metric_value for r in card.data.eval_results}
    assert len(values) == 4 and values[("okapi_arc_vi", "acc")] == 99.0
    assert values[("okapi_hellaswag_vi", "acc_norm")] == 45.0


def test_eval_results_errors(built, copy, tmp_path):
    with pytest.raises(OkapiError, match="applies to models only"):
        hub.publish("dataset", built["dataset"], "org/name", dry_run=True, eval_results=built["eval"])
    with pytest.raises(OkapiError, match=r"has no model_index\.yaml"):
        hub.publish("model", built["model"], "org/name", dry_run=True, eval_results=tmp_path)
    (tmp_path / "model_index.yaml").write_text("model-index:\n- name: x\n  results:\n  - task: {type: a}\n")
    with pytest.raises(OkapiError, match="not a model-index that huggingface_hub can read"):
        hub.publish("model", built["model"], "org/name", dry_run=True, eval_results=tmp_path)


def test_the_uploaded_card_loads_the_model_from_the_hub(copy, no_token):
    from okapi_hf.hub.cards import POLICY_USAGE

    model = copy("model")
    card = (
        (model / "README.md")
        .read_text(encoding="utf-8")
        .replace("print('hi')", POLICY_USAGE.format(path=model))
    )
    (model / "README.md").write_text(card, encoding="utf-8")
    result = hub.publish("model", model, "okapi-hf/tiny-vi", dry_run=True)
    uploaded = result.plan.file("README.md").content.decode("utf-8")
    assert 'pipeline("okapi-hf/tiny-vi")' in uploaded and str(model) not in uploaded
    assert (model / "README.md").read_text(encoding="utf-8") == card  # the local card is unchanged
    assert "loads okapi-hf/tiny-vi instead of the local folder" in result.summary()
