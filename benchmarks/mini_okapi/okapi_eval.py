"""Okapi's own benchmarks on a subset: ARC-Challenge (test) and TruthfulQA (mc1, mc2), per item.

Runs only with ``OKAPI_HF_EVAL_DIR`` (the authors' translated files, offline) and only for the languages
whose files are there. It calls lm-eval with okapi-hf's tasks and its ``okapi-hf`` scorer, as ``okapi-hf
eval run`` does, but keeps every document's score (``log_samples``) for bootstrap intervals, and hands
lm-eval a loaded model: ``eval run`` takes one LoRA adapter, and the DPO and GRPO arms are adapters on
the SFT adapter (``okapi_hf.models.load_model`` merges the chain).
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable
from pathlib import Path

from okapi_hf.languages import get_language

FILES = {"arc": ("m_arc", "{code}_test.json"), "truthfulqa": ("m_truthfulqa", "{code}_validation.json")}
METRICS = {"arc": ("acc", "acc_norm"), "truthfulqa": ("mc1", "mc2")}


def plan(langs: list[str]) -> tuple[dict[str, list[str]], str]:
    """Benchmark -> languages with data, and a sentence saying what is scored or why nothing is."""
    from okapi_hf.eval import EVAL_DIR_ENV

    root = os.environ.get(EVAL_DIR_ENV)
    if not root:
        return (
            {},
            f"Okapi ARC/TruthfulQA not scored: {EVAL_DIR_ENV} is not set (the authors' files are needed)",
        )
    found: dict[str, list[str]] = {}
    missing = []
    for bench, (folder, pattern) in FILES.items():
        for lang in langs:
            name = pattern.format(code=get_language(lang).file_code)
            if (Path(root) / folder / name).is_file():
                found.setdefault(bench, []).append(lang)
            else:
                missing.append(f"{bench}/{lang}")
    note = f"Okapi items from {root}"
    if missing:
        note += f"; no file for {', '.join(missing)} (not scored)"
    return found, note


def evaluate(
    arms: dict[str, Path],
    tasks: dict[str, list[str]],
    docs: dict[str, int],
    shots: int,
    device: str,
    log: Callable[[str], None],
) -> list[dict]:
    """One row per arm x benchmark x language x document, with the document's metric values."""
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    from okapi_hf.eval import SHOTS_KEY, task_name, tasks_path
    from okapi_hf.eval.scorer import FastMCLM
    from okapi_hf.models import load_model, load_tokenizer

    manager = TaskManager(
        include_path=str(tasks_path()), include_defaults=False, metadata={SHOTS_KEY: "authors"}
    )
    rows: list[dict] = []
    for arm, path in arms.items():
        log(f"okapi eval: {arm}")
        model = load_model(path).to(device).eval()
        lm = FastMCLM(model, tokenizer=load_tokenizer(path), batch_size=1, add_bos_token=False)
        for batch in _calls(tasks, docs, shots):
            names = {task_name(bench, lang): (bench, lang) for bench, lang in batch}
            result = simple_evaluate(
                model=lm,
                tasks=list(names),
                task_manager=manager,
                limit=docs[batch[0][0]],
                num_fewshot=shots if any(bench == "arc" for bench, _ in batch) else None,
                bootstrap_iters=0,
                log_samples=True,
            )
            for task, samples in result["samples"].items():
                bench, lang = names[task]
                for sample in samples:
                    values = {m: float(sample[m]) for m in METRICS[bench] if m in sample}
                    rows.append(
                        {"arm": arm, "benchmark": bench, "lang": lang, "doc_id": sample["doc_id"]} | values
                    )
        del lm, model
        gc.collect()
    return rows


def _calls(tasks: dict[str, list[str]], docs: dict[str, int], shots: int) -> list[list[tuple[str, str]]]:
    """(benchmark, language) groups, one lm-eval call each: tasks that share a limit and a shot count together.

    lm-eval applies ``limit`` and ``num_fewshot`` to every task of a call; TruthfulQA is 0-shot only.
    """
    groups: dict[tuple[int, int | None], list[tuple[str, str]]] = {}
    for bench, langs in tasks.items():
        key = (docs[bench], shots if bench == "arc" and shots else None)
        groups.setdefault(key, []).extend((bench, lang) for lang in langs)
    return list(groups.values())
