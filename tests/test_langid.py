"""Language identification (okapi_hf.langid.identify), the language-fidelity metric and the RL reward option.

Excerpts of the real Vicuna questions (English, Nepali, Persian) and real Persian model answers from
the TaCo release are in tests/fixtures/vicuna-bench (see its README); the Hindi, Marathi and Nepali
sentences below were written for these tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from okapi_hf import langid
from okapi_hf.errors import ConfigError, DataError, OkapiError, UnknownLanguageError
from okapi_hf.eval.langid import UNDETERMINED, language_fidelity
from okapi_hf.langid import identify, language_score
from okapi_hf.train.recipes import parse_stage_args
from okapi_hf.train.rewards import LANGUAGE_REWARDS, language_fidelity_reward, language_id_reward
from okapi_hf.train.rl import OkapiGRPOConfig, OkapiRLOOConfig

VICUNA = Path(__file__).resolve().parent / "fixtures" / "vicuna-bench"
QUESTIONS = VICUNA / "questions"

# The same five sentences in Nepali, Hindi and Marathi: a plan, a judgement, a question, a habit and
# a past event. Devanagari all, so only the words tell them apart.
PARALLEL = {
    "ne": [
        "म भोलि काठमाडौं जाँदैछु।",
        "यो किताब धेरै राम्रो छ।",
        "तपाईंलाई कस्तो छ?",
        "हामी बिहान सबेरै उठ्छौं र चिया पिउँछौं।",
        "बच्चाहरू विद्यालय गए।",
    ],
    "hi": [
        "मैं कल दिल्ली जा रहा हूँ।",
        "यह किताब बहुत अच्छी है।",
        "आप कैसे हैं?",
        "हम सुबह जल्दी उठते हैं और चाय पीते हैं।",
        "बच्चे स्कूल गए थे।",
    ],
    "mr": [
        "मी उद्या मुंबईला जात आहे.",
        "हे पुस्तक खूप छान आहे.",
        "तुम्ही कसे आहात?",
        "आम्ही सकाळी लवकर उठतो आणि चहा पितो.",
        "मुले शाळेत गेली होती.",
    ],
}
PERSIAN = "این کتاب بسیار خوب است و من آن را به همه دوستانم پیشنهاد می‌کنم."
ENGLISH = "This book is very good and I recommend it to all of my friends."


def _questions(lang: str) -> list[dict]:
    with (QUESTIONS / f"{lang}.jsonl").open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


@pytest.fixture
def fresh_caches():
    """Forget the per-process plans and detectors, before and after (tests patch what they read)."""
    langid._plan.cache_clear()
    langid._detector.cache_clear()
    yield
    langid._plan.cache_clear()
    langid._detector.cache_clear()


# -- the real benchmark ----------------------------------------------------------------------------------


@pytest.mark.parametrize("lang", ["ne", "fa", "en"])
def test_the_benchmark_questions_are_identified_as_their_language(lang):
    questions = _questions(lang)
    # the first three questions of each of the nine categories
    assert len(questions) == 27 and len({q["category"] for q in questions}) == 9
    assert {q["lang"] for q in questions} == {lang}
    found = [identify(q["turns"][0]) for q in questions]
    misses = [(q["question_id"], code) for q, code in zip(questions, found, strict=True) if code != lang]
    share = 1 - len(misses) / len(questions)
    assert share >= 0.95, f"{lang}: {share:.3f} identified, misses (id, identified as): {misses}"


def test_real_persian_answers_with_code_and_numbers_are_persian():
    answers = json.loads((VICUNA / "judgments" / "fa.json").read_text(encoding="utf-8"))
    with_code = [a for a in answers if "```" in a["answer"]]
    assert with_code, "the coding answers hold code blocks"
    report = language_fidelity([a["answer"] for a in answers], ["fa"] * len(answers))
    assert report.fidelity >= 0.95, [answers[i]["id"] for i in report.misses()]
    # the English judge texts about those answers are English, not Persian
    judged = language_fidelity([a["judgement"] for a in answers], ["en"] * len(answers))
    assert judged.fidelity == 1.0


# -- Devanagari: Nepali, Hindi, Marathi ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lang", "text"), [(lang, text) for lang, texts in PARALLEL.items() for text in texts]
)
def test_nepali_hindi_and_marathi_are_told_apart(lang, text):
    assert identify(text) == lang
    assert identify(text, ["ne", "hi", "mr"]) == lang


def test_the_heuristic_cannot_tell_them_apart_but_the_identifier_can():
    hindi = PARALLEL["hi"][1]
    assert language_score(hindi, "ne") == 1.0  # same script: the heuristic's known blind spot
    assert identify(hindi) == "hi"


def test_nepali_needs_a_marker_and_a_tie_with_it_is_undetermined():
    assert identify("नमस्ते") in {"hi", "mr"}  # no marker word: lingua, which has no Nepali, decides
    assert identify("यो है") is None  # one Nepali and one Hindi marker: cannot tell


# -- undetermined, scripts, code -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["", "   \n", "12345", "3.14 + 2 = 5.14 !!!", "```python\nprint('hello world')\n```", "`x = 1`"],
)
def test_text_without_prose_letters_is_undetermined(text):
    assert identify(text) is None


def test_a_script_no_candidate_writes_is_undetermined():
    assert identify("Γεια σου κόσμε, τι κάνεις σήμερα;") is None  # Greek: no registry language
    assert identify(PERSIAN, ["ne", "hi"]) is None  # Arabic script, Devanagari candidates only


def test_code_blocks_and_links_do_not_count():
    code = "```python\ndef add(first_number, second_number):\n    return first_number + second_number\n```"
    text = f"در اینجا یک تابع ساده پایتون آمده است:\n{code}\nمنبع: https://docs.python.org/3/tutorial"
    assert identify(text) == "fa"


def test_one_script_one_candidate_decides_without_lingua_weighing():
    assert identify("എന്റെ പേര് രാമൻ ആണ്.") == "ml"  # lingua has no Malayalam model
    assert identify("ನನ್ನ ಹೆಸರು ರಾಮ.") == "kn"  # nor Kannada
    assert identify("আমি বাংলায় কথা বলি।") == "bn"
    assert identify("Ես հայերեն եմ խոսում։") == "hy"


def test_chinese_and_japanese_and_mixed_english_terms():
    assert identify("我每天早上喝一杯咖啡。") == "zh"
    assert identify("私は毎朝コーヒーを一杯飲みます。") == "ja"
    assert identify("用pandas读取CSV文件，然后计算平均值。") == "zh"  # ideographs weigh more than letters


def test_languages_of_one_shared_script_go_to_lingua():
    assert identify("Wie kann ich meine Zeit besser einteilen?") == "de"
    assert identify("Comment puis-je mieux gérer mon temps ?") == "fr"
    assert identify("Как мне лучше распоряжаться своим временем?") == "ru"
    assert identify("Як мені краще розпоряджатися своїм часом?") == "uk"
    assert identify(PERSIAN) == "fa"
    assert identify("هذا الكتاب جيد جدا وأنصح به جميع أصدقائي.") == "ar"


# -- candidates and errors -------------------------------------------------------------------------------


def test_candidates_restrict_the_answers():
    hindi = PARALLEL["hi"][1]
    assert identify(hindi, ["ne", "mr"]) == "mr"  # Hindi is not allowed; the closest allowed answer
    assert identify(ENGLISH, ["de", "fr"]) in {"de", "fr"}
    assert identify(ENGLISH, ["en", "ne"]) == "en"
    assert identify("私は毎朝コーヒーを一杯飲みます。", ["jp", "zh"]) == "ja"  # aliases resolve
    assert identify(PARALLEL["ne"][0], "low") == "ne"  # so do group names


def test_unknown_codes_and_bad_input_are_clear_errors():
    with pytest.raises(UnknownLanguageError, match="unknown language code 'xx'"):
        identify(ENGLISH, ["en", "xx"])
    with pytest.raises(DataError, match="takes text"):
        identify(None)  # type: ignore[arg-type]


def test_a_language_that_cannot_be_told_apart_is_refused(monkeypatch, fresh_caches):
    markers = {k: v for k, v in langid.DEVANAGARI_MARKERS.items() if k != "ne"}
    monkeypatch.setattr(langid, "DEVANAGARI_MARKERS", markers)
    with pytest.raises(UnknownLanguageError, match="cannot tell ne from hi"):
        identify(PARALLEL["ne"][0], ["ne", "hi"])
    assert identify(PARALLEL["ne"][0], ["ne", "en"]) == "ne"  # alone in its script: fine


def test_without_lingua_identify_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "lingua", None)  # makes `import lingua` fail
    with pytest.raises(OkapiError, match=r"pip install okapi-hf\[eval\]"):
        identify(PARALLEL["ne"][0])


def test_the_same_text_gets_the_same_answer_from_a_fresh_detector(fresh_caches):
    texts = [ENGLISH, PERSIAN, "Ово је моја кућа.", "Как дела?", *PARALLEL["hi"], *PARALLEL["mr"]]
    first = [identify(t) for t in texts]
    assert [identify(t) for t in texts] == first
    langid._plan.cache_clear()
    langid._detector.cache_clear()
    assert [identify(t) for t in texts] == first
    assert first[:4] == ["en", "fa", "sr", "ru"]


def test_another_process_with_another_hash_seed_gives_the_same_answers():
    texts = [
        PERSIAN,
        "Ово је моја кућа.",
        "Як справи?",
        "我每天早上喝一杯咖啡。",
        *PARALLEL["hi"],
        *PARALLEL["mr"],
    ]
    script = "import json, sys; from okapi_hf.langid import identify; print(json.dumps([identify(t) for t in json.load(sys.stdin)]))"
    procs = [  # both at once: each pays Python's and lingua's start-up
        subprocess.Popen(
            [sys.executable, "-c", script],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        )
        for seed in ("1", "2")
    ]
    outputs = [proc.communicate(json.dumps(texts), timeout=120)[0] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0]
    here = [identify(t) for t in texts]
    assert [json.loads(out) for out in outputs] == [here, here]


# -- the language-fidelity metric ------------------------------------------------------------------------


def test_fidelity_counts_matches_undetermined_and_confusions():
    texts = [PARALLEL["ne"][0], PARALLEL["ne"][1], PARALLEL["hi"][1], ENGLISH, "", PERSIAN, ENGLISH]
    langs = ["ne", "ne", "ne", "ne", "ne", "fa", "fa"]
    report = language_fidelity(texts, langs)
    assert report.identified == ["ne", "ne", "hi", "en", None, "fa", "en"]
    assert (report.answers, report.matched, report.undetermined) == (7, 3, 1)
    assert report.fidelity == pytest.approx(3 / 7)
    assert report.determined_fidelity == pytest.approx(3 / 6)  # undetermined answers left out
    ne, fa = report.by_lang["ne"], report.by_lang["fa"]
    assert (ne.answers, ne.matched, ne.undetermined, ne.fidelity) == (5, 2, 1, 0.4)
    assert ne.determined_fidelity == 0.5 and fa.fidelity == 0.5
    assert report.confusion == {"ne": {"ne": 2, "hi": 1, "en": 1, None: 1}, "fa": {"fa": 1, "en": 1}}
    assert report.misses() == [2, 3, 4, 6]

    data = json.loads(json.dumps(report.to_dict()))  # JSON-ready
    assert data["confusion"]["ne"] == {"ne": 2, "hi": 1, "en": 1, UNDETERMINED: 1}
    assert data["by_lang"]["fa"]["matched"] == 1 and data["identified"][4] is None
    summary = report.summary()
    assert (
        "0.429 over 7 answers" in summary
        and "ne: 0.400 (2/5); identified instead: hi 1, en 1, und 1" in summary
    )


def test_fidelity_aliases_empty_input_and_bad_input():
    assert language_fidelity(["私は毎朝コーヒーを一杯飲みます。"], ["jp"]).by_lang["ja"].matched == 1
    empty = language_fidelity([], [])
    assert (empty.answers, empty.fidelity, empty.by_lang) == (0, None, {})
    with pytest.raises(DataError, match="2 texts but 1 languages"):
        language_fidelity(["a", "b"], ["en"])
    with pytest.raises(UnknownLanguageError, match="language 1"):
        language_fidelity(["a", "b"], ["en", "xx"])
    with pytest.raises(DataError, match="text 1 is NoneType"):
        language_fidelity(["a", None], ["en", "en"])
    with pytest.raises(UnknownLanguageError, match="fa are not among the candidates"):
        language_fidelity([PERSIAN], ["fa"], candidates=["en", "ar"])


def test_fidelity_with_candidates_matches_identify():
    texts = [t for texts in PARALLEL.values() for t in texts]
    report = language_fidelity(texts, ["ne"] * len(texts), candidates=["ne", "hi", "mr"])
    assert report.identified == [identify(t, ["ne", "hi", "mr"]) for t in texts]
    assert report.confusion == {"ne": {"ne": 5, "hi": 5, "mr": 5}}


# -- the RL reward option --------------------------------------------------------------------------------


def test_language_id_reward_takes_trls_arguments():
    completions = [PARALLEL["ne"][1], PARALLEL["hi"][1], "", [{"role": "assistant", "content": PERSIAN}]]
    scores = language_id_reward(
        prompts=["p"] * 4, completions=completions, lang=["ne", "ne", "ne", "fa"], completion_ids=[[1]] * 4
    )
    assert scores == [1.0, 0.0, 0.0, 1.0]
    # the heuristic rewards the Hindi answer to a Nepali prompt: same script
    assert language_fidelity_reward(prompts=["p"], completions=[PARALLEL["hi"][1]], lang=["ne"]) == [1.0]
    assert language_id_reward.__name__ == "language_id_reward"  # trl logs it by this name
    with pytest.raises(DataError, match="`lang` column"):
        language_id_reward(prompts=["p"], completions=["x"])


@pytest.mark.parametrize("config_class", [OkapiRLOOConfig, OkapiGRPOConfig])
def test_the_rl_config_chooses_the_language_reward(config_class, monkeypatch):
    default = config_class(output_dir="x", language_reward_weight=0.5, use_cpu=True, bf16=False)
    assert LANGUAGE_REWARDS[default.language_reward] is language_fidelity_reward
    chosen = config_class(
        output_dir="x", language_reward="identifier", language_reward_weight=0.5, use_cpu=True, bf16=False
    )
    assert LANGUAGE_REWARDS[chosen.language_reward] is language_id_reward
    assert chosen.reward_weights_for_funcs() == [1.0, 0.5]
    with pytest.raises(ConfigError, match="language_reward must be one of heuristic, identifier"):
        config_class(output_dir="x", language_reward="fasttext", use_cpu=True, bf16=False)

    monkeypatch.setitem(sys.modules, "lingua", None)
    config_class(output_dir="x", language_reward_weight=0.5, use_cpu=True, bf16=False)  # heuristic: no lingua
    with pytest.raises(OkapiError, match=r"pip install okapi-hf\[eval\]"):
        config_class(
            output_dir="x", language_reward="identifier", language_reward_weight=0.5, use_cpu=True, bf16=False
        )


def test_a_recipe_override_chooses_the_identifier():
    items = ["bf16=false", "language_reward=identifier", "language_reward_weight=0.5"]
    _, config, _ = parse_stage_args("rl", OkapiGRPOConfig, "grpo", items, lang="vi")
    assert (config.language_reward, config.reward_weights_for_funcs()) == ("identifier", [1.0, 0.5])
    with pytest.raises(OkapiError, match="invalid choice: 'fasttext'"):
        parse_stage_args("rl", OkapiRLOOConfig, "rloo", ["bf16=false", "language_reward=fasttext"], lang="vi")
