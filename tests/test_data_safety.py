"""Issue 16, the data release commands: kills, full disks, two writers, hostile servers and bad raw rows.

`data build` replaces its folder whole, so a kill at any instant leaves the old build or the new one; every
output folder is locked; a full disk gives one line and keeps the previous output; a download that is not
the release's JSON is never saved nor pinned; raw rows that would be silently wrong are named or counted.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import datasets
import pytest

import okapi_hf.data.load as okapi_load
from conftest import fill_disk
from okapi_hf.cli import main
from okapi_hf.data.build import build_dataset
from okapi_hf.data.sample import write_sample_raw

SFT = "multilingual-alpaca-52k"
RANKING = "multilingual-ranking-data-42k"
CONFIGS = ("vi", "vi-ranking", "vi-rl", "zh", "zh-ranking", "zh-rl")


# -- helpers ------------------------------------------------------------------------------------------


def _one_error(err: str) -> str:
    """The one `okapi-hf: error:` line of a failed command (progress bars, drawn with \\r, aside)."""
    lines = [line for line in err.split("\n") if line.strip() and "\r" not in line]
    assert len(lines) == 1 and lines[0].startswith("okapi-hf: error: "), err
    return lines[0]


def _snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` by relative path, with its sha256: two equal snapshots are equal folders."""
    if not folder.is_dir():
        return {}
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _rows(folder: Path) -> dict[str, dict[str, list[dict]]]:
    """What `datasets.load_dataset` reads from each config of a built folder."""
    return {
        config: {split: part.to_list() for split, part in datasets.load_dataset(str(folder), config).items()}
        for config in CONFIGS
    }


class Builds:
    """An old build of vi and zh, and the new build that rebuilding vi from changed raw files gives."""

    def __init__(self, root: Path, n_sft: int = 30) -> None:
        self.raw, self.out = root / "raw", root / "okapi_hf"
        write_sample_raw(self.raw, "vi,zh", n_sft=n_sft, n_ranking=8, n_rl=10, seed=0)
        build_dataset(self.raw, self.out, "vi,zh", progress=False)
        self.pristine = root / "pristine-old"
        shutil.copytree(self.out, self.pristine)
        self.old = _snapshot(self.out)
        write_sample_raw(self.raw, "vi", n_sft=n_sft + 7, n_ranking=9, n_rl=11, seed=1)
        reference = root / "reference-new"
        shutil.copytree(self.pristine, reference)
        build_dataset(self.raw, reference, "vi", progress=False)
        self.new = _snapshot(reference)
        assert self.new != self.old and set(self.new) == set(self.old)
        self.reference = reference

    def argv(self) -> list[str]:
        return ["data", "build", "--raw-dir", str(self.raw), "--langs", "vi", "--out", str(self.out)]

    def state(self) -> str:
        """'old' or 'new'; anything else fails the test and shows what differs."""
        now = _snapshot(self.out)
        if now == self.old:
            return "old"
        if now == self.new:
            return "new"
        differ = sorted(k for k in {*now, *self.new} if now.get(k) not in (self.old.get(k), self.new.get(k)))
        mixed = sorted(k for k in now if now[k] == self.old.get(k) != self.new.get(k))
        pytest.fail(
            f"{self.out} is neither the old nor the new build: differs {differ[:6]}, old parts {mixed[:6]}"
        )

    def reset(self) -> None:
        """Put the old build back and clear what any run left beside it."""
        for path in self.out.parent.iterdir():
            if path.name.startswith((".okapi_hf.", "okapi_hf")):
                shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
        shutil.copytree(self.pristine, self.out)


# -- 1. a kill at any instant of `data build` over an existing folder -----------------------------------

_STEPS = ("rename", "replace", "link", "symlink", "unlink", "rmdir", "mkdir", "fsync", "open")


class _Killer:
    """Counts the file-system calls of one build and kills the process before call number ``at``.

    ``observe`` (when given) runs before every call: the counting run uses it to see the folder change.
    """

    def __init__(
        self,
        monkeypatch: pytest.MonkeyPatch,
        at: int | None,
        kill: Callable[[], None],
        observe: Callable[[], None] | None = None,
    ) -> None:
        import pyarrow.parquet as pq

        self.calls, self.at, self.kill, self.observe = 0, at, kill, observe
        for name in _STEPS:
            monkeypatch.setattr(os, name, self._wrap(getattr(os, name)))
        monkeypatch.setattr(pq, "write_table", self._wrap(pq.write_table))

    def _wrap(self, real: Callable) -> Callable:
        def step(*args, **kwargs):
            self.calls += 1
            if self.observe is not None:
                self.observe()
            if self.calls == self.at:
                self.kill()
            return real(*args, **kwargs)

        return step


