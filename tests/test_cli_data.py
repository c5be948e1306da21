"""The data commands end to end, the way the README shows them."""

import json
import socket
import time

import datasets
import pytest
from huggingface_hub import DatasetCard

from okapi_hf.cli import main
from okapi_hf.data.sample import SAMPLE_LANGS


def test_sample_then_build_then_every_config_loads(tmp_path, capsys):
    raw, out = tmp_path / "raw", tmp_path / "okapi_hf"
    assert main(["data", "sample", "--out", str(raw)]) == 0
    assert (
        main(["data", "build", "--raw-dir", str(raw), "--langs", ",".join(SAMPLE_LANGS), "--out", str(out)])
        == 0
    )
    summary = capsys.readouterr().out
    for lang in SAMPLE_LANGS:
        assert f"{lang}    ranking        72       12       11       1        0  -" in summary
    configs = [c["config_name"] for c in DatasetCard.load(out / "README.md").data.configs]
    assert len(configs) == 3 * len(SAMPLE_LANGS)
    for config in configs:
        ds = datasets.load_dataset(str(out), config)
        assert ds["train"].num_rows > 0 and ds["validation"].num_rows > 0
        if config.endswith("-ranking"):
            assert all(len(r) == 4 and len(set(r)) == 4 for r in ds["train"]["responses"])


def test_sample_jsonl_builds_the_same_rows(tmp_path):
    for fmt in ("json", "jsonl"):
        extra = ["--jsonl"] if fmt == "jsonl" else []
        assert main(["data", "sample", "--out", str(tmp_path / fmt), "--langs", "zh", *extra]) == 0
        assert (
            main(
                [
                    "data",
                    "build",
                    "--raw-dir",
                    str(tmp_path / fmt),
                    "--langs",
                    "zh",
                    "--out",
                    str(tmp_path / f"o{fmt}"),
                ]
            )
            == 0
        )
    a = datasets.load_dataset(str(tmp_path / "ojson"), "zh-rl")
    b = datasets.load_dataset(str(tmp_path / "ojsonl"), "zh-rl")
    assert a["train"].to_list() == b["train"].to_list()


