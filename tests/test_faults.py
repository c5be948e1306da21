"""Bad option values, paths and files given to every command: one clear line, the right exit code, no traceback.

Each case is what a careless user types. The expectation is the part of the one error line that names the
option, file or field at fault; ``tests/fault_table.py`` runs the same catalogue against another checkout to
show what it did before (see tests/README.md).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from okapi_hf.cli import main


@dataclass(frozen=True)
class Case:
    """``argv`` (``{model}``, ``{data}``, ``{file}``, ``{dir}`` filled in per run), the exit code and the text."""

    argv: str
    code: int
    says: str


TRAIN = "train sft --recipe tiny --lang vi --model {model} --data {data} runs_dir={dir}/runs max_steps=1"
STAGE = "--recipe tiny --lang vi --model {model} --data {data} runs_dir={dir}/runs max_steps=1"
EVAL = "eval run --model {model} --langs vi --benchmarks arc --out {dir}/eval"
GENERATE = "eval generate --questions {dir}/questions --langs vi --model {model} --out {dir}/answers"

CASES = {
    # training: option values, checked before any model loads
    "train: negative learning rate": Case(f"{TRAIN} learning_rate=-1", 1, "learning_rate=-1.0: expected a number > 0"),
    "train: NaN learning rate": Case(f"{TRAIN} learning_rate=nan", 1, "learning_rate=nan: expected a finite"),
    "train: batch size 0": Case(f"{TRAIN} per_device_train_batch_size=0", 1, "per_device_train_batch_size=0"),
    "train: max_train_samples=-5": Case(f"{TRAIN} max_train_samples=-5", 1, "max_train_samples=-5"),
    "train: negative epochs (trained nothing, exit 0)": Case(f"{TRAIN} num_train_epochs=-1", 1, "num_train_epochs"),
    "train: max_steps=0": Case(f"{TRAIN} max_steps=0", 1, "max_steps=0: expected a number of steps > 0"),
    "train: max_steps not a number": Case(f"{TRAIN} max_steps=abc", 1, "invalid int value: 'abc'"),
    "train: LoRA rank 0": Case(f"{TRAIN} use_peft=true lora_r=0", 1, "lora_r=0: expected a number > 0"),
    "train: LoRA dropout 1.5": Case(f"{TRAIN} use_peft=true lora_dropout=1.5", 1, "lora_dropout=1.5"),
    "train: negative warmup": Case(f"{TRAIN} warmup_steps=-3", 1, "warmup_steps=-3"),
    "train: infinite gradient norm": Case(f"{TRAIN} max_grad_norm=inf", 1, "max_grad_norm=inf"),
    "train: an unknown key": Case(f"{TRAIN} nosuchkey=1", 1, "nosuchkey"),
    "train: an override without =": Case(f"{TRAIN} lr", 1, "override 'lr' is not of the form key=value"),
    "train: recipe YAML syntax error": Case(f"{TRAIN} --recipe {{dir}}/bad.yaml", 1, "line 2, column 1: not valid YAML"),
    "train: recipe is a YAML list": Case(f"{TRAIN} --recipe {{dir}}/list.yaml", 1, "expected a mapping"),
    "train: recipe not UTF-8": Case(f"{TRAIN} --recipe {{dir}}/latin1.yaml", 1, "is not UTF-8 text"),
    "train: recipe file missing": Case(f"{TRAIN} --recipe {{dir}}/missing.yaml", 1, "missing.yaml does not exist"),
    "train: unknown recipe name": Case(f"{TRAIN} --recipe nosuch", 1, "no sft recipe named 'nosuch'"),
    "train: --model is a file": Case(f"{TRAIN} --model {{file}}", 1, "is a file, not a model"),
    "train: --model relative path missing": Case(f"{TRAIN} --model ./nope/model", 1, "./nope/model does not exist"),
    "train: --out is a file": Case(f"{TRAIN} --out {{file}}", 1, "is a file; give a folder"),
    "train: unknown language": Case(f"{TRAIN} --lang xx", 1, "unknown language code 'xx'"),
    "train: empty language": Case(f"{TRAIN} --lang=", 1, "no language given"),
    "train: --data missing": Case(f"{TRAIN} --data {{dir}}/nodata", 1, "nodata' is neither a local folder"),
    "train: resume from a missing folder": Case(f"{TRAIN} resume_from_checkpoint={{dir}}/nope", 1, "no such checkpoint"),
    "train: resume with no checkpoint": Case(f"{TRAIN} resume_from_checkpoint=true", 1, "no checkpoint-* folder"),
    "train rm: negative margin": Case(f"train rm {STAGE} margin=-1", 1, "margin=-1.0: expected a number >= 0"),
    "train rm: no SFT model in the run": Case("train rm --recipe tiny --lang vi --run none runs_dir={dir}/runs", 1, "no SFT model"),
    "train rm: a bf16 recipe on a CPU": Case(f"train rm {STAGE} --recipe okapi", 1, "bf16=false"),
    "train rl: negative clip range": Case(f"train rl {STAGE} cliprange=-0.1", 1, "cliprange=-0.1"),
    "train rl: top_p 2": Case(f"train rl {STAGE} top_p=2", 1, "top_p=2.0: expected a number between 0 and 1"),
    "train rl: zero rollouts": Case(f"train rl {STAGE} num_rollouts=0", 1, "num_rollouts=0"),
    "train rl: negative KL coefficient": Case(f"train rl {STAGE} init_kl_coef=-1", 1, "init_kl_coef=-1.0"),
    "train dpo: negative beta": Case(f"train dpo {STAGE} beta=-1", 1, "beta must be positive, got -1.0"),
    "train all: a stage prefix it does not run": Case("train all --lang vi dpo.beta=0.2", 1, "not dpo"),
    "train: no stage": Case("train", 2, "required: STAGE"),
    # evaluation
    "eval run: --limit -1": Case(f"{EVAL} --limit -1", 1, "--limit -1.0: expected a number of documents"),
    "eval run: --limit 0": Case(f"{EVAL} --limit 0", 1, "--limit 0.0"),
    "eval run: --limit nan": Case(f"{EVAL} --limit nan", 1, "--limit nan"),
    "eval run: --limit not a number": Case(f"{EVAL} --limit many", 2, "argument --limit"),
    "eval run: --batch-size 0 (ran, exit 0)": Case(f"{EVAL} --limit 1 --batch-size 0", 1, "--batch-size 0"),
    "eval run: --batch-size -3 (ran, exit 0)": Case(f"{EVAL} --limit 1 --batch-size -3", 1, "--batch-size -3"),
    "eval run: --device cuda without CUDA": Case(f"{EVAL} --limit 1 --device cuda", 1, "no CUDA device"),
    "eval run: --device nonsense (ran, exit 0)": Case(f"{EVAL} --limit 1 --device nonsense", 1, "--device nonsense"),
    "eval run: unknown backend": Case(f"{EVAL} --limit 1 --backend nosuch", 1, "--backend nosuch: not an lm-eval"),
    "eval run: --model-args not key=value": Case(f"{EVAL} --model-args garbage", 1, "expected key=value pairs"),
    "eval run: no --model": Case("eval run --langs vi --benchmarks arc --out {dir}/eval", 1, "--model PATH"),
    "eval run: --model-args without pretrained (hf)": Case(
        "eval run --backend hf --model-args dtype=float32 --langs vi --out {dir}/eval", 1, "--model PATH"
    ),
    "eval run: a model argument the model refuses": Case(
        "eval run --model {model} --model-args foo=bar --langs vi --benchmarks arc --limit 1 --out {dir}/ev2",
        1,
        "unexpected keyword argument 'foo'",
    ),
    "eval run: --out is a file": Case(f"{EVAL} --limit 1 --out {{file}}", 1, "is a file; give a folder"),
    "eval run: unknown benchmark": Case(f"{EVAL} --benchmarks nosuch", 1, "unknown benchmark(s) nosuch"),
    "eval run: empty --langs": Case(f"{EVAL} --langs=", 1, "no language given"),
    "eval run: model missing": Case(f"{EVAL} --model {{dir}}/nope", 1, "nope does not exist"),
    "eval run: --shots -1": Case(f"{EVAL} --shots -1", 2, "argument --shots: invalid choice"),
    "eval generate: --batch-size 0": Case(f"{GENERATE} --batch-size 0", 2, "argument --batch-size"),
    "eval generate: --max-new-tokens -1": Case(f"{GENERATE} --max-new-tokens -1", 2, "argument --max-new-tokens"),
    "eval generate: --concurrency 0": Case(f"{GENERATE} --concurrency 0", 2, "argument --concurrency"),
    "eval generate: questions missing": Case(
        "eval generate --questions {dir}/nope --langs vi --model {model} --out {dir}/a", 1, "vi.jsonl does not exist"
    ),
    "eval judge: --concurrency 0": Case(
        "eval judge --answers {dir} --out {dir}/j --judge-backend local:{model} --concurrency 0", 2, "--concurrency"
    ),
    # chat
    "chat: --temperature -1": Case("chat {model} --temperature -1", 2, "argument --temperature"),
    "chat: --temperature nan": Case("chat {model} --temperature nan", 2, "argument --temperature"),
    "chat: --top-k -3": Case("chat {model} --top-k -3", 2, "argument --top-k"),
    "chat: --max-new-tokens -5": Case("chat {model} --max-new-tokens -5", 2, "argument --max-new-tokens"),
    "chat: --top-p 0": Case("chat {model} --top-p 0", 2, "argument --top-p"),
    "chat: --top-p 1.5": Case("chat {model} --top-p 1.5", 2, "argument --top-p"),
    "chat: --max-input-tokens 0": Case("chat {model} --max-input-tokens 0", 2, "argument --max-input-tokens"),
    "chat: --seed -1": Case("chat {model} --seed -1", 2, "argument --seed"),
    "chat: --seed beyond 64 bits": Case("chat {model} --seed 99999999999999999999999", 1, "--seed 9999"),
    "chat: model missing": Case("chat {dir}/nope", 1, "nope does not exist"),
    "chat: unknown language": Case("chat {model} --lang xx", 1, "unknown language code 'xx'"),
    # quickstart, models, languages
    "quickstart: --out is a file": Case("quickstart --tiny --out {file}", 1, "is a file; give a folder"),
    "quickstart: unknown language": Case("quickstart --tiny --lang xx --out {dir}/q", 1, "unknown language code"),
    "quickstart: language without sample data": Case("quickstart --tiny --lang ne --out {dir}/q", 1, "sample data"),
    "models prepare: not a preset (exit 0)": Case("models prepare nosuchpreset", 1, "neither a preset"),
    "models prepare: .gguf missing": Case("models prepare {dir}/nope.gguf", 1, "does not exist"),
    "models prepare: a text file": Case("models prepare {file}", 1, "neither a preset"),
    "languages: unknown group": Case("languages --group nope", 2, "argument --group"),
    "languages: unknown format": Case("languages --format xml", 2, "argument --format"),
    "an unknown command": Case("nosuch", 2, "invalid choice"),
}  # fmt: skip


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return make_world(tmp_path_factory.mktemp("faults"))


def make_world(root: Path) -> dict[str, str]:
    """A tiny model, a built dataset and the bad files the cases point at."""
    from okapi_hf.data.build import build_dataset
    from okapi_hf.data.sample import write_sample_raw
    from okapi_hf.testing import make_tiny_model

    write_sample_raw(root / "raw", ["vi"])
    build_dataset(root / "raw", root / "data", ["vi"], ["sft", "ranking", "rl"], progress=False)
    (root / "file.txt").write_text("not a model\n")
    (root / "bad.yaml").write_text("learning_rate: [1, 2\n")
    (root / "list.yaml").write_text("- learning_rate: 1\n")
    (root / "latin1.yaml").write_bytes("lang: fran\xe7ais\n".encode("latin-1"))
    questions = root / "questions"
    questions.mkdir()
    (questions / "vi.jsonl").write_text(
        json.dumps({"question_id": 1, "category": "x", "turns": ["Chào"]}) + "\n"
    )
    model = make_tiny_model("llama", root / "llama")
    return {"model": str(model), "data": str(root / "data"), "file": str(root / "file.txt"), "dir": str(root)}


def run_case(case: Case, world: dict[str, str]) -> tuple[int, str]:
    """The exit code and stderr of ``okapi-hf ARGV``, in this process."""
    argv = case.argv.format(**world).split()
    try:
        return main(argv), ""
    except SystemExit as e:  # argparse's usage errors
        return e.code, ""


@pytest.mark.parametrize("name", list(CASES))
def test_a_bad_input_is_one_clear_line(name, world, capsys, monkeypatch):
    monkeypatch.setenv("OKAPI_HF_EVAL_DIR", str(Path(__file__).parent / "fixtures" / "okapi-eval"))
    monkeypatch.delenv("OKAPI_HF_TRACEBACK", raising=False)
    case = CASES[name]
    code, _ = run_case(case, world)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("okapi-hf")]
    assert "Traceback" not in err
    assert code == case.code, err
    assert len(lines) == 1, err
    assert case.says in lines[-1], lines[-1]
    assert "unexpected" not in lines[-1] or "unexpected keyword" in lines[-1]


def test_an_unexpected_failure_is_one_line_and_the_traceback_is_one_variable_away(monkeypatch, capsys):
    import okapi_hf.cli as cli

    def broken(args):
        raise KeyError("boom")

    parser = cli.build_parser
    monkeypatch.setattr(cli, "build_parser", lambda: _with_func(parser(), broken))
    assert cli.main(["languages"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unexpected KeyError" in err and "OKAPI_HF_TRACEBACK=1" in err
    monkeypatch.setenv("OKAPI_HF_TRACEBACK", "1")
    with pytest.raises(KeyError):
        cli.main(["languages"])


def _with_func(parser, func):
    parser.set_defaults(func=func)
    for action in parser._subparsers._group_actions:
        for sub in action.choices.values():
            sub.set_defaults(func=func)
    return parser


def test_a_full_disk_is_named_as_such(monkeypatch, capsys, small_disk):
    import okapi_hf.cli as cli
    from conftest import fill_disk

    disk = small_disk(64)
    fill_disk(disk)

    def write(args):
        Path(disk / "results.json").write_text("x" * 100_000)

    parser = cli.build_parser
    monkeypatch.setattr(cli, "build_parser", lambda: _with_func(parser(), write))
    assert cli.main(["languages"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("okapi-hf: error: the disk is full") and "\n" not in err, err


def test_two_trainings_into_one_folder_the_second_is_refused_with_the_first_pid(world, capsys):
    from okapi_hf.fsutil import locked

    out = Path(world["dir"]) / "runs" / "locked" / "sft"
    with locked(out):
        code = main([*TRAIN.format(**world).split(), "--run", "locked"])
    err = capsys.readouterr().err
    assert code == 1 and f"being written by process {os.getpid()}" in err, err
    assert not (out / "config.json").exists()
