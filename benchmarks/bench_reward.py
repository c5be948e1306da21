"""Benchmark `RankedRewardTrainer` against trl's `RewardTrainer` on the same rankings expanded to pairs.

Okapi ranks K = 4 responses per prompt. trl's `RewardTrainer` needs the C(4,2) = 6 (chosen, rejected)
pairs, so it forwards 12 sequences per prompt; `RankedRewardTrainer` forwards each response once, 4 per
prompt, and takes the same loss over the 6 pairs. Target: trl's seconds per epoch / ours >= 2.5x (the
ideal is 3x, 12 forwards against 4).

Same synthetic data (N prompts, 4 responses each, prompt + response close to the target length in
tokens, +-10% per response, built offline from ``okapi_hf.testing.corpus_texts()``), same tiny random
model (``make_tiny_model``, fp32), same seed and learning rate, in one run. Batches hold the same
prompts per optimizer step: ``RankedRewardTrainer`` takes B prompts per step (4B sequences) and trl takes
the same prompts' 6B pairs (12B sequences), both in a fixed order (sequential sampler over prompts
shuffled once with the seed), so both take N/B optimizer steps per epoch and see the same pairs per
update. Only ``trainer.train()`` for one epoch is timed (tokenization and model loading are done
before). Each measurement is a fresh subprocess (this script with ``--worker``), ranked and trl
alternating; reported are the median seconds per epoch, the median of trl/ranked over back-to-back
pairs (and the same ratio on process CPU time, a cross-check on a shared machine), and the peak memory
growth during ``train()``: RSS (VmHWM after, reset just before, minus VmRSS before) on CPU, or
``torch.cuda.max_memory_allocated`` growth when CUDA is available (then ``use_cpu`` is not set). Both
trainers' epoch losses are printed: they agree, which checks that they trained on the same pairs.
On a busy 2-core machine ``--threads 1`` gives steadier ratios.

Usage: python benchmarks/bench_reward.py [--seq-lens 128,512] [--n-prompts 32] [--batch-prompts 4]
       [--repeats 3] [--arch llama] [--hidden-size 256] [--num-layers 4] [--num-heads 4] [--threads 0]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

K = 4  # responses per prompt, as in Okapi's rankings
KINDS = ("trl", "ranked")


# -- data ------------------------------------------------------------------------------------------
def make_rankings(tokenizer, n_prompts: int, seq_len: int, seed: int) -> list[dict]:
    """N rows ``{"prompt", "responses"}``: prompt + response + eos is seq_len tokens, +-10% per response."""
    from okapi_hf.prompts import format_prompt
    from okapi_hf.testing import corpus_texts

    rng = random.Random(seed)
    sentences = [s for s in corpus_texts() if "{instruction}" not in s]
    n_tokens = lambda text: len(tokenizer(text)["input_ids"]) + 1  # noqa: E731  (+1: the eos both append)
    # Okapi's template without an input field; the instruction is picked so the prompt leaves room
    # for a response (the template alone is some 60 tokens of the tiny tokenizer)
    prompts = sorted((format_prompt(s) for s in sentences), key=n_tokens)
    fitting = [p for p in prompts if n_tokens(p) <= 0.75 * seq_len] or prompts[:5]
    rows = []
    for _ in range(n_prompts):
        prompt = rng.choice(fitting)
        responses: list[str] = []
        while len(responses) < K:
            target = max(round(seq_len * rng.uniform(0.9, 1.1)), n_tokens(prompt) + 4)
            words: list[str] = []
            while n_tokens(prompt + " ".join(words)) < target:
                words += rng.choice(sentences).split()
            lo, hi = 1, len(words)  # the fewest words that reach the target
            while lo < hi:
                mid = (lo + hi) // 2
                if n_tokens(prompt + " ".join(words[:mid])) >= target:
                    hi = mid
                else:
                    lo = mid + 1
            text = " ".join(words[:lo])
            if text not in responses:
                responses.append(text)
        rows.append({"prompt": prompt, "responses": responses})
    return rows


def expand_pairs(rows: list[dict]) -> list[dict]:
    """trl's rows: every (better, worse) pair of each ranking, prompt by prompt in the same order."""
    from okapi_hf.data.rankings import ranking_to_pairs

    return [
        {"prompt": row["prompt"], "chosen": chosen, "rejected": rejected}
        for row in rows
        for chosen, rejected in ranking_to_pairs(row["responses"])
    ]


# -- one measurement (a fresh process) --------------------------------------------------------------
def _rss_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
        return True
    except OSError:
        return False


