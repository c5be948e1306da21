"""Recipes: one YAML per stage and setting, overridden by flags and ``key=value``, parsed into dataclasses.

Every stage parses the same three things (run arguments, the trainer's config, ``trl.ModelConfig``),
so a run is described by one file, and the resolved values are written next to its outputs.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import functools
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from trl import ModelConfig, TrlParser

from okapi_hf.errors import ConfigError, OkapiError
from okapi_hf.fsutil import atomic_write_text, fsync_dir, fsync_tree, locked, remove_tree
from okapi_hf.train.stage_log import stage_log

logger = logging.getLogger(__name__)
RECIPES_DIR = Path(__file__).resolve().parents[1] / "recipes"


@dataclass
class RunArguments:
    """Which language and data a stage trains on, and where the run lives."""

    lang: str = field(default="", metadata={"help": "Language code(s), a group, `okapi` or `all`."})
    dataset_path: str | None = field(
        default=None,
        metadata={
            "help": "A folder from `okapi-hf data build` or a Hub repo id (default: $OKAPI_HF_DATASET or okapi_hf)."
        },
    )
    run: str | None = field(
        default=None, metadata={"help": "Run name; stages chain under runs/<run>/ (default: okapi-<lang>)."}
    )
    runs_dir: str = field(default="runs", metadata={"help": "Folder holding all runs."})
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Use only the first N training rows."}
    )
    max_eval_samples: int | None = field(
        default=None, metadata={"help": "Use only the first N validation rows."}
    )
    recipe: str = field(
        default="", metadata={"help": "The recipe these values came from (set by `okapi-hf train`)."}
    )
    tuned_for: str = field(
        default="",
        metadata={
            "help": "What the recipe was made for (model size, hardware, time); shown in summaries and cards."
        },
    )
    max_model_parameters: int | None = field(
        default=None,
        metadata={
            "help": "Refuse a model with more parameters than this: the tiny recipes' settings (full fine-tuning "
            "at lr 1e-3) wreck a real model. null: any size."
        },
    )
    merge_lora: bool = field(
        default=False,
        metadata={
            "help": "With use_peft: save the base model with the LoRA adapter merged in, instead of the adapter "
            "alone (the default; its adapter_config.json names the base model)."
        },
    )

    def run_dir(self) -> Path:
        name = self.run or "okapi-" + re.sub(r"[^\w.-]+", "+", self.lang)
        return Path(self.runs_dir) / name


# The recipe of each stage when none is named: the Okapi paper's setting. `--recipe okapi` names it at
# every stage; Okapi's main SFT model was BLOOM-7B1, so the sft stage's is `bloom-7b1`.
DEFAULT_RECIPES = {"sft": "bloom-7b1", "rm": "okapi", "rl": "okapi", "dpo": "okapi"}


def recipe_file(stage: str, recipe: str) -> Path:
    """A shipped recipe by name (``recipes/<stage>/<name>.yaml``) or a path to a YAML file."""
    path = Path(recipe)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise OkapiError(f"recipe file {path} does not exist")
        return path
    if recipe == "okapi":
        recipe = DEFAULT_RECIPES.get(stage, recipe)
    shipped = RECIPES_DIR / stage / f"{recipe}.yaml"
    if not shipped.is_file():
        names = sorted(p.stem for p in (RECIPES_DIR / stage).glob("*.yaml"))
        raise OkapiError(
            f"no {stage} recipe named {recipe!r}; shipped: {', '.join(names)} (or pass a .yaml path)"
        )
    return shipped


# transformers 5 renamed these and warns at the old names; an override by an old name sets the new one,
# which the recipes set (and which would otherwise win over the old name silently)
RENAMED_KEYS = {
    "gradient_checkpointing": "activation_checkpointing",
    "gradient_checkpointing_kwargs": "activation_checkpointing_kwargs",
}


def choice_field(default: str | None, choices: tuple[str, ...], help: str) -> Any:
    """A config field limited to ``choices``: the command line refuses others, and so do configs'
    ``__post_init__`` checks, which read the same ``choices``."""
    return field(default=default, metadata={"help": help, "choices": list(choices)})


def check_choices(config: Any, names: tuple[str, ...] | None = None) -> None:
    """Refuse a value outside its field's ``choices`` (of ``names``, default all), as the command line does
    for recipes: a config made in Python never meets that check. None stays allowed where it is the default.
    """
    for f in dataclasses.fields(config):
        allowed = f.metadata.get("choices")
        if not allowed or (names is not None and f.name not in names):
            continue
        value = getattr(config, f.name)
        if value not in allowed and not (value is None and f.default is None):
            raise ConfigError(f"{f.name} must be one of {allowed}, got {value!r}")


def parse_stage_args(
    stage: str, config_class: type, recipe: str, overrides: list[str], **flags: Any
) -> tuple[RunArguments, Any, ModelConfig]:
    """Recipe file, then ``key=value`` overrides, then explicit flags (``lang=...``, ``model_name_or_path=...``)."""
    path = recipe_file(stage, recipe)
    _check_yaml(path)
    parser = _Parser((RunArguments, config_class, ModelConfig))
    parser.context = f"recipe {path}" + (f" with {' '.join(overrides)}" if overrides else "")
    lists = {action.dest for action in parser._actions if action.nargs in ("+", "*")}
    argv = ["--config", str(path)]
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise OkapiError(f"override {item!r} is not of the form key=value")
        key = key.removeprefix("--")
        key = RENAMED_KEYS.get(key, key)
        argv += [f"--{key}", *(value.split(",") if key in lists else [value])]  # q_proj,v_proj -> a list
    for key, value in flags.items():
        if value is not None:
            argv += [f"--{key}", str(value)]
    try:
        run_args, config, model_args = parser.parse_args_and_config(argv)
    except ValueError as e:  # unknown keys, or a value a config's __post_init__ rejects
        if "use_cpu" in str(e):  # transformers' advice would not help: the recipe is a GPU one
            raise ConfigError(
                f"{parser.context}: this recipe trains in bf16 on a GPU and this machine has none; use "
                "--recipe small (a real model on a CPU) or tiny, or pass bf16=false"
            ) from None
        raise OkapiError(f"{parser.context}: {e}") from e
    if not run_args.lang:
        raise OkapiError("no language given: pass --lang (or set `lang` in the recipe)")
    run_args.recipe = str(recipe)
    check_values(parser.context, run_args, config, model_args)
    return run_args, config, model_args


def _check_yaml(path: Path) -> None:
    """A recipe that is not a YAML mapping, said with its line, before trl's parser trips on it."""
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise ConfigError(f"recipe {path} is not UTF-8 text (byte {e.start})") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"recipe {path}{where}: not valid YAML ({problem})") from None
    if values is not None and not isinstance(values, dict):
        raise ConfigError(f"recipe {path}: expected a mapping of key: value, got a {type(values).__name__}")


