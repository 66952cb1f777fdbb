"""Baselines for both environments: ``random`` and ``heuristic`` (scripted).

Neither learns. Their :meth:`train` just *runs* the fixed policy for the requested
number of env steps and logs what it scores (``episode_return`` etc.), so a baseline run
has the same run folder, CSV and learning-curve plot as a learner — a flat line to
compare against — and it exercises checkpoints and ``--resume`` cheaply.

* ``random`` — GreedyMouse: a uniform random action; SupplyChain: each player's
  ``(price, quantity)`` uniform in its action box. Draws come from the agent's own
  ``np.random.Generator`` (seeded by the run seed), so evaluation is reproducible.
* ``heuristic`` — GreedyMouse: *greedy to the cheese, away from the cat*. It looks two
  moves ahead: for each action it predicts the cat's reply (the cat follows the map's
  shortest-path table, as the env does), discards moves that get the mouse eaten or leave
  it no safe move next step, then heads for the cell closest (by BFS distance) to the
  cheese, preferring distance from the cat and free space on ties; a small random
  jitter (``noise``) breaks the loops a purely greedy chase gets stuck in. It reads the mouse,
  cat and cheese positions from the ``global`` observation (so it runs with
  ``obs_mode="global"``, which :meth:`HeuristicAgent.env_kwargs_for` sets) and the map
  from its env kwargs (``map``, ``directions``, ``cut_corners``), i.e. the same
  information the env's own cat uses. SupplyChain: the myopic pricing benchmark of the
  spec (price_0 = 10, price_1 = 15, both order 5 per step), i.e.
  :class:`smpc_gym.envs.supply_chain.policies.MyopicPolicy`; ``random`` there uses
  :class:`~smpc_gym.envs.supply_chain.policies.UniformRandomPolicy` with the agent's
  generator.

Both support every env (``envs = ("greedy_mouse", "supply_chain")``); which one they
play is their Config's ``env`` field, which the runner fills from ``--env``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from smpc_gym.agents.base import ENV_NAMES, Algorithm, TrainHooks, numpy_generator
from smpc_gym.agents.common.cadence import Cadence


@dataclass
class BaselineConfig:
    """Config of the ``random`` and ``heuristic`` baselines.

    Attributes:
        env: the env played, ``"greedy_mouse"`` or ``"supply_chain"`` (the runner sets
            it from ``--env``).
        log_every: env steps between logged rows during :meth:`train`.
        noise: ``heuristic`` on GreedyMouse only: scale of a uniform random jitter added
            to the action scores (drawn from the agent's generator). A purely greedy
            chase falls into deterministic loops around obstacles; the jitter breaks
            them (on the classic map 1.5 roughly doubles cheese per 1,000 steps vs 0).
            0 makes the heuristic deterministic.
    """

    env: str = "greedy_mouse"
    log_every: int = 1000
    noise: float = 1.5

    def __post_init__(self) -> None:
        if self.env not in ENV_NAMES:
            raise ValueError(f"env: bad value {self.env!r}; expected one of {list(ENV_NAMES)}")
        if self.noise < 0:
            raise ValueError(f"noise: bad value {self.noise!r}; expected a float >= 0")
        if self.log_every < 1:
            raise ValueError(f"log_every: bad value {self.log_every!r}; expected an int >= 1")


def greedy_mouse_heuristic_action(
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


class _Baseline(Algorithm):
    """Shared rollout / logging / state code of the two baselines."""

    envs = ENV_NAMES
    Config = BaselineConfig
    config: BaselineConfig

    def __init__(self, config: BaselineConfig, env_kwargs: Mapping[str, Any], seed: int) -> None:
        super().__init__(config, env_kwargs, seed)
        self.env_name = config.env
        self.rng = numpy_generator(seed)
        self.episodes_done = 0
        if self.env_name == "supply_chain":
            from smpc_gym.envs.supply_chain.game import PLAYER_NAMES, SupplyChainConfig

            self.game_config = SupplyChainConfig.from_mapping(self.env_kwargs)
            self.players = list(PLAYER_NAMES)
        else:
            self.n_actions = int(self.env_kwargs.get("directions", 8))

    @classmethod
    def env_kwargs_for(cls, env: str, env_kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """The env kwargs this baseline needs on top of ``env_kwargs``."""
        return dict(env_kwargs)

    # -- training = running the fixed policy ------------------------------------------
    def train(self, total_steps: int, hooks: TrainHooks) -> None:
        """Run the policy until ``env_steps >= total_steps``, logging every ``log_every``
        steps ``episode_return`` (mean over episodes finished since the last row; NaN if
        none) and ``episodes``, plus GreedyMouse: ``cheese_per_1000_steps``,
        ``deaths_per_1000_steps``; SupplyChain: ``reward_per_step``, ``total_reward``
        (= ``episode_return``), ``total_ncr``, ``total_wastage_units`` (both players,
        per episode; the names MADDPG/NDS use). No learning happens."""
        if self.env_name == "supply_chain":
            self._run_supply_chain(total_steps, hooks)
        else:
            self._run_greedy_mouse(total_steps, hooks)

    def _row(self, window: dict[str, Any], extra: Mapping[str, float]) -> dict[str, float]:
        rets = window["returns"]
        return {
            "episode_return": float(np.mean(rets)) if rets else math.nan,
            "episodes": float(self.episodes_done),
            **extra,
        }

    def _run_greedy_mouse(self, total_steps: int, hooks: TrainHooks) -> None:
        import gymnasium as gym

        import smpc_gym  # noqa: F401 - registers GreedyMouse-v0

        env = gym.make("GreedyMouse-v0", **self.env_kwargs)
        obs, _ = env.reset(seed=self.seed + self.env_steps)
        ep_return = 0.0
        window: dict[str, Any] = {"returns": [], "steps": 0, "cheese": 0, "deaths": 0}
        cadence = Cadence(hooks, self.config.log_every, self.env_steps, total_steps)

        def row() -> dict[str, float]:
            n = max(window["steps"], 1)
            out = self._row(
                window,
                {
                    "cheese_per_1000_steps": 1000.0 * window["cheese"] / n,
                    "deaths_per_1000_steps": 1000.0 * window["deaths"] / n,
                },
            )
            window.update(returns=[], steps=0, cheese=0, deaths=0)
            return out

        try:
            while self.env_steps < total_steps:
                obs, reward, terminated, truncated, info = env.step(self.act(obs))
                self.env_steps += 1
                ep_return += float(reward)
                window["steps"] += 1
                window["cheese"] += int(info.get("cheese_eaten", 0))
                window["deaths"] += int(info.get("eaten", 0))
                if terminated or truncated:
                    window["returns"].append(ep_return)
                    self.episodes_done += 1
                    ep_return = 0.0
                    obs, _ = env.reset()
                if cadence.after_step(self.env_steps, row):
                    break
        finally:
            env.close()

    def _run_supply_chain(self, total_steps: int, hooks: TrainHooks) -> None:
        from smpc_gym import supply_chain_v0

        env = supply_chain_v0.parallel_env(**self.env_kwargs)
        obs, _ = env.reset(seed=self.seed + self.env_steps)
        ep_return, ep_waste = 0.0, 0.0

        def fresh() -> dict[str, Any]:
            return {"returns": [], "ncr": [], "waste": [], "reward": 0.0, "steps": 0}

        window = fresh()
        cadence = Cadence(hooks, self.config.log_every, self.env_steps, total_steps)

        def row() -> dict[str, float]:
            done = bool(window["returns"])
            extra = {
                "reward_per_step": window["reward"] / max(window["steps"], 1),
                # the names MADDPG/NDS log, so their curves plot side by side
                "total_reward": float(np.mean(window["returns"])) if done else math.nan,
                "total_ncr": float(np.mean(window["ncr"])) if done else math.nan,
                "total_wastage_units": float(np.mean(window["waste"])) if done else math.nan,
            }
            out = self._row(window, extra)
            window.update(fresh())
            return out

        try:
            while self.env_steps < total_steps:
                obs, rewards, _, _, infos = env.step(self.act(obs))
                self.env_steps += 1
                step_reward = float(sum(rewards.values()))
                ep_return += step_reward
                ep_waste += sum(float(i.get("units_wasted", 0.0)) for i in infos.values())
                window["reward"] += step_reward
                window["steps"] += 1
                if not env.agents:
                    window["returns"].append(ep_return)
                    window["ncr"].append(sum(float(i["ncr"]) for i in infos.values()))
                    window["waste"].append(ep_waste)
                    self.episodes_done += 1
                    ep_return, ep_waste = 0.0, 0.0
                    obs, _ = env.reset()
                if cadence.after_step(self.env_steps, row):
                    break
        finally:
            env.close()

    # -- state --------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Env-step and episode counters and the generator state."""
        return {
            "env_steps": self.env_steps,
            "episodes_done": self.episodes_done,
            "rng": self.rng.bit_generator.state,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.env_steps = int(state["env_steps"])
        self.episodes_done = int(state["episodes_done"])
        self.rng.bit_generator.state = dict(state["rng"])


class RandomAgent(_Baseline):
    """``random``: uniform random actions (see the module docstring)."""

    name = "random"

    def __init__(self, config: BaselineConfig, env_kwargs: Mapping[str, Any], seed: int) -> None:
        super().__init__(config, env_kwargs, seed)
        if self.env_name == "supply_chain":
            from smpc_gym.envs.supply_chain.policies import UniformRandomPolicy

            # the env package's own uniform policy, drawing from this agent's generator
            self.policies = {
                p: UniformRandomPolicy(p, self.rng, self.game_config) for p in self.players
            }

    def act(self, obs: Any, deterministic: bool = True) -> Any:
        """A uniform random action (``deterministic`` is ignored: this policy is random)."""
        if self.env_name == "supply_chain":
            return {p: self.policies[p](obs[p]) for p in obs}
        return int(self.rng.integers(self.n_actions))


class HeuristicAgent(_Baseline):
    """``heuristic``: the scripted policy (see the module docstring)."""

    name = "heuristic"

    def __init__(self, config: BaselineConfig, env_kwargs: Mapping[str, Any], seed: int) -> None:
        env_kwargs = dict(env_kwargs)
        if config.env == "greedy_mouse":
            mode = env_kwargs.setdefault("obs_mode", "global")
            if mode != "global":
                raise ValueError(
                    f"heuristic on greedy_mouse reads the global observation; got "
                    f"obs_mode={mode!r} (use obs_mode=global)"
                )
        super().__init__(config, env_kwargs, seed)
        if self.env_name == "greedy_mouse":
            from smpc_gym.envs.greedy_mouse.maps import load_map

            self.grid = load_map(self.env_kwargs.get("map", "classic"))
            topo = self.grid.topology(
                int(self.env_kwargs.get("directions", 8)),
                bool(self.env_kwargs.get("cut_corners", True)),
            )
            self.move, self.next_hop, self.dist = topo.move, topo.next_hop, topo.dist
        else:
            from smpc_gym.envs.supply_chain.policies import MyopicPolicy

            self.policies = {p: MyopicPolicy(p) for p in self.players}

    @classmethod
    def env_kwargs_for(cls, env: str, env_kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """GreedyMouse: ``env_kwargs`` with ``obs_mode="global"``."""
        out = dict(env_kwargs)
        if env == "greedy_mouse":
            out["obs_mode"] = "global"
        return out

    def act(self, obs: Any, deterministic: bool = True) -> Any:
        """The scripted action (GreedyMouse: jittered by ``config.noise``, see there)."""
        if self.env_name == "supply_chain":
            return {p: self.policies[p](obs[p]) for p in obs}
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
        return greedy_mouse_heuristic_action(
            self.move, self.next_hop, self.dist, mouse, cat, cheese, self.rng, self.config.noise
        )
