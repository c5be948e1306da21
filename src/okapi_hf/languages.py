"""The language registry: the one place that knows which languages exist.

Okapi grouped its 26 languages by how much data exists for them on the web (high, medium, low
resource). The released files also carry a few extra languages; those are ``extra`` here, with the
languages only an evaluation needs (Persian, of the multilingual Vicuna benchmark), which have no
Okapi data (``subsets`` is empty). Every other module asks this registry instead of writing its own
list.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from okapi_hf.errors import UnknownLanguageError

GROUPS: tuple[str, ...] = ("high", "medium", "low", "extra")


@dataclass(frozen=True)
class Language:
    """One language: ISO 639-1 ``code`` plus what Okapi and the Hub need to know about it."""

    code: str
    name: str
    group: str
    script: str
    aliases: tuple[str, ...] = ()
    release_code: str | None = None  # the file name the original release used, if not ``code``
    subsets: tuple[str, ...] = ("sft", "ranking", "rl")

    @property
    def is_okapi(self) -> bool:
        """True for the 26 languages of the Okapi paper (not the extras)."""
        return self.group != "extra"

    @property
    def file_code(self) -> str:
        """The code used in the original release's file names (``jp`` for Japanese)."""
        return self.release_code or self.code


def _lang(code: str, name: str, group: str, script: str, **kw) -> Language:
    return Language(code=code, name=name, group=group, script=script, **kw)


_ALL: tuple[Language, ...] = (
    # high resource (8)
    _lang("ru", "Russian", "high", "Cyrillic"),
    _lang("de", "German", "high", "Latin"),
    _lang("zh", "Chinese", "high", "Han"),
    _lang("fr", "French", "high", "Latin"),
    _lang("es", "Spanish", "high", "Latin"),
    _lang("it", "Italian", "high", "Latin"),
    _lang("nl", "Dutch", "high", "Latin"),
    _lang("vi", "Vietnamese", "high", "Latin"),
    # medium resource (11)
    _lang("id", "Indonesian", "medium", "Latin"),
    _lang("ar", "Arabic", "medium", "Arabic"),
    _lang("hu", "Hungarian", "medium", "Latin"),
    _lang("ro", "Romanian", "medium", "Latin"),
    _lang("da", "Danish", "medium", "Latin"),
    _lang("sk", "Slovak", "medium", "Latin"),
    _lang("uk", "Ukrainian", "medium", "Cyrillic"),
    _lang("ca", "Catalan", "medium", "Latin"),
    _lang("sr", "Serbian", "medium", "Cyrillic"),
    _lang("hr", "Croatian", "medium", "Latin"),
    _lang("hi", "Hindi", "medium", "Devanagari"),
    # low resource (7)
    _lang("bn", "Bengali", "low", "Bengali"),
    _lang("ta", "Tamil", "low", "Tamil"),
    _lang("ne", "Nepali", "low", "Devanagari"),
    _lang("ml", "Malayalam", "low", "Malayalam"),
    _lang("mr", "Marathi", "low", "Devanagari"),
    _lang("te", "Telugu", "low", "Telugu"),
    _lang("kn", "Kannada", "low", "Kannada"),
    # extras found in the released files
    _lang("en", "English", "extra", "Latin", subsets=("sft",)),
    _lang("eu", "Basque", "extra", "Latin"),
    _lang("gu", "Gujarati", "extra", "Gujarati"),
    _lang("hy", "Armenian", "extra", "Armenian"),
    _lang("pt", "Portuguese", "extra", "Latin"),
    _lang("sv", "Swedish", "extra", "Latin"),
    _lang("ja", "Japanese", "extra", "Japanese", aliases=("jp",), release_code="jp"),
    # extras for evaluation only: no Okapi data, so no subsets to download or build
    _lang("fa", "Persian", "extra", "Arabic", subsets=()),  # the multilingual Vicuna benchmark
)

LANGUAGES: dict[str, Language] = {lang.code: lang for lang in _ALL}
_ALIASES: dict[str, str] = {alias: lang.code for lang in _ALL for alias in lang.aliases}


def get_language(code: str) -> Language:
    """Look a code up (aliases such as ``jp`` resolve); unknown codes raise with the valid list."""
    key = code.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in LANGUAGES:
        raise UnknownLanguageError(
            f"unknown language code {code!r}; valid codes are: {', '.join(sorted(LANGUAGES))} "
            f"(aliases: {', '.join(f'{a}->{c}' for a, c in sorted(_ALIASES.items()))}; "
            f"groups: {', '.join(GROUPS)}, okapi, all)"
        )
    return LANGUAGES[key]


def languages(group: str | None = None) -> list[Language]:
    """All registered languages, or those of one resource group, in registry order."""
    if group is None:
        return list(_ALL)
    if group not in GROUPS:
        raise UnknownLanguageError(f"unknown group {group!r}; valid groups are: {', '.join(GROUPS)}")
    return [lang for lang in _ALL if lang.group == group]


def okapi_languages() -> list[Language]:
    """The 26 languages of the Okapi paper."""
    return [lang for lang in _ALL if lang.is_okapi]


def resolve_langs(spec: str | Iterable[str]) -> list[str]:
    """Turn ``"vi,de"``, ``["vi", "jp"]``, a group name, ``okapi`` or ``all`` into registry codes.

    Order is kept and duplicates are removed, so ``"low,bn"`` is the low group once.
    """
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    codes: list[str] = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        if item in GROUPS:
            found = [lang.code for lang in languages(item)]
        elif item == "okapi":
            found = [lang.code for lang in okapi_languages()]
        elif item == "all":
            found = list(LANGUAGES)
        else:
            found = [get_language(item).code]
        codes.extend(c for c in found if c not in codes)
    if not codes:
        raise UnknownLanguageError(f"no language given in {spec!r}")
    return codes
