"""Metrics for okapi-hf's reward models.

:mod:`okapi_hf.metrics.ranking` computes them in pure Python (for trainers and scripts); each folder
next to this file is an ``evaluate`` metric module wrapping them: ``evaluate.load(metric_path())``.
"""

from __future__ import annotations

from pathlib import Path

from okapi_hf.metrics.ranking import RankingCounts, ranking_metrics

__all__ = ["RankingCounts", "metric_path", "ranking_metrics"]


def metric_path(name: str = "ranking_accuracy") -> str:
    """The absolute path of the ``evaluate`` metric module folder ``name``, for ``evaluate.load``."""
    here = Path(__file__).resolve().parent
    available = sorted(p.name for p in here.iterdir() if (p / f"{p.name}.py").is_file())
    if name not in available:
        raise ValueError(f"no metric folder {name!r} in {here}; available: {', '.join(available) or 'none'}")
    return str(here / name)
