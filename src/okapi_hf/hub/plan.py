"""The publish plan: which file goes up to which path, which stay behind and why, and how a folder is walked.

A plan is made from file names and file types only; :mod:`okapi_hf.hub.kinds` checks it for the kind
of folder it claims to be and :mod:`okapi_hf.hub.publishing` checks the content of what would go up.
Links are never followed.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from okapi_hf.errors import OkapiError

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


# -- walking a folder ------------------------------------------------------------------------------------

Rule = Callable[[str], "str | None"]  # a relative path -> the reason to leave it out, or None to keep it


def is_pickled_weights(name: str) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in PICKLED_WEIGHTS)


# Left out of every kind, by the last part of the path: (does the name match, why it stays behind).
NameRule = tuple[Callable[[str], bool], str]
COMMON_FOLDER_RULES: tuple[NameRule, ...] = (
    (
        lambda name: name.startswith("."),
        "hidden folder (tool state such as .git or .cache, not part of the release)",
    ),
    (lambda name: name == "__pycache__", "Python bytecode cache"),
)
COMMON_FILE_RULES: tuple[NameRule, ...] = (
    (lambda name: name.startswith("."), "hidden file"),
    (
        lambda name: name == "training_args.bin",
        "pickled TrainingArguments (loading it runs pickle); run_config.yaml holds the same values",
    ),
    (
        is_pickled_weights,
        "pickled weights (loading them runs pickle); only safetensors weights are published",
    ),
    (
        lambda name: name.endswith(PICKLE_SUFFIXES),
        "pickle file: loading it can run arbitrary code, so it is never published",
    ),
    (lambda name: name.endswith(".pyc"), "Python bytecode"),
)


def _common_reason(rel: str, rules: tuple[NameRule, ...]) -> str | None:
    """The reason of the first rule that matches the path's last part, or None."""
    name = rel.rsplit("/", 1)[-1]
    return next((reason for matches, reason in rules if matches(name)), None)


def walk(kind: str, root: Path, folder_reason: Rule, file_reason: Rule) -> PublishPlan:
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
            reason = _common_reason(rel, COMMON_FOLDER_RULES) or folder_reason(rel)
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
    reason = _common_reason(rel, COMMON_FILE_RULES) or file_reason(rel)
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


def keep_all(rel: str) -> str | None:
    return None


def read_text(path: Path) -> str:
    """A small file the plan itself reads (a card, a JSON record), as UTF-8 text or one clear error."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise OkapiError(f"{path}: not UTF-8 text (byte {e.start} is {e.object[e.start]:#04x})") from e
    except OSError as e:
        raise OkapiError(f"{path} cannot be read ({e.strerror})") from e
