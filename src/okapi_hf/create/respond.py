"""Step 3: K responses per instruction, from one or several models and several samplings each.

Okapi ranked several LLMs' responses per instruction; here any mix of backends (endpoints, local
models) and samples per backend gives the K candidates that ``rank`` orders.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from okapi_hf.create.llm import ChatRequest
from okapi_hf.create.llm_types import STEP_DEFAULTS, Sampling
from okapi_hf.create.runner import RowRejected
from okapi_hf.create.translate import is_in_language
from okapi_hf.languages import get_language
from okapi_hf.prompts import to_messages

# The step's own sampling, which --temperature and --max-tokens override.
TEMPERATURE = 0.7  # sampling, so that samples of one model differ
MAX_TOKENS = 512


def make_respond(
    clients: list[Any],
    *,
    samples: int = 1,
    sampling: Sampling = STEP_DEFAULTS,
    check_language: bool = True,
) -> Any:
    """The runner's per-row work: the row with ``responses`` (distinct, unranked) and their ``sources``.

    A response that is empty, repeats another, or is not in the row's ``lang`` (multilingual models
    drift into English; ``check_language=False`` keeps them, e.g. for answers that are mostly code) is
    left out; ``work.dropped`` counts them by reason.
    """
    if not clients or samples < 1:
        raise ValueError("respond needs at least one model and one sample per model")
    dropped: Counter = Counter()
    fields = sampling.fields(temperature=TEMPERATURE, max_tokens=MAX_TOKENS)

    async def work(row: dict[str, Any]) -> dict[str, Any]:
        if not str(row.get("instruction", "")).strip():
            raise RowRejected("empty instruction")
        messages = to_messages(row["instruction"], row.get("input") or "")
        lang = row.get("lang") or None
        responses, sources = [], []
        for client in clients:
            for s in range(samples):
                request = ChatRequest.chat(messages, seed=s, sample=s, **fields)
                text = (await client.complete(request)).text.strip()
                problem = _problem(text, responses, lang if check_language else None)
                if problem:
                    dropped[problem] += 1
                    continue
                responses.append(text)
                sources.append(f"{client.backend.id}#{s}")
        if len(responses) < 2:
            raise RowRejected("fewer than 2 usable responses (distinct, non-empty, in the row's language)")
        return {
            "id": row["id"],
            "lang": row.get("lang", ""),
            "instruction": row["instruction"],
            "input": row.get("input") or "",
            "responses": responses,
            "sources": sources,
        }

    work.dropped = dropped
    return work


def _problem(text: str, kept: list[str], lang: str | None) -> str | None:
    """Why a response is left out, or None."""
    if not text:
        return "empty response"
    if text in kept:
        return "repeats another response"
    if lang and not is_in_language(text, lang):
        return f"response not in {get_language(lang).name}"
    return None
