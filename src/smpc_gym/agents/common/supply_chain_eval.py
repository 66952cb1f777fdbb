"""Evaluate SupplyChain policies on the batched game, over a fixed evaluation seed.

A *batched policy* maps the game's private features ``(B, 2, 5)`` (float32, row b =
episode b, index 1 = player) to actions ``(B, 2, 2)`` = ``(price, quantity)`` per player;
:meth:`smpc_gym.agents.maddpg.MADDPG.policy` is one. All policies evaluated with the same
``seed`` and ``episodes`` face the same initial stocks and the same demand noise (the
game draws both from its generator independently of the actions), so comparisons are on
common random numbers.

Metric names follow ``eval.json`` (agents.md): per player ``reward``, ``wastage_units``,
``wastage_cost``, ``ncr``; NCR_i = Σ_t r_i − Σ_t waste cost_i (the game's definition).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from smpc_gym.envs.supply_chain.game import SupplyChainConfig, SupplyChainGame

AGENTS = ("player_0", "player_1")
PLAYER_METRICS = ("reward", "wastage_units", "wastage_cost", "ncr")

BatchedPolicy = Callable[[np.ndarray], np.ndarray]


def run_episodes(
    policy: BatchedPolicy, env_kwargs: Mapping[str, Any], episodes: int, seed: int
) -> dict[str, np.ndarray]:
    """Play ``episodes`` episodes at once; per-episode arrays ``{"<metric>_<i>": (E,)}``."""
    fields = SupplyChainConfig.field_names()
    cfg = SupplyChainConfig.from_mapping({k: v for k, v in env_kwargs.items() if k in fields})
    game = SupplyChainGame(cfg, int(episodes))
    rng = np.random.default_rng(int(seed))
    game.reset(rng)
    while True:
        result = game.step(np.asarray(policy(game.observations()), dtype=np.float64), rng)
        if result.truncated.all():
            break
    out: dict[str, np.ndarray] = {}
    for i in range(2):
        out[f"reward_{i}"] = result.cum_reward[:, i].copy()
        out[f"wastage_units_{i}"] = result.cum_waste[:, i].copy()
        out[f"wastage_cost_{i}"] = result.cum_waste_cost[:, i].copy()
        out[f"ncr_{i}"] = result.ncr[:, i].copy()
    return out


def summarize(per_episode: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Means in the ``eval.json`` layout, totals, and 95% half-widths of the totals.

    Returns ``{"episodes", "mean_return", "std_return", "players": {agent: {reward,
    wastage_units, wastage_cost, ncr}}, "total_reward", "total_ncr",
    "total_wastage_units", "total_wastage_cost", "ci95": {"total_<metric>": ...}}``;
    the return of an episode is both players' summed reward.
    """
    total = {m: per_episode[f"{m}_0"] + per_episode[f"{m}_1"] for m in PLAYER_METRICS}
    n = len(total["reward"])

    def ci(x: np.ndarray) -> float:
        return float(1.96 * x.std(ddof=1) / np.sqrt(len(x))) if len(x) > 1 else 0.0

    return {
        "episodes": n,
        "mean_return": float(total["reward"].mean()),
        "std_return": float(total["reward"].std()),
        "players": {
            a: {m: float(per_episode[f"{m}_{i}"].mean()) for m in PLAYER_METRICS}
            for i, a in enumerate(AGENTS)
        },
        "total_reward": float(total["reward"].mean()),
        "total_ncr": float(total["ncr"].mean()),
        "total_wastage_units": float(total["wastage_units"].mean()),
        "total_wastage_cost": float(total["wastage_cost"].mean()),
        "ci95": {f"total_{m}": ci(total[m]) for m in PLAYER_METRICS},
    }


def evaluate(
    policy: BatchedPolicy, env_kwargs: Mapping[str, Any], episodes: int = 100, seed: int = 12345
) -> dict[str, Any]:
    """:func:`run_episodes` then :func:`summarize`."""
    return summarize(run_episodes(policy, env_kwargs, episodes, seed))


def per_player(policies: tuple[Callable[[np.ndarray], np.ndarray], ...]) -> BatchedPolicy:
    """A batched policy from one ``(B, 5) -> (B, 2)`` policy per player."""

    def policy(obs: np.ndarray) -> np.ndarray:
        return np.stack([np.asarray(policies[i](obs[:, i])) for i in range(2)], axis=1)

    return policy


def random_policy(env_kwargs: Mapping[str, Any], seed: int) -> BatchedPolicy:
    """The env's uniform random baseline for both players (one seeded generator)."""
    from smpc_gym.envs.supply_chain.policies import UniformRandomPolicy

    fields = SupplyChainConfig.field_names()
    cfg = SupplyChainConfig.from_mapping({k: v for k, v in env_kwargs.items() if k in fields})
    rng = np.random.default_rng(int(seed))
    return per_player(tuple(UniformRandomPolicy(i, rng, cfg) for i in range(2)))


def myopic_policy() -> BatchedPolicy:
    """The env's myopic benchmark: price_0 = 10, price_1 = 15, both order 5 per step."""
    from smpc_gym.envs.supply_chain.policies import MyopicPolicy

    return per_player(tuple(MyopicPolicy(i) for i in range(2)))
