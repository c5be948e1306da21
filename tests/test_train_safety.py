"""Training outputs survive kills and full disks: resume skips a half-written checkpoint, a failed save keeps
the previous model whole, and what goes up has no pickle."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from transformers import AutoModelForCausalLM

from okapi_hf.cli import main


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from okapi_hf.data.build import build_dataset
    from okapi_hf.data.sample import write_sample_raw
    from okapi_hf.testing import make_tiny_model

    root = tmp_path_factory.mktemp("train-safety")
    write_sample_raw(root / "raw", ["vi"])
    build_dataset(root / "raw", root / "data", ["vi"], ["sft"], progress=False)
    return {"model": str(make_tiny_model("llama", root / "llama")), "data": str(root / "data"), "root": root}


def _sft(world, out, *overrides: str) -> int:
    argv = [
        "train",
        "sft",
        "--recipe",
        "tiny",
        "--lang",
        "vi",
        "--model",
        world["model"],
        "--data",
        world["data"],
    ]
    return main([*argv, "--output-dir", str(out), "max_train_samples=8", "eval_strategy=no", *overrides])


@pytest.mark.slow
def test_resume_skips_the_newest_checkpoint_when_a_kill_cut_its_save_short(world, capsys):
    out = world["root"] / "resume"
    assert _sft(world, out, "max_steps=2", "save_strategy=steps", "save_steps=1") == 0
    newest = out / "checkpoint-2" / "trainer_state.json"
    newest.write_text(newest.read_text()[:40])  # the state file is written last: a kill mid-write
    assert (
        _sft(world, out, "max_steps=3", "save_strategy=steps", "save_steps=1", "resume_from_checkpoint=true")
        == 0
    )
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 3
    steps = [h["step"] for h in state["log_history"] if "loss" in h]
    assert steps == [1, 2, 3]  # resumed after step 1 (checkpoint-1), so step 2 was trained again


@pytest.mark.slow
def test_every_checkpoint_half_written_is_refused_clearly(world, capsys):
    out = world["root"] / "all-broken"
    (out / "checkpoint-4").mkdir(parents=True)
    assert _sft(world, out, "resume_from_checkpoint=true") == 1
    assert "every checkpoint in" in capsys.readouterr().err


@pytest.mark.slow
def test_a_full_disk_during_the_save_keeps_the_previous_model_whole(world, capsys, small_disk):
    from conftest import fill_disk

    disk = small_disk(4096)
    out = disk / "sft"
    assert _sft(world, out, "max_steps=1") == 0
    before = (out / "model.safetensors").read_bytes()
    fill_disk(disk, leave=200_000)  # the run config fits, the weights (about 1 MB) do not
    assert _sft(world, out, "max_steps=2", "learning_rate=0.5") == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("okapi-hf: error: the disk is full"), err
    assert (out / "model.safetensors").read_bytes() == before  # the old weights, not half of the new ones
    AutoModelForCausalLM.from_pretrained(out)  # and they load


@pytest.mark.slow
def test_a_trained_folder_holds_no_pickle(world):
    out = world["root"] / "no-pickle"
    assert _sft(world, out, "max_steps=1") == 0
    names = {p.name for p in out.iterdir()}
    assert "model.safetensors" in names and "config.json" in names
    assert not any(name.endswith((".bin", ".pt", ".pkl")) for name in names), names
    assert not (out / ".saving").exists()


@pytest.mark.slow
def test_the_stage_output_lock_is_released_after_a_failed_run(world, tmp_path, capsys):
    """A stage that failed after taking its folder must not leave it locked for the next run."""
    out = Path(tmp_path) / "sft"
    missing = {**world, "data": str(tmp_path / "no-data")}
    assert _sft(missing, out, "max_steps=1") == 1
    assert "no-data" in capsys.readouterr().err
    assert _sft(world, out, "max_steps=1") == 0