def worker(args: argparse.Namespace) -> None:
    import datasets
    import torch
    import transformers
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = json.loads(Path(args.data).read_text(encoding="utf-8"))
    cuda = torch.cuda.is_available()
    common = {
        "output_dir": args.output_dir,
        "num_train_epochs": 1,
        "learning_rate": 1e-5,
        "seed": args.seed,
        "max_length": None,  # nothing is dropped or cut; the data is built to the target length
        "bf16": False,
        "fp16": False,
        "use_cpu": not cuda,
        "activation_checkpointing": False,  # the new name of gradient_checkpointing (trl defaults it on)
        "report_to": "none",
        "save_strategy": "no",
        "logging_steps": 10**6,
        "disable_tqdm": True,
        "train_sampling_strategy": "sequential",  # rows are pre-shuffled; trl's pairs stay grouped by prompt
        "dataloader_num_workers": 0,
    }
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    transformers.set_seed(args.seed)  # the score head is new: the same init in both runs
    model = AutoModelForSequenceClassification.from_pretrained(args.model, num_labels=1, dtype=torch.float32)
    if args.worker == "ranked":
        from okapi_hf.train.reward import RankedRewardConfig, RankedRewardTrainer

        config = RankedRewardConfig(per_device_train_batch_size=args.batch_prompts, **common)
        trainer = RankedRewardTrainer(
            model, args=config, train_dataset=Dataset.from_list(rows), processing_class=tokenizer
        )
        n_sequences = sum(len(ids) for ids in trainer.train_dataset["response_ids"])
    else:
        from trl import RewardConfig, RewardTrainer

        pairs_per_prompt = K * (K - 1) // 2
        config = RewardConfig(per_device_train_batch_size=pairs_per_prompt * args.batch_prompts, **common)
        trainer = RewardTrainer(
            model,
            args=config,
            train_dataset=Dataset.from_list(expand_pairs(rows)),
            processing_class=tokenizer,
        )
        n_sequences = 2 * len(trainer.train_dataset)

    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        cuda_before = torch.cuda.memory_allocated()
    rss_before = _rss_mib("VmRSS")
    exact = _reset_peak_rss()
    start, cpu_start = time.perf_counter(), time.process_time()
    output = trainer.train()
    if cuda:
        torch.cuda.synchronize()
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    if exact:
        rss_peak = _rss_mib("VmHWM") - rss_before
    else:  # ru_maxrss is the lifetime peak: a lower bound on train()'s peak, in KiB on Linux
        import resource

        rss_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - rss_before
    result = {
        "kind": args.worker,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,  # all threads; less sensitive than wall time to other jobs on the machine
        "steps": trainer.state.global_step,
        "train_loss": output.training_loss,  # equal on both sides: the same pairs per update
        "checkpointing": any(
            getattr(m, "gradient_checkpointing", False) is True for m in trainer.model.modules()
        ),
        "sequences": n_sequences,
        "rss_peak_mib": rss_peak,
        "rss_exact": exact,
        "cuda_peak_mib": (torch.cuda.max_memory_allocated() - cuda_before) / 2**20 if cuda else None,
        "device": torch.cuda.get_device_name() if cuda else f"cpu ({torch.get_num_threads()} threads)",
    }
    print("RESULT " + json.dumps(result), flush=True)


