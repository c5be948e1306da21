import itertools
import random

from okapi_hf.data.rankings import (
    AMBIGUOUS,
    CYCLE,
    SELF_PAIR,
    pairs_to_rankings,
    ranking_to_pairs,
    unique_order,
)


def _pairs(instruction, responses, input_=""):
    return [
        {"instruction": instruction, "input": input_, "prefered_output": a, "rejected_output": b}
        for a, b in ranking_to_pairs(responses)
    ]


def test_ranking_to_pairs_is_all_ordered_pairs():
    assert ranking_to_pairs(["a", "b", "c"]) == [("a", "b"), ("a", "c"), ("b", "c")]
    assert len(ranking_to_pairs(list("abcd"))) == 6


def test_shuffled_pairs_regroup_into_the_original_rankings():
    rng = random.Random(0)
    truth = {f"q{i}": [f"q{i}-r{k}" for k in rng.sample(range(4), 4)] for i in range(20)}
    rows = [row for q, resp in truth.items() for row in _pairs(q, resp)]
    rng.shuffle(rows)
    rankings, problems = pairs_to_rankings(list(enumerate(rows, start=1)))
    assert problems == {}
    assert {ins: resp for _, ins, _, resp in rankings} == truth


def test_same_instruction_with_different_input_is_a_different_prompt():
    rows = _pairs("q", ["a", "b"], "x") + _pairs("q", ["b", "a"], "y")
    rankings, problems = pairs_to_rankings(list(enumerate(rows, start=1)))
    assert not problems
    assert sorted((inp, resp) for _, _, inp, resp in rankings) == [("x", ["a", "b"]), ("y", ["b", "a"])]


def test_a_chain_of_adjacent_pairs_is_enough():
    assert unique_order({("a", "b"), ("b", "c"), ("c", "d")}) == ["a", "b", "c", "d"]


def test_cycle_and_ambiguity_are_reported_with_row_numbers():
    rows = [
        *_pairs("cycle", ["a", "b", "c"])[:2],  # a>b, a>c
        {
            "instruction": "cycle",
            "input": "",
            "prefered_output": "c",
            "rejected_output": "a",
        },  # c>a contradicts
        {"instruction": "open", "input": "", "prefered_output": "a", "rejected_output": "b"},
        {
            "instruction": "open",
            "input": "",
            "prefered_output": "a",
            "rejected_output": "c",
        },  # b vs c unknown
        {"instruction": "same", "input": "", "prefered_output": "z", "rejected_output": "z"},
        *_pairs("fine", ["x", "y"]),
    ]
    rankings, problems = pairs_to_rankings(list(enumerate(rows, start=1)))
    assert [(ins, resp) for _, ins, _, resp in rankings] == [("fine", ["x", "y"])]
    assert problems == {CYCLE: [1, 2, 3], AMBIGUOUS: [4, 5], SELF_PAIR: [6]}


def test_two_way_contradiction_is_a_cycle():
    assert unique_order({("a", "b"), ("b", "a")}) == CYCLE


def test_every_permutation_of_four_round_trips():
    for perm in itertools.permutations("abcd"):
        assert unique_order(set(ranking_to_pairs(list(perm)))) == list(perm)