def _sigkill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _sigint_self() -> None:
    os.kill(os.getpid(), signal.SIGINT)  # Python turns it into KeyboardInterrupt at the next bytecode


def _build_killed_in_child(builds: Builds, at: int) -> None:
    """Fork; the child builds and SIGKILLs itself before file-system call ``at``; the parent waits."""
    pid = os.fork()
    if pid == 0:  # the child: nothing of pytest may run here
        try:
            with pytest.MonkeyPatch.context() as mp:
                _Killer(mp, at, _sigkill_self)
                build_dataset(builds.raw, builds.out, "vi", progress=False)
        finally:
            os._exit(0)
    deadline = time.monotonic() + 60
    while (done := os.waitpid(pid, os.WNOHANG))[0] == 0:
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail(f"the build killed at step {at} hung")
        time.sleep(0.005)
    assert os.WIFSIGNALED(done[1]) or os.WEXITSTATUS(done[1]) == 0


@pytest.mark.slow
@pytest.mark.parametrize("how", ["SIGKILL", "SIGINT"])
def test_a_kill_at_every_file_system_step_of_a_rebuild_leaves_old_or_new(how, tmp_path, monkeypatch, capsys):
    """Kill before each rename, link, fsync, open, Parquet write ... of a rebuild; then load, then rebuild."""
    builds = Builds(tmp_path)
    labels: list[str] = []  # before each step of an uninterrupted rebuild: is the folder old, new or mixed?

    def observe() -> None:
        now = _snapshot(builds.out)
        labels.append("old" if now == builds.old else "new" if now == builds.new else "mixed")

    with pytest.MonkeyPatch.context() as mp:
        counter = _Killer(mp, None, lambda: None, observe)
        build_dataset(builds.raw, builds.out, "vi", progress=False)
    steps = counter.calls
    assert builds.state() == "new" and steps > 20
    flip = next((i for i, label in enumerate(labels, 1) if label != "old"), steps)
    rng = random.Random(16)
    # every step around the one that changes the folder, eight seeded others, and the end
    near = set(range(max(1, flip - 5), min(steps, flip + 4) + 1))
    chosen = sorted({*near, *rng.sample(sorted(set(range(1, steps + 1)) - near), 8), steps + 1})
    seen = {"old": 0, "new": 0}
    for at in chosen:
        builds.reset()
        if how == "SIGKILL":
            _build_killed_in_child(builds, at)
        else:
            with pytest.MonkeyPatch.context() as mp:
                _Killer(mp, at, _sigint_self)
                with contextlib.suppress(KeyboardInterrupt):
                    build_dataset(builds.raw, builds.out, "vi", progress=False)
        state = builds.state()
        seen[state] += 1
        loaded = okapi_load.load_dataset("vi", path=builds.out, split="validation")
        reference = builds.pristine if state == "old" else builds.reference
        assert loaded.to_list() == okapi_load.load_dataset("vi", path=reference, split="validation").to_list()
        build_dataset(builds.raw, builds.out, "vi", progress=False)  # the next run repairs and succeeds
        assert builds.state() == "new", f"rebuild after a {how} at step {at} of {steps}"
        assert not [
            p for p in tmp_path.iterdir() if p.name.startswith(".okapi_hf.") and p.name != ".okapi_hf.lock"
        ]
    assert seen["old"] and seen["new"]