# Ranges of numeric options, by name across every stage's configs; None (unset) is always allowed.
POSITIVE = {
    "learning_rate", "num_train_epochs", "per_device_train_batch_size", "per_device_eval_batch_size",
    "gradient_accumulation_steps", "lora_r", "lora_alpha", "max_length", "max_prompt_length",
    "max_new_tokens", "max_completion_length", "num_generations", "num_rollouts", "chunk_size",
    "ppo_epochs", "kl_horizon", "temperature", "max_train_samples", "max_eval_samples",
    "max_model_parameters", "logging_steps", "save_steps", "eval_steps", "precompute_ref_batch_size",
    "dataset_num_proc", "steps_per_generation", "num_iterations",
}  # fmt: skip
NON_NEGATIVE = {
    "warmup_steps", "weight_decay", "max_grad_norm", "seed", "init_kl_coef", "target_kl", "cliprange",
    "cliprange_value", "vf_coef", "reward_clip", "top_k", "num_unfrozen_layers", "language_reward_weight",
    "dataloader_num_workers", "eval_delay", "center_rewards_coefficient", "epsilon", "margin", "beta",
    "save_total_limit",
}  # fmt: skip
UNIT = {"lora_dropout", "gamma", "lam", "top_p", "adam_beta1", "adam_beta2", "label_smoothing_factor"}


