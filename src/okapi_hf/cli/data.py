"""`okapi-hf data ...`: download, sample, build, the four creation steps, TaCo, merging shards."""

from __future__ import annotations

import argparse
import gc
from pathlib import Path

from okapi_hf.cli.types import (
    LANGS_HELP,
    add_choice,
    add_parser,
    count,
    positive_float,
    positive_int,
    temperature,
    top_p,
)
from okapi_hf.errors import OkapiError


def _data_download(args: argparse.Namespace) -> None:
    from okapi_hf.data.download import download_release

    report = download_release(
        args.out, args.langs, args.subsets, args.base_url, retries=args.retries, force=args.force
    )
    print(report.summary())


def _data_sample(args: argparse.Namespace) -> None:
    from okapi_hf.data.sample import write_sample_raw
    from okapi_hf.languages import resolve_langs

    out = write_sample_raw(
        args.out,
        None if args.langs is None else resolve_langs(args.langs),  # `--langs ''` is refused, not "all"
        n_sft=args.n_sft,
        n_ranking=args.n_ranking,
        n_rl=args.n_rl,
        seed=args.seed,
        jsonl=args.jsonl,
    )
    print(f"wrote Okapi-format sample data to {out}")


def _data_build(args: argparse.Namespace) -> None:
    from okapi_hf.data.build import build_dataset

    result = build_dataset(
        args.raw_dir, args.out, args.langs, args.subsets, skip_invalid=args.skip_invalid, seed=args.seed
    )
    print(result.summary())
    print(f"\nwrote {result.out_dir}; load it with datasets.load_dataset({str(result.out_dir)!r}, CONFIG)")


# The options of each data-creation step that go to its function in okapi_hf.create.steps, by name.
SAMPLING_OPTIONS = ("max_tokens", "temperature", "top_p")
STEP_OPTIONS = {
    "generate": ("num", "seeds", "prompts_dir", *SAMPLING_OPTIONS),
    "translate": ("input", "langs", "subset", "shard", "prompts_dir", *SAMPLING_OPTIONS),
    "respond": ("input", "lang", "samples", "check_language", "shard", *SAMPLING_OPTIONS),
    "rank": ("input", "lang", "shard", "prompts_dir", *SAMPLING_OPTIONS),
    "taco": ("input", "lang", "english", "answer", "shard", "prompts_dir", *SAMPLING_OPTIONS),
}
DEFAULT_TIMEOUT = 120.0

# What each step picks when --max-tokens / --temperature are not given (the numbers are the steps'
# own constants, checked by the tests; written out here so that `--help` imports no step module).
STEP_SAMPLING_HELP = {
    "generate": ("2048", "1.0, so that each request's tasks differ"),
    "translate": (
        "1024",
        "0, greedy; the one retry after a translation that lost placeholders or came out in another "
        "language samples, at T when T > 0, else at 0.7",
    ),
    "respond": ("512", "0.7, so that the samples of one model differ"),
    "rank": (
        "2048, and 64 for the retry that asks for the ranking line alone; a given N applies to it too",
        "0, greedy; a given T applies to the retry too",
    ),
    "taco": ("1024", "0, greedy; a given T applies to the translations' retries too"),
}


def _data_create(args: argparse.Namespace) -> None:
    """generate / translate / respond / rank / taco: one LLM-driven step over files.

    Ctrl-C: the step stops (its finished rows kept), says how far it got, and the CLI exits with 130.
    """
    from okapi_hf.create import steps
    from okapi_hf.create.runner import StepFailed, StepInterrupted

    step = args.data_command
    backend = {"backends": args.backend.split(",")} if step == "respond" else {"backend": args.backend}
    try:
        result = getattr(steps, step)(
            out=args.out,
            **backend,
            **{name: getattr(args, name) for name in STEP_OPTIONS[step]},
            cache=args.cache,
            concurrency=args.concurrency,
            price=args.price,
            timeout=args.timeout,
        )
    except StepFailed as e:  # the step ran but must not be passed on: its summaries, then one line
        for report in e.reports:
            print(report.summary())
        raise
    except StepInterrupted:  # the CLI prints its line (what was kept) and exits with 130
        # The process ends next. Its last garbage collections would walk every object torch and
        # transformers made (seconds on a busy machine); frozen objects are skipped, and nothing of
        # value is left to collect.
        gc.freeze()
        raise
    reports = result if isinstance(result, list) else [result]
    for report in reports:
        print(report.summary())
    failed = sum(sum(getattr(r, "failed", {}).values()) for r in reports)
    if failed:  # a script chaining steps must not go on with partial data
        raise OkapiError(
            f"{failed} row(s) failed (the endpoint gave up); run the same command again to retry them"
        )


