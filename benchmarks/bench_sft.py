"""Benchmark SFT throughput with packing and padding-free batching against Okapi's collation.

Okapi's SFT pads every batch to its longest row, packs nothing and draws rows in random order. On
instruction data, where most rows are short and a few are long, most of each batch is then padding.
The measure is real tokens per second: tokens that are not padding (the sum of the attention mask,
or every token of a padding-free batch), per wall second of the training loop. Target: at least 1.5x
Okapi's figure with packing or padding-free batching.

Data: length-skewed multilingual rows built from the package's own sample data
(``write_sample_raw`` + ``build_dataset``, several languages), rendered with Okapi's template into trl
prompt/completion rows. A row's response is its own output followed by outputs of other rows of the
same language, up to a response length drawn from a log-normal distribution with a fixed seed: most
rows are short, a long tail reaches ``--max-length`` (512), as in Alpaca. No row is longer than
``--max-length``, so nothing is truncated or dropped and every configuration trains on the same
tokens. The length distribution is printed.

Configurations, each a trl ``SFTTrainer`` run over the same rows for one epoch, with the same rows per
optimizer step (``--batch-rows``, 16) where the configuration has rows per step:

- ``okapi`` (the baseline): no packing, not padding-free, random order, padded to the longest row.
- ``group_by_length``: the same padded batches drawn by transformers' length-grouped sampler (rows
  of similar length together); works for every architecture, BLOOM included. The sampler sorts
  mega-batches of ``min(50, rows // (4 * batch))`` batches, so on the few hundred rows timed here it
  groups far less than on Okapi's 52K rows; the script prints the padding both would have at 52K rows
  (simulated from the same length distribution).
- ``padding_free``: no packing; each micro-batch is flattened into one sequence with ``position_ids``
  restarting at every row, so there is no padding. transformers 5 turns those ``position_ids`` into a
  block-diagonal causal mask for SDPA, so this runs without FlashAttention, but only when no KV cache
  is passed (trl sets ``use_cache=False`` in training; a plain eval-mode forward of a Llama config
  with ``use_cache=True`` lets the rows attend to each other). The script checks it (logits and loss
  equal to the padded forward) before timing and leaves both padding-free configurations out if not.
- ``packing``: trl's best-fit-decreasing packing into sequences of ``--max-length`` tokens, run
  padding-free. Rows per optimizer step vary here (a pack holds a varying number of rows), so the
  gradient accumulation is chosen to put at least the baseline's tokens into a step.

Attention cost of padding-free batches: a flattened micro-batch is one sequence of T tokens with a
block mask; SDPA (the CPU kernels, and the GPU ones given an explicit mask) computes all T x T scores
and masks most of them. Flattening a whole step (16 rows, T of about 3,100) costs more attention than
the padding saves: measured here, 0.91x the baseline without packing and 0.87x with 7 packs per
forward. So the padding-free runs keep T near ``--max-length``: packing forwards one pack at a time
(``--pack-batch 1``) with gradient accumulation, padding-free without packing 4 rows at a time
(``--pf-batch 4``, 4 accumulation steps). With FlashAttention's varlen kernel on a GPU
(``--attn-implementation flash_attention_2``) the cost follows each row's own length, and larger
micro-batches fill the GPU better.

Threads: the default is one torch thread. On this shared 2-core machine, two OpenMP threads stall
whenever another job holds the second core, and the many small matmuls of the padding-free runs
stall most (a busy-machine run with ``--threads 2`` measured every configuration 2-4x slower and
packing at 0.98x). On a quiet machine ``--threads 2`` gives ratios close to the one-thread ones.

Timing: each configuration first runs ``--warmup-steps`` optimizer steps in a separate trainer (thread
pools, allocator, kernels), then a fresh trainer on a freshly loaded model trains one epoch; only its
training loop (``on_train_begin`` to ``on_train_end``) is timed. A forward pre-hook counts the real
and padded tokens and rows that reach the model, and the script checks that every configuration fed
the model exactly the same real tokens. Configurations run in one process, in rotated order over
``--rounds`` rounds; each speed-up is the median over rounds of the configuration's tokens/s divided
by the baseline's in the same round. With ``--device cuda`` (bf16) the model-FLOPs utilisation is
printed too: MFU = 6 * parameters * real tokens/s / (``--peak-tflops`` * 1e12), which leaves out
attention FLOPs.

Usage: python benchmarks/bench_sft.py [--quick] [--rows 192] [--rounds 2] [--threads 1]
       [--hidden-size 256] [--layers 4] [--heads 4] [--configs okapi,group_by_length,padding_free,packing]
       [--pf-batch 4] [--pack-batch 1] [--json out.json] [--plot out.png]
A ~1B random Llama on a GPU: --device cuda --hidden-size 2048 --layers 16 --heads 16 --rows 2048
       --peak-tflops 989 (H100 SXM dense bf16) [--attn-implementation flash_attention_2 --pf-batch 16]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

BASELINE = "okapi"
CONFIG_NAMES = ("okapi", "group_by_length", "padding_free", "packing")
LABELS = {
    "okapi": "okapi (pad to longest, random order)",
    "group_by_length": "group_by_length (padded)",
    "padding_free": "padding-free (no packing)",
    "packing": "packing (bfd, padding-free)",
}
PADDING_FREE = {"padding_free", "packing"}
SAMPLE_LANGS = "vi,ru,zh,ar,hi,bn"  # Latin, Cyrillic, CJK, Arabic, Devanagari, Bengali


# -- data ------------------------------------------------------------------------------------------
def load_sft_rows(work: Path, langs: str, per_lang: int, seed: int) -> list[dict[str, Any]]:
    """Okapi SFT rows (instruction, input, output, lang) from the package's sample data, built offline."""
    from okapi_hf.data.build import build_dataset
    from okapi_hf.data.load import load_dataset
    from okapi_hf.data.sample import write_sample_raw

    raw = write_sample_raw(work / "raw", langs, n_sft=per_lang, n_ranking=0, n_rl=0, seed=seed)
    build_dataset(raw, work / "data", langs, "sft", progress=False)
    return list(load_dataset(langs, "sft", work / "data", split="train"))


