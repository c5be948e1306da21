"""PPO arithmetic against numbers worked out by hand."""

import math

import pytest
import torch

from okapi_hf.train.ppo_math import (
    AdaptiveKLController,
    FixedKLController,
    gae,
    masked_mean,
    policy_loss,
    token_rewards,
    value_loss,
    whiten,
)


def test_gae_matches_a_hand_computed_example():
    # gamma 1, lambda 0.95. Row 0: delta_2 = 1 - 0.7 = 0.3, delta_1 = 0.7 - 0.6 = 0.1, delta_0 = 0.6 - 0.5 = 0.1,
    # A_1 = 0.1 + 0.95 * 0.3 = 0.385, A_0 = 0.1 + 0.95 * 0.385 = 0.46575. Row 1 ends after 2 tokens: the
    # padded value 9.0 must not be bootstrapped: A_1 = 2 - 0.2 = 1.8, A_0 = (0.2 - 0.1) + 0.95 * 1.8 = 1.81.
    rewards = torch.tensor([[0.0, 0.0, 1.0], [0.0, 2.0, 0.0]])
    values = torch.tensor([[0.5, 0.6, 0.7], [0.1, 0.2, 9.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    advantages, returns = gae(rewards, values, mask, gamma=1.0, lam=0.95)
    torch.testing.assert_close(advantages, torch.tensor([[0.46575, 0.385, 0.3], [1.81, 1.8, 0.0]]))
    torch.testing.assert_close(returns, torch.tensor([[0.96575, 0.985, 1.0], [1.91, 2.0, 0.0]]))


def test_gae_with_gamma_below_one():
    # gamma 0.5, lambda 1: A_1 = 1 - 0.2 = 0.8; A_0 = (0 + 0.5 * 0.2 - 0.1) + 0.5 * 0.8 = 0.4
    advantages, _ = gae(
        torch.tensor([[0.0, 1.0]]), torch.tensor([[0.1, 0.2]]), torch.ones(1, 2), gamma=0.5, lam=1.0
    )
    torch.testing.assert_close(advantages, torch.tensor([[0.4, 0.8]]))


def test_token_rewards_penalise_kl_and_add_the_clipped_score_at_the_last_token():
    logprobs = torch.tensor([[0.1, 0.2, 0.3], [0.5, -0.5, 7.0]])
    ref = torch.zeros(2, 3)
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    rewards, kl = token_rewards(torch.tensor([5.0, 20.0]), logprobs, ref, mask, kl_coef=0.1, reward_clip=10.0)
    torch.testing.assert_close(rewards, torch.tensor([[-0.01, -0.02, 4.97], [-0.05, 10.05, 0.0]]))
    torch.testing.assert_close(kl, torch.tensor([[0.1, 0.2, 0.3], [0.5, -0.5, 0.0]]))


def test_adaptive_kl_controller_follows_the_update_rule():
    # e = clip(KL / 6 - 1, -0.2, 0.2); coef *= 1 + e * 128 / 10000
    for kl, error in ((9.0, 0.2), (3.0, -0.2), (6.6, 0.1), (6.0, 0.0)):
        controller = AdaptiveKLController(value=0.1, target=6.0, horizon=10000)
        assert controller.update(kl, n_steps=128) == pytest.approx(0.1 * (1 + error * 128 / 10000))
    controller = AdaptiveKLController()
    for _ in range(100):
        controller.update(12.0, n_steps=128)
    assert controller.value == pytest.approx(0.1 * (1 + 0.2 * 128 / 10000) ** 100)
    assert FixedKLController(0.05).update(100.0, 128) == 0.05


def test_policy_loss_clips_the_ratio_only_against_the_advantage():
    old = torch.zeros(1, 2)
    new = torch.full((1, 2), math.log(1.5), requires_grad=True)  # ratio 1.5 on both tokens
    mask = torch.ones(1, 2)
    # A = +1: the ratio is clipped at 1.2, no gradient; A = -1: the unclipped term is the larger one
    loss, stats = policy_loss(new, old, torch.tensor([[1.0, -1.0]]), mask, clip=0.2)
    assert loss.item() == pytest.approx((-1.2 + 1.5) / 2)
    assert stats["clipfrac"] == pytest.approx(0.5)
    (grad,) = torch.autograd.grad(loss, new)
    assert grad[0, 0].item() == 0.0
    assert grad[0, 1].item() == pytest.approx(1.5 / 2)  # d/dlogp of A * exp(logp) / 2 tokens


def test_value_loss_clips_moves_beyond_the_range():
    values = torch.tensor([[1.0, 0.55]])
    old = torch.tensor([[0.5, 0.5]])
    returns = torch.tensor([[1.0, 1.0]])
    loss, stats = value_loss(values, old, returns, torch.ones(1, 2), clip=0.2)
    # token 0: V moved 0.5 > 0.2, clipped V = 0.7, loss term (0.7 - 1)^2 = 0.09; token 1: (0.55 - 1)^2 = 0.2025
    assert loss.item() == pytest.approx(0.5 * (0.09 + 0.2025) / 2)
    assert stats["value_clipfrac"] == pytest.approx(0.5)


def test_masked_statistics_ignore_padding():
    x = torch.tensor([[1.0, 3.0, 100.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    assert masked_mean(x, mask).item() == 2.0
    w = whiten(x, mask)
    assert w[0, :2].tolist() == pytest.approx([-1.0, 1.0], abs=1e-4)
    assert whiten(x, mask, shift_mean=False)[0, :2].tolist() == pytest.approx([1.0, 3.0], abs=1e-3)