def _wait_for_build_start(proc: subprocess.Popen, parent: Path, timeout: float = 30) -> float:
    """The instant the build's temporary sibling folder appears (after the imports)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(n.startswith(".okapi_hf.") for n in os.listdir(parent)):
            return time.monotonic()
        if proc.poll() is not None:
            return time.monotonic()
        time.sleep(0.0005)
    pytest.fail("the build never started")


def _card_id(folder: Path) -> tuple[int, int] | None:
    """Which README.md the folder holds now (inode, mtime); a rebuild changes it once it is done."""
    try:
        stat = (folder / "README.md").stat()
    except FileNotFoundError:
        return None
    return stat.st_ino, stat.st_mtime_ns


@pytest.mark.slow
def test_a_kill_at_random_instants_of_a_cli_rebuild_leaves_old_or_new(tmp_path, capsys):
    """`okapi-hf data build` in a subprocess, SIGKILL and SIGINT at seeded random instants of its run."""
    builds = Builds(tmp_path, n_sft=600)
    expected = {"old": _rows(builds.pristine), "new": _rows(builds.reference)}
    command = [sys.executable, "-m", "okapi_hf.cli", *builds.argv()]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    started = time.monotonic()
    begun = _wait_for_build_start(proc, tmp_path)
    before = _card_id(builds.out)
    while proc.poll() is None and _card_id(builds.out) == before:
        time.sleep(0.0005)
    changed = time.monotonic()  # calibration: the writing part of a run ends when the card changes
    proc.wait(timeout=60)
    window, imports = changed - begun, begun - started
    assert proc.returncode == 0 and builds.state() == "new"
    rng = random.Random(1616)
    strata = 4  # one seeded instant in each quarter of the writing part, the last running a little past it
    kills = [
        (sig, "build", window * 1.25 * (i + rng.random()) / strata)
        for i, sig in enumerate([signal.SIGKILL, signal.SIGINT] * (strata // 2))
    ]
    kills += [
        (signal.SIGINT, "start", rng.uniform(0, imports)),
        (signal.SIGKILL, "start", rng.uniform(0, imports)),
    ]
    seen = []
    for sig, phase, delay in kills:
        builds.reset()
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if phase == "build":
            _wait_for_build_start(proc, tmp_path)
        time.sleep(delay)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
        state = builds.state()
        seen.append(state)
        assert _rows(builds.out) == expected[state], f"{sig.name} after {delay:.3f}s ({phase})"
        if sig == signal.SIGINT and proc.returncode != 0 and phase == "build":
            assert "Traceback" not in err
        assert main(builds.argv()) == 0, f"the build after {sig.name} at {delay:.3f}s failed ({seen})"
        assert builds.state() == "new"
    print("states after the kills:", seen)


def test_a_swap_cut_between_two_renames_is_finished_or_rolled_back(tmp_path, capsys):
    """Where the file system cannot exchange folders atomically: the next run repairs, with one line."""
    builds = Builds(tmp_path)
    half_new = tmp_path / ".okapi_hf.new-4242"
    half_old = tmp_path / ".okapi_hf.old-4242"
    os.rename(builds.out, half_old)
    shutil.copytree(builds.reference, half_new)
    with pytest.raises(Exception, match="interrupted"):
        okapi_load.load_dataset("zh", path=builds.out)
    assert main(builds.argv()) == 0
    err = capsys.readouterr().err
    assert "finished a build that was interrupted while swapping folders" in err
    assert builds.state() == "new" and not half_old.exists() and not half_new.exists()

    os.rename(builds.out, half_old)  # only the old folder: the new one was never complete
    assert main([*builds.argv()[:5], "zh", *builds.argv()[6:]]) == 0
    err = capsys.readouterr().err
    assert "rolled back a build that was interrupted while swapping folders" in err
    assert okapi_load.load_dataset("vi", path=builds.out)["train"].num_rows > 0  # vi came back too


def test_the_two_rename_fallback_swaps_whole_folders(tmp_path, monkeypatch):
    """Where renameat2 is missing the swap still replaces the folder whole and leaves nothing beside it."""
    import okapi_hf.data.build as build

    builds = Builds(tmp_path)
    monkeypatch.setattr(build, "_exchange", lambda a, b: False)
    assert main(builds.argv()) == 0
    assert builds.state() == "new" and sorted(
        p.name for p in tmp_path.iterdir() if "okapi_hf." in p.name
    ) == [".okapi_hf.lock"]


# -- 2. two writers of one output -------------------------------------------------------------------

_HOLDER = """
import os, sys
from pathlib import Path
from okapi_hf.fsutil import locked
with locked(Path(os.path.realpath(sys.argv[1]))):
    print("held", flush=True)
    sys.stdin.read()
