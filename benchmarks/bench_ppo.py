"""Where a PPO iteration's time goes: generation, the log-prob/value forwards, scoring, the update.

Runs okapi-hf's ``PPOTrainer`` for a few iterations with a random Llama policy and a reward model of
the same size on prompts from the sample data, and reports seconds per iteration per phase and each
phase's share, so the bottleneck is visible (on CPU and on a GPU with ``--device cuda``).

    python benchmarks/bench_ppo.py            # ~2 minutes on 2 CPU cores
    python benchmarks/bench_ppo.py --quick    # seconds
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

from okapi_hf.data.load import load_dataset
from okapi_hf.testing import make_tiny_model
from okapi_hf.train.ppo import PPOConfig, PPOTrainer

PHASES = ("time/generate", "time/forward", "time/score", "time/update")


def prompts(tmp: Path, n: int) -> Dataset:
    from okapi_hf.data.build import build_dataset
    from okapi_hf.data.sample import SAMPLE_LANGS, write_sample_raw

    write_sample_raw(tmp / "raw", n_rl=64)
    build_dataset(tmp / "raw", tmp / "data", list(SAMPLE_LANGS), ["rl"], progress=False)
    rows = load_dataset(list(SAMPLE_LANGS), "rl", tmp / "data", split="train")
    return rows.select([i % len(rows) for i in range(n)])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--hidden-size", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--rollouts", type=int, default=32, help="num_rollouts per iteration")
    parser.add_argument("--new-tokens", type=int, default=64, help="max_new_tokens")
    parser.add_argument("--iterations", type=int, default=4, help="timed iterations (after one warm-up)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="a small smoke run")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    if args.quick:
        args.hidden_size, args.layers, args.rollouts, args.new_tokens, args.iterations = 64, 2, 8, 16, 2
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        path = make_tiny_model(
            "llama", tmp / "policy", hidden_size=args.hidden_size, num_layers=args.layers, num_heads=4
        )
        tokenizer = AutoTokenizer.from_pretrained(path)
        policy = AutoModelForCausalLM.from_pretrained(path)
        reward_model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1)
        config = PPOConfig(
            output_dir=str(tmp / "out"),
            num_rollouts=args.rollouts,
            chunk_size=min(16, args.rollouts),
            per_device_train_batch_size=min(16, args.rollouts),
            max_new_tokens=args.new_tokens,
            max_steps=args.iterations + 1,
            num_unfrozen_layers=None,
            bf16=False,
            gradient_checkpointing=False,
            use_cpu=args.device == "cpu",
            report_to="none",
            save_strategy="no",
            disable_tqdm=True,
        )
        data = prompts(tmp, args.rollouts * (args.iterations + 1))
        trainer = PPOTrainer(policy, config, tokenizer, data, reward_model=reward_model)
        trainer.train()
        history = [h for h in trainer.state.log_history if "time/iteration" in h][1:]  # drop the warm-up

    total = statistics.mean(h["time/iteration"] for h in history)
    rows = [(phase.split("/")[1], statistics.mean(h[phase] for h in history)) for phase in PHASES]
    other = total - sum(seconds for _, seconds in rows)
    params = sum(p.numel() for p in policy.parameters()) / 1e6
    print(
        f"\nPPO iteration on {args.device}: Llama {params:.1f}M params (policy, reference and reward model "
        f"alike), {args.rollouts} rollouts x up to {args.new_tokens} new tokens, 4 PPO epochs, "
        f"mean of {len(history)} iterations"
    )
    print("\n| phase | s / iteration | share |\n|---|---:|---:|")
    for name, seconds in [*rows, ("other (advantages, logging)", other)]:
        print(f"| {name} | {seconds:.2f} | {seconds / total:.0%} |")
    print(f"| **total** | **{total:.2f}** | 100% |")
    length = statistics.mean(h["response_length"] for h in history)
    print(f"\nmean response length {length:.1f} tokens")
    if args.json:
        figures = {"total": total, **dict(rows), "other": other, "response_length": length}
        Path(args.json).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
