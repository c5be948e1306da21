"""`okapi-hf publish` lets nothing out that should stay in: links, secrets, pickles, bad input (issue 16).

Every case runs through the CLI against a dry run (what is refused and why) and a real run to an
autospec'd HfApi (one line, exit 1, nothing created or uploaded). Secrets are built at run time so no
token-like literal sits in the repository.
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import os
import pickle
import shutil
import struct
import zipfile
from pathlib import Path
from unittest.mock import create_autospec

import joblib
import numpy as np
import pytest
from huggingface_hub import HfApi, constants

from okapi_hf.cli import main
from okapi_hf.data.build import build_dataset
from okapi_hf.data.sample import write_sample_raw
from okapi_hf.eval.harness import write_report
from okapi_hf.hub import publishing
from okapi_hf.hub.cards import render_model_card
from okapi_hf.testing import make_tiny_model

SPACES = Path(__file__).resolve().parents[1] / "spaces"
SECRET_ENV_SUFFIXES = ("TOKEN", "KEY", "SECRET", "PASSWORD", "PASSWD")
SHARD = "data/vi/sft/train-00000-of-00001.parquet"


def _random(alphabet: str, n: int, seed: int) -> str:
    return "".join(alphabet[(seed * 7919 + i * 104729) % len(alphabet)] for i in range(n))


ALNUM = "aB3cD4eF5gH6iJ7kL8mN9pQ2rS"
HF = "hf_" + _random(ALNUM, 34, 1)
OPENAI = "sk-proj-" + _random(ALNUM, 48, 2)
AWS_ID = "AKIA" + _random("QWERTYUPASDFGHJKLZXCVBNM234567", 16, 3)
AWS_SECRET = _random(ALNUM + "/+", 40, 4)
GITHUB = "ghp_" + _random(ALNUM, 36, 5)
PASSWORD = "Tr0ub4dor&3-" + _random(ALNUM, 6, 6)
ENV_VALUE = "c0rrect-h0rse-" + _random(ALNUM, 10, 7)
ALL_SECRETS = (HF, OPENAI, AWS_ID, AWS_SECRET, GITHUB, PASSWORD, ENV_VALUE)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("safety")
    write_sample_raw(root / "raw", ["vi"])
    build_dataset(root / "raw", root / "dataset", ["vi"], ["sft"], progress=False)
    model = make_tiny_model("llama", root / "model")
    card = render_model_card(
        title="Okapi SFT model (vi)",
        description="A tiny test model.",
        stage="supervised fine-tuning",
        init_from="meta-llama/Llama-2-7b-hf",
        langs=["vi"],
        data="`okapi_hf`, config `vi`",
        usage="print('hi')",
        hyperparameters={"learning_rate": 2e-5},
    )
    (model / "README.md").write_text(card, encoding="utf-8")
    (model / "training_args.bin").write_bytes(pickle.dumps({"lr": 1}, protocol=4))
    shutil.copytree(SPACES / "chat", root / "space")
    (root / "eval").mkdir()
    write_report({"results": {"okapi_arc_vi": {"acc,none": 0.3, "acc_norm,none": 0.4}}}, root / "eval", "t")
    outside = root / "outside"
    outside.mkdir()
    (outside / "notes.txt").write_text("private notes, not Parquet\n")
    (outside / "keys").mkdir()
    (outside / "keys" / "id").write_text("private\n")
    return {
        "dataset": root / "dataset",
        "model": model,
        "space": root / "space",
        "eval": root / "eval",
        "outside": outside,
    }


@pytest.fixture
def copy(built, tmp_path):
    def make(kind: str) -> Path:
        return Path(shutil.copytree(built[kind], tmp_path / kind, symlinks=True))

    return make


@pytest.fixture(autouse=True)
def env(monkeypatch, tmp_path):
    """No secret-looking variable from the machine; a fake Hub token; online against a double."""
    for name in list(os.environ):
        if name.upper().endswith(SECRET_ENV_SUFFIXES):
            monkeypatch.delenv(name)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-home" / "token"))
    monkeypatch.setenv("HF_TOKEN", "hf_" + _random(ALNUM, 34, 99))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


@pytest.fixture
def api_class(monkeypatch):
    cls = create_autospec(HfApi)
    monkeypatch.setattr(publishing, "HfApi", cls)  # where publish looks it up
    return cls


def _run(*argv: object) -> int:
    return main(["publish", *map(str, argv)])


def _dry_run(capsys, kind: str, folder: Path) -> tuple[int, str]:
    code = _run(kind, folder, "--repo-id", "org/name", "--dry-run")
    out, err = capsys.readouterr()
    return code, out + err


def _refused_lines(out: str) -> dict[str, str]:
    """path -> reason, from the dry run's Refused section."""
    lines = out.split("\nRefused (", 1)[1].splitlines()[1:] if "\nRefused (" in out else []
    return dict(line.strip().split(": ", 1) for line in lines if line.startswith("  "))


