"""Contextual bandit on GreedyMouse: per-state action values from the immediate reward.

The "Q-learning bandits" baseline the seed project planned but never wrote: the same
Q-table over the local observation's state id as :mod:`smpc_gym.agents.tabular_q`, but
with γ = 0, so ``Q[s, a]`` estimates the expected *immediate* reward of action ``a`` in
context ``s`` (``Q[s, a] ← Q[s, a] + α (r − Q[s, a])``) and the policy is ε-greedy on it.
It learns to step onto adjacent cheese and away from an adjacent cat, and nothing that
needs planning more than one step ahead — the yardstick that shows what bootstrapping
buys tabular Q-learning.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from smpc_gym.agents.tabular_q import _check_tabular_config, _TabularAgent


@dataclass
class Config:
    """Contextual-bandit hyper-parameters (γ is fixed at 0).

    Attributes:
        alpha: learning rate α in (0, 1] of the running reward average.
        eps_start: ε at step 0.
        eps_end: ε once the decay is over.
        exploration_fraction: fraction of the run's total env steps over which ε decays
            linearly from ``eps_start`` to ``eps_end`` (as SB3's ``exploration_fraction``).
        eps_decay_steps: if set, the decay lasts this many env steps whatever the run
            length (overrides ``exploration_fraction``); None (default) uses the fraction.
        q_init: initial value of every table entry.
        num_envs: worlds of the vector env stepped together in training.
        log_every: env steps between training-metric rows.
        eval_epsilon: ε used by the runner's evaluation (``smpc_gym.training.evaluate``
            reads this field; recorded in ``eval.json``). A greedy tabular policy on the
            8-cell local view gets stuck in deterministic loops (e.g. walking into a wall
            leaves the observation unchanged), so it is evaluated with a little
            exploration, as the spec allows.
    """

    alpha: float = 0.1
    eps_start: float = 1.0
    eps_end: float = 0.05
    exploration_fraction: float = 1 / 6  # 50,000 of the preset's 300,000 steps
    eps_decay_steps: int | None = None
    q_init: float = 0.0
    num_envs: int = 16
    log_every: int = 10_000
    eval_epsilon: float = 0.05

    def __post_init__(self) -> None:
        _check_tabular_config(self)


class Bandit(_TabularAgent):
    """ε-greedy contextual bandit: tabular values of the immediate reward (γ = 0)."""

    name: ClassVar[str] = "bandit"
    Config: ClassVar[type] = Config

    @property
    def gamma(self) -> float:
        """Always 0: a bandit does not bootstrap."""
        return 0.0
