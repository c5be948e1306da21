"""``okapi-hf``: one command line over every stage; each subcommand is a thin call into the API."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from okapi_hf.errors import OkapiError
from okapi_hf.languages import GROUPS, get_language


def _languages(args: argparse.Namespace) -> None:
    from okapi_hf.languages import languages

    langs = languages(args.group)
    if args.format == "codes":
        print(",".join(lang.code for lang in langs))
    elif args.format == "json":
        print(json.dumps([vars(lang) for lang in langs], ensure_ascii=False, indent=2))
    else:
        print(f"{'code':<5} {'name':<12} {'group':<7} {'script':<11} aliases")
        for lang in langs:
            print(
                f"{lang.code:<5} {lang.name:<12} {lang.group:<7} {lang.script:<11} {','.join(lang.aliases)}"
            )


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
        resolve_langs(args.langs) if args.langs else None,
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


# The options of each data-creation step that go to its function in okapi_hf.data.create, by name.
STEP_OPTIONS = {
    "generate": ("num", "seeds", "prompts_dir"),
    "translate": ("input", "langs", "subset", "shard", "prompts_dir"),
    "respond": ("input", "lang", "samples", "check_language", "shard"),
    "rank": ("input", "lang", "shard", "prompts_dir"),
    "taco": ("input", "lang", "english", "answer", "shard", "prompts_dir"),
}


def _data_create(args: argparse.Namespace) -> None:
    """generate / translate / respond / rank / taco: one LLM-driven step over files."""
    from okapi_hf.data import create

    step = args.data_command
    backend = {"backends": args.backend.split(",")} if step == "respond" else {"backend": args.backend}
    result = getattr(create, step)(
        out=args.out,
        **backend,
        **{name: getattr(args, name) for name in STEP_OPTIONS[step]},
        cache=args.cache,
        concurrency=args.concurrency,
        price=args.price,
    )
    for report in result if isinstance(result, list) else [result]:
        print(report.summary())


def _data_merge(args: argparse.Namespace) -> None:
    from okapi_hf.data.runner import merge_shards

    print(f"merged {merge_shards(args.file, args.shards)} row(s) from {args.shards} shards into {args.file}")


def _add_creation_commands(data: argparse._SubParsersAction, langs_help: str) -> None:
    """The four Okapi data-creation steps, TaCo, and merging shards."""

    def llm_flags(p: argparse.ArgumentParser, *, shardable: bool = True, several: bool = False) -> None:
        p.add_argument(
            "--backend",
            required=True,
            help=("comma-separated " if several else "")
            + "model spec: openai:MODEL@BASE_URL (any OpenAI-compatible endpoint), local:PATH, seq2seq:PATH",
        )
        p.add_argument("--out", required=True, help="output folder, in the release layout `data build` reads")
        p.add_argument("--concurrency", type=int, default=16, help="requests in flight at once")
        p.add_argument("--cache", help=f"request cache file (default: OUT/{'.okapi_llm_cache.sqlite'})")
        p.add_argument(
            "--price", help="USD per million input,output tokens, for the cost estimate (e.g. 0.15,0.6)"
        )
        p.add_argument(
            "--prompts",
            dest="prompts_dir",
            type=Path,
            help="folder of prompt files that replace the shipped ones",
        )
        if shardable:
            p.add_argument("--shard", help="i/n: process every n-th row from i (merge with `data merge`)")

    p = data.add_parser("generate", help="step 1: new English tasks, Self-Instruct style, de-duplicated")
    p.add_argument("--num", type=int, required=True, help="how many new tasks to keep")
    p.add_argument(
        "--seeds", help="seed tasks (JSON/JSONL with instruction, input, output); default: shipped"
    )
    llm_flags(p, shardable=False)
    p.set_defaults(func=_data_create)

    p = data.add_parser("translate", help="step 2: translate rows into target languages, checked")
    p.add_argument("--input", required=True, help="JSON/JSONL rows with instruction, input, output")
    p.add_argument("--langs", required=True, help=langs_help)
    p.add_argument("--subset", choices=["sft", "rl"], default="sft", help="which release folder to write")
    llm_flags(p)
    p.set_defaults(func=_data_create)

    p = data.add_parser("respond", help="step 3: K responses per instruction from one or more models")
    p.add_argument("--input", required=True, help="JSON/JSONL rows with instruction and input")
    p.add_argument("--lang", help="language of the rows (default: their `lang` field)")
    p.add_argument("--samples", type=int, default=1, help="responses per model (sampled)")
    p.add_argument(
        "--no-language-check",
        dest="check_language",
        action="store_false",
        help="keep responses that do not look written in the row's language (e.g. mostly code)",
    )
    llm_flags(p, several=True)
    p.set_defaults(func=_data_create)

    p = data.add_parser("rank", help="step 4: Okapi's two-turn ranking (translate to English, then rank)")
    p.add_argument("--input", required=True, help="rows with `responses`, as `data respond` writes them")
    p.add_argument("--lang", help="language of the rows (default: their `lang` field)")
    llm_flags(p)
    p.set_defaults(func=_data_create)

    p = data.add_parser("taco", help="translation-assisted chain-of-thought rows (TaCo) from SFT rows")
    p.add_argument("--input", required=True, help="SFT rows in the target language")
    p.add_argument("--lang", help="the target language (default: the rows' `lang` field)")
    p.add_argument("--english", help="the aligned English rows (same ids), which saves translation requests")
    p.add_argument(
        "--answer",
        choices=["row", "model"],
        default="row",
        help="row: the row's own output is the answer (as TaCo); model: the backend answers in English",
    )
    llm_flags(p)
    p.set_defaults(func=_data_create)

    p = data.add_parser("merge", help="join the shard files of one output (`--shard i/n` runs)")
    p.add_argument("file", help="the output file without the shard suffix, e.g. OUT/responses/vi.jsonl")
    p.add_argument("--shards", type=int, required=True, help="n, the number of shards")
    p.set_defaults(func=_data_merge)


def _eval_tasks_path(args: argparse.Namespace) -> None:
    from okapi_hf.eval import tasks_path

    print(tasks_path())


def _eval_run(args: argparse.Namespace) -> None:
    from okapi_hf.eval.harness import run_eval

    limit = int(args.limit) if args.limit is not None and args.limit >= 1 else args.limit
    run_eval(
        args.model,
        args.model_args,
        args.langs,
        args.benchmarks,
        args.output,
        limit=limit,
        batch_size=args.batch_size,
        device=args.device,
    )
    print(f"wrote results.json, results.md, results.png and model_index.yaml to {args.output}")


def _train(args: argparse.Namespace) -> None:
    from okapi_hf.train.pipeline import run_stage

    flags = {
        "lang": args.lang,
        "model_name_or_path": args.model,
        "dataset_path": args.data,
        "run": args.run,
        "output_dir": args.output_dir,
    }
    out = run_stage(args.stage, args.overrides, recipe=args.recipe, **flags)
    print(f"saved to {out}")


def _train_all(args: argparse.Namespace) -> None:
    from okapi_hf.train.pipeline import train_all

    recipes = {"sft": args.sft_recipe, "rm": args.rm_recipe, "rl": args.rl_recipe}
    outputs = train_all(
        args.overrides,
        recipe=args.recipe,
        stage_recipes={k: v for k, v in recipes.items() if v},
        lang=args.lang,
        model_name_or_path=args.model,
        dataset_path=args.data,
        run=args.run,
    )
    for stage, out in outputs.items():
        print(f"{stage}: saved to {out}")


def _quickstart(args: argparse.Namespace) -> None:
    from okapi_hf.quickstart import run_quickstart

    run_quickstart(args.out, lang=args.lang, model=args.model)


def _chat(args: argparse.Namespace) -> None:
    from okapi_hf.chat import pipeline, terminal_chat

    generation = {
        k: v
        for k, v in {
            "max_new_tokens": args.max_new_tokens,
            "temperature": args.temperature,
            "top_p": args.top_p,
            "top_k": args.top_k,
        }.items()
        if v is not None
    }
    if args.lang:
        get_language(args.lang)  # an unknown code fails before the model loads
    pipe = pipeline(
        args.model, gpu=args.gpu, template=args.template, max_input_tokens=args.max_input_tokens, **generation
    )
    terminal_chat(pipe, lang=args.lang, stream=not args.no_stream, seed=args.seed)


def _publish(args: argparse.Namespace) -> None:
    from okapi_hf.hub import publish

    result = publish(
        args.kind,
        args.path,
        args.repo_id,
        private=args.private,
        dry_run=args.dry_run,
        eval_results=args.eval_results,
        commit_message=args.commit_message,
    )
    print(result.summary())


def _count(text: str) -> int:
    """argparse type: a row count, zero or more."""
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a count of zero or more, got {text!r}")
    return int(text)


def _train_flags(p: argparse.ArgumentParser, default_recipe: str | None, model_help: str) -> None:
    p.add_argument("--lang", help="language code(s), a group, okapi or all")
    recipe_help = "a shipped recipe name or a YAML file"
    if default_recipe is None:
        recipe_help += " for every stage (default: each stage's own, e.g. tiny for a CPU smoke test)"
    p.add_argument("--recipe", default=default_recipe, help=recipe_help)
    p.add_argument("--model", help=model_help)
    p.add_argument(
        "--data", help="built dataset folder or Hub repo id (default: $OKAPI_HF_DATASET or okapi_hf)"
    )
    p.add_argument("--run", help="run name; stages chain under runs/<run>/ (default: okapi-<lang>)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="override one recipe value")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="okapi-hf", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("languages", help="list the language registry")
    p.add_argument("--group", choices=GROUPS, help="only this resource group")
    p.add_argument("--format", choices=["table", "codes", "json"], default="table")
    p.set_defaults(func=_languages)

    p = commands.add_parser("quickstart", help="run the whole pipeline on sample data and tiny models")
    p.add_argument("--out", default="runs/quickstart", help="folder for everything the quickstart writes")
    p.add_argument("--lang", default="vi", help="language to train and chat in")
    p.add_argument("--model", help="a real model (Hub id or folder) to start SFT from instead of a tiny one")
    p.set_defaults(func=_quickstart)

    training = commands.add_parser("train", help="train a stage from a recipe").add_subparsers(
        dest="stage", required=True
    )
    stages = {
        "sft": ("supervised fine-tuning on translated Alpaca (trl SFTTrainer)", "bloom-7b1", "a base model"),
        "rm": ("K-wise ranked reward model (RankedRewardTrainer)", "okapi", "runs/<run>/sft"),
        "rl": ("RLHF: okapi-hf PPO (default), or RLOO / GRPO through trl", "okapi", "runs/<run>/sft"),
        "dpo": ("listwise DPO on the K-wise rankings, no RL", "okapi", "runs/<run>/sft"),
    }
    for stage, (help_text, default_recipe, default_model) in stages.items():
        p = training.add_parser(
            stage,
            help=help_text,
            epilog="Any field of the stage's config, trl.ModelConfig or RunArguments can be set as key=value.",
        )
        _train_flags(p, default_recipe, f"checkpoint to start from (default: {default_model})")
        p.add_argument("--output-dir", help=f"write here instead of runs/<run>/{stage}")
        p.set_defaults(func=_train)
    p = training.add_parser(
        "all",
        help="sft, then rm, then rl, each finding the previous stage under runs/<run>/",
        epilog="key=value applies to every stage; prefix it (sft.max_steps=10) for one stage.",
    )
    _train_flags(p, None, "base model the SFT stage starts from")
    for stage in ("sft", "rm", "rl"):
        p.add_argument(f"--{stage}-recipe", help=f"recipe of the {stage} stage only")
    p.set_defaults(func=_train_all)

    evaluation = commands.add_parser("eval", help="Okapi benchmarks through lm-eval").add_subparsers(
        dest="eval_command", required=True
    )
    p = evaluation.add_parser("tasks-path", help="print the folder to pass to lm_eval --include_path")
    p.set_defaults(func=_eval_tasks_path)
    p = evaluation.add_parser(
        "run", help="run lm-eval in-process and write a table, a chart and a model-index"
    )
    p.add_argument("--model", default="hf", help="any lm-eval model backend (hf, vllm, ...)")
    p.add_argument("--model_args", required=True, help="lm-eval model args, e.g. pretrained=PATH")
    p.add_argument("--langs", required=True, help="comma-separated codes, a group, okapi or all")
    p.add_argument("--benchmarks", default="all", help="comma-separated: arc, hellaswag, mmlu (default: all)")
    p.add_argument("--output", default="eval_results", help="folder for the results")
    p.add_argument("--limit", type=float, help="documents per task (a fraction if < 1), for smoke tests")
    p.add_argument("--batch_size", default=1, help="lm-eval batch size (or 'auto')")
    p.add_argument("--device", help="e.g. cpu, cuda:0")
    p.set_defaults(func=_eval_run)

    p = commands.add_parser("chat", help="talk to a model in the terminal (multi-turn, streaming)")
    p.add_argument("model", help="a model folder, a LoRA adapter folder or a Hub id")
    p.add_argument("--lang", help="answer in this language (a system prompt; /lang xx changes it)")
    p.add_argument("--gpu", action="store_true", help="run on CUDA in bfloat16")
    p.add_argument(
        "--template",
        choices=["auto", "okapi", "chat"],
        default="auto",
        help="prompt format (auto: chat template if any)",
    )
    p.add_argument("--max-new-tokens", type=int, help="default 256 (Okapi)")
    p.add_argument("--temperature", type=float)
    p.add_argument("--top-p", type=float, help="default 0.75 (Okapi)")
    p.add_argument("--top-k", type=int, help="default 40 (Okapi)")
    p.add_argument("--max-input-tokens", type=int, help="longest prompt accepted (older turns are dropped)")
    p.add_argument("--seed", type=int, help="seed every reply, for repeatable answers")
    p.add_argument("--no-stream", action="store_true", help="print each reply whole")
    p.set_defaults(func=_chat)

    p = commands.add_parser("publish", help="push a dataset folder, a model folder or a Space to the Hub")
    p.add_argument("kind", choices=["dataset", "model", "space"])
    p.add_argument(
        "path", help="the folder to publish (a `data build` output, a trained stage, spaces/<name>)"
    )
    p.add_argument("--repo-id", required=True, help="ORG/NAME on the Hub")
    p.add_argument("--private", action="store_true", help="create the repository as private")
    p.add_argument("--dry-run", action="store_true", help="print which files would go where; upload nothing")
    p.add_argument(
        "--eval-results",
        help="(model) an `okapi-hf eval run` folder whose scores go into the card's model-index",
    )
    p.add_argument("--commit-message", help="message of the upload commit")
    p.set_defaults(func=_publish)

    data = commands.add_parser("data", help="download, build and inspect Okapi data").add_subparsers(
        dest="data_command", required=True
    )
    langs_help = "comma-separated codes, a group (high, medium, low, extra), okapi (the 26) or all"
    subsets_help = "comma-separated subsets: sft, ranking, rl (default: all)"

    p = data.add_parser("download", help="fetch the original release files (resumable, sha256 manifest)")
    p.add_argument("--langs", required=True, help=langs_help)
    p.add_argument("--subsets", help=subsets_help)
    p.add_argument("--out", default="okapi_raw", help="raw folder in the release layout")
    p.add_argument("--base-url", help="release base URL (default: $OKAPI_HF_BASE_URL or the original host)")
    p.add_argument("--retries", type=int, default=5, help="attempts per file before giving up")
    p.add_argument("--force", action="store_true", help="download again even if files are present")
    p.set_defaults(func=_data_download)

    p = data.add_parser("sample", help="write the bundled sample data in the release layout")
    p.add_argument("--out", default="okapi_sample_raw")
    p.add_argument("--langs", help="sample languages (default: all that have sample text)")
    p.add_argument("--n-sft", type=_count, default=36)
    p.add_argument("--n-ranking", type=_count, default=12)
    p.add_argument("--n-rl", type=_count, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jsonl", action="store_true", help="write JSON Lines instead of JSON arrays")
    p.set_defaults(func=_data_sample)

    p = data.add_parser("build", help="turn raw release files into a load_dataset folder")
    p.add_argument(
        "--raw-dir", required=True, help="folder in the release layout <subset-folder>/<lang>.json"
    )
    p.add_argument("--langs", required=True, help=langs_help)
    p.add_argument("--subsets", help=subsets_help)
    p.add_argument("--out", default="okapi_hf", help="dataset folder to write (and later publish)")
    p.add_argument(
        "--skip-invalid", action="store_true", help="leave out unusable rows (counted) instead of failing"
    )
    p.add_argument("--seed", type=int, default=42, help="seed of the train/validation split")
    p.set_defaults(func=_data_build)
    _add_creation_commands(data, langs_help)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # key=value overrides may come anywhere after `train STAGE`, between or after the flags
    if extra and (
        getattr(args, "overrides", None) is None or any(x.startswith("-") or "=" not in x for x in extra)
    ):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if extra:
        args.overrides = [*args.overrides, *extra]
    try:
        args.func(args)
    except OkapiError as e:
        print(f"okapi-hf: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("okapi-hf: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
