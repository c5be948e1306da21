"""Models side by side on held-out prompts: the reply, its reward-model score, its language, its answer.

What a person wants to see after training a base model into an SFT and an RLHF policy: the same
prompts, none of which any stage trained on, answered by each model with greedy decoding; whether the
answer is the reference answer exactly (the sample tasks have checkable answers), whether it is in
the prompt's language (``okapi_hf.langid.identify``) and what the reward model thinks of it.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from okapi_hf.errors import DataError


@dataclass
class Reply:
    """One model's answer to one held-out prompt, with what is measured on it."""

    model: str
    id: str
    instruction: str
    input: str
    reference: str
    reply: str
    correct: bool  # the reply is the reference answer, exactly (whitespace aside)
    language: str | None  # what the identifier says, None when it cannot tell (e.g. only digits)
    reward: float | None  # the reward model's score, None without a reward model

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def held_out_prompts(dataset_path: str | Path, lang: str, n: int, *, seed: int = 0) -> list[dict[str, Any]]:
    """Up to ``n`` validation rows of the sft config whose (instruction, input) no training split holds.

    A validation row can repeat a training row's question (the sample data has only eight capital
    cities); such rows are not held out and are skipped. The pick is seeded and mixes task types.
    """
    from okapi_hf.data.load import load_dataset

    seen = set()
    for subset in ("sft", "ranking", "rl"):
        train = load_dataset(lang, subset, path=dataset_path, split="train")
        seen |= set(zip(train["instruction"], train["input"], strict=True))
    rows = [
        r
        for r in load_dataset(lang, "sft", path=dataset_path, split="validation").to_list()
        if (r["instruction"], r["input"]) not in seen
    ]
    if not rows:
        raise DataError(f"{dataset_path}: no validation row of {lang} that no training split holds")
    random.Random(seed).shuffle(rows)
    by_task: dict[str, list[dict]] = {}
    for row in rows:  # round-robin over instructions, so the pick is not five sums
        by_task.setdefault(row["instruction"], []).append(row)
    picked: list[dict] = []
    while len(picked) < min(n, len(rows)):
        for group in by_task.values():
            if group and len(picked) < n:
                picked.append(group.pop())
    return picked


def compare_models(
    models: Mapping[str, str | Path],
    prompts: Sequence[Mapping[str, Any]],
    lang: str,
    *,
    reward_model: str | Path | None = None,
    max_new_tokens: int = 48,
    batch_size: int = 8,
) -> list[Reply]:
    """Greedy replies of each model to ``prompts`` (Okapi rows), measured; one model in memory at a time."""
    from okapi_hf.chat import pipeline
    from okapi_hf.langid import identify

    rows = [(p["instruction"], p.get("input") or "") for p in prompts]
    answers: dict[str, list[str]] = {}
    for name, path in models.items():
        pipe = pipeline(path, max_new_tokens=max_new_tokens, do_sample=False)
        answers[name] = pipe.generate_batch(rows, batch_size=batch_size)
        del pipe
    rewards = _rewards(reward_model, rows, answers) if reward_model is not None else {}
    replies = []
    for name, texts in answers.items():
        for i, (prompt, text) in enumerate(zip(prompts, texts, strict=True)):
            replies.append(
                Reply(
                    model=name,
                    id=str(prompt.get("id", i)),
                    instruction=prompt["instruction"],
                    input=prompt.get("input") or "",
                    reference=prompt.get("output", ""),
                    reply=text,
                    correct=" ".join(text.split()) == " ".join(str(prompt.get("output", "")).split()),
                    language=identify(text),
                    reward=rewards[name][i] if rewards else None,
                )
            )
    return replies


def _rewards(
    path: str | Path, rows: list[tuple[str, str]], answers: dict[str, list[str]]
) -> dict[str, list[float]]:
    """The reward model's scores, on the prompt as it was trained (Okapi's template)."""
    from okapi_hf.prompts import format_prompt
    from okapi_hf.train.rewards import RewardModelScorer

    scorer = RewardModelScorer(path, device="cpu")
    prompts = [format_prompt(instruction, text_input) for instruction, text_input in rows]
    return {name: scorer(prompts, texts) for name, texts in answers.items()}


@dataclass
class ModelSummary:
    """Per model: how many replies were right, in the language, and their mean reward."""

    model: str
    n: int
    correct: int
    in_language: int
    mean_reward: float | None


def summarize(replies: Sequence[Reply], lang: str) -> list[ModelSummary]:
    out = []
    for name in dict.fromkeys(r.model for r in replies):
        mine = [r for r in replies if r.model == name]
        rewards = [r.reward for r in mine if r.reward is not None]
        out.append(
            ModelSummary(
                model=name,
                n=len(mine),
                correct=sum(r.correct for r in mine),
                in_language=sum(r.language == lang for r in mine),
                mean_reward=sum(rewards) / len(rewards) if rewards else None,
            )
        )
    return out


def markdown(replies: Sequence[Reply], lang: str) -> str:
    """A table per prompt (one row per model) and a summary table, for the report and the terminal."""
    from okapi_hf.languages import get_language

    name = get_language(lang).name
    lines = ["| model | exact answer | in " + name + " | mean reward |", "|---|---:|---:|---:|"]
    for s in summarize(replies, lang):
        reward = "-" if s.mean_reward is None else f"{s.mean_reward:+.2f}"
        lines.append(f"| {s.model} | {s.correct}/{s.n} | {s.in_language}/{s.n} | {reward} |")
    for prompt_id in dict.fromkeys(r.id for r in replies):
        mine = [r for r in replies if r.id == prompt_id]
        question = mine[0].instruction + (f" / {mine[0].input}" if mine[0].input else "")
        lines += ["", f"**{_cell(question)}** (reference: {_cell(mine[0].reference)})", ""]
        lines += ["| model | reply | right | language | reward |", "|---|---|:-:|:-:|---:|"]
        for r in mine:
            reward = "-" if r.reward is None else f"{r.reward:+.2f}"
            lines.append(
                f"| {r.model} | {_cell(r.reply) or '(empty)'} | {'yes' if r.correct else 'no'} | "
                f"{r.language or '?'} | {reward} |"
            )
    return "\n".join(lines)


def _cell(text: str, limit: int = 160) -> str:
    text = " ".join(text.split()).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "…"