def make_skewed_rows(
    tokenizer,
    source: list[dict[str, Any]],
    n_rows: int,
    max_length: int,
    median: float,
    sigma: float,
    seed: int,
) -> tuple[list[dict[str, str]], list[int]]:
    """``n_rows`` prompt/completion rows whose lengths in tokens are long-tailed, none over ``max_length``.

    Each row keeps its prompt (Okapi's template) and its own output, then appends outputs of other rows
    of its language until the response reaches a log-normal target length (``median`` tokens,
    ``sigma``); pieces that would pass ``max_length`` are not added. Returns the rows and their lengths
    as trl tokenizes them (prompt + completion + eos).
    """
    from okapi_hf.prompts import format_prompt

    rng = random.Random(seed)
    by_lang: dict[str, list[str]] = {}
    for row in source:
        by_lang.setdefault(row["lang"], []).append(row["output"])
    n_tokens = lambda text: len(tokenizer(text + tokenizer.eos_token)["input_ids"])  # noqa: E731
    rows, lengths = [], []
    for row in rng.sample(source, n_rows) if n_rows <= len(source) else rng.choices(source, k=n_rows):
        prompt = format_prompt(row["instruction"], row["input"])
        prompt_len = n_tokens(prompt) - 1
        target = prompt_len + rng.lognormvariate(math.log(median), sigma)
        completion = row["output"]
        length = n_tokens(prompt + completion)
        while length < target:
            longer = completion + "\n" + rng.choice(by_lang[row["lang"]])
            longer_len = n_tokens(prompt + longer)
            if longer_len > max_length:
                break
            completion, length = longer, longer_len
        if length > max_length:
            raise ValueError(f"a one-output row is {length} tokens, over --max-length {max_length}")
        rows.append({"prompt": prompt, "completion": completion})
        lengths.append(length)
    return rows, lengths


