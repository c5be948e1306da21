"""``okapi-hf eval run``: lm-eval in-process on the Okapi tasks, then the report files.

Any lm-eval model backend works (``hf`` on a CPU, ``vllm`` on a GPU); this module only picks the
task names, points lm-eval at the shipped task folder and writes what people read.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import yaml

from okapi_hf.errors import OkapiError
from okapi_hf.eval import BENCHMARKS, VARIANTS, task_languages, task_name, tasks_path
from okapi_hf.eval.report import collect_scores, markdown_table, model_index, plot
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
) -> dict[str, Any]:
    """Evaluate and write ``results.json`` (lm-eval's), ``results.md``, ``results.png``, ``model_index.yaml``."""
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager
    from lm_eval.utils import handle_non_serializable

    tasks = select_tasks(langs, benchmarks)
    model_name = model_name or model_args
    model_args = resolve_model_args(model_args)
    device = device or default_device()
    start = time.perf_counter()
    # only the okapi tasks: indexing lm-eval's thousands of built-in task files takes 10+ s per run
    manager = TaskManager(include_path=str(tasks_path()), include_defaults=False)
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
    results["okapi_hf"] = {"task_index_seconds": index_seconds, "tasks": tasks}
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(
        json.dumps(results, indent=2, default=handle_non_serializable, ensure_ascii=False), encoding="utf-8"
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


def resolve_model_args(model_args: str) -> str:
    """``pretrained=`` of lm-eval's model args as okapi-hf reads a model argument everywhere.

    A preset or a ``.gguf`` file becomes its converted folder; a LoRA adapter folder (what LoRA stages
    save) becomes ``pretrained=<its base>,peft=<the adapter>``, which lm-eval's ``hf`` model loads.
    """
    from okapi_hf.models import adapter_chain, resolve_model

    parts = [p for p in model_args.split(",") if p.strip()]
    values = dict(p.split("=", 1) for p in parts if "=" in p)
    if "pretrained" not in values:
        return model_args
    path = resolve_model(values["pretrained"])
    base, adapters = adapter_chain(path)
    if len(adapters) > 1:
        raise OkapiError(
            f"{values['pretrained']} is a LoRA adapter on another adapter ({adapters[0]}); lm-eval loads one "
            "adapter: train the stage with merge_lora=true, or evaluate a merged copy"
        )
    values["pretrained"] = base
    if adapters:
        if "peft" in values:
            raise OkapiError(f"model_args: {values['pretrained']} is an adapter already; drop peft=")
        values["peft"] = str(adapters[0])
    return ",".join(f"{k}={v}" for k, v in values.items())


def write_report(results: dict[str, Any], out: Path, model_name: str) -> None:
    """The human-facing files, from lm-eval's results dictionary."""
    scores = collect_scores(results)
    if not scores:
        raise OkapiError(f"no okapi_* task scores in the results; nothing to report in {out}")
    table = "\n\n".join(markdown_table(scores, metric) for metric in ("acc_norm", "acc"))
    (out / "results.md").write_text(table, encoding="utf-8")
    plot(scores, out / "results.png")
    (out / "model_index.yaml").write_text(
        yaml.safe_dump({"model-index": model_index(scores, model_name)}, sort_keys=False, allow_unicode=True),
        encoding="utf-8",
    )
