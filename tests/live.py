"""Helpers for tests that start a real server (a Gradio Space) and drive it with a real browser."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Screenshots and other things a person may want to look at after a run (CI keeps this folder).
ARTIFACTS = Path(os.environ.get("OKAPI_HF_TEST_ARTIFACTS", REPO / "test-artifacts"))
CHROMIUM_ENV = "OKAPI_HF_CHROMIUM"
CHROMIUM_NAMES = ("chromium", "chromium-browser")
CHROMIUM_DEFAULT = "/usr/bin/chromium"
# The machine has no network: without these flags Chromium keeps trying to reach Google's hosts.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen, timeout: float) -> None:
    """Terminate a server, and kill it if it does not go within ``timeout`` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()


@contextmanager
def run_space(app: Path, env: dict[str, str], timeout: float = 180) -> Iterator[str]:
    """Start ``python app.py`` on 127.0.0.1 with ``env`` added; yield its URL once it answers."""
    port = free_port()
    full_env = {
        **os.environ,
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_ANALYTICS_ENABLED": "False",
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        **env,
    }
    log = ARTIFACTS / f"{Path(app).parent.name}-{port}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, str(app)], env=full_env, stdout=out, stderr=subprocess.STDOUT
        )
        url = f"http://127.0.0.1:{port}/"
        try:
            deadline = time.monotonic() + timeout
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"{app} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
                try:
                    with urllib.request.urlopen(url, timeout=5) as response:
                        if response.status == 200:
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"{app} did not answer on {url} in {timeout}s:\n{log.read_text()[-3000:]}"
                    )
                time.sleep(0.5)
            yield url
        finally:
            _stop(proc, timeout=20)


class ChromiumMissing(RuntimeError):
    """No Chromium to drive: the browser tests fail (never skip) with what to install."""


def find_chromium() -> str:
    """The Chromium binary: ``$OKAPI_HF_CHROMIUM`` if set, else chromium / chromium-browser on PATH,
    else /usr/bin/chromium. Raises :class:`ChromiumMissing` naming the fix when none exists.

    A browser test that cannot run must fail loudly: a skip would pass a suite that never drove the page.
    """
    configured = os.environ.get(CHROMIUM_ENV)
    if configured:
        candidate, where = configured, f"${CHROMIUM_ENV}={configured}"
    else:
        found = next((path for name in CHROMIUM_NAMES if (path := shutil.which(name))), None)
        candidate = found or CHROMIUM_DEFAULT
        where = f"{' or '.join(CHROMIUM_NAMES)} on PATH, or {CHROMIUM_DEFAULT}"
    if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
        return candidate
    raise ChromiumMissing(
        f"the browser tests need Chromium and found none ({where}): install it with "
        f"`apt-get install chromium` (Debian/Ubuntu), or set {CHROMIUM_ENV} to a Chromium or Chrome binary"
    )


@contextmanager
def chromium() -> Iterator:
    """Chromium (see :func:`find_chromium`) driven by Playwright; Playwright's own browser download is not used."""
    executable = find_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def transformers_serve(model: Path, *, sample: bool, timeout: float = 120) -> Iterator[str]:
    """`transformers serve` on 127.0.0.1 with ``model``; yields its backend spec ``openai:PATH@URL/v1``.

    The server samples only when the model's generation config says so (it ignores a request's
    temperature otherwise), so ``sample`` sets ``do_sample`` there: True for several distinct
    responses, False for a deterministic judge.
    """
    config_path = Path(model) / "generation_config.json"
    config = json.loads(config_path.read_text())
    config_path.write_text(json.dumps({**config, "do_sample": sample}))
    port = free_port()
    command = [str(Path(sys.executable).parent / "transformers"), "serve", str(model)]
    command += ["--host", "127.0.0.1", "--port", str(port), "--device", "cpu"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"transformers serve {model} did not start on {url}") from None
                time.sleep(0.5)
        yield f"openai:{model}@{url}/v1"
    finally:
        _stop(proc, timeout=30)
