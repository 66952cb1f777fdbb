"""Baselines for every env: ``random`` and ``heuristic`` (scripted).

Neither learns. Their :meth:`train` just *runs* the fixed policy for the requested
number of env steps and logs what it scores (``episode_return`` etc.), so a baseline run
has the same run folder, CSV and learning-curve plot as a learner — a flat line to
compare against — and it exercises checkpoints and ``--resume`` cheaply.

The policies and the run loop are the env's own, reached through its
:class:`~smpc_gym.envs.registry.EnvSpec` (``baseline_policy``, ``run_policy``):

* ``random`` — GreedyMouse: a uniform random action; SupplyChain: each player's
  ``(price, quantity)`` uniform in its action box. Draws come from the agent's own
  ``np.random.Generator`` (seeded by the run seed), so evaluation is reproducible.
* ``heuristic`` — GreedyMouse: *greedy to the cheese, away from the cat*, a two-move
  lookahead on the ``global`` observation (so it runs with ``obs_mode="global"``, which
  :meth:`HeuristicAgent.env_kwargs_for` sets), documented in
  :mod:`smpc_gym.envs.greedy_mouse.policies`; its random jitter is ``config.noise``.
  SupplyChain: the myopic pricing benchmark of the spec (price_0 = 10, price_1 = 15, both
  order 5 per step), :class:`smpc_gym.envs.supply_chain.policies.MyopicPolicy`.

Both support every env (``envs = ENV_NAMES``); which one they play is their Config's
``env`` field, which the runner fills from ``--env``.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import closing
from dataclasses import dataclass
from typing import Any

from smpc_gym.agents.base import Algorithm, TrainHooks, numpy_generator
from smpc_gym.agents.common.cadence import Cadence
from smpc_gym.envs.greedy_mouse.policies import heuristic_action as greedy_mouse_heuristic_action
from smpc_gym.envs.registry import ENV_NAMES, get_env_spec

__all__ = ["BaselineConfig", "HeuristicAgent", "RandomAgent", "greedy_mouse_heuristic_action"]


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


class _Baseline(Algorithm):
    """Shared rollout / logging / state code of the two baselines: the env's own
    ``baseline_policy`` named :attr:`name`, run by the env's ``run_policy``."""

    envs = ENV_NAMES
    Config = BaselineConfig
    config: BaselineConfig

    def __init__(self, config: BaselineConfig, env_kwargs: Mapping[str, Any], seed: int) -> None:
        self.spec = get_env_spec(config.env)
        env_kwargs = {**self.spec.policy_env_kwargs(self.name), **env_kwargs}
        super().__init__(config, env_kwargs, seed)
        self.env_name = config.env
        self.rng = numpy_generator(seed)
        self.episodes_done = 0
        self.policy = self.spec.baseline_policy(self.name, self.env_kwargs, self.rng, config.noise)

    @classmethod
    def env_kwargs_for(cls, env: str, env_kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """``env_kwargs`` with what this baseline's policy needs on ``env`` (the
        heuristic on GreedyMouse: ``obs_mode="global"``)."""
        return {**env_kwargs, **get_env_spec(env).policy_env_kwargs(cls.name)}

    def act(self, obs: Any, deterministic: bool = True) -> Any:
        """The policy's action (``deterministic`` is ignored: a fixed policy; ``random``
        is random and the GreedyMouse heuristic jittered by ``config.noise`` regardless)."""
        return self.policy(obs)

    # -- training = running the fixed policy ------------------------------------------
    def train(self, total_steps: int, hooks: TrainHooks) -> None:
        """Run the policy until ``env_steps >= total_steps``, logging every ``log_every``
        steps ``episode_return`` (mean over episodes finished since the last row; NaN if
        none) and ``episodes``, plus GreedyMouse: ``cheese_per_1000_steps``,
        ``deaths_per_1000_steps``; SupplyChain: ``reward_per_step``, ``total_reward``
        (= ``episode_return``), ``total_ncr``, ``total_wastage_units`` (both players,
        per episode; the names MADDPG/NDS use). No learning happens."""
        steps = self.spec.run_policy(
            self.act,
            self.env_kwargs,
            self.seed + self.env_steps,
            self.env_steps,
            total_steps,
            self.config.log_every,
        )
        # run_policy yields a row every log_every steps; checkpoints (and a Ctrl-C stop)
        # happen on those steps, through the shared Cadence
        cadence = Cadence(hooks, self.config.log_every, self.env_steps, total_steps)
        with closing(steps):
            for step, ended, row in steps:
                self.env_steps = step
                self.episodes_done += ended
                if row is None:
                    continue
                metrics = {
                    "episode_return": row["episode_return"],
                    "episodes": float(self.episodes_done),
                    **row,
                }
                if cadence.after_step(step, metrics.copy, log=True):
                    break

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


class HeuristicAgent(_Baseline):
    """``heuristic``: the scripted policy (see the module docstring)."""

    name = "heuristic"
