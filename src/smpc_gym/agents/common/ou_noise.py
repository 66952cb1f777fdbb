"""Ornstein-Uhlenbeck exploration noise (as in DDPG / MADDPG), seeded per player.

The process ``x ← x + θ·(μ − x)·dt + σ·√dt·ε`` with ``ε ~ N(0, 1)`` from a passed-in
``torch.Generator`` gives temporally correlated noise, which suits the supply-chain game's
smooth price/quantity actions better than white noise. One instance per player; with
``n_envs`` parallel worlds the state has one row per world.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch


class OUNoise:
    """Ornstein-Uhlenbeck noise of shape ``(n_envs, dim)``.

    Args:
        dim: action dimension.
        theta: mean-reversion rate θ (paper: 0.15).
        sigma: volatility σ (paper: 0.3), in the units the caller adds it in (here:
            fractions of the action caps).
        generator: the player's own seeded ``torch.Generator``.
        n_envs: number of parallel worlds (one independent process per world).
        mu: long-run mean μ.
        dt: time step.
    """

    def __init__(
        self,
        dim: int,
        theta: float,
        sigma: float,
        generator: torch.Generator,
        n_envs: int = 1,
        mu: float = 0.0,
        dt: float = 1.0,
    ) -> None:
        if theta < 0 or sigma < 0:
            raise ValueError(f"OU noise needs theta >= 0 and sigma >= 0, got {theta}, {sigma}")
        self.dim = int(dim)
        self.theta = float(theta)
        self.sigma = float(sigma)
        self.mu = float(mu)
        self.dt = float(dt)
        self.generator = generator
        self.state = torch.full((int(n_envs), self.dim), self.mu)

    def reset(self, rows: torch.Tensor | None = None) -> None:
        """Reset the process to μ (all worlds, or only the worlds where ``rows`` is True)."""
        if rows is None:
            self.state.fill_(self.mu)
        else:
            self.state[rows] = self.mu

    def sample(self) -> torch.Tensor:
        """Advance the process one step and return the new state (a copy)."""
        eps = torch.randn(self.state.shape, generator=self.generator)
        self.state = (
            self.state
            + self.theta * (self.mu - self.state) * self.dt
            + self.sigma * (self.dt**0.5) * eps
        )
        return self.state.clone()

    def state_dict(self) -> dict[str, Any]:
        """The process state and its generator state (for resuming)."""
        return {"state": self.state.clone(), "generator": self.generator.get_state()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        self.state = state["state"].clone()
        self.generator.set_state(state["generator"])
