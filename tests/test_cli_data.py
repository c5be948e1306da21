"""The data commands end to end, the way the README shows them."""

import socket

import datasets
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
