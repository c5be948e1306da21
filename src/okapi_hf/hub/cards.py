"""Hub cards rendered from the templates in ``hub_cards/`` with huggingface_hub's card classes.

Run as ``python -m okapi_hf.hub.cards [ROOT]`` (or the old ``python -m okapi_hf.cards``) to regenerate
the Space READMEs under ``ROOT/spaces/`` from their templates.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from datasets import DatasetInfo, SplitDict, SplitInfo
from datasets.info import DatasetInfosDict
from huggingface_hub import (
    DatasetCard,
    DatasetCardData,
    EvalResult,
    ModelCard,
    ModelCardData,
    RepoCard,
    SpaceCard,
    SpaceCardData,
)
from huggingface_hub.repocard_data import model_index_to_eval_results

from okapi_hf.data.schema import SUBSETS
from okapi_hf.errors import OkapiError
from okapi_hf.fsutil import atomic_write_text
from okapi_hf.languages import get_language

OKAPI_CITATION = """@article{lai2023okapi,
  title   = {Okapi: Instruction-tuned Large Language Models in Multiple Languages with Reinforcement Learning from Human Feedback},
  author  = {Lai, Viet Dac and Nguyen, Chien Van and Ngo, Nghia Trung and Nguyen, Thuat and Dernoncourt, Franck and Rossi, Ryan A. and Nguyen, Thien Huu},
  journal = {arXiv preprint arXiv:2307.16039},
  year    = {2023}
}"""


def card_template(name: str) -> Path:
    """A template from ``hub_cards/``: inside the installed wheel, else in the source tree."""
    package = Path(__file__).resolve().parents[1]  # okapi_hf/, where the wheel puts hub_cards/
    for folder in (package / "hub_cards", package.parents[1] / "hub_cards"):
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(f"card template {name!r} not found in {package / 'hub_cards'} or the source tree")


def _size_category(n: int) -> str:
    for limit, label in (
        (1_000, "n<1K"),
        (10_000, "1K<n<10K"),
        (100_000, "10K<n<100K"),
        (1_000_000, "100K<n<1M"),
    ):
        if n < limit:
            return label
    return "1M<n<10M"


def render_dataset_card(build_info: dict[str, dict[str, Any]], repo_id: str = "okapi_hf") -> str:
    """The dataset card for a built folder, from its ``okapi_build.json`` records."""
    configs, infos, rows = [], DatasetInfosDict(), []
    for config, rec in build_info.items():
        subset = SUBSETS[rec["subset"]]
        splits = rec["splits"]
        configs.append(
            {
                "config_name": config,
                "data_files": [
                    {"split": s, "path": f"data/{rec['lang']}/{subset.name}/{s}-*.parquet"} for s in splits
                ],
            }
        )
        infos[config] = DatasetInfo(
            features=subset.features,
            splits=SplitDict({s: SplitInfo(name=s, **v) for s, v in splits.items()}),
        )
        rows.append(
            {
                "config": config,
                "lang": rec["lang"],
                "language": get_language(rec["lang"]).name,
                "group": get_language(rec["lang"]).group,
                "subset": subset.name,
                "train": splits.get("train", {}).get("num_examples", 0),
                "validation": splits.get("validation", {}).get("num_examples", 0),
                **rec,
            }
        )
    langs = sorted({rec["lang"] for rec in build_info.values()})
    # the card's code example uses a language that has the most configs, so every line runs
    example_lang = max(langs, key=lambda lang: sum(rec["lang"] == lang for rec in build_info.values()))
    examples = [r for r in rows if r["lang"] == example_lang]
    total = sum(r["train"] + r["validation"] for r in rows)
    card_data = DatasetCardData(
        language=langs,
        license="cc-by-nc-4.0",
        multilinguality="multilingual" if len(langs) > 1 else "monolingual",
        size_categories=_size_category(total),
        task_categories=["text-generation"],
        pretty_name="Okapi multilingual instruction, ranking and RL data",
        tags=["okapi", "rlhf", "instruction-tuning", "multilingual"],
        configs=configs,
    )
    infos.to_dataset_card_data(card_data)
    card = DatasetCard.from_template(
        card_data,
        template_path=str(card_template("dataset_card.md")),
        repo_id=repo_id,
        rows=rows,
        subsets=list(SUBSETS.values()),
        examples=examples,
        citation=OKAPI_CITATION,
    )
    return str(card)


def render_model_card(
    *,
    title: str,
    description: str,
    stage: str,
    init_from: str,
    langs: list[str],
    data: str,
    usage: str,
    hyperparameters: dict[str, Any],
    metrics: dict[str, float] | None = None,
    data_report: str | None = None,
    tags: list[str] | None = None,
    pipeline_tag: str | None = None,
    eval_results: list[EvalResult] | None = None,
    stages: list[dict[str, Any]] | None = None,
    model_dir: str | Path | None = None,
) -> str:
    """The model card every training stage writes next to its weights (never with secrets in it).

    ``init_from`` becomes the card's ``base_model`` when it names a Hub model rather than a local folder.
    ``stages`` (from :func:`stage_history`) adds a "Training stages" table, so an RLHF policy's card
    shows the SFT and reward-model stages it came from. ``model_dir`` (the folder the card describes)
    lets the card say whether it holds a LoRA adapter and what its base was converted from.
    """
    base_model = None if Path(init_from).exists() or init_from.startswith((".", "/")) else init_from
    card_data = ModelCardData(
        language=langs,
        license="cc-by-nc-4.0",
        library_name="transformers",
        base_model=base_model,
        tags=["okapi-hf", "okapi", "multilingual", *(tags or [])],
        pipeline_tag=pipeline_tag,
        model_name=title if eval_results else None,
        eval_results=eval_results or None,
    )
    card = ModelCard.from_template(
        card_data,
        template_path=str(card_template("model_card.md")),
        title=title,
        description=description,
        stage=stage,
        init_from=init_from,
        languages=", ".join(f"{get_language(code).name} (`{code}`)" for code in langs),
        data=data,
        usage=usage,
        metrics=metrics or {},
        data_report=data_report,
        hyperparameters=hyperparameters,
        stages=stages or [],
        weights=weights_note(model_dir, init_from) if model_dir is not None else None,
        citation=OKAPI_CITATION,
    )
    return str(card)


def weights_note(model_dir: str | Path, init_from: str) -> str | None:
    """What the folder holds, when it is not a plain model: a LoRA adapter, and its base's source."""
    from okapi_hf.models import adapter_chain, read_source

    if not (Path(model_dir) / "adapter_config.json").is_file():
        return None
    try:
        base, adapters = adapter_chain(model_dir)
    except OkapiError:
        base, adapters = init_from, [Path(model_dir)]
    note = (
        f"a LoRA adapter (`adapter_model.safetensors`) on `{init_from}`"
        + (f", itself {len(adapters) - 1} adapter(s) on `{base}`" if len(adapters) > 1 else "")
        + f'; `okapi_hf.models.load_model("{model_dir}")` loads it merged, as later stages and '
        "`okapi-hf chat` do (train with `merge_lora=true` for a merged folder)"
    )
    record = read_source(base)
    if record:
        note += f". The base was converted from `{record['file']}` (sha256 `{record['sha256'][:16]}…`)"
    return note


