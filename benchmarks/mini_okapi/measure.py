"""Every arm answers the same held-out prompts; each reply is checked, identified and scored.

Greedy decoding (``okapi_hf.chat.pipeline``, Okapi's template), so a reply depends on the model only.
Per reply: exact answer (the complete reference sentence, whitespace aside, as ``okapi_hf.compare``
counts it), correct answer (the bare answer appears as a whole token and the fluent wrong response does
not: a terse or reworded right answer counts), language (``okapi_hf.langid.identify``), length in tokens
and the shared reward model's score. The reward model also scores the held-out rankings, for its own
pairwise accuracy and Kendall tau (``okapi_hf.metrics``).
"""

from __future__ import annotations

import gc
import re
import unicodedata
from collections.abc import Callable
from pathlib import Path

from tqdm.auto import tqdm

from .data import OFF_LANGUAGE, Ranking


def _norm(text: str) -> str:
    return " ".join(text.split())


def is_exact(reply: str, ranking: Ranking) -> bool:
    return _norm(reply) == _norm(ranking.reference)


def is_correct(reply: str, ranking: Ranking) -> bool:
    """The checkable answer is in the reply as a whole token, and the fluent wrong response is not."""
    text, answer, wrong = _norm(reply), _norm(ranking.answer), _norm(ranking.responses[2])
    if not text or not answer or (wrong and wrong in text):
        return False
    return any(_alone(text, m.start(), m.end()) for m in re.finditer(re.escape(answer), text))


def _alone(text: str, start: int, end: int) -> bool:
    """No letter, mark or digit touches text[start:end]: "জোড়" (even) inside "বিজোড়" (odd) does not count.

    ``\\w`` is not enough: Indic vowel signs are marks, not word characters, to ``re``.
    """
    touching = (text[start - 1] if start > 0 else "", text[end] if end < len(text) else "")
    return not any(c and unicodedata.category(c)[0] in "LMN" for c in touching)


def generate(
    arms: dict[str, Path], rankings: list[Ranking], *, max_new_tokens: int, batch: int, device: str
) -> dict[str, list[str]]:
    """Greedy replies of every arm to every held-out prompt, one model in memory at a time."""
    from okapi_hf.chat import pipeline

    rows = [(r.instruction, r.input) for r in rankings]
    replies: dict[str, list[str]] = {}
    bar = tqdm(total=len(arms) * len(rows), desc="held-out answers", unit="reply")
    for arm, path in arms.items():
        bar.set_postfix_str(arm)
        pipe = pipeline(path, gpu=device.startswith("cuda"), max_new_tokens=max_new_tokens, do_sample=False)
        replies[arm] = []
        for start in range(0, len(rows), batch):
            chunk = rows[start : start + batch]
            replies[arm] += pipe.generate_batch(chunk, batch_size=batch)
            bar.update(len(chunk))
        del pipe
        gc.collect()
    bar.close()
    return replies


def reward_scores(
    reward_model: Path, rankings: list[Ranking], replies: dict[str, list[str]], device: str
) -> tuple[dict[str, list[float]], list[list[float]]]:
    """The reward model's score of every reply, and of the four responses of every held-out ranking."""
    from okapi_hf.prompts import format_prompt
    from okapi_hf.train.rewards import RewardModelScorer

    scorer = RewardModelScorer(reward_model, device=device)
    prompts = [format_prompt(r.instruction, r.input) for r in rankings]
    by_arm = {
        arm: scorer(prompts, texts) for arm, texts in tqdm(replies.items(), desc="reward model", unit="arm")
    }
    flat = scorer([p for p in prompts for _ in range(4)], [t for r in rankings for t in r.responses])
    return by_arm, [flat[i : i + 4] for i in range(0, len(flat), 4)]


def reply_rows(
    rankings: list[Ranking],
    replies: dict[str, list[str]],
    rewards: dict[str, list[float]],
    count_tokens: Callable[[str], int],
) -> list[dict]:
    """One row per arm x language x prompt: the reply and every measure on it."""
    from okapi_hf.langid import identify

    rows = []
    for arm, texts in replies.items():
        for ranking, reply, reward in zip(rankings, texts, rewards[arm], strict=True):
            language = identify(reply)
            rows.append(
                {
                    "arm": arm,
                    "lang": ranking.lang,
                    "prompt_id": ranking.id,
                    "task": ranking.task,
                    "instruction": ranking.instruction,
                    "input": ranking.input,
                    "reference": ranking.reference,
                    "answer": ranking.answer,
                    "reply": reply,
                    "exact": is_exact(reply, ranking),
                    "correct": is_correct(reply, ranking),
                    "language": language,
                    "in_language": language == ranking.lang,
                    "reward": reward,
                    "length_tokens": count_tokens(reply),
                }
            )
    return rows


def ranking_rows(rankings: list[Ranking], scores: list[list[float]]) -> list[dict]:
    """Per held-out ranking: the reward model's four scores and its pairwise accuracy and Kendall tau."""
    from okapi_hf.metrics import ranking_metrics

    rows = []
    for ranking, four in zip(rankings, scores, strict=True):
        metrics = ranking_metrics([four])
        rows.append(
            {
                "lang": ranking.lang,
                "prompt_id": ranking.id,
                "task": ranking.task,
                "scores": four,
                "off_language_last": ranking.responses[3] == OFF_LANGUAGE.format(terse=ranking.answer),
                "pairwise_accuracy": metrics["pairwise_accuracy"],
                "kendall_tau": metrics["kendall_tau"],
            }
        )
    return rows


def token_counter(model: str | Path) -> Callable[[str], int]:
    """Reply length in the base model's tokens (every arm shares its tokenizer)."""
    from okapi_hf.models import load_tokenizer

    tokenizer = load_tokenizer(model)
    return lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])
