"""Changes to the card that goes up, made in memory: evaluation scores and the model's Hub id.

The local README is never rewritten; the plan uploads the changed text and says what changed.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import yaml
from huggingface_hub import ModelCard
from huggingface_hub.repocard_data import EvalResult, model_index_to_eval_results

from okapi_hf.errors import OkapiError
from okapi_hf.hub.cards import stage_history, validate_card
from okapi_hf.hub.plan import PublishPlan, read_text


def add_eval_results(plan: PublishPlan, eval_dir: str | Path, default_name: str) -> list[EvalResult]:
    """Put an ``okapi-hf eval run`` folder's scores into the README that the plan uploads.

    Results for the same task, dataset and metric replace the card's old ones; the rest are kept. The
    new card goes up from memory, so the local README is not rewritten.
    """
    index_path = eval_index_path(eval_dir)
    try:
        loaded = yaml.safe_load(read_text(index_path))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise OkapiError(f"{index_path}: not valid YAML ({where}{getattr(e, 'problem', None) or e})") from e
    model_index = loaded.get("model-index") if isinstance(loaded, dict) else None
    if not isinstance(model_index, list) or not model_index:
        got = "an empty file" if loaded is None else f"{type(loaded).__name__} {loaded!r:.60}"
        raise OkapiError(
            f"{index_path}: expected a top-level `model-index:` list as `okapi-hf eval run` writes; got {got}"
        )
    try:
        _, results = model_index_to_eval_results(model_index)
    except Exception as e:  # the parser raises KeyError, TypeError or ValueError on a bad block
        raise OkapiError(
            f"{index_path}: not a model-index that huggingface_hub can read ({type(e).__name__}: {e})"
        ) from e
    if not results:
        raise OkapiError(f"{index_path}: the model-index has no results")
    readme = plan.file("README.md")
    if plan.kind != "model" or readme is None:
        raise OkapiError(f"evaluation results go into a model card; {plan.root} is planned as a {plan.kind}")
    card = ModelCard(readme.content.decode("utf-8") if readme.content else readme.local.read_text("utf-8"))

    def key(r: EvalResult) -> tuple:
        return (r.task_type, r.dataset_type, r.dataset_config, r.dataset_split, r.metric_type)

    new_keys = {key(r) for r in results}
    old = card.data.eval_results or []
    kept = [r for r in old if key(r) not in new_keys]
    card.data.eval_results = kept + results
    card.data.model_name = card.data.model_name or default_name
    text = str(card)
    validate_card(text, "model")
    readme.content = text.encode("utf-8")
    readme.size = len(readme.content)
    readme.note = "with the new model-index, sent from memory; the local file is unchanged"
    datasets = sorted({r.dataset_name for r in results})
    plan.card_changes.append(
        f"README.md gets {len(results)} model-index score(s) from {index_path} "
        f"({len(old) - len(kept)} replaced, {len(kept)} kept): {', '.join(datasets)}"
    )
    return results


def eval_index_path(eval_dir: str | Path) -> Path:
    """``--eval-results``: an existing folder holding ``model_index.yaml``."""
    folder = Path(eval_dir)
    expected = "pass the folder written by `okapi-hf eval run --out DIR`"
    if not folder.exists():
        raise OkapiError(f"--eval-results {folder} does not exist: {expected}")
    if not folder.is_dir():
        raise OkapiError(f"--eval-results {folder} is a file, not a folder: {expected}")
    index_path = folder / "model_index.yaml"
    if not index_path.is_file():
        raise OkapiError(f"--eval-results {folder} has no model_index.yaml: {expected}")
    return index_path


def point_usage_at_repo(plan: PublishPlan, repo_id: str) -> None:
    """The card's code loads the model from the folder it was trained into; on the Hub, from ``repo_id``."""
    readme = plan.file("README.md")
    if readme is None:
        return
    text = readme.content.decode("utf-8") if readme.content else readme.local.read_text("utf-8")
    folders = {str(plan.root), str(plan.root.resolve())}
    with contextlib.suppress(OkapiError):  # not from `okapi-hf train`: only the folder's own path can appear
        folders.add(str(stage_history(plan.root)[-1]["output"]))
    new = text
    for folder in folders:
        new = new.replace(f'"{folder}"', f'"{repo_id}"')
    if new != text:
        readme.content = new.encode("utf-8")
        readme.size = len(readme.content)
        readme.note = readme.note or "sent from memory; the local file is unchanged"
        plan.card_changes.append(f"README.md: the usage code loads {repo_id} instead of the local folder")
