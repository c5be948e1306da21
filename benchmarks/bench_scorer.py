"""The okapi-hf multiple-choice scorer against lm-eval's ``hf`` model: seconds per document, peak memory.

Same tasks (``okapi_arc_vi`` and ``okapi_mmlu_val_vi``, 25-shot, the authors' shot stream, no BOS),
same documents (``--limit`` = the first N of the authors' order), same weights, fp32, batch size 1.
Each (model, task, backend) runs in a fresh process. Timed: the model's ``loglikelihood`` calls
(the work the backends differ in; lm-eval's task building and the model load are outside the clock). Memory: peak resident set size
(``VmHWM``) and its rise above the loaded model. The scores must be identical and the
per-choice log-likelihoods equal to 1e-4, or the run says so. Data: the authors' files in
``../shared/data/okapi-eval``; the shared copy has no MMLU test files, so MMLU is scored on ``val``
with 25 shots from dev (the same work per document), and no HellaSwag, so its 0-shot rate comes from
the project's format fixture (``tests/fixtures/okapi-eval/m_hellaswag``). TruthfulQA and HellaSwag
rates feed the extrapolated cost of a full ``okapi`` run.

    python benchmarks/bench_scorer.py                      # tiny Llama and Gemma 3 270M, ~25 minutes
    python benchmarks/bench_scorer.py --models tiny --docs 10
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "okapi-eval"
HELLASWAG = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "okapi-eval" / "m_hellaswag"
TASKS = ("okapi_arc_vi", "okapi_mmlu_val_vi", "okapi_truthfulqa_vi", "okapi_hellaswag_vi")
BACKENDS = ("hf", "okapi-hf")
# Documents per language in a full `okapi` group run (the 26 Okapi languages; ARC test and TruthfulQA
# validation as in the vi files, HellaSwag validation ~9,000 after the authors' filter, MMLU test as
# in English: the translated test files are not in the shared copy).
FULL_RUN_DOCS = {"arc": 1170, "mmlu": 14042, "hellaswag": 9000, "truthfulqa": 785}
OKAPI_LANGUAGES = 26


def memory_gb(field: str) -> float:
    """``VmRSS`` (resident now) or ``VmHWM`` (peak resident) of this process, in GB.

    Not ``ru_maxrss``: Linux carries it across fork and exec, so a worker would report its parent's peak.
    """
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024**2
    raise RuntimeError(f"no {field} in /proc/self/status")


def worker(backend: str, model: str, task: str, docs: int, out: str) -> None:
    from lm_eval import simple_evaluate
    from lm_eval.api.registry import get_model
    from lm_eval.tasks import TaskManager

    import okapi_hf.eval.scorer  # noqa: F401 (registers okapi-hf)
    from okapi_hf.eval import tasks_path

    lm = get_model(backend).create_from_arg_string(
        f"pretrained={model},add_bos_token=False,dtype=float32,max_length=32768",
        {"batch_size": 1, "device": "cpu"},
    )
    loaded = memory_gb("VmRSS")
    manager = TaskManager(
        include_path=str(tasks_path()), include_defaults=False, metadata={"shots": "authors"}
    )
    scoring = 0.0
    loglikelihood = lm.loglikelihood

    def timed(requests, *args, **kwargs):  # the model's work only, not lm-eval's task building
        nonlocal scoring
        start = time.perf_counter()
        try:
            return loglikelihood(requests, *args, **kwargs)
        finally:
            scoring += time.perf_counter() - start

    lm.loglikelihood = timed
    start = time.perf_counter()
    results = simple_evaluate(model=lm, tasks=[task], limit=docs, log_samples=True, task_manager=manager)
    total = time.perf_counter() - start
    samples = sorted(results["samples"][task], key=lambda s: s["doc_id"])
    record = {
        "backend": backend,
        "task": task,
        "docs": docs,
        "seconds": scoring,
        "seconds_per_doc": scoring / docs,
        "seconds_with_task_building": total,
        "peak_rss_gb": memory_gb("VmHWM"),
        "loaded_rss_gb": loaded,
        "scores": {
            k.split(",")[0]: v
            for k, v in results["results"][task].items()
            if k.endswith(",none") and "stderr" not in k
        },
        "loglikelihoods": [[r[0][0] for r in s["resps"]] for s in samples],
        "context_chars": sum(len(s["arguments"][0][0]) for s in samples) / docs,
    }
    record["above_loaded_gb"] = record["peak_rss_gb"] - loaded
    Path(out).write_text(json.dumps(record))


def data_root() -> Path:
    """The authors' files plus the HellaSwag format fixture, in the release layout."""
    root = Path(tempfile.mkdtemp())
    for folder in ("m_arc", "m_mmlu", "m_truthfulqa"):
        (root / folder).symlink_to(SHARED / folder)
    (root / "m_hellaswag").symlink_to(HELLASWAG)
    return root


