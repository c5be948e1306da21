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
