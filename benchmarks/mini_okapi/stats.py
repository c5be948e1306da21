"""Bootstrap 95% intervals over prompts, for one arm and for an arm's difference from SFT.

With a few dozen prompts per language, one answer moves accuracy by several points; intervals say how
much of a difference between arms is noise. Percentile bootstrap, seeded, so a rerun prints the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

RESAMPLES = 2000


@dataclass(frozen=True)
class Interval:
    """A mean and its bootstrap 95% interval; ``n`` is the number of prompts behind it."""

    mean: float
    low: float
    high: float
    n: int

    def as_dict(self) -> dict[str, float]:
        return {"mean": self.mean, "low": self.low, "high": self.high, "n": self.n}

    def show(self, scale: float = 1.0, digits: int = 1, sign: bool = False) -> str:
        if self.n == 0:
            return "-"
        fmt = f"{{:{'+' if sign else ''}.{digits}f}}"
        mean, low, high = (fmt.format(v * scale) for v in (self.mean, self.low, self.high))
        return f"{mean} [{low}, {high}]"


def bootstrap(values: Sequence[float], seed: int = 0) -> Interval:
    """The mean of ``values`` with a percentile bootstrap 95% interval."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return Interval(float("nan"), float("nan"), float("nan"), 0)
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(RESAMPLES, x.size))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return Interval(float(x.mean()), float(low), float(high), int(x.size))


def paired_difference(a: Sequence[float], b: Sequence[float], seed: int = 0) -> Interval:
    """``mean(a - b)`` over the same prompts, resampling prompts jointly (both arms answered each one)."""
    if len(a) != len(b):
        raise ValueError(f"paired difference needs the same prompts: {len(a)} against {len(b)}")
    return bootstrap(np.asarray(a, dtype=float) - np.asarray(b, dtype=float), seed)
