"""The arithmetic of PPO for language models, as pure tensor functions (Ziegler et al. 2019; Okapi's defaults).

trl 1.x removed its PPO trainer, so okapi-hf owns one. Everything here is separate from the trainer
loop so each piece is checked against hand-computed numbers: the per-token KL penalty with the reward
at the last token, GAE, the clipped policy and value losses and the adaptive KL controller.
Tensors are ``[batch, response_tokens]`` with a 0/1 ``mask`` for real response tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean over the real tokens only."""
    if dim is None:
        return (x * mask).sum() / mask.sum()
    return (x * mask).sum(dim) / mask.sum(dim)


def whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True) -> torch.Tensor:
    """Normalise to unit variance over real tokens (and zero mean unless ``shift_mean=False``)."""
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    out = (x - mean) * torch.rsqrt(var + 1e-8)
    return out if shift_mean else out + mean


def token_rewards(
    scores: torch.Tensor,
    logprobs: torch.Tensor,
    ref_logprobs: torch.Tensor,
    mask: torch.Tensor,
    kl_coef: float,
    reward_clip: float | None = 10.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token rewards: -kl_coef * (log pi - log pi_ref) everywhere, plus the (clipped) score at the last token.

    Returns the rewards and the per-token KL estimate (``log pi - log pi_ref``), both masked.
    """
    kl = (logprobs - ref_logprobs) * mask
    rewards = -kl_coef * kl
    if reward_clip is not None:
        scores = scores.clamp(-reward_clip, reward_clip)
    last = mask.shape[1] - 1 - mask.flip(-1).to(torch.long).argmax(-1)  # index of each row's last real token
    rewards[torch.arange(len(scores)), last] += scores
    return rewards * mask, kl


def gae(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0, lam: float = 0.95
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation, right to left; returns (advantages, returns = advantages + values).

    The value after the last real token is 0 (the episode ends there), so padding never leaks in.
    """
    advantages = torch.zeros_like(rewards)
    next_value = torch.zeros_like(rewards[:, 0])
    running = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(rewards.shape[1])):
        m = mask[:, t]
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = (delta + gamma * lam * running) * m
        advantages[:, t] = running
        next_value = values[:, t] * m  # a padded step contributes no bootstrap value
    return advantages, (advantages + values) * mask


def policy_loss(
    logprobs: Tensor, old_logprobs: Tensor, advantages: Tensor, mask: Tensor, clip: float = 0.2
) -> tuple[Tensor, dict[str, float]]:
    """PPO's clipped surrogate: max(-A r, -A clip(r, 1-eps, 1+eps)), averaged over real tokens."""
    ratio = torch.exp(logprobs - old_logprobs)
    loss, clipfrac = _pessimistic(-advantages * ratio, -advantages * ratio.clamp(1 - clip, 1 + clip), mask)
    with torch.no_grad():
        approx_kl = masked_mean(0.5 * (logprobs - old_logprobs) ** 2, mask).item()
    return loss, {"clipfrac": clipfrac, "approx_kl": approx_kl}


def value_loss(
    values: Tensor, old_values: Tensor, returns: Tensor, mask: Tensor, clip: float = 0.2
) -> tuple[Tensor, dict[str, float]]:
    """Clipped value loss: 0.5 * max((V - R)^2, (V_old + clip(V - V_old, +-eps) - R)^2) over real tokens."""
    clipped_values = old_values + (values - old_values).clamp(-clip, clip)
    loss, clipfrac = _pessimistic((values - returns) ** 2, (clipped_values - returns) ** 2, mask)
    return 0.5 * loss, {"value_clipfrac": clipfrac}


def _pessimistic(unclipped: Tensor, clipped: Tensor, mask: Tensor) -> tuple[Tensor, float]:
    """The larger of the two losses per token, averaged over real tokens, and how often the clipped one was."""
    loss = masked_mean(torch.max(unclipped, clipped), mask)
    with torch.no_grad():
        return loss, masked_mean((clipped > unclipped).float(), mask).item()


@dataclass
class AdaptiveKLController:
    """Ziegler et al.'s controller: move the KL coefficient so the measured KL approaches ``target``.

    e = clip(KL / target - 1, -0.2, 0.2); coef <- coef * (1 + e * n_steps / horizon). Okapi: 0.1, 6, 10000.
    """

    value: float = 0.1
    target: float = 6.0
    horizon: int = 10000

    def update(self, current_kl: float, n_steps: int) -> float:
        error = min(max(current_kl / self.target - 1, -0.2), 0.2)
        self.value *= 1 + error * n_steps / self.horizon
        return self.value


@dataclass
class FixedKLController:
    """A constant KL coefficient (``target=None`` in the config)."""

    value: float = 0.1

    def update(self, current_kl: float, n_steps: int) -> float:
        return self.value
