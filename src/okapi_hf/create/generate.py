"""Step 1: English instructions, Self-Instruct style: prompt with seed tasks, parse, filter, de-duplicate.

Okapi grew Alpaca's 52K instructions to 158K this way. Each request shows a few seed tasks drawn
with its own seed, so request ``i`` is the same on every run (and served from the cache after a
crash); the new tasks are filtered and compared by ROUGE-L with the pool in request order, so the
pool is the same however the requests finished.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from okapi_hf.create.llm import ChatRequest
from okapi_hf.create.llm_types import STEP_DEFAULTS, Sampling
from okapi_hf.create.prompts import render

# The step's own sampling, which --temperature and --max-tokens override: at 1.0 each request's tasks
# differ from every other's; 2048 tokens hold the 8 tasks asked for.
TEMPERATURE = 1.0
MAX_TOKENS = 2048
EXAMPLES_PER_PROMPT = 3
TASKS_PER_REQUEST = 8
ROUGE_L_MAX = 0.7  # Self-Instruct's threshold: a new instruction this similar to a pooled one is dropped
# Tasks a text-only model cannot do (Self-Instruct filtered on similar words).
UNSUITABLE = re.compile(
    r"\b(image|images|picture|photo|graph|diagram|flowchart|chart|video|audio|music|sound|file|attached|"
    r"draw|plot|map|link)\b",
    re.IGNORECASE,
)
_TASK = re.compile(r"^#+\s*Task\s*\d+\s*$", re.MULTILINE | re.IGNORECASE)
_FIELD = re.compile(r"^(Instruction|Input|Output)\s*:\s*", re.MULTILINE | re.IGNORECASE)
_WORD = re.compile(r"\w+")


@dataclass
class GenerateReport:
    """What a generate run kept and dropped (by reason), where it wrote, and what the requests cost."""

    requests: int = 0
    parsed: int = 0
    kept: int = 0
    dropped: Counter = field(default_factory=Counter)

    def summary(self) -> str:
        lines = [
            f"generate: {self.kept} new task(s) kept of {self.parsed} parsed from {self.requests} request(s)"
        ]
        lines += [f"  dropped ({n}): {reason}" for reason, n in self.dropped.most_common()]
        return "\n".join(lines)


def parse_tasks(text: str) -> list[dict[str, str]]:
    """Tasks in the ``### Task n / Instruction: / Input: / Output:`` format; malformed blocks are skipped."""
    tasks = []
    for block in _TASK.split(text):
        parts = _FIELD.split(block.strip())
        # parts: [before, name1, value1, name2, value2, ...]
        fields = {name.lower(): value.strip() for name, value in zip(parts[1::2], parts[2::2], strict=True)}
        if "instruction" in fields and "output" in fields:
            value = fields.get("input", "")
            tasks.append(
                {
                    "instruction": fields["instruction"],
                    "input": "" if value.strip("<>").lower() in ("noinput", "no input", "") else value,
                    "output": fields["output"],
                }
            )
    return tasks


def rouge_l(a: Sequence[str], b: Sequence[str]) -> float:
    """ROUGE-L F1 of two token lists (longest common subsequence)."""
    if not a or not b:
        return 0.0
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b):
            current.append(previous[j] + 1 if x == y else max(previous[j + 1], current[j]))
        previous = current
    lcs = previous[-1]
    return 0.0 if lcs == 0 else 2 * lcs / (len(a) + len(b))


def _tokens(text: str) -> list[str]:
    return _WORD.findall(text.lower())


class Pool:
    """Instructions kept so far, for the ROUGE-L check (with a cheap bound that skips most pairs)."""

    def __init__(self, instructions: Sequence[str] = ()):
        self.items: list[tuple[list[str], Counter]] = []
        for text in instructions:
            self.add(text)

    def add(self, text: str) -> None:
        tokens = _tokens(text)
        self.items.append((tokens, Counter(tokens)))

    def too_close(self, text: str, limit: float = ROUGE_L_MAX) -> bool:
        tokens = _tokens(text)
        counts = Counter(tokens)
        for other, other_counts in self.items:
            # the LCS is at most the shared multiset, so F1 is bounded without the quadratic part
            shared = sum((counts & other_counts).values())
            if 2 * shared / (len(tokens) + len(other) or 1) >= limit and rouge_l(tokens, other) >= limit:
                return True
        return False