# How to prompt a policy trained by any stage (SFT with Okapi's template, RLHF, DPO), for model cards.
POLICY_USAGE = """from okapi_hf.chat import pipeline  # pip install okapi-hf

chat = pipeline("{path}")  # Okapi's template and sampling settings (top_p 0.75, top_k 40)
print(chat.generate("...instruction...", prompt_input="...optional input..."))
for piece in chat.chat([{{"role": "user", "content": "..."}}], stream=True):  # multi-turn, streaming
    print(piece, end="")"""


# -- training stages -------------------------------------------------------------------------------------

# The config section of run_config.yaml names the stage that wrote it (see recipes.write_run_config).
STAGE_OF_CONFIG = {
    "OkapiSFTConfig": "sft",
    "RankedRewardConfig": "rm",
    "PPOConfig": "rl",
    "OkapiRLOOConfig": "rl",
    "OkapiGRPOConfig": "rl",
    "ListwiseDPOConfig": "dpo",
}
# What a reader needs to tell two runs apart; the full configuration stays in run_config.yaml.
COMMON_STAGE_KEYS = (
    "learning_rate",
    "num_train_epochs",
    "max_steps",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "seed",
)
STAGE_KEYS = {
    "sft": ("prompt_format", "loss_on", "max_length", "packing", "lang_weights"),
    "rm": ("loss_type", "margin", "num_unfrozen_layers", "max_length"),
    "rl": (
        "algorithm",
        "init_kl_coef",
        "target_kl",
        "ppo_epochs",
        "num_rollouts",
        "beta",
        "num_generations",
        "max_new_tokens",
        "max_completion_length",
        "language_reward_weight",
        "language_reward",
    ),
    "dpo": ("loss_type", "beta", "max_length"),
}


