"""PATE for the mouse: private teachers, noisy-argmax votes, a student, and the
moments accountant of Papernot et al. (ICLR 2017).

Pipeline (:func:`run_pate`)
---------------------------
1. **Teachers**: ``num_teachers`` tabular Q-learners
   (:class:`smpc_gym.agents.tabular_q.TabularQ`), each trained on its own private worlds
   (disjoint world seeds: teacher ``t`` only ever sees worlds seeded from ``seed + t``).
2. **Queries**: the student collects ``num_queries`` local observations by exploring a
   *public* world (a seed no teacher used) with a random policy.
3. **Noisy aggregation**: for each query every teacher votes its greedy action; the label is
   ``argmax_j (n_j + Lap(1/γ))`` (:func:`noisy_argmax`, Laplace noise of scale ``1/γ`` per
   count) or, optionally, GNMax ``argmax_j (n_j + N(0, σ²))``.
4. **Student**: a small softmax-regression/MLP classifier on the one-hot local observation,
   trained with cross-entropy on the (observation, noisy label) pairs; it generalises to
   states it was never asked about.
5. **Report**: data-independent and data-dependent ε at ``δ = 1e-5`` (:func:`pate_epsilon`),
   teacher agreement (mean fraction of teachers voting for the plurality action), label
   accuracy (noisy label = plurality label), and the average reward per step of the student,
   the teachers and a random policy on fresh public worlds.

Moments accountant (Papernot et al. 2017, Theorems 2 and 3)
-----------------------------------------------------------
The Laplace noisy-max with noise ``Lap(1/γ)`` on vote counts is ``(2γ, 0)``-DP per query
(one teacher changing its vote moves two counts by one). For moment order ``λ``:

* data-independent bound: ``α(λ) ≤ min(2γ²λ(λ+1), 2γλ)``;
* data-dependent bound, with ``q ≥ Pr[label ≠ plurality]`` bounded from the counts as
  ``q = Σ_{j≠j*} (2 + γ·(n_{j*} - n_j)) / (4·exp(γ·(n_{j*} - n_j)))`` (capped at 1):
  if ``q < (e^{2γ} - 1)/(e^{4γ} - 1)`` then
  ``α(λ) ≤ log((1-q)·((1-q)/(1 - e^{2γ}q))^λ + q·e^{2γλ})``, and in any case the
  data-independent bound holds, so we take the minimum.

Moments add over queries; ``ε = min_λ (Σ α(λ) + log(1/δ)) / λ`` for ``λ = 1..8``; the
minimising ``λ`` is reported. (The Theorem-3 condition is the paper's; the authors'
``analysis.py`` uses the looser ``q < 0.5``. The paper's is the safer choice.)

The data-dependent ε depends on the private vote counts, so publishing it leaks a little
(the paper releases it only after smoothing); we report it as the paper does, for comparison.

GNMax (``mechanism="gaussian"``, Papernot et al. 2018) is offered with its data-independent
Rényi-DP bound only: ``λ/σ²`` per query at order ``λ``, ``ε = min_λ (T·λ/σ² + log(1/δ)/(λ-1))``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

__all__ = [
    "MECHANISMS",
    "PATEConfig",
    "gnmax_epsilon",
    "logmgf_data_dependent",
    "logmgf_data_independent",
    "noisy_argmax",
    "pate_epsilon",
    "q_noisy_max",
    "Student",
    "collect_public_states",
    "evaluate_policy",
    "run_pate",
    "train_teachers",
    "vote_counts",
]

MECHANISMS = ("laplace", "gaussian")


# ------------------------------------------------------------------ aggregation
def vote_counts(votes: np.ndarray, num_actions: int) -> np.ndarray:
    """``(Q, num_actions)`` vote counts from ``(num_teachers, Q)`` integer votes."""
    votes = np.asarray(votes, dtype=np.int64)
    if votes.ndim != 2:
        raise ValueError(f"votes must be (num_teachers, num_queries), got shape {votes.shape}")
    if votes.size and (votes.min() < 0 or votes.max() >= num_actions):
        raise ValueError(
            f"votes must be in [0, {num_actions}), got range [{votes.min()}, {votes.max()}]"
        )
    q = votes.shape[1]
    counts = np.zeros((q, num_actions), dtype=np.int64)
    for t in range(votes.shape[0]):
        np.add.at(counts, (np.arange(q), votes[t]), 1)
    return counts


def noisy_argmax(
    counts: np.ndarray,
    rng: np.random.Generator,
    *,
    gamma: float | None = None,
    sigma: float | None = None,
) -> np.ndarray:
    """Noisy-max labels: ``argmax_j (n_j + Lap(1/γ))`` (pass ``gamma``) or
    ``argmax_j (n_j + N(0, σ²))`` (GNMax, pass ``sigma``), one per row of ``counts``."""
    counts = np.asarray(counts, dtype=np.float64)
    if (gamma is None) == (sigma is None):
        raise ValueError("pass exactly one of gamma (Laplace) or sigma (Gaussian GNMax)")
    if gamma is not None:
        if not gamma > 0:
            raise ValueError(f"gamma must be > 0 (Laplace scale 1/gamma), got {gamma!r}")
        noise = rng.laplace(0.0, 1.0 / gamma, size=counts.shape)
    else:
        assert sigma is not None
        if not sigma > 0:
            raise ValueError(f"sigma must be > 0, got {sigma!r}")
        noise = rng.normal(0.0, sigma, size=counts.shape)
    return np.argmax(counts + noise, axis=-1)


# ------------------------------------------------------------------ accountant
def q_noisy_max(counts: Sequence[float], gamma: float) -> float:
    """Papernot et al.'s bound ``q ≥ Pr[noisy argmax ≠ plurality]`` for one query
    (Laplace scale ``1/γ``), capped at 1."""
    c = np.asarray(counts, dtype=np.float64)
    winner = int(np.argmax(c))
    gaps = gamma * (c[winner] - np.delete(c, winner))
    q = float(np.sum((2.0 + gaps) * np.exp(-gaps) / 4.0))
    return min(q, 1.0)


def logmgf_data_independent(gamma: float, lam: int) -> float:
    """Data-independent moment bound of one ``(2γ, 0)``-DP query: ``min(2γ²λ(λ+1), 2γλ)``."""
    eps = 2.0 * gamma
    return min(0.5 * eps * eps * lam * (lam + 1), eps * lam)


def logmgf_data_dependent(q: float, gamma: float, lam: int) -> float:
    """Theorem-3 moment bound of one query given ``q`` (falls back to the
    data-independent bound when ``q ≥ (e^{2γ}-1)/(e^{4γ}-1)``)."""
    eps = 2.0 * gamma
    indep = logmgf_data_independent(gamma, lam)
    limit = (math.exp(eps) - 1.0) / (math.exp(2.0 * eps) - 1.0)
    if q >= limit:
        return indep
    # log((1-q)·((1-q)/(1-e^{2γ}q))^λ + q·e^{2γλ}), evaluated in log space (no overflow)
    a = math.log1p(-q) + lam * (math.log1p(-q) - math.log1p(-math.exp(eps) * q))
    b = math.log(q) + eps * lam if q > 0 else -math.inf
    hi = max(a, b)
    log_t = hi + math.log(math.exp(a - hi) + math.exp(b - hi))
    return min(log_t, indep)


def pate_epsilon(
    counts: np.ndarray, gamma: float, delta: float = 1e-5, moments: int = 8
) -> dict[str, float]:
    """(ε, δ) of answering every row of ``counts`` with Laplace noisy-max (scale ``1/γ``).

    Returns ``{"eps_data_independent", "lambda_data_independent", "eps_data_dependent",
    "lambda_data_dependent", "delta", "queries"}``; λ ranges over ``1..moments``.
    """
    if not gamma > 0:
        raise ValueError(f"gamma must be > 0, got {gamma!r}")
    if not 0 < delta < 1:
        raise ValueError(f"delta must be in (0, 1), got {delta!r}")
    if moments < 1:
        raise ValueError(f"moments must be >= 1, got {moments!r}")
    counts = np.atleast_2d(np.asarray(counts, dtype=np.float64))
    lams = list(range(1, moments + 1))
    n_q = counts.shape[0] if counts.size else 0
    ind = np.array([n_q * logmgf_data_independent(gamma, lam) for lam in lams])
    dep = np.zeros(len(lams))
    for row in counts[:n_q]:
        q = q_noisy_max(row, gamma)
        dep += np.array([logmgf_data_dependent(q, gamma, lam) for lam in lams])
    log_inv_delta = math.log(1.0 / delta)
    eps_ind = (ind + log_inv_delta) / np.array(lams)
    eps_dep = (dep + log_inv_delta) / np.array(lams)
    i, d = int(np.argmin(eps_ind)), int(np.argmin(eps_dep))
    return {
        "eps_data_independent": float(eps_ind[i]),
        "lambda_data_independent": float(lams[i]),
        "eps_data_dependent": float(eps_dep[d]),
        "lambda_data_dependent": float(lams[d]),
        "delta": float(delta),
        "queries": float(n_q),
    }


def gnmax_epsilon(
    num_queries: int, sigma: float, delta: float = 1e-5, orders: Sequence[float] | None = None
) -> dict[str, float]:
    """Data-independent (ε, δ) of ``num_queries`` GNMax answers with noise ``σ``: RDP
    ``λ/σ²`` per query, converted with ``ε = T·λ/σ² + log(1/δ)/(λ-1)``, best ``λ``."""
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma!r}")
    orders = list(orders) if orders is not None else [1.25, 1.5, 2, 3, 4, 6, 8, 16, 32, 64, 128]
    best = (math.inf, float("nan"))
    for lam in orders:
        if lam <= 1:
            continue
        eps = num_queries * lam / sigma**2 + math.log(1.0 / delta) / (lam - 1.0)
        best = min(best, (eps, float(lam)))
    return {
        "eps_data_independent": best[0],
        "lambda_data_independent": best[1],
        "delta": float(delta),
        "queries": float(num_queries),
    }


# ------------------------------------------------------------------ pipeline
@dataclass
class PATEConfig:
    """PATE on GreedyMouse.

    Attributes:
        num_teachers: teachers, each on its own private worlds.
        teacher_steps: env steps of tabular Q-learning per teacher.
        teacher_envs: worlds per teacher.
        num_queries: public states labelled for the student.
        mechanism: ``"laplace"`` (noise ``Lap(1/gamma)``) or ``"gaussian"`` (GNMax, ``sigma``).
        gamma: Laplace noise parameter γ (scale ``1/γ``).
        sigma: GNMax standard deviation.
        delta: δ of the reported ε.
        moments: largest moment order λ of the accountant.
        student_hidden: hidden sizes of the student MLP (empty = softmax regression).
        student_epochs: training epochs of the student.
        eval_steps: vector steps (of ``eval_envs`` worlds) per policy evaluation.
        eval_envs: worlds per evaluation.
        eval_epsilon: exploration during evaluation (greedy policies on the 8-cell view
            loop forever against walls; same convention as ``tabular_q``'s evaluation).
        env_kwargs: extra GreedyMouse kwargs (``obs_mode`` is always ``"local"``).
    """

    num_teachers: int = 20
    teacher_steps: int = 40_000
    teacher_envs: int = 16
    num_queries: int = 500
    mechanism: str = "laplace"
    gamma: float = 0.1
    sigma: float = 10.0
    delta: float = 1e-5
    moments: int = 8
    student_hidden: tuple[int, ...] = (64,)
    student_epochs: int = 200
    eval_steps: int = 400
    eval_envs: int = 16
    eval_epsilon: float = 0.05
    env_kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in (
            "num_teachers",
            "teacher_steps",
            "teacher_envs",
            "num_queries",
            "moments",
            "student_epochs",
            "eval_steps",
            "eval_envs",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if self.mechanism not in MECHANISMS:
            raise ValueError(f"mechanism must be one of {MECHANISMS}, got {self.mechanism!r}")
        if not self.gamma > 0 or not self.sigma > 0:
            raise ValueError(f"gamma and sigma must be > 0, got {self.gamma!r}, {self.sigma!r}")
        self.student_hidden = tuple(int(h) for h in self.student_hidden)


def _env_kwargs(cfg: PATEConfig) -> dict[str, Any]:
    return {**cfg.env_kwargs, "obs_mode": "local"}


def train_teachers(cfg: PATEConfig, seed: int) -> list[Any]:
    """Train ``cfg.num_teachers`` tabular Q teachers on disjoint private world seeds."""
    from smpc_gym.agents.base import NullHooks
    from smpc_gym.agents.tabular_q import Config as TQConfig
    from smpc_gym.agents.tabular_q import TabularQ

    teachers = []
    for t in range(cfg.num_teachers):
        tq = TabularQ(
            TQConfig(
                num_envs=cfg.teacher_envs,
                eps_decay_steps=cfg.teacher_steps // 2,
                log_every=cfg.teacher_steps,
            ),
            _env_kwargs(cfg),
            seed=seed * 100_003 + 7919 * (t + 1),
        )
        tq.train(cfg.teacher_steps, NullHooks())
        teachers.append(tq)
    return teachers


def collect_public_states(cfg: PATEConfig, seed: int, rng: np.random.Generator) -> np.ndarray:
    """``num_queries`` local observations from public worlds explored at random."""
    from smpc_gym.agents.common.vector_worlds import VectorWorlds

    worlds = VectorWorlds(_env_kwargs(cfg), cfg.eval_envs, seed)
    n_act = int(worlds.env.single_action_space.n)
    out: list[np.ndarray] = []
    try:
        while sum(len(o) for o in out) < cfg.num_queries:
            out.append(np.asarray(worlds.obs).copy())
            worlds.step(rng.integers(0, n_act, cfg.eval_envs))
    finally:
        worlds.close()
    return np.concatenate(out)[: cfg.num_queries]


def _one_hot(obs: np.ndarray) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(obs, dtype=np.int64))
    return torch.nn.functional.one_hot(x, 4).reshape(x.shape[0], -1).to(torch.float32)


class Student:
    """The student policy: an MLP on the one-hot local observation, trained on labels."""

    def __init__(self, obs_len: int, num_actions: int, hidden: Sequence[int], seed: int) -> None:
        from smpc_gym.agents.base import torch_generator
        from smpc_gym.agents.common.networks import mlp

        self.net = mlp(4 * obs_len, hidden, num_actions, generator=torch_generator(seed))
        self.gen = torch_generator(seed + 1)

    def fit(self, obs: np.ndarray, labels: np.ndarray, epochs: int) -> float:
        """Full-batch Adam on cross-entropy; returns the final training accuracy."""
        x, y = _one_hot(obs), torch.as_tensor(np.asarray(labels, dtype=np.int64))
        opt = torch.optim.Adam(self.net.parameters(), lr=1e-2)
        for _ in range(epochs):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(self.net(x), y)
            loss.backward()
            opt.step()
        with torch.no_grad():
            return float((self.net(x).argmax(1) == y).float().mean())

    @torch.no_grad()
    def act_batch(self, obs: np.ndarray) -> np.ndarray:
        """Greedy actions for a batch of local observations."""
        return self.net(_one_hot(obs)).argmax(1).numpy()


def evaluate_policy(
    policy: Any, cfg: PATEConfig, seed: int, rng: np.random.Generator, num_actions: int
) -> float:
    """Average reward per step of ``policy(obs_batch) -> actions`` (with ``eval_epsilon``
    random actions) on ``eval_envs`` fresh public worlds for ``eval_steps`` vector steps."""
    from smpc_gym.agents.common.vector_worlds import VectorWorlds

    worlds = VectorWorlds(_env_kwargs(cfg), cfg.eval_envs, seed)
    total, steps = 0.0, 0
    try:
        for _ in range(cfg.eval_steps):
            a = np.asarray(policy(worlds.obs), dtype=np.int64)
            explore = rng.random(a.shape[0]) < cfg.eval_epsilon
            a[explore] = rng.integers(0, num_actions, int(np.count_nonzero(explore)))
            tr = worlds.step(a)
            total += float(np.sum(tr.rewards))
            steps += len(tr)
    finally:
        worlds.close()
    return total / max(steps, 1)


def run_pate(
    cfg: PATEConfig,
    seed: int = 0,
    teachers: list[Any] | None = None,
    public_obs: np.ndarray | None = None,
) -> dict[str, float]:
    """The whole PATE pipeline (see the module docstring); returns the figures.

    ``teachers`` and ``public_obs`` may be passed in to reuse them across noise levels.
    Keys: ``eps_data_independent``, ``eps_data_dependent`` (Laplace only), their λ,
    ``teacher_agreement``, ``label_accuracy``, ``student_train_accuracy``,
    ``student_reward_per_step``, ``teacher_reward_per_step`` (mean over teachers),
    ``random_reward_per_step``, ``queries``.
    """
    rng = np.random.default_rng(seed)
    if teachers is None:
        teachers = train_teachers(cfg, seed)
    if public_obs is None:
        public_obs = collect_public_states(cfg, seed=10_000_019 + seed, rng=rng)
    num_actions = teachers[0].num_actions
    votes = np.stack([t.act_batch(public_obs, 0.0) for t in teachers])
    counts = vote_counts(votes, num_actions)
    plurality = counts.argmax(1)
    if cfg.mechanism == "laplace":
        labels = noisy_argmax(counts, rng, gamma=cfg.gamma)
        acct: dict[str, float] = pate_epsilon(counts, cfg.gamma, cfg.delta, cfg.moments)
    else:
        labels = noisy_argmax(counts, rng, sigma=cfg.sigma)
        acct = gnmax_epsilon(len(public_obs), cfg.sigma, cfg.delta)
    student = Student(public_obs.shape[1], num_actions, cfg.student_hidden, seed)
    train_acc = student.fit(public_obs, labels, cfg.student_epochs)
    eval_seed = 20_000_003 + seed
    student_r = evaluate_policy(student.act_batch, cfg, eval_seed, rng, num_actions)
    teacher_r = float(
        np.mean(
            [
                evaluate_policy(
                    lambda o, t=t: t.act_batch(o, 0.0), cfg, eval_seed, rng, num_actions
                )
                for t in teachers[: min(len(teachers), 5)]
            ]
        )
    )
    random_r = evaluate_policy(
        lambda o: rng.integers(0, num_actions, len(o)), cfg, eval_seed, rng, num_actions
    )
    return {
        **acct,
        "teacher_agreement": float((counts.max(1) / len(teachers)).mean()),
        "label_accuracy": float((labels == plurality).mean()),
        "student_train_accuracy": train_acc,
        "student_reward_per_step": student_r,
        "teacher_reward_per_step": teacher_r,
        "random_reward_per_step": random_r,
    }
