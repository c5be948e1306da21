"""The fast multiple-choice scorer gives lm-eval ``hf``'s log-likelihoods (to 1e-4 in fp32).

The reference is lm-eval's own ``hf`` model on the same weights and the same requests; the requests
include continuations that merge with the context at the token boundary, trailing spaces, one-token
and long continuations, several contexts, and a context longer than Gemma's 512-token sliding window.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from okapi_hf.eval import tasks_path

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "okapi-eval"


def _requests(long_context: str) -> list[tuple[str, str]]:
    question = "Question: Thủ đô của Việt Nam là gì?\nAnswer:"
    return [
        (question, " Hà Nội"),
        (question, " Thành phố Hồ Chí Minh"),
        (question, " Huế"),
        (question + " ", "Hà Nội"),  # trailing space moves to the continuation
        (
            "Die Hauptstadt von Deutschland ist Ber",
            "liner Luft. Berlin Berliner",
        ),  # merges with the context's last word
        ("The answer is", "."),
        ("Q: 2+2?\nA: 4\n\nQ: 3+3?\nA:", " 6"),
        (long_context, " Hà Nội"),
        (long_context, " một thành phố lớn ở miền Bắc Việt Nam, thủ đô từ năm 1976"),
    ]


def _long_context() -> str:
    import json

    rows = json.loads((FIXTURES / "m_arc" / "vi_train.json").read_text(encoding="utf-8"))
    return "\n\n".join(f"Question: {r['instruction']}\nAnswer: {r['option_a']}" for r in rows[:12])


def _loglikelihoods(backend: str, model: Path, requests: list[tuple[str, str]], bos: bool) -> list[float]:
    from lm_eval.api.instance import Instance
    from lm_eval.api.registry import get_model

    import okapi_hf.eval.scorer  # noqa: F401 (registers okapi-hf)

    lm = get_model(backend)(
        pretrained=str(model), device="cpu", batch_size=1, add_bos_token=bos, dtype="float32"
    )
    instances = [
        Instance(request_type="loglikelihood", doc={}, arguments=pair, idx=i)
        for i, pair in enumerate(requests)
    ]
    return [ll for ll, _ in lm.loglikelihood(instances, disable_tqdm=True)]


def _merges(model: Path, requests: list[tuple[str, str]]) -> int:
    """How many requests' continuation merges with the context's last token."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model)
    count = 0
    for context, continuation in requests:
        context = context.rstrip()
        whole = tok(context + continuation, add_special_tokens=False).input_ids
        alone = tok(context, add_special_tokens=False).input_ids
        count += whole[: len(alone)] != alone
    return count


def _check(model: Path, bos: bool) -> None:
    requests = _requests(_long_context())
    assert _merges(model, requests) >= 1  # the boundary case is exercised on this tokenizer
    fast = _loglikelihoods("okapi-hf", model, requests, bos)
    reference = _loglikelihoods("hf", model, requests, bos)
    assert fast == pytest.approx(reference, abs=1e-4, rel=0)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from okapi_hf.testing import make_tiny_model

    root = tmp_path_factory.mktemp("scorer")
    return {
        arch: make_tiny_model(arch, root / arch, extra_texts=[_long_context(), "Berlin Berliner Luft. " * 50])
        for arch in ("llama", "bloom")
    }


@pytest.mark.parametrize("arch", ["llama", "bloom"])
@pytest.mark.parametrize("bos", [False, True])
def test_same_loglikelihoods_as_lm_eval_hf(tiny, arch, bos):
    _check(tiny[arch], bos)


@pytest.mark.slow
def test_same_loglikelihoods_as_lm_eval_hf_on_gemma(gemma):
    _check(gemma, False)


def test_lm_eval_cli_knows_the_okapi_hf_model(tiny, tmp_path):
    """``lm_eval --model okapi-hf`` works without importing anything first (the installed .pth hook)."""
    cmd = [
        sys.executable,
        "-m",
        "lm_eval",
        "run",
        "--model",
        "okapi-hf",
        "--model_args",
        f"pretrained={tiny['llama']}",
        "--include_path",
        str(tasks_path()),
        "--tasks",
        "okapi_arc_vi",
        "--limit",
        "2",
        "--device",
        "cpu",
        "--output_path",
        str(tmp_path / "out"),
    ]
    env = {"OKAPI_HF_EVAL_DIR": str(FIXTURES), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "okapi_arc_vi" in proc.stdout and "acc" in proc.stdout
    assert "okapi-hf" in proc.stdout  # lm-eval's summary line names the model
