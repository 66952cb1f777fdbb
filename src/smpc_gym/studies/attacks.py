"""Gradient inversion by the coordinator: what a received update reveals about a holder's data.

Threat model: an honest-but-curious coordinator that knows the public model (the global
Q-network it published) and the loss, receives an aggregate of updates, and wants a
holder's private batch: the observations it trained on and the actions it took. The
update is the most attacker-friendly one, FedSGD: one gradient step on one batch
(``Δ_i = -η ∇θ L(batch_i)``); many local steps only make inversion harder.

Attack (:func:`invert_gradient`): *Deep Leakage from Gradients* (Zhu et al. 2019) with the
improvements of iDLG (Zhao et al. 2020) and "Inverting Gradients" (Geiping et al. 2020):

* **actions, iDLG-style**: the Q-network's last layer receives a gradient only in the rows
  of actions present in the batch (the Huber TD loss touches ``Q(s, a)`` for the taken
  ``a`` only), so the non-zero rows of the output-bias gradient reveal *which* actions were
  taken; the dummy actions are restricted to those rows (exact for a one-sample batch);
* **observations and TD residuals** are optimised jointly: dummy observations
  ``tanh(z)`` (features lie in [-1, 1]), dummy action logits (softmax over the revealed
  actions) and each dummy's clipped TD residual (the Huber loss's derivative, which is all
  of the TD target the gradient depends on), so that the dummy batch's parameter gradient
  matches the received one. Residual signs start from the output-bias gradient;
* **analytic start** (as in R-GAP / "Robbing the Fed"): the first layer's gradient rows
  ``dW1[i] / db1[i]`` are mixtures of the batch's inputs — exactly an input for a
  one-sample batch — and seed the dummy observations of the first restart;
* **cosine-similarity** gradient distance (Geiping et al.): invariant to the unknown
  learning rate, to the ``1/N`` of a mean, and to DP clipping; Adam, a few random restarts,
  the restart with the best match wins.

Scoring (:func:`score_reconstruction`): reconstructed samples are matched to the target
holder's true samples with the Hungarian algorithm on observation MSE (so the order the
attack finds them in does not matter; with more dummy samples than targets, the best-matching
ones count — generous to the attacker). Reported: observation MSE, action accuracy on the
matched pairs, and the MSE of an uninformed guess (the public mean observation), so
``normalized_mse = mse / baseline_mse`` ≈ 0 is a perfect reconstruction and ≈ 1 (or more)
is no better than knowing nothing.

Scenarios (:func:`attack_scenario`): ``"plain"`` — the coordinator sees one holder's update
(plaintext FedAvg); ``"secure"`` — it sees only the sum of ``n_holders`` updates (secure
aggregation) and reconstructs ``n_holders × batch`` dummy samples, scored against one
holder's batch; ``"dp"`` — the holder clips its update to norm ``C`` and adds Gaussian noise
of std ``σ·C`` calibrated to ``(ε, δ)`` for that single release (local DP).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "AttackConfig",
    "HolderBatch",
    "attack_scenario",
    "first_layer_candidates",
    "infer_actions",
    "invert_gradient",
    "loss_gradient",
    "sample_holder_batches",
    "score_reconstruction",
]


@dataclass
class AttackConfig:
    """Gradient-inversion settings.

    Attributes:
        iterations: Adam steps per restart.
        lr: Adam learning rate on the dummy variables.
        restarts: random restarts; the best gradient match wins.
        action_tol: an output-bias gradient row counts as "present" when its magnitude
            exceeds ``action_tol × max``.
    """

    iterations: int = 400
    lr: float = 0.1
    restarts: int = 2
    action_tol: float = 1e-3

    def __post_init__(self) -> None:
        if self.iterations < 1 or self.restarts < 1:
            raise ValueError(
                f"iterations and restarts must be >= 1, got {self.iterations}, {self.restarts}"
            )
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")


@dataclass
class HolderBatch:
    """One holder's private batch: observations ``(B, d)``, actions ``(B,)``, TD targets
    ``(B,)`` (computed by the holder with the published target network)."""

    obs: torch.Tensor
    actions: torch.Tensor
    targets: torch.Tensor


def loss_gradient(
    model: nn.Module,
    obs: torch.Tensor,
    actions: torch.Tensor,
    targets: torch.Tensor,
    create_graph: bool = False,
) -> list[torch.Tensor]:
    """Parameter gradient of the DQN Huber TD loss on a batch.

    ``actions`` may be integer actions ``(B,)`` or soft one-hot weights ``(B, A)``
    (the attacker's relaxation).
    """
    q = model(obs)
    if actions.dim() == 1:
        q_sa = q.gather(1, actions.long().unsqueeze(1)).squeeze(1)
    else:
        q_sa = (q * actions).sum(1)
    loss = F.smooth_l1_loss(q_sa, targets)
    params = [p for p in model.parameters() if p.requires_grad]
    return list(torch.autograd.grad(loss, params, create_graph=create_graph))


def _residual_gradient(
    model: nn.Module,
    obs: torch.Tensor,
    actions: torch.Tensor,
    resid: torch.Tensor,
    create_graph: bool = False,
) -> list[torch.Tensor]:
    # the Huber TD loss's parameter gradient is (1/B) Σ_b clip(q_b - y_b, ±1) ∇θ Q(s_b, a_b):
    # the attacker models the clipped residual of each sample directly
    q_sa = (model(obs) * actions).sum(1)
    surrogate = (resid * q_sa).sum() / obs.shape[0]
    params = [p for p in model.parameters() if p.requires_grad]
    return list(torch.autograd.grad(surrogate, params, create_graph=create_graph))


def _flat(grads: Sequence[torch.Tensor]) -> torch.Tensor:
    return torch.cat([g.reshape(-1) for g in grads])


def infer_actions(grads: Sequence[torch.Tensor], tol: float = 1e-3) -> list[int]:
    """iDLG-style: the actions whose output-bias gradient (the last parameter) is non-zero."""
    gb = grads[-1].detach().abs()
    if gb.dim() != 1:
        raise ValueError(f"the last parameter must be the output bias (1-D), got {tuple(gb.shape)}")
    m = float(gb.max())
    if m == 0.0:
        return list(range(gb.numel()))
    return [int(i) for i in torch.nonzero(gb > tol * m).flatten()]


def first_layer_candidates(grads: Sequence[torch.Tensor], tol: float = 1e-2) -> torch.Tensor:
    """Input candidates ``dW1[i] / db1[i]`` from the first layer's gradient.

    For a first layer ``h = W1 x + b1``, ``dW1 = Σ_b δ_b x_bᵀ`` and ``db1 = Σ_b δ_b``, so each
    row ratio is a weighted mixture of the batch's inputs — exactly an input when one sample
    drives that unit (always, for a one-sample batch). Rows are sorted by ``|db1[i]|``,
    largest first; rows with ``|db1[i]| ≤ tol × max`` are dropped.
    """
    w, b = grads[0].detach().float(), grads[1].detach().float()
    if w.dim() != 2 or b.dim() != 1 or w.shape[0] != b.shape[0]:
        return torch.zeros((0, w.shape[-1]))
    mag = b.abs()
    if float(mag.max()) == 0.0:
        return torch.zeros((0, w.shape[1]))
    keep = torch.nonzero(mag > tol * mag.max()).flatten()
    keep = keep[torch.argsort(mag[keep], descending=True)]
    return w[keep] / b[keep, None]


def invert_gradient(
    model: nn.Module,
    observed: Sequence[torch.Tensor],
    batch_size: int,
    config: AttackConfig,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Reconstruct ``batch_size`` (observation, action) pairs from a received gradient.

    Args:
        model: the public Q-network (parameters are not changed).
        observed: the received update as a list shaped like ``model.parameters()``
            (any positive or negative scale: the distance is cosine).
        batch_size: number of dummy samples.
        config: attack settings.
        generator: seeds the dummy initialisations.

    Returns:
        ``(obs (B, d), actions (B,), cosine_distance)`` of the best restart.
    """
    params = list(model.parameters())
    obs_dim = params[0].shape[1]
    num_actions = params[-1].shape[0]
    target = _flat(observed).detach().to(torch.float32)
    tnorm = target.norm()
    present = infer_actions(observed, config.action_tol)
    mask = torch.full((num_actions,), float("-inf"))
    mask[present] = 0.0
    cands = first_layer_candidates(observed)
    bias_grad = observed[-1].detach().float().reshape(-1)
    best: tuple[torch.Tensor, torch.Tensor, float] | None = None
    for r in range(config.restarts):
        if cands.shape[0] > 0:
            # analytic start: rows of dW1 / db1 are (mixtures of) the batch's inputs
            pick = torch.randint(0, cands.shape[0], (batch_size,), generator=generator)
            if r == 0:
                pick = torch.arange(batch_size) % cands.shape[0]
            z = torch.atanh(cands[pick].clamp(-0.995, 0.995))
            z = (z + 0.05 * torch.randn(z.shape, generator=generator)).requires_grad_()
        else:
            z = (0.5 * torch.randn((batch_size, obs_dim), generator=generator)).requires_grad_()
        logits = 0.1 * torch.randn((batch_size, num_actions), generator=generator)
        if r == 0:  # spread the dummies over the revealed actions
            logits[
                torch.arange(batch_size),
                torch.tensor(present)[torch.arange(batch_size) % len(present)],
            ] += 2.0
        logits.requires_grad_()
        # residuals (Huber derivative per sample); sign and size from the output-bias
        # gradient of each dummy's initial action (its sign is not learnable under cosine)
        a0 = (logits.detach() + mask).argmax(1)
        resid = (bias_grad[a0] * batch_size).clone().requires_grad_()
        opt = torch.optim.Adam([z, logits, resid], lr=config.lr)
        best_it: tuple[float, torch.Tensor, torch.Tensor] = (math.inf, z.detach(), logits.detach())
        for _it in range(config.iterations + 1):
            opt.zero_grad()
            a_soft = torch.softmax(logits + mask, dim=1)
            g = _flat(_residual_gradient(model, torch.tanh(z), a_soft, resid, True))
            dist = 1.0 - (g @ target) / (g.norm() * tnorm + 1e-12)
            if float(dist.detach()) < best_it[0]:  # keep the best iterate, not the last
                best_it = (float(dist.detach()), z.detach().clone(), logits.detach().clone())
            if _it == config.iterations:
                break
            dist.backward()
            opt.step()
        final, z_best, logits_best = best_it
        if best is None or final < best[2]:
            best = (torch.tanh(z_best), (logits_best + mask).argmax(1), final)
    assert best is not None
    return best


def score_reconstruction(
    rec_obs: torch.Tensor,
    rec_actions: torch.Tensor,
    true_obs: torch.Tensor,
    true_actions: torch.Tensor,
    prior_mean: torch.Tensor,
) -> dict[str, float]:
    """Hungarian-match reconstructions to true samples on observation MSE and score them.

    Returns ``{"mse", "action_accuracy", "baseline_mse", "normalized_mse"}``; the
    baseline is the MSE of guessing ``prior_mean`` (the public mean observation).
    """
    from scipy.optimize import linear_sum_assignment

    r = rec_obs.detach().double()
    t = true_obs.detach().double()
    cost = ((t[:, None, :] - r[None, :, :]) ** 2).mean(-1).numpy()
    rows, cols = linear_sum_assignment(cost)
    mse = float(cost[rows, cols].mean())
    acc = float((rec_actions[cols].numpy() == true_actions[rows].numpy()).mean())
    base = float(((t - prior_mean.double()[None]) ** 2).mean())
    return {
        "mse": mse,
        "action_accuracy": acc,
        "baseline_mse": base,
        "normalized_mse": mse / max(base, 1e-12),
    }


def sample_holder_batches(
    model: nn.Module,
    n_holders: int,
    batch_size: int,
    seed: int,
    env_kwargs: dict[str, Any] | None = None,
    gamma: float = 0.99,
    reward_scale: float = 0.01,
    warmup_steps: int = 50,
) -> tuple[list[HolderBatch], torch.Tensor]:
    """Real GreedyMouse transitions for ``n_holders`` holders (each on its own worlds,
    random behaviour policy) and the public mean observation (from separate worlds).

    TD targets are ``r·reward_scale + γ·max_a Q(s', a)`` with ``model`` as target network.
    """
    from smpc_gym.agents.common.vector_worlds import VectorWorlds

    kw = {"obs_mode": "features", **(env_kwargs or {})}
    rng = np.random.default_rng(seed)
    batches = []
    for h in range(n_holders):
        w = VectorWorlds(kw, batch_size, seed * 1000 + 17 * h + 1)
        try:
            n_act = int(w.env.single_action_space.n)
            for _ in range(int(rng.integers(1, warmup_steps + 1))):
                w.step(rng.integers(0, n_act, batch_size))
            tr = w.step(rng.integers(0, n_act, batch_size))
            while len(tr) < batch_size:  # an episode boundary dropped a row; step again
                tr = w.step(rng.integers(0, n_act, batch_size))
        finally:
            w.close()
        obs = torch.as_tensor(tr.obs, dtype=torch.float32)
        nxt = torch.as_tensor(tr.next_obs, dtype=torch.float32)
        with torch.no_grad():
            boot = model(nxt).max(1).values * (1.0 - torch.as_tensor(tr.terminated).float())
        y = torch.as_tensor(tr.rewards, dtype=torch.float32) * reward_scale + gamma * boot
        batches.append(HolderBatch(obs, torch.as_tensor(tr.actions).long(), y))
    pub = VectorWorlds(kw, 64, seed * 1000 + 999_983)
    try:
        n_act = int(pub.env.single_action_space.n)
        pool = []
        for _ in range(20):
            pool.append(np.asarray(pub.obs, dtype=np.float32).copy())
            pub.step(rng.integers(0, n_act, 64))
    finally:
        pub.close()
    prior = torch.as_tensor(np.concatenate(pool)).mean(0)
    return batches, prior


def attack_scenario(
    model: nn.Module,
    batches: Sequence[HolderBatch],
    prior_mean: torch.Tensor,
    scenario: str,
    config: AttackConfig,
    generator: torch.Generator,
    *,
    dp_noise_multiplier: float = 0.0,
    clip_norm: float = 1.0,
) -> dict[str, float]:
    """Run the attack on what the coordinator receives and score it against holder 0.

    ``scenario``: ``"plain"`` (holder 0's own update), ``"secure"`` (only the sum of all
    ``len(batches)`` holders' updates; ``n × B`` dummies), or ``"dp"`` (holder 0's update
    clipped to ``clip_norm`` plus Gaussian noise of std ``dp_noise_multiplier × clip_norm``).
    """
    if scenario not in ("plain", "secure", "dp"):
        raise ValueError(f"scenario must be 'plain', 'secure' or 'dp', got {scenario!r}")
    grads = [loss_gradient(model, b.obs, b.actions, b.targets) for b in batches]
    bsz = batches[0].obs.shape[0]
    if scenario == "plain":
        observed, n_dummy = grads[0], bsz
    elif scenario == "secure":
        observed = [torch.stack(gs).sum(0) for gs in zip(*grads, strict=True)]
        n_dummy = bsz * len(batches)
    else:
        from smpc_gym.federated.dp import add_gaussian_noise, clip_update

        flat = _flat(grads[0])
        clipped, _ = clip_update(flat, clip_norm)
        noised = add_gaussian_noise(clipped, dp_noise_multiplier * clip_norm, generator)
        observed, i = [], 0
        for g in grads[0]:
            observed.append(noised[i : i + g.numel()].reshape(g.shape))
            i += g.numel()
        n_dummy = bsz
    rec_obs, rec_act, dist = invert_gradient(model, observed, n_dummy, config, generator)
    out = score_reconstruction(rec_obs, rec_act, batches[0].obs, batches[0].actions, prior_mean)
    out["gradient_distance"] = dist
    return out
