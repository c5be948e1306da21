"""`data build` writes a no-code dataset folder that `load_dataset` reads, with an honest card."""

import itertools
import json

import datasets
import pytest
from huggingface_hub import DatasetCard

import okapi_hf.data.load as okapi_load
from okapi_hf.cli import main
from okapi_hf.data.build import BUILD_INFO, build_dataset, split_rows
from okapi_hf.errors import DataError


def _sft(lang, n):
    return [
        {"instruction": f"{lang} q{i}", "input": "" if i % 2 else f"ctx {i}", "output": f"{lang} a{i}"}
        for i in range(n)
    ]


def _pairs(lang, n):
    rows = []
    for i in range(n):
        responses = [f"{lang} q{i} r{k}" for k in range(4)]
        for better, worse in itertools.combinations(responses, 2):
            rows.append(
                {
                    "instruction": f"{lang} q{i}",
                    "input": "",
                    "prefered_output": better,
                    "rejected_output": worse,
                }
            )
    return rows[::-1]  # worst pairs first: the order must come from the pairs, not the file


@pytest.fixture
def raw(write_raw, tmp_path):
    for lang in ("vi", "zh"):
        write_raw("sft", lang, _sft(lang, 20))
        write_raw("ranking", lang, _pairs(lang, 10))
        write_raw(
            "rl",
            lang,
            [{"instruction": f"{lang} p{i}", "input": "", "output": i} for i in range(10)],
            jsonl=True,
        )
    return tmp_path / "raw"


def test_every_config_loads_with_typed_features(raw, tmp_path):
    result = build_dataset(raw, tmp_path / "okapi_hf", "vi,zh", progress=False)
    assert result.splits["vi"] == {"train": 18, "validation": 2}
    assert result.splits["zh-ranking"] == {"train": 9, "validation": 1}
    for config in ("vi", "vi-ranking", "vi-rl", "zh", "zh-ranking", "zh-rl"):
        ds = datasets.load_dataset(str(tmp_path / "okapi_hf"), config)
        assert set(ds) == {"train", "validation"}
        assert ds["train"].features["lang"] == datasets.Value("string")
        assert set(ds["train"]["lang"]) == {config[:2]}
    ranking = datasets.load_dataset(str(tmp_path / "okapi_hf"), "vi-ranking")
    assert ranking["train"].features["responses"] == datasets.List(datasets.Value("string"))
    row = next(r for split in ranking.values() for r in split if r["instruction"] == "vi q3")
    assert row["responses"] == [f"vi q3 r{k}" for k in range(4)]
    rl = datasets.load_dataset(str(tmp_path / "okapi_hf"), "vi-rl")
    assert sorted([*rl["train"]["output"], *rl["validation"]["output"]], key=int) == [
        str(i) for i in range(10)
    ]


def test_load_dataset_by_folder_name_from_its_parent(raw, tmp_path, monkeypatch):
    build_dataset(raw, tmp_path / "okapi_hf", "vi", subsets="sft", progress=False)
    monkeypatch.chdir(tmp_path)
    ds = datasets.load_dataset("okapi_hf", "vi")
    assert ds["train"].num_rows + ds["validation"].num_rows == 20


def test_okapi_load_dataset_mixes_languages(raw, tmp_path, monkeypatch):
    out = tmp_path / "okapi_hf"
    build_dataset(raw, out, "vi,zh", progress=False)
    mix = okapi_load.load_dataset("vi,zh", "ranking", path=out)
    assert mix["train"].num_rows == 18
    assert list(mix["train"]["lang"]) == ["vi"] * 9 + ["zh"] * 9
    one = okapi_load.load_dataset("zh", path=out, split="validation")
    assert isinstance(one, datasets.Dataset) and one.num_rows == 2
    monkeypatch.setenv("OKAPI_HF_DATASET", str(out))
    assert okapi_load.load_dataset("vi", "rl")["train"].num_rows == 9


def test_load_errors_are_clear(raw, tmp_path):
    out = tmp_path / "okapi_hf"
    build_dataset(raw, out, "vi", progress=False)
    with pytest.raises(DataError, match="config 'de' is not in"):
        okapi_load.load_dataset("de", path=out)
    with pytest.raises(DataError, match="split 'test' not found"):
        okapi_load.load_dataset("vi", path=out, split="test")
    with pytest.raises(DataError, match="Hub could not be reached"):
        okapi_load.load_dataset("vi", path="someone/okapi_hf")  # tests run with HF_HUB_OFFLINE=1
    with pytest.raises(DataError, match="neither a local folder nor a Hub repo id"):
        okapi_load.load_dataset("vi", path=tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="not a folder written by"):
        okapi_load.load_dataset("vi", path=tmp_path / "empty")


