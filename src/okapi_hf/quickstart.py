"""``okapi-hf quickstart``: every stage of the pipeline once, on sample data and tiny models.

Data, SFT, the K-wise reward model, PPO, a small Okapi evaluation through lm-eval and one chat reply,
for one language, in a few minutes on a laptop CPU. Each stage is a function that returns a one-line
result; the runner times them and ends with a summary table, so a newcomer sees what ran, what it
made and where it lies. ``model=`` swaps the tiny random model for a real one (same stages).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from okapi_hf.errors import OkapiError
from okapi_hf.languages import get_language


def run_quickstart(
    out: str | Path = "runs/quickstart", lang: str = "vi", model: str | None = None
) -> list[tuple[str, str, float]]:
    """Run the stages into ``out`` and print a summary; returns (stage, result, seconds) rows."""
    from okapi_hf.data.sample import SAMPLE_LANGS

    out = Path(out)
    lang = get_language(lang).code
    if lang not in SAMPLE_LANGS:
        raise OkapiError(f"the quickstart's sample data covers {', '.join(SAMPLE_LANGS)}; got {lang!r}")
    stages: list[tuple[str, Callable[[], str]]] = [
        ("sample data", lambda: _sample(out)),
        ("build dataset", lambda: _build(out)),
        ("load every config", lambda: _load(out)),
        ("tiny models", lambda: _models(out)),
        ("okapi prompt", lambda: _prompt(out, lang)),
        ("sft", lambda: _train(out, lang, "sft", model or str(out / "models" / "tiny-llama"))),
        ("reward model", lambda: _train(out, lang, "rm")),
        ("ppo", lambda: _train(out, lang, "rl")),
        ("okapi eval", lambda: _evaluate(out, lang)),
        ("chat", lambda: _chat(out, lang)),
    ]
    results = []
    for i, (name, stage) in enumerate(stages, start=1):
        print(f"\n[{i}/{len(stages)}] {name}", flush=True)
        start = time.perf_counter()
        results.append((name, stage(), time.perf_counter() - start))
    width = max(len(name) for name, _, _ in results)
    print(f"\nquickstart done in {sum(t for *_, t in results):.1f}s, outputs in {out}/")
    for name, result, seconds in results:
        print(f"  {name:<{width}}  {seconds:6.1f}s  {result}")
    return results


def _sample(out: Path) -> str:
    from okapi_hf.data.sample import write_sample_raw

    raw = write_sample_raw(out / "raw")
    return f"{sum(1 for _ in raw.rglob('*.json'))} raw files in the release layout under {raw}"


def _build(out: Path) -> str:
    from okapi_hf.data.build import build_dataset
    from okapi_hf.data.sample import SAMPLE_LANGS

    result = build_dataset(out / "raw", out / "okapi_hf", list(SAMPLE_LANGS))
    print(result.summary())
    return f"{len(result.splits)} configs in {result.out_dir}"


def _load(out: Path) -> str:
    import datasets
    from huggingface_hub import DatasetCard
    from tqdm.auto import tqdm

    configs = [c["config_name"] for c in DatasetCard.load(out / "okapi_hf" / "README.md").data.configs]
    rows = 0
    datasets.disable_progress_bars()  # one bar per split of 18 configs says nothing
    for config in tqdm(configs, desc="load_dataset", unit="config"):
        rows += sum(split.num_rows for split in datasets.load_dataset(str(out / "okapi_hf"), config).values())
    datasets.enable_progress_bars()
    return f"{len(configs)} configs, {rows} rows via datasets.load_dataset"


def _models(out: Path) -> str:
    from okapi_hf.testing import TINY_ARCHS, make_tiny_model

    paths = [make_tiny_model(arch, out / "models" / f"tiny-{arch}") for arch in TINY_ARCHS]
    return ", ".join(str(p) for p in paths)


def _prompt(out: Path, lang: str) -> str:
    from transformers import AutoTokenizer

    from okapi_hf.data.load import load_dataset
    from okapi_hf.prompts import format_example

    row = load_dataset(lang, "sft", path=out / "okapi_hf", split="train")[0]
    text = format_example(row["instruction"], row["input"], row["output"])
    print(text)
    tokenizer = AutoTokenizer.from_pretrained(out / "models" / "tiny-llama")
    return f"{len(tokenizer(text).input_ids)} tokens for one {lang} training example"


def _train(out: Path, lang: str, stage: str, model: str | None = None) -> str:
    """One stage with its CPU recipe; each finds the previous one under runs/pipeline/."""
    import json

    from okapi_hf.train.pipeline import run_stage

    path = run_stage(
        stage,
        [],
        recipe="tiny",
        lang=lang,
        model_name_or_path=model,
        dataset_path=str(out / "okapi_hf"),
        runs_dir=str(out / "runs"),
        run="pipeline",
    )
    history = json.loads((path / "trainer_state.json").read_text())["log_history"]
    key = "reward/score" if stage == "rl" else "loss"
    curve = [h[key] for h in history if key in h]
    what = {"sft": "SFT", "rm": "K-wise reward model", "rl": "PPO policy"}[stage]
    return f"{what}, {key} {curve[0]:.3f} -> {curve[-1]:.3f} over {len(curve)} logs, saved to {path}"


def _evaluate(out: Path, lang: str) -> str:
    """okapi_arc_<lang> through lm-eval on sample items (real translated ARC when OKAPI_HF_EVAL_DIR is set)."""
    import json
    import os

    from okapi_hf.eval.harness import run_eval

    eval_dir = os.environ.get("OKAPI_HF_EVAL_DIR") or str(_sample_eval(out, lang))
    policy = out / "runs" / "pipeline" / "rl"
    previous = os.environ.get("OKAPI_HF_EVAL_DIR")
    os.environ["OKAPI_HF_EVAL_DIR"] = eval_dir
    try:
        run_eval("hf", f"pretrained={policy}", lang, "arc", out / "eval", limit=8, device="cpu")
    finally:
        if previous is None:
            os.environ.pop("OKAPI_HF_EVAL_DIR")
    results = json.loads((out / "eval" / "results.json").read_text())["results"][f"okapi_arc_{lang}"]
    return (
        f"okapi_arc_{lang} acc {results['acc,none']:.3f} on 8 items from {eval_dir}, report in {out / 'eval'}"
    )


def _sample_eval(out: Path, lang: str) -> Path:
    """ARC-format items in the release layout made from the sample SFT rows (the answer is the row's output).

    Only a wiring check: the real translated benchmarks come from the Hub or ``OKAPI_HF_EVAL_DIR``.
    """
    import json
    import random

    from okapi_hf.data.load import load_dataset

    rows = load_dataset(lang, "sft", path=out / "okapi_hf", split="train").to_list()
    rng = random.Random(0)
    items = []
    for i, row in enumerate(rows):
        wrong = rng.sample([r["output"] for j, r in enumerate(rows) if j != i], 3)
        answer = rng.randrange(4)
        options = [*wrong[:answer], row["output"], *wrong[answer:]]
        item = {"id": f"sample/{lang}/{i}", "instruction": row["instruction"], "answer": "ABCD"[answer]}
        items.append(item | {f"option_{c}": text for c, text in zip("abcd", options, strict=True)})
    folder = out / "eval_data"
    (folder / "m_arc").mkdir(parents=True, exist_ok=True)
    # ARC draws 25 shots from train, so every item goes there; the 8 scored ones repeat in test
    for split, part in (("train", items), ("validation", items[-8:]), ("test", items[-8:])):
        (folder / "m_arc" / f"{lang}_{split}.json").write_text(json.dumps(part, ensure_ascii=False, indent=1))
    return folder


def _chat(out: Path, lang: str) -> str:
    """One reply from the PPO policy through the chat pipeline, with Okapi's sampling settings."""
    from okapi_hf.chat import pipeline
    from okapi_hf.data.load import load_dataset

    policy = out / "runs" / "pipeline" / "rl"
    chat = pipeline(policy, max_new_tokens=32)
    question = load_dataset(lang, "rl", path=out / "okapi_hf", split="train")[0]
    reply = chat.generate(question["instruction"], question["input"], seed=0)
    print(f"user: {question['instruction']}\nassistant: {reply}")
    n_tokens = len(chat.tokenizer(reply, add_special_tokens=False).input_ids)
    return f"{n_tokens}-token reply from {policy} (a tiny random model babbles); try `okapi-hf chat {policy}`"
