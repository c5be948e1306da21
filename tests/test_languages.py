import json

import pytest

from okapi_hf.cli import main
from okapi_hf.errors import UnknownLanguageError
from okapi_hf.languages import GROUPS, LANGUAGES, get_language, languages, okapi_languages, resolve_langs


def test_okapi_has_26_languages_in_the_papers_groups():
    assert len(okapi_languages()) == 26
    sizes = {g: len(languages(g)) for g in GROUPS}
    assert sizes == {"high": 8, "medium": 11, "low": 7, "extra": 8}
    assert [lang.code for lang in languages("low")] == ["bn", "ta", "ne", "ml", "mr", "te", "kn"]
    assert {lang.code for lang in languages("extra")} == {"en", "eu", "gu", "hy", "pt", "sv", "ja", "fa"}


def test_an_evaluation_only_language_has_no_okapi_data():
    persian = get_language("fa")
    assert (persian.name, persian.script, persian.group, persian.subsets) == (
        "Persian",
        "Arabic",
        "extra",
        (),
    )
    assert not persian.is_okapi


def test_every_language_has_a_name_and_script():
    for lang in LANGUAGES.values():
        assert lang.name and lang.script and lang.group in GROUPS
    assert get_language("hi").script == "Devanagari"
    assert get_language("sr").group == "medium"


def test_alias_resolves_and_keeps_the_release_file_code():
    ja = get_language("jp")
    assert ja.code == "ja" and ja.file_code == "jp"
    assert get_language(" VI ").code == "vi"
    assert get_language("en").subsets == ("sft",)


def test_unknown_code_lists_the_valid_codes():
    with pytest.raises(UnknownLanguageError) as err:
        get_language("xx")
    message = str(err.value)
    assert "'xx'" in message
    for code in ("vi", "bn", "ja", "jp->ja"):
        assert code in message


def test_resolve_langs_expands_groups_and_dedupes():
    assert resolve_langs("vi,de") == ["vi", "de"]
    assert resolve_langs(["jp", "ja"]) == ["ja"]
    assert resolve_langs("low,bn,vi") == ["bn", "ta", "ne", "ml", "mr", "te", "kn", "vi"]
    assert len(resolve_langs("okapi")) == 26
    assert len(resolve_langs("all")) == len(LANGUAGES)
    with pytest.raises(UnknownLanguageError):
        resolve_langs(" , ")
    with pytest.raises(UnknownLanguageError, match="unknown group"):
        languages("tiny")


def test_cli_lists_a_group(capsys):
    assert main(["languages", "--group", "low", "--format", "codes"]) == 0
    assert capsys.readouterr().out.strip() == "bn,ta,ne,ml,mr,te,kn"
    assert main(["languages", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["code"] for r in rows} == set(LANGUAGES)


def test_cli_unknown_language_is_a_clear_error(tmp_path, capsys):
    code = main(
        ["data", "build", "--raw-dir", str(tmp_path), "--langs", "vi,xx", "--out", str(tmp_path / "o")]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert "unknown language code 'xx'" in err and "Traceback" not in err
