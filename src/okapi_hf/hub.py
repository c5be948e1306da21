"""``okapi-hf publish``: push a built dataset, a trained stage or a Space folder to the Hugging Face Hub.

Every publish starts from a plan: which local file goes to which path in the repository, and which
files stay behind and why. The plan is checked for the kind of folder it claims to be (a dataset
folder must look like a ``data build`` output, a model folder like a trained stage, a Space like a
Gradio app) and its card is validated before anything is uploaded, so ``--dry-run`` shows exactly
what a real run would do. Pickled files never go up: loading one can run arbitrary code.

Nothing leaves the folder but its own regular files, and nothing secret leaves at all:

- files left out by their name (hidden files, caches, checkpoints, ``training_args.bin``, ``*.pkl`` and
  the other pickle suffixes, files that are not part of the kind) are listed and stay behind;
- files refused (listed with the reason; a real publish then uploads nothing) are every symbolic
  link that would otherwise go up, whether its target lies inside the folder or not (links are
  never followed: a link is refused rather than silently dropped, so nothing the user meant to
  publish goes missing unnoticed), and every file that would go up whose content holds a secret
  (:mod:`okapi_hf.scan`, :mod:`okapi_hf.filetypes`: token shapes, secret assignments, the value of a secret environment
  variable; any size, any suffix, streamed), needs pickle to load though its name does not say so,
  or (a dataset shard) is not Parquet.

The token comes from ``HF_TOKEN`` or the login cache (``hf auth login``) through huggingface_hub; it
is handed to :class:`~huggingface_hub.HfApi` only, never printed, logged or written anywhere.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import logging
import os
import stat
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
from okapi_hf.filetypes import parquet_reason, pickle_reason
from okapi_hf.scan import SecretScanner, describe

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
    """A file or folder that stays behind, with the reason; folders end with ``/``.

    ``category`` is set for a refusal: ``link``, ``secret``, ``pickle``, ``format`` or ``unreadable``.
    """

    path: str
    reason: str
    files: int = 1
    size: int = 0
    category: str = ""


@dataclass
class PublishPlan:
    """What a publish of ``root`` as ``kind`` uploads and what it leaves out."""

    kind: str
    root: Path
    files: list[PlannedFile] = field(default_factory=list)
    left_out: list[LeftOut] = field(default_factory=list)
    refused: list[LeftOut] = field(default_factory=list)  # any refusal stops a real publish
    card_changes: list[str] = field(default_factory=list)
    checked: int = 0  # files whose content was checked for secrets and pickles

    def file(self, path_in_repo: str) -> PlannedFile | None:
        return next((f for f in self.files if f.path_in_repo == path_in_repo), None)

    def refusal(self, path: str) -> LeftOut | None:
        return next((r for r in self.refused if r.path == path), None)

    def refuse(self, planned: PlannedFile, reason: str, category: str) -> None:
        self.files.remove(planned)
        self.refused.append(LeftOut(planned.path_in_repo, reason, size=planned.size, category=category))

    def refusal_counts(self) -> str:
        """``2 with a secret, 1 symbolic link`` for the one-line refusal."""
        labels = {
            "secret": ("with a secret", "with a secret"),
            "link": ("symbolic link", "symbolic links"),
            "pickle": ("pickle", "pickles"),
            "format": ("not in the expected format", "not in the expected format"),
            "unreadable": ("unreadable", "unreadable"),
        }
        counts: dict[str, int] = {}
        for item in self.refused:
            counts[item.category] = counts.get(item.category, 0) + 1
        return ", ".join(f"{n} {labels[c][n != 1]}" for c, n in counts.items())


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
    redact: Callable[[str], str] = str  # removes any secret from what is printed (a file named after one)

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
            folder = item.path.endswith("/") and (item.files or item.size)  # not for a linked folder
            count = f" ({item.files} files, {_size(item.size)})" if folder else ""
            lines.append(f"  {item.path}{count}: {item.reason}")
        if plan.refused:
            lines.append(
                f"Refused ({len(plan.refused)}: {plan.refusal_counts()}); a real publish uploads nothing "
                "until each is removed or fixed:"
            )
            lines += [f"  {item.path}: {item.reason}" for item in plan.refused]
        elif self.dry_run:
            lines.append(f"Refused: nothing ({plan.checked} files checked for secrets, pickles and links)")
        lines += [f"Card: {change}" for change in plan.card_changes]
        if self.commit_url:
            lines.append(f"Commit: {self.commit_url}")
        return self.redact("\n".join(lines))


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
    token = get_token()
    scanner = SecretScanner.from_environment(token)
    try:
        return _publish(
            kind, path, repo_id, private, dry_run, eval_results, commit_message, api, token, scanner
        )
    except OkapiError as e:  # a message quoting a file (a card field, a file name) must not carry a secret
        message = scanner.redact(str(e))
        if message == str(e):
            raise
        raise type(e)(message) from None


def _publish(
    kind: str,
    path: str | Path,
    repo_id: str,
    private: bool,
    dry_run: bool,
    eval_results: str | Path | None,
    commit_message: str | None,
    api: Any,
    token: str | None,
    scanner: SecretScanner,
) -> PublishResult:
    """:func:`publish` once the scanner exists: the options first, then the plan, then the checks."""
    if kind not in KINDS:
        raise OkapiError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    _check_repo_id(repo_id)
    if eval_results is not None and kind != "model":
        raise OkapiError(f"--eval-results applies to models only, not to a {kind}")
    _check_folder(kind, path)
    if eval_results is not None:
        _eval_index_path(eval_results)
    plan = plan_publish(kind, path)
    if eval_results is not None:
        add_eval_results(plan, eval_results, default_name=repo_id.split("/")[-1])
    if kind == "model":
        _point_usage_at_repo(plan, repo_id)
    check_contents(plan, scanner)
    url = f"{constants.ENDPOINT}/{constants.REPO_TYPES_URL_PREFIXES.get(kind, '')}{repo_id}"
    result = PublishResult(
        plan, repo_id, private, dry_run, token_found=bool(token), url=url, redact=scanner.redact
    )
    if dry_run:
        return result
    if plan.refused:
        raise OkapiError(
            f"refused to publish {repo_id}: {len(plan.refused)} file(s) in {plan.root} cannot go up "
            f"({plan.refusal_counts()}); nothing was uploaded. Run the same command with --dry-run to see "
            "each file and why"
        )
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


def _check_folder(kind: str, path: str | Path) -> Path:
    """The folder to publish exists, is a folder and holds something."""
    root = Path(path)
    usage = f"`okapi-hf publish {kind}` takes the folder to upload"
    if not root.exists() and not root.is_symlink():
        raise OkapiError(f"{root} is not a folder (it does not exist): {usage}")
    if not root.is_dir():
        what = "a broken link" if root.is_symlink() and not root.exists() else "a file"
        raise OkapiError(f"{root} is not a folder (it is {what}): {usage}")
    try:
        empty = not any(os.scandir(root))
    except OSError as e:
        raise OkapiError(f"{root} cannot be read ({e.strerror}): {usage}") from e
    if empty:
        raise OkapiError(f"{root} is empty: nothing to publish; {usage}")
    return root


def plan_publish(kind: str, path: str | Path) -> PublishPlan:
    """The files of ``path`` that a publish as ``kind`` uploads, checked for that kind; nothing is sent."""
    root = Path(path)
    if not root.is_dir():
        _check_folder(kind, root)
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
    """Every entry under ``root``: kept, left out by the rules, or refused; links are never followed.

    The name rules come first, so a link that would stay behind anyway (``.venv``, ``checkpoint-last``)
    is only left out; a link that would otherwise go up is refused, wherever it points.
    """
    plan = PublishPlan(kind=kind, root=root)

    def unreadable(e: OSError) -> None:  # a folder that cannot be listed must not go missing silently
        rel = Path(e.filename).relative_to(root).as_posix() + "/"
        plan.refused.append(LeftOut(rel, f"cannot be read ({e.strerror})", 0, category="unreadable"))

    for current, dirs, files in os.walk(root, onerror=unreadable):  # never descends into a linked folder
        here = Path(current)
        for name in sorted(dirs):
            path = here / name
            rel = path.relative_to(root).as_posix()
            link = path.is_symlink()
            reason = _common_folder_reason(rel) or folder_reason(rel)
            if reason:
                count, size = (0, 0) if link else _tree_size(path)
                note = " (a symbolic link, not followed)" if link else ""
                plan.left_out.append(LeftOut(rel + "/", reason + note, files=count, size=size))
            elif link:
                plan.refused.append(
                    LeftOut(rel + "/", _link_reason(root, path, folder=True), 0, category="link")
                )
            if reason or link:
                dirs.remove(name)
        dirs.sort()
        for name in sorted(files):
            _walk_file(plan, root, here / name, file_reason)
    return plan


def _walk_file(plan: PublishPlan, root: Path, local: Path, file_reason: Rule) -> None:
    rel = local.relative_to(root).as_posix()
    info = local.lstat()
    reason = _common_file_reason(rel) or file_reason(rel)
    if reason:
        note = " (a symbolic link, not followed)" if stat.S_ISLNK(info.st_mode) else ""
        plan.left_out.append(LeftOut(rel, reason + note, size=info.st_size))
    elif stat.S_ISLNK(info.st_mode) and not os.path.exists(local):
        plan.left_out.append(
            LeftOut(rel, f"broken symbolic link (to {os.readlink(local)}): nothing to upload")
        )
    elif stat.S_ISLNK(info.st_mode):
        plan.refused.append(LeftOut(rel, _link_reason(root, local, folder=False), category="link"))
    elif not stat.S_ISREG(info.st_mode):
        plan.left_out.append(LeftOut(rel, "not a regular file (a FIFO, socket or device)"))
    else:
        plan.files.append(PlannedFile(local, rel, info.st_size))


def _link_reason(root: Path, link: Path, *, folder: bool) -> str:
    """Why a symbolic link is refused: where it points, said without following it for the upload."""
    what = "folder" if folder else "file"
    target = os.readlink(link)
    real = Path(os.path.realpath(link))
    advice = "okapi-hf uploads regular files only; copy the target in (cp -L) or remove the link"
    inside = real == Path(os.path.realpath(root)) or Path(os.path.realpath(root)) in real.parents
    if not inside:
        advice = f"its content would come from elsewhere on disk; {advice}"
    where = "inside" if inside else "outside"
    return f"symbolic link to a {what} {where} the folder ({target}): not followed; {advice}"


def _tree_size(folder: Path) -> tuple[int, int]:
    """Files and bytes under ``folder``, links not followed (for the left-out list)."""
    count = size = 0
    for current, _dirs, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                info = os.lstat(os.path.join(current, name))
                if stat.S_ISREG(info.st_mode):
                    count, size = count + 1, size + info.st_size
    return count, size


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
        _require(plan, required, f"{root} has no {required}: a dataset to publish is {DATASET_HELP}")
    build_json = root / "okapi_build.json"
    try:
        build_info = json.loads(_read_text(build_json))
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

    plan = _walk("model", root, folder_reason, _keep_all)
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
            shards = set(json.loads(_read_text(root / index))["weight_map"].values())
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


def _read_text(path: Path) -> str:
    """A small file the plan itself reads (a card, a JSON record), as UTF-8 text or one clear error."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise OkapiError(f"{path}: not UTF-8 text (byte {e.start} is {e.object[e.start]:#04x})") from e
    except OSError as e:
        raise OkapiError(f"{path} cannot be read ({e.strerror})") from e


def _validate_card(path: Path, kind: str) -> Any:
    _read_text(path)  # a card that is not UTF-8 fails here with its name, not in the card parser
    return validate_card(path, kind)


# -- the card's model-index ------------------------------------------------------------------------------


def add_eval_results(plan: PublishPlan, eval_dir: str | Path, default_name: str) -> list[EvalResult]:
    """Put an ``okapi-hf eval run`` folder's scores into the README that the plan uploads.

    Results for the same task, dataset and metric replace the card's old ones; the rest are kept. The
    new card goes up from memory, so the local README is not rewritten.
    """
    index_path = _eval_index_path(eval_dir)
    try:
        loaded = yaml.safe_load(_read_text(index_path))
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


def _eval_index_path(eval_dir: str | Path) -> Path:
    """``--eval-results``: an existing folder holding ``model_index.yaml``."""
    folder = Path(eval_dir)
    expected = "pass the folder written by `okapi-hf eval run --output DIR`"
    if not folder.exists():
        raise OkapiError(f"--eval-results {folder} does not exist: {expected}")
    if not folder.is_dir():
        raise OkapiError(f"--eval-results {folder} is a file, not a folder: {expected}")
    index_path = folder / "model_index.yaml"
    if not index_path.is_file():
        raise OkapiError(f"--eval-results {folder} has no model_index.yaml: {expected}")
    return index_path


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


def check_contents(plan: PublishPlan, scanner: SecretScanner) -> None:
    """Refuse every planned file whose content must not go public (read in full, streamed)."""
    for planned in list(plan.files):
        try:
            category, reason = _content_problem(plan, planned, scanner)
        except OSError as e:
            category, reason = "unreadable", f"cannot be read ({e.strerror or e}): check it before publishing"
        plan.checked += 1
        if reason:
            plan.refuse(planned, reason, category)


def _content_problem(plan: PublishPlan, f: PlannedFile, scanner: SecretScanner) -> tuple[str, str | None]:
    """(category, reason) for a file that cannot go up, or ("", None)."""
    in_name = scanner.scan_bytes(f.path_in_repo.encode("utf-8"))
    if in_name:
        return "secret", f"its name holds a secret ({in_name[0].kind}): rename it"
    if f.content is not None:
        findings = scanner.scan_bytes(f.content, f.path_in_repo)
    else:
        pickled = pickle_reason(f.local)
        if pickled:
            return "pickle", (
                f"{pickled}: loading it runs pickle, which can execute code, and okapi-hf never publishes "
                "pickles; save it as safetensors, Parquet, JSON or NumPy without objects"
            )
        if plan.kind == "dataset" and f.path_in_repo.endswith(".parquet"):
            not_parquet = parquet_reason(f.local)
            if not_parquet:
                return "format", not_parquet
        findings = scanner.scan_file(f.local, f.path_in_repo)
    if findings:
        what = "the card as it would be uploaded (see Card:) holds" if f.content is not None else "holds"
        advice = "remove it, and revoke it if the file was ever shared"
        return "secret", f"{what} a secret ({describe(findings)}): {advice}"
    return "", None


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