def stage_history(model_dir: str | Path) -> list[dict[str, Any]]:
    """Every okapi-hf stage behind ``model_dir``, earliest first, read from the ``run_config.yaml`` files.

    Each entry has ``stage`` (sft, rm, rl, dpo), ``init_from`` (the model the stage started from),
    ``output`` (its folder), ``reward_model`` (RL only, else None) and ``hyperparameters`` (the key
    values). The walk follows ``init_from`` and ``reward_model`` while they are local folders with their
    own ``run_config.yaml``, so an RLHF policy lists sft, rm and rl; a base model ends the walk.
    """
    model_dir = Path(model_dir)
    if not (model_dir / "run_config.yaml").is_file():
        raise OkapiError(
            f"{model_dir} has no run_config.yaml: it is not a folder written by `okapi-hf train`"
        )
    history: list[dict[str, Any]] = []
    seen: set[Path] = set()

    def visit(folder: Path) -> None:
        key = folder.resolve()
        if key in seen:
            return
        seen.add(key)
        entry = _read_stage(folder)
        for parent in (entry["init_from"], entry["reward_model"]):
            if parent and (Path(parent) / "run_config.yaml").is_file():
                visit(Path(parent))
        history.append(entry)

    visit(model_dir)
    return history


def _read_stage(folder: Path) -> dict[str, Any]:
    path = folder / "run_config.yaml"
    try:
        sections = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise OkapiError(f"{path}: not valid YAML ({e})") from e
    if not isinstance(sections, dict):
        raise OkapiError(f"{path}: expected one mapping per config section, got {type(sections).__name__}")
    found = [(name, STAGE_OF_CONFIG[name]) for name in sections if name in STAGE_OF_CONFIG]
    if not found:
        raise OkapiError(
            f"{path}: no stage config section (expected one of {', '.join(STAGE_OF_CONFIG)}); "
            f"found {', '.join(map(str, sections)) or 'nothing'}"
        )
    section, stage = found[0]
    config = sections[section] or {}
    run_args = sections.get("RunArguments") or {}
    model_args = sections.get("ModelConfig") or {}

    def earlier(path_value: str | None, previous: str) -> str:
        """A recorded path, or (when the stage chained by default) the run's folder of that stage."""
        if path_value:
            return str(path_value)
        return _default_stage_folder(folder, run_args, previous)

    hyperparameters = {}
    for key in (*STAGE_KEYS[stage], *COMMON_STAGE_KEYS):
        value = config.get(key)
        if value is None or (key == "max_steps" and value <= 0):
            continue  # unset, or max_steps=-1 (the epochs decide)
        hyperparameters[key] = value
    if model_args.get("use_peft"):
        hyperparameters["lora_r"] = model_args.get("lora_r")
    return {
        "stage": stage,
        "init_from": earlier(model_args.get("model_name_or_path"), "sft"),
        "output": str(config.get("output_dir") or folder),  # as training wrote it, like init_from
        "reward_model": earlier(config.get("reward_model_path"), "rm") if stage == "rl" else None,
        "hyperparameters": hyperparameters,
    }


def _default_stage_folder(folder: Path, run_args: dict[str, Any], stage: str) -> str:
    """Where ``recipes.previous_stage`` looked: ``<runs_dir>/<run>/<stage>``, or the sibling folder.

    The recorded ``runs_dir`` may be relative to where training ran, so a sibling of ``folder`` (the
    usual ``runs/<run>/<stage>`` layout) is tried when the recorded one is not there.
    """
    from okapi_hf.train.recipes import RunArguments  # training is installed wherever stages were trained

    known = {k: v for k, v in run_args.items() if k in RunArguments.__dataclass_fields__}
    recorded = RunArguments(**known).run_dir() / stage
    for candidate in (recorded, folder.parent / stage):
        if (candidate / "config.json").is_file() or (candidate / "run_config.yaml").is_file():
            return str(candidate)
    return str(recorded)


# -- validation ------------------------------------------------------------------------------------------

