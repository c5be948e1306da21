"""Run one training stage by name, or Okapi's whole recipe (sft, then rm, then rl) for a language.

Stages chain by convention: each writes ``runs/<run>/<stage>`` and the next one starts from there,
so ``train_all`` only passes the run name along.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path

from okapi_hf.errors import OkapiError
from okapi_hf.train.recipes import DEFAULT_RECIPES

__all__ = ["DEFAULT_RECIPES", "PIPELINE", "STAGES", "run_stage", "train_all"]

logger = logging.getLogger(__name__)

STAGES = ("sft", "rm", "rl", "dpo")
PIPELINE = ("sft", "rm", "rl")  # Okapi's order; dpo is the RL-free alternative to rm + rl


def run_stage(
    stage: str, overrides: list[str], *, recipe: str | None = None, verbose: bool = False, **flags: str | None
) -> Path:
    """``okapi-hf train STAGE``: parse the stage's recipe with overrides and flags, train, return the output.

    The terminal shows progress bars, warnings and a summary; every logging step and INFO log goes to
    ``<output>/train.log``. ``verbose`` shows that whole stream on the terminal too.
    """
    if stage not in STAGES:
        raise OkapiError(f"unknown training stage {stage!r}; expected one of: {', '.join(STAGES)}")
    module = importlib.import_module(f"okapi_hf.train.run_{stage}")
    return module.main(overrides, recipe=recipe or DEFAULT_RECIPES[stage], verbose=verbose, **flags)


def train_all(
    overrides: list[str],
    *,
    recipe: str | None = None,
    stage_recipes: dict[str, str] | None = None,
    lang: str | None = None,
    model_name_or_path: str | None = None,
    dataset_path: str | None = None,
    run: str | None = None,
    verbose: bool = False,
    **flags: str | None,
) -> dict[str, Path]:
    """SFT from ``model_name_or_path``, then the reward model and PPO from the SFT output, in one run folder.

    ``overrides`` without a prefix go to every stage; ``sft.key=value`` to one stage only. ``verbose``
    as in :func:`run_stage`.
    """
    shared, per_stage = _split_overrides(overrides)
    outputs: dict[str, Path] = {}
    for stage in PIPELINE:
        stage_recipe = (stage_recipes or {}).get(stage) or recipe or DEFAULT_RECIPES[stage]
        logger.info("okapi-hf train all: stage %s with recipe %s", stage, stage_recipe)
        print(f"\n== okapi-hf train all: {stage} (recipe {stage_recipe}) ==", flush=True)
        outputs[stage] = run_stage(
            stage,
            shared + per_stage[stage],
            recipe=stage_recipe,
            lang=lang,
            model_name_or_path=model_name_or_path if stage == "sft" else None,
            dataset_path=dataset_path,
            run=run,
            verbose=verbose,
            **flags,
        )
    return outputs


def _split_overrides(overrides: list[str]) -> tuple[list[str], dict[str, list[str]]]:
    shared: list[str] = []
    per_stage: dict[str, list[str]] = {stage: [] for stage in PIPELINE}
    for item in overrides:
        key, sep, value = item.partition("=")
        prefix, dot, name = key.partition(".")
        if dot and prefix in per_stage:
            per_stage[prefix].append(f"{name}{sep}{value}")
        elif dot and prefix in STAGES:
            raise OkapiError(f"override {item!r}: `train all` runs {', '.join(PIPELINE)}, not {prefix}")
        else:
            shared.append(item)
    return shared, per_stage
