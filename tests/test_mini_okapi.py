"""benchmarks/mini_okapi.py end to end at toy size, so the experiment of issue 17 cannot rot.

Tiny random models learn nothing, so nothing here checks that RLHF helps: the test checks that every
arm is trained and saved, that every measure is taken on every arm x language x held-out prompt, and
that the report, chart and log come out.
"""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "mini_okapi.py"
FIXTURES = ROOT / "tests" / "fixtures" / "okapi-eval"
ARMS = ["base", "sft", "ppo", "grpo", "dpo", "ppo_lang"]
LANGS = ["vi", "bn"]
MEASURES = {"exact", "correct", "reward", "in_language", "language", "length_tokens", "reply"}


def _run_script(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Run the script as `python benchmarks/mini_okapi.py ARGV` would, in this process."""
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), *argv])
    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    with pytest.raises(SystemExit) as done:
        runpy.run_path(str(SCRIPT), run_name="__main__")
    assert done.value.code == 0


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.slow
def test_toy_size_end_to_end(tmp_path, monkeypatch, capsys):
    out = tmp_path / "mini"
    monkeypatch.setenv("OKAPI_HF_EVAL_DIR", str(FIXTURES))  # has vi ARC/TruthfulQA, no bn: one of each case
    _run_script(["--size", "toy", "--out", str(out)], monkeypatch)
    printed = capsys.readouterr().out

    heldout = _jsonl(out / "heldout.jsonl")
    assert {r["lang"] for r in heldout} == set(LANGS)
    per_lang = {lang: [r["id"] for r in heldout if r["lang"] == lang] for lang in LANGS}
    assert all(len(ids) == 8 for ids in per_lang.values())
    assert len({r["task"] for r in heldout}) >= 6 and "other" not in {r["task"] for r in heldout}
    # held out: no training row of any subset asks the same thing
    raw = [row for f in (out / "data" / "raw").rglob("*.json") for row in json.loads(f.read_text())]
    trained = {(r["instruction"], r["input"]) for r in raw}
    assert not trained & {(r["instruction"], r["input"]) for r in heldout}
    # rankings: complete > terse > wrong > refusal or a correct answer in English
    assert any(r["responses"][3] == f"The answer is {r['responses'][1]}." for r in heldout)

    # one row per arm x language x prompt, each with every measure
    rows = _jsonl(out / "results.jsonl")
    assert len(rows) == len(ARMS) * len(heldout)
    assert {(r["arm"], r["lang"], r["prompt_id"]) for r in rows} == {
        (arm, lang, pid) for arm in ARMS for lang in LANGS for pid in per_lang[lang]
    }
    for row in rows:
        assert row.keys() >= MEASURES
        assert isinstance(row["reward"], float) and isinstance(row["length_tokens"], int)
        assert row["in_language"] == (row["language"] == row["lang"])

    # the reward model's own held-out ranking quality, per ranking
    ranked = _jsonl(out / "rankings.jsonl")
    assert len(ranked) == len(heldout) and all(len(r["scores"]) == 4 for r in ranked)
    assert all(0 <= r["pairwise_accuracy"] <= 1 and -1 <= r["kendall_tau"] <= 1 for r in ranked)

    # Okapi items: vi scored per document for every arm, bn has no file and is said to be missing
    okapi = _jsonl(out / "okapi_eval.jsonl")
    assert {(r["arm"], r["benchmark"], r["lang"]) for r in okapi} == {
        (arm, bench, "vi") for arm in ARMS for bench in ("arc", "truthfulqa")
    }
    assert all("mc2" in r for r in okapi if r["benchmark"] == "truthfulqa")

    # every arm saved in its own folder, each trained from SFT with the shared reward model
    for arm in ARMS:
        manifest = json.loads((out / "arms" / arm / "arm.json").read_text())
        assert manifest["arm"] == arm
        if arm != "base":
            assert (out / "arms" / arm / "config.json").is_file()
            assert (out / "arms" / arm / "trainer_state.json").is_file()
        if arm not in ("base", "sft"):
            assert manifest["start_from"] == str(out / "arms" / "sft")
    for arm in ("ppo", "grpo", "ppo_lang"):
        assert json.loads((out / "arms" / arm / "arm.json").read_text())["reward_model"] == str(
            out / "reward_model"
        )
    assert (
        "language_reward_weight=1.0"
        in json.loads((out / "arms" / "ppo_lang" / "arm.json").read_text())["overrides"]
    )

    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["arms"]) == set(ARMS) and set(summary["vs_sft"]) == set(ARMS) - {"sft"}
    interval = summary["arms"]["ppo"]["bn"]["correct"]
    assert interval["low"] <= interval["mean"] <= interval["high"] and interval["n"] == 8
    assert set(summary["reward_model"]) == set(LANGS)

    table = (out / "table.md").read_text()
    for text in (
        "Vietnamese (`vi`)",
        "Bengali (`bn`)",
        "Difference from SFT",
        "pairwise accuracy",
        "synthetic",
    ):
        assert text in table
    assert all(f"| {arm} |" in table for arm in ARMS)
    assert "no file for arc/bn, truthfulqa/bn" in table and "Stage times" in table
    assert (out / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and (
        out / "chart.png"
    ).stat().st_size > 20_000
    log = (out / "run.log").read_text()
    assert "train ppo_lang" in log and "Mini-Okapi (toy) done" in log
    assert "Mini-Okapi (toy) done" in printed and "- Answer:" in printed


def _helpers():
    """The ``mini_okapi`` package beside the script."""
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import mini_okapi.data
        import mini_okapi.measure
        import mini_okapi.okapi_eval
        import mini_okapi.sizes
    finally:
        sys.path.remove(str(SCRIPT.parent))
    return mini_okapi


def test_okapi_items_are_skipped_and_said_so_without_the_eval_dir(monkeypatch):
    monkeypatch.delenv("OKAPI_HF_EVAL_DIR", raising=False)
    tasks, note = _helpers().okapi_eval.plan(LANGS)
    assert tasks == {} and "not scored: OKAPI_HF_EVAL_DIR is not set" in note


def test_sizes_parse_with_their_recipes():
    """Every stage of every size (and the RLOO swap) is a valid recipe + overrides, before anything trains."""
    from okapi_hf.train.recipes import parse_stage_args
    from okapi_hf.train.run_dpo import ListwiseDPOConfig
    from okapi_hf.train.run_rl import config_class
    from okapi_hf.train.run_rm import RankedRewardConfig
    from okapi_hf.train.run_sft import OkapiSFTConfig

    sizes = _helpers().sizes
    SIZES, group_recipe, smoke = sizes.SIZES, sizes.group_recipe, sizes.smoke

    classes = {"sft": OkapiSFTConfig, "rm": RankedRewardConfig, "dpo": ListwiseDPOConfig}
    for size in [*SIZES.values(), group_recipe(SIZES["cpu"], "rloo"), smoke(SIZES["gpu"])]:
        for arm, stage in size.stages.items():
            overrides = [o for o in stage.overrides if not o.startswith("bf16=")] + ["bf16=false"]
            algorithm = next((a for a in ("grpo", "rloo") if a in stage.recipe), "ppo")
            config = classes.get(stage.stage) or config_class(algorithm)
            run_args, parsed, model_args = parse_stage_args(
                stage.stage, config, stage.recipe, overrides, lang="vi,bn"
            )
            assert run_args.lang == "vi,bn", (size.name, arm)
            if arm == "ppo_lang":
                assert parsed.language_reward_weight == 1.0
            if size.name == "cpu" and arm in ("group", "dpo"):
                assert model_args.use_peft, (size.name, arm)  # LoRA where full fine-tuning does not fit


def test_correct_answer_is_a_whole_token_and_never_the_wrong_response():
    helpers = _helpers()
    ranking = helpers.data.Ranking(
        "bn-1", "bn", "parity", "124 কি জোড় সংখ্যা, নাকি বিজোড় সংখ্যা?", "",
        ["124 একটি জোড় সংখ্যা।", "জোড়", "124 একটি বিজোড় সংখ্যা।", "আমি জানি না।"],
    )  # fmt: skip
    correct = helpers.measure.is_correct
    assert correct("124 একটি জোড় সংখ্যা।", ranking) and correct("জোড়", ranking)
    assert helpers.measure.is_exact(" 124 একটি জোড়  সংখ্যা। ", ranking)
    assert not correct("124 বিজোড়", ranking)  # "even" inside "odd": a vowel sign is a mark, not a boundary
    assert not correct("124 একটি বিজোড় সংখ্যা।", ranking) and not correct("", ranking)
    count = helpers.data.Ranking(
        "vi-1", "vi", "count", "q", "a, b, c, d", ["Danh sách có 4 mục.", "4", "Danh sách có 5 mục.", "x"]
    )
    assert correct("Danh sách có 4 mục.", count) and not correct("Danh sách có 14 mục.", count)
