"""`okapi-hf eval run` and its report: table, chart and model-index from lm-eval's results."""

import json
import os
from statistics import mean

import pytest
import yaml
from huggingface_hub.repocard_data import model_index_to_eval_results

from okapi_hf.cli import main
from okapi_hf.errors import OkapiError
from okapi_hf.eval.harness import select_tasks, write_report
from okapi_hf.eval.report import collect_scores, documents_table, markdown_table, model_index, task_details

EVAL_DIR = os.path.join(os.path.dirname(__file__), "fixtures", "okapi-eval")

FAKE = {
    "results": {
        "okapi_arc_vi": {"acc,none": 0.25, "acc_norm,none": 0.30},
        "okapi_arc_bn": {"acc,none": 0.21, "acc_norm,none": 0.20},
        "okapi_mmlu_vi": {"acc,none": 0.27, "acc_norm,none": 0.28},
        "okapi_mmlu_val_de": {"acc,none": 0.26, "acc_norm,none": 0.24},
        "okapi_truthfulqa_vi": {"mc1,none": 0.31, "mc2,none": 0.45},
        "okapi_arc": {"acc,none": 0.23, "acc_norm,none": 0.25},  # a group: not a (bench, lang) score
        "okapi_mmlu_val": {"acc,none": 0.24, "acc_norm,none": 0.26},  # a group that looks like mmlu + "val"
        "arc_vi": {"acc,none": 0.9},  # not ours
    },
    "n-samples": {
        "okapi_arc_vi": {"original": 1170, "effective": 1170},
        "okapi_arc_bn": {"original": 1165, "effective": 50},  # a --limit run
        "okapi_mmlu_vi": {"original": 13000, "effective": 13000},
        "okapi_mmlu_val_de": {"original": 1400, "effective": 1400},
        "okapi_truthfulqa_vi": {"original": 785, "effective": 785},
    },
}


def test_collect_scores_keeps_only_okapi_tasks():
    scores = collect_scores(FAKE)
    assert set(scores) == {
        ("arc", "vi"),
        ("arc", "bn"),
        ("mmlu", "vi"),
        ("mmlu_val", "de"),
        ("truthfulqa", "vi"),
    }
    assert scores[("arc", "bn")] == {"acc": 0.21, "acc_norm": 0.20}
    assert scores[("truthfulqa", "vi")] == {"mc1": 0.31, "mc2": 0.45}


def test_table_has_languages_by_group_splits_partial_marks_and_macro_means():
    table = markdown_table(collect_scores(FAKE), "acc", task_details(FAKE))  # acc: what the authors report
    lines = table.splitlines()
    assert lines[0] == "Okapi benchmarks, `acc` (x100)"
    assert lines[2] == "| language | group | ARC-Challenge [test] | MMLU [test] | MMLU (val split) | mean |"
    assert lines[4] == "| German (`de`) | high | - | - | 26.0 | 26.0 |"
    assert lines[5] == "| Vietnamese (`vi`) | high | 25.0 | 27.0 | - | 26.0 |"
    assert lines[6] == "| Bengali (`bn`) | low | 21.0* | - | - | 21.0* |"  # 50 of 1165 documents
    macro_arc = 100 * mean([0.25, 0.21])
    assert (
        lines[7]
        == f"| **macro mean** |  | {macro_arc:.1f}* | 27.0 | 26.0 | {mean([macro_arc, 27.0, 26.0]):.1f}* |"
    )
    assert "partial run" in lines[9]
    truthful = markdown_table(collect_scores(FAKE), "mc2", task_details(FAKE)).splitlines()
    assert truthful[2] == "| language | group | TruthfulQA (MC) [validation] | mean |"
    assert truthful[4] == "| Vietnamese (`vi`) | high | 45.0 | 45.0 |"


def test_documents_table_names_split_and_count():
    table = documents_table(task_details(FAKE))
    assert "| `okapi_arc_bn` | test | 50 | 1165 | partial (`--limit`) |" in table
    assert "| `okapi_truthfulqa_vi` | validation | 785 | 785 | full |" in table


def test_model_index_parses_as_hub_eval_results():
    name, results = model_index_to_eval_results(model_index(collect_scores(FAKE), "tiny"))
    assert name == "tiny" and len(results) == 10
    by_key = {(r.dataset_type, r.metric_type): r.metric_value for r in results}
    assert by_key[("okapi_arc_vi", "acc_norm")] == 30.0
    assert by_key[("okapi_truthfulqa_vi", "mc2")] == 45.0
    assert {r.dataset_split for r in results if r.dataset_type == "okapi_arc_vi"} == {"test"}


