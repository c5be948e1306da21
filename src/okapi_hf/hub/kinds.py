"""The three kinds a folder is published as (dataset, model, Space): what each must hold and leaves out.

Each planner walks the folder with its own name rules (:func:`okapi_hf.hub.plan.walk`), then checks
that what would go up is such a folder, so a wrong folder fails before any upload with what it lacks.
"""

from __future__ import annotations

import fnmatch
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from okapi_hf.errors import OkapiError
from okapi_hf.hub.cards import config_patterns, validate_card
from okapi_hf.hub.plan import KINDS, LeftOut, PublishPlan, is_pickled_weights, keep_all, read_text, walk

TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer.model",
    "vocab.json",
    "vocab.txt",
    "spiece.model",
    "sentencepiece.bpe.model",
)


def check_folder(kind: str, path: str | Path) -> Path:
    """The folder to publish exists, is a folder and holds something."""
    root = Path(path)
    usage = f"`okapi-hf publish {kind}` takes the folder to upload"
    if not root.exists() and not root.is_symlink():
        raise OkapiError(f"{root} is not a folder (it does not exist): {usage}")
    if not root.is_dir():
        what = "a broken link" if root.is_symlink() and not root.exists() else "a file"
        raise OkapiError(f"{root} is not a folder (it is {what}): {usage}")
    try:
        with os.scandir(root) as entries:
            empty = not any(entries)
    except OSError as e:
        raise OkapiError(f"{root} cannot be read ({e.strerror}): {usage}") from e
    if empty:
        raise OkapiError(f"{root} is empty: nothing to publish; {usage}")
    return root


def plan_publish(kind: str, path: str | Path) -> PublishPlan:
    """The files of ``path`` that a publish as ``kind`` uploads, checked for that kind; nothing is sent."""
    root = Path(path)
    if not root.is_dir():
        check_folder(kind, root)
    planners: dict[str, Callable[[Path], PublishPlan]] = {
        "dataset": _plan_dataset,
        "model": _plan_model,
        "space": _plan_space,
    }
    if kind not in planners:
        raise OkapiError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    plan = planners[kind](root)
    plan.files.sort(key=lambda f: f.path_in_repo)
    return plan


# -- the three kinds -------------------------------------------------------------------------------------

DATASET_HELP = "an `okapi-hf data build` output (README.md, okapi_build.json, data/<lang>/<subset>/*.parquet)"


def _plan_dataset(root: Path) -> PublishPlan:
    def file_reason(rel: str) -> str | None:
        if rel in ("README.md", "okapi_build.json") or (rel.startswith("data/") and rel.endswith(".parquet")):
            return None
        return "not part of " + DATASET_HELP

    plan = walk("dataset", root, keep_all, file_reason)
    for required in ("README.md", "okapi_build.json"):
        _require(plan, required, f"{root} has no {required}: a dataset to publish is {DATASET_HELP}")
    build_json = root / "okapi_build.json"
    try:
        build_info = json.loads(read_text(build_json))
    except json.JSONDecodeError as e:
        raise OkapiError(f"{build_json}: not valid JSON ({e})") from e
    if not isinstance(build_info, dict) or not build_info:
        raise OkapiError(f"{build_json}: expected one record per config, got {build_info!r:.80}")
    card = _validate_card(root / "README.md", "dataset")
    parquet = [f.path_in_repo for f in plan.files if f.path_in_repo.endswith(".parquet")]
    refused = [r.path for r in plan.refused]  # a refused shard or folder still counts: it is reported
    used: set[str] = set()
    for config in card.data.to_dict()["configs"]:
        for pattern in config_patterns(config):
            matched = fnmatch.filter(parquet, pattern)
            if not matched and any(fnmatch.fnmatch(r, pattern) or pattern.startswith(r) for r in refused):
                continue
            if not matched:
                raise OkapiError(
                    f"{root / 'README.md'}: config {config['config_name']!r} reads {pattern}, "
                    f"which matches no Parquet file in {root}"
                )
            used.update(matched)
    for rel in sorted(set(parquet) - used):
        plan.files.remove(plan.file(rel))  # type: ignore[arg-type]
        plan.left_out.append(
            LeftOut(rel, "no config in README.md reads it", size=(root / rel).stat().st_size)
        )
    return plan


MODEL_HELP = (
    "a trained stage folder (config.json, safetensors weights, tokenizer files and the README.md card "
    "that `okapi-hf train` writes)"
)


