"""Two fixed costs of real-model runs, before and after okapi-hf's fix, each variant in a fresh process.

- Tokenizer fingerprint: ``datasets`` fingerprints every ``Dataset.map`` by pickling its arguments,
  tokenizer included. Before: datasets' own pickling of Gemma 3's 262k-token tokenizer. After: with
  ``okapi_hf.train`` imported, which hashes a digest of the tokenizer's files' content instead.
- lm-eval task index: ``TaskManager`` with our task folder. Before: lm-eval's own few thousand tasks
  indexed too (``include_defaults=True``, what ``lm_eval --include_path`` does). After: ours only,
  as ``okapi-hf eval run`` builds it.

Also timed: loading the converted Gemma folder (the GGUF is converted once, on first use).
Variants alternate, ``--repeats`` times; medians are reported. Needs ``.[quickstart]``.

Usage: python benchmarks/bench_plumbing.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys

CHILD = {
    "fingerprint-before": """
from datasets.fingerprint import Hasher
from transformers import AutoTokenizer
tok = AutoTokenizer.from_pretrained(FOLDER)
start = time.perf_counter(); Hasher.hash(tok); print(time.perf_counter() - start)
""",
    "fingerprint-after": """
import okapi_hf.train  # installs the digest-based tokenizer fingerprint
from datasets.fingerprint import Hasher
from transformers import AutoTokenizer
tok = AutoTokenizer.from_pretrained(FOLDER)
start = time.perf_counter(); Hasher.hash(tok); print(time.perf_counter() - start)
""",
    "index-before": """
from lm_eval.tasks import TaskManager
from okapi_hf.eval import tasks_path
start = time.perf_counter(); TaskManager(include_path=str(tasks_path())); print(time.perf_counter() - start)
""",
    "index-after": """
from lm_eval.tasks import TaskManager
from okapi_hf.eval import tasks_path
start = time.perf_counter()
TaskManager(include_path=str(tasks_path()), include_defaults=False)
print(time.perf_counter() - start)
""",
    "load-converted": """
from transformers import AutoModelForCausalLM
start = time.perf_counter(); AutoModelForCausalLM.from_pretrained(FOLDER); print(time.perf_counter() - start)
""",
}


def _run(name: str, folder: str) -> float:
    code = f"import time\nFOLDER = {folder!r}\n" + CHILD[name]
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return float(out.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    from okapi_hf.models import resolve_model

    folder = resolve_model("gemma-3-270m")  # converts once, into the cache
    times: dict[str, list[float]] = {name: [] for name in CHILD}
    for _ in range(args.repeats):
        for name in CHILD:
            times[name].append(_run(name, folder))
            print(f"{name}: {times[name][-1]:.2f} s", flush=True)
    median = {name: statistics.median(values) for name, values in times.items()}
    print(f"\nGemma 3 270M ({folder}); medians of {args.repeats} fresh processes per variant\n")
    print("| what | before | after | faster |")
    print("|---|---:|---:|---:|")
    for what, key in (
        ("tokenizer fingerprint per `Dataset.map`", "fingerprint"),
        ("lm-eval task index", "index"),
    ):
        before, after = median[f"{key}-before"], median[f"{key}-after"]
        print(f"| {what} | {before:.2f} s | {after:.2f} s | {before / after:.0f}x |")
    print(f"| load the converted model folder | - | {median['load-converted']:.2f} s | - |")


if __name__ == "__main__":
    main()