def _assert_refused(capsys, api_class, kind: str, folder: Path, expected: dict[str, str]) -> str:
    """Dry run: each path refused with its reason. Real run: one line, exit 1, nothing sent."""
    code, out = _dry_run(capsys, kind, folder)
    assert code == 1, out  # the plan is printed, and the exit code says a real publish would stop
    refused = _refused_lines(out)
    assert set(refused) == set(expected), out
    for path, reason in expected.items():
        assert reason in refused[path], (path, refused[path])
        assert f"-> {path}  (" not in out  # not planned
    assert _run(kind, folder, "--repo-id", "org/name") == 1
    real_out, err = capsys.readouterr()
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"refused to publish org/name: {len(expected)} file(s) in {folder}" in err
    assert "nothing was uploaded" in err and "--dry-run" in err
    api_class.assert_not_called()
    for secret in ALL_SECRETS:
        assert secret not in out + real_out + err
    return out


# -- symbolic links --------------------------------------------------------------------------------------


def test_a_shard_linked_to_a_text_file_is_refused_never_planned_as_parquet(copy, built, api_class, capsys):
    dataset = copy("dataset")
    (dataset / SHARD).unlink()
    (dataset / SHARD).symlink_to(built["outside"] / "notes.txt")
    _assert_refused(
        capsys, api_class, "dataset", dataset, {SHARD: "symbolic link to a file outside the folder"}
    )


@pytest.mark.parametrize(
    ("name", "target", "reason"),
    [
        ("extra.txt", "outside/notes.txt", "symbolic link to a file outside the folder"),
        ("assets", "outside/keys", "symbolic link to a folder outside the folder"),
        ("app_copy.py", "app.py", "symbolic link to a file inside the folder (app.py): not followed"),
        (
            "etc",
            "/etc",
            "symbolic link to a folder outside the folder (/etc): not followed; its content would",
        ),
    ],
)
def test_links_are_refused_wherever_they_point(copy, built, api_class, capsys, name, target, reason):
    space = copy("space")
    resolved = built["outside"] / target.split("/", 1)[1] if target.startswith("outside/") else target
    (space / name).symlink_to(resolved)
    (space / ".cache").symlink_to(built["outside"])  # left out by its name: listed, does not block
    (space / "gone.txt").symlink_to(space / "nowhere")  # broken: nothing to upload, listed
    path = name + "/" if Path(space / name).is_dir() else name
    out = _assert_refused(capsys, api_class, "space", space, {path: reason})
    assert (
        ".cache/: hidden folder (tool state such as .git or .cache, not part of the release) (a symbolic link"
        in out
    )
    assert "gone.txt: broken symbolic link" in out


def test_linked_weights_are_named_with_the_reason(copy, built, tmp_path, capsys, api_class):
    model = copy("model")
    shutil.move(model / "model.safetensors", tmp_path / "weights.safetensors")
    (model / "model.safetensors").symlink_to(tmp_path / "weights.safetensors")
    code, out = _dry_run(capsys, "model", model)
    assert code == 1
    assert (
        f"okapi-hf: error: {model / 'model.safetensors'}: symbolic link to a file outside the folder" in out
    )
    api_class.assert_not_called()


# -- secrets ---------------------------------------------------------------------------------------------

SECRET_CASES = [
    ("env.txt", f"# keys\nOPENAI_API_KEY={OPENAI}\n", "line 2: OpenAI API key"),
    ("train.log", "step 1 loss 2.0\n" * 40 + f"push with {HF}\n", "line 41: Hugging Face token"),
    ("secrets.py", f'import os\n\nAWS_ACCESS_KEY_ID = "{AWS_ID}"\n', "line 3: AWS access key id"),
    ("creds.yaml", f"default:\n  aws_secret_access_key: {AWS_SECRET}\n", "line 2: AWS secret access key"),
    (
        "db.ini",
        f"[db]\nhost = db.local\nDB_PASSWORD={PASSWORD}\n",
        "line 3: a secret assigned to DB_PASSWORD",
    ),
    ("conf.yml", f"SERVICE_TOKEN: {PASSWORD}\n", "line 1: a secret assigned to SERVICE_TOKEN"),
    ("settings.json", json.dumps({"api_key": PASSWORD}), "line 1: a secret assigned to api_key"),
    ("Makefile", f"push:\n\tcurl -H 'Authorization: token {GITHUB}' x\n", "line 2: GitHub token"),
    (
        "id_deploy",
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\n-----END OPENSSH PRIVATE KEY-----\n",
        "line 1: private key",
    ),
    ("notes.md", f"the service key is {ENV_VALUE}, do not share\n", "line 1: the value of $MY_SERVICE_KEY"),
]


