"""PettingZoo ``ParallelEnv`` for the two-player SupplyChain game (thin over ``game.py``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding
from pettingzoo import ParallelEnv

from smpc_gym.envs.options import check_reset_options
from smpc_gym.envs.supply_chain.game import (
    OBS_DIM,
    PLAYER_NAMES,
    ScalarStep,
    ScalarSupplyChainGame,
    SupplyChainConfig,
)


class SupplyChainParallelEnv(ParallelEnv):
    """Two-echelon supply chain: an upstream and a downstream player set prices and orders.

    Player 0 (``player_0``, upstream, e.g. a manufacturer) buys raw material and sells goods
    to player 1 (``player_1``, downstream, e.g. a retailer), who sells to consumers. Each
    player's inventory, costs and demand signals are its own private data. This follows the
    two-player game of Mukherjee et al. (2023), "Privacy Preserving Multi-Agent
    Reinforcement Learning in Supply Chains", built on Li, Ratliff and Kumar (2022).

    ## Parameters (keyword arguments, defaults = the paper's Appendix I setting)
    ``p_max=(10, 18)`` price caps, ``q_max=20`` order cap, ``raw_cost=0.5``,
    ``demand_intercept=20`` (A), ``demand_slope=1`` (B), ``demand_noise=1`` (sigma),
    ``storage_cap=20``, ``perishable=False``, ``initial_stock=(0, 10)`` (each player's
    initial stock ~ U(low, high)), ``max_cycles=40``; plus ``render_mode``. They are the
    fields of :class:`~smpc_gym.envs.supply_chain.game.SupplyChainConfig` (also accepted
    whole as ``config=``); unknown names or invalid values raise ``ValueError`` naming them.
    Presets: ``envs/supply_chain.yaml`` (``default``, ``perishable``).

    ## Action space
    Player i: ``Box(low=[0, 0], high=[p_max[i], q_max], float32)`` = ``(price_i,
    quantity_i)``. price_0 is what player 0 charges player 1 per unit; price_1 is the
    consumer price; quantity_0 is the raw material player 0 buys; quantity_1 is what player 1
    orders from player 0. Out-of-range values are clipped and counted in
    ``info[agent]["clipped"]`` (components clipped this step) and ``["clipped_total"]``
    (this episode). NaN / inf raise ``ValueError`` naming the player; a wrong shape
    (anything but ``(2,)``) raises ``ValueError``; a non-numeric dtype raises ``TypeError``;
    a missing live agent or an unknown agent in the action dict raises ``ValueError``.

    ## Dynamics (one step, both players act at once)
    1. Demand ``D_t = max(0, A - B * price_1 + sigma * eps_t)``, ``eps_t ~ N(0, 1)``.
    2. Shipped ``x_t = min(quantity_1, stock_0)`` (player 0 cannot ship what it lacks).
    3. Sold ``y_t = min(D_t, stock_1)`` (from the stock on hand at the start of the step).
    4. Rewards ``r_0 = price_0 * x_t - raw_cost * quantity_0``,
       ``r_1 = price_1 * y_t - price_0 * x_t`` (unscaled; agents scale them).
    5. Stock ``stock_0 <- stock_0 - x_t + quantity_0``, ``stock_1 <- stock_1 - y_t + x_t``:
       purchases arrive after sales (a one-step lead time).
    6. Waste: if ``perishable``, the unsold stock on hand (``stock_0 - x_t``,
       ``stock_1 - y_t``) is discarded before the new units arrive; then stock above
       ``storage_cap`` is discarded; after the last step all leftover stock is discarded.
       Waste cost: player 0 pays ``raw_cost`` per unit; player 1 the ``price_0`` it paid
       for the unit: over-cap waste is always part of the shipment that just arrived
       (carried stock is <= cap) and costs this step's ``price_0``; perishable and
       end-of-episode waste costs the moving weighted-average ``price_0`` of the units on
       hand (player 1's initial stock counts at 0: it was not bought in the episode).

    ## Observations (private, per player)
    ``observation_space(agent) = Box(0, 1, (5,), float32)`` (the same object every call);
    features are scaled by their cap and clipped to [0, 1]; "last" values are 0 after reset.

    - player_0: ``[stock_0 / storage_cap, price_0(t-1) / p_max_0, quantity_0(t-1) / q_max,
      raw_cost / p_max_0, quantity_1(t-1) / q_max]`` (the last order received).
    - player_1: ``[stock_1 / storage_cap, price_1(t-1) / p_max_1, quantity_1(t-1) / q_max,
      price_0(t-1) / p_max_0, D(t-1) / (A + 3 sigma)]`` (last unit price paid, last demand).

    ``state()`` returns the 10-vector ``[obs_0, obs_1]`` (``state_space = Box(0, 1, (10,))``):
    the explicit-data-exchange view and the only joint view the env offers. Player 1 still
    learns something about player 0's stock from the goods it receives (``x_t`` is physical
    flow, not shared data); each ``info[agent]`` holds only that agent's own figures.

    ## Starting state
    Each player's stock ~ ``U(initial_stock)`` from the env's generator (seed via
    ``reset(seed=...)``); ``reset(options={"initial_stock": (s0, s1)})`` sets it exactly
    (other option keys are ignored). All "last" features start at 0.

    ## Episode end
    No termination; every agent is truncated after ``max_cycles`` steps (default 40), then
    ``agents`` is empty. Leftover stock is wasted at that last step.

    ## Info (per agent, after every step; its own figures only)
    ``revenue`` (player 0: ``price_0 * x``; player 1: ``price_1 * y``), ``cost`` (player 0:
    ``raw_cost * quantity_0``; player 1: ``price_0 * x``), ``units_sold`` (``x`` / ``y``),
    ``units_received`` (``quantity_0`` / ``x``), ``units_wasted`` (all waste this step),
    ``leftover`` (the end-of-episode part of it), ``waste_cost``, ``unmet_demand``
    (player 0: ``quantity_1 - x``, the order it could not fill; player 1: ``D - y``),
    ``clipped``, ``clipped_total``, ``cum_reward``, ``cum_waste``, ``cum_waste_cost``; at
    the final step also ``ncr`` = normalized cumulative revenue
    ``NCR_i = sum_t r_i - sum_t waste_cost_i``.

    ## Rendering
    ``ansi``: a table of the current step (returned as a string). ``rgb_array`` / ``human``:
    a pygame dashboard (stock bars, prices, demand, cumulative revenue and waste per
    player); pygame is imported only when rendering.

    ## Version history
    * v0: initial version.
    """

    metadata: dict[str, Any] = {
        "name": "supply_chain_v0",
        "render_modes": ["human", "rgb_array", "ansi"],
        "render_fps": 4,
        "is_parallelizable": True,
    }

    def __init__(
        self,
        render_mode: str | None = None,
        config: SupplyChainConfig | None = None,
        **params: Any,
    ) -> None:
        if config is not None and params:
            raise ValueError(f"pass either config= or parameters, not both (got {sorted(params)})")
        if config is not None and not isinstance(config, SupplyChainConfig):
            valid = ", ".join(SupplyChainConfig.field_names())
            raise TypeError(
                f"supply_chain_v0: config must be a SupplyChainConfig or None, got "
                f"{type(config).__name__} {config!r}; or pass parameters as keywords "
                f"(valid: {valid})"
            )
        self.config = config if config is not None else SupplyChainConfig.from_mapping(params)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode={render_mode!r} is not supported; "
                f"use one of {self.metadata['render_modes']} or None"
            )
        self.render_mode = render_mode
        self.possible_agents = list(PLAYER_NAMES)
        self.agents: list[str] = []
        self._index = {name: i for i, name in enumerate(PLAYER_NAMES)}
        self._obs_space = spaces.Box(0.0, 1.0, (OBS_DIM,), np.float32)
        self._observation_spaces = {a: self._obs_space for a in self.possible_agents}
        self._action_spaces = {
            a: spaces.Box(
                low=np.zeros(2, np.float32),
                high=np.array([self.config.p_max[i], self.config.q_max], np.float32),
                dtype=np.float32,
            )
            for i, a in enumerate(self.possible_agents)
        }
        self.state_space = spaces.Box(0.0, 1.0, (2 * OBS_DIM,), np.float32)
        self.game = ScalarSupplyChainGame(self.config)
        self.np_random, self.np_random_seed = seeding.np_random(None)
        self.last_step: ScalarStep | None = None
        self.history: list[ScalarStep] = []
        self._renderer: Any = None

    # -------------------------------------------------------------- spaces
    def observation_space(self, agent: str) -> spaces.Box:
        """``Box(0, 1, (5,), float32)``, the same object for every call and agent."""
        return self._observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Box:
        """``Box([0, 0], [p_max[i], q_max], float32)``, the same object every call."""
        return self._action_spaces[agent]

    @property
    def max_cycles(self) -> int:
        """Steps per episode (``config.max_cycles``); assigning validates and replaces it."""
        return self.config.max_cycles

    @max_cycles.setter
    def max_cycles(self, value: int) -> None:
        self.config = self.config.replace(max_cycles=value)
        self.game.config = self.config

    # -------------------------------------------------------------- API
    def _observations(self) -> dict[str, np.ndarray]:
        g = self.game
        return {"player_0": g.observation(0), "player_1": g.observation(1)}

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, dict[str, Any]]]:
        """Start an episode. ``options={"initial_stock": (s0, s1)}`` fixes the stocks.

        Raises:
            TypeError: ``options`` is neither a dict nor ``None``.
            ValueError: an unknown option key (the closest valid one is suggested; the
                key ``"options"`` that PettingZoo's API tests pass is ignored) or bad stocks.
        """
        options = check_reset_options(
            "supply_chain_v0", options, ("initial_stock",), ignored=("options",)
        )
        if seed is not None:
            self.np_random, self.np_random_seed = seeding.np_random(seed)
        initial = options.get("initial_stock")
        self.game.reset(self.np_random, initial_stock=initial)
        self.agents = list(self.possible_agents)
        self.last_step = None
        self.history = []
        if self.render_mode == "human":
            self.render()
        return self._observations(), {a: {} for a in self.agents}

    def step(
        self, actions: Mapping[str, Any]
    ) -> tuple[
        dict[str, np.ndarray],
        dict[str, float],
        dict[str, bool],
        dict[str, bool],
        dict[str, dict[str, Any]],
    ]:
        """Both players act at once; returns ``(obs, rewards, terms, truncs, infos)``."""
        if not self.agents:
            raise RuntimeError("the episode is over (no live agents); call reset()")
        missing = [a for a in self.agents if a not in actions]
        unknown = [a for a in actions if a not in self._index]
        if missing or unknown:
            raise ValueError(
                f"actions must have one entry per live agent {self.agents}; "
                f"missing {missing}, unknown {unknown}"
            )
        g = self.game
        res = g.step(actions["player_0"], actions["player_1"], self.np_random)
        self.last_step = res
        if self.render_mode in ("rgb_array", "human"):
            self.history.append(res)  # only the dashboard's chart needs the history
        received = (g.last_quantity[0], res.shipped)
        sold = (res.shipped, res.sold)
        infos: dict[str, dict[str, Any]] = {}
        for i, agent in enumerate(PLAYER_NAMES):
            info = {
                "revenue": res.revenue[i],
                "cost": res.cost[i],
                "units_sold": sold[i],
                "units_received": received[i],
                "units_wasted": res.wasted[i],
                "leftover": res.leftover[i],
                "waste_cost": res.waste_cost[i],
                "unmet_demand": res.unmet_demand[i],
                "clipped": res.clipped[i],
                "clipped_total": res.clipped_total[i],
                "cum_reward": g.cum_reward[i],
                "cum_waste": g.cum_waste[i],
                "cum_waste_cost": g.cum_waste_cost[i],
            }
            if res.truncated:
                info["ncr"] = res.ncr[i]
            infos[agent] = info
        obs = self._observations()
        rewards = {"player_0": res.reward[0], "player_1": res.reward[1]}
        trunc = res.truncated
        terminations = {a: False for a in self.agents}
        truncations = {a: trunc for a in self.agents}
        if trunc:
            self.agents = []
        if self.render_mode == "human":
            self.render()
        return obs, rewards, terminations, truncations, infos

    def state(self) -> np.ndarray:
        """The 10-vector ``[obs_0, obs_1]`` (float32): the explicit-data-exchange view."""
        g = self.game
        return np.concatenate((g.observation(0), g.observation(1)))

    # -------------------------------------------------------------- rendering
    def render(self) -> str | np.ndarray | None:
        """``ansi``: the step table (str); ``rgb_array``: an (H, W, 3) uint8 frame;
        ``human``: draws the dashboard in a window (returns None)."""
        from smpc_gym.envs.supply_chain import render as _render

        if self.render_mode is None:
            return None
        if self.render_mode == "ansi":
            return _render.ansi_table(self.config, self.game, self.last_step)
        if self._renderer is None:
            self._renderer = _render.Dashboard(self.config, self.render_mode, self.metadata)
        return self._renderer.draw(self.game, self.last_step, self.history)

    def close(self) -> None:
        """Close the pygame window / surface if one was opened."""
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
