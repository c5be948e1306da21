"""`okapi-hf train ...` and `okapi-hf quickstart`: the training stages, alone, chained, or on sample data."""

from __future__ import annotations

import argparse
from pathlib import Path

from okapi_hf.cli.types import LazyDefault, add_deprecated, add_parser
from okapi_hf.errors import OkapiError

STAGE_HELP = {
    "sft": ("supervised fine-tuning on translated Alpaca (trl SFTTrainer)", "a base model"),
    "rm": ("K-wise ranked reward model (RankedRewardTrainer)", "runs/<run>/sft"),
    "rl": ("RLHF: okapi-hf PPO (default), or RLOO / GRPO through trl", "runs/<run>/sft"),
    "dpo": ("listwise DPO on the K-wise rankings, no RL", "runs/<run>/sft"),
}
VERBOSE_HELP = "show the full training log on the terminal (it always goes to train.log next to the outputs)"


def _train(args: argparse.Namespace) -> None:
    from okapi_hf.train.pipeline import run_stage

    flags = {
        "lang": args.lang,
        "model_name_or_path": args.model,
        "dataset_path": args.data,
        "run": args.run,
        "output_dir": args.out,
    }
    out = run_stage(args.stage, args.overrides, recipe=args.recipe, verbose=args.verbose, **flags)
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
        verbose=args.verbose,
    )
    for stage, out in outputs.items():
        print(f"{stage}: saved to {out}")


def _quickstart(args: argparse.Namespace) -> None:
    from okapi_hf.fsutil import locked
    from okapi_hf.quickstart import run_quickstart

    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise OkapiError(f"--out {args.out} is a file; give a folder for everything the quickstart writes")
    with locked(args.out, what=f"the quickstart folder {args.out}"):
        run_quickstart(args.out, lang=args.lang, model=args.model, tiny=args.tiny, verbose=args.verbose)


def _default_recipes() -> dict[str, str]:
    """Each stage's recipe when --recipe is not given (the training package's table)."""
    from okapi_hf.train.recipes import DEFAULT_RECIPES

    return dict(DEFAULT_RECIPES)


def _train_flags(p: argparse.ArgumentParser, stage: str | None, model_help: str) -> None:
    p.add_argument("--lang", help="language code(s), a group, okapi or all (default: `lang` in the recipe)")
    recipe_help = "a shipped recipe name or a YAML file"
    if stage is None:
        recipe_help += " for every stage (default: each stage's own, e.g. tiny for a CPU smoke test)"
        p.add_argument("--recipe", help=recipe_help)
    else:  # the training package is slow to import: its table is read when needed (help, a run)
        p.add_argument(
            "--recipe", action=LazyDefault, load=lambda: _default_recipes()[stage], help=recipe_help
        )
    p.add_argument("--model", help=model_help)
    p.add_argument(
        "--data", help="built dataset folder or Hub repo id (default: $OKAPI_HF_DATASET or okapi_hf)"
    )
    p.add_argument("--run", help="run name; stages chain under runs/<run>/ (default: okapi-<lang>)")
    p.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)
    p.add_argument("overrides", nargs="*", metavar="key=value", help="override one recipe value")


def add_train_commands(commands: argparse._SubParsersAction) -> None:
    """`train sft|rm|rl|dpo|all`."""
    training = add_parser(commands, "train", help="train a stage from a recipe").add_subparsers(
        dest="stage", required=True, metavar="STAGE", help="which stage to train"
    )
    for stage, (help_text, default_model) in STAGE_HELP.items():
        p = add_parser(
            training,
            stage,
            help=help_text,
            epilog="Any field of the stage's config, trl.ModelConfig or RunArguments can be set as key=value.",
        )
        _train_flags(p, stage, f"checkpoint to start from (default: {default_model})")
        p.add_argument(
            "--out",
            dest="out",
            help=f"write here instead of runs/<run>/{stage} (--output-dir, the old spelling, works for "
            "one more release)",
        )
        add_deprecated(p, "--output-dir", "--out")
        p.set_defaults(func=_train)
    p = add_parser(
        training,
        "all",
        help="sft, then rm, then rl, each finding the previous stage under runs/<run>/",
        epilog="key=value applies to every stage; prefix it (sft.max_steps=10) for one stage.",
    )
    _train_flags(p, None, "base model the SFT stage starts from (default: the sft recipe's)")
    for stage in ("sft", "rm", "rl"):
        p.add_argument(f"--{stage}-recipe", help=f"recipe of the {stage} stage only (default: --recipe)")
    p.set_defaults(func=_train_all)


def add_quickstart_command(commands: argparse._SubParsersAction) -> None:
    """`quickstart`: the whole pipeline on sample data."""
    p = add_parser(
        commands,
        "quickstart",
        help="the whole pipeline on sample data and a real model (Gemma 3 270M): about 10 minutes on a CPU",
    )
    p.add_argument("--out", default="runs/quickstart", help="folder for everything the quickstart writes")
    p.add_argument("--lang", default="vi", help="language to train and chat in")
    p.add_argument(
        "--model",
        help="the base model: a preset, a .gguf file, a folder or a Hub id (default: the gemma-3-270m preset)",
    )
    switches = {
        "--tiny": "tiny random models instead: a one-minute smoke test, nothing learned",
        "--verbose": "show every stage's full log on the terminal (it always goes to OUT/quickstart.log)",
    }
    for flag, text in switches.items():
        p.add_argument(flag, action="store_true", help=text)
    p.set_defaults(func=_quickstart)
