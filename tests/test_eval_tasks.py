"""The okapi_* lm-eval tasks: generated files, loading, the Okapi protocol end to end, bad input.

The end-to-end tests run lm-eval's real ``simple_evaluate`` (and once its CLI) with a tiny random
Llama on excerpts of Okapi's real ARC, MMLU and TruthfulQA files and on a HellaSwag fixture in the
release format (all under ``tests/fixtures/okapi-eval``, see its README), then rebuild every prompt
from the protocol *in this file* (not with ``okapi_hf.eval.protocol``) and recompute each choice's
log-likelihood with transformers.
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from okapi_hf.errors import DataError, UnknownLanguageError
from okapi_hf.eval import (
    BENCHMARKS,
    UnknownBenchmarkError,
    generate_tasks,
    group_name,
    protocol,
    task_languages,
    task_name,
    tasks_path,
)
from okapi_hf.languages import okapi_languages

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "okapi-eval"
E_ITEM = "ARC-Challenge/validation/TIMSS_2003_8_pg29"  # the one validation item whose answer is E
LM_EVAL_ARC_VI = "okapi/arc_multilingual/arc_vi.yaml"  # lm-eval's own task, relative to lm_eval/tasks
MAX_LENGTH = (
    16384  # 25-shot MMLU is ~7k tiny-tokenizer tokens: no left truncation, so the prompts compare whole
)
EXTRAS = ["eu", "gu", "hy", "pt", "sv"]


def _rows(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))


# --------------------------------------------------------------------------------------------------
# The protocol written out again from OKAPI_FACTS.md, independently of okapi_hf.eval.protocol.


def _clean(text: str) -> str:
    text = text.strip().replace(" [title]", ". ")
    return re.sub(r"\[.*?\]", "", text).replace("  ", " ")


def _expected(bench: str, row: dict) -> tuple[str, list[str], int]:
    if bench == "arc":
        options = [row.get(f"option_{k}") for k in "abcde"]
        choices = [o for o in options if o]  # as released: the authors did not clean ARC
        return f"Question: {row['instruction']}\nAnswer:", choices, "ABCDE".index(row["answer"])
    if bench == "mmlu":
        opts = [row[f"option_{k}"] for k in "abcd"]
        query = f"Question: {row['instruction']}\nChoices:\n" + "".join(
            f"{k}. {o}\n" for k, o in zip("ABCD", opts, strict=True)
        )
        return query + "Answer:", opts, "ABCD".index(row["answer"])
    ctx = row["ctx_a"] + " " + row["ctx_b"].capitalize()
    return _clean(row["activity_label"] + ": " + ctx), [_clean(e) for e in row["endings"]], int(row["label"])


def _shot(bench: str, row: dict) -> str:
    query, choices, gold = _expected(bench, row)
    return f"{query} {choices[gold]}"


def _split_shots(context: str, query: str, shots: set[str]) -> list[str]:
    """The few-shot examples of a logged context: shot texts joined by blank lines, then the query."""
    assert context.endswith(query), "the logged context does not end with the protocol's query"
    prefix = context[: len(context) - len(query)]
    if not prefix:
        return []
    assert prefix.endswith("\n\n"), "the last shot is not followed by a blank line"
    found, pending = [], ""
    for piece in prefix[:-2].split("\n\n"):  # a shot may itself contain a blank line: join until it matches
        pending = f"{pending}\n\n{piece}" if pending else piece
        if pending in shots:
            found.append(pending)
            pending = ""
    assert not pending, f"context holds text that is no few-shot example: {pending[:200]!r}"
    return found


class Scorer:
    """Log-likelihood of a continuation given a context, with plain transformers (no lm-eval)."""

    def __init__(self, path: Path) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        self.tok = AutoTokenizer.from_pretrained(path)
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()

    def loglikelihood(self, context: str, continuation: str) -> float:
        torch = self.torch
        ctx = self.tok(context, add_special_tokens=False)["input_ids"]
        cont = self.tok(continuation, add_special_tokens=False)["input_ids"]
        assert self.tok(context + continuation, add_special_tokens=False)["input_ids"] == ctx + cont
        assert len(ctx) + len(cont) <= MAX_LENGTH
        with torch.no_grad():
            logits = self.model(torch.tensor([ctx + cont])).logits[0].double()
        logprobs = torch.log_softmax(logits[len(ctx) - 1 : -1], dim=-1)
        return float(logprobs[torch.arange(len(cont)), torch.tensor(cont)].sum())


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    from okapi_hf.testing import make_tiny_model

    return make_tiny_model("llama", tmp_path_factory.mktemp("tiny") / "llama")


@pytest.fixture(scope="module")
def scorer(tiny_model) -> Scorer:
    return Scorer(tiny_model)


def _task_manager(*extra: Path, metadata: dict | None = None):
    from lm_eval.tasks import TaskManager

    return TaskManager(
        include_path=[str(tasks_path()), *map(str, extra)], include_defaults=False, metadata=metadata
    )


def _evaluate(
    tiny_model: Path,
    eval_dir: Path,
    tasks: list[str],
    extra: tuple[Path, ...] = (),
    metadata: dict | None = None,
    **kwargs,
):
    from lm_eval import simple_evaluate

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(protocol.EVAL_DIR_ENV, str(eval_dir))
        return simple_evaluate(
            model="hf",
            model_args=f"pretrained={tiny_model},max_length={MAX_LENGTH}",
            tasks=tasks,
            device="cpu",
            batch_size=1,
            log_samples=True,
            task_manager=_task_manager(*extra, metadata=metadata),
            **kwargs,
        )


def _check_samples(
    samples: list[dict], bench: str, rows: dict, shots: set[str], n_shots: int, scorer: Scorer
):
    """Prompts, per-choice log-likelihoods, acc and acc_norm of every logged doc against our own."""
    assert samples
    for sample in samples:
        row = rows[sample["doc"]["id"] if bench != "hellaswag" else sample["doc"]["ind"]]
        query, choices, gold = _expected(bench, row)
        assert sample["doc"]["gold"] == gold
        contexts = {ctx for ctx, _ in sample["arguments"]}
        assert len(contexts) == 1
        context = contexts.pop()
        found = _split_shots(context, query, shots)
        assert len(found) == n_shots == len(set(found))
        assert context == "\n\n".join([*found, query])  # the whole prompt, rebuilt
        assert [cont for _, cont in sample["arguments"]] == [" " + c for c in choices]
        ours = np.array([scorer.loglikelihood(context, " " + c) for c in choices])
        theirs = np.array([resp[0] for resp in sample["filtered_resps"]])
        np.testing.assert_allclose(theirs, ours, rtol=1e-5, atol=1e-3)
        lengths = np.array([len(c) for c in choices], dtype=float)
        assert sample["acc"] == float(np.argmax(ours) == gold)
        assert sample["acc_norm"] == float(np.argmax(ours / lengths) == gold)


# --------------------------------------------------------------------------------------------------
# Generated files, names, loading


def test_generator_output_matches_the_shipped_files(tmp_path):
    written = generate_tasks.write(tmp_path)
    shipped = tasks_path()
    # tasks (4 benchmarks + arc_val + mmlu_val), language groups, benchmark groups, resource groups, okapi
    assert len(written) == 31 * 6 + 31 + 6 + 4 + 1
    for path in written:
        rel = path.relative_to(tmp_path)
        assert (shipped / rel).read_text(encoding="utf-8") == path.read_text(encoding="utf-8"), rel
    assert generate_tasks.differences() == []
    assert generate_tasks.main(["--check"]) == 0
    task_files = [p for p in written if p.parent.name != "groups"]
    assert all(3 <= len(p.read_text().splitlines()) <= 6 for p in task_files)
    assert all(p.read_text().startswith(generate_tasks.HEADER) for p in task_files)

    # --check notices a hand edit and a stale file; write() repairs both.
    (tmp_path / "arc" / "okapi_arc_vi.yaml").write_text("edited\n")
    (tmp_path / "arc" / "okapi_arc_xx.yaml").write_text(generate_tasks.HEADER + "task: okapi_arc_xx\n")
    assert sorted(generate_tasks.differences(tmp_path)) == [
        "differs: arc/okapi_arc_vi.yaml",
        "stale: arc/okapi_arc_xx.yaml",
    ]
    assert generate_tasks.main(["--check", "--out", str(tmp_path)]) == 1
    generate_tasks.write(tmp_path)
    assert generate_tasks.differences(tmp_path) == []


def test_names_and_languages_come_from_the_registry():
    okapi = [lang.code for lang in okapi_languages()]
    assert BENCHMARKS == ("arc", "hellaswag", "mmlu", "truthfulqa")
    for bench in (*BENCHMARKS, "arc_val", "mmlu_val"):
        assert task_languages(bench) == okapi + EXTRAS
    assert task_name("arc", "vi") == "okapi_arc_vi"
    assert task_name("mmlu_val", "de") == "okapi_mmlu_val_de"
    assert task_name("arc_val", "de") == "okapi_arc_val_de"
    assert task_name("truthfulqa", "vi") == "okapi_truthfulqa_vi"
    assert task_name("hellaswag", " ZH ") == "okapi_hellaswag_zh"
    assert [group_name(s) for s in ("arc", "vi", "low", "all")] == [
        "okapi_arc",
        "okapi_vi",
        "okapi_low",
        "okapi",
    ]
    with pytest.raises(UnknownLanguageError, match="unknown language code 'xx'"):
        task_name("arc", "xx")
    for lang in ("en", "ja", "jp"):  # in the registry, but Okapi released no benchmark for them
        with pytest.raises(UnknownLanguageError, match="no Okapi arc task"):
            task_name("arc", lang)
    with pytest.raises(UnknownBenchmarkError, match="unknown benchmark 'gsm8k'"):
        task_name("gsm8k", "vi")
    assert (tasks_path() / "README.md").is_file()


def _write_tiny_release(root: Path, langs: list[str]) -> None:
    """Three valid rows per split, every language, the original release layout."""
    arc = [
        {
            "id": f"r{i}",
            "instruction": f"Q{i}?",
            "option_a": "a",
            "option_b": "b",
            "option_c": "c",
            "answer": "B",
        }
        for i in range(3)
    ]
    mmlu = [{**r, "option_d": "d"} for r in arc]
    hellaswag = [
        {"ind": i, "activity_label": "L", "ctx_a": "a.", "ctx_b": "b", "endings": ["x", "y"], "label": 1}
        for i in range(3)
    ]
    truthfulqa = [
        {
            "question": f"Q{i}?",
            "mc1_targets_choices": ["b", "a"],
            "mc1_targets_labels": [1, 0],
            "mc2_targets_choices": ["b", "c", "a"],
            "mc2_targets_labels": [1, 1, 0],
        }
        for i in range(3)
    ]
    for folder, files in protocol.RELEASE_FOLDERS.items():
        (root / files).mkdir(parents=True, exist_ok=True)
        rows = {"arc": arc, "mmlu": mmlu, "hellaswag": hellaswag, "truthfulqa": truthfulqa}[folder]
        for lang in langs:
            for suffix in protocol.RELEASE_SPLITS[folder].values():
                (root / files / f"{lang}_{suffix}.json").write_text(json.dumps(rows))


@pytest.mark.slow
def test_every_task_and_group_loads_and_aggregates(tmp_path, monkeypatch):
    from lm_eval.api.task import ConfigurableTask

    langs = task_languages("arc")
    _write_tiny_release(tmp_path, langs)
    monkeypatch.setenv(protocol.EVAL_DIR_ENV, str(tmp_path))
    tm = _task_manager()
    okapi = [lang.code for lang in okapi_languages()]
    variants = ("arc_val", "mmlu_val")
    tasks = {task_name(b, lang) for b in (*BENCHMARKS, *variants) for lang in langs}
    groups = {
        group_name(s) for s in (*BENCHMARKS, *variants, *langs, "high", "medium", "low", "extra", "all")
    }
    assert set(tm.all_subtasks) == tasks
    assert set(tm.all_groups) == groups
    assert not tm.all_tags

    loaded = tm.load(
        [
            "okapi",
            "okapi_extra",
            "okapi_mmlu_val",
            "okapi_arc_val",
            *(task_name(v, x) for v in variants for x in EXTRAS),
        ]
    )
    assert set(loaded["tasks"]) == tasks
    for name, task in loaded["tasks"].items():
        assert isinstance(task, ConfigurableTask)
        assert len(task.eval_docs) == 3, name
        doc = task.eval_docs[0]
        assert task.doc_to_choice(doc)[task.doc_to_target(doc)] == ("y" if "hellaswag" in name else "b")
        assert doc["okapi_position"] == 0  # the authors' document order

    expected_leaves = {
        "okapi": {task_name(b, lang) for b in BENCHMARKS for lang in okapi},
        "okapi_extra": {task_name(b, lang) for b in BENCHMARKS for lang in EXTRAS},
        "okapi_low": {
            task_name(b, lang) for b in BENCHMARKS for lang in ("bn", "ta", "ne", "ml", "mr", "te", "kn")
        },
        "okapi_vi": {"okapi_arc_vi", "okapi_hellaswag_vi", "okapi_mmlu_vi", "okapi_truthfulqa_vi"},
        "okapi_arc": {task_name("arc", lang) for lang in okapi},
        "okapi_mmlu_val": {task_name("mmlu_val", lang) for lang in okapi},
    }
    for group in sorted(groups):
        built = tm.load(group)["groups"][group]
        aggregates = [(a.metric, a.aggregation, a.weight_by_size) for a in built.aggregate_metric_list]
        single = ("okapi_arc", "okapi_hellaswag", "okapi_mmlu", "okapi_arc_val", "okapi_mmlu_val")
        if group == "okapi_truthfulqa":
            metrics = ["mc1", "mc2"]
        elif group in single:
            metrics = ["acc", "acc_norm"]
        else:  # groups over benchmarks: each metric averaged over the tasks that report it
            metrics = ["acc", "acc_norm", "mc1", "mc2"]
        assert aggregates == [(m, "mean", False) for m in metrics], group
        leaves = {t.task_name for t in built.get_all_tasks()}
        assert leaves == expected_leaves.get(group, leaves), group
        assert len(leaves) == len(built.get_all_tasks())  # no task counted twice in a macro mean
    assert len(tm.load("okapi_high")["tasks"]) == 8 * 4
    assert len(tm.load("okapi_medium")["tasks"]) == 11 * 4


# --------------------------------------------------------------------------------------------------
# The protocol, pinned with literal strings


def test_clean_text_is_okapis_cleaning():
    # Bracket spans are dropped after the strip, so the space after "[header]" stays, as in Okapi.
    assert protocol.clean_text("  [header] How to sleep [title] Turn it off. [step] Rest.  ") == (
        " How to sleep. Turn it off. Rest."
    )
    assert protocol.clean_text("a [substeps] b") == "a b"
    assert protocol.clean_text("a   b") == "a  b"  # one replace pass, as the authors wrote it
    assert protocol.clean_text("end [step]") == "end "  # not stripped again
    assert protocol.clean_text("Ánh sáng [x] xanh") == "Ánh sáng xanh"


def test_arc_doc_takes_every_non_empty_option_including_e():
    rows = {r["id"]: r for r in _rows(FIXTURES / "m_arc" / "vi_validation.json")}
    doc = protocol.arc_doc(rows[E_ITEM])
    assert doc == (
        "Question: Cơ quan nào SAU ĐÂY KHÔNG đặt ở bụng?\nAnswer:",
        ["gan", "thận", "dạ dày", "bàng quang", "tim"],
        4,
    )
    three = protocol.arc_doc(rows["ARC-Challenge/validation/NYSEDREGENTS_2014_4_19"])
    assert three.choices == ["giảm", "tăng", "giữ nguyên"] and three.gold == 1
    hub_style = {**rows[E_ITEM], "option_e": None, "answer": "D"}  # Hub copies carry option_e: null
    assert protocol.arc_doc(hub_style).choices == ["gan", "thận", "dạ dày", "bàng quang"]


def test_mmlu_doc_scores_answer_texts():
    row = _rows(FIXTURES / "m_mmlu" / "vi_val.json")[0]
    doc = protocol.mmlu_doc(row)
    assert doc.query == (
        "Question: Theo Marquis, những lợi ích nào của quan điểm của ông về phá thai?\nChoices:\n"
        "A. Nó tránh được những vấn đề liên quan đến việc xác định tính cách con người như làm sao để giải "
        "thích việc giết trẻ sơ sinh là sai.\nB. Nó cung cấp một phân tích hợp lý về tính cách con người.\n"
        "C. cả hai điều trên\nD. không có điều trên nào\nAnswer:"
    )
    assert doc.choices[2:] == ["cả hai điều trên", "không có điều trên nào"] and doc.gold == 0


def test_hellaswag_doc_cleans_and_capitalises():
    rows = _rows(FIXTURES / "m_hellaswag" / "vi_validation.json")
    wikihow = protocol.hellaswag_doc(rows[1])
    assert wikihow.query == (
        "Sức khỏe: Cách ngủ ngon hơn. Tắt điện thoại trước khi ngủ một giờ. "
        "Ánh sáng xanh từ màn hình làm cơ thể khó buồn ngủ."
    )
    assert (
        wikihow.choices[0] == " Giữ phòng ngủ mát và tối. Nhiệt độ khoảng hai mươi độ giúp bạn ngủ sâu hơn."
    )
    # str.capitalize(), as in the authors' code, also lower-cases the rest of ctx_b ("iPhone").
    assert protocol.hellaswag_doc(rows[2]).query.endswith(". Sau đó anh ấy dùng iphone của mình để")
    assert protocol.hellaswag_doc(rows[3]).choices[0] == "đưa bình tưới cho em  và chỉ cách tưới gốc cây."
    assert protocol.hellaswag_doc({**rows[0], "label": "3"}).gold == 3  # Hub copies store labels as text


@pytest.mark.parametrize(
    ("bench", "change", "message"),
    [
        ("arc", {"option_b": None}, "option_b is missing but option_c is present"),
        ("arc", {"option_b": None, "option_c": None, "option_d": None}, "missing options: found 1"),
        ("arc", {"answer": "F"}, "answer 'F' is not one of the letters A, B, C, D, E"),
        ("arc", {"answer": "E"}, r"answer 'E' is out of range: the row has 4 options \(A-D\)"),
        ("arc", {"instruction": None}, "missing field 'instruction'"),
        ("hellaswag", {"endings": ["[step]", "b", "c", "d"]}, "choice 0 is empty after cleaning"),
        ("mmlu", {"option_d": None}, "missing option: option_d"),
        ("mmlu", {"answer": "E"}, "answer 'E' is not one of the letters A, B, C, D"),
        ("hellaswag", {"label": 4}, r"label 4 is out of range for 4 endings \(0-3\)"),
        ("hellaswag", {"label": "x"}, "label 'x' is not an integer"),
        ("hellaswag", {"endings": ["only one"]}, "missing options: 'endings' has 1 item"),
    ],
)
def test_malformed_rows_name_the_row(bench, change, message):
    base = {
        "arc": {
            "id": "q",
            "instruction": "Q?",
            "option_a": "a",
            "option_b": "b",
            "option_c": "c",
            "option_d": "d",
            "answer": "A",
        },
        "hellaswag": {
            "activity_label": "L",
            "ctx_a": "a",
            "ctx_b": "b",
            "endings": ["w", "x", "y", "z"],
            "label": 0,
        },
    }["arc" if bench == "mmlu" else bench]  # ARC and MMLU rows share their columns
    with pytest.raises(DataError, match=f"^somefile.json, row 7: {message}"):
        protocol.DOC_FUNCTIONS[bench]({**base, **change}, "somefile.json, row 7")


# --------------------------------------------------------------------------------------------------
# Data sources and bad input through lm-eval's TaskManager


def test_malformed_file_fails_at_load_naming_file_and_row(tmp_path, monkeypatch):
    good = {"id": "g", "instruction": "Q?", "option_a": "a", "option_b": "b", "option_c": "c", "answer": "A"}
    (tmp_path / "m_arc").mkdir()
    (tmp_path / "m_arc" / "vi_train.json").write_text(json.dumps([good] * 3))
    bad = tmp_path / "m_arc" / "vi_test.json"
    bad.write_text(json.dumps([good, good, {**good, "answer": "D"}]))
    monkeypatch.setenv(protocol.EVAL_DIR_ENV, str(tmp_path))
    tm = _task_manager()
    with pytest.raises(DataError, match=re.escape(f"{bad}, row 2: answer 'D' is out of range")):
        tm.load("okapi_arc_vi")
    bad.write_text(json.dumps([good, {k: v for k, v in good.items() if k != "option_b"}]))
    with pytest.raises(
        DataError, match=re.escape(f"{bad}, row 1: option_b is missing but option_c is present")
    ):
        tm.load("okapi_arc_vi")
    bad.write_text('[{"id": "g",')
    with pytest.raises(DataError, match=re.escape(f"{bad}: malformed JSON")):
        tm.load("okapi_arc_vi")


def test_missing_file_names_path_and_variable(tmp_path, monkeypatch):
    monkeypatch.setenv(protocol.EVAL_DIR_ENV, str(tmp_path))
    tm = _task_manager()
    with pytest.raises(DataError) as err:
        tm.load("okapi_arc_vi")
    assert str(tmp_path / "m_arc" / "vi_train.json") in str(err.value)
    assert "OKAPI_HF_EVAL_DIR" in str(err.value)

    # The fixture folder, like the release as recovered, has no MMLU test files: the message points at
    # the val variant.
    monkeypatch.setenv(protocol.EVAL_DIR_ENV, str(FIXTURES))
    with pytest.raises(DataError) as err:
        tm.load("okapi_mmlu_vi")
    assert str(FIXTURES / "m_mmlu" / "vi_test.json") in str(err.value)
    assert "okapi_mmlu_val_vi" in str(err.value)
    task = tm.load("okapi_mmlu_val_vi")["tasks"]["okapi_mmlu_val_vi"]
    assert task.config.test_split == "val" and task.config.num_fewshot == 25
    assert len(task.eval_docs) == len(_rows(FIXTURES / "m_mmlu" / "vi_val.json"))


def test_unknown_language(tmp_path, monkeypatch):
    tm = _task_manager()
    assert "okapi_arc_xx" not in tm.all_tasks
    with pytest.raises(KeyError, match="okapi_arc_xx"):
        tm.load("okapi_arc_xx")
    with pytest.raises(UnknownLanguageError, match="unknown language code 'xx'"):
        protocol.load_benchmark("arc", "xx", tmp_path)
    # A derived task asking the loader for a language without data.
    (tmp_path / "okapi_arc_en.yaml").write_text(
        f"include: {tasks_path() / 'arc' / '_okapi_arc_yaml'}\ntask: okapi_arc_en\ndataset_kwargs:\n  lang: en\n"
    )
    monkeypatch.setenv(protocol.EVAL_DIR_ENV, str(tmp_path))
    with pytest.raises(UnknownLanguageError, match="Okapi released no arc data for 'en'"):
        _task_manager(tmp_path).load("okapi_arc_en")


def test_uncaught_okapi_errors_print_one_line(monkeypatch, capsys):
    seen = []
    monkeypatch.setattr(sys, "excepthook", lambda *exc: seen.append(exc[0]))
    protocol.install_excepthook()
    protocol.install_excepthook()  # idempotent: one wrapper, not two
    hook = sys.excepthook
    assert hook.okapi_hf
    hook(DataError, DataError("f.json, row 3: answer 'F' is not one of the letters"), None)
    assert capsys.readouterr().err.startswith("okapi-hf error: f.json, row 3: answer 'F'")
    hook(ValueError, ValueError("other"), None)  # anything else goes to the previous hook
    monkeypatch.setenv(protocol.TRACEBACK_ENV, "1")
    hook(DataError, DataError("x"), None)
    assert seen == [ValueError, DataError] and capsys.readouterr().err == ""


def test_hub_copy_offline_and_in_hub_layout(tmp_path, monkeypatch):
    monkeypatch.delenv(protocol.EVAL_DIR_ENV, raising=False)
    with pytest.raises(DataError, match=r"Hub copy alexandrainst/m_arc \(config 'vi'\).*OKAPI_HF_EVAL_DIR"):
        protocol.load_benchmark("arc", "vi")["test"]

    # A Hub-layout repository (config per language, split `validation`) read through the Hub path.
    repo = tmp_path / "m_arc"
    (repo / "vi").mkdir(parents=True)
    rows = _rows(FIXTURES / "m_arc" / "vi_validation.json")[:5]
    rows = [{**{f"option_{k}": None for k in "abcde"}, **r} for r in rows]
    for split in ("train", "validation", "test"):
        (repo / "vi" / f"{split}.jsonl").write_text(
            "\n".join(json.dumps(r, ensure_ascii=False) for r in rows)
        )
    configs = "".join(f"  - split: {s}\n    path: vi/{s}.jsonl\n" for s in ("train", "validation", "test"))
    (repo / "README.md").write_text(f"---\nconfigs:\n- config_name: vi\n  data_files:\n{configs}---\n")
    monkeypatch.setitem(protocol.HUB_DATASETS, "arc", str(repo))
    docs = protocol.process_docs("arc", protocol.load_benchmark("arc", "vi")["val"])
    assert [d["query"] for d in docs] == [_expected("arc", r)[0] for r in rows]
    assert [d["gold"] for d in docs] == [_expected("arc", r)[2] for r in rows]


def test_protocol_matches_an_independent_reading_of_every_fixture_row():
    read = set()
    for bench, folder in (("arc", "m_arc"), ("mmlu", "m_mmlu"), ("hellaswag", "m_hellaswag")):
        for path in sorted((FIXTURES / folder).glob("*.json")):
            for i, row in enumerate(_rows(path)):
                doc = protocol.DOC_FUNCTIONS[bench](row, f"{path}, row {i}")
                assert tuple(doc) == _expected(bench, row), f"{folder}/{path.name}, row {i}"
            read.add(f"{folder}/{path.name}")
    # every language and split of the excerpts was read (the ARC item with answer E among them)
    assert read >= {
        *(f"m_arc/{lang}_{split}.json" for lang in ("vi", "de", "zh") for split in ("train", "test")),
        "m_arc/vi_validation.json",
        *(f"m_mmlu/{lang}_{split}.json" for lang in ("vi", "de") for split in ("dev", "val")),
        "m_hellaswag/vi_validation.json",
    }


# --------------------------------------------------------------------------------------------------
# End to end with lm-eval and a tiny model


@pytest.fixture(scope="module")
def okapi_vi_run(tmp_path_factory, tiny_model):
    """One simple_evaluate over the shipped group okapi_vi and a derived ARC task on the validation split.

    The data folder is the original layout, from the fixture excerpts: ARC and TruthfulQA; MMLU with
    val standing in as the test split (the recovered release has no MMLU test files); the HellaSwag
    fixture.
    """
    root = tmp_path_factory.mktemp("eval-data")
    for folder in ("m_arc", "m_hellaswag", "m_truthfulqa"):
        (root / folder).symlink_to(FIXTURES / folder)
    (root / "m_mmlu").mkdir()
    (root / "m_mmlu" / "vi_dev.json").symlink_to(FIXTURES / "m_mmlu" / "vi_dev.json")
    (root / "m_mmlu" / "vi_test.json").symlink_to(FIXTURES / "m_mmlu" / "vi_val.json")
    derived = tmp_path_factory.mktemp("derived-tasks")
    (derived / "okapi_arc_vi_validation.yaml").write_text(
        f"include: {tasks_path() / 'arc' / 'okapi_arc_vi.yaml'}\ntask: okapi_arc_vi_validation\ntest_split: val\n"
    )
    val_ids = [r["id"] for r in _rows(FIXTURES / "m_arc" / "vi_validation.json")]
    # documents come in the authors' Random(42) order: a file row's place in it
    order = list(range(len(val_ids)))
    random.Random(42).shuffle(order)
    samples = {
        "okapi_arc_vi": [0, 1, 2],
        "okapi_mmlu_vi": [0, 1],
        "okapi_hellaswag_vi": list(range(6)),
        "okapi_truthfulqa_vi": [0, 1],
        "okapi_arc_vi_validation": [
            order.index(val_ids.index(E_ITEM)),
            order.index(val_ids.index("ARC-Challenge/validation/NYSEDREGENTS_2014_4_19")),
        ],
    }
    return _evaluate(tiny_model, root, ["okapi_vi", "okapi_arc_vi_validation"], (derived,), samples=samples)


@pytest.mark.slow
def test_arc_25_shot_prompts_and_scores(okapi_vi_run, scorer):
    train = _rows(FIXTURES / "m_arc" / "vi_train.json")
    rows = {r["id"]: r for r in _rows(FIXTURES / "m_arc" / "vi_test.json")}
    shots = {_shot("arc", r) for r in train}
    _check_samples(okapi_vi_run["samples"]["okapi_arc_vi"], "arc", rows, shots, 25, scorer)
    assert okapi_vi_run["configs"]["okapi_arc_vi"]["num_fewshot"] == 25


@pytest.mark.slow
def test_arc_item_with_answer_e(okapi_vi_run, scorer):
    train = _rows(FIXTURES / "m_arc" / "vi_train.json")
    rows = {r["id"]: r for r in _rows(FIXTURES / "m_arc" / "vi_validation.json")}
    samples = okapi_vi_run["samples"]["okapi_arc_vi_validation"]
    _check_samples(samples, "arc", rows, {_shot("arc", r) for r in train}, 25, scorer)
    e_item = next(s for s in samples if s["doc"]["id"] == E_ITEM)
    assert len(e_item["arguments"]) == 5 and e_item["target"] == 4
    assert e_item["arguments"][4][1] == " tim"


@pytest.mark.slow
def test_mmlu_25_shot_from_dev_scored_on_val(okapi_vi_run, scorer):
    dev = _rows(FIXTURES / "m_mmlu" / "vi_dev.json")
    rows = {r["id"]: r for r in _rows(FIXTURES / "m_mmlu" / "vi_val.json")}
    _check_samples(
        okapi_vi_run["samples"]["okapi_mmlu_vi"], "mmlu", rows, {_shot("mmlu", r) for r in dev}, 25, scorer
    )


@pytest.mark.slow
def test_hellaswag_fixture_zero_shot(okapi_vi_run, scorer):
    rows = {str(r["ind"]): r for r in _rows(FIXTURES / "m_hellaswag" / "vi_validation.json")}
    samples = okapi_vi_run["samples"]["okapi_hellaswag_vi"]
    assert len(samples) == len(rows)
    _check_samples(samples, "hellaswag", rows, set(), 0, scorer)


@pytest.mark.slow
def test_group_okapi_vi_is_the_macro_mean(okapi_vi_run):
    from lm_eval.utils import make_table

    results = okapi_vi_run["results"]
    members = ["okapi_arc_vi", "okapi_hellaswag_vi", "okapi_mmlu_vi"]
    assert [results[m]["sample_len"] for m in members] == [3, 6, 2]  # unequal: macro != pooled mean
    for metric in ("acc,none", "acc_norm,none"):
        per_task = [results[m][metric] for m in members]
        assert results["okapi_vi"][metric] == pytest.approx(np.mean(per_task))
        for m in members:
            logged = okapi_vi_run["samples"][m]
            assert results[m][metric] == pytest.approx(np.mean([s[metric.split(",")[0]] for s in logged]))
    for metric in ("mc1,none", "mc2,none"):  # TruthfulQA is the only member with mc1/mc2
        assert results["okapi_vi"][metric] == pytest.approx(results["okapi_truthfulqa_vi"][metric])
    table = make_table(okapi_vi_run, "groups")
    assert re.search(r"\|okapi_vi\s*\|.*\|acc\s*\|", table) and re.search(r"\|\s*\|.*\|acc_norm\s*\|", table)


@pytest.mark.slow
def test_zero_shot_arc_agrees_with_lm_evals_arc_vi_except_where_it_cleans(tmp_path, tiny_model):
    """lm-eval's own arc_vi on the same local rows: identical 0-shot prompts and scores, except that it
    cleans ARC text (dropping a bracketed span the question needs) where the authors did not."""
    import lm_eval
    from lm_eval.tasks._yaml_loader import load_yaml

    theirs_yaml = Path(lm_eval.__file__).parent / "tasks" / LM_EVAL_ARC_VI
    # Validation first: the json builder takes its columns from the first file, and of the excerpts only
    # validation has an option_e column (its E item); the other splits then get option_e as null, as
    # every row of the Hub copy that lm-eval's port reads has.
    files = {s: str(FIXTURES / "m_arc" / f"vi_{s}.json") for s in ("validation", "train", "test")}
    (tmp_path / "arc_vi_local.yaml").write_text(
        f"include: {theirs_yaml}\ntask: lm_eval_arc_vi_local\ndataset_path: json\ndataset_name: null\n"
        f"dataset_kwargs:\n  data_files: {json.dumps(files)}\n"
    )
    rows = _rows(FIXTURES / "m_arc" / "vi_test.json")
    bracket = next(i for i, r in enumerate(rows) if r["id"] == "ARC-Challenge/test/Mercury_400887")
    picked = list(range(len(rows)))  # every row of the excerpt, the bracketed one among them
    out = _evaluate(
        tiny_model,
        FIXTURES,
        ["okapi_arc_vi", "lm_eval_arc_vi_local"],
        (tmp_path,),
        metadata={"shots": "lm-eval"},  # lm-eval's file order, so that both runs pick the same rows
        num_fewshot=0,
        samples={"okapi_arc_vi": picked, "lm_eval_arc_vi_local": picked},
    )
    ours = {s["doc"]["id"]: s for s in out["samples"]["okapi_arc_vi"]}
    theirs = {s["doc"]["id"]: s for s in out["samples"]["lm_eval_arc_vi_local"]}
    assert set(ours) == set(theirs) == {rows[i]["id"] for i in picked}
    for doc_id, a in ours.items():
        b = theirs[doc_id]
        if doc_id == rows[bracket]["id"]:
            assert "[năng lượng riêng (c) = 0.129 J/(g °C)]" in a["arguments"][0][0]
            assert "năng lượng riêng" not in b["arguments"][0][0]  # lm-eval's port deleted it
            continue
        assert a["arguments"] == b["arguments"]  # same prompt, same continuations
        assert a["filtered_resps"] == b["filtered_resps"]
        assert (a["acc"], a["acc_norm"]) == (b["acc"], b["acc_norm"])

    # Where they differ: the shots (25 from train vs none by default), the split names, the data source.
    ours_cfg = load_yaml(tasks_path() / "arc" / "okapi_arc_vi.yaml", resolve_func=False)
    assert "shots" not in (ours_cfg.get("metadata") or {})  # the authors' stream is the default
    theirs_cfg = load_yaml(theirs_yaml, resolve_func=False)
    assert (ours_cfg["num_fewshot"], theirs_cfg.get("num_fewshot")) == (25, None)
    assert (ours_cfg["fewshot_split"], theirs_cfg.get("fewshot_split")) == ("train", None)
    assert (ours_cfg["test_split"], theirs_cfg["test_split"]) == ("test", "test")
    assert (ours_cfg["validation_split"], theirs_cfg["validation_split"]) == ("val", "validation")
    assert theirs_cfg["dataset_path"] == "alexandrainst/m_arc" and "dataset_path" not in ours_cfg
    assert "group" not in theirs_cfg and theirs_cfg["tag"] == ["arc_multilingual"]  # a tag: no aggregate row


@pytest.mark.slow
def test_lm_eval_cli(tmp_path, tiny_model):
    """The plain lm_eval CLI with --include_path: the documented entry point, then a missing file."""
    env = {**os.environ, protocol.EVAL_DIR_ENV: str(FIXTURES)}
    cmd = [
        sys.executable,
        "-m",
        "lm_eval",
        "--model",
        "hf",
        "--model_args",
        f"pretrained={tiny_model}",
        "--include_path",
        str(tasks_path()),
        "--tasks",
        "okapi_arc_vi,okapi_mmlu_val_vi",
        "--limit",
        "2",
        "--device",
        "cpu",
        "--batch_size",
        "1",
        "--output_path",
        str(tmp_path / "out"),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ("okapi_arc_vi", "okapi_mmlu_val_vi"):
        assert re.search(rf"\|{name}\s*\|\s*2\|none\s*\|\s*25\|acc\s*\|", proc.stdout), proc.stdout
    (result,) = (tmp_path / "out").glob("**/results_*.json")
    data = json.loads(result.read_text())
    assert data["n-shot"] == {"okapi_arc_vi": 25, "okapi_mmlu_val_vi": 25}
    assert set(data["results"]["okapi_arc_vi"]) >= {"acc,none", "acc_norm,none"}

    # The fixture folder has no MMLU test file: the CLI ends with our message, not a traceback.
    cmd[cmd.index("--tasks") + 1] = "okapi_mmlu_vi"
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-2]
    assert last.startswith(f"okapi-hf error: missing data file {FIXTURES / 'm_mmlu' / 'vi_test.json'}")
    assert "OKAPI_HF_EVAL_DIR" in last and "okapi_mmlu_val_vi" in last