def test_card_declares_configs_features_license_and_report(raw, tmp_path):
    out = tmp_path / "okapi_hf"
    build_dataset(raw, out, "vi,zh", progress=False)
    card = DatasetCard.load(out / "README.md")
    assert card.data.license == "cc-by-nc-4.0"
    assert card.data.language == ["vi", "zh"]
    names = [c["config_name"] for c in card.data.configs]
    assert names == ["vi", "vi-ranking", "vi-rl", "zh", "zh-ranking", "zh-rl"]
    infos = {i["config_name"]: i for i in card.data.dataset_info}
    assert {f["name"] for f in infos["vi-ranking"]["features"]} == {
        "id",
        "lang",
        "instruction",
        "input",
        "responses",
    }
    assert {s["name"]: s["num_examples"] for s in infos["vi"]["splits"]} == {"train": 18, "validation": 2}
    assert "| `vi-ranking` | Vietnamese (`vi`) | high | ranking | 9 | 1 |" in card.text
    assert "`multilingual-rl-tuning-64k/vi.jsonl`" in card.text and "Lai" in card.text
    record = json.loads((out / BUILD_INFO).read_text())
    assert record["vi-rl"]["cast_to_string"] == 10 and len(record["vi"]["source_sha256"]) == 64


def test_building_more_languages_extends_the_folder(raw, tmp_path, write_raw):
    out = tmp_path / "okapi_hf"
    build_dataset(raw, out, "vi", progress=False)
    build_dataset(raw, out, "zh", subsets="sft", progress=False)
    card = DatasetCard.load(out / "README.md")
    assert [c["config_name"] for c in card.data.configs] == ["vi", "vi-ranking", "vi-rl", "zh"]
    write_raw("sft", "vi", _sft("vi", 30))
    build_dataset(raw, out, "vi", subsets="sft", progress=False)
    assert okapi_load.load_dataset("vi", path=out)["train"].num_rows == 27
    assert len(list((out / "data" / "vi" / "sft").glob("*.parquet"))) == 2


def test_invalid_rows_stop_the_build_unless_skipped(raw, tmp_path, write_raw):
    rows = _sft("vi", 20)
    rows[4] = {"instruction": "broken", "input": ""}
    rows.append(dict(rows[0]))
    write_raw("sft", "vi", rows)
    out = tmp_path / "okapi_hf"
    with pytest.raises(DataError) as err:
        build_dataset(raw, out, "vi", progress=False)
    message = str(err.value)
    assert "2 row(s) in 1 file(s) cannot be used; nothing was written" in message
    assert "missing field 'output' (rows 5)" in message and "duplicate row (rows 21)" in message
    assert not out.exists()
    result = build_dataset(raw, out, "vi", skip_invalid=True, progress=False)
    summary = result.summary()
    assert "1 missing field 'output'; 1 duplicate row" in summary
    loaded = okapi_load.load_dataset("vi", path=out)
    assert loaded["train"].num_rows + loaded["validation"].num_rows == 19


def test_missing_subsets_are_all_named(write_raw, tmp_path):
    write_raw("sft", "vi", _sft("vi", 4))
    with pytest.raises(DataError) as err:
        build_dataset(tmp_path / "raw", tmp_path / "out", "vi,de", progress=False)
    message = str(err.value)
    assert message.startswith("5 raw file(s) missing")
    assert "multilingual-ranking-data-42k/vi.json" in message and "multilingual-alpaca-52k/de.json" in message
    assert build_dataset(tmp_path / "raw", tmp_path / "out", "vi", "sft", progress=False).splits["vi"]


def test_english_has_only_sft(write_raw, tmp_path):
    write_raw("sft", "en", _sft("en", 10))
    result = build_dataset(tmp_path / "raw", tmp_path / "out", "en", progress=False)
    assert list(result.splits) == ["en"]
    assert "en: no ranking data exists for this language" in result.summary()


