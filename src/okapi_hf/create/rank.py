"""Step 4: Okapi's two-turn ranking: translate the instruction and responses to English, then rank.

The judge must end with ``Ranking: [[2, 1, 4, 3]]`` naming every response once. Anything else is
not guessed at: the judge is asked once more for the line alone, and a second failure rejects the
row with the reason counted. The responses are shown in an order shuffled per row (seeded by its
id), so neither a judge's position bias nor one that echoes the example favours the first model.
"""

from __future__ import annotations

import random
import re
import zlib
from pathlib import Path
from typing import Any

from okapi_hf.create.llm import ChatRequest
from okapi_hf.create.llm_types import STEP_DEFAULTS, Sampling
from okapi_hf.create.prompts import render
from okapi_hf.create.runner import RowRejected
from okapi_hf.languages import get_language

# The step's own sampling, which --temperature and --max-tokens override (the retry included): a
# greedy judge, and a short limit for the retry, which asks for the ranking line alone.
TEMPERATURE = 0.0
MAX_TOKENS = 2048
RETRY_MAX_TOKENS = 64
_RANKING = re.compile(r"ranking\s*:\s*\[\[([^\[\]]*)\]\]", re.IGNORECASE)


class RankingError(ValueError):
    """A judge's text without a usable ranking; ``kind`` is the short, countable reason."""

    def __init__(self, message: str, kind: str):
        super().__init__(message)
        self.kind = kind


def parse_ranking(text: str, k: int) -> list[int]:
    """The 1-based response numbers, best first, from the judge's text; :class:`RankingError` if none.

    Exactly one ``Ranking: [[...]]`` line, holding each number from 1 to ``k`` exactly once.
    """
    found = _RANKING.findall(text)
    if not found:
        raise RankingError("no 'Ranking: [[...]]' line", "no ranking line")
    if len(set(found)) > 1:
        raise RankingError(f"{len(found)} different ranking lines", "several ranking lines")
    parts = [p.strip() for p in found[0].split(",")]
    wrong = "not a permutation of the response numbers"
    if not all(p.isdigit() for p in parts):
        raise RankingError(f"the ranking [[{found[0]}]] is not a list of response numbers", wrong)
    numbers = [int(p) for p in parts]
    if sorted(numbers) != list(range(1, k + 1)):
        raise RankingError(f"the ranking {numbers} does not list each of 1..{k} once", wrong)
    return numbers


def make_rank(client: Any, *, prompts_dir: Path | None = None, sampling: Sampling = STEP_DEFAULTS) -> Any:
    """The runner's per-row work: the row's ``responses`` reordered best first (a ranking-subset row)."""
    asked = sampling.fields(temperature=TEMPERATURE, max_tokens=MAX_TOKENS)
    retry_asked = sampling.fields(temperature=TEMPERATURE, max_tokens=RETRY_MAX_TOKENS)

    async def work(row: dict[str, Any]) -> dict[str, Any]:
        responses = row.get("responses")
        if not isinstance(responses, list) or len(responses) < 2:
            raise RowRejected("fewer than 2 responses to rank")
        language = get_language(row.get("lang") or "").name
        k = len(responses)
        shown = list(range(k))
        random.Random(zlib.crc32(str(row["id"]).encode())).shuffle(shown)  # the same order on every run
        fields = {"language": language, "k": k, "example": ", ".join(map(str, range(1, k + 1)))}
        messages = [
            {
                "role": "user",
                "content": render(
                    "rank_translate",
                    prompts_dir,
                    language=language,
                    instruction=row["instruction"],
                    input=row.get("input") or "",
                    responses=[responses[i] for i in shown],
                ),
            }
        ]
        translation = await client.complete(ChatRequest.chat(messages, **asked))
        messages += [
            {"role": "assistant", "content": translation.text},
            {"role": "user", "content": render("rank_judge", prompts_dir, **fields)},
        ]
        judgement = await client.complete(ChatRequest.chat(messages, **asked))
        try:
            order = parse_ranking(judgement.text, k)
        except RankingError as first:
            messages += [
                {"role": "assistant", "content": judgement.text},
                {"role": "user", "content": render("rank_retry", prompts_dir, problem=str(first), **fields)},
            ]
            retry = await client.complete(ChatRequest.chat(messages, **retry_asked))
            try:
                order = parse_ranking(retry.text, k)
            except RankingError:
                raise RowRejected(f"unparsable ranking after a retry ({first.kind})") from None
        best_first = [shown[n - 1] for n in order]  # back from the judge's numbering to the row's
        ranked = {
            "id": row["id"],
            "lang": row.get("lang", ""),
            "instruction": row["instruction"],
            "input": row.get("input") or "",
            "responses": [responses[i] for i in best_first],
        }
        if isinstance(row.get("sources"), list) and len(row["sources"]) == k:
            ranked["sources"] = [row["sources"][i] for i in best_first]  # which model wrote what, for audits
        return ranked

    return work