def simulate_padding(lengths: list[int], batch_rows: int, n_rows: int, seed: int) -> dict[str, float]:
    """Padding fractions of random and length-grouped batches at ``n_rows`` rows of the same distribution.

    transformers' length-grouped sampler sorts mega-batches of ``min(50, rows // (4 * batch))`` batches,
    so on a few hundred rows it groups far less than on Okapi's 52K; this shows the full-scale figure.
    """
    import torch
    from transformers.trainer_pt_utils import get_length_grouped_indices

    rng = random.Random(seed)
    sample = [rng.choice(lengths) for _ in range(n_rows - n_rows % batch_rows)]

    def padding(order: list[int]) -> float:
        batches = [order[i : i + batch_rows] for i in range(0, len(order), batch_rows)]
        slots = sum(len(b) * max(sample[j] for j in b) for b in batches)
        return 1 - sum(sample) / slots

    shuffled = list(range(len(sample)))
    rng.shuffle(shuffled)
    grouped = get_length_grouped_indices(sample, batch_rows, generator=torch.Generator().manual_seed(seed))
    return {"rows": len(sample), "okapi": padding(shuffled), "group_by_length": padding(grouped)}


def length_stats(lengths: list[int]) -> dict[str, float]:
    ordered = sorted(lengths)
    pct = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {
        "rows": len(ordered),
        "tokens": sum(ordered),
        "mean": statistics.fmean(ordered),
        "p50": pct(0.5),
        "p90": pct(0.9),
        "p99": pct(0.99),
        "min": ordered[0],
        "max": ordered[-1],
    }


