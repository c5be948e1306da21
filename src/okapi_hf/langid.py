"""Which language is a text in? Offline tools shared by every stage.

Two tools, for two questions. :func:`language_score` asks how much a text looks written in one given
language: a cheap heuristic without dependencies (scripts from the language registry, and for
Latin-script languages English function words and the language's own diacritics); data creation checks
translations with it and the RL language reward uses it by default. :func:`identify` names the language
a text is written in (scripts, Devanagari marker words, and the lingua identifier), for the evaluation's
language-fidelity metric (``okapi_hf.eval.langid``) and the RL reward's ``identifier`` option. Both live
here, in a module data, training and evaluation all import, because training must not import
evaluation.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from okapi_hf.errors import DataError, OkapiError, UnknownLanguageError
from okapi_hf.languages import get_language, languages, resolve_langs

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


# -- language identification ------------------------------------------------------------------------------
#
# ``identify`` names the language a text is written in, where ``language_score`` only says how much a text
# looks like one given language. It lives here, in the foundation module that data, training and evaluation
# all import, so that the RL reward (train) and the language-fidelity metric (``okapi_hf.eval.langid``)
# share one identifier without train importing eval.
#
# Steps: the dominant script of the letters; a script that one candidate alone writes decides; Devanagari
# (Hindi, Marathi, Nepali) is decided by frequent function words and endings, because lingua has no Nepali
# model; any other shared script (Latin, Cyrillic, Arabic, Han) goes to lingua, restricted to the candidate
# languages of that script. Code blocks and links are removed first: they are no language's prose.


@dataclass(frozen=True)
class DevanagariMarkers:
    """Evidence for one Devanagari language: whole words, word endings, and parts found anywhere in a word."""

    words: frozenset[str]
    suffixes: tuple[str, ...] = ()
    infixes: tuple[str, ...] = ()

    @classmethod
    def of(cls, words: str, suffixes: str = "", infixes: str = "") -> DevanagariMarkers:
        """From space-separated lists, which read better than Python lists of Devanagari strings."""
        return cls(frozenset(words.split()), tuple(suffixes.split()), tuple(infixes.split()))

    def matches(self, word: str) -> bool:
        return word in self.words or word.endswith(self.suffixes) or any(p in word for p in self.infixes)


# Words and word parts frequent in one of the three Devanagari languages and (nearly) absent from the
# other two, written for this module. Kept short on purpose: words two of them share are left out
# (Hindi and Nepali हो "is", Hindi ही "only" and Marathi ही "this", Nepali and Marathi तर "but").
DEVANAGARI_MARKERS: dict[str, DevanagariMarkers] = {
    "ne": DevanagariMarkers.of(
        words="छ छन् छु छौं छौ छैन छैनन् हुन् हुन्छ हुन्छन् हुँदैन थियो भयो भएको गरेको गर्न गर्ने गर्नु गर्छ "
        "गर्छन् गर्नुहोस् पनि यो त्यो यस त्यस र म मेरो मलाई हामी हाम्रो तपाईं तपाईँ तपाइँ उनी आफ्नो कसरी "
        "किन कुन कुनै कति कस्तो कहाँ सक्छ सक्छु सक्छन् सक्नुहुन्छ सक्दैन लागि लागी भन्दा सबै धेरै जस्तै "
        "बारेमा अनि नै हुने भन्ने गर्दा पर्छ पर्ने चाहिन्छ मा",
        suffixes="न्छ न्छन् छन् दैन ेको एको थ्यो नुहोस् लाई",
        infixes="हरू हरु",  # the plural marker, before case endings too: मानिसहरूलाई
    ),
    "hi": DevanagariMarkers.of(
        words="है हैं था थे थी में नहीं और यह वह ये वे भी से हूँ हूं करना करने करें किया लिए होता होती सकता "
        "सकते सकती जाता जाती जाते रहा रही गया कैसे क्या क्यों आप हम मैं मुझे हमें उन्हें इसके उसके इसका "
        "उसका इसकी कुछ बहुत जैसे अपने अपनी अपना",
        suffixes="ों",  # oblique plural: लोगों, तरीकों
    ),
    "mr": DevanagariMarkers.of(
        words="आहे आहेत आहोत आहात आणि मध्ये नाही नाहीत हे हा ते काय कसे कसा कशी कोणते कोणत्या मी आम्ही आपण "
        "आपल्या तुम्ही तुमच्या त्यांना त्याचा त्याची त्याचे त्यांचे पण किंवा म्हणून म्हणजे शकता शकतो शकते "
        "शकतात करा करू केले केली केला करणे असे असते असतात अशा होऊ झाले झाली झाला गेला गेली गेले आला आली खूप "
        "सारखे साठी जास्त",
        suffixes="च्या ांना साठी मध्ये तात ायचे",
    ),
}
_DEVANAGARI_WORD = re.compile(r"[\u0900-\u0963\u0971-\u097F\u200c\u200d]+")  # letters and signs, no danda
_CODE = re.compile(
    r"```.*?(?:```|\Z)|~~~.*?(?:~~~|\Z)|`[^`\n]+`|https?://\S+|www\.\S+", re.DOTALL | re.IGNORECASE
)
DOMINANT_SCRIPT_SHARE = 0.5  # a text whose most frequent candidate script has fewer letters is undetermined
# An ideograph or kana carries about as much text as a short English word, not one letter: weighed
# as this many letters, "用pandas读取CSV文件" counts as Chinese with English terms, not the reverse.
SCRIPT_LETTER_WEIGHT: dict[str, int] = {"Han": 3, "Japanese": 3}


def identify(text: str, candidates: Sequence[str] | str | None = None) -> str | None:
    """The registry code of the language ``text`` is written in, or None when it cannot be told.

    ``candidates`` (codes, aliases or group names as :func:`~okapi_hf.languages.resolve_langs` takes
    them; default: every registry language) are the only answers possible. The same text and candidates
    give the same answer in every process. None means undetermined, never a guess: no letters outside
    code blocks and links (empty text, digits, punctuation, only code), letters mostly of a script no
    candidate writes, a tie between Nepali and another Devanagari language, or lingua declining.

    Known limits: Nepali is recognised by its function words and endings (``DEVANAGARI_MARKERS``), so a
    Devanagari text without any marker word goes to lingua's Hindi or Marathi; Serbian is taken to be
    written in Cyrillic (Latin-script Serbian reads as Croatian); one- or two-word Latin texts are weak
    evidence for lingua. Needs lingua (``pip install okapi-hf[eval]``), whatever the text.
    """
    lingua = _lingua()
    if not isinstance(text, str):
        raise DataError(f"identify() takes text (a str), got {type(text).__name__}")
    plan = _plan(_candidate_codes(candidates))
    prose = _CODE.sub(" ", unicodedata.normalize("NFC", text))
    total, coverage = 0, Counter()
    for ch, n in Counter(ch for ch in prose if _is_letter(ch)).items():
        scripts, weight = _char_scripts(ch)
        total += n * weight
        for script in scripts:
            coverage[script] += n * weight
    if not total:
        return None
    best = _dominant_script(coverage, plan)
    if best is None or coverage[best] < DOMINANT_SCRIPT_SHARE * total:
        return None
    codes = plan[best]
    if len(codes) == 1:
        return codes[0]
    if best == "Devanagari":
        codes = _devanagari_markers(prose, codes)
        if codes is None or len(codes) == 1:
            return codes[0] if codes else None
    found = _detector(codes, lingua).detect_language_of(prose)
    return None if found is None else found.iso_code_639_1.name.lower()


def require_identifier() -> None:
    """Raise :class:`~okapi_hf.errors.OkapiError` now, not mid-run, when lingua is not installed."""
    _lingua()


def _lingua() -> ModuleType:
    try:
        import lingua
    except ImportError as e:
        raise OkapiError(
            "language identification needs lingua-language-detector: pip install okapi-hf[eval]"
        ) from e
    return lingua


def _candidate_codes(candidates: Sequence[str] | str | None) -> tuple[str, ...]:
    codes = [lang.code for lang in languages()] if candidates is None else resolve_langs(candidates)
    return tuple(sorted(codes))


@functools.lru_cache(maxsize=64)
def _plan(codes: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """Candidate languages per script, checked once: every script with several must be tellable apart."""
    by_script: dict[str, list[str]] = {}
    for code in codes:
        by_script.setdefault(get_language(code).script, []).append(code)
    known = _lingua_codes()
    for script, members in by_script.items():
        rules = DEVANAGARI_MARKERS if script == "Devanagari" else {}
        unknown = [c for c in members if c not in known and c not in rules]
        if len(members) > 1 and unknown:
            raise UnknownLanguageError(
                f"cannot tell {', '.join(unknown)} from {', '.join(c for c in members if c not in unknown)} "
                f"({script} script): lingua has no model for {', '.join(unknown)}; drop it from the candidates"
            )
    return {script: tuple(members) for script, members in by_script.items()}


@functools.cache
def _lingua_codes() -> frozenset[str]:
    """Registry codes lingua has a model for (Nepali, Malayalam and Kannada are missing in lingua 2.1)."""
    return frozenset(lang.iso_code_639_1.name.lower() for lang in _lingua().Language.all())


@functools.cache
def _script_prefixes() -> dict[str, tuple[str, ...]]:
    scripts = {lang.script for lang in languages()}
    return {s: SCRIPT_NAME_PREFIXES.get(s, (s.upper() + " ",)) for s in sorted(scripts)}


@functools.lru_cache(maxsize=65536)
def _char_scripts(ch: str) -> tuple[tuple[str, ...], int]:
    """The registry scripts that write ``ch`` (an ideograph is both Han and Japanese), and its weight."""
    name = unicodedata.name(ch, "")
    scripts = tuple(script for script, prefixes in _script_prefixes().items() if name.startswith(prefixes))
    return scripts, max((SCRIPT_LETTER_WEIGHT.get(s, 1) for s in scripts), default=1)


def _dominant_script(coverage: Counter[str], plan: dict[str, tuple[str, ...]]) -> str | None:
    """The candidate script covering most letters; on a tie the narrower one (Han before Japanese).

    Chinese text is all ideographs, which Japanese writes too; Japanese text also has kana, so the
    Japanese script covers more of it than Han does.
    """
    scored = [(coverage[s], -len(_script_prefixes()[s]), s) for s in plan if coverage[s]]
    return max(scored)[2] if scored else None


def _devanagari_markers(text: str, codes: tuple[str, ...]) -> tuple[str, ...] | None:
    """The Devanagari language(s) left after counting marker words, or None for a tie Nepali is in.

    One language with the most marker words decides; with no markers, or a tie between Hindi and Marathi,
    lingua chooses among them (the lingua-known candidates). Nepali, which lingua cannot weigh, is never
    chosen without a marker, and a tie with it is undetermined.
    """
    words = [w.replace("\u200c", "").replace("\u200d", "") for w in _DEVANAGARI_WORD.findall(text)]
    hits = {code: sum(map(DEVANAGARI_MARKERS[code].matches, words)) for code in codes}
    top = max(hits.values())
    leaders = tuple(code for code in codes if hits[code] == top)
    if top and len(leaders) == 1:
        return leaders
    if top and "ne" in leaders:
        return None
    return tuple(c for c in (leaders if top else codes) if c in _lingua_codes())


@functools.lru_cache(maxsize=32)
def _detector(codes: tuple[str, ...], lingua: ModuleType) -> Any:
    """A lingua detector for these languages only, built on first use and kept for the process.

    Restricting lingua to the candidates of one script keeps it fast and small. Its models load on the
    first text that needs them, not before: for the 17 Latin-script registry languages that is about
    3.5 s and 400 MB once per process; the Devanagari, Cyrillic and Arabic pairs take a fraction of it.
    """
    iso = [lingua.IsoCode639_1.from_str(code) for code in codes]
    return lingua.LanguageDetectorBuilder.from_iso_codes_639_1(*iso).build()
