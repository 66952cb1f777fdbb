"""Baseline SupplyChain policies over per-agent observations (numpy only).

* :class:`UniformRandomPolicy` — uniform over the player's action box, seeded generator.
* :class:`MyopicPolicy` / :func:`myopic_action` — the myopic pricing benchmark:
  ``price_0 = 10, price_1 = 15``, both players order 5 units every step.

* :func:`evaluate_batched` — many episodes of a policy pair at once on the batched game.
* :class:`JointPolicy` / :func:`baseline_policy` — both players' policies as one
  ``{player: obs} -> {player: action}`` map (what the ``random`` and ``heuristic``
  baseline algorithms play, through :mod:`smpc_gym.envs.registry`).

Both policies accept one observation ``(5,)`` or a batch ``(B, 5)`` and return ``(2,)`` or
``(B, 2)`` float32 actions ``(price, quantity)``.

Myopic benchmark: expected per-step rewards (default parameters)
-----------------------------------------------------------------
Idealized steady state: player 0 buys 5 and ships 5; demand is
``D = max(0, 20 - 15 + eps) ~ 5`` and player 1 sells 5. Then

* ``r_0 = price_0 * x - raw_cost * q_0 = 10 * 5 - 0.5 * 5 = 47.5``
* ``r_1 = price_1 * y - price_0 * x = 15 * 5 - 10 * 5 = 25``.

Why the realized 40-step means differ (``tests/test_supply_chain_env.py`` checks these):

1. **Player 0's stock limit, step 1.** ``x_1 = min(5, stock_0)`` with
   ``stock_0 ~ U(0, 10)``; afterwards ``stock_0`` is >= 5 forever (ship 5, buy 5), so
   every later ``x_t = 5``. ``E[5 - x_1] = P(s < 5) * E[5 - s | s < 5] = 0.5 * 2.5 = 1.25``
   units, so exactly ``E[r_0] = 47.5 - 10 * 1.25 / 40 = 47.1875`` per step, and per episode
   ``sum_t r_0 = 40 * 47.5 - 10 * (5 - min(5, stock_0))`` (no noise dependence).
   The missing shipment also *raises* ``r_1`` by ``10 * 1.25 / 40 = 0.3125`` per step.
2. **Player 1's stock limit (lost sales).** Sales are capped by the stock on hand; with
   ``x = 5`` per step and mean demand 5 the stock ``S_t`` is a zero-drift random walk:
   ``W_t = S_t - 5`` obeys ``W_{t+1} = max(W_t - eps_t, 0)`` (a reflected walk) and the
   unmet demand in a step is ``max(eps_t - W_t, 0)``. Total unmet demand ``U``:

   * step 1, ``stock_1 ~ U(0, 10)``: ``E[max(D - s, 0)] ~ E[(5 + eps)^2] / 20 = 1.3``;
   * steps 2..40: ``U = max(0, M - W_2)`` with ``M`` the max of a 39-step N(0, 1) walk,
     ``E[M] ~ sqrt(2 * 39 / pi) - 0.58 = 4.4``, ``E[W_2] ~ 1.25 - 1.25 = 0`` (excess
     initial stock minus the short first shipment), plus a small convexity term: ~4.6.

   So ``E[U] ~ 5.9`` units (we allow 5..7 for the approximations: discrete-walk
   correction, the storage cap, convexity), giving
   ``E[r_1] ~ 25 + 0.3125 - 15 * 5.9 / 40 ~ 23.1`` (band 22.7 .. 23.4).
3. **Demand truncation at 0** adds ``E[max(0, -(5 + eps))] ~ 1e-7``: negligible here,
   but it makes the mean demand slightly above ``A - B * price_1`` at high prices.
4. **Noise** only enters ``r_1`` (through sales); the per-episode standard deviation of
   the per-step mean is ~1.8 for ``r_1`` and ~0.4 for ``r_0`` (from ``stock_0``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from smpc_gym.envs.supply_chain.game import PLAYER_NAMES, SupplyChainConfig, SupplyChainGame

#: The myopic benchmark's action ``(price, quantity)`` per player.
MYOPIC_ACTIONS: dict[str, tuple[float, float]] = {
    "player_0": (10.0, 5.0),
    "player_1": (15.0, 5.0),
}


def _player_index(agent: str | int) -> int:
    if isinstance(agent, str):
        if agent not in PLAYER_NAMES:
            raise ValueError(f"agent={agent!r} is unknown; use one of {list(PLAYER_NAMES)}")
        return PLAYER_NAMES.index(agent)
    if agent not in (0, 1):
        raise ValueError(f"agent={agent!r} is unknown; use 0, 1 or {list(PLAYER_NAMES)}")
    return int(agent)


def myopic_action(agent: str | int) -> np.ndarray:
    """The myopic benchmark's action for ``agent``: ``[10, 5]`` (player 0) or ``[15, 5]``."""
    return np.array(MYOPIC_ACTIONS[PLAYER_NAMES[_player_index(agent)]], dtype=np.float32)