CARD_CLASSES: dict[str, type[RepoCard]] = {"model": ModelCard, "dataset": DatasetCard, "space": SpaceCard}
SPACE_SDKS = ("gradio", "docker", "static", "streamlit")
SPACE_COLORS = ("red", "yellow", "green", "blue", "indigo", "purple", "pink", "gray")
SHORT_DESCRIPTION_MAX = 60  # the Hub rejects longer Space descriptions


def validate_card(card: str | Path, kind: str) -> RepoCard:
    """Check a card's YAML header locally, as the Hub would, and return the parsed card.

    ``card`` is a :class:`~pathlib.Path` (or a string naming an existing file) or the card text itself.
    Raises :class:`OkapiError` naming the first missing or invalid field.
    """
    if kind not in CARD_CLASSES:
        raise OkapiError(f"unknown card kind {kind!r}; expected one of {', '.join(CARD_CLASSES)}")
    if isinstance(card, Path) or ("\n" not in card and os.path.isfile(card)):
        name, text = str(card), Path(card).read_text(encoding="utf-8")
    else:
        name, text = f"{kind} card", card
    try:
        data = RepoCard(text, ignore_metadata_errors=False).data.to_dict()
    except (ValueError, yaml.YAMLError) as e:
        raise OkapiError(f"{name}: the YAML header cannot be parsed ({e})") from e
    if not data:
        raise OkapiError(f"{name}: no YAML metadata header (a `---` block at the top of the card)")

    def need(field: str, example: str, check: Callable[[Any], bool] = bool) -> Any:
        value = data.get(field)
        if value is None or not check(value):
            got = "it is missing" if value is None else f"got {value!r}"
            raise OkapiError(f"{name}: {kind} card needs `{field}` in its YAML header, e.g. {example}; {got}")
        return value

    def text_or_list(value: Any) -> bool:
        if isinstance(value, str):
            return bool(value)
        return isinstance(value, list) and bool(value) and all(isinstance(v, str) and v for v in value)

    if kind == "model":
        need("language", "language: [vi]", text_or_list)
        need("license", "license: cc-by-nc-4.0", lambda v: isinstance(v, str) and v)
        need("library_name", "library_name: transformers", lambda v: isinstance(v, str) and v)
        if "model-index" in data:
            try:
                model_index_to_eval_results(data["model-index"])
            except Exception as e:  # the parser raises KeyError, TypeError or ValueError on a bad block
                raise OkapiError(
                    f"{name}: `model-index` cannot be parsed by huggingface_hub ({type(e).__name__}: {e})"
                ) from e
    elif kind == "dataset":
        need("language", "language: [vi]", text_or_list)
        need("license", "license: cc-by-nc-4.0", lambda v: isinstance(v, str) and v)
        configs = need(
            "configs", "configs: [{config_name: vi, data_files: ...}]", lambda v: isinstance(v, list)
        )
        for i, config in enumerate(configs):
            label = config.get("config_name") if isinstance(config, dict) else None
            if not isinstance(label, str) or not label:
                raise OkapiError(f"{name}: `configs` entry {i} has no `config_name`")
            if not config_patterns(config):
                raise OkapiError(
                    f"{name}: config {label!r} has no `data_files` (split and path of its files)"
                )
    else:
        need("title", "title: Okapi chat", lambda v: isinstance(v, str) and v)
        sdk = need("sdk", "sdk: gradio", lambda v: v in SPACE_SDKS)
        if sdk in ("gradio", "streamlit"):
            need("app_file", "app_file: app.py", lambda v: isinstance(v, str) and v)
        for field in ("colorFrom", "colorTo"):
            if field in data:
                need(field, f"{field}: blue (one of {', '.join(SPACE_COLORS)})", lambda v: v in SPACE_COLORS)
        if "short_description" in data:
            need(
                "short_description",
                f"at most {SHORT_DESCRIPTION_MAX} characters",
                lambda v: isinstance(v, str) and len(v) <= SHORT_DESCRIPTION_MAX,
            )
    try:
        return CARD_CLASSES[kind](text)
    except ValueError as e:
        raise OkapiError(f"{name}: huggingface_hub rejects the {kind} card ({e})") from e


def config_patterns(config: dict[str, Any]) -> list[str]:
    """The file patterns of one dataset ``configs`` entry (``data_files`` as a string, list or split list)."""
    files = config.get("data_files")
    items = [files] if isinstance(files, (str, dict)) else list(files or [])
    patterns = []
    for item in items:
        paths = item.get("path") if isinstance(item, dict) else item
        patterns += [paths] if isinstance(paths, str) else list(paths or [])
    return [p for p in patterns if isinstance(p, str) and p]