def _plan_model(root: Path) -> PublishPlan:
    def folder_reason(rel: str) -> str | None:
        if "/" not in rel and fnmatch.fnmatch(rel, "checkpoint-*"):
            return "intermediate training checkpoint (resume state with pickled optimizer and RNG files)"
        return None

    plan = walk("model", root, folder_reason, keep_all)
    _require(plan, "config.json", f"{root} has no config.json: a model to publish is {MODEL_HELP}")
    _refuse_needed(plan, ("model.safetensors", "model.safetensors.index.json", "tokenizer_config.json"))
    have = {f.path_in_repo for f in plan.files}
    _check_weights(root, have, plan)
    if "tokenizer_config.json" not in have or not have.intersection(TOKENIZER_FILES):
        _refuse_needed(plan, TOKENIZER_FILES)
        raise OkapiError(
            f"{root} has no tokenizer (tokenizer_config.json and one of {', '.join(TOKENIZER_FILES)}): "
            "a published model must load with AutoTokenizer.from_pretrained"
        )
    _require(plan, "README.md", f"{root} has no README.md: a model to publish is {MODEL_HELP}")
    _validate_card(root / "README.md", "model")
    return plan


def _check_weights(root: Path, have: set[str], plan: PublishPlan) -> None:
    """Safetensors weights, complete; a folder with pickled weights only is refused, not converted."""
    index = "model.safetensors.index.json"
    if "model.safetensors" in have:
        return
    if index in have:
        try:
            shards = set(json.loads(read_text(root / index))["weight_map"].values())
            if not all(isinstance(shard, str) for shard in shards):
                raise TypeError("a shard is not a file name")
        except json.JSONDecodeError as e:
            raise OkapiError(f"{root / index}: not valid JSON ({e})") from e
        except (KeyError, AttributeError, TypeError) as e:
            raise OkapiError(
                f"{root / index}: not a safetensors index (expected an object with a `weight_map` of "
                "tensor name -> shard file)"
            ) from e
        missing = sorted(shards - have)
        _refuse_needed(plan, missing)
        if missing:
            raise OkapiError(
                f"{root / index} lists shard(s) that are not in the folder: {', '.join(missing)}"
            )
        return
    pickled = [item.path for item in plan.left_out if is_pickled_weights(item.path.rsplit("/", 1)[-1])]
    if pickled:
        raise OkapiError(
            f"{root}: the only weights are pickled ({', '.join(pickled)}); okapi-hf publishes safetensors only "
            "because loading a pickle can run code. Save the model again with "
            "`model.save_pretrained(folder)` (safetensors by default) and publish that folder"
        )
    raise OkapiError(
        f"{root} has no weights (model.safetensors, or {index} and its shards): a model to publish is {MODEL_HELP}"
    )


SPACE_HELP = (
    "a Gradio Space folder (app.py, requirements.txt and a README.md with `sdk: gradio` and `app_file`)"
)


def _plan_space(root: Path) -> PublishPlan:
    def folder_reason(rel: str) -> str | None:
        if rel == "flagged":
            return "Gradio flagging output (may hold visitors' inputs)"
        return None

    plan = walk("space", root, folder_reason, keep_all)
    _require(plan, "README.md", f"{root} has no README.md: a Space to publish is {SPACE_HELP}")
    card = _validate_card(root / "README.md", "space")
    if card.data.sdk != "gradio":
        raise OkapiError(
            f"{root / 'README.md'}: `sdk` is {card.data.sdk!r}; okapi-hf publishes Gradio Spaces only"
        )
    for required in (card.data.app_file, "requirements.txt"):
        _require(plan, required, f"{root} has no {required}: a Space to publish is {SPACE_HELP}")
    return plan


def _require(plan: PublishPlan, rel: str, missing: str) -> None:
    """A file the kind needs is planned; a refused one is named with its reason, an absent one with ``missing``."""
    _refuse_needed(plan, (rel,))
    if plan.file(rel) is None:
        raise OkapiError(missing)


def _refuse_needed(plan: PublishPlan, names: Any) -> None:
    """A file the kind needs cannot go up when it is refused (a link): say so rather than "missing"."""
    for rel in names:
        item = plan.refusal(rel)
        if item is not None:
            raise OkapiError(f"{plan.root / rel}: {item.reason}")


def _validate_card(path: Path, kind: str) -> Any:
    read_text(path)  # a card that is not UTF-8 fails here with its name, not in the card parser
    return validate_card(path, kind)