"""


@pytest.fixture
def lock_holder() -> Iterator[Callable[[Path], subprocess.Popen]]:
    """Start a second process that holds the lock of a folder until the test ends."""
    procs: list[subprocess.Popen] = []

    def hold(folder: Path) -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, "-c", _HOLDER, str(folder)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout.readline().strip() == "held"
        procs.append(proc)
        return proc

    yield hold
    for proc in procs:
        proc.communicate("", timeout=30)


def test_a_second_build_into_one_folder_is_refused_with_the_holders_pid(tmp_path, lock_holder, capsys):
    write_sample_raw(tmp_path / "raw", "vi", n_sft=8, n_ranking=3, n_rl=4)
    out = tmp_path / "okapi_hf"
    holder = lock_holder(out)
    assert (
        main(["data", "build", "--raw-dir", str(tmp_path / "raw"), "--langs", "vi", "--out", str(out)]) == 1
    )
    err = _one_error(capsys.readouterr().err)
    assert f"being written by process {holder.pid}" in err
    assert not out.exists()


def test_a_second_sample_into_one_folder_is_refused_with_the_holders_pid(tmp_path, lock_holder, capsys):
    out = tmp_path / "raw"
    holder = lock_holder(out)
    assert main(["data", "sample", "--out", str(out), "--langs", "vi"]) == 1
    assert f"being written by process {holder.pid}" in capsys.readouterr().err
    assert not out.exists()


# -- a local release server ---------------------------------------------------------------------------


class _Server:
    """Serves ``routes`` (path -> (status, content type, body)); ``hold_first`` stalls the first request."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, str, bytes]] = {}
        self.hold_first = threading.Event()
        self.release = threading.Event()
        self.requests: list[str] = []
        self.url = ""

    def handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(self.path)
                if server.hold_first.is_set() and len(server.requests) == 1:
                    server.release.wait(30)
                status, kind, body = server.routes.get(self.path, (404, "text/plain", b"not found"))
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler


@pytest.fixture
def release() -> Iterator[_Server]:
    state = _Server()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), state.handler())
    httpd.daemon_threads = True
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}/datasets"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    yield state
    state.release.set()
    httpd.shutdown()
    httpd.server_close()


def _release_json(n: int, tag: str = "") -> bytes:
    rows = [{"instruction": f"câu {i} {tag}", "input": "", "output": "trả lời " * 5} for i in range(n)]
    return json.dumps(rows, ensure_ascii=False).encode()


def _download(url: str, out: Path, *extra: str) -> int:
    return main(
        [
            "data",
            "download",
            "--langs",
            "vi",
            "--subsets",
            "sft",
            "--out",
            str(out),
            "--base-url",
            url,
            *extra,
        ]
    )


