"""``okapi-hf eval run``: lm-eval in-process on the Okapi tasks, then the report files.

Any lm-eval model backend works; the default, ``okapi-hf`` (:mod:`okapi_hf.eval.scorer`), is
lm-eval's ``hf`` with a multiple-choice fast path. Like the authors, it encodes without a BOS token
(``add_bos_token=False`` is added for ``hf`` too unless the model args say otherwise) and draws
shots from the authors' stream (``shots="lm-eval"`` for lm-eval's sampler). This module only picks
the task names, points lm-eval at the shipped task folder and writes what people read.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import yaml

from okapi_hf.errors import OkapiError
from okapi_hf.eval import BENCHMARKS, SHOT_MODES, SHOTS_KEY, VARIANTS, task_languages, task_name, tasks_path
from okapi_hf.eval.report import (
    METRICS,
    collect_scores,
    documents_table,
    markdown_table,
    model_index,
    plot,
    task_details,
)
from okapi_hf.fsutil import atomic_write_text
from okapi_hf.languages import resolve_langs


def select_tasks(langs: str | list[str], benchmarks: str | list[str] = "all") -> list[str]:
    """Task names for every (benchmark, language) asked for; a language without data is an error."""
    benches = list(BENCHMARKS) if benchmarks == "all" else benchmarks
    benches = benches.split(",") if isinstance(benches, str) else list(benches)
    unknown = [b for b in benches if b not in BENCHMARKS and b not in VARIANTS]
    if unknown:
        valid = ", ".join([*BENCHMARKS, *VARIANTS])
        raise OkapiError(f"unknown benchmark(s) {', '.join(unknown)}; valid: {valid}")
    tasks, missing = [], []
    for bench in benches:
        available = task_languages(bench)
        for lang in resolve_langs(langs):
            if lang in available:
                tasks.append(task_name(bench, lang))
            else:
                missing.append(f"{bench}/{lang}")
    if missing:
        raise OkapiError(f"no Okapi task for {', '.join(missing)} (the release has no such translation)")
    return tasks


def run_eval(
    model: str,
    model_args: str,
    langs: str | list[str],
    benchmarks: str | list[str] = "all",
    output: str | Path = "eval_results",
    *,
    limit: int | float | None = None,
    num_fewshot: int | None = None,
    batch_size: int | str = 1,
    device: str | None = None,
    model_name: str | None = None,
    shots: str = "authors",
) -> dict[str, Any]:
    """Evaluate and write ``results.json`` (lm-eval's), ``results.md``, ``results.png``, ``model_index.yaml``."""
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager
    from lm_eval.utils import handle_non_serializable

    if shots not in SHOT_MODES:
        raise OkapiError(f"shots={shots!r}; expected one of: {', '.join(SHOT_MODES)}")
    tasks = select_tasks(langs, benchmarks)
    model_name = model_name or model_args
    model_args = no_bos_by_default(model, resolve_model_args(model_args))
    if model == "okapi-hf":
        import okapi_hf.eval.scorer  # noqa: F401 (registers the model with lm-eval)
    device = device or default_device()
    start = time.perf_counter()
    # only the okapi tasks: indexing lm-eval's thousands of built-in task files takes 10+ s per run
    manager = TaskManager(include_path=str(tasks_path()), include_defaults=False, metadata={SHOTS_KEY: shots})
    index_seconds = time.perf_counter() - start
    results = simple_evaluate(
        model=model,
        model_args=model_args,
        tasks=tasks,
        task_manager=manager,
        limit=limit,
        num_fewshot=num_fewshot,
        batch_size=batch_size,
        device=device,
        log_samples=False,
    )
    if results is None:  # lm-eval returns None on non-zero ranks of a distributed run
        return {}
    results["okapi_hf"] = {"task_index_seconds": index_seconds, "tasks": tasks, "shots": shots}
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(
        out / "results.json",
        json.dumps(results, indent=2, default=handle_non_serializable, ensure_ascii=False),
    )
    write_report(results, out, model_name)
    return results


def default_device() -> str:
    """The accelerator that exists: CUDA, else Apple's MPS, else the CPU."""
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def no_bos_by_default(model: str, model_args: str) -> str:
    """The authors encoded prompts without special tokens: say so to lm-eval's HF models unless told otherwise."""
    if model in ("hf", "okapi-hf") and "add_bos_token=" not in model_args:
        return ",".join([p for p in model_args.split(",") if p.strip()] + ["add_bos_token=False"])
    return model_args


def resolve_model_args(model_args: str) -> str:
    """``pretrained=`` of lm-eval's model args as okapi-hf reads a model argument everywhere."""
    parts = [p for p in model_args.split(",") if p.strip()]
    values = dict(p.split("=", 1) for p in parts if "=" in p)
    if "pretrained" not in values:
        return model_args
    values["pretrained"], peft = resolve_pretrained(values["pretrained"], values.get("peft"))
    if peft is not None:
        values["peft"] = peft
    return ",".join(f"{k}={v}" for k, v in values.items())


def resolve_pretrained(pretrained: str, peft: str | None = None) -> tuple[str, str | None]:
    """(model folder or Hub id, LoRA adapter or None) for lm-eval's ``pretrained=`` and ``peft=``.

    A preset or a ``.gguf`` file becomes its converted folder; a LoRA adapter folder (what LoRA stages
    save) becomes its base plus ``peft=<the adapter>``, which lm-eval's HF models load.
    """
    from okapi_hf.models import adapter_chain, resolve_model

    path = resolve_model(pretrained)
    base, adapters = adapter_chain(path)
    if len(adapters) > 1:
        raise OkapiError(
            f"{pretrained} is a LoRA adapter on another adapter ({adapters[0]}); lm-eval loads one "
            "adapter: train the stage with merge_lora=true, or evaluate a merged copy"
        )
    if adapters:
        if peft is not None:
            raise OkapiError(f"model_args: {pretrained} is an adapter already; drop peft=")
        return str(base), str(adapters[0])
    return str(base), peft


def write_report(results: dict[str, Any], out: Path, model_name: str) -> None:
    """The human-facing files, from lm-eval's results dictionary."""
    scores = collect_scores(results)
    if not scores:
        raise OkapiError(f"no okapi_* task scores in the results; nothing to report in {out}")
    details = task_details(results)
    present = [m for m in METRICS if any(m in v for v in scores.values())]
    table = "\n\n".join([*(markdown_table(scores, m, details) for m in present), documents_table(details)])
    atomic_write_text(out / "results.md", table)
    plot(scores, out / "results.png")
    atomic_write_text(
        out / "model_index.yaml",
        yaml.safe_dump({"model-index": model_index(scores, model_name)}, sort_keys=False, allow_unicode=True),
    )
