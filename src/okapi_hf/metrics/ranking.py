"""Ranking metrics for a K-wise reward model, as additive counts.

Each prompt comes with K >= 2 responses in gold order (best first) and the model's scalar reward for
each. The metrics are kept as sums (:class:`RankingCounts`) rather than averages so that batches and
processes can be combined exactly before dividing. Pure Python: no torch, no numpy.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar

__all__ = ["RankingCounts", "ranking_metrics"]


@dataclass
class RankingCounts:
    """Sums over prompts; add them up across batches, unpack them into rates with :meth:`metrics`.

    Per prompt with rewards ``r[0..K-1]`` in gold order: ``pairs = C(K, 2)``; ``correct_pairs`` counts
    ``i < j`` with ``r[i] > r[j]`` strictly (a tie ranks nothing, so it is wrong); ``top1`` is 1 when
    ``r[0]`` beats every other reward strictly; ``exact`` is 1 when ``r`` is strictly decreasing;
    ``tau_sum`` adds Kendall's tau-a, ``(concordant - discordant) / C(K, 2)`` with ties counting as
    neither.
    """

    prompts: int = 0
    pairs: int = 0
    correct_pairs: int = 0
    top1: int = 0
    exact: int = 0
    tau_sum: float = 0.0

    FIELDS: ClassVar[tuple[str, ...]] = ("prompts", "pairs", "correct_pairs", "top1", "exact", "tau_sum")

    @classmethod
    def from_rewards(cls, rewards: Iterable[Sequence[float]]) -> RankingCounts:
        """Count one batch: each item holds one prompt's rewards, in gold order (best first)."""
        counts = cls()
        for index, prompt_rewards in enumerate(rewards):
            r = [float(x) for x in prompt_rewards]
            if len(r) < 2:
                raise ValueError(f"prompt {index} has {len(r)} reward(s); a ranking needs at least 2")
            if any(math.isnan(x) for x in r):
                raise ValueError(f"prompt {index} has a NaN reward: {r}")
            k = len(r)
            pairs = k * (k - 1) // 2
            concordant = sum(r[i] > r[j] for i in range(k) for j in range(i + 1, k))
            discordant = sum(r[i] < r[j] for i in range(k) for j in range(i + 1, k))
            counts.prompts += 1
            counts.pairs += pairs
            counts.correct_pairs += concordant
            counts.top1 += all(r[0] > x for x in r[1:])
            counts.exact += concordant == pairs
            counts.tau_sum += (concordant - discordant) / pairs
        return counts

    def __add__(self, other: RankingCounts) -> RankingCounts:
        if not isinstance(other, RankingCounts):
            return NotImplemented
        return RankingCounts.from_list([a + b for a, b in zip(self.to_list(), other.to_list(), strict=True)])

    def to_list(self) -> list[float]:
        """The fields in :attr:`FIELDS` order, e.g. to put in a tensor and all-reduce with a sum.

        Use float64 there: float32 counts stop being exact above 2**24.
        """
        return [float(getattr(self, name)) for name in self.FIELDS]

    @classmethod
    def from_list(cls, values: Sequence[float]) -> RankingCounts:
        """The inverse of :meth:`to_list`; integer fields are rounded back to ``int``."""
        if len(values) != len(cls.FIELDS):
            raise ValueError(
                f"expected {len(cls.FIELDS)} values ({', '.join(cls.FIELDS)}), got {len(values)}"
            )
        kwargs = {
            name: float(v) if name == "tau_sum" else round(float(v))
            for name, v in zip(cls.FIELDS, values, strict=True)
        }
        return cls(**kwargs)

    def metrics(self) -> dict[str, float]:
        """The rates; empty when no prompt was counted.

        ``pairwise_accuracy`` is micro-averaged over pairs, so it equals the accuracy on the rankings
        expanded into their C(K, 2) preference pairs and compares directly with a pairwise reward
        model. ``kendall_tau`` is macro-averaged over prompts: it is a per-prompt rank correlation,
        and averaging over pairs would let the prompts with large K dominate it.
        """
        if self.prompts == 0:
            return {}
        return {
            "pairwise_accuracy": self.correct_pairs / self.pairs,
            "top1_accuracy": self.top1 / self.prompts,
            "exact_ranking_accuracy": self.exact / self.prompts,
            "kendall_tau": self.tau_sum / self.prompts,
        }


def ranking_metrics(rewards: Iterable[Sequence[float]]) -> dict[str, float]:
    """The metrics of one set of prompts; each item holds one prompt's rewards in gold order."""
    return RankingCounts.from_rewards(rewards).metrics()
