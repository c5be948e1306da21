"""``okapi-hf publish``: push a built dataset, a trained stage or a Space folder to the Hugging Face Hub.

Every publish starts from a plan: which local file goes to which path in the repository, and which
files stay behind and why. The plan is checked for the kind of folder it claims to be (a dataset
folder must look like a ``data build`` output, a model folder like a trained stage, a Space like a
Gradio app) and its card is validated before anything is uploaded, so ``--dry-run`` shows exactly
what a real run would do. Pickled files never go up: loading one can run arbitrary code.

The token comes from ``HF_TOKEN`` or the login cache (``hf auth login``) through huggingface_hub; it
is handed to :class:`~huggingface_hub.HfApi` only, never printed, logged or written anywhere.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from huggingface_hub import CommitOperationAdd, HfApi, ModelCard, constants, get_token
from huggingface_hub.errors import HfHubHTTPError, HFValidationError, OfflineModeIsEnabled
from huggingface_hub.repocard_data import EvalResult, model_index_to_eval_results
from huggingface_hub.utils import validate_repo_id

from okapi_hf.cards import config_patterns, stage_history, validate_card
from okapi_hf.errors import OkapiError

logger = logging.getLogger(__name__)

KINDS = ("dataset", "model", "space")  # also the Hub's repo_type of each
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib")
# Pickled files that hold a model's weights (rather than optimizer or trainer state).
PICKLED_WEIGHTS = (
    "pytorch_model*.bin",
    "adapter_model.bin",
    "model*.pt",
    "model*.pth",
    "consolidated*.pth",
    "*.ckpt",
)
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer.model",
    "vocab.json",
    "vocab.txt",
    "spiece.model",
    "sentencepiece.bpe.model",
)
# Files small and textual enough to check for a pasted token before they go public.
TEXT_SUFFIXES = (".md", ".json", ".yaml", ".yml", ".txt", ".py", ".cfg", ".toml", ".ini", ".jinja", ".csv")
TEXT_SCAN_LIMIT = 20_000_000


@dataclass
class PlannedFile:
    """One upload: a local file (or new content for it) and its path in the repository."""

    local: Path
    path_in_repo: str
    size: int
    content: bytes | None = None  # set when what goes up differs from the local file (an updated card)
    note: str = ""


@dataclass
class LeftOut:
    """A file or folder that stays behind, with the reason; folders end with ``/``."""

    path: str
    reason: str
    files: int = 1
    size: int = 0


@dataclass
class PublishPlan:
    """What a publish of ``root`` as ``kind`` uploads and what it leaves out."""

    kind: str
    root: Path
    files: list[PlannedFile] = field(default_factory=list)
    left_out: list[LeftOut] = field(default_factory=list)
    card_changes: list[str] = field(default_factory=list)

    def file(self, path_in_repo: str) -> PlannedFile | None:
        return next((f for f in self.files if f.path_in_repo == path_in_repo), None)


@dataclass
class PublishResult:
    """The plan as carried out (or, for a dry run, as it would be); ``summary()`` is what the CLI prints."""

    plan: PublishPlan
    repo_id: str
    private: bool
    dry_run: bool
    token_found: bool
    url: str
    commit_url: str | None = None

    def summary(self) -> str:
        plan = self.plan
        visibility = "private" if self.private else "public"
        head = "Dry run, nothing uploaded. Plan:" if self.dry_run else "Published:"
        lines = [f"{head} {plan.kind} repo {self.repo_id} ({visibility}) at {self.url}"]
        if self.dry_run:
            lines.append(
                "Hub token: found (HF_TOKEN or the login cache)"
                if self.token_found
                else "Hub token: not found; a real publish needs HF_TOKEN set or `hf auth login`"
            )
        total = sum(f.size for f in plan.files)
        verb = "to upload" if self.dry_run else "uploaded"
        lines.append(f"Files {verb} ({len(plan.files)}, {_size(total)}):")
        width = max((len(str(f.local)) for f in plan.files), default=0)
        for f in plan.files:
            note = f"  [{f.note}]" if f.note else ""
            lines.append(f"  {f.local!s:<{width}} -> {f.path_in_repo}  ({_size(f.size)}){note}")
        lines.append(f"Left out ({len(plan.left_out)}):" if plan.left_out else "Left out: nothing")
        for item in plan.left_out:
            count = f" ({item.files} files, {_size(item.size)})" if item.path.endswith("/") else ""
            lines.append(f"  {item.path}{count}: {item.reason}")
        lines += [f"Card: {change}" for change in plan.card_changes]
        if self.commit_url:
            lines.append(f"Commit: {self.commit_url}")
        return "\n".join(lines)


def publish(
    kind: str,
    path: str | Path,
    repo_id: str,
    *,
    private: bool = False,
    dry_run: bool = False,
    eval_results: str | Path | None = None,
    commit_message: str | None = None,
    api: Any = None,
) -> PublishResult:
    """Plan, check and (unless ``dry_run``) upload ``path`` to ``repo_id`` in one commit.

    ``eval_results`` (models only) is an ``okapi-hf eval run`` folder whose ``model_index.yaml`` goes
    into the uploaded card's ``model-index``; the local README is left as it is. ``api`` is an
    ``HfApi``-like object; by default one is made with the token from the environment or login cache.
    """
    if kind not in KINDS:
        raise OkapiError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    _check_repo_id(repo_id)
    plan = plan_publish(kind, path)
    if eval_results is not None:
        if kind != "model":
            raise OkapiError(f"--eval-results applies to models only, not to a {kind}")
        add_eval_results(plan, eval_results, default_name=repo_id.split("/")[-1])
    if kind == "model":
        _point_usage_at_repo(plan, repo_id)
    token = get_token()
    if token:
        _check_no_token_in_files(plan, token)
    url = f"{constants.ENDPOINT}/{constants.REPO_TYPES_URL_PREFIXES.get(kind, '')}{repo_id}"
    result = PublishResult(plan, repo_id, private, dry_run, token_found=bool(token), url=url)
    if dry_run:
        return result
    if not token:
        raise OkapiError(
            f"no Hugging Face token to publish {repo_id} with: set HF_TOKEN (a token with write access) "
            "or run `hf auth login`"
        )
    if constants.HF_HUB_OFFLINE:
        raise OkapiError("HF_HUB_OFFLINE is set: unset it to publish (or use --dry-run to see the plan)")
    api = api if api is not None else HfApi(token=token)
    result.commit_url = _upload(api, plan, repo_id, private, commit_message)
    return result


def plan_publish(kind: str, path: str | Path) -> PublishPlan:
    """The files of ``path`` that a publish as ``kind`` uploads, checked for that kind; nothing is sent."""
    root = Path(path)
    if not root.is_dir():
        raise OkapiError(f"{root} is not a folder: `okapi-hf publish {kind}` takes the folder to upload")
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


# -- walking a folder ------------------------------------------------------------------------------------

Rule = Callable[[str], "str | None"]  # a relative path -> the reason to leave it out, or None to keep it


def _common_folder_reason(rel: str) -> str | None:
    name = rel.rsplit("/", 1)[-1]
    if name.startswith("."):
        return "hidden folder (tool state such as .git or .cache, not part of the release)"
    if name == "__pycache__":
        return "Python bytecode cache"
    return None


def _common_file_reason(rel: str) -> str | None:
    name = rel.rsplit("/", 1)[-1]
    if name.startswith("."):
        return "hidden file"
    if name == "training_args.bin":
        return "pickled TrainingArguments (loading it runs pickle); run_config.yaml holds the same values"
    if _is_pickled_weights(name):
        return "pickled weights (loading them runs pickle); only safetensors weights are published"
    if name.endswith(PICKLE_SUFFIXES):
        return "pickle file: loading it can run arbitrary code, so it is never published"
    if name.endswith(".pyc"):
        return "Python bytecode"
    return None


def _is_pickled_weights(name: str) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in PICKLED_WEIGHTS)


def _walk(kind: str, root: Path, folder_reason: Rule, file_reason: Rule) -> PublishPlan:
    """Every file under ``root``, kept or left out by the rules; left-out folders are reported whole."""
    plan = PublishPlan(kind=kind, root=root)
    for current, dirs, files in os.walk(root):
        here = Path(current)
        for name in sorted(dirs):
            rel = (here / name).relative_to(root).as_posix()
            link = (here / name).is_symlink()
            reason = "symbolic link to a folder (not followed)" if link else None
            reason = reason or _common_folder_reason(rel) or folder_reason(rel)
            if reason:
                dirs.remove(name)
                inside = [] if link else [p for p in (here / name).rglob("*") if p.is_file()]
                plan.left_out.append(
                    LeftOut(rel + "/", reason, files=len(inside), size=sum(p.stat().st_size for p in inside))
                )
        dirs.sort()
        for name in sorted(files):
            local = here / name
            rel = local.relative_to(root).as_posix()
            reason = _common_file_reason(rel) or file_reason(rel)
            if reason:
                plan.left_out.append(LeftOut(rel, reason, size=local.stat().st_size))
            elif local.is_file():
                plan.files.append(PlannedFile(local, rel, local.stat().st_size))
            else:
                plan.left_out.append(LeftOut(rel, "not a regular file (a broken link?)"))
    return plan


def _keep_all(rel: str) -> str | None:
    return None


# -- the three kinds -------------------------------------------------------------------------------------

DATASET_HELP = "an `okapi-hf data build` output (README.md, okapi_build.json, data/<lang>/<subset>/*.parquet)"


def _plan_dataset(root: Path) -> PublishPlan:
    def file_reason(rel: str) -> str | None:
        if rel in ("README.md", "okapi_build.json") or (rel.startswith("data/") and rel.endswith(".parquet")):
            return None
        return "not part of " + DATASET_HELP

    plan = _walk("dataset", root, _keep_all, file_reason)
    for required in ("README.md", "okapi_build.json"):
        if plan.file(required) is None:
            raise OkapiError(f"{root} has no {required}: a dataset to publish is {DATASET_HELP}")
    build_json = root / "okapi_build.json"
    try:
        build_info = json.loads(build_json.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise OkapiError(f"{build_json}: not valid JSON ({e})") from e
    if not isinstance(build_info, dict) or not build_info:
        raise OkapiError(f"{build_json}: expected one record per config, got {build_info!r:.80}")
    card = validate_card(root / "README.md", "dataset")
    parquet = [f.path_in_repo for f in plan.files if f.path_in_repo.endswith(".parquet")]
    used: set[str] = set()
    for config in card.data.to_dict()["configs"]:
        for pattern in config_patterns(config):
            matched = fnmatch.filter(parquet, pattern)
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

    plan = _walk("model", root, folder_reason, _keep_all)
    have = {f.path_in_repo for f in plan.files}
    if "config.json" not in have:
        raise OkapiError(f"{root} has no config.json: a model to publish is {MODEL_HELP}")
    _check_weights(root, have, plan)
    if "tokenizer_config.json" not in have or not have.intersection(TOKENIZER_FILES):
        raise OkapiError(
            f"{root} has no tokenizer (tokenizer_config.json and one of {', '.join(TOKENIZER_FILES)}): "
            "a published model must load with AutoTokenizer.from_pretrained"
        )
    if "README.md" not in have:
        raise OkapiError(f"{root} has no README.md: a model to publish is {MODEL_HELP}")
    validate_card(root / "README.md", "model")
    return plan


def _check_weights(root: Path, have: set[str], plan: PublishPlan) -> None:
    """Safetensors weights, complete; a folder with pickled weights only is refused, not converted."""
    index = "model.safetensors.index.json"
    if "model.safetensors" in have:
        return
    if index in have:
        try:
            shards = set(json.loads((root / index).read_text(encoding="utf-8"))["weight_map"].values())
        except (json.JSONDecodeError, KeyError, AttributeError, TypeError) as e:
            raise OkapiError(f"{root / index}: not a safetensors index with a weight_map ({e!r})") from e
        missing = sorted(shards - have)
        if missing:
            raise OkapiError(
                f"{root / index} lists shard(s) that are not in the folder: {', '.join(missing)}"
            )
        return
    pickled = [item.path for item in plan.left_out if _is_pickled_weights(item.path.rsplit("/", 1)[-1])]
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

    plan = _walk("space", root, folder_reason, _keep_all)
    have = {f.path_in_repo for f in plan.files}
    if "README.md" not in have:
        raise OkapiError(f"{root} has no README.md: a Space to publish is {SPACE_HELP}")
    card = validate_card(root / "README.md", "space")
    if card.data.sdk != "gradio":
        raise OkapiError(
            f"{root / 'README.md'}: `sdk` is {card.data.sdk!r}; okapi-hf publishes Gradio Spaces only"
        )
    for required in (card.data.app_file, "requirements.txt"):
        if required not in have:
            raise OkapiError(f"{root} has no {required}: a Space to publish is {SPACE_HELP}")
    return plan


# -- the card's model-index ------------------------------------------------------------------------------


def add_eval_results(plan: PublishPlan, eval_dir: str | Path, default_name: str) -> list[EvalResult]:
    """Put an ``okapi-hf eval run`` folder's scores into the README that the plan uploads.

    Results for the same task, dataset and metric replace the card's old ones; the rest are kept. The
    new card goes up from memory, so the local README is not rewritten.
    """
    index_path = Path(eval_dir) / "model_index.yaml"
    if not index_path.is_file():
        raise OkapiError(
            f"{eval_dir} has no model_index.yaml: pass the folder written by `okapi-hf eval run --output DIR`"
        )
    try:
        model_index = (yaml.safe_load(index_path.read_text(encoding="utf-8")) or {}).get("model-index")
        _, results = model_index_to_eval_results(model_index)
    except Exception as e:  # bad YAML, or a block huggingface_hub cannot parse
        raise OkapiError(f"{index_path}: not a model-index that huggingface_hub can read ({e!r})") from e
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


def _point_usage_at_repo(plan: PublishPlan, repo_id: str) -> None:
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


# -- checks and the upload -------------------------------------------------------------------------------


def _check_repo_id(repo_id: str) -> None:
    try:
        validate_repo_id(repo_id)
    except HFValidationError as e:
        raise OkapiError(f"--repo-id {repo_id!r} is not a valid Hub repository id: {e}") from e
    if repo_id.count("/") != 1:
        raise OkapiError(f"--repo-id {repo_id!r}: expected ORG/NAME (your user name or an organisation)")


def _check_no_token_in_files(plan: PublishPlan, token: str) -> None:
    """Refuse to publish a text file that contains the Hub token (the message never shows the token)."""
    needle = token.encode("utf-8")
    for f in plan.files:
        if not f.path_in_repo.endswith(TEXT_SUFFIXES) or f.size > TEXT_SCAN_LIMIT:
            continue
        data = f.content if f.content is not None else f.local.read_bytes()
        if needle in data:
            raise OkapiError(
                f"{f.local} contains your Hugging Face token (from HF_TOKEN or the login cache): remove it "
                "before publishing, and revoke the token if the file was shared"
            )


def _upload(
    api: Any, plan: PublishPlan, repo_id: str, private: bool, commit_message: str | None
) -> str | None:
    """Create the repo if needed, then upload exactly the plan's files in one commit."""
    repo_type = plan.kind
    extra = {"space_sdk": "gradio"} if repo_type == "space" else {}
    operations = [
        CommitOperationAdd(
            path_in_repo=f.path_in_repo, path_or_fileobj=str(f.local) if f.content is None else f.content
        )
        for f in plan.files
    ]
    logger.info("publishing %d files from %s to %s %s", len(operations), plan.root, repo_type, repo_id)
    try:
        api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True, **extra)
        if private:
            info = api.repo_info(repo_id, repo_type=repo_type)
            if getattr(info, "private", None) is False:
                raise OkapiError(
                    f"{repo_id} already exists and is public; --private cannot make it private. Change its "
                    "visibility in the repository settings first, or publish to another --repo-id"
                )
        commit = api.create_commit(
            repo_id,
            operations=operations,
            commit_message=commit_message or f"Upload {repo_type} with okapi-hf",
            repo_type=repo_type,
        )
    except (HfHubHTTPError, OfflineModeIsEnabled) as e:
        raise OkapiError(f"the Hub refused to publish {repo_type} {repo_id}: {e}") from e
    commit_url = getattr(commit, "commit_url", None)
    return commit_url if isinstance(commit_url, str) else None


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"
