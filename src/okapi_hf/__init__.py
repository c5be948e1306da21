"""okapi-hf: multilingual instruction tuning with RLHF on the Hugging Face stack.

The public API, re-exported lazily so that ``okapi-hf languages`` does not import datasets.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Language": "okapi_hf.languages",
    "get_language": "okapi_hf.languages",
    "languages": "okapi_hf.languages",
    "okapi_languages": "okapi_hf.languages",
    "resolve_langs": "okapi_hf.languages",
    "format_prompt": "okapi_hf.prompts",
    "format_example": "okapi_hf.prompts",
    "extract_response": "okapi_hf.prompts",
    "render_chat": "okapi_hf.prompts",
    "SUBSETS": "okapi_hf.data.schema",
    "build_dataset": "okapi_hf.data.build",
    "load_dataset": "okapi_hf.data.load",
    "download_release": "okapi_hf.data.download",
    "pairs_to_rankings": "okapi_hf.data.rankings",
    "ranking_to_pairs": "okapi_hf.data.rankings",
    "write_sample_raw": "okapi_hf.data.sample",
    "OkapiSFTConfig": "okapi_hf.train.sft",
    "OkapiSFTTrainer": "okapi_hf.train.sft",
    "RankedRewardConfig": "okapi_hf.train.reward",
    "RankedRewardTrainer": "okapi_hf.train.reward",
    "PPOConfig": "okapi_hf.train.ppo_config",
    "PPOTrainer": "okapi_hf.train.ppo",
    "OkapiRLOOConfig": "okapi_hf.train.rl",
    "OkapiGRPOConfig": "okapi_hf.train.rl",
    "ListwiseDPOConfig": "okapi_hf.train.dpo",
    "ListwiseDPOTrainer": "okapi_hf.train.dpo",
    "RewardModelScorer": "okapi_hf.train.rewards",
    "language_fidelity_reward": "okapi_hf.train.rewards",
    "language_score": "okapi_hf.langid",
    "identify": "okapi_hf.langid",
    "language_fidelity": "okapi_hf.eval.langid",
    "pipeline": "okapi_hf.chat",
    "train_all": "okapi_hf.train.pipeline",
    "OkapiError": "okapi_hf.errors",
    "DataError": "okapi_hf.errors",
    "DownloadError": "okapi_hf.errors",
    "UnknownLanguageError": "okapi_hf.errors",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'okapi_hf' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