def test_write_report_files(tmp_path):
    write_report(FAKE, tmp_path, "tiny")
    report = (tmp_path / "results.md").read_text()
    assert report.count("**macro mean**") == 4  # acc, acc_norm, mc1, mc2
    assert report.index("`acc` (x100)") < report.index("`acc_norm` (x100)")  # the authors' metric first
    assert "What was scored" in report
    assert (tmp_path / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    block = yaml.safe_load((tmp_path / "model_index.yaml").read_text())
    assert block["model-index"][0]["name"] == "tiny"
    with pytest.raises(OkapiError, match="no okapi_\\* task scores"):
        write_report({"results": {"arc_vi": {}}}, tmp_path, "x")


def test_select_tasks_and_its_errors():
    assert select_tasks("vi,de", "arc,mmlu") == [
        "okapi_arc_vi",
        "okapi_arc_de",
        "okapi_mmlu_vi",
        "okapi_mmlu_de",
    ]
    assert len(select_tasks("okapi", "arc")) == 26
    assert select_tasks("vi", "mmlu_val") == ["okapi_mmlu_val_vi"]
    assert select_tasks("vi", "truthfulqa,arc_val") == ["okapi_truthfulqa_vi", "okapi_arc_val_vi"]
    assert select_tasks("vi") == [
        "okapi_arc_vi",
        "okapi_hellaswag_vi",
        "okapi_mmlu_vi",
        "okapi_truthfulqa_vi",
    ]
    with pytest.raises(OkapiError, match="unknown benchmark"):
        select_tasks("vi", "gsm8k")
    with pytest.raises(OkapiError, match="no Okapi task for arc/en"):
        select_tasks("en", "arc")


def test_cli_tasks_path(capsys):
    assert main(["eval", "tasks-path"]) == 0
    path = capsys.readouterr().out.strip()
    assert os.path.isdir(os.path.join(path, "arc"))


@pytest.mark.slow
def test_eval_run_end_to_end(tmp_path, monkeypatch, capsys):
    from okapi_hf.testing import make_tiny_model

    model = make_tiny_model("llama", tmp_path / "tiny")
    monkeypatch.setenv("OKAPI_HF_EVAL_DIR", EVAL_DIR)
    out = tmp_path / "out"
    argv = ["eval", "run", "--model", str(model), "--model-name", "tiny-llama", "--langs", "vi,de"]
    assert main([*argv, "--benchmarks", "arc", "--out", str(out), "--limit", "2", "--device", "cpu"]) == 0
    assert capsys.readouterr().err.count("deprecated") == 0
    results = json.loads((out / "results.json").read_text())
    assert results["okapi_hf"]["model_name"] == "tiny-llama"
    assert yaml.safe_load((out / "model_index.yaml").read_text())["model-index"][0]["name"] == "tiny-llama"
    assert (out / "results.md").read_text().startswith("Model: `tiny-llama`")
    assert set(results["okapi_hf"]["tasks"]) == {"okapi_arc_vi", "okapi_arc_de"}
    assert results["okapi_hf"]["shots"] == "authors"
    assert results["config"]["model"] == "okapi-hf"  # the fast scorer by default
    assert "add_bos_token=False" in results["config"]["model_args"]  # the authors added no BOS
    scores = collect_scores(results)
    assert set(scores) == {("arc", "vi"), ("arc", "de")}
    assert all(d["partial"] for d in task_details(results).values())
    table = (out / "results.md").read_text()
    assert "Vietnamese (`vi`)" in table and "German (`de`)" in table
    assert (out / "results.png").stat().st_size > 10_000


@pytest.fixture
def ran(monkeypatch):
    """``main(argv)`` for `eval run` with lm-eval left out: the arguments run_eval got."""
    calls = []
    monkeypatch.setattr("okapi_hf.eval.harness.run_eval", lambda *a, **kw: calls.append((a, kw)))

    def run(*argv: str) -> tuple[int, tuple, dict]:
        code = main(["eval", "run", "--langs", "vi", *argv])
        return (code, *calls.pop()) if calls else (code, (), {})

    return run


def test_eval_run_model_is_the_model_and_backend_the_backend(ran, capsys, tmp_path):
    out = str(tmp_path / "ev")
    code, args, kw = ran("--model", "runs/x/sft", "--out", out)
    assert code == 0 and args == ("okapi-hf", "pretrained=runs/x/sft", "vi", "all", out)
    assert kw["model_name"] == "runs/x/sft" and kw["batch_size"] == "1"
    code, args, kw = ran("--model", "m", "--backend", "hf", "--model-args", "dtype=float32", "--out", out)
    assert args[:2] == ("hf", "pretrained=m,dtype=float32")
    code, args, kw = ran("--model", "m", "--model-name", "my model", "--batch-size", "auto", "--out", out)
    assert kw["model_name"] == "my model" and kw["batch_size"] == "auto"
    assert "deprecated" not in capsys.readouterr().err


def test_eval_run_old_spellings_work_with_one_deprecation_line(ran, capsys, tmp_path):
    out = str(tmp_path / "ev")
    code, args, kw = ran(
        "--model", "hf", "--model_args", "pretrained=m", "--batch_size", "2", "--output", out
    )
    assert code == 0 and args == ("hf", "pretrained=m", "vi", "all", out) and kw["batch_size"] == "2"
    assert kw["model_name"] is None  # run_eval names the run after pretrained=
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("okapi-hf: warning: deprecated spelling")
    for old, new in (
        ("--model_args", "--model-args"),
        ("--batch_size", "--batch-size"),
        ("--output", "--out"),
    ):
        assert f"{old} -> {new}" in line
    assert "--model hf -> --backend hf" in line
    code, args, kw = ran("--model_args", "pretrained=m", "--out", out)  # the old default backend
    assert args[:2] == ("okapi-hf", "pretrained=m")
    assert capsys.readouterr().err.count("\n") == 1


def test_eval_run_names_the_model_once(ran, capsys, tmp_path):
    code, _, _ = ran(
        "--model", str(tmp_path), "--model-args", "pretrained=other", "--out", str(tmp_path / "e")
    )
    assert code == 1 and "both name the model" in capsys.readouterr().err
    code, _, _ = ran("--out", str(tmp_path / "e"))
    assert code == 1 and "name the model to evaluate: --model PATH" in capsys.readouterr().err
