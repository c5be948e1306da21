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
  (:mod:`okapi_hf.hub.scan`, :mod:`okapi_hf.hub.filetypes`: token shapes, secret assignments, the
  value of a secret environment variable; any size, any suffix, streamed), needs pickle to load
  though its name does not say so, or (a dataset shard) is not Parquet.

The plan itself is made in :mod:`okapi_hf.hub.plan` (walking the folder) and :mod:`okapi_hf.hub.kinds`
(what each kind must hold); card edits made on the way up are in :mod:`okapi_hf.hub.card_changes`.

The token comes from ``HF_TOKEN`` or the login cache (``hf auth login``) through huggingface_hub; it
is handed to :class:`~huggingface_hub.HfApi` only, never printed, logged or written anywhere.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from huggingface_hub import CommitOperationAdd, HfApi, constants, get_token
from huggingface_hub.errors import HfHubHTTPError, HFValidationError, OfflineModeIsEnabled
from huggingface_hub.utils import validate_repo_id

from okapi_hf.errors import OkapiError
from okapi_hf.hub.card_changes import add_eval_results, eval_index_path, point_usage_at_repo
from okapi_hf.hub.filetypes import parquet_reason, pickle_reason
from okapi_hf.hub.kinds import check_folder, plan_publish
from okapi_hf.hub.plan import KINDS, PlannedFile, PublishPlan
from okapi_hf.hub.scan import SecretScanner, describe

logger = logging.getLogger(__name__)


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
    check_folder(kind, path)
    if eval_results is not None:
        eval_index_path(eval_results)
    plan = plan_publish(kind, path)
    if eval_results is not None:
        add_eval_results(plan, eval_results, default_name=repo_id.split("/")[-1])
    if kind == "model":
        point_usage_at_repo(plan, repo_id)
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