def _run_worker(kind: str, model: Path, data: Path, work: Path, args: argparse.Namespace) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        kind,
        "--model",
        str(model),
        "--data",
        str(data),
        "--output-dir",
        str(work / f"out-{kind}"),
        "--batch-prompts",
        str(args.batch_prompts),
        "--seed",
        str(args.seed),
        "--threads",
        str(args.threads),
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode or not lines:
        sys.exit(f"worker {kind} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1].removeprefix("RESULT "))


# -- driver -----------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seq-lens", default="128,512", help="target tokens per prompt+response")
    parser.add_argument("--n-prompts", type=int, default=32)
    parser.add_argument("--batch-prompts", type=int, default=4, help="B: prompts per optimizer step")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--arch", default="llama", choices=["llama", "bloom"])
    parser.add_argument("--hidden-size", type=int, default=256)
    parser.add_argument("--num-layers", type=int, default=4)
    parser.add_argument("--num-heads", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads", type=int, default=0, help="torch CPU threads per run (0: torch's default)"
    )
    # hidden: one measurement in this process
    parser.add_argument("--worker", choices=KINDS, help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--output-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    if args.n_prompts % args.batch_prompts:
        parser.error(
            "--n-prompts must be a multiple of --batch-prompts (whole optimizer steps on both sides)"
        )
    with tempfile.TemporaryDirectory(prefix="okapi-bench-reward-") as tmp:
        run(Path(tmp), args)


def run(work: Path, args: argparse.Namespace) -> None:
    import transformers
    from transformers import AutoTokenizer

    from okapi_hf.testing import make_tiny_model

    model = make_tiny_model(
        args.arch,
        work / "model",
        hidden_size=args.hidden_size,
        num_layers=args.num_layers,
        num_heads=args.num_heads,
        seed=args.seed,
    )
    transformers.logging.set_verbosity_error()
    tokenizer = AutoTokenizer.from_pretrained(model)
    n_params = sum(p.numel() for p in _load(model).parameters())
    seq_lens = [int(s) for s in args.seq_lens.split(",")]
    steps = args.n_prompts // args.batch_prompts
    print(
        f"{args.arch}: hidden {args.hidden_size}, {args.num_layers} layers, {args.num_heads} heads, "
        f"{n_params / 1e6:.1f}M parameters, fp32; {args.n_prompts} prompts x {K} responses, "
        f"{args.batch_prompts} prompts per step ({K * args.batch_prompts} sequences ranked, "
        f"{K * (K - 1) * args.batch_prompts} trl), {steps} steps per epoch; {args.repeats} repeats",
        flush=True,
    )
    table = []
    for seq_len in seq_lens:
        rows = make_rankings(tokenizer, args.n_prompts, seq_len, args.seed)
        random.Random(args.seed).shuffle(rows)
        lengths = [len(tokenizer(r["prompt"] + x)["input_ids"]) + 1 for r in rows for x in r["responses"]]
        data = work / f"rankings-{seq_len}.json"
        data.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
        print(f"seq len {seq_len}: sequences of {min(lengths)}..{max(lengths)} tokens", flush=True)
        results: dict[str, list[dict]] = {kind: [] for kind in KINDS}
        for repeat in range(args.repeats):
            for kind in KINDS if repeat % 2 == 0 else reversed(KINDS):
                result = _run_worker(kind, model, data, work, args)
                results[kind].append(result)
                memory = f"{result['rss_peak_mib']:.0f} MiB RSS" + (
                    f", {result['cuda_peak_mib']:.0f} MiB CUDA" if result["cuda_peak_mib"] is not None else ""
                )
                print(
                    f"  {kind:6s} run {repeat + 1}: {result['seconds']:.2f} s ({result['cpu_seconds']:.1f} CPU s), "
                    f"{result['steps']} steps, {result['sequences']} sequences, loss {result['train_loss']:.5f}, "
                    f"+{memory} ({result['device']})",
                    flush=True,
                )
        for kind in KINDS:
            assert {r["steps"] for r in results[kind]} == {steps}, f"{kind}: {results[kind]}"
            assert not any(r["checkpointing"] for r in results[kind]), f"{kind} ran with checkpointing"
        losses = [r["train_loss"] for kind in KINDS for r in results[kind]]
        if max(losses) - min(losses) > 1e-3:
            print(f"  WARNING: the two trainers' epoch losses differ: {losses}", flush=True)
        pairs = list(zip(results["trl"], results["ranked"], strict=True))
        ratios = [t["seconds"] / r["seconds"] for t, r in pairs]
        cpu_ratios = [t["cpu_seconds"] / r["cpu_seconds"] for t, r in pairs]
        cuda = results["ranked"][0]["cuda_peak_mib"] is not None
        memory_key = "cuda_peak_mib" if cuda else "rss_peak_mib"
        table.append(
            {
                "seq_len": seq_len,
                **{
                    f"{kind}_{what}": statistics.median(r[key] for r in results[kind])
                    for kind in KINDS
                    for what, key in (("s", "seconds"), ("mib", memory_key))
                },
                "ratio": statistics.median(ratios),
                "cpu_ratio": statistics.median(cpu_ratios),
                "ratio_range": (min(ratios), max(ratios)),
            }
        )
    memory = "CUDA peak allocated" if cuda else "peak RSS growth"
    print()
    print(
        f"| seq len | trl RewardTrainer s/epoch | RankedRewardTrainer s/epoch | speed-up (range) "
        f"| trl {memory} MiB | ranked {memory} MiB | speed-up in process CPU time |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for row in table:
        lo, hi = row["ratio_range"]
        print(
            f"| {row['seq_len']} | {row['trl_s']:.2f} | {row['ranked_s']:.2f} "
            f"| **{row['ratio']:.2f}x** ({lo:.2f}x to {hi:.2f}x) | {row['trl_mib']:.0f} | {row['ranked_mib']:.0f} "
            f"| {row['cpu_ratio']:.2f}x |"
        )
    print("\nmedians of the runs; speed-up: median of trl/ranked over back-to-back pairs; target >= 2.5x")


def _load(model: Path):
    from transformers import AutoModelForSequenceClassification

    return AutoModelForSequenceClassification.from_pretrained(model, num_labels=1)


if __name__ == "__main__":
    main()