def check_values(context: str, *configs: Any) -> None:
    """Refuse out-of-range numbers by name before anything loads (a negative learning rate, a batch of 0).

    Without this they surface minutes later as a traceback from torch or peft, or train nothing and
    exit 0 (``num_train_epochs=-1``).
    """
    for config in configs:
        for f in dataclasses.fields(config):
            value = getattr(config, f.name, None)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            expected = _expected_range(f.name, value)
            if expected:
                raise ConfigError(f"{f.name}={value}: expected {expected} ({context})")


def _expected_range(name: str, value: float) -> str | None:
    """What ``name`` must be, if ``value`` is not it."""
    import math

    if not math.isfinite(value):
        return "a finite number"
    if name == "max_steps":
        return None if value == -1 or value > 0 else "a number of steps > 0 (or -1: run by epochs)"
    if name in POSITIVE and value <= 0:
        return "a number > 0"
    if name in NON_NEGATIVE and value < 0:
        return "a number >= 0"
    if name in UNIT and not 0 <= value <= 1:
        return "a number between 0 and 1"
    return None


class _Parser(TrlParser):
    """Argument errors as one-line OkapiErrors instead of argparse's usage dump of every option."""

    context = "recipe"

    def error(self, message: str):
        raise OkapiError(f"{self.context}: {message}")


STAGE_NAMES = {"sft": "SFT model", "rm": "reward model", "rl": "RLHF policy", "dpo": "listwise DPO policy"}


def previous_stage(run_args: RunArguments, stage: str) -> str:
    """The output folder of an earlier stage of this run, or an error naming the command that makes it."""
    folder = run_args.run_dir() / stage
    if (folder / "config.json").is_file() or (folder / "adapter_config.json").is_file():
        return str(folder)
    command = f"okapi-hf train {stage} --lang {run_args.lang}"
    if run_args.run:
        command += f" --run {run_args.run}"
    if run_args.runs_dir != "runs":
        command += f" runs_dir={run_args.runs_dir}"
    raise OkapiError(
        f"no {STAGE_NAMES.get(stage, stage)} at {folder}: run `{command}` first, or pass --model "
        "(or the stage's path option) explicitly"
    )


def output_folder(run_args: RunArguments, config: Any, stage: str) -> Path:
    """``runs/<run>/<stage>`` unless the config names another ``output_dir``; set on the config too.

    Inside a :func:`training_stage` it also takes the folder's lock and opens its ``train.log``.
    """
    if config.output_dir in (None, "trainer_output"):
        config.output_dir = str(run_args.run_dir() / stage)
    out = Path(config.output_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"output_dir {out} is a file; give a folder (the stage writes its model there)")
    current = _STAGE.get(None)
    if current is not None:
        stack, verbose = current
        if os.environ.get("RANK", "0") == "0":  # one lock per run, held by the main process
            stack.enter_context(locked(out, what=f"the {stage} output {out}"))
        stack.enter_context(stage_log(out, stage, verbose))
    return out


_STAGE: contextvars.ContextVar[tuple[contextlib.ExitStack, bool]] = contextvars.ContextVar("okapi_hf_stage")


def training_stage(train: Callable[..., Path]) -> Callable[..., Path]:
    """Hold what :func:`output_folder` takes (the folder's lock, its log file) until the stage returns.

    Two runs training into one folder would mix their checkpoints and weights; the second is refused
    with the first one's pid. The decorated function takes ``verbose``: True shows the whole log stream
    (every logging step's dict, INFO logging) on the terminal as well as in ``train.log``.
    """

    @functools.wraps(train)
    def wrapper(*args: Any, verbose: bool = False, **kwargs: Any) -> Path:
        with contextlib.ExitStack() as stack:
            token = _STAGE.set((stack, verbose))
            try:
                return train(*args, **kwargs)
            finally:
                _STAGE.reset(token)

    return wrapper


