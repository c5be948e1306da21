"""Rankings stored K-wise (best first); pairs are derived from them, never stored.

The original release flattened each 4-way ranking into pairwise rows. Regrouping them by
(instruction, input) recovers the ranking when the pairs pin down exactly one total order: the
unique topological order of the "preferred over" graph. Pairs that form a cycle contradict each
other; pairs that allow several orders are ambiguous. Both are reported, never guessed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from itertools import combinations

CYCLE = "contradictory pairs (the preferences form a cycle)"
AMBIGUOUS = "ambiguous ranking (the pairs allow more than one order)"
SELF_PAIR = "preferred and rejected outputs are identical"


def ranking_to_pairs(responses: Sequence[str]) -> list[tuple[str, str]]:
    """All C(K, 2) (better, worse) pairs of a ranking ordered best first."""
    return list(combinations(responses, 2))


def unique_order(edges: set[tuple[str, str]]) -> list[str] | str:
    """The only total order consistent with ``(better, worse)`` edges, or why there is none."""
    nodes = {n for edge in edges for n in edge}
    below: dict[str, list[str]] = defaultdict(list)
    n_above = dict.fromkeys(nodes, 0)
    for better, worse in edges:
        below[better].append(worse)
        n_above[worse] += 1
    order: list[str] = []
    ready = [n for n in nodes if n_above[n] == 0]
    while ready:
        if len(ready) > 1:
            return AMBIGUOUS
        node = ready.pop()
        order.append(node)
        for worse in below[node]:
            n_above[worse] -= 1
            if n_above[worse] == 0:
                ready.append(worse)
    return order if len(order) == len(nodes) else CYCLE


def pairs_to_rankings(
    pairs: Sequence[tuple[int, dict[str, str]]],
) -> tuple[list[tuple[int, str, str, list[str]]], dict[str, list[int]]]:
    """Regroup pairwise rows into K-wise rankings.

    ``pairs`` are (row number, row) with ``instruction``, ``input``, ``prefered_output`` and
    ``rejected_output``. Returns (first row number, instruction, input, responses best first) per
    prompt, in file order, and the row numbers that could not be used, by reason.
    """
    groups: dict[tuple[str, str], list[tuple[int, str, str]]] = {}
    problems: dict[str, list[int]] = defaultdict(list)
    for row_number, row in pairs:
        better, worse = row["prefered_output"], row["rejected_output"]
        if better == worse:
            problems[SELF_PAIR].append(row_number)
            continue
        groups.setdefault((row["instruction"], row["input"]), []).append((row_number, better, worse))

    rankings = []
    for (instruction, input_), members in groups.items():
        order = unique_order({(better, worse) for _, better, worse in members})
        if isinstance(order, str):
            problems[order].extend(n for n, _, _ in members)
        else:
            rankings.append((members[0][0], instruction, input_, order))
    return rankings, dict(problems)
