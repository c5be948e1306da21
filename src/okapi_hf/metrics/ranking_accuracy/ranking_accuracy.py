"""``evaluate`` metric module: ranking metrics of a K-wise reward model (okapi-hf)."""

from __future__ import annotations

import datasets
import evaluate

from okapi_hf.metrics.ranking import ranking_metrics

_DESCRIPTION = """\
Scores a reward model on prompts that each come with K >= 2 responses ranked by humans (K may vary
from prompt to prompt). For each prompt, give the model's K rewards and the gold rank of each
response; the module reports pairwise accuracy (micro-averaged over the C(K, 2) pairs, comparable
with pairwise preference accuracy), top-1 accuracy, exact-ranking accuracy and Kendall's tau-a
(macro-averaged over prompts). Tied rewards never count as a correct ordering.
"""

_CITATION = """\
@inproceedings{ouyang2022training,
  title     = {Training language models to follow instructions with human feedback},
  author    = {Ouyang, Long and Wu, Jeffrey and Jiang, Xu and Almeida, Diogo and Wainwright, Carroll and
               Mishkin, Pamela and Zhang, Chong and Agarwal, Sandhini and Slama, Katarina and Ray, Alex and
               Schulman, John and Hilton, Jacob and Kelton, Fraser and Miller, Luke and Simens, Maddie and
               Askell, Amanda and Welinder, Peter and Christiano, Paul F. and Leike, Jan and Lowe, Ryan},
  booktitle = {Advances in Neural Information Processing Systems},
  volume    = {35},
  year      = {2022}
}
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `list` of `float`): per prompt, the model's reward for each of its K
        responses, in any order.
    references (`list` of `list` of `int`): per prompt, the gold rank of each of those responses
        (0 = best), a permutation of 0..K-1 aligned with `predictions`.
Returns:
    pairwise_accuracy (`float`): share of all ranked pairs the rewards order correctly.
    top1_accuracy (`float`): share of prompts whose best response gets the highest reward, strictly.
    exact_ranking_accuracy (`float`): share of prompts whose whole ranking is reproduced, no ties.
    kendall_tau (`float`): mean over prompts of Kendall's tau-a, in [-1, 1].
Examples:
    >>> metric = evaluate.load(okapi_hf.metrics.metric_path())
    >>> metric.compute(predictions=[[0.1, 2.0, 1.0]], references=[[2, 0, 1]])
    {'pairwise_accuracy': 1.0, 'top1_accuracy': 1.0, 'exact_ranking_accuracy': 1.0, 'kendall_tau': 1.0}
"""


def _gold_order(index: int, rewards: list[float], ranks: list[int]) -> list[float]:
    """The rewards of one example rearranged best first, after checking its ranks."""
    if len(ranks) != len(rewards) or sorted(ranks) != list(range(len(rewards))):
        raise ValueError(
            f"example {index}: references must be a permutation of 0..{len(rewards) - 1} "
            f"with one rank per prediction, got {list(ranks)} for {len(rewards)} predictions"
        )
    ordered = [0.0] * len(rewards)
    for reward, rank in zip(rewards, ranks, strict=True):
        ordered[rank] = reward
    return ordered


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class RankingAccuracy(evaluate.Metric):
    """Pairwise, top-1 and exact-ranking accuracy and Kendall's tau of K-wise reward rankings."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("float32")),
                    "references": datasets.Sequence(datasets.Value("int32")),
                }
            ),
            reference_urls=["https://arxiv.org/abs/2203.02155"],
        )

    def _compute(self, predictions: list[list[float]], references: list[list[int]]) -> dict[str, float]:
        return ranking_metrics(
            _gold_order(i, list(p), list(r))
            for i, (p, r) in enumerate(zip(predictions, references, strict=True))
        )
