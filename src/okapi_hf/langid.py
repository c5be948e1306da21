"""Is a text written in a given language? A cheap, offline heuristic shared by every stage.

Data creation checks translations with it, RL rewards language fidelity with it and evaluation
reports drift into English with it. It reads scripts from the language registry and, for
Latin-script languages, English function words and the language's own diacritics.
"""

from __future__ import annotations

import re
import unicodedata

from okapi_hf.languages import get_language

# Unicode character names begin with the script's name ("DEVANAGARI LETTER HA"), except these.
SCRIPT_NAME_PREFIXES: dict[str, tuple[str, ...]] = {
    "Han": ("CJK ",),
    "Japanese": ("HIRAGANA", "KATAKANA", "CJK "),
}

# Letters a Latin-script language writes beyond ASCII, and roughly which share of its words carry one
# (rough guesses, not measurements). None: too rare to expect in a response of ordinary length.
LATIN_DIACRITICS: dict[str, tuple[str, float | None]] = {
    "vi": ("àáâãèéêìíòóôõùúýăđĩũơưạảấầẩẫậắằẳẵặẹẻẽếềểễệỉịọỏốồổỗộớờởỡợụủứừửữựỳỵỷỹ", 0.6),
    "de": ("äöüß", 0.08),
    "fr": ("àâæçéèêëîïôœùûüÿ", 0.12),
    "es": ("áéíñóúü", 0.1),
    "it": ("àèéìíîòóù", 0.05),
    "nl": ("éëïóöü", None),
    "id": ("", None),
    "hu": ("áéíóöőúüű", 0.3),
    "ro": ("ăâîșțşţ", 0.15),
    "da": ("æøå", 0.1),
    "sk": ("áäčďéíĺľňóôŕšťúýž", 0.3),
    "ca": ("àçèéíïòóúü", 0.12),
    "hr": ("čćđšž", 0.12),
    "eu": ("ñ", None),
    "pt": ("áâãàçéêíóôõú", 0.12),
    "sv": ("åäö", 0.15),
}
# Frequent English function words, minus those that are also common words of a Latin-script language
# here ("of" and "is" are Dutch, "was" and "an" German, "to" and "on" Slovak and Croatian, ...).
ENGLISH_MARKERS = frozenset(
    word
    for line in (
        "the and of is are was were with that this you for it which have has be not what they their there",
        "will would can from your these been should about because into than to or at by on an as we he",
        "she his her its our when how who why if do does",
    )
    for word in line.split()
)
ENGLISH_MARKER_EXCEPTIONS: dict[str, frozenset[str]] = {
    code: frozenset(words.split())
    for code, words in {
        "vi": "to do an",
        "de": "was will an",
        "fr": "on as",
        "es": "he",
        "it": "do",
        "nl": "of is",
        "hu": "be has",
        "ro": "are",
        "da": "for at by her",
        "sk": "to on",
        "ca": "can on",
        "hr": "to on do",
        "eu": "on",
        "pt": "as do",
        "sv": "for by",
    }.items()
}
ENGLISH_MARKER_SHARE = 0.2  # English prose has about this share of marker words (or more); it scores 0
DIACRITIC_WEIGHT = 0.5  # missing diacritics can halve a score at most: unaccented text is still the language
_WORD = re.compile(r"[^\W\d_]+")


def language_score(text: str, lang: str) -> float:
    """How much ``text`` looks written in ``lang``, in [0, 1]: a heuristic, not a language identifier.

    Non-Latin scripts: the share of letters in the language's script (from the registry), so drifting
    into English (Latin letters) lowers it. Latin-script languages: the share of Latin letters, times a
    penalty for English function words (``ENGLISH_MARKERS``; a share of ``ENGLISH_MARKER_SHARE`` or more
    gives 0), times a diacritics factor: a text long enough to expect at least two words with the
    language's own letters (``LATIN_DIACRITICS``) but showing fewer loses up to ``DIACRITIC_WEIGHT``.
    Text with no letters at all (empty, only digits or punctuation) scores 0: it shows no language.
    Known blind spots: languages of one script are not told apart (Hindi vs Marathi, Russian vs
    Ukrainian, German vs Dutch), and a short English text without function words passes.
    """
    language = get_language(lang)
    letters = [ch for ch in unicodedata.normalize("NFC", text) if _is_letter(ch)]
    if not letters:
        return 0.0
    prefixes = SCRIPT_NAME_PREFIXES.get(language.script, (language.script.upper() + " ",))
    in_script = sum(unicodedata.name(ch, "").startswith(prefixes) for ch in letters) / len(letters)
    if language.script != "Latin" or language.code == "en":
        return in_script
    words = _WORD.findall(unicodedata.normalize("NFC", text).lower())
    markers = ENGLISH_MARKERS - ENGLISH_MARKER_EXCEPTIONS.get(language.code, frozenset())
    english = min(1.0, sum(w in markers for w in words) / len(words) / ENGLISH_MARKER_SHARE)
    return in_script * (1.0 - english) * _diacritics_factor(words, language.code)


def _is_letter(ch: str) -> bool:
    """Letters and the vowel signs of Indic scripts; stray combining accents (NFD leftovers) are not."""
    return unicodedata.category(ch)[0] in "LM" and not unicodedata.name(ch, "").startswith("COMBINING")


def _diacritics_factor(words: list[str], code: str) -> float:
    special, typical = LATIN_DIACRITICS.get(code, ("", None))
    if typical is None or len(words) * typical < 2:  # too short to expect any: no evidence either way
        return 1.0
    marked = sum(any(ch in special for ch in word) for word in words) / len(words)
    return 1.0 - DIACRITIC_WEIGHT * (1.0 - min(1.0, marked / typical))
