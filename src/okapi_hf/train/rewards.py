"""Reward functions for trl's RLOO and GRPO trainers: our reward model, and language-fidelity rewards.

The language reward comes in two kinds (``LANGUAGE_REWARDS``): the dependency-free heuristic score
(``heuristic``, the default) and the language identifier's verdict (``identifier``, needs lingua).
All follow trl's reward-function signature ``f(prompts, completions, **dataset_columns) -> list[float]``
and carry a ``__name__``, which trl uses to log each reward as ``rewards/<name>/mean``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from accelerate import PartialState
from transformers import AutoModelForSequenceClassification, PreTrainedModel
from trl.trainer.utils import pad

from okapi_hf.errors import ConfigError, DataError
from okapi_hf.langid import identify, language_score
from okapi_hf.languages import get_language
from okapi_hf.models import is_adapter, load_model, load_tokenizer
from okapi_hf.prompts import encode

# -- the reward model -----------------------------------------------------------------------------------


class RewardModelScorer:
    """Scores prompt+completion with a reward model from ``okapi-hf train rm``, exactly as it was trained.

    The reward model saw every ranked response as tokenizer(Okapi prompt + response + eos), with the
    tokenizer's own special tokens (see ``ranking.RankingTokenizer``), and reads its score at the last token.
    trl's built-in path-string reward model scores ``prompt + completion`` without the eos and with
    ``add_special_tokens=False``, so the score would be read at a position the model was never trained to
    score; this class exists to remove that mismatch. Like training, it appends eos only when padding can
    be told apart from eos (a tokenizer without a pad token pads with eos and trained without it).

    Chat prompts (lists of messages) are rendered with the tokenizer's chat template, as training does.
    Scoring is batched, without gradients, in eval mode, right-padded; the result is plain floats.
    """

    def __init__(
        self,
        path_or_model: str | Path | PreTrainedModel,
        tokenizer: Any = None,
        batch_size: int = 8,
        device: str | torch.device | None = None,
        name: str = "reward_model",
        **model_kwargs: Any,
    ):
        if batch_size < 1:
            raise ConfigError(f"RewardModelScorer: batch_size must be at least 1, got {batch_size}")
        if isinstance(path_or_model, (str, Path)):
            self.source = str(path_or_model)
            if is_adapter(self.source):  # a LoRA reward model: its base has no score head of its own
                model_kwargs = {"num_labels": 1, **model_kwargs}
            model = load_model(self.source, AutoModelForSequenceClassification, **model_kwargs)
        else:
            model = path_or_model
            self.source = model.config._name_or_path
        if model.config.num_labels != 1:
            raise ConfigError(
                f"the reward model {self.source} has {model.config.num_labels} outputs; a reward model from "
                "`okapi-hf train rm` has exactly one (num_labels=1)"
            )
        self.tokenizer = tokenizer if tokenizer is not None else load_tokenizer(self.source)
        if self.tokenizer.pad_token_id is not None:
            self.pad_token_id = self.tokenizer.pad_token_id
            eos = self.tokenizer.eos_token
            self.eos = eos if eos is not None and eos != self.tokenizer.pad_token else ""
        elif self.tokenizer.eos_token_id is not None:  # what reward.py's _resolve_pad_token did in training
            self.pad_token_id, self.eos = self.tokenizer.eos_token_id, ""
        else:
            raise ConfigError(f"the tokenizer of {self.source} has neither a pad token nor an eos token")
        # sequence classification reads the score at the last token that is not config.pad_token_id
        model.config.get_text_config().pad_token_id = self.pad_token_id
        if device is None:  # a loaded model stays where it is; a path goes to this process's device
            device = PartialState().device if isinstance(path_or_model, (str, Path)) else model.device
        self.model = model.to(device).eval().requires_grad_(False)
        self.batch_size = batch_size
        self.__name__ = name  # trl logs a reward function by its __name__

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def token_ids(self, prompt: str | list[dict], completion: str | list[dict]) -> list[int]:
        """The ids the reward model reads for one prompt and completion (the training format)."""
        if isinstance(prompt, list):  # chat messages; the template closes the assistant turn itself
            messages = [*prompt, *(completion if isinstance(completion, list) else [_assistant(completion)])]
            return self.tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"]
        return encode(self.tokenizer, prompt + _completion_text(completion) + self.eos)

    def __call__(self, prompts: Sequence, completions: Sequence, **kwargs: Any) -> list[float]:
        if len(prompts) != len(completions):
            raise DataError(f"{len(prompts)} prompts but {len(completions)} completions")
        sequences = [self.token_ids(p, c) for p, c in zip(prompts, completions, strict=True)]
        scores: list[float] = []
        with torch.no_grad():
            for start in range(0, len(sequences), self.batch_size):
                batch = [torch.tensor(ids) for ids in sequences[start : start + self.batch_size]]
                input_ids = pad(batch, padding_value=self.pad_token_id, padding_side="right")
                attention_mask = pad(
                    [torch.ones_like(ids) for ids in batch], padding_value=0, padding_side="right"
                )
                logits = self.model(
                    input_ids=input_ids.to(self.device), attention_mask=attention_mask.to(self.device)
                ).logits
                scores.extend(logits[:, 0].float().tolist())
        return scores


def _completion_text(completion: str | list[dict]) -> str:
    """A completion as text: trl passes strings, or a list of messages for chat datasets."""
    if isinstance(completion, str):
        return completion
    return "".join(message.get("content") or "" for message in completion)


def _assistant(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}


# -- language fidelity ----------------------------------------------------------------------------------


def language_fidelity_reward(
    prompts: Sequence, completions: Sequence, lang: Sequence[str] | None = None, **kwargs: Any
) -> list[float]:
    """trl reward function: :func:`language_score` of each completion in its row's ``lang``.

    1.0 when the completion is in the prompt's language, lower as it drifts (multilingual policies drift
    into English); an empty completion scores 0. Needs the dataset's ``lang`` column.
    """
    langs = _lang_column("language_fidelity_reward", lang, completions)
    return [_cached_score(_completion_text(c), code) for c, code in zip(completions, langs, strict=True)]


def language_id_reward(
    prompts: Sequence, completions: Sequence, lang: Sequence[str] | None = None, **kwargs: Any
) -> list[float]:
    """trl reward function: 1.0 when :func:`identify` names the row's ``lang`` as the completion's, else 0.

    Stricter than :func:`language_fidelity_reward`: it tells apart languages of one script (Nepali from
    Hindi, Ukrainian from Russian), and a completion whose language cannot be told (empty, only code)
    scores 0. Any registry language is a possible answer. Needs lingua (``okapi-hf[eval]``) and the
    dataset's ``lang`` column. The RL config's ``language_reward: identifier`` chooses it.
    """
    langs = _lang_column("language_id_reward", lang, completions)
    return [_cached_match(_completion_text(c), code) for c, code in zip(completions, langs, strict=True)]


def _lang_column(name: str, lang: Sequence[str] | None, completions: Sequence) -> list[str]:
    if lang is None:
        raise DataError(
            f"{name} needs the dataset's `lang` column (a registry code per row); keep it in the RL prompts"
        )
    if len(lang) != len(completions):
        raise DataError(f"{name}: {len(completions)} completions but {len(lang)} `lang` values")
    return list(lang)


@functools.lru_cache(maxsize=4096)  # GRPO/RLOO groups often repeat a completion; scoring is pure
def _cached_score(text: str, lang: str) -> float:
    return language_score(text, lang)


@functools.lru_cache(maxsize=4096)
def _cached_match(text: str, lang: str) -> float:
    return 1.0 if identify(text) == get_language(lang).code else 0.0


LANGUAGE_REWARDS = {"heuristic": language_fidelity_reward, "identifier": language_id_reward}
