import json
import sys
import warnings

import pytest
from huggingface_hub import DatasetCard
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

from okapi_hf.cli import main
from okapi_hf.data.sample import SAMPLE_LANGS
from okapi_hf.errors import OkapiError
from okapi_hf.quickstart import DEFAULT_MODEL, _stage_output, plan


@pytest.mark.slow
def test_quickstart_tiny_runs_every_stage(tmp_path, capsys):
    out = tmp_path / "qs"
    assert main(["quickstart", "--tiny", "--out", str(out), "--lang", "ru"]) == 0
    captured = capsys.readouterr()
    printed = captured.out
    assert "quickstart done in" in printed
    # quiet: the stages' names and the summary on the terminal, every log line in the log file
    log = (out / "quickstart.log").read_text(encoding="utf-8")
    for text in (printed, captured.err):
        assert not [line for line in text.splitlines() if line.lstrip("\r").startswith("{'")], text[-2000:]
    head = [line for line in printed.split("quickstart done in")[0].splitlines() if line.strip()]
    assert len(head) == 11 and head[-1] == "[10/10] okapi eval"  # a first line, then one per stage
    assert printed.rstrip().endswith(f"report: {out / 'quickstart.md'}")
    assert f"log: {out / 'quickstart.log'}" in printed
    assert "[10/10] okapi eval" in log and "### Response:\n" in log
    assert "\x1b[" not in log and "\r" not in log  # progress bars stay on the terminal
    # each training stage logs its steps' dicts to train.log in its folder
    for stage, key in (("sft", "'loss'"), ("rm", "'loss'"), ("rl", "'objective/kl'")):
        assert key in (out / "runs" / "pipeline" / stage / "train.log").read_text(encoding="utf-8")
    for stage in (
        "sample data",
        "build dataset",
        "load every config",
        "model",
        "okapi prompt",
        "sft",
        "reward model",
        "ppo",
        "side by side",
        "okapi eval",
    ):
        assert stage in printed
    assert f"{3 * len(SAMPLE_LANGS)} configs" in printed
    assert len(DatasetCard.load(out / "okapi_hf" / "README.md").data.configs) == 3 * len(SAMPLE_LANGS)
    for arch in ("bloom", "llama"):
        assert (out / "models" / f"tiny-{arch}" / "model.safetensors").is_file()
        AutoModelForCausalLM.from_pretrained(out / "models" / f"tiny-{arch}")
    assert "### Response:\n" in log
    runs = out / "runs" / "pipeline"
    rm = runs / "rm"
    assert AutoModelForSequenceClassification.from_pretrained(rm).config.num_labels == 1
    for stage in ("sft", "rm", "rl"):
        assert f"saved to {runs / stage}" in printed
        assert (runs / stage / "model.safetensors").is_file() and (runs / stage / "README.md").is_file()
    assert "(tiny recipe)" in printed
    # the stages chained: rm started from the SFT output, PPO from SFT with that reward model
    assert "runs/pipeline/sft" in (rm / "README.md").read_text()
    rl_card = (runs / "rl" / "README.md").read_text()
    assert "runs/pipeline/sft" in rl_card and "runs/pipeline/rm" in rl_card
    # side by side: three models on the same held-out prompts, each reply measured
    replies = [json.loads(line) for line in (out / "side_by_side.jsonl").read_text().splitlines()]
    assert [r["model"] for r in replies] == ["base"] * 3 + ["sft"] * 3 + ["rl"] * 3
    assert len({r["id"] for r in replies}) == 3 and all(isinstance(r["reward"], float) for r in replies)
    assert "| model | exact answer | in Russian | mean reward |" in printed
    for name in ("base", "sft", "rl"):
        results = json.loads((out / "eval" / name / "results.json").read_text())["results"]
        assert 0.0 <= results["okapi_arc_ru"]["acc,none"] <= 1.0
    assert "sample rankings as 3-way multiple choice, not the real ARC" in printed
    assert "nothing is learned" in printed
    report = (out / "quickstart.md").read_text()
    assert (
        "## Side by side on held-out prompts" in report and (out / "quickstart.png").stat().st_size > 10_000
    )


def test_quickstart_defaults_to_a_real_model_and_its_recipe():
    real = plan("vi", None, tiny=False)
    assert real.model == DEFAULT_MODEL == "gemma-3-270m" and real.recipe == "small"
    assert plan("vi", "/some/model.gguf", tiny=False).recipe == "small"
    assert plan("vi", None, tiny=True).recipe == "tiny"
    with pytest.raises(OkapiError, match="--tiny trains tiny random models; drop --model"):
        plan("vi", "gemma-3-270m", tiny=True)


def test_quickstart_rejects_a_language_without_sample_text(tmp_path, capsys):
    assert main(["quickstart", "--out", str(tmp_path), "--lang", "de"]) == 1
    assert "sample data covers vi, ru, zh, ar, hi, bn" in capsys.readouterr().err


@pytest.mark.parametrize("verbose", [False, True])
def test_a_stage_prints_to_the_log_and_shows_its_progress_bars(verbose, tmp_path, capsys):
    with open(tmp_path / "quickstart.log", "w", encoding="utf-8") as log, _stage_output(log, verbose):
        print({"loss": 1.5})
        if not verbose:  # verbose leaves warnings as they are
            warnings.warn("a library warning", UserWarning, stacklevel=1)
        sys.stderr.write("\rtraining: 50%|#####     | 1/2")
        sys.stderr.write("\n\x1b[A")
        sys.stderr.write("\n")
        print("a table", file=sys.stderr)
    log = (tmp_path / "quickstart.log").read_text(encoding="utf-8")
    out, err = capsys.readouterr()
    assert "{'loss': 1.5}" in log
    assert ("{'loss': 1.5}" in out) is verbose
    assert "training: 50%" in err and "\rtraining" not in log and "\x1b[A" in err and "\x1b" not in log
    if not verbose:
        assert "a library warning" in log and "a table" in log
        assert "a library warning" not in err and "a table" not in err and err.count("\n") == 2
