"""Scripted GreedyMouse policies: uniform random, and the greedy-to-the-cheese heuristic.

* :class:`RandomPolicy` — a uniform random action from a generator passed in.
* :class:`HeuristicPolicy` / :func:`heuristic_action` — *greedy to the cheese, away from
  the cat*. It looks two moves ahead: for each action it predicts the cat's reply (the cat
  follows the map's shortest-path table, as the env does), discards moves that get the
  mouse eaten or leave it no safe move next step, then heads for the cell closest (by BFS
  distance) to the cheese, preferring distance from the cat and free space on ties; a
  small random jitter (``noise``) breaks the loops a purely greedy chase gets stuck in. It
  reads the mouse, cat and cheese positions from the ``global`` observation (so it needs
  ``obs_mode="global"``: :data:`HEURISTIC_ENV_KWARGS`) and the map from the env kwargs
  (``map``, ``directions``, ``cut_corners``), i.e. the same information the env's own cat
  uses.

:func:`baseline_policy` builds either from its name; the ``random`` and ``heuristic``
baseline algorithms reach it through :mod:`smpc_gym.envs.registry`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from smpc_gym.envs.greedy_mouse.maps import load_map

#: The env kwargs the heuristic needs on top of the run's (it reads the global grid).
HEURISTIC_ENV_KWARGS: dict[str, Any] = {"obs_mode": "global"}


def heuristic_action(
    move: np.ndarray,
    next_hop: np.ndarray,
    dist: np.ndarray,
    mouse: int,
    cat: int,
    cheese: int,
    rng: np.random.Generator | None = None,
    noise: float = 0.0,
) -> int:
    """The scripted GreedyMouse action (two-move lookahead), on free-cell ids.

    ``move``, ``next_hop`` and ``dist`` are the map's :class:`Topology` tables; with
    ``noise > 0`` a jitter uniform in ``[0, noise)`` from ``rng`` is added to the scores.
    """
    n1 = move[mouse]  # (A,) cells after each action
    c1 = next_hop[cat, n1]  # the cat's reply to each
    dead1 = (n1 == cat) | (c1 == n1)
    n2 = move[n1]  # (A, A)
    c2 = next_hop[c1[:, None], n2]
    dead2 = (n2 == c1[:, None]) | (c2 == n2)
    safe_next = (~dead2).sum(axis=1)  # how many safe follow-ups each action leaves
    score = -dist[n1, cheese].astype(np.float64)
    score += np.where(n1 == cheese, 100.0, 0.0)
    score += 0.1 * np.minimum(dist[c1, n1], 6) + 0.01 * safe_next
    if noise > 0 and rng is not None:
        score += noise * rng.random(score.shape[0])
    score -= np.where(safe_next == 0, 1_000.0, 0.0)  # trapped after this move
    score -= np.where(dead1, 10_000.0, 0.0)  # eaten right away
    return int(np.argmax(score))


class RandomPolicy:
    """A uniform random action in ``range(directions)``, drawn from ``rng``."""

    def __init__(self, env_kwargs: Mapping[str, Any], rng: np.random.Generator) -> None:
        self.rng = rng
        self.n_actions = int(env_kwargs.get("directions", 8))

    def __call__(self, obs: Any) -> int:
        return int(self.rng.integers(self.n_actions))


class HeuristicPolicy:
    """The scripted policy of the module docstring, on the ``global`` observation.

    Raises ``ValueError`` if ``env_kwargs`` asks for another observation mode.
    """

    def __init__(
        self, env_kwargs: Mapping[str, Any], rng: np.random.Generator, noise: float = 0.0
    ) -> None:
        mode = env_kwargs.get("obs_mode", "global")
        if mode != "global":
            raise ValueError(
                f"heuristic on greedy_mouse reads the global observation; got "
                f"obs_mode={mode!r} (use obs_mode=global)"
            )
        self.rng = rng
        self.noise = float(noise)
        self.n_actions = int(env_kwargs.get("directions", 8))
        self.grid = load_map(env_kwargs.get("map", "classic"))
        topo = self.grid.topology(self.n_actions, bool(env_kwargs.get("cut_corners", True)))
        self.move, self.next_hop, self.dist = topo.move, topo.next_hop, topo.dist

    def __call__(self, obs: Any) -> int:
        grid = np.asarray(obs)
        cells = []
        for channel in (1, 2, 3):  # mouse, cat, cheese
            rc = np.argwhere(grid[channel] > 0)
            cells.append(int(self.grid.cell_index[rc[0, 0], rc[0, 1]]) if len(rc) else -1)
        mouse, cat, cheese = cells
        if mouse < 0:
            return int(self.rng.integers(self.n_actions))
        if cat < 0:
            cat = mouse
        if cheese < 0:
            cheese = mouse
        return heuristic_action(
            self.move, self.next_hop, self.dist, mouse, cat, cheese, self.rng, self.noise
        )


def baseline_policy(
    kind: str, env_kwargs: Mapping[str, Any], rng: np.random.Generator, noise: float = 0.0
) -> RandomPolicy | HeuristicPolicy:
    """``"random"`` or ``"heuristic"`` (``noise`` is the heuristic's jitter)."""
    if kind == "random":
        return RandomPolicy(env_kwargs, rng)
    if kind == "heuristic":
        return HeuristicPolicy(env_kwargs, rng, noise)
    raise ValueError(f"unknown baseline policy {kind!r}; expected 'random' or 'heuristic'")
