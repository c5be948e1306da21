"""Every README block runs as written, in order, from a clean folder, on this CPU.

The blocks are read from README.md, not copied here, so a README that drifts fails. They run in one
folder that starts empty, so a later block may use what an earlier one wrote, as a reader would. The
folder has the repository's `spaces/`, `src/` and `benchmarks/` beside it (blocks name them) and a
`../shared/data` made from this suite's excerpts under `tests/fixtures` (the README points at the
authors' files there; a public clone has only the excerpts).

A block the test does not run carries a visible marker on the line above it in the README,
``<!-- readme: not run (why) -->`` (a GPU, the network or a secret it needs); a block that starts a
server carries ``<!-- readme: server URL -->`` and passes when the URL answers; one that reads the
terminal carries ``<!-- readme: stdin TEXT -->`` (``\\n`` for a new line). The "Two commands" are CI's
own steps (`.ci/run`) and are not run again here.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"
MARKER = re.compile(r"<!-- readme: (not run \((?P<why>[^)]+)\)|server (?P<url>\S+)|stdin (?P<stdin>.*?)) -->")


@dataclass
class Block:
    line: int  # where the block starts in README.md (1-based)
    lang: str
    code: str
    skip: str | None = None
    url: str | None = None
    stdin: str = ""


def readme_blocks(text: str) -> list[Block]:
    """The ```bash and ```python blocks after "## Two commands"' own two, with their markers."""
    blocks = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        fence = re.fullmatch(r"```(bash|python)", lines[i])
        if not fence:
            i += 1
            continue
        end = lines.index("```", i + 1)
        block = Block(line=i + 1, lang=fence[1], code="\n".join(lines[i + 1 : end]) + "\n")
        marker = MARKER.fullmatch(lines[i - 1].strip()) if i else None
        if marker:
            block.skip, block.url = marker["why"], marker["url"]
            if marker["stdin"]:
                block.stdin = marker["stdin"].replace("\\n", "\n") + "\n"
        blocks.append(block)
        i = end + 1
    two = text[: text.index("## Entry points")].count("```bash")  # the Two commands: CI runs them
    return blocks[two:]


def test_the_readme_marks_what_it_does_not_run():
    """Most blocks run; each one that does not says why, so the list cannot grow silently."""
    blocks = readme_blocks((REPO / "README.md").read_text(encoding="utf-8"))
    skipped = [b for b in blocks if b.skip]
    assert len(blocks) - len(skipped) >= 25, [b.line for b in blocks if not b.skip]
    for block in skipped:
        assert re.search(r"GPU|network|secret|token|hour|minutes", block.skip), (block.line, block.skip)


def _folder(tmp: Path) -> Path:
    """A clean working folder with the repository's named folders and a ../shared made of excerpts."""
    work = tmp / "okapi-hf"
    work.mkdir()
    for name in ("spaces", "src", "benchmarks"):
        (work / name).symlink_to(REPO / name)
    data = tmp / "shared" / "data"
    shutil.copytree(FIXTURES / "okapi-eval", data / "okapi-eval")
    shutil.copy(
        FIXTURES / "leaderboard" / "reference_results_base_models_sample.csv",
        data / "okapi-eval" / "reference_results_base_models.csv",
    )
    shutil.copytree(FIXTURES / "vicuna-bench", data / "vicuna-bench")
    return work


def _serve(block: Block, command: list[str], work: Path, env: dict, log: Path) -> None:
    """Start a server block, wait for its URL to answer, stop it."""
    with log.open("w") as out:
        proc = subprocess.Popen(
            command, cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            deadline = time.monotonic() + 240
            while True:
                assert proc.poll() is None, f"README.md:{block.line} exited:\n{log.read_text()[-3000:]}"
                try:
                    with urllib.request.urlopen(block.url, timeout=5) as response:
                        if response.status == 200:
                            return
                except OSError:
                    pass
                assert time.monotonic() < deadline, f"README.md:{block.line}: {block.url} never answered"
                time.sleep(1)
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


@pytest.mark.slow
def test_every_readme_block_runs_as_written(tmp_path):
    blocks = [b for b in readme_blocks((REPO / "README.md").read_text(encoding="utf-8")) if not b.skip]
    # A development loop: OKAPI_HF_README_DIR keeps the folder between runs and skips the blocks (by their
    # text) that already ran there, so a fix to block 20 does not rerun 19 blocks. CI never sets it.
    keep = os.environ.get("OKAPI_HF_README_DIR")
    root = Path(keep) if keep else tmp_path
    work = root / "okapi-hf" if keep and (root / "okapi-hf").is_dir() else _folder(root)
    done_file = root / "done-blocks.txt"
    ran = set(done_file.read_text().split("\n")) if keep and done_file.exists() else set()
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ["PATH"], "OMP_NUM_THREADS": "2"}
    env.pop("OKAPI_HF_EVAL_DIR", None)
    timings = []
    for n, block in enumerate(blocks):
        key = hashlib.sha256(block.code.encode()).hexdigest()
        if key in ran:
            continue
        script = work.parent / f"block{n}.{'py' if block.lang == 'python' else 'sh'}"
        script.write_text(block.code, encoding="utf-8")
        command = [sys.executable, str(script)] if block.lang == "python" else ["bash", "-euo", "pipefail", str(script)]
        start = time.monotonic()
        if block.url:
            _serve(block, command, work, env, work.parent / f"block{n}.log")
        else:
            done = subprocess.run(
                command, cwd=work, env=env, input=block.stdin, capture_output=True, text=True, timeout=900
            )
            assert done.returncode == 0, (
                f"README.md:{block.line} ({block.lang}) exited {done.returncode}:\n"
                f"{block.code}\n--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-5000:]}"
            )
        timings.append((block.line, round(time.monotonic() - start, 1)))
        if keep:
            with done_file.open("a") as f:
                f.write(key + "\n")
    print("README blocks (line, seconds):", timings)
    assert not list(REPO.glob("okapi_sample_raw")), "a README block wrote into the repository"
