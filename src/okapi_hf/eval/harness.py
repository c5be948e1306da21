"""``okapi-hf eval run``: lm-eval in-process on the Okapi tasks, then the report files.

Any lm-eval model backend works; the default, ``okapi-hf`` (:mod:`okapi_hf.eval.scorer`), is
lm-eval's ``hf`` with a multiple-choice fast path. Like the authors, it encodes without a BOS token
(``add_bos_token=False`` is added for ``hf`` too unless the model args say otherwise) and draws
shots from the authors' stream (``shots="lm-eval"`` for lm-eval's sampler). This module only picks
the task names, points lm-eval at the shipped task folder and writes what people read.
"""

from __future__ import annotations

import json
import re
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
from okapi_hf.fsutil import atomic_write_text, locked
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
    if shots not in SHOT_MODES:
        raise OkapiError(f"shots={shots!r}; expected one of: {', '.join(SHOT_MODES)}")
    check_options(model, model_args, output, limit=limit, batch_size=batch_size, device=device)
    tasks = select_tasks(langs, benchmarks)
    model_name = model_name or pretrained_of(model_args) or model_args
    model_args = no_bos_by_default(model, resolve_model_args(model_args))
    if model == "okapi-hf":
        import okapi_hf.eval.scorer  # noqa: F401 (registers the model with lm-eval)
    device = device or default_device()
    with locked(output, what=f"the evaluation output {output}"):
        return _evaluate(
            model, model_args, tasks, output, model_name, limit, num_fewshot, batch_size, device, shots
        )


def _evaluate(
    model: str,
    model_args: str,
    tasks: list[str],
    output: str | Path,
    model_name: str,
    limit: float | None,
    num_fewshot: int | None,
    batch_size: int | str,
    device: str,
    shots: str,
) -> dict[str, Any]:
    """lm-eval on the chosen tasks, then the files people read (see :func:`run_eval`)."""
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager
    from lm_eval.utils import handle_non_serializable

    start = time.perf_counter()
    # only the okapi tasks: indexing lm-eval's thousands of built-in task files takes 10+ s per run
    manager = TaskManager(include_path=str(tasks_path()), include_defaults=False, metadata={SHOTS_KEY: shots})
    index_seconds = time.perf_counter() - start
    try:
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
    except TypeError as e:  # a model argument the model class does not take
        if "unexpected keyword argument" not in str(e):
            raise
        raise OkapiError(f"--model-args {model_args}: {e}") from None
    if results is None:  # lm-eval returns None on non-zero ranks of a distributed run
        return {}
    results["okapi_hf"] = {
        "task_index_seconds": index_seconds,
        "tasks": tasks,
        "shots": shots,
        "model_name": model_name,
    }
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(
        out / "results.json",
        json.dumps(results, indent=2, default=handle_non_serializable, ensure_ascii=False),
    )
    write_report(results, out, model_name)
    return results


def check_options(
    model: str,
    model_args: str,
    output: str | Path,
    *,
    limit: float | None,
    batch_size: int | str,
    device: str | None,
) -> None:
    """Every option value, before lm-eval loads a model or a task: each fault named as the CLI spells it."""
    import math

    import lm_eval.models  # noqa: F401 (fills the registry)
    from lm_eval.api.registry import MODEL_REGISTRY

    if model != "okapi-hf" and model not in MODEL_REGISTRY:
        raise OkapiError(f"--backend {model}: not an lm-eval model backend (e.g. okapi-hf, hf, vllm)")
    parts = [p for p in model_args.split(",") if p.strip()]
    bad = [p for p in parts if "=" not in p or not p.split("=", 1)[0].strip()]
    if bad or not parts:
        raise OkapiError(f"--model-args {model_args!r}: expected key=value pairs, e.g. dtype=float32")
    if model in ("hf", "okapi-hf") and not any(p.startswith("pretrained=") for p in parts):
        raise OkapiError(f"--model-args {model_args!r}: name the model with --model PATH (or a Hub id)")
    if limit is not None and (not math.isfinite(limit) or limit <= 0):
        raise OkapiError(
            f"--limit {limit}: expected a number of documents >= 1, or a fraction between 0 and 1"
        )
    size = str(batch_size)
    if not (re.fullmatch(r"auto(:\d+)?", size) or (size.isdigit() and int(size) >= 1)):
        raise OkapiError(f"--batch-size {batch_size}: expected a whole number of 1 or more, or auto")
    if device is not None:
        _check_device(device)
    if Path(output).exists() and not Path(output).is_dir():
        raise OkapiError(f"--out {output} is a file; give a folder for the results")


def _check_device(device: str) -> None:
    import torch

    if not re.fullmatch(r"cpu|mps|cuda(:\d+)?", device):
        raise OkapiError(f"--device {device}: expected cpu, cuda, cuda:N or mps")
    if device.startswith("cuda"):
        index = int(device.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            have = torch.cuda.device_count()
            raise OkapiError(
                f"--device {device}: this machine has {have or 'no'} CUDA device{'s' * (have != 1)}"
            )
    if device == "mps" and not torch.backends.mps.is_available():
        raise OkapiError("--device mps: this machine has no Apple MPS device")


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


def pretrained_of(model_args: str) -> str | None:
    """The ``pretrained=`` value of lm-eval's model args as given, or None: what a run is named after."""
    values = dict(p.split("=", 1) for p in model_args.split(",") if "=" in p)
    return values.get("pretrained", "").strip() or None


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
    """The human-facing files, from lm-eval's results dictionary; ``model_name`` heads them and names the model-index.

    The leaderboard Space (and ``publish --eval-results``) read the name from ``model_index.yaml``.
    """
    scores = collect_scores(results)
    if not scores:
        raise OkapiError(f"no okapi_* task scores in the results; nothing to report in {out}")
    details = task_details(results)
    present = [m for m in METRICS if any(m in v for v in scores.values())]
    table = "\n\n".join([*(markdown_table(scores, m, details) for m in present), documents_table(details)])
    atomic_write_text(out / "results.md", f"Model: `{model_name}`\n\n{table}")
    plot(scores, out / "results.png")
    atomic_write_text(
        out / "model_index.yaml",
        yaml.safe_dump({"model-index": model_index(scores, model_name)}, sort_keys=False, allow_unicode=True),
    )
