import json

import pytest
from huggingface_hub import DatasetCard
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

from okapi_hf.cli import main
from okapi_hf.data.sample import SAMPLE_LANGS


@pytest.mark.slow
def test_quickstart_runs_every_stage(tmp_path, capsys):
    out = tmp_path / "qs"
    assert main(["quickstart", "--out", str(out), "--lang", "ru"]) == 0
    printed = capsys.readouterr().out
    assert "quickstart done in" in printed
    for stage in (
        "sample data",
        "build dataset",
        "load every config",
        "tiny models",
        "okapi prompt",
        "sft",
        "reward model",
        "ppo",
        "okapi eval",
        "chat",
    ):
        assert stage in printed
    assert f"{3 * len(SAMPLE_LANGS)} configs" in printed
    assert len(DatasetCard.load(out / "okapi_hf" / "README.md").data.configs) == 3 * len(SAMPLE_LANGS)
    for arch in ("bloom", "llama"):
        assert (out / "models" / f"tiny-{arch}" / "model.safetensors").is_file()
        AutoModelForCausalLM.from_pretrained(out / "models" / f"tiny-{arch}")
    assert "### Response:\n" in printed
    runs = out / "runs" / "pipeline"
    rm = runs / "rm"
    assert AutoModelForSequenceClassification.from_pretrained(rm).config.num_labels == 1
    for stage in ("sft", "rm", "rl"):
        assert f"saved to {runs / stage}" in printed
        assert (runs / stage / "model.safetensors").is_file() and (runs / stage / "README.md").is_file()
    # the stages chained: rm started from the SFT output, PPO from SFT with that reward model
    assert "runs/pipeline/sft" in (rm / "README.md").read_text()
    rl_card = (runs / "rl" / "README.md").read_text()
    assert "runs/pipeline/sft" in rl_card and "runs/pipeline/rm" in rl_card
    results = json.loads((out / "eval" / "results.json").read_text())["results"]
    assert 0.0 <= results["okapi_arc_ru"]["acc,none"] <= 1.0
    assert "okapi_arc_ru acc" in printed
    assert "user: " in printed and "\nassistant: " in printed


def test_quickstart_rejects_a_language_without_sample_text(tmp_path, capsys):
    assert main(["quickstart", "--out", str(tmp_path), "--lang", "de"]) == 1
    assert "sample data covers vi, ru, zh, ar, hi, bn" in capsys.readouterr().err
