"""download_release (and the CLI) against a local HTTP server that can drop connections and ignore Range."""

from __future__ import annotations

import hashlib
import json
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from okapi_hf.cli import main
from okapi_hf.data import download
from okapi_hf.data.download import BASE_URL_ENV, MANIFEST_NAME, download_release
from okapi_hf.errors import DownloadError

SFT = "multilingual-alpaca-52k"
RANKING = "multilingual-ranking-data-42k"
FAST = {"progress": False, "backoff": 0.0, "timeout": 5.0}


@dataclass
class ServerState:
    """What the handler should do, and what it saw; tests flip ``drop`` / ``honour_range`` live."""

    root: Path
    url: str = ""
    drop: str = "never"  # "never", "first" (only the first request) or "always"
    honour_range: bool = True
    weak_etag: bool = False  # send ETag W/"..." (If-Range then only matches Last-Modified)
    on_drop: Callable[[], None] | None = None  # run after a dropped response, e.g. to change the file
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Range header)
    if_ranges: list[str | None] = field(default_factory=list)  # If-Range header of each request


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        state: ServerState = self.server.state  # type: ignore[attr-defined]
        rng = self.headers.get("Range")
        state.requests.append((self.path, rng))
        state.if_ranges.append(if_range := self.headers.get("If-Range"))
        target = state.root / self.path.lstrip("/")
        if not target.is_file():
            self.send_error(404)
            return
        data = target.read_bytes()
        etag = f'"{_sha(data)[:16]}"'
        last_modified = formatdate(target.stat().st_mtime, usegmt=True)
        current = {None, last_modified} if state.weak_etag else {None, etag, last_modified}
        start = 0
        if rng and state.honour_range and if_range in current:  # a stale If-Range gets the whole file
            start = int(rng.removeprefix("bytes=").split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", f"W/{etag}" if state.weak_etag else etag)
        self.send_header("Last-Modified", last_modified)
        self.end_headers()
        if state.drop == "always" or (state.drop == "first" and len(state.requests) == 1):
            self.wfile.write(body[: len(body) // 2])  # full Content-Length promised, half sent
            self.close_connection = True
            if state.on_drop:
                state.on_drop()
            return
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # keep pytest output quiet
        pass


def _fixture_bytes(lang: str, subset: str) -> bytes:
    rows = [
        {"instruction": f"{lang} {subset} Xin chào 你好 {i}", "input": "", "output": "ok " * i}
        for i in range(200)
    ]
    return json.dumps(rows, ensure_ascii=False).encode("utf-8")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerState]:
    root = tmp_path / "www"  # served as /datasets/<folder>/<file>, like the original host
    for folder in (SFT, RANKING):
        (root / "datasets" / folder).mkdir(parents=True)
        for code in ("vi", "de", "en"):
            (root / "datasets" / folder / f"{code}.json").write_bytes(_fixture_bytes(code, folder))
    state = ServerState(root=root)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    httpd.state = state  # type: ignore[attr-defined]
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}/datasets"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def _served(state: ServerState, folder: str, code: str) -> bytes:
    return (state.root / "datasets" / folder / f"{code}.json").read_bytes()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_happy_path_layout_manifest_and_skip(server: ServerState, tmp_path: Path) -> None:
    out = tmp_path / "raw"
    report = download_release(out, "vi,en,de", "sft,ranking", server.url, **FAST)
    expected = {}
    for code in ("vi", "de"):
        for folder in (SFT, RANKING):
            rel = f"{folder}/{code}.json"
            assert (out / rel).read_bytes() == _served(server, folder, code)
            expected[rel] = _sha(_served(server, folder, code))
    assert (out / SFT / "en.json").read_bytes() == _served(server, SFT, "en")
    expected[f"{SFT}/en.json"] = _sha(_served(server, SFT, "en"))
    assert not (out / RANKING / "en.json").exists()
    lines = (out / MANIFEST_NAME).read_text().splitlines()
    assert lines == [f"{expected[rel]}  {rel}" for rel in sorted(expected)]  # sorted by path
    assert report.skipped == [("en", "ranking", "the release has no ranking data for English")]
    assert "skipped" in report.summary() and "en ranking" in report.summary()
    assert len(report.downloaded) == 5 and report.verified == []
    assert report.paths[("de", "ranking")] == out / RANKING / "de.json"
    assert not list(out.rglob("*.part"))


def test_dropped_connection_resumes_with_range(server: ServerState, tmp_path: Path) -> None:
    server.drop = "first"
    out = tmp_path / "raw"
    download_release(out, "vi", "sft", server.url, **FAST)
    full = _served(server, SFT, "vi")
    assert (out / SFT / "vi.json").read_bytes() == full
    assert [r for _, r in server.requests] == [None, f"bytes={len(full) // 2}-"]


def test_always_dropping_server_keeps_part_for_later_resume(server: ServerState, tmp_path: Path) -> None:
    server.drop = "always"
    out = tmp_path / "raw"
    with pytest.raises(DownloadError) as info:
        download_release(out, "vi", "sft", server.url, retries=3, **FAST)
    part = out / SFT / "vi.json.part"
    size = part.stat().st_size
    assert 0 < size < len(_served(server, SFT, "vi"))
    message = str(info.value)
    assert f"{server.url}/{SFT}/vi.json" in message and f"{size} bytes" in message and str(part) in message
    assert len(server.requests) == 3
    assert not (out / SFT / "vi.json").exists() and not (out / MANIFEST_NAME).exists()

    server.drop = "never"
    server.requests.clear()
    download_release(out, "vi", "sft", server.url, **FAST)
    assert server.requests == [(f"/datasets/{SFT}/vi.json", f"bytes={size}-")]
    assert (out / SFT / "vi.json").read_bytes() == _served(server, SFT, "vi")
    assert not part.exists()


def test_rerun_verifies_from_manifest_without_fetching(server: ServerState, tmp_path: Path) -> None:
    out = tmp_path / "raw"
    download_release(out, "vi,de", "sft", server.url, **FAST)
    assert len(server.requests) == 2
    manifest = (out / MANIFEST_NAME).read_text()
    report = download_release(out, "vi,de", "sft", server.url, **FAST)
    assert len(server.requests) == 2
    assert report.downloaded == [] and report.verified == [out / SFT / "vi.json", out / SFT / "de.json"]
    assert (out / MANIFEST_NAME).read_text() == manifest


def test_checksum_mismatch_then_force(server: ServerState, tmp_path: Path) -> None:
    out = tmp_path / "raw"
    download_release(out, "vi", "sft", server.url, **FAST)
    target = out / SFT / "vi.json"
    good = _sha(target.read_bytes())
    target.write_bytes(b"tampered")
    with pytest.raises(DownloadError) as info:
        download_release(out, "vi", "sft", server.url, **FAST)
    message = str(info.value)
    assert str(target) in message and good in message and _sha(b"tampered") in message
    assert "force=True" in message and "--force" in message
    report = download_release(out, "vi", "sft", server.url, force=True, **FAST)
    assert report.downloaded == [target]
    assert target.read_bytes() == _served(server, SFT, "vi")
    assert (out / MANIFEST_NAME).read_text() == f"{good}  {SFT}/vi.json\n"


def test_404_fails_at_once(server: ServerState, tmp_path: Path) -> None:
    with pytest.raises(DownloadError) as info:
        download_release(tmp_path / "raw", "fr", "sft", server.url, **FAST)
    assert f"{server.url}/{SFT}/fr.json" in str(info.value) and "404" in str(info.value)
    assert len(server.requests) == 1


def test_base_url_from_environment(server: ServerState, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(BASE_URL_ENV, server.url)
    out = tmp_path / "raw"
    download_release(out, "de", "ranking", **FAST)
    assert server.requests == [(f"/datasets/{RANKING}/de.json", None)]
    assert (out / RANKING / "de.json").read_bytes() == _served(server, RANKING, "de")


def test_server_ignoring_range_restarts_file(server: ServerState, tmp_path: Path) -> None:
    server.drop, server.honour_range = "first", False
    out = tmp_path / "raw"
    download_release(out, "vi", "sft", server.url, **FAST)
    full = _served(server, SFT, "vi")
    assert server.requests[1][1] == f"bytes={len(full) // 2}-"  # asked to resume, got a 200
    assert (out / SFT / "vi.json").read_bytes() == full


def test_present_file_without_entry_is_hashed(server: ServerState, tmp_path: Path) -> None:
    out = tmp_path / "raw"
    (out / SFT).mkdir(parents=True)
    (out / SFT / "vi.json").write_bytes(b"[]")
    report = download_release(out, "vi", "sft", server.url, **FAST)
    assert server.requests == [] and report.hashed == [out / SFT / "vi.json"]
    assert (out / MANIFEST_NAME).read_text() == f"{_sha(b'[]')}  {SFT}/vi.json\n"


def test_upstream_change_is_caught_against_manifest(server: ServerState, tmp_path: Path) -> None:
    out = tmp_path / "raw"
    download_release(out, "vi", "sft", server.url, **FAST)
    (out / SFT / "vi.json").unlink()
    (server.root / "datasets" / SFT / "vi.json").write_bytes(b"changed")
    with pytest.raises(DownloadError, match="does not match"):
        download_release(out, "vi", "sft", server.url, **FAST)


def test_file_changed_between_attempts_is_refetched_whole(server: ServerState, tmp_path: Path) -> None:
    target = server.root / "datasets" / SFT / "vi.json"
    old = target.read_bytes()
    new = old.replace(b"ok", b"OK")  # same length: a plain Range resume would splice silently
    server.drop, server.on_drop = "first", lambda: target.write_bytes(new)
    out = tmp_path / "raw"
    download_release(out, "vi", "sft", server.url, **FAST)
    assert (out / SFT / "vi.json").read_bytes() == new
    assert server.requests[1][1] == f"bytes={len(old) // 2}-"
    assert server.if_ranges == [None, f'"{_sha(old)[:16]}"']  # the first response's ETag
    assert (out / MANIFEST_NAME).read_text() == f"{_sha(new)}  {SFT}/vi.json\n"
    assert not list(out.rglob("*.part*"))  # neither the part nor its validator is left


def test_weak_etag_falls_back_to_last_modified(server: ServerState, tmp_path: Path) -> None:
    server.drop, server.weak_etag = "first", True
    out = tmp_path / "raw"
    download_release(out, "vi", "sft", server.url, **FAST)
    full = _served(server, SFT, "vi")
    assert server.if_ranges[1] is not None and server.if_ranges[1].endswith(" GMT")
    assert [r for _, r in server.requests] == [None, f"bytes={len(full) // 2}-"]  # resumed, not restarted
    assert (out / SFT / "vi.json").read_bytes() == full


def test_one_failed_file_does_not_stop_the_others(server: ServerState, tmp_path: Path) -> None:
    out = tmp_path / "raw"
    with pytest.raises(DownloadError) as info:
        download_release(out, "fr,vi", "sft", server.url, **FAST)  # fr is not served: 404
    message = str(info.value)
    assert "1 of 2 files failed" in message and f"{server.url}/{SFT}/fr.json: HTTP 404" in message
    assert f"{SFT}/vi.json" not in message
    assert (out / SFT / "vi.json").read_bytes() == _served(server, SFT, "vi")
    assert (out / MANIFEST_NAME).read_text() == f"{_sha(_served(server, SFT, 'vi'))}  {SFT}/vi.json\n"
    assert [p for p, _ in server.requests] == [f"/datasets/{SFT}/fr.json", f"/datasets/{SFT}/vi.json"]


def _dead_url() -> str:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/datasets"


def test_give_up_with_nothing_received_does_not_claim_a_part(tmp_path: Path) -> None:
    out = tmp_path / "raw"
    with pytest.raises(DownloadError) as info:
        download_release(out, "vi", "sft", _dead_url(), retries=2, **FAST)
    message = str(info.value)
    assert "gave up after 2 attempts" in message and "received 0 bytes, so nothing to resume" in message
    assert ".part" not in message and not list(out.rglob("*.part*"))


def _cli_download(url: str, out: Path, *extra: str) -> int:
    argv = ["data", "download", "--langs", "vi", "--subsets", "sft", "--out", str(out), "--base-url", url]
    return main([*argv, *extra])


def test_cli_resumes_an_interrupted_transfer(
    server: ServerState, tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.setattr(download, "DEFAULT_BACKOFF", 0.0)
    server.drop = "first"
    out = tmp_path / "raw"
    assert _cli_download(server.url, out) == 0
    full = _served(server, SFT, "vi")
    assert (out / SFT / "vi.json").read_bytes() == full
    assert (out / MANIFEST_NAME).read_text() == f"{_sha(full)}  {SFT}/vi.json\n"
    assert len(server.requests) == 2 and "downloaded 1" in capsys.readouterr().out


def test_cli_gives_up_cleanly(server: ServerState, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(download, "DEFAULT_BACKOFF", 0.0)
    server.drop = "always"
    out = tmp_path / "raw"
    assert _cli_download(server.url, out, "--retries", "2") == 1
    size = (out / SFT / "vi.json.part").stat().st_size
    err = capsys.readouterr().err
    assert f"{server.url}/{SFT}/vi.json" in err and f"received {size} bytes" in err and size > 0
    assert "gave up after 2 attempts" in err and "Traceback" not in err
    assert len(server.requests) == 2