@pytest.mark.parametrize(("name", "content", "kind"), SECRET_CASES, ids=[c[0] for c in SECRET_CASES])
def test_a_file_with_a_secret_is_refused_naming_line_and_kind(
    copy, api_class, capsys, monkeypatch, name, content, kind
):
    monkeypatch.setenv("MY_SERVICE_KEY", ENV_VALUE)
    space = copy("space")
    (space / name).write_text(content)
    _assert_refused(capsys, api_class, "space", space, {name: f"holds a secret ({kind})"})


def test_placeholders_are_not_secrets_but_the_real_one_among_them_is(copy, api_class, capsys):
    space = copy("space")
    lines = [
        "import os",
        'API_KEY = os.environ["API_KEY"]',
        'HF_TOKEN = os.getenv("HF_TOKEN")',
        'X_TOKEN = "<your-token>"',
        "SECRET_KEY = args.secret_key",
        'PASSWORD = ""',
        'DB_PASSWORD = "xxxxxxxx"',
        'OPENAI_API_KEY = "sk-..."',
        "PAD_TOKEN = '<pad>'",
        'EXPIRED_TOKEN = "expired_token"',
        f'DEPLOY_SECRET = "{PASSWORD}"',
    ]
    (space / "settings.py").write_text("\n".join(lines) + "\n")
    (space / "config.env").write_text("API_KEY=${API_KEY}\nHF_TOKEN=\nTOKEN=xxx\n")
    out = _assert_refused(
        capsys,
        api_class,
        "space",
        space,
        {"settings.py": "holds a secret (line 11: a secret assigned to DEPLOY_SECRET)"},
    )
    assert "line 2" not in _refused_lines(out)["settings.py"]


def test_a_secret_deep_in_a_large_text_file_and_across_a_chunk_boundary_is_found(copy, api_class, capsys):
    from okapi_hf.hub import scan

    space = copy("space")
    line = b"loss 0.123 step 42 lorem ipsum dolor sit amet, consectetur adipiscing\n"
    with open(space / "train.log", "wb") as f:
        f.write(line * (scan.CHUNK // len(line)))
        first = scan.CHUNK // len(line) + 1
        pad = scan.CHUNK - f.tell() - 10  # the token starts a few bytes before the first chunk ends
        f.write(b"x" * pad + b" " + HF.encode() + b"\n")
        rest = (30_000_000 - f.tell()) // len(line)
        f.write(line * rest)
        f.write(f"OPENAI_API_KEY={OPENAI}\n".encode())  # near the end, past the old 20 MB limit
    last = first + rest + 1
    assert (space / "train.log").stat().st_size > 29_000_000
    out = _assert_refused(capsys, api_class, "space", space, {"train.log": "holds a secret"})
    assert _refused_lines(out)["train.log"].startswith(
        f"holds a secret (line {first}: Hugging Face token; line {last}: OpenAI API key)"
    )


def test_every_chunk_boundary_offset_is_covered(monkeypatch):
    """With tiny chunks, a token at every offset around the boundaries is found once, on its line."""
    from okapi_hf.hub import scan

    monkeypatch.setattr(scan, "CHUNK", 97)
    monkeypatch.setattr(scan, "CONTEXT", 16)
    scanner = scan.SecretScanner({"the value of $X_TOKEN": ENV_VALUE})
    scanner.overlap = 48  # longer than either secret, shorter than a chunk
    for offset in range(150, 300, 7):
        data = (
            b"a\n" * (offset // 2) + (b"t " if offset % 2 else b"") + HF.encode() + b" " + ENV_VALUE.encode()
        )
        found = scanner.scan_bytes(data, "x.log")
        assert [f.kind for f in found] == ["Hugging Face token", "the value of $X_TOKEN"], offset
        assert found[0].offset == data.index(b"hf_") and found[0].line == offset // 2 + 1


def test_binary_files_are_scanned_for_token_shapes_and_secret_values(copy, api_class, capsys, monkeypatch):
    monkeypatch.setenv("MY_SERVICE_KEY", ENV_VALUE)
    model = copy("model")
    weights = model / "model.safetensors"
    raw = weights.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8 : 8 + n])
    header["__metadata__"] = {**header.get("__metadata__", {}), "pushed_with": HF}
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    weights.write_bytes(struct.pack("<Q", len(text)) + text + raw[8 + n :])
    (model / "extra.bin.data").write_bytes(b"\0\1\2" * 1000 + ENV_VALUE.encode() + b"\0" * 100)
    _assert_refused(
        capsys,
        api_class,
        "model",
        model,
        {
            "model.safetensors": "holds a secret (byte ",
            "extra.bin.data": "holds a secret (byte 3000: the value of $MY_SERVICE_KEY)",
        },
    )


def test_no_secret_reaches_any_output(copy, capsys, caplog):
    """A file named after a token and a card field holding one: the messages say [redacted]."""
    space = copy("space")
    (space / f"notes-{HF}.txt").write_text("hello\n")
    code, out = _dry_run(capsys, "space", space)
    assert code == 1 and HF not in out and "notes-[redacted].txt: its name holds a secret" in out

    dataset = copy("dataset")
    (dataset / "okapi_build.json").write_text(json.dumps([HF]))
    code, out = _dry_run(capsys, "dataset", dataset)
    assert code == 1 and HF not in out and "[redacted]" in out
    assert HF not in caplog.text


# -- pickles by content ----------------------------------------------------------------------------------


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=True)
    return buf.getvalue()