def test_a_second_download_into_one_folder_is_refused_with_the_first_ones_pid(release, tmp_path, capsys):
    release.routes[f"/datasets/{SFT}/vi.json"] = (200, "application/json", _release_json(50))
    release.hold_first.set()
    out = tmp_path / "raw"
    argv = [
        "data",
        "download",
        "--langs",
        "vi",
        "--subsets",
        "sft",
        "--out",
        str(out),
        "--base-url",
        release.url,
    ]
    first = subprocess.Popen([sys.executable, "-m", "okapi_hf.cli", *argv], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not release.requests and time.monotonic() < deadline:  # the first run is now mid-download
        time.sleep(0.01)
    assert _download(release.url, out) == 1
    assert f"being written by process {first.pid}" in capsys.readouterr().err
    release.release.set()
    assert first.wait(timeout=60) == 0
    assert (out / SFT / "vi.json").read_bytes() == _release_json(50) and len(release.requests) == 1


# -- 3. a 200 response that is not the release's JSON --------------------------------------------------

NOT_JSON = {
    "html error page": (
        b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head></html>",
        "an HTML page",
    ),
    "json error object": (b'{"error": "rate limited, try later"}', "not a JSON array"),
    "cut-off array": (_release_json(20)[:-40], "a cut-off JSON array"),
    "plain text": (b"Service Unavailable\n", "not a JSON array"),
    "array of strings": (b'["a", "b"]', "does not hold row objects"),
}


@pytest.mark.parametrize("case", sorted(NOT_JSON))
def test_a_200_body_that_is_not_release_json_is_never_saved_nor_pinned(case, release, tmp_path, capsys):
    body, expected = NOT_JSON[case]
    release.routes[f"/datasets/{SFT}/vi.json"] = (
        200,
        "text/html" if body[:1] == b"<" else "application/json",
        body,
    )
    out = tmp_path / "raw"
    assert _download(release.url, out, "--retries", "1") == 1
    err = _one_error(capsys.readouterr().err)
    assert expected in err and f"{SFT}/vi.json" in err
    assert not (out / SFT / "vi.json").exists() and not list(out.rglob("*.part*"))
    assert not (out / "SHA256SUMS").exists() or "vi.json" not in (out / "SHA256SUMS").read_text()
    release.routes[f"/datasets/{SFT}/vi.json"] = (200, "application/json", _release_json(20))
    assert _download(release.url, out) == 0  # the next run fetches the real file
    assert "vi.json" in (out / "SHA256SUMS").read_text()


def test_an_html_page_saved_earlier_is_not_pinned(release, tmp_path, capsys):
    out = tmp_path / "raw"
    (out / SFT).mkdir(parents=True)
    (out / SFT / "vi.json").write_bytes(NOT_JSON["html error page"][0])  # saved by an older version
    assert _download(release.url, out) == 1
    err = _one_error(capsys.readouterr().err)
    assert "an HTML page" in err and "--force" in err and not (out / "SHA256SUMS").exists()
    assert release.requests == []


# -- 4. real full disks ------------------------------------------------------------------------------


def test_a_full_disk_during_download_keeps_the_previous_file(release, tmp_path, small_disk, capsys):
    disk = small_disk(768)
    out = disk / "raw"
    first = _release_json(300, "v1")
    release.routes[f"/datasets/{SFT}/vi.json"] = (200, "application/json", first)
    assert _download(release.url, out) == 0
    manifest = (out / "SHA256SUMS").read_text()
    changed = _release_json(3000, "v2")  # far more than the space left
    release.routes[f"/datasets/{SFT}/vi.json"] = (200, "application/json", changed)
    filler = fill_disk(disk, leave=64 << 10)
    capsys.readouterr()
    assert _download(release.url, out, "--force") == 1
    err = _one_error(capsys.readouterr().err)
    assert f"{out / SFT / 'vi.json.part'}: the disk is full" in err
    assert (out / SFT / "vi.json").read_bytes() == first and (out / "SHA256SUMS").read_text() == manifest
    assert not list(out.rglob("*.part*")) and not list(out.rglob(".*.tmp"))
    filler.unlink()
    assert _download(release.url, out, "--force") == 0
    assert (out / SFT / "vi.json").read_bytes() == changed
    assert hashlib.sha256(changed).hexdigest() in (out / "SHA256SUMS").read_text()


def test_a_full_disk_during_sample_keeps_the_previous_files(tmp_path, small_disk, capsys):
    disk = small_disk(128)
    out = disk / "raw"
    assert main(["data", "sample", "--out", str(out), "--langs", "vi", "--n-sft", "20"]) == 0
    before = _snapshot(out)
    capsys.readouterr()
    assert main(["data", "sample", "--out", str(out), "--langs", "vi", "--n-sft", "5000"]) == 1
    err = _one_error(capsys.readouterr().err)
    assert f"{out / SFT / 'vi.json'}: the disk is full" in err
    assert _snapshot(out) == before and not list(out.rglob(".*.tmp"))


@pytest.mark.slow
def test_a_full_disk_at_any_write_of_a_build_keeps_the_previous_build(tmp_path, small_disk, capsys):
    """From no space at all to just too little for the last write: one line, the old build intact."""
    disk = small_disk(2048)
    raw, out = tmp_path / "raw", disk / "okapi_hf"
    write_sample_raw(raw, "vi,zh", n_sft=40, n_ranking=6, n_rl=8, seed=0)
    argv = ["data", "build", "--raw-dir", str(raw), "--out", str(out)]
    assert main([*argv, "--langs", "vi,zh"]) == 0
    old = _snapshot(out)
    pristine = tmp_path / "pristine"
    shutil.copytree(out, pristine)
    write_sample_raw(raw, "vi", n_sft=400, n_ranking=60, n_rl=80, seed=1)
    failed = 0
    for leave in range(0, 160 << 10, 8 << 10):
        filler = fill_disk(disk, leave=leave)
        capsys.readouterr()
        code = main([*argv, "--langs", "vi"])
        err = capsys.readouterr().err
        filler.unlink()
        assert "Traceback" not in err
        if code == 0:
            shutil.rmtree(out)
            shutil.copytree(pristine, out)
            continue
        failed += 1
        err = _one_error(err)
        assert code == 1 and "the disk is full" in err and "still holds the previous build" in err
        assert str(disk) in err
        assert _snapshot(out) == old, f"leave={leave}"
        json.loads((out / "okapi_build.json").read_text())
        assert okapi_load.load_dataset("vi", path=out)["train"].num_rows == 36
        assert not [
            p for p in disk.iterdir() if p.name.startswith(".okapi_hf.") and p.name != ".okapi_hf.lock"
        ]
    assert failed >= 3
    assert main([*argv, "--langs", "vi"]) == 0  # with space again
    assert okapi_load.load_dataset("vi", path=out)["train"].num_rows == 360


# -- 5. raw rows that would be silently wrong -----------------------------------------------------------


def _k(q: str, responses: list[str]) -> dict:
    return {"instruction": q, "input": "", "responses": responses}


def _pair(q: str, better: str, worse: str) -> dict:
    return {"instruction": q, "input": "", "prefered_output": better, "rejected_output": worse}


def _s(i: int, **kw) -> dict:
    return {"instruction": f"câu hỏi {i}", "input": "", "output": f"trả lời {i}", **kw}


GOOD = [_s(i) for i in range(2, 8)]
# name: (subset, rows or raw text or bytes, expected text, rows named); each fails the build with a line
# that names the file, and the rows where a row is at fault
BAD_RAW = {
    "K-wise rows of one prompt in opposite orders": (
        "ranking",
        [_k("q", ["a", "b", "c"]), _k("r", ["x", "y"]), _k("q", ["c", "b", "a"])],
        "conflicting rankings of one prompt",
        "(rows 1, 3)",
    ),
    "K-wise rows of one prompt over other responses": (
        "ranking",
        [_k("q", ["a", "b", "c"]), _k("q", ["d", "e"]), _k("r", ["x", "y"])],
        "conflicting rankings of one prompt",
        "(rows 1, 2)",
    ),
    "a K-wise row and pairs of one prompt, K 3 against 2": (
        "ranking",
        [_k("q", ["a", "b", "c"]), _k("r", ["x", "y"]), _pair("q", "b", "a")],
        "conflicting rankings of one prompt",
        "(rows 1, 3)",
    ),
    "NaN output": (
        "sft",
        '[{"instruction": "q", "input": "", "output": NaN}, ' + json.dumps(GOOD)[1:],
        "field 'output' is NaN",
        "(rows 1)",
    ),
    "Infinity output": (
        "sft",
        '[{"instruction": "q", "input": "", "output": -Infinity}, ' + json.dumps(GOOD)[1:],
        "field 'output' is NaN or Infinity",
        "(rows 1)",
    ),
    "a key twice in one row": (
        "sft",
        '[{"instruction": "q", "input": "", "output": "a", "output": "b"}, ' + json.dumps(GOOD)[1:],
        "field 'output' appears twice",
        "(rows 1)",
    ),
    "an unpaired surrogate escape": (
        "sft",
        '[{"instruction": "q", "input": "", "output": "\\ud83d"}, ' + json.dumps(GOOD)[1:],
        "unpaired UTF-16 surrogate",
        "(rows 1)",
    ),
    "a row whose lang is another language": (
        "sft",
        [*GOOD, _s(9, lang="de")],
        "field 'lang' is 'de', but the file is for vi",
        "(rows 7)",
    ),
    "preferred_output spelled the English way": (
        "ranking",
        [
            {"instruction": "q", "input": "", "preferred_output": "a", "rejected_output": "b"},
            _k("r", ["x", "y"]),
        ],
        "found 'preferred_output'; the release spells it 'prefered_output'",
        "(rows 1)",
    ),
    "an HTML page saved as vi.json": (
        "sft",
        "<!DOCTYPE html>\n<html><body>502 Bad Gateway</body></html>",
        "an HTML or XML page",
        "",
    ),
    "a gzip file named vi.json": ("sft", b"\x1f\x8b\x08\x00" + bytes(20), "gzip-compressed", ""),
    "UTF-16 text": ("sft", json.dumps(GOOD).encode("utf-16"), "UTF-16 text; re-encode it as UTF-8", ""),
    "rows wrapped in one object": (
        "sft",
        json.dumps({"data": GOOD}),
        "one JSON object holding 6 rows under 'data'",
        "",
    ),
    "one pretty-printed object": (
        "sft",
        json.dumps(GOOD[0], indent=2),
        "one JSON object spanning several lines",
        "",
    ),
    "JSON Lines of arrays": (
        "sft",
        json.dumps(GOOD[:3]) + "\n" + json.dumps(GOOD[3:]) + "\n",
        "JSON Lines need one object per line",
        "line 2",
    ),
    "invalid UTF-8 on line 3": (
        "sft",
        b'[\n{"instruction": "a", "input": "", "output": "b"},\n{"instruction": "caf\xe9"}]',
        "invalid byte at offset 72), line 3",
        "",
    ),
}


def _write_bad(write_raw, value) -> Path:
    subset, content = value[0], value[1]
    if isinstance(content, bytes):
        path = write_raw(subset, "vi", text="")
        path.write_bytes(content)
        return path
    if isinstance(content, str):
        return write_raw(subset, "vi", text=content)
    return write_raw(subset, "vi", content)


@pytest.mark.parametrize("case", sorted(BAD_RAW))
def test_silently_wrong_raw_rows_are_named_by_file_row_and_field(case, write_raw, tmp_path, capsys):
    subset, _, expected, rows = BAD_RAW[case]
    path = _write_bad(write_raw, BAD_RAW[case])
    argv = ["data", "build", "--raw-dir", str(tmp_path / "raw"), "--langs", "vi", "--subsets", subset]
    assert main([*argv, "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert any(str(path) in line and expected in line and rows in line for line in err.splitlines()), err
    assert not (tmp_path / "out").exists()


def test_conflicting_rankings_are_counted_in_the_summary_when_skipped(write_raw, tmp_path, capsys):
    write_raw(
        "ranking",
        "vi",
        [_k("q", ["a", "b"]), _k("q", ["b", "a"]), *[_k(f"r{i}", ["x", "y"]) for i in range(4)]],
    )
    argv = ["data", "build", "--raw-dir", str(tmp_path / "raw"), "--langs", "vi", "--subsets", "ranking"]
    assert main([*argv, "--out", str(tmp_path / "out"), "--skip-invalid"]) == 0
    assert "2 conflicting rankings of one prompt" in capsys.readouterr().out
    loaded = okapi_load.load_dataset("vi", "ranking", path=tmp_path / "out")
    assert sorted(r for part in loaded.values() for r in part["instruction"]) == [f"r{i}" for i in range(4)]


@pytest.mark.parametrize("other", ["vi.jsonl", "jp.json"])
def test_two_raw_files_for_one_language_are_refused(other, write_raw, tmp_path, capsys):
    lang = "ja" if other == "jp.json" else "vi"
    path = write_raw("sft", lang, GOOD)
    (path.parent / other).write_text(json.dumps(GOOD[:2]))
    argv = ["data", "build", "--raw-dir", str(tmp_path / "raw"), "--langs", lang, "--subsets", "sft"]
    assert main([*argv, "--out", str(tmp_path / "out")]) == 1
    err = _one_error(capsys.readouterr().err)
    assert (
        f"{path.name} and {other} both hold {lang} rows" in err or f"{other} and {path.name} both hold" in err
    )


def test_byte_order_marks_of_concatenated_files_are_read(write_raw, tmp_path):
    path = write_raw("sft", "vi", text="")
    lines = [json.dumps(row, ensure_ascii=False).encode() for row in GOOD]
    path.write_bytes(
        b"\xef\xbb\xbf" + lines[0] + b"\n" + b"\n".join(b"\xef\xbb\xbf" + line for line in lines[1:])
    )
    build_dataset(tmp_path / "raw", tmp_path / "out", "vi", "sft", progress=False)
    loaded = okapi_load.load_dataset("vi", path=tmp_path / "out")
    assert sum(part.num_rows for part in loaded.values()) == len(GOOD)
    path.write_bytes(b"\xef\xbb\xbf\xef\xbb\xbf" + json.dumps(GOOD).encode())  # saved twice with a BOM
    build_dataset(tmp_path / "raw", tmp_path / "out", "vi", "sft", progress=False)


def test_one_prompt_with_two_outputs_never_straddles_train_and_validation(write_raw, tmp_path):
    rows = [_s(i) for i in range(60)]
    rows += [_s(i, output=f"một câu trả lời khác {i}") for i in range(0, 60, 3)]  # 20 prompts answered twice
    write_raw("sft", "vi", rows)
    build_dataset(tmp_path / "raw", tmp_path / "out", "vi", "sft", progress=False)
    loaded = okapi_load.load_dataset("vi", path=tmp_path / "out")
    where: dict[str, set[str]] = {}
    for split, part in loaded.items():
        for instruction in part["instruction"]:
            where.setdefault(instruction, set()).add(split)
    assert all(len(splits) == 1 for splits in where.values()), {k: v for k, v in where.items() if len(v) > 1}
    assert sum(part.num_rows for part in loaded.values()) == 80 and loaded["validation"].num_rows >= 6


# -- 6. option and path values, refused before any work ----------------------------------------------


def _options(tmp: Path) -> dict[str, tuple[list[str], int, str]]:
    raw, afile, dead = str(tmp / "raw"), str(tmp / "afile"), "http://127.0.0.1:9/never-contacted"
    build = ["data", "build", "--raw-dir", raw, "--langs", "vi"]
    download = ["data", "download", "--langs", "vi", "--base-url", dead]
    return {
        "build --out is a file": ([*build, "--out", afile], 1, "--out"),
        "build --raw-dir does not exist": (
            ["data", "build", "--raw-dir", str(tmp / "nope"), "--langs", "vi", "--out", str(tmp / "o")],
            1,
            "--raw-dir",
        ),
        "build --raw-dir is a file": (
            ["data", "build", "--raw-dir", afile, "--langs", "vi", "--out", str(tmp / "o")],
            1,
            "is a file",
        ),
        "build --out is the --raw-dir": ([*build, "--out", raw], 1, "is the --raw-dir folder"),
        "build --out is the current folder": ([*build, "--out", "."], 1, "is or contains the current folder"),
        "build --out holds someone else's files": (
            [*build, "--out", str(tmp / "notes")],
            1,
            "did not write (notes.txt)",
        ),
        "build --subsets ''": (
            [*build, "--subsets", "", "--out", str(tmp / "o")],
            1,
            "no subset given in ''",
        ),
        "download --out is a file": ([*download, "--out", afile], 1, "--out"),
        "download --base-url notaurl": (
            ["data", "download", "--langs", "vi", "--base-url", "notaurl", "--out", str(tmp / "d")],
            1,
            "is not an http:// or https:// URL",
        ),
        "download --retries 0": (
            [*download, "--retries", "0", "--out", str(tmp / "d")],
            2,
            "--retries: expected a whole number of 1 or more",
        ),
        "download --subsets ''": (
            [*download, "--subsets", "", "--out", str(tmp / "d")],
            1,
            "no subset given in ''",
        ),
        "sample --out is a file": (["data", "sample", "--out", afile], 1, "--out"),
        "sample --langs ''": (
            ["data", "sample", "--out", str(tmp / "s"), "--langs", ""],
            1,
            "no language given in ''",
        ),
    }


@pytest.mark.parametrize("case", sorted(_options(Path("/x"))))
def test_bad_options_and_paths_give_one_line_before_any_work(case, tmp_path, monkeypatch, capsys):
    write_sample_raw(tmp_path / "raw", "vi", n_sft=6, n_ranking=2, n_rl=3)
    (tmp_path / "afile").write_text("not a folder\n")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "notes.txt").write_text("mine\n")
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    argv, code, expected = _options(tmp_path)[case]
    try:
        got = main(argv)
    except SystemExit as exit_:
        got = exit_.code
    err = capsys.readouterr().err
    assert got == code and "Traceback" not in err
    line = [x for x in err.splitlines() if x.strip()][-1]
    assert expected in line and len([x for x in err.splitlines() if "error" in x]) == 1, err
    assert (tmp_path / "afile").read_text() == "not a folder\n" and os.listdir(here) == []
    assert os.listdir(tmp_path / "notes") == ["notes.txt"]
    assert not (tmp_path / "o").exists() and not (tmp_path / "d").exists() and not (tmp_path / "s").exists()


def test_build_subsets_named_twice_build_once(tmp_path, capsys):
    write_sample_raw(tmp_path / "raw", "vi", n_sft=6, n_ranking=2, n_rl=3)
    argv = ["data", "build", "--raw-dir", str(tmp_path / "raw"), "--langs", "vi", "--subsets", "sft,sft"]
    assert main([*argv, "--out", str(tmp_path / "o")]) == 0
    assert okapi_load.load_dataset("vi", path=tmp_path / "o")["train"].num_rows == 5


# -- 7. loading a folder that was changed or damaged after its build --------------------------------------


def test_loading_a_folder_changed_after_its_build_is_refused(tmp_path):
    write_sample_raw(tmp_path / "raw", "vi", n_sft=20, n_ranking=3, n_rl=4)
    out = tmp_path / "out"
    build_dataset(tmp_path / "raw", out, "vi", "sft", progress=False)
    next((out / "data" / "vi" / "sft").glob("validation-*.parquet")).unlink()
    with pytest.raises(Exception, match=r"has \{'train': 18\} rows but okapi_build.json records"):
        okapi_load.load_dataset("vi", path=out)


def test_loading_a_damaged_shard_is_one_clear_error(tmp_path):
    from okapi_hf.errors import DataError

    write_sample_raw(tmp_path / "raw", "vi", n_sft=20, n_ranking=3, n_rl=4)
    out = tmp_path / "out"
    build_dataset(tmp_path / "raw", out, "vi", "sft", progress=False)
    shard = next((out / "data" / "vi" / "sft").glob("train-*.parquet"))
    shard.write_bytes(shard.read_bytes()[:200])
    with pytest.raises(DataError, match="the Parquet shards of config 'vi' cannot be read"):
        okapi_load.load_dataset("vi", path=out)
