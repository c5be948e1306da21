"""``okapi-hf quickstart``: every stage of the pipeline once, on sample data and tiny models.

Each stage is a function that returns a one-line result; the runner times them and ends with a
summary table, so a newcomer sees what ran, what it made and where it lies.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from okapi_hf.errors import OkapiError
from okapi_hf.languages import get_language


def run_quickstart(out: str | Path = "runs/quickstart", lang: str = "vi") -> list[tuple[str, str, float]]:
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
        ("reward model", lambda: _reward_model(out, lang)),
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


def _reward_model(out: Path, lang: str) -> str:
    import json

    from okapi_hf.train.run_rm import main

    rm = main(
        [],
        recipe="tiny",
        lang=lang,
        model_name_or_path=str(out / "models" / "tiny-llama"),
        dataset_path=str(out / "okapi_hf"),
        runs_dir=str(out / "runs"),
        run="pipeline",
    )
    history = json.loads((rm / "trainer_state.json").read_text())["log_history"]
    losses = [h["loss"] for h in history if "loss" in h]
    return f"K-wise reward model, loss {losses[0]:.3f} -> {losses[-1]:.3f}, saved to {rm}"