def _npz(**arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _torch_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps({"w": 1}, protocol=2))
        z.writestr("archive/version", "3\n")
    return buf.getvalue()


def _joblib(compress: int) -> bytes:
    buf = io.BytesIO()
    joblib.dump({"clf": [1, 2]}, buf, compress=compress)
    return buf.getvalue()


PICKLES = [
    ("state.pkl.gz", lambda: gzip.compress(pickle.dumps({"a": 1}, protocol=4)), "gzip-compressed pickle"),
    ("state.bz2", lambda: bz2.compress(pickle.dumps([1], protocol=3)), "bz2-compressed pickle"),
    ("state.xz", lambda: lzma.compress(pickle.dumps([1], protocol=2)), "xz-compressed pickle"),
    ("data.json", lambda: pickle.dumps({"x": 1}, protocol=5), "a pickle stream"),
    ("cfg.dat", lambda: pickle.dumps({"x": [1, 2]}, protocol=0), "a pickle stream"),
    ("cfg1.dat", lambda: pickle.dumps({"x": [1, 2]}, protocol=1), "a pickle stream"),
    ("features.npy", lambda: _npy(np.array([{"a": 1}, None], dtype=object)), "NumPy array of Python objects"),
    ("arrays.npz", lambda: _npz(ok=np.zeros(3), bad=np.array([1, None], dtype=object)), "(bad.npy)"),
    ("weights.model", _torch_zip, "zip archive holding a pickle (archive/data.pkl"),
    ("classifier.dat", lambda: _joblib(0), "a pickle stream"),
    ("classifier.z", lambda: _joblib(3), "zlib-compressed pickle"),
]


@pytest.mark.parametrize(("name", "make", "reason"), PICKLES, ids=[p[0] for p in PICKLES])
def test_a_pickle_under_any_name_is_refused_by_content(copy, api_class, capsys, name, make, reason):
    space = copy("space")
    (space / name).write_bytes(make())
    out = _assert_refused(capsys, api_class, "space", space, {name: reason})
    assert "okapi-hf never publishes pickles" in _refused_lines(out)[name]


def test_safe_formats_are_checked_and_published(copy, built, api_class, capsys):
    space = copy("space")
    (space / "emb.npy").write_bytes(_npy(np.arange(5.0)))
    (space / "emb.npz").write_bytes(_npz(a=np.ones(2), b=np.arange(3)))
    shutil.copy(built["dataset"] / SHARD, space / "table.parquet")
    shutil.copy(built["model"] / "model.safetensors", space / "small.safetensors")
    (space / "log.txt.gz").write_bytes(gzip.compress(b"plain text\n"))
    (space / "notes.txt").write_text("Lorem ipsum (dolor) sit amet.\n")
    code, out = _dry_run(capsys, "space", space)
    assert code == 0 and "Refused: nothing (9 files checked for secrets, pickles and links)" in out
    assert _run("space", space, "--repo-id", "org/name") == 0
    operations = api_class.return_value.create_commit.call_args.kwargs["operations"]
    assert {op.path_in_repo for op in operations} >= {"emb.npy", "emb.npz", "table.parquet", "log.txt.gz"}