def test_split_is_seeded_sized_and_keyed_on_the_source_row():
    rows = [{"id": f"vi-sft-{i}"} for i in range(1, 101)]
    a, b, c = split_rows(rows, 0.1, 1), split_rows(rows, 0.1, 1), split_rows(rows, 0.1, 2)
    assert len(a["validation"]) == 10 and len(a["train"]) == 90
    assert a == b and a["validation"] != c["validation"]
    assert split_rows(rows[:1], 0.1, 0) == {"train": rows[:1]}
    zh = split_rows([{"id": f"zh-sft-{i}"} for i in range(1, 101)], 0.1, 1)
    source_rows = [{r["id"].rsplit("-", 1)[1] for r in part["validation"]} for part in (a, zh)]
    assert source_rows[0] == source_rows[1]  # parallel translations: same prompts held out everywhere


def test_validation_rows_are_the_same_source_rows_in_every_language(raw, tmp_path):
    build_dataset(raw, tmp_path / "o", "vi,zh", subsets="sft", progress=False)
    held_out = [
        {
            i.rsplit("-", 1)[1]
            for i in okapi_load.load_dataset(lang, path=tmp_path / "o", split="validation")["id"]
        }
        for lang in ("vi", "zh")
    ]
    assert held_out[0] == held_out[1] and len(held_out[0]) == 2


def test_a_foreign_readme_is_never_overwritten(raw, tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    (project / "README.md").write_text("# my notes\n")
    with pytest.raises(DataError, match="did not write"):
        build_dataset(raw, project, "vi", progress=False)
    assert (project / "README.md").read_text() == "# my notes\n"
    assert not (project / "data").exists()


def test_nothing_to_build_is_a_clear_error(raw, tmp_path):
    with pytest.raises(DataError, match="nothing to build"):
        build_dataset(raw, tmp_path / "o", "en", subsets="ranking", progress=False)


def test_raw_manifest_is_checked(raw, tmp_path):
    (raw / "SHA256SUMS").write_text(f"{'0' * 64}  multilingual-alpaca-52k/vi.json\n")
    with pytest.raises(DataError, match=r"vi.json: sha256 [0-9a-f]{64} does not match 0{64}"):
        build_dataset(raw, tmp_path / "o", "vi", subsets="sft", progress=False)
    assert not (tmp_path / "o").exists() and not (tmp_path / ".o.staging").exists()


def test_a_failed_rebuild_keeps_the_previous_build(raw, tmp_path, write_raw):
    out = tmp_path / "o"
    build_dataset(raw, out, "vi", subsets="sft", progress=False)
    before = (out / "README.md").read_text()
    write_raw("sft", "vi", [{"instruction": "only"}])
    with pytest.raises(DataError):
        build_dataset(raw, out, "vi", subsets="sft", progress=False)
    assert (out / "README.md").read_text() == before
    assert okapi_load.load_dataset("vi", path=out)["train"].num_rows == 18


def test_cli_build_prints_a_summary_and_fails_cleanly(raw, tmp_path, capsys, write_raw):
    out = tmp_path / "cli_out"
    assert main(["data", "build", "--raw-dir", str(raw), "--langs", "vi", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "vi    ranking        60       10        9       1        0  -" in printed
    write_raw("sft", "zh", text='[{"instruction": "a", "input": "", "output": "b"},]')
    assert main(["data", "build", "--raw-dir", str(raw), "--langs", "zh", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "zh.json: malformed JSON at line 1" in err and "Traceback" not in err


def test_mixture_keeps_a_split_only_some_languages_have(write_raw, tmp_path, caplog):
    write_raw("sft", "vi", _sft("vi", 1))
    write_raw("sft", "zh", _sft("zh", 20))
    build_dataset(tmp_path / "raw", tmp_path / "o", "vi,zh", subsets="sft", progress=False)
    with caplog.at_level("WARNING"):
        mix = okapi_load.load_dataset("vi,zh", path=tmp_path / "o")
    assert mix["train"].num_rows == 1 + 18 and mix["validation"].num_rows == 2
    assert "split 'validation'" in caplog.text and "has no rows for vi" in caplog.text


def test_card_example_only_names_configs_that_exist(write_raw, tmp_path):
    write_raw("sft", "en", _sft("en", 10))
    write_raw("sft", "vi", _sft("vi", 10))
    write_raw("ranking", "vi", _pairs("vi", 4))
    build_dataset(tmp_path / "raw", tmp_path / "o", "en,vi", subsets="sft,ranking", progress=False)
    text = (tmp_path / "o" / "README.md").read_text()
    assert 'load_dataset("okapi_hf", "vi-ranking")' in text
    assert '"en-ranking"' not in text