def test_download_failure_exits_non_zero_with_the_url(tmp_path, capsys):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/datasets"
    code = main(
        [
            "data",
            "download",
            "--langs",
            "vi",
            "--subsets",
            "sft",
            "--out",
            str(tmp_path),
            "--base-url",
            url,
            "--retries",
            "1",
        ]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert f"{url}/multilingual-alpaca-52k/vi.json" in err and "gave up after 1 attempts" in err


def _pair(q, a, b):
    return {"instruction": q, "input": "", "prefered_output": a, "rejected_output": b}


GOOD_SFT = [{"instruction": f"q{i}", "input": "", "output": f"a{i}"} for i in range(4)]
BAD_INPUTS = {
    "malformed json": ("sft", None, '[{"instruction": "a"', "malformed JSON at line 1, column 21"),
    "missing field": (
        "sft",
        [{"instruction": "q", "input": ""}, *GOOD_SFT],
        None,
        "missing field 'output' (rows 1)",
    ),
    "wrong type": (
        "sft",
        [*GOOD_SFT, {"instruction": "q", "input": "", "output": {"a": 1}}],
        None,
        "field 'output' is a dict, expected a string (rows 5)",
    ),
    "empty file": ("sft", None, "", "file is empty"),
    "duplicate row": ("sft", [*GOOD_SFT, GOOD_SFT[1]], None, "duplicate row (rows 5)"),
    "contradictory pairs": (
        "ranking",
        [_pair("q", "a", "b"), _pair("q", "b", "a"), _pair("r", "x", "y")],
        None,
        "form a cycle) (rows 1, 2)",
    ),
    "incomplete pairs": (
        "ranking",
        [_pair("q", "a", "b"), _pair("q", "a", "c"), _pair("r", "x", "y")],
        None,
        "allow more than one order) (rows 1, 2)",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_gives_a_clear_message_and_non_zero_exit(case, write_raw, tmp_path, capsys):
    subset, rows, text, expected = BAD_INPUTS[case]
    path = write_raw(subset, "vi", rows, text=text)
    argv = ["data", "build", "--raw-dir", str(tmp_path / "raw"), "--langs", "vi", "--subsets", subset]
    assert main([*argv, "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert expected in err and str(path) in err and "Traceback" not in err
    assert not (tmp_path / "out" / "README.md").exists()


def test_missing_subset_folder_names_the_path(write_raw, tmp_path, capsys):
    write_raw("sft", "vi", GOOD_SFT)
    assert (
        main(
            [
                "data",
                "build",
                "--raw-dir",
                str(tmp_path / "raw"),
                "--langs",
                "vi",
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 1
    )
    err = capsys.readouterr().err
    assert "2 raw file(s) missing" in err and "multilingual-rl-tuning-64k/vi.json" in err


def test_checksum_mismatch_via_cli(write_raw, tmp_path, capsys):
    path = write_raw("sft", "vi", GOOD_SFT)
    (tmp_path / "raw" / "SHA256SUMS").write_text(f"{'0' * 64}  multilingual-alpaca-52k/vi.json\n")
    argv = ["data", "download", "--langs", "vi", "--subsets", "sft", "--out", str(tmp_path / "raw")]
    assert main([*argv, "--base-url", "http://127.0.0.1:9/never-contacted"]) == 1
    err = capsys.readouterr().err
    assert str(path) in err and "does not match" in err and "--force" in err


def test_sample_counts_must_not_be_negative(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["data", "sample", "--out", str(tmp_path), "--n-sft", "-1"])
    assert exit_.value.code == 2
    assert "expected a count of zero or more, got '-1'" in capsys.readouterr().err


# -- the LLM steps' --max-tokens, --temperature, --top-p, --timeout -------------------------------------

STEPS = ("generate", "translate", "respond", "rank", "taco")


def _rank_args(tmp_path, url: str) -> list[str]:
    rows = tmp_path / "responses.jsonl"
    rows.write_text(
        "".join(
            json.dumps({"id": f"q{i}", "lang": "vi", "instruction": f"q{i}", "responses": ["a", "b"]}) + "\n"
            for i in range(2)
        )
    )
    return ["data", "rank", "--input", str(rows), "--backend", f"openai:judge@{url}"]


def _judge(messages):
    return "Ranking: [[2, 1]]" if "Now rank" in messages[-1]["content"] else "Instruction: ..."


def test_sampling_flags_reach_every_request_body(tmp_path, capsys):
    from okapi_hf.create.fake_llm import FakeLLMServer

    with FakeLLMServer(_judge) as server:
        argv = _rank_args(tmp_path, server.url)
        assert main([*argv, "--out", str(tmp_path / "default")]) == 0
        assert {(b["max_tokens"], b["temperature"], "top_p" in b) for b in server.requests} == {
            (2048, 0.0, False)
        }
        server.reset()
        flags = ["--max-tokens", "77", "--temperature", "0.3", "--top-p", "0.9", "--timeout", "30"]
        assert main([*argv, "--out", str(tmp_path / "given"), *flags]) == 0
        assert len(server.requests) == 4
        assert {(b["max_tokens"], b["temperature"], b["top_p"]) for b in server.requests} == {(77, 0.3, 0.9)}
    assert "rank vi: 2 row(s) written" in capsys.readouterr().out


def test_the_timeout_flag_bounds_each_attempt(tmp_path, capsys):
    from okapi_hf.create.fake_llm import FakeLLMServer

    hang = 8.0  # the first attempt of each row answers only after this
    with FakeLLMServer(_judge, failures=["timeout", "timeout"], hang=hang) as server:
        argv = [*_rank_args(tmp_path, server.url), "--out", str(tmp_path / "o"), "--timeout", "0.3"]
        started = time.monotonic()
        assert main(argv) == 0
        assert time.monotonic() - started < hang / 2  # given up on after 0.3 s, then asked again
        assert server.count == 2 + 4
    assert "(2 retries, 0 failed)" in capsys.readouterr().out


BAD_VALUES = [
    ("--max-tokens", "0", "expected a whole number of 1 or more, got '0'"),
    ("--max-tokens", "-5", "expected a whole number of 1 or more, got '-5'"),
    ("--max-tokens", "1.5", "expected a whole number of 1 or more, got '1.5'"),
    ("--timeout", "0", "expected a number of seconds above 0, got '0'"),
    ("--timeout", "-1", "expected a number of seconds above 0, got '-1'"),
    ("--temperature", "-0.1", "expected a number of 0 or more, got '-0.1'"),
    ("--temperature", "inf", "expected a number of 0 or more, got 'inf'"),
    ("--top-p", "0", "expected a number above 0 and at most 1, got '0'"),
    ("--top-p", "1.01", "expected a number above 0 and at most 1, got '1.01'"),
    ("--top-p", "nan", "expected a number above 0 and at most 1, got 'nan'"),
]


@pytest.mark.parametrize(("flag", "value", "message"), BAD_VALUES)
@pytest.mark.parametrize("step", STEPS)
def test_bad_sampling_values_exit_2_with_one_line_naming_the_option(step, flag, value, message, capsys):
    argv = ["data", step, "--backend", "openai:m", "--out", "o", flag, value]
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert [line for line in err.splitlines() if "error" in line] == [
        f"okapi-hf data {step}: error: argument {flag}: {message}"
    ]
    assert "Traceback" not in err


def _help(step: str, capsys) -> str:
    with pytest.raises(SystemExit):
        main(["data", step, "--help"])
    return " ".join(capsys.readouterr().out.split())


def test_help_shows_each_steps_own_defaults(capsys):
    """The numbers in --help are the steps' own constants (written out so that --help stays fast)."""
    import inspect

    from okapi_hf.cli.data import DEFAULT_TIMEOUT
    from okapi_hf.create import generate, rank, respond, taco, translate
    from okapi_hf.create.steps import make_client

    expected = {
        "generate": (f"(default: {generate.MAX_TOKENS})", f"(default: {generate.TEMPERATURE:.1f},"),
        "translate": (
            f"(default: {translate.MAX_TOKENS})",
            f"(default: {translate.TEMPERATURE:g}, greedy; the one retry",
            f"else at {translate.RETRY_TEMPERATURE:g})",
        ),
        "respond": (f"(default: {respond.MAX_TOKENS})", f"(default: {respond.TEMPERATURE:g},"),
        "rank": (
            f"(default: {rank.MAX_TOKENS}, and {rank.RETRY_MAX_TOKENS} for the retry",
            f"(default: {rank.TEMPERATURE:g}, greedy;",
        ),
        "taco": (f"(default: {taco.MAX_TOKENS})", f"(default: {taco.TEMPERATURE:g}, greedy;"),
    }
    assert inspect.signature(make_client).parameters["timeout"].default == DEFAULT_TIMEOUT
    for step, phrases in expected.items():
        text = _help(step, capsys)
        for phrase in (*phrases, f"(default: {DEFAULT_TIMEOUT:g})", "(default: not set"):
            assert phrase in text, (step, phrase)
