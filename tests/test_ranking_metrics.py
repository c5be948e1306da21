"""Ranking metrics of a K-wise reward model: hand-computed counts, and the ``evaluate`` module offline."""

from __future__ import annotations

import dataclasses
import math
import os
import random
from pathlib import Path

import evaluate
import pytest

from okapi_hf.metrics import RankingCounts, metric_path, ranking_metrics


def test_perfect_order():
    counts = RankingCounts.from_rewards([[3.0, 2.0, 1.0], [5, 1]])
    assert counts == RankingCounts(prompts=2, pairs=4, correct_pairs=4, top1=2, exact=2, tau_sum=2.0)
    assert counts.metrics() == {
        "pairwise_accuracy": 1.0,
        "top1_accuracy": 1.0,
        "exact_ranking_accuracy": 1.0,
        "kendall_tau": 1.0,
    }


def test_fully_reversed_order():
    assert ranking_metrics([[1.0, 2.0, 3.0, 4.0]]) == {
        "pairwise_accuracy": 0.0,
        "top1_accuracy": 0.0,
        "exact_ranking_accuracy": 0.0,
        "kendall_tau": -1.0,
    }


def test_ties_count_as_wrong():
    # All tied: no pair is ordered, neither concordant nor discordant.
    assert RankingCounts.from_rewards([[1.0, 1.0, 1.0]]) == RankingCounts(1, 3, 0, 0, 0, 0.0)
    # Best two tied: (0,1) tie, (0,2) and (1,2) right -> 2/3; no strict top-1, no exact order.
    m = ranking_metrics([[2.0, 2.0, 1.0]])
    assert m["pairwise_accuracy"] == pytest.approx(2 / 3)
    assert m["top1_accuracy"] == 0.0
    assert m["exact_ranking_accuracy"] == 0.0
    assert m["kendall_tau"] == pytest.approx(2 / 3)
    # A tie below the top still lets the best response win top-1.
    assert ranking_metrics([[3.0, 1.0, 1.0]])["top1_accuracy"] == 1.0


def test_variable_k_pairwise_is_micro_and_tau_is_macro():
    # K=2 right: 1/1 pairs, tau 1. K=4 with the best ranked last, the rest in order:
    # (0,1) (0,2) (0,3) wrong, (1,2) (1,3) (2,3) right -> 3/6 pairs, tau (3 - 3) / 6 = 0.
    rewards = [[1.0, 0.0], [0.0, 3.0, 2.0, 1.0]]
    counts = RankingCounts.from_rewards(rewards)
    assert counts == RankingCounts(prompts=2, pairs=7, correct_pairs=4, top1=1, exact=1, tau_sum=1.0)
    m = counts.metrics()
    assert m["pairwise_accuracy"] == pytest.approx(4 / 7)  # micro over pairs, not (1 + 1/2) / 2
    assert m["kendall_tau"] == pytest.approx(0.5)  # macro over prompts: (1 + 0) / 2
    assert m["top1_accuracy"] == 0.5
    assert m["exact_ranking_accuracy"] == 0.5


def test_k2_tau_is_twice_accuracy_minus_one():
    rewards = [[1.0, 0.0], [0.0, 1.0], [2.0, 1.0], [5.0, 3.0]]
    m = ranking_metrics(rewards)
    assert m["pairwise_accuracy"] == 0.75
    assert m["kendall_tau"] == pytest.approx(2 * 0.75 - 1)
    rng = random.Random(0)
    rewards = [[rng.random(), rng.random()] for _ in range(50)]
    m = ranking_metrics(rewards)
    assert m["kendall_tau"] == pytest.approx(2 * m["pairwise_accuracy"] - 1)


def test_adding_counts_equals_counting_the_concatenation():
    a = [[3.0, 1.0, 2.0], [1.0, 1.0]]
    b = [[0.0, 1.0, 2.0, 3.0, 4.0], [2.0, 1.0], [1.0, 3.0, 2.0]]
    total = RankingCounts.from_rewards(a) + RankingCounts.from_rewards(b)
    assert total.to_list() == pytest.approx(RankingCounts.from_rewards(a + b).to_list())
    assert RankingCounts() + total == total


