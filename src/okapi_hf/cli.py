"""``okapi-hf``: one command line over every stage; each subcommand is a thin call into the API."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from okapi_hf.cli_data import _count as count
from okapi_hf.cli_data import _positive_int as positive_int
from okapi_hf.cli_data import _temperature as temperature
from okapi_hf.cli_data import _top_p as top_p
from okapi_hf.cli_data import add_data_commands
from okapi_hf.cli_eval import add_eval_commands
from okapi_hf.errors import OkapiError
from okapi_hf.fsutil import is_disk_full
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


def _models_list(args: argparse.Namespace) -> None:
    from okapi_hf.models import cache_dir, list_presets

    print(f"{'preset':<22} {'installed':<9} prepared folder / how to install")
    for row in list_presets():
        where = str(row.folder) if row.folder else "not prepared yet" if row.installed else row.preset.install
        print(f"{row.preset.name:<22} {'yes' if row.installed else 'no':<9} {where}")
        print(f"{'':<32} {row.preset.description}; license: {row.preset.license}")
    print(f"cache: {cache_dir()} (set OKAPI_HF_CACHE to move it)")


def _models_prepare(args: argparse.Namespace) -> None:
    from okapi_hf.models import PRESETS, resolve_model

    if args.model not in PRESETS and not args.model.endswith(".gguf"):
        raise OkapiError(
            f"{args.model!r} is neither a preset ({', '.join(PRESETS)}) nor a .gguf file: only those need "
            "preparing (a folder or a Hub id is used as it is)"
        )
    print(resolve_model(args.model))


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
    from okapi_hf.fsutil import locked
    from okapi_hf.quickstart import run_quickstart

    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise OkapiError(f"--out {args.out} is a file; give a folder for everything the quickstart writes")
    with locked(args.out, what=f"the quickstart folder {args.out}"):
        run_quickstart(args.out, lang=args.lang, model=args.model, tiny=args.tiny)


def _chat(args: argparse.Namespace) -> None:
    from okapi_hf.chat import check_chat_options, pipeline, terminal_chat

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
    check_chat_options({"seed": args.seed})
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
    if result.dry_run and result.plan.refused:  # scripts can check a dry run before the real one
        raise OkapiError(
            f"{len(result.plan.refused)} file(s) refused (listed above): a real publish uploads nothing"
        )


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

    models = commands.add_parser(
        "models", help="model presets with real weights that install from the package index"
    ).add_subparsers(dest="models_command", required=True)
    p = models.add_parser("list", help="the presets, whether they are installed and where they are prepared")
    p.set_defaults(func=_models_list)
    p = models.add_parser(
        "prepare",
        help="convert a preset or a .gguf file into a safetensors folder (once) and print the folder",
    )
    p.add_argument("model", help="a preset (gemma-3-270m, smollm2-135m-instruct) or a .gguf file")
    p.set_defaults(func=_models_prepare)

    p = commands.add_parser(
        "quickstart",
        help="the whole pipeline on sample data and a real model (Gemma 3 270M): about 10 minutes on a CPU",
    )
    p.add_argument("--out", default="runs/quickstart", help="folder for everything the quickstart writes")
    p.add_argument("--lang", default="vi", help="language to train and chat in")
    p.add_argument(
        "--model",
        help="the base model: a preset, a .gguf file, a folder or a Hub id (default: the gemma-3-270m preset)",
    )
    p.add_argument(
        "--tiny",
        action="store_true",
        help="tiny random models instead: a one-minute smoke test, nothing learned",
    )
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

    add_eval_commands(commands)

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
    p.add_argument("--max-new-tokens", type=positive_int, help="default 256 (Okapi)")
    p.add_argument(
        "--temperature",
        type=temperature,
        help="default: the model's generation config (1.0 without one); 0 decodes greedily",
    )
    p.add_argument("--top-p", type=top_p, help="default 0.75 (Okapi)")
    p.add_argument("--top-k", type=count, help="default 40 (Okapi); 0 turns it off")
    p.add_argument(
        "--max-input-tokens", type=positive_int, help="longest prompt accepted (older turns are dropped)"
    )
    p.add_argument("--seed", type=count, help="seed every reply, for repeatable answers")
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

    add_data_commands(commands)
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
    except KeyboardInterrupt as e:  # a step that kept its work says what it kept
        print(f"okapi-hf: {e or 'interrupted'}", file=sys.stderr)
        return 130
    except Exception as e:
        if os.environ.get("OKAPI_HF_TRACEBACK") == "1":
            raise
        print(f"okapi-hf: error: {error_line(e)}", file=sys.stderr)
        return 1
    return 0


def _disk_full(e: BaseException | None) -> BaseException | None:
    """The ENOSPC in an exception or its causes (pyarrow and sqlite say it only in their text)."""
    seen = 0
    while e is not None and seen < 8:
        if is_disk_full(e) or any(
            s in str(e) for s in ("No space left on device", "database or disk is full")
        ):
            return e
        e, seen = e.__cause__ or e.__context__, seen + 1
    return None


def error_line(e: BaseException) -> str:
    """One line for any failure: ours say what to change; the file system's name the path and the cause.

    Anything else is a bug in okapi-hf, said as such (``OKAPI_HF_TRACEBACK=1`` shows the traceback).
    """
    if isinstance(e, OkapiError):
        return " ".join(str(e).split("\n")).strip()
    full = _disk_full(e)
    if full is not None:
        where = f" writing {full.filename}" if getattr(full, "filename", None) else ""
        return f"the disk is full{where}; free some space and run the command again (finished work is kept)"
    if isinstance(e, OSError) and e.strerror:
        where = f": {e.filename}" if e.filename else ""
        return f"{e.strerror}{where}"
    first = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return (
        f"unexpected {type(e).__name__}: {first} (this is a bug in okapi-hf: please report it with the "
        "command; OKAPI_HF_TRACEBACK=1 shows the traceback)"
    )


if __name__ == "__main__":
    sys.exit(main())