def test_a_dataset_shard_must_be_parquet(copy, api_class, capsys):
    dataset = copy("dataset")
    (dataset / SHARD).write_text("just text\n")
    _assert_refused(capsys, api_class, "dataset", dataset, {SHARD: "not a Parquet file (no PAR1 magic"})
    (dataset / SHARD).write_bytes(pickle.dumps([1], protocol=4))
    _assert_refused(capsys, api_class, "dataset", dataset, {SHARD: "a pickle stream"})


def test_a_compressed_text_file_is_scanned_inside(copy, api_class, capsys):
    space = copy("space")
    (space / "env.txt.gz").write_bytes(gzip.compress(f"\nOPENAI_API_KEY={OPENAI}\n".encode()))
    _assert_refused(
        capsys, api_class, "space", space, {"env.txt.gz": "holds a secret (line 2: OpenAI API key)"}
    )


# -- bad input -------------------------------------------------------------------------------------------


def _one_line_error(capsys, *argv: object) -> str:
    assert _run(*argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("okapi-hf: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_bad_folders_are_named_in_one_line(tmp_path, built, copy, capsys):
    (tmp_path / "empty").mkdir()
    err = _one_line_error(capsys, "model", tmp_path / "empty", "--repo-id", "org/name", "--dry-run")
    assert f"{tmp_path / 'empty'} is empty: nothing to publish" in err
    err = _one_line_error(capsys, "space", built["space"] / "app.py", "--repo-id", "org/name", "--dry-run")
    assert "app.py is not a folder (it is a file)" in err
    err = _one_line_error(capsys, "space", tmp_path / "nowhere", "--repo-id", "org/name", "--dry-run")
    assert "nowhere is not a folder (it does not exist)" in err
    model = copy("model")
    (model / "README.md").write_bytes(b"---\nlicense: mit\n---\n\xff\xfe")
    err = _one_line_error(capsys, "model", model, "--repo-id", "org/name", "--dry-run")
    assert f"{model / 'README.md'}: not UTF-8 text (byte 21 is 0xff)" in err


def test_bad_files_in_a_folder_are_named_in_one_line(copy, capsys):
    dataset = copy("dataset")
    (dataset / "okapi_build.json").write_bytes(b"\xff\xfe\x00")
    err = _one_line_error(capsys, "dataset", dataset, "--repo-id", "org/name", "--dry-run")
    assert f"{dataset / 'okapi_build.json'}: not UTF-8 text" in err
    space = copy("space")
    (space / "README.md").write_bytes(b"\xff\xfe\x00")
    err = _one_line_error(capsys, "space", space, "--repo-id", "org/name", "--dry-run")
    assert f"{space / 'README.md'}: not UTF-8 text" in err
    model = copy("model")
    (model / "model.safetensors").rename(model / "model-00001-of-00001.safetensors")
    (model / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"a": 1}}))
    err = _one_line_error(capsys, "model", model, "--repo-id", "org/name", "--dry-run")
    assert "not a safetensors index (expected an object with a `weight_map`" in err


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "--eval-results {path} does not exist"),
        ("file", "--eval-results {path} is a file, not a folder"),
        ("model-index: [\n  - {", "model_index.yaml: not valid YAML (line 2, column 3"),
        ("- 1\n- 2\n", "expected a top-level `model-index:` list as `okapi-hf eval run` writes; got list"),
        ("", "expected a top-level `model-index:` list as `okapi-hf eval run` writes; got an empty file"),
        (b"\xff\xfe", "model_index.yaml: not UTF-8 text (byte 0 is 0xff)"),
    ],
)
def test_bad_eval_results_are_named_in_one_line(built, tmp_path, capsys, content, expected):
    path = tmp_path / "eval"
    if content == "file":
        path.write_text("model-index: []\n")
    elif content is not None:
        path.mkdir()
        data = content if isinstance(content, bytes) else content.encode()
        (path / "model_index.yaml").write_bytes(data)
    err = _one_line_error(
        capsys, "model", built["model"], "--repo-id", "org/name", "--dry-run", "--eval-results", path
    )
    assert expected.format(path=path) in err


def test_options_are_checked_before_the_folder_is_read(tmp_path, built, capsys):
    (tmp_path / "empty").mkdir()
    err = _one_line_error(
        capsys, "dataset", tmp_path / "empty", "--repo-id", "org/name", "--eval-results", built["eval"]
    )
    assert "--eval-results applies to models only, not to a dataset" in err
