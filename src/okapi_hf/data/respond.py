"""Step 3: K responses per instruction, from one or several models and several samplings each.

Okapi ranked several LLMs' responses per instruction; here any mix of backends (endpoints, local
models) and samples per backend gives the K candidates that ``rank`` orders.
"""

from __future__ import annotations

from typing import Any

from okapi_hf.data.llm import ChatRequest
from okapi_hf.data.runner import RowRejected
from okapi_hf.prompts import to_messages

DEFAULT_TEMPERATURE = 0.7  # sampling, so that samples of one model differ


def make_respond(
    clients: list[Any], *, samples: int = 1, temperature: float = DEFAULT_TEMPERATURE, max_tokens: int = 512
) -> Any:
    """The runner's per-row work: the row with ``responses`` (distinct, unranked) and their ``sources``."""
    if not clients or samples < 1:
        raise ValueError("respond needs at least one model and one sample per model")

    async def work(row: dict[str, Any]) -> dict[str, Any]:
        if not str(row.get("instruction", "")).strip():
            raise RowRejected("empty instruction")
        messages = to_messages(row["instruction"], row.get("input") or "")
        responses, sources = [], []
        for client in clients:
            for s in range(samples):
                request = ChatRequest.chat(
                    messages, temperature=temperature, seed=s, sample=s, max_tokens=max_tokens
                )
                text = (await client.complete(request)).text.strip()
                if text and text not in responses:  # an empty or repeated response ranks nothing
                    responses.append(text)
                    sources.append(f"{client.backend.id}#{s}")
        if len(responses) < 2:
            raise RowRejected("fewer than 2 distinct non-empty responses")
        return {
            "id": row["id"],
            "lang": row.get("lang", ""),
            "instruction": row["instruction"],
            "input": row.get("input") or "",
            "responses": responses,
            "sources": sources,
        }

    return work
