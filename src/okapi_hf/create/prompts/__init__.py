"""The prompts of the data-creation steps, one readable file each, replaceable with ``--prompts DIR``.

A prompt is a Jinja template (``{{ instruction }}``); a folder passed as ``prompts_dir`` overrides the
shipped file of the same name, so a user can change one prompt without copying the others.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import jinja2

from okapi_hf.errors import DataError

_ENV = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=False, autoescape=False)


def prompt_names(package: str = __name__) -> list[str]:
    """The prompt names shipped in ``package`` (file names without ``.md``)."""
    files = resources.files(package).iterdir()
    return sorted(p.name.removesuffix(".md") for p in files if p.name.endswith(".md"))


def load_prompt(
    name: str, prompts_dir: str | Path | None = None, *, package: str = __name__
) -> jinja2.Template:
    """The template ``<name>.md``: from ``prompts_dir`` if it has one, else the file shipped in ``package``.

    Data creation ships its prompts here; other stages (the evaluation judge) pass their own package.
    """
    if prompts_dir is not None and (Path(prompts_dir) / f"{name}.md").is_file():
        path = Path(prompts_dir) / f"{name}.md"
        text = path.read_text(encoding="utf-8")
    else:
        shipped = resources.files(package) / f"{name}.md"
        if not shipped.is_file():
            raise DataError(f"no prompt {name!r}; shipped prompts: {', '.join(prompt_names(package))}")
        path, text = Path(str(shipped)), shipped.read_text(encoding="utf-8")
    try:
        return _ENV.from_string(text.strip())
    except jinja2.TemplateSyntaxError as e:
        raise DataError(f"{path}, line {e.lineno}: not a valid Jinja template ({e.message})") from None


def render(
    name: str, prompts_dir: str | Path | None = None, *, package: str = __name__, **fields: object
) -> str:
    """Fill a prompt; a field the template uses but the step did not give is an error naming both."""
    try:
        return load_prompt(name, prompts_dir, package=package).render(**fields)
    except jinja2.UndefinedError as e:
        raise DataError(f"prompt {name!r}: {e.message} (fields given: {', '.join(sorted(fields))})") from None