def _data_merge(args: argparse.Namespace) -> None:
    from okapi_hf.create.runner import merge_shards

    print(f"merged {merge_shards(args.file, args.shards)} row(s) from {args.shards} shards into {args.file}")


def _add_creation_commands(data: argparse._SubParsersAction) -> None:
    """The four Okapi data-creation steps, TaCo, and merging shards."""

    def llm_flags(
        p: argparse.ArgumentParser, *, shardable: bool = True, several: bool = False, prompts: bool = True
    ) -> None:
        p.add_argument(
            "--backend",
            required=True,
            help=("comma-separated " if several else "")
            + "model spec: openai:MODEL@BASE_URL (any OpenAI-compatible endpoint), local:PATH, seq2seq:PATH",
        )
        p.add_argument("--out", required=True, help="output folder, in the release layout `data build` reads")
        p.add_argument("--concurrency", type=int, default=16, help="requests in flight at once")
        sampling_flags(p)
        p.add_argument("--cache", help="request cache file (default: OUT/.okapi_llm_cache.sqlite)")
        p.add_argument(
            "--price", help="USD per million input,output tokens, for the cost estimate (e.g. 0.15,0.6)"
        )
        if prompts:
            p.add_argument(
                "--prompts",
                dest="prompts_dir",
                type=Path,
                help="folder of prompt files that replace the shipped ones (default: the shipped ones)",
            )
        if shardable:
            p.add_argument(
                "--shard",
                help="i/n: process every n-th row from i, merged by `data merge` (default: every row)",
            )

    def sampling_flags(p: argparse.ArgumentParser) -> None:
        """--max-tokens, --temperature, --top-p and --timeout, with the step's own defaults in the help."""
        tokens, temperature_help = STEP_SAMPLING_HELP[p.prog.split()[-1]]
        p.add_argument(
            "--max-tokens",
            type=positive_int,
            metavar="N",
            help=f"most tokens one answer may have; replaces the step's own limit (default: {tokens})",
        )
        p.add_argument(
            "--temperature",
            type=temperature,
            metavar="T",
            help=f"sampling temperature, 0 for greedy; replaces the step's own (default: {temperature_help})",
        )
        p.add_argument(
            "--top-p",
            type=top_p,
            metavar="P",
            help="nucleus sampling: draw from the most likely tokens whose probabilities add up to P, "
            "0 < P <= 1; applies when the temperature is above 0 (default: not set, so the endpoint's "
            "or the model's own default)",
        )
        p.add_argument(
            "--timeout",
            type=positive_float,
            default=DEFAULT_TIMEOUT,
            metavar="SECONDS",
            help="seconds one request attempt to an endpoint may take before it is retried; local: and "
            "seq2seq: models are bounded by --max-tokens instead",
        )

    p = add_parser(data, "generate", help="step 1: new English tasks, Self-Instruct style, de-duplicated")
    p.add_argument("--num", type=int, required=True, help="how many new tasks to keep")
    p.add_argument(
        "--seeds", help="seed tasks, JSON/JSONL with instruction, input, output (default: the shipped ones)"
    )
    llm_flags(p, shardable=False)
    p.set_defaults(func=_data_create)

    p = add_parser(data, "translate", help="step 2: translate rows into target languages, checked")
    p.add_argument("--input", required=True, help="JSON/JSONL rows with instruction, input, output")
    p.add_argument("--langs", required=True, help=LANGS_HELP)
    add_choice(p, "--subset", ["sft", "rl"], "sft", "which release folder to write")
    llm_flags(p)
    p.set_defaults(func=_data_create)

    p = add_parser(data, "respond", help="step 3: K responses per instruction from one or more models")
    p.add_argument("--input", required=True, help="JSON/JSONL rows with instruction and input")
    p.add_argument("--lang", help="language of the rows (default: their `lang` field)")
    p.add_argument("--samples", type=int, default=1, help="responses per model (sampled)")
    p.add_argument(
        "--no-language-check",
        dest="check_language",
        action="store_false",
        help="keep responses that do not look written in the row's language (e.g. mostly code)",
    )
    llm_flags(p, several=True, prompts=False)
    p.set_defaults(func=_data_create)

    p = add_parser(data, "rank", help="step 4: Okapi's two-turn ranking (translate to English, then rank)")
    p.add_argument("--input", required=True, help="rows with `responses`, as `data respond` writes them")
    p.add_argument("--lang", help="language of the rows (default: their `lang` field)")
    llm_flags(p)
    p.set_defaults(func=_data_create)

    p = add_parser(data, "taco", help="translation-assisted chain-of-thought rows (TaCo) from SFT rows")
    p.add_argument("--input", required=True, help="SFT rows in the target language")
    p.add_argument("--lang", help="the target language (default: the rows' `lang` field)")
    p.add_argument("--english", help="the aligned English rows (same ids), which saves translation requests")
    answer_help = "row: the row's own output is the answer (as TaCo); model: the backend answers in English"
    add_choice(p, "--answer", ["row", "model"], "row", answer_help)
    llm_flags(p)
    p.set_defaults(func=_data_create)

    p = add_parser(data, "merge", help="join the shard files of one output (`--shard i/n` runs)")
    p.add_argument("file", help="the output file without the shard suffix, e.g. OUT/responses/vi.jsonl")
    p.add_argument("--shards", type=int, required=True, help="n, the number of shards")
    p.set_defaults(func=_data_merge)


