"""Helpers every training stage shares: freezing the bottom of a model, finding its blocks."""

from __future__ import annotations

import logging

from torch import nn

from okapi_hf.errors import ConfigError

logger = logging.getLogger(__name__)


def transformer_blocks(model: nn.Module) -> nn.ModuleList:
    """The model's stack of transformer blocks (``transformer.h`` for BLOOM, ``model.layers`` for Llama).

    Found by shape rather than by name, so any decoder whose config states ``num_hidden_layers`` works.
    """
    n = model.config.get_text_config().num_hidden_layers
    candidates = [m for m in model.modules() if isinstance(m, nn.ModuleList) and len(m) == n]
    if not candidates:
        raise ValueError(f"found no list of {n} transformer blocks in {type(model).__name__}")
    return max(candidates, key=lambda m: sum(p.numel() for p in m.parameters()))


def freeze_bottom_layers(model: nn.Module, num_unfrozen_layers: int) -> int:
    """Train only the top ``num_unfrozen_layers`` blocks, the final norm and the head.

    Okapi trained the last 12 blocks of its reward model and the last 5 of its PPO policy: the
    embeddings and the lower blocks stay as the SFT stage left them, which saves memory and keeps
    the model close to its initialisation. Returns the number of trainable parameters.
    """
    blocks = transformer_blocks(model)
    if not 0 <= num_unfrozen_layers <= len(blocks):
        raise ConfigError(
            f"num_unfrozen_layers must be between 0 and {len(blocks)} (the model's blocks), got {num_unfrozen_layers}"
        )
    frozen = {id(p) for block in blocks[: len(blocks) - num_unfrozen_layers] for p in block.parameters()}
    frozen |= {id(p) for p in model.get_input_embeddings().parameters()}
    for name, module in model.named_modules():
        if "embed" in name.rsplit(".", 1)[-1]:  # e.g. BLOOM's word_embeddings_layernorm
            frozen |= {id(p) for p in module.parameters()}
    for p in model.parameters():
        p.requires_grad_(id(p) not in frozen)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    logger.info(
        "training the top %d of %d blocks: %d of %d parameters",
        num_unfrozen_layers,
        len(blocks),
        trainable,
        total,
    )
    return trainable


def check_tokenizers_match(policy_tokenizer, reward_tokenizer, policy_name: str, reward_name: str) -> None:
    """Fail before training when the reward model would read the policy's token ids differently.

    RLHF scores the policy's generated ids (PPO) or their decoded text re-tokenized (RLOO/GRPO); either
    way a reward model trained with another vocabulary scores garbage without any error, so we refuse.
    """
    policy_vocab, reward_vocab = policy_tokenizer.get_vocab(), reward_tokenizer.get_vocab()
    if policy_vocab != reward_vocab:
        only_policy = len(policy_vocab.keys() - reward_vocab.keys())
        only_reward = len(reward_vocab.keys() - policy_vocab.keys())
        raise ConfigError(
            f"the policy {policy_name} and the reward model {reward_name} have different tokenizers "
            f"({len(policy_vocab)} vs {len(reward_vocab)} tokens; {only_policy} only in the policy, "
            f"{only_reward} only in the reward model, others mapped to different ids): train the reward "
            "model from the policy's SFT checkpoint (`okapi-hf train rm`), or pass a matching reward_model_path"
        )
    if policy_tokenizer.eos_token != reward_tokenizer.eos_token:
        raise ConfigError(
            f"the policy {policy_name} ends responses with {policy_tokenizer.eos_token!r} but the reward model "
            f"{reward_name} was trained with {reward_tokenizer.eos_token!r}"
        )


# -- dataset fingerprints of large tokenizers -----------------------------------------------------------


def _tokenizer_digest(tokenizer) -> str:
    """A digest of everything that decides how ``tokenizer`` tokenizes, cheap even for 262k tokens.

    ``datasets`` fingerprints every ``map`` by pickling its function and arguments, tokenizer included,
    with a pure-Python pickler: for Gemma's or BLOOM's 250k-token vocabularies the Python-side copies
    of the vocabulary and merges alone take about 28 s per ``map`` (four maps before the first SFT step
    on Gemma 3 270M: 113 of 145 s). The backend's own JSON holds the same vocabulary, merges,
    normalizer and processors; hashed with the Python-side settings it is an exact and fast stand-in.
    """
    import hashlib

    skip = ("_tokenizer", "_vocab", "_merges", "cache", "deprecation_warnings")
    state = sorted((k, v) for k, v in tokenizer.__dict__.items() if k not in skip)
    digest = hashlib.sha256(repr(state).encode())
    backend = tokenizer.__dict__.get("_tokenizer")
    if backend is None:  # a slow (Python) tokenizer keeps its vocabulary in the state hashed above
        return digest.hexdigest()
    truncation, padding = backend.truncation, backend.padding  # runtime settings, as datasets ignores them
    backend.no_truncation(), backend.no_padding()
    try:
        digest.update(backend.to_str().encode())
    finally:
        if truncation is not None:
            backend.enable_truncation(**truncation)
        if padding is not None:
            backend.enable_padding(**padding)
    return digest.hexdigest()


def _save_tokenizer_by_digest(pickler, obj) -> None:
    pickler.save(("okapi_hf.tokenizer", type(obj).__qualname__, _tokenizer_digest(obj)))


def install_fast_tokenizer_fingerprints() -> None:
    """Make ``datasets`` fingerprint a tokenizer by :func:`_tokenizer_digest` instead of pickling it whole.

    ``datasets`` registers its tokenizer pickling function per tokenizer class the first time it meets
    one; pointing that name at ours keeps its cache semantics (a changed tokenizer, a new fingerprint)
    and makes the fingerprint a fraction of a second. Fingerprints are only ever hashed, never unpickled.
    """
    from datasets.utils import _dill

    _dill._save_transformersPreTrainedTokenizerBase = _save_tokenizer_by_digest