def test_to_list_from_list_round_trip():
    assert [f.name for f in dataclasses.fields(RankingCounts)] == list(RankingCounts.FIELDS)
    counts = RankingCounts.from_rewards([[3.0, 1.0, 2.0], [1.0, 1.0]])
    values = counts.to_list()
    assert values == [2.0, 4.0, 2.0, 1.0, 0.0, 1 / 3]
    back = RankingCounts.from_list(values)
    assert back == counts
    assert isinstance(back.pairs, int)
    # What an all-reduce with a sum does: add the packed vectors of two processes.
    other = RankingCounts.from_rewards([[2.0, 1.0]])
    reduced = [x + y for x, y in zip(values, other.to_list(), strict=True)]
    assert RankingCounts.from_list(reduced) == counts + other
    with pytest.raises(ValueError, match="expected 6 values"):
        RankingCounts.from_list([1.0, 2.0])


def test_empty_counts_have_no_metrics():
    assert RankingCounts().metrics() == {}
    assert ranking_metrics([]) == {}


def test_fewer_than_two_rewards_names_the_prompt():
    with pytest.raises(ValueError, match=r"prompt 1 has 1 reward"):
        RankingCounts.from_rewards([[1.0, 0.0], [1.0]])
    with pytest.raises(ValueError, match=r"prompt 0 has 0 reward"):
        ranking_metrics([[]])


def test_nan_reward_names_the_prompt():
    with pytest.raises(ValueError, match=r"prompt 2 has a NaN reward"):
        ranking_metrics([[1.0, 0.0], [2.0, 1.0], [1.0, math.nan]])


def test_metric_path():
    path = Path(metric_path())
    assert path.is_absolute()
    assert (path / "ranking_accuracy.py").is_file()
    assert path.name == "ranking_accuracy"
    with pytest.raises(ValueError, match="available: ranking_accuracy"):
        metric_path("no_such_metric")


@pytest.fixture(scope="module")
def metric():
    # conftest.py points HF_HOME at a temporary folder before evaluate is imported: check that
    # loading the module writes nothing to the user's cache.
    assert Path(evaluate.config.HF_MODULES_CACHE).is_relative_to(os.environ["HF_HOME"])
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    return evaluate.load(metric_path())


def test_evaluate_module_matches_ranking_metrics_with_shuffled_responses(metric):
    rng = random.Random(0)
    # Gold order, best first; halves are exact in float32, and the ties and inversions are on purpose.
    gold = [
        [3.0, 2.0, 1.0],
        [0.5, 1.5],
        [4.0, 4.0, 2.0, 1.0],
        [1.0, 3.0, 2.0, 0.0],
        [2.0, 1.0, 1.0, 0.5, 0.0],
    ]
    predictions, references = [], []
    for rewards in gold:
        order = rng.sample(range(len(rewards)), len(rewards))  # order[i] = gold rank of response i
        predictions.append([rewards[rank] for rank in order])
        references.append(order)
    assert predictions != gold  # the shuffle has to matter for the test to mean anything
    expected = ranking_metrics(gold)
    assert metric.compute(predictions=predictions, references=references) == pytest.approx(expected)
    # Same again through batches, as in an evaluation loop.
    metric.add_batch(predictions=predictions[:2], references=references[:2])
    metric.add_batch(predictions=predictions[2:], references=references[2:])
    assert metric.compute() == pytest.approx(expected)


@pytest.mark.parametrize("bad", [[0, 0], [1, 2], [0, 1, 2]])
def test_evaluate_module_rejects_references_that_are_not_a_permutation(metric, bad):
    with pytest.raises(ValueError, match="example 1"):
        metric.compute(predictions=[[1.0, 0.0], [2.0, 1.0]], references=[[0, 1], bad])