def add_data_commands(commands: argparse._SubParsersAction) -> None:
    """The `data` command group."""
    data = add_parser(commands, "data", help="download, build and inspect Okapi data").add_subparsers(
        dest="data_command", required=True, metavar="STEP", help="what to do with data"
    )
    subsets_help = "comma-separated subsets: sft, ranking, rl (default: all three)"

    p = add_parser(data, "download", help="fetch the original release files (resumable, sha256 manifest)")
    p.add_argument("--langs", required=True, help=LANGS_HELP)
    p.add_argument("--subsets", help=subsets_help)
    p.add_argument("--out", default="okapi_raw", help="raw folder in the release layout")
    p.add_argument("--base-url", help="release base URL (default: $OKAPI_HF_BASE_URL or the original host)")
    p.add_argument(
        "--retries", type=positive_int, default=5, metavar="N", help="attempts per file before giving up"
    )
    p.add_argument("--force", action="store_true", help="download again even if files are present")
    p.set_defaults(func=_data_download)

    p = add_parser(data, "sample", help="write the bundled sample data in the release layout")
    p.add_argument("--out", default="okapi_sample_raw", help="raw folder in the release layout")
    p.add_argument("--langs", help="sample languages (default: all that have sample text: vi,ru,zh,ar,hi,bn)")
    p.add_argument("--n-sft", type=count, default=36, metavar="N", help="SFT rows per language")
    p.add_argument(
        "--n-ranking",
        type=count,
        default=12,
        metavar="N",
        help="ranked instructions per language (six pairwise rows each)",
    )
    p.add_argument("--n-rl", type=count, default=16, metavar="N", help="RL prompts per language")
    p.add_argument("--seed", type=int, default=0, help="seed of which rows are drawn")
    p.add_argument("--jsonl", action="store_true", help="write JSON Lines instead of JSON arrays")
    p.set_defaults(func=_data_sample)

    p = add_parser(data, "build", help="turn raw release files into a load_dataset folder")
    p.add_argument(
        "--raw-dir", required=True, help="folder in the release layout <subset-folder>/<lang>.json"
    )
    p.add_argument("--langs", required=True, help=LANGS_HELP)
    p.add_argument("--subsets", help=subsets_help)
    p.add_argument("--out", default="okapi_hf", help="dataset folder to write (and later publish)")
    p.add_argument(
        "--skip-invalid", action="store_true", help="leave out unusable rows (counted) instead of failing"
    )
    p.add_argument("--seed", type=int, default=42, help="seed of the train/validation split")
    p.set_defaults(func=_data_build)
    _add_creation_commands(data)