class MyopicPolicy:
    """The myopic pricing benchmark for one player (ignores the observation).

    ``price_0 = 10``, ``price_1 = 15``, both order 5 units every step; expected per-step
    rewards with the default parameters are ~47.5 and ~25 (derivation and the realized
    47.19 / 23.1 in this module's docstring).
    """

    def __init__(self, agent: str | int) -> None:
        self.agent = PLAYER_NAMES[_player_index(agent)]
        self._action = myopic_action(self.agent)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """Action(s) for one observation ``(5,)`` or a batch ``(B, 5)``."""
        obs = np.asarray(obs)
        if obs.ndim == 1:
            return self._action.copy()
        return np.tile(self._action, (obs.shape[0], 1))


class UniformRandomPolicy:
    """Uniformly random ``(price, quantity)`` in ``[0, p_max[i]] x [0, q_max]``.

    Args:
        agent: ``"player_0"`` / ``"player_1"`` (or 0 / 1).
        rng: the generator to draw from (pass a seeded ``np.random.default_rng(seed)``).
        config: the game config whose caps bound the actions (default parameters if None).
    """

    def __init__(
        self,
        agent: str | int,
        rng: np.random.Generator,
        config: SupplyChainConfig | None = None,
    ) -> None:
        self.index = _player_index(agent)
        self.agent = PLAYER_NAMES[self.index]
        self.rng = rng
        cfg = config if config is not None else SupplyChainConfig()
        self.high = np.array([cfg.p_max[self.index], cfg.q_max])

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """Action(s) for one observation ``(5,)`` or a batch ``(B, 5)``."""
        obs = np.asarray(obs)
        shape = (2,) if obs.ndim == 1 else (obs.shape[0], 2)
        return (self.rng.uniform(0.0, 1.0, size=shape) * self.high).astype(np.float32)


class JointPolicy:
    """Both players at once: ``{player: obs}`` to ``{player: policies[player](obs)}``."""

    def __init__(self, policies: Mapping[str, Callable[[np.ndarray], np.ndarray]]) -> None:
        self.policies = dict(policies)

    def __call__(self, obs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {p: self.policies[p](obs[p]) for p in obs}


def baseline_policy(
    kind: str, env_kwargs: Mapping[str, Any], rng: np.random.Generator, noise: float = 0.0
) -> JointPolicy:
    """``"random"`` (:class:`UniformRandomPolicy` per player, drawing from ``rng``) or
    ``"heuristic"`` (:class:`MyopicPolicy`) for both players; ``noise`` is unused here."""
    if kind == "random":
        cfg = SupplyChainConfig.from_mapping(env_kwargs)
        return JointPolicy({p: UniformRandomPolicy(p, rng, cfg) for p in PLAYER_NAMES})
    if kind == "heuristic":
        return JointPolicy({p: MyopicPolicy(p) for p in PLAYER_NAMES})
    raise ValueError(f"unknown baseline policy {kind!r}; expected 'random' or 'heuristic'")


def evaluate_batched(
    policies: Sequence[Callable[[np.ndarray], np.ndarray]],
    episodes: int = 4000,
    seed: int = 0,
    config: SupplyChainConfig | None = None,
) -> dict[str, float]:
    """Run ``episodes`` full episodes at once on the batched game and summarize them.

    ``policies[i]`` maps player i's observations ``(B, 5)`` to actions ``(B, 2)``.
    Returns per player i (suffix ``_0`` / ``_1``): ``reward_per_step`` (mean over episodes
    of the per-step mean reward) and its standard error ``reward_per_step_se``, ``ncr``
    (mean normalized cumulative revenue), ``waste`` (mean wasted units per episode),
    ``unmet_demand`` (mean per episode).
    """
    cfg = config if config is not None else SupplyChainConfig()
    game = SupplyChainGame(cfg, batch_size=episodes)
    rng = np.random.default_rng(seed)
    game.reset(rng)
    total = np.zeros((episodes, 2))
    unmet = np.zeros((episodes, 2))
    result = None
    for _ in range(cfg.max_cycles):
        obs = game.observations()
        actions = np.stack([policies[i](obs[:, i]) for i in range(2)], axis=1)
        result = game.step(actions, rng)
        total += result.reward
        unmet += result.unmet_demand
    assert result is not None
    per_step = total / cfg.max_cycles
    se = per_step.std(axis=0, ddof=1) / np.sqrt(episodes) if episodes > 1 else np.zeros(2)
    out: dict[str, float] = {}
    for i in range(2):
        out[f"reward_per_step_{i}"] = float(per_step[:, i].mean())
        out[f"reward_per_step_se_{i}"] = float(se[i])
        out[f"ncr_{i}"] = float(result.ncr[:, i].mean())
        out[f"waste_{i}"] = float(game.cum_waste[:, i].mean())
        out[f"unmet_demand_{i}"] = float(unmet[:, i].mean())
    return out