def run_one(backend: str, model: str, task: str, docs: int, root: Path) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = f.name
    env = {**os.environ, "OKAPI_HF_EVAL_DIR": str(root), "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, __file__, "--worker", backend, model, task, str(docs), out]
    proc = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if proc.returncode:
        sys.exit(f"{backend} on {task} failed:\n{proc.stderr[-3000:]}")
    record = json.loads(Path(out).read_text())
    os.unlink(out)
    return record


def models(names: list[str]) -> dict[str, str]:
    found = {}
    if "tiny" in names:
        from okapi_hf.testing import make_tiny_model

        found["tiny Llama (4.5M, 1k vocab)"] = str(
            make_tiny_model("llama", Path(tempfile.mkdtemp()) / "llama", hidden_size=256, num_layers=4)
        )
    if "gemma" in names:
        from okapi_hf.models import resolve_model

        found["Gemma 3 270M (262k vocab)"] = str(resolve_model("gemma-3-270m"))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", default="tiny,gemma", help="comma-separated: tiny, gemma")
    parser.add_argument(
        "--docs", type=int, default=3, help="documents per task (the first N of the authors' order)"
    )
    parser.add_argument("--out", default="bench_scorer.json")
    args = parser.parse_args()
    if not (SHARED / "m_arc" / "vi_test.json").is_file():
        sys.exit(f"needs the authors' files in {SHARED}")
    rows = []
    root = data_root()
    for label, path in models(args.models.split(",")).items():
        for task in TASKS:
            pair = {}
            for backend in BACKENDS:
                print(f"{label} {task} {backend} ...", flush=True)
                pair[backend] = run_one(backend, path, task, args.docs, root)
            ours, base = pair["okapi-hf"], pair["hf"]
            diff = max(
                abs(a - b)
                for da, db in zip(ours["loglikelihoods"], base["loglikelihoods"], strict=True)
                for a, b in zip(da, db, strict=True)
            )
            row = {
                "model": label,
                "task": task,
                "docs": args.docs,
                "hf": {k: v for k, v in base.items() if k != "loglikelihoods"},
                "okapi-hf": {k: v for k, v in ours.items() if k != "loglikelihoods"},
                "speedup": base["seconds_per_doc"] / ours["seconds_per_doc"],
                "peak_ratio": base["peak_rss_gb"] / ours["peak_rss_gb"],
                "above_loaded_ratio": base["above_loaded_gb"] / max(ours["above_loaded_gb"], 1e-3),
                "max_abs_loglikelihood_diff": diff,
                # acc and mc1 must be identical; mc2 is a ratio of exp(log-likelihoods), equal to float noise
                "max_score_diff": max(abs(base["scores"][k] - ours["scores"][k]) for k in base["scores"]),
                "same_scores": all(abs(base["scores"][k] - ours["scores"][k]) < 1e-4 for k in base["scores"]),
            }
            rows.append(row)
            print(
                f"  hf {base['seconds_per_doc']:.2f} s/doc, peak {base['peak_rss_gb']:.2f} GB "
                f"(+{base['above_loaded_gb']:.2f}); okapi-hf {ours['seconds_per_doc']:.2f} s/doc, peak "
                f"{ours['peak_rss_gb']:.2f} GB (+{ours['above_loaded_gb']:.2f}); {row['speedup']:.1f}x faster, "
                f"{row['peak_ratio']:.1f}x less peak; max |dLL| {diff:.2e}; same scores: {row['same_scores']}",
                flush=True,
            )
    Path(args.out).write_text(json.dumps(rows, indent=2))
    gemma = {r["task"]: r["okapi-hf"]["seconds_per_doc"] for r in rows if r["model"].startswith("Gemma")}
    if gemma:
        arc, mmlu = gemma["okapi_arc_vi"], gemma["okapi_mmlu_val_vi"]
        hours = OKAPI_LANGUAGES * (FULL_RUN_DOCS["arc"] * arc + FULL_RUN_DOCS["mmlu"] * mmlu) / 3600
        print(
            f"full okapi ARC + MMLU over {OKAPI_LANGUAGES} languages at these rates: {hours:.0f} h on this machine"
        )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(*sys.argv[2:5], int(sys.argv[5]), sys.argv[6])
    else:
        main()