def why_unsuitable(task: dict[str, str]) -> str | None:
    """The reason a generated task is dropped before the similarity check, or None."""
    words = len(task["instruction"].split())
    if words < 3:
        return "instruction shorter than 3 words"
    if words > 150:
        return "instruction longer than 150 words"
    if not task["output"].strip():
        return "empty output"
    if UNSUITABLE.search(task["instruction"]):
        return "needs something a text model lacks (image, file, audio...)"
    if not task["instruction"][0].isalnum():
        return "instruction starts with punctuation"
    return None


def generate_request(
    seeds: Sequence[dict[str, str]],
    i: int,
    *,
    prompts_dir: Path | None = None,
    sampling: Sampling = STEP_DEFAULTS,
) -> ChatRequest:
    """Request ``i``: its own draw of seed examples, sampled with seed ``i`` (at TEMPERATURE unless overridden)."""
    examples = random.Random(i).sample(list(seeds), min(EXAMPLES_PER_PROMPT, len(seeds)))
    start = len(examples) + 1
    prompt = render(
        "generate",
        prompts_dir,
        n=TASKS_PER_REQUEST,
        examples=examples,
        start=start,
        end=start + TASKS_PER_REQUEST - 1,
    )
    messages = [{"role": "user", "content": prompt}]
    fields = sampling.fields(temperature=TEMPERATURE, max_tokens=MAX_TOKENS)
    return ChatRequest.chat(messages, seed=i, sample=i, **fields)


async def generate_tasks(
    seeds: Sequence[dict[str, str]],
    client: Any,
    num: int,
    *,
    prompts_dir: Path | None = None,
    batch: int = 16,
    progress: bool = True,
    sampling: Sampling = STEP_DEFAULTS,
    report: GenerateReport | None = None,
) -> tuple[list[dict[str, str]], GenerateReport]:
    """At least ``num`` new tasks (or as many as ``num`` requests' worth gave), plus the report.

    Requests go out ``batch`` at a time; their tasks are judged in request order, so the result does
    not depend on which request finished first. ``report``, when given, is filled in as tasks are
    kept, so a caller whose run is cancelled still knows how far it got.
    """
    if not seeds:
        raise ValueError("generate needs at least one seed task")
    pool = Pool(t["instruction"] for t in seeds)
    kept: list[dict[str, str]] = []
    report = report if report is not None else GenerateReport()
    bar = tqdm(total=num, desc="generate", unit="task", disable=not progress)
    i = 0
    max_requests = max(1, num)  # enough for one kept task per request; stops runaway loops on a bad model
    try:
        while len(kept) < num and i < max_requests:
            ids = range(i, min(i + batch, max_requests))
            results = await asyncio.gather(
                *(
                    client.complete(generate_request(seeds, j, prompts_dir=prompts_dir, sampling=sampling))
                    for j in ids
                )
            )
            i = ids.stop
            for result in results:
                report.requests += 1
                for task in parse_tasks(result.text):
                    report.parsed += 1
                    reason = why_unsuitable(task)
                    if reason is None and pool.too_close(task["instruction"]):
                        reason = f"ROUGE-L >= {ROUGE_L_MAX} with an instruction in the pool"
                    if reason:
                        report.dropped[reason] += 1
                        continue
                    if len(kept) < num:
                        pool.add(task["instruction"])
                        kept.append(task)
                        report.kept = len(kept)
                        bar.update(1)
                    else:
                        report.dropped["beyond the number asked for"] += 1
            bar.set_postfix(client.usage.postfix(), refresh=False)
    finally:
        bar.close()
    return kept, report