# -- Spaces ----------------------------------------------------------------------------------------------

# The Gradio the Spaces are built and tested with; the Hub installs this version for the Space.
GRADIO_SDK_VERSION = "6.31.0"
SPACE_DEFAULTS: dict[str, dict[str, Any]] = {
    "chat": {
        "title": "Okapi chat",
        "emoji": "🦒",
        "colorFrom": "yellow",
        "colorTo": "red",
        "short_description": "Chat with a multilingual Okapi model",
        "tags": ["okapi", "okapi-hf", "multilingual", "chat", "rlhf"],
    },
    "leaderboard": {
        "title": "Okapi leaderboard",
        "emoji": "📊",
        "colorFrom": "blue",
        "colorTo": "green",
        "short_description": "Okapi ARC, HellaSwag, MMLU, TruthfulQA scores per language",
        "tags": ["okapi", "okapi-hf", "multilingual", "leaderboard", "evaluation"],
    },
}
SPACE_FIELDS = (
    "title",
    "emoji",
    "colorFrom",
    "colorTo",
    "short_description",
    "license",
    "tags",
    "models",
    "datasets",
    "sdk_version",
    "pinned",
)


def render_space_card(kind: str, **fields: Any) -> str:
    """The README of ``spaces/<kind>`` (chat or leaderboard): Space metadata plus how to configure it.

    ``fields`` override the defaults in :data:`SPACE_DEFAULTS` (``title``, ``emoji``, ``colorFrom``,
    ``colorTo``, ``short_description``, ``license``, ``tags``, ``models``, ``datasets``,
    ``sdk_version``, ``pinned``); ``models``/``datasets`` link the Space to Hub repos.
    """
    if kind not in SPACE_DEFAULTS:
        raise OkapiError(f"unknown Space {kind!r}; expected one of {', '.join(SPACE_DEFAULTS)}")
    unknown = sorted(set(fields) - set(SPACE_FIELDS))
    if unknown:
        raise OkapiError(
            f"unknown Space card field(s) {', '.join(unknown)}; expected {', '.join(SPACE_FIELDS)}"
        )
    values = {"license": "apache-2.0", "sdk_version": GRADIO_SDK_VERSION, "pinned": False}
    values |= SPACE_DEFAULTS[kind] | fields
    card_data = SpaceCardData(
        title=values["title"],
        sdk="gradio",
        sdk_version=values["sdk_version"],
        app_file="app.py",
        license=values["license"],
        models=values.get("models"),
        datasets=values.get("datasets"),
        tags=values["tags"],
        emoji=values["emoji"],
        colorFrom=values["colorFrom"],
        colorTo=values["colorTo"],
        short_description=values["short_description"],
        pinned=values["pinned"],
    )
    card = SpaceCard.from_template(
        card_data,
        template_path=str(card_template(f"space_{kind}.md")),
        title=values["title"],
        models=values.get("models") or [],
        datasets=values.get("datasets") or [],
    )
    text = str(card)
    validate_card(text, "space")  # the defaults and any override must pass what publish checks
    return text


def write_space_readmes(root: str | Path) -> list[Path]:
    """Write ``spaces/chat/README.md`` and ``spaces/leaderboard/README.md`` under ``root`` (the repo root).

    Those files are generated: edit the templates in ``hub_cards/`` and run ``python -m okapi_hf.hub.cards``.
    """
    written = []
    for kind in SPACE_DEFAULTS:
        path = Path(root) / "spaces" / kind / "README.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, render_space_card(kind))
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> None:
    """``python -m okapi_hf.hub.cards [ROOT]``: regenerate the Space READMEs from ``hub_cards/``."""
    parser = argparse.ArgumentParser(
        prog="python -m okapi_hf.hub.cards",
        description=(
            "Regenerate spaces/chat/README.md and spaces/leaderboard/README.md from the templates in "
            "hub_cards/. Edit the templates, then run this from the repository root."
        ),
    )
    parser.add_argument(
        "root",
        nargs="?",
        type=Path,
        default=Path.cwd(),
        help="the repository root that holds spaces/ (default: the current folder)",
    )
    args = parser.parse_args(argv)
    for written_path in write_space_readmes(args.root):
        print(f"wrote {written_path}")


if __name__ == "__main__":
    main()
