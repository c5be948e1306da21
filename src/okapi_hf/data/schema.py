"""The three Okapi subsets: their typed features and where the original release kept them.

Rankings are stored K-wise (``responses`` ordered best first). The release flattened them into
pairwise rows; :mod:`okapi_hf.data.rankings` converts between the two.
"""

from __future__ import annotations

from dataclasses import dataclass

from datasets import Features, List, Value

from okapi_hf.errors import DataError


@dataclass(frozen=True)
class Subset:
    """One subset of the Okapi data and how it maps to the original release."""

    name: str
    release_folder: str
    raw_fields: tuple[str, ...]  # fields every raw row must carry (``input`` may be empty)
    features: Features
    validation_fraction: float  # share of rows held out for the validation split
    description: str

    def config_name(self, lang: str) -> str:
        """The dataset config for one language: ``vi`` for SFT, ``vi-ranking``, ``vi-rl``."""
        return lang if self.name == "sft" else f"{lang}-{self.name}"


_TEXT = {
    "id": Value("string"),
    "lang": Value("string"),
    "instruction": Value("string"),
    "input": Value("string"),
}

SUBSETS: dict[str, Subset] = {
    "sft": Subset(
        name="sft",
        release_folder="multilingual-alpaca-52k",
        raw_fields=("instruction", "input", "output"),
        features=Features({**_TEXT, "output": Value("string")}),
        validation_fraction=0.10,  # Okapi held out 10% for SFT validation
        description="translated Alpaca instructions with responses, for supervised fine-tuning",
    ),
    "ranking": Subset(
        name="ranking",
        release_folder="multilingual-ranking-data-42k",
        raw_fields=("instruction", "input", "prefered_output", "rejected_output"),
        features=Features({**_TEXT, "responses": List(Value("string"))}),
        validation_fraction=0.05,  # not stated by Okapi; a small held-out set for RM accuracy
        description="instructions with K responses ranked best first, for reward modelling",
    ),
    "rl": Subset(
        name="rl",
        release_folder="multilingual-rl-tuning-64k",
        raw_fields=("instruction", "input", "output"),
        features=Features({**_TEXT, "output": Value("string")}),
        validation_fraction=0.05,  # Okapi kept 5% of RL prompts for validation
        description="RL prompts with a reference output, for reinforcement learning",
    ),
}


def get_subset(name: str) -> Subset:
    """Look a subset up by name (``sft``, ``ranking``, ``rl``) or by its release folder name."""
    for subset in SUBSETS.values():
        if name in (subset.name, subset.release_folder):
            return subset
    raise DataError(f"unknown subset {name!r}; valid subsets are: {', '.join(SUBSETS)}")


def resolve_subsets(spec: str | list[str] | None) -> list[Subset]:
    """``"sft,rl"`` or ``["sft"]`` to subsets, each once; ``None`` or ``"all"`` means all three."""
    if spec is None or spec == "all":
        return list(SUBSETS.values())
    names = spec.split(",") if isinstance(spec, str) else spec
    found = [get_subset(n.strip()) for n in names if n.strip()]
    if not found:  # `--subsets ''` would otherwise build or fetch nothing and still say it succeeded
        raise DataError(f"no subset given in {spec!r}; valid subsets are: {', '.join(SUBSETS)} (or all)")
    return list({s.name: s for s in found}.values())  # `sft,sft` is sft once, not two writers of one folder