def start_model(model_args: ModelConfig, run_args: RunArguments) -> str:
    """``--model`` if given, else this run's SFT output (or an error naming `okapi-hf train sft`)."""
    return check_model_path(model_args.model_name_or_path or previous_stage(run_args, "sft"))


def check_model_path(path: str) -> str:
    """The loadable form of a model argument (see ``okapi_hf.models.resolve_model``).

    Presets and ``.gguf`` files become their converted folder, which is what later stages and cards
    name; a local path that does not exist is an error; anything else is a Hub id.
    """
    from okapi_hf.models import resolve_model

    return resolve_model(path)


def check_recipe_fits(run_args: RunArguments, model: Any) -> None:
    """Refuse a model bigger than the recipe was made for, naming a recipe that fits.

    ``model`` is a path (counted from its safetensors headers, before any weight loads) or a loaded
    model (a Hub id, counted once downloaded).
    """
    from okapi_hf.models import parameter_count

    limit = run_args.max_model_parameters
    if limit is None:
        return
    if isinstance(model, (str, Path)):
        name, n = str(model), parameter_count(model)
    else:
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        name, n = base.config._name_or_path, sum(p.numel() for p in base.parameters())
    if n is not None and n > limit:
        made_for = run_args.tuned_for or f"models of at most {limit:,} parameters"
        raise ConfigError(
            f"recipe {run_args.recipe} is made for {made_for}; {name} has {n / 1e6:.0f}M parameters: use "
            "--recipe small (a real model of 100M-1B parameters, LoRA) or a recipe made for it, or pass "
            "max_model_parameters=null to force it"
        )


def trainer_model(path: str, auto_class: type, config: Any, **kwargs: Any) -> tuple[Any, Any]:
    """(model, tokenizer) for a trl trainer: ``(path, None)`` lets trl load a plain model itself, with
    ``config.model_init_kwargs``; a LoRA adapter folder (an earlier LoRA stage) is loaded here with its
    chain of bases and merged, since trl cannot load one."""
    from okapi_hf.models import is_adapter, load_model, load_tokenizer

    if not is_adapter(path):
        return path, None
    init = dict(config.model_init_kwargs or {})
    config.model_init_kwargs = None  # used here; trl would warn that it ignores them
    return load_model(path, auto_class, **init, **kwargs), load_tokenizer(path)


def resolve_resume(value: str | bool | None, out: str | Path) -> str | bool | None:
    """``resume_from_checkpoint=true`` (as key=value can say it) means this run's newest checkpoint."""
    if value not in ("true", "True", "last", True):
        if value and not Path(value).is_dir():
            raise ConfigError(f"resume_from_checkpoint={value}: no such checkpoint folder")
        return value
    folders = sorted(Path(out).glob("checkpoint-*"), key=_step, reverse=True) if Path(out).is_dir() else []
    for folder in folders:
        if _complete(folder):
            if folder != folders[0]:
                logger.warning(
                    "resuming from %s: the newer %s is incomplete (a killed save)", folder, folders[0]
                )
            return str(folder)
    if folders:
        raise ConfigError(
            f"resume_from_checkpoint={value}: every checkpoint in {out} is incomplete (killed while saving); "
            "remove them or start without resume_from_checkpoint"
        )
    raise OkapiError(f"resume_from_checkpoint={value}: no checkpoint-* folder in {out}")


def _step(folder: Path) -> int:
    match = re.fullmatch(r"checkpoint-(\d+)", folder.name)
    return int(match.group(1)) if match else -1


def _complete(folder: Path) -> bool:
    """A checkpoint whose state file, written last by transformers' Trainer and by our PPO, is whole."""
    import json

    for name in ("trainer_state.json", "ppo_state.json"):
        try:
            json.loads((folder / name).read_text(encoding="utf-8"))
            return True
        except (OSError, ValueError):
            continue
    return False


def head(dataset: Any, n: int | None) -> Any:
    """The first ``n`` rows (all when ``n`` is None)."""
    return dataset if n is None else dataset.select(range(min(n, len(dataset))))