# -- padding-free correctness on this attention implementation ----------------------------------------
def check_padding_free(model_dir: Path, rows: list[dict[str, str]], args: argparse.Namespace) -> str | None:
    """Forward the same rows padded and flattened; ``None`` if logits and loss agree, else why not.

    Padding-free batches are only right if the attention keeps rows apart. With SDPA that depends on
    transformers building a block-diagonal mask from ``position_ids``; this checks it on the device used.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    examples = []
    for row in sorted(rows[:16], key=lambda r: len(r["completion"]))[::4]:  # four rows of different lengths
        prompt_ids = tokenizer(row["prompt"])["input_ids"]
        ids = tokenizer(row["prompt"] + row["completion"] + tokenizer.eos_token)["input_ids"]
        examples.append({"input_ids": ids, "labels": [-100] * len(prompt_ids) + ids[len(prompt_ids) :]})
    model = AutoModelForCausalLM.from_pretrained(
        model_dir, dtype=_dtype(args), attn_implementation=args.attn_implementation
    ).to(args.device)
    model.eval()
    outputs = {}
    for free in (False, True):
        batch = DataCollatorForLanguageModeling(pad_token_id=tokenizer.pad_token_id, padding_free=free)(
            examples
        )
        batch = {k: v.to(args.device) if torch.is_tensor(v) else v for k, v in batch.items()}
        with torch.no_grad():  # use_cache=False as in training: a cache turns off the packed-row mask
            out = model(**batch, use_cache=False)
        # padded: the real positions of every row, in the same order as the flattened batch
        logits = out.logits[0] if free else out.logits[batch["attention_mask"].bool()]
        outputs[free] = (out.loss.item(), logits)
    (loss_pad, logits_pad), (loss_free, logits_free) = outputs[False], outputs[True]
    diff = (logits_pad - logits_free).abs().max().item()
    print(
        f"padding-free check ({args.attn_implementation}, {args.device}, {len(examples)} rows): loss padded "
        f"{loss_pad:.6f}, flattened {loss_free:.6f}; max |logit difference| {diff:.2e}",
        flush=True,
    )
    # rows that attend to each other move logits of a random model by about 1; bf16 rounding by far less
    tolerance = 1e-3 if _dtype(args) == torch.float32 else 5e-2
    if diff > tolerance or abs(loss_pad - loss_free) > tolerance:
        return (
            f"flattened rows do not reproduce the padded forward with attn_implementation="
            f"{args.attn_implementation} (max logit difference {diff:.2e}): rows attend to each other"
        )
    return None


# -- one configuration -----------------------------------------------------------------------------
def config_kwargs(name: str, args: argparse.Namespace, mean_length: float) -> dict[str, Any]:
    """The SFTConfig choices of configuration ``name``; the rest is common to all."""
    if name == "okapi":
        return {"per_device_train_batch_size": args.batch_rows, "max_length": args.max_length}
    if name == "group_by_length":
        return {
            "per_device_train_batch_size": args.batch_rows,
            "max_length": args.max_length,
            "train_sampling_strategy": "group_by_length",
        }
    if name == "padding_free":  # trl needs max_length None here; the rows are built within it
        return {
            "per_device_train_batch_size": args.pf_batch,
            "gradient_accumulation_steps": args.batch_rows // args.pf_batch,
            "padding_free": True,
            "max_length": None,
        }
    if name == "packing":
        # at least the baseline's tokens per optimizer step (packs are nearly full)
        accumulation = args.pack_accum or math.ceil(
            args.batch_rows * mean_length / (args.pack_batch * args.max_length)
        )
        return {
            "per_device_train_batch_size": args.pack_batch,
            "gradient_accumulation_steps": accumulation,
            "packing": True,
            "packing_strategy": "bfd",
            "max_length": args.max_length,
        }
    raise ValueError(f"unknown configuration {name!r}; expected one of {', '.join(CONFIG_NAMES)}")


class TokenCounter:
    """Forward pre-hook: counts rows, real tokens and token slots (real + padding) reaching the model."""

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id
        self.rows = self.real = self.slots = self.forwards = 0

    def __call__(self, module, args, kwargs) -> None:
        input_ids = kwargs["input_ids"]
        self.forwards += 1
        self.slots += input_ids.numel()
        if kwargs.get("attention_mask") is not None:
            self.real += int(kwargs["attention_mask"].sum())
            self.rows += input_ids.shape[0]
        else:  # padding-free: one flattened sequence; a row starts wherever position_ids restart at 0
            self.real += int((input_ids != self.pad_token_id).sum())
            self.rows += int((kwargs["position_ids"] == 0).sum())


def train_once(name: str, rows: list[dict[str, str]], model_dir: Path, work: Path, args, max_steps: int):
    """One SFTTrainer run of configuration ``name``; returns (trainer, counter, timer, loss)."""
    import torch
    import transformers
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    cuda = args.device == "cuda"

    class LoopTimer(TrainerCallback):
        """Wall and process CPU seconds of the training loop (CPU time: steadier on a shared machine)."""

        wall = cpu = 0.0

        def on_train_begin(self, *a, **k):
            if cuda:
                torch.cuda.synchronize()
            self.wall, self.cpu = -time.perf_counter(), -time.process_time()

        def on_train_end(self, *a, **k):
            if cuda:
                torch.cuda.synchronize()
            self.wall += time.perf_counter()
            self.cpu += time.process_time()

    config = SFTConfig(
        output_dir=str(work / f"out-{name}"),
        num_train_epochs=1,
        max_steps=max_steps,
        learning_rate=1e-5,
        seed=args.seed,
        bf16=cuda,  # bf16 weights and autocast on a GPU (FlashAttention needs them); fp32 on the CPU
        use_cpu=not cuda,
        activation_checkpointing=False,  # trl turns it on by default; it would only slow these runs
        report_to="none",
        save_strategy="no",
        logging_steps=10**6,
        disable_tqdm=True,
        dataloader_num_workers=0,
        **args.config_kwargs[name],
    )
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    transformers.set_seed(args.seed)
    model = AutoModelForCausalLM.from_pretrained(
        model_dir, dtype=_dtype(args), attn_implementation=args.attn_implementation
    )
    counter = TokenCounter(tokenizer.pad_token_id)
    model.register_forward_pre_hook(counter, with_kwargs=True)
    timer = LoopTimer()
    trainer = SFTTrainer(
        model,
        args=config,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        callbacks=[timer],
    )
    output = trainer.train()
    return trainer, counter, timer, output.training_loss


def measure(name: str, rows: list[dict[str, str]], model_dir: Path, work: Path, args) -> dict[str, Any]:
    """Warm up in a throwaway trainer, then time one epoch of a fresh one."""
    import gc

    if args.warmup_steps:
        warm = train_once(name, rows, model_dir, work, args, max_steps=args.warmup_steps)
        del warm
        gc.collect()
    trainer, counter, timer, loss = train_once(name, rows, model_dir, work, args, max_steps=-1)
    kwargs = args.config_kwargs[name]
    result = {
        "config": name,
        "seconds": timer.wall,
        "cpu_seconds": timer.cpu,
        "steps": trainer.state.global_step,
        "forwards": counter.forwards,
        "rows": counter.rows,
        "real_tokens": counter.real,
        "slots": counter.slots,
        "padding_fraction": 1 - counter.real / counter.slots,
        "real_tokens_per_s": counter.real / timer.wall,
        "rows_per_step": counter.rows / trainer.state.global_step,
        "micro_batch": kwargs["per_device_train_batch_size"],
        "accumulation": kwargs.get("gradient_accumulation_steps", 1),
        "train_loss": loss,
    }
    del trainer
    gc.collect()
    return result


# -- driver -----------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run under a minute (small model, few rows)"
    )
    parser.add_argument("--rows", type=int, default=192, help="rows trained by every configuration")
    parser.add_argument("--batch-rows", type=int, default=16, help="rows per optimizer step (global batch)")
    parser.add_argument("--max-length", type=int, default=512, help="longest row; the packed sequence length")
    parser.add_argument("--median-response", type=float, default=45.0, help="median response length, tokens")
    parser.add_argument("--sigma", type=float, default=1.0, help="log-normal sigma of response lengths")
    parser.add_argument("--langs", default=SAMPLE_LANGS)
    parser.add_argument("--configs", default=",".join(CONFIG_NAMES))
    parser.add_argument("--pf-batch", type=int, default=4, help="rows per padding-free micro-batch")
    parser.add_argument("--pack-batch", type=int, default=1, help="packs per forward (flattened into one)")
    parser.add_argument("--pack-accum", type=int, default=0, help="packing accumulation steps (0: auto)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds over all configurations, order rotated")
    parser.add_argument("--warmup-steps", type=int, default=1)
    parser.add_argument("--hidden-size", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--vocab-size", type=int, default=1024)
    parser.add_argument("--attn-implementation", default="sdpa", help="sdpa, eager, flash_attention_2, ...")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--peak-tflops", type=float, help="the device's peak TFLOP/s for MFU (--device cuda)")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (0: torch's default); see the docstring"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the figures here")
    parser.add_argument("--plot", help="also draw real tokens/s per configuration to this image")
    if parser.parse_known_args(argv)[0].quick:  # smaller defaults; options given explicitly still win
        parser.set_defaults(rows=64, rounds=2, hidden_size=128, layers=2)
    args = parser.parse_args(argv)
    args.configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    unknown = sorted(set(args.configs) - set(CONFIG_NAMES))
    if unknown or BASELINE not in args.configs:
        parser.error(f"--configs must include {BASELINE} and name only {', '.join(CONFIG_NAMES)}")
    if args.rows % args.batch_rows or args.batch_rows % args.pf_batch:
        parser.error("--rows must be a multiple of --batch-rows, and --batch-rows of --pf-batch")
    with tempfile.TemporaryDirectory(prefix="okapi-bench-sft-") as tmp:
        run(Path(tmp), args)


def run(work: Path, args: argparse.Namespace) -> None:
    import datasets
    import torch
    import transformers
    from transformers import AutoTokenizer

    from okapi_hf.testing import make_tiny_model

    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()
    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    model_dir = make_tiny_model(
        "llama",
        work / "model",
        vocab_size=args.vocab_size,
        hidden_size=args.hidden_size,
        num_layers=args.layers,
        num_heads=args.heads,
        seed=args.seed,
    )
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    n_langs = len(args.langs.split(","))
    source = load_sft_rows(work, args.langs, max(40, math.ceil(1.3 * args.rows / n_langs)), args.seed)
    rows, lengths = make_skewed_rows(
        tokenizer, source, args.rows, args.max_length, args.median_response, args.sigma, args.seed
    )
    stats = length_stats(lengths)
    args.config_kwargs = {name: config_kwargs(name, args, stats["mean"]) for name in args.configs}
    n_params = sum(p.numel() for p in _load(model_dir).parameters())
    device = (
        torch.cuda.get_device_name() if args.device == "cuda" else f"cpu, {torch.get_num_threads()} threads"
    )
    print(
        f"llama: hidden {args.hidden_size}, {args.layers} layers, {args.heads} heads, vocab {len(tokenizer)}, "
        f"{n_params / 1e6:.1f}M parameters, attn {args.attn_implementation}, {str(_dtype(args)).removeprefix('torch.')}"
        f" ({device}); {args.rows} rows in {n_langs} languages ({args.langs}), {args.batch_rows} rows per step, "
        f"{args.rounds} round(s), {args.warmup_steps} warm-up step(s)",
        flush=True,
    )
    print(
        f"row lengths in tokens (prompt + response + eos): mean {stats['mean']:.0f}, p50 {stats['p50']}, "
        f"p90 {stats['p90']}, p99 {stats['p99']}, min {stats['min']}, max {stats['max']} "
        f"(max_length {args.max_length}); {stats['tokens']:,} tokens in all",
        flush=True,
    )
    full_scale = simulate_padding(lengths, args.batch_rows, 52_000, args.seed)
    print(
        f"padding at Okapi's scale ({full_scale['rows']:,} rows of this length distribution, simulated): "
        f"random batches {100 * full_scale['okapi']:.1f}%, group_by_length {100 * full_scale['group_by_length']:.1f}% "
        f"(here, {args.rows} rows: mega-batches of {max(1, min(50, args.rows // (4 * args.batch_rows)))} batches"
        " instead of 50)",
        flush=True,
    )
    skipped: dict[str, str] = {}
    if PADDING_FREE & set(args.configs):
        reason = check_padding_free(model_dir, rows, args)
        if reason:
            for name in PADDING_FREE & set(args.configs):
                skipped[name] = reason
    configs = [c for c in args.configs if c not in skipped]

    results: dict[str, list[dict[str, Any]]] = {name: [] for name in configs}
    for round_ in range(args.rounds):
        shift = round_ % len(configs)
        for name in configs[shift:] + configs[:shift]:
            result = measure(name, rows, model_dir, work, args)
            results[name].append(result)
            print(
                f"  round {round_ + 1} {name:16s} {result['seconds']:7.2f} s, {result['steps']:3d} steps x "
                f"{result['micro_batch']}x{result['accumulation']}, {result['rows']} rows, "
                f"{result['real_tokens']:,} real / {result['slots']:,} slots "
                f"({100 * result['padding_fraction']:.1f}% padding), {result['real_tokens_per_s']:,.0f} real tok/s, "
                f"loss {result['train_loss']:.4f}",
                flush=True,
            )
    for name in configs:  # every configuration must have trained on the same rows and real tokens
        for r in results[name]:
            if (r["rows"], r["real_tokens"]) != (args.rows, stats["tokens"]):
                raise SystemExit(
                    f"{name}: fed {r['rows']} rows / {r['real_tokens']} real tokens to the model, expected "
                    f"{args.rows} / {stats['tokens']}"
                )

    table = summarize(results, args, n_params)
    print_table(table, stats, skipped, args)
    print(f"\nwall time {time.perf_counter() - started:.0f} s", flush=True)
    if args.json:
        figures = {
            "settings": {k: v for k, v in vars(args).items() if k not in {"config_kwargs", "json", "plot"}},
            "device": device,
            "parameters": n_params,
            "lengths": stats,
            "simulated_padding_at_52k_rows": full_scale,
            "skipped": skipped,
            "table": table,
            "runs": results,
        }
        Path(args.json).write_text(json.dumps(figures, indent=2), encoding="utf-8")
    if args.plot:
        plot(table, Path(args.plot))


def summarize(
    results: dict[str, list[dict]], args: argparse.Namespace, n_params: int
) -> list[dict[str, Any]]:
    """Medians per configuration; speed-ups as the median of per-round ratios to the baseline."""
    table = []
    for name, runs in results.items():
        ratios = [
            r["real_tokens_per_s"] / base["real_tokens_per_s"]
            for r, base in zip(runs, results[BASELINE], strict=True)
        ]
        # every configuration processes the same real tokens, so CPU seconds compare directly
        cpu_ratios = [
            base["cpu_seconds"] / r["cpu_seconds"] for r, base in zip(runs, results[BASELINE], strict=True)
        ]
        tokens_per_s = statistics.median(r["real_tokens_per_s"] for r in runs)
        row = {
            "config": name,
            "label": LABELS[name],
            "micro_batch": runs[0]["micro_batch"],
            "accumulation": runs[0]["accumulation"],
            "steps": runs[0]["steps"],
            "rows_per_step": runs[0]["rows_per_step"],
            "slots_per_forward": runs[0]["slots"] / runs[0]["forwards"],
            "padding_fraction": runs[0]["padding_fraction"],
            "seconds": statistics.median(r["seconds"] for r in runs),
            "real_tokens_per_s": tokens_per_s,
            "speedup": statistics.median(ratios),
            "speedup_range": [min(ratios), max(ratios)],
            "cpu_speedup": statistics.median(cpu_ratios),
        }
        if args.device == "cuda" and args.peak_tflops:
            row["mfu"] = 6 * n_params * tokens_per_s / (args.peak_tflops * 1e12)
        table.append(row)
    return table


def print_table(table: list[dict], stats: dict, skipped: dict[str, str], args: argparse.Namespace) -> None:
    mfu = args.device == "cuda" and args.peak_tflops
    extra = " MFU |" if mfu else (" vs okapi in CPU time |" if args.device == "cpu" else "")
    print()
    print(
        "| configuration | micro-batch x accumulation | steps | rows/step | tokens per forward | padding "
        "| real tokens/s | vs okapi (range) |" + extra
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|" + ("---:|" if extra else ""))
    for row in table:
        lo, hi = row["speedup_range"]
        unit = "packs" if row["config"] == "packing" else "rows"
        print(
            f"| {row['label']} | {row['micro_batch']} {unit} x {row['accumulation']} | {row['steps']} "
            f"| {row['rows_per_step']:.1f} | {row['slots_per_forward']:,.0f} | {100 * row['padding_fraction']:.1f}% "
            f"| {row['real_tokens_per_s']:,.0f} | **{row['speedup']:.2f}x** ({lo:.2f}x to {hi:.2f}x) |"
            + (f" {100 * row['mfu']:.1f}% |" if mfu else f" {row['cpu_speedup']:.2f}x |" if extra else "")
        )
    for name, reason in skipped.items():
        print(f"| {LABELS[name]} | left out: {reason} |")
    print(
        f"\n{stats['rows']} rows, {stats['tokens']:,} real tokens per epoch (mean {stats['mean']:.0f}, p50 "
        f"{stats['p50']}, p90 {stats['p90']}, max {stats['max']} tokens); real tokens/s: median over "
        f"{args.rounds} round(s); vs okapi: median of per-round ratios (CPU time: of process CPU seconds, "
        "less sensitive to other jobs); target >= 1.5x with packing or "
        "padding-free batching"
    )
    if args.device == "cuda" and not args.peak_tflops:
        print("MFU: pass --peak-tflops (the GPU's dense bf16 peak) to print it")


def plot(table: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.barh([row["label"] for row in table][::-1], [row["real_tokens_per_s"] for row in table][::-1])
    for i, row in enumerate(table[::-1]):
        ax.text(row["real_tokens_per_s"], i, f" {row['speedup']:.2f}x", va="center")
    ax.set_xlabel("real (non-pad) tokens per second")
    ax.set_title("SFT throughput on length-skewed multilingual data", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def _dtype(args: argparse.Namespace):
    import torch

    return torch.bfloat16 if args.device == "cuda" else torch.float32


def _load(model_dir: Path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(model_dir)


if __name__ == "__main__":
    main()
