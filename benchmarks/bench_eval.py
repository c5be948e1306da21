"""Benchmark `okapi-hf eval run` against the plain `lm_eval` CLI on the same tasks, model and data.

Both run as fresh processes (imports included), alternating, so the ratio is read from pairs of
runs taken back to back. Target: `okapi-hf eval run` adds at most 10% wall time. Also reported:
the time to build lm-eval's task index with the shipped task folder.

Usage: OKAPI_HF_EVAL_DIR=../shared/data/okapi-eval python benchmarks/bench_eval.py [--model PATH]
       [--langs vi,de] [--benchmarks arc,mmlu] [--limit 20] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _wall(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model path (default: a tiny random Llama)")
    parser.add_argument("--langs", default="vi,de")
    parser.add_argument("--benchmarks", default="arc")
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if not os.environ.get("OKAPI_HF_EVAL_DIR"):
        sys.exit("set OKAPI_HF_EVAL_DIR to the original release layout (e.g. ../shared/data/okapi-eval)")

    from lm_eval.tasks import TaskManager

    from okapi_hf.eval import tasks_path
    from okapi_hf.eval.harness import select_tasks

    start = time.perf_counter()
    TaskManager(include_path=str(tasks_path()))
    index_seconds = time.perf_counter() - start

    with tempfile.TemporaryDirectory(prefix="okapi-bench-eval-") as tmp:
        model = args.model
        if model is None:
            from okapi_hf.testing import make_tiny_model

            model = str(make_tiny_model("llama", Path(tmp) / "tiny"))
        tasks = ",".join(select_tasks(args.langs, args.benchmarks))
        limits = ["--limit", str(args.limit), "--device", "cpu"]
        ours = [
            "okapi-hf",
            "eval",
            "run",
            "--model",
            model,
            "--langs",
            args.langs,
            "--benchmarks",
            args.benchmarks,
            "--out",
            f"{tmp}/ours",
            "--batch-size",
            "1",
            *limits,
        ]
        plain = [
            sys.executable,
            "-m",
            "lm_eval",
            "--model",
            "hf",
            "--model_args",
            f"pretrained={model}",
            "--include_path",
            str(tasks_path()),
            "--tasks",
            tasks,
            "--output_path",
            f"{tmp}/plain",
            "--batch_size",
            "1",
            *limits,
        ]
        pairs = [(_wall(plain), _wall(ours)) for _ in range(args.repeats)]

    ratios = sorted(o / p for p, o in pairs)
    print(f"tasks: {tasks} (limit {args.limit} docs each); model: {args.model or 'tiny random Llama'}")
    print(f"task index build (TaskManager with the shipped folder, in-process): {index_seconds:.2f} s\n")
    print("| run | wall time (median) |")
    print("|---|---:|")
    print(f"| `lm_eval --include_path ...` (baseline) | {statistics.median(p for p, _ in pairs):.1f} s |")
    print(
        f"| `okapi-hf eval run` (also writes results.md, results.png, model_index.yaml) | {statistics.median(o for _, o in pairs):.1f} s |"
    )
    print(
        f"| **overhead**, median of {args.repeats} paired runs (range) | **{100 * (statistics.median(ratios) - 1):+.1f}%** ({100 * (ratios[0] - 1):+.1f}% to {100 * (ratios[-1] - 1):+.1f}%) |"
    )


if __name__ == "__main__":
    main()