def model_init_kwargs(model_args: ModelConfig, existing: dict | None = None) -> dict:
    """``from_pretrained`` keyword arguments from trl's ModelConfig (revision, attention, dtype)."""
    init = {"revision": model_args.model_revision, "attn_implementation": model_args.attn_implementation}
    if model_args.dtype not in (None, "auto"):
        init["dtype"] = model_args.dtype
    return {**(existing or {}), **{k: v for k, v in init.items() if v}}


def load_splits(run_args: RunArguments, langs: list[str], subset: str, config: Any = None) -> tuple[Any, Any]:
    """The train split (whole: a stage may mix before taking ``max_train_samples``) and the validation head.

    Without a validation split, evaluation is turned off on ``config`` (with a warning).
    """
    from okapi_hf.data.load import load_dataset

    data = load_dataset(langs, subset, run_args.dataset_path)
    if "train" not in data:
        raise OkapiError(
            f"the {subset} data of {', '.join(langs)} has no train split (splits: {', '.join(data)})"
        )
    if "validation" in data:
        return data["train"], head(data["validation"], run_args.max_eval_samples)
    if config is not None and config.eval_strategy != "no":
        logger.warning("no validation split in %s: evaluation is turned off", run_args.dataset_path)
        config.eval_strategy = "no"
    return data["train"], None


def save_trained(trainer: Any, out: str | Path, use_peft: bool, *, base: str, merge: bool = False) -> None:
    """Weights (safetensors) and tokenizer, saved so that a kill or a full disk never leaves half a model.

    A LoRA stage saves its adapter (``adapter_model.safetensors``), whose ``adapter_config.json`` names
    ``base``, the model the stage started from (itself possibly an adapter): later stages, chat and
    evaluation load the chain with ``okapi_hf.models.load_model``. ``merge`` saves the merged model
    instead, which loads without peft. Everything is written to ``out/.saving`` first and moved in file
    by file, the config (what marks a folder as a model) last.
    """
    out = Path(out)
    staging = out / ".saving"
    if trainer.is_world_process_zero():
        remove_tree(staging)  # left by a killed save
    trainer.accelerator.wait_for_everyone()
    if not use_peft:
        trainer.save_model(str(staging))
    elif trainer.is_world_process_zero():
        model = trainer.accelerator.unwrap_model(trainer.model)
        if merge:
            model.merge_and_unload().save_pretrained(staging)
        else:
            model.save_pretrained(staging)
            _set_adapter_base(staging, base)
        trainer.processing_class.save_pretrained(staging)
    trainer.accelerator.wait_for_everyone()
    if trainer.is_world_process_zero():
        (staging / "training_args.bin").unlink(missing_ok=True)  # a pickle; run_config.yaml says the same
        _move_files_in(staging, out)
    trainer.accelerator.wait_for_everyone()


MARKERS = ("config.json", "adapter_config.json")  # what later stages look for: moved in last


def _move_files_in(staging: Path, out: Path) -> None:
    """Rename every saved file over its old copy in ``out`` (each rename atomic), markers last."""
    fsync_tree(staging)
    files = sorted(staging.rglob("*"), key=lambda f: (f.name in MARKERS, str(f)))
    for file in files:
        if file.is_file():
            target = out / file.relative_to(staging)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(file, target)
    fsync_dir(out)
    remove_tree(staging)


def _set_adapter_base(out: Path, base: str) -> None:
    """Name the start model in ``adapter_config.json`` (peft writes the bottom model of a merged chain)."""
    import json

    path = out / "adapter_config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    config["base_model_name_or_path"] = str(Path(base).resolve()) if Path(base).exists() else base
    atomic_write_text(path, json.dumps(config, indent=2, sort_keys=True) + "\n")


def write_run_config(out_dir: str | Path, *configs: Any) -> Path:
    """The resolved values of a run, one YAML section per dataclass, so it can be read and rerun."""
    sections = {}
    for config in configs:
        values = config.to_dict() if hasattr(config, "to_dict") else dataclasses.asdict(config)
        sections[type(config).__name__] = values  # TrainingArguments.to_dict already masks *_token values
    path = Path(out_dir) / "run_config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(path, yaml.safe_dump(sections, sort_keys=False, allow_unicode=True))
