"""Tabular Q-learning on GreedyMouse's local observation.

The mouse sees its 8 neighbours (``obs_mode="local"``, ``lookdist=1``), each coded
empty / wall / cheese / cat; :func:`smpc_gym.envs.greedy_mouse.core.local_state_id`
maps that observation to an integer state id and the agent keeps a
``(num_states, num_actions)`` Q-table.

Update, for a transition ``(s, a, r, s', terminated)``::

    target = r + γ · max_a' Q[s', a'] · (1 − terminated)
    Q[s, a] ← Q[s, a] + α · (target − Q[s, a])

Terminal transitions (eaten with ``respawn=False``) do not bootstrap; time-limit
truncations do (the seed code bootstrapped through deaths and ignored the time limit).

Training runs on ``num_envs`` worlds of the batched vector env at once. When several
worlds hit the same ``(s, a)`` in one vector step their TD errors are averaged and the
step size becomes ``1 − (1 − α)^k`` — exactly what ``k`` sequential updates toward the
same target would do — so adding worlds does not inflate the learning rate.

Exploration is ε-greedy with a linear ε schedule over env steps.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from smpc_gym.agents.base import Algorithm, TrainHooks, numpy_generator
from smpc_gym.agents.common.cadence import Cadence
from smpc_gym.agents.common.schedules import check_exploration_fields, exploration_schedule
from smpc_gym.agents.common.vector_worlds import VectorWorlds
from smpc_gym.envs.registry import get_env_spec


@dataclass
class Config:
    """Tabular Q-learning hyper-parameters.

    Attributes:
        alpha: learning rate α in (0, 1].
        gamma: discount γ in [0, 1).
        eps_start: ε at step 0.
        eps_end: ε once the decay is over (and in ``act(deterministic=False)`` then).
        exploration_fraction: fraction of the run's total env steps over which ε decays
            linearly from ``eps_start`` to ``eps_end`` (as SB3's ``exploration_fraction``).
        eps_decay_steps: if set, the decay lasts this many env steps whatever the run
            length (overrides ``exploration_fraction``); None (default) uses the fraction.
        q_init: initial value of every Q-table entry.
        num_envs: worlds of the vector env stepped together in training.
        log_every: env steps between training-metric rows.
        eval_epsilon: ε used by the runner's evaluation (``smpc_gym.training.evaluate``
            reads this field; recorded in ``eval.json``). A greedy tabular policy on the
            8-cell local view gets stuck in deterministic loops (e.g. walking into a wall
            leaves the observation unchanged), so it is evaluated with a little
            exploration, as the spec allows.
    """

    alpha: float = 0.05
    gamma: float = 0.9
    eps_start: float = 1.0
    eps_end: float = 0.05
    exploration_fraction: float = 1 / 3  # 100,000 of the preset's 300,000 steps
    eps_decay_steps: int | None = None
    q_init: float = 0.0
    num_envs: int = 16
    log_every: int = 10_000
    eval_epsilon: float = 0.05

    def __post_init__(self) -> None:
        _check_tabular_config(self)
        if not 0.0 <= self.gamma < 1.0:
            raise ValueError(f"gamma must be in [0, 1), got {self.gamma!r}")


def _check_tabular_config(cfg: Any) -> None:
    if not 0.0 < cfg.alpha <= 1.0:
        raise ValueError(f"alpha must be in (0, 1], got {cfg.alpha!r}")
    check_exploration_fields(cfg)
    if cfg.num_envs < 1:
        raise ValueError(f"num_envs must be >= 1, got {cfg.num_envs!r}")
    if cfg.log_every < 1:
        raise ValueError(f"log_every must be >= 1, got {cfg.log_every!r}")
    if not 0.0 <= cfg.eval_epsilon <= 1.0:
        raise ValueError(f"eval_epsilon must be in [0, 1], got {cfg.eval_epsilon!r}")


def td_update(
    q: np.ndarray,
    states: np.ndarray,
    actions: np.ndarray,
    rewards: np.ndarray,
    next_states: np.ndarray,
    terminated: np.ndarray,
    alpha: float,
    gamma: float,
) -> np.ndarray:
    """Apply one batch of Q-learning updates to ``q`` in place; returns the TD errors.

    Terminal transitions (``terminated`` true) use ``target = r`` (no bootstrap).
    Repeated ``(s, a)`` pairs in the batch share the mean TD error and the step
    ``1 − (1 − α)^count``.
    """
    n_actions = q.shape[1]
    bootstrap = q[next_states].max(axis=1) * (1.0 - np.asarray(terminated, dtype=np.float64))
    target = np.asarray(rewards, dtype=np.float64) + gamma * bootstrap
    flat = np.asarray(states, dtype=np.int64) * n_actions + np.asarray(actions, dtype=np.int64)
    q_flat = q.reshape(-1)
    td = target - q_flat[flat]
    uniq, inverse, counts = np.unique(flat, return_inverse=True, return_counts=True)
    mean_td = np.bincount(inverse, weights=td) / counts
    step = 1.0 - (1.0 - alpha) ** counts
    q_flat[uniq] += step * mean_td
    return td


class _TabularAgent(Algorithm):
    """Shared machinery of :class:`TabularQ` and the contextual bandit."""

    envs: ClassVar[tuple[str, ...]] = ("greedy_mouse",)

    def __init__(self, config: Any, env_kwargs: Mapping[str, Any], seed: int) -> None:
        super().__init__(config, env_kwargs, seed)
        from smpc_gym.envs.greedy_mouse import core

        obs_mode = self.env_kwargs.get("obs_mode", "local")
        if obs_mode != "local":
            raise ValueError(
                f"{self.name} needs obs_mode='local' (a discrete observation), got {obs_mode!r}"
            )
        self._core = core
        probe = get_env_spec("greedy_mouse").spaces(**dict(self.env_kwargs))
        self.num_actions = int(probe[1].n)
        self.num_states = int(np.prod(probe[0].nvec))
        self.q = np.full((self.num_states, self.num_actions), float(config.q_init))
        self.rng = numpy_generator(seed)
        self.run_steps: int | None = None  # the run length ε is scheduled over
        self.epsilon = exploration_schedule(config, None)
        self.updates = 0

    # -- discount -------------------------------------------------------------------
    @property
    def gamma(self) -> float:
        """The discount used in the TD target."""
        return float(self.config.gamma)

    # -- acting ---------------------------------------------------------------------
    def state_ids(self, obs: np.ndarray) -> np.ndarray:
        """Integer state ids of a batch of local observations ``(n, k)``."""
        return np.asarray(self._core.local_state_id(np.asarray(obs)), dtype=np.int64)

    def act_batch(self, obs: np.ndarray, epsilon: float = 0.0) -> np.ndarray:
        """ε-greedy actions for a batch of observations (greedy ties: lowest action)."""
        states = self.state_ids(obs)
        actions = self.q[states].argmax(axis=1)
        if epsilon > 0.0:
            explore = self.rng.random(actions.shape[0]) < epsilon
            if explore.any():
                actions[explore] = self.rng.integers(0, self.num_actions, int(explore.sum()))
        return actions

    def act(self, obs: Any, deterministic: bool = True) -> int:
        """Greedy action for one local observation; with ``deterministic=False``,
        ε-greedy with the schedule's current ε."""
        eps = 0.0 if deterministic else self.epsilon(self.env_steps)
        return int(self.act_batch(np.asarray(obs)[None], eps)[0])

    # -- training -------------------------------------------------------------------
    def set_run_length(self, total_steps: int) -> None:
        """Size the ε schedule for a run of ``total_steps`` env steps."""
        self.run_steps = int(total_steps)
        self.epsilon = exploration_schedule(self.config, self.run_steps)

    def train(self, total_steps: int, hooks: TrainHooks) -> None:
        """Q-learning on ``num_envs`` vector-env worlds until ``total_steps`` env steps.

        ε decays over ``exploration_fraction`` of the run length given to the first
        ``train`` call (kept in the checkpoint: a resumed run continues the same schedule,
        an extended one stays at ``eps_end``).
        """
        cfg = self.config
        if self.run_steps is None:
            self.set_run_length(total_steps)
        worlds = VectorWorlds(self.env_kwargs, cfg.num_envs, int(self.rng.integers(2**31)))
        cadence = Cadence(hooks, cfg.log_every, self.env_steps, total_steps)
        window = {"td_abs": 0.0, "td_n": 0}
        eps = self.epsilon(self.env_steps)

        def metrics() -> dict[str, float]:
            m = worlds.stats()
            m["epsilon"] = eps  # the ε of the last step taken
            m["train/td_abs"] = window["td_abs"] / max(window["td_n"], 1)
            m["states_visited"] = float((self.q != cfg.q_init).any(axis=1).sum())
            worlds.reset_stats()
            window.update(td_abs=0.0, td_n=0)
            return m

        try:
            while self.env_steps < total_steps:
                eps = self.epsilon(self.env_steps)
                actions = self.act_batch(worlds.obs, eps)
                tr = worlds.step(actions)
                if len(tr):
                    td = td_update(
                        self.q,
                        self.state_ids(tr.obs),
                        tr.actions,
                        tr.rewards,
                        self.state_ids(tr.next_obs),
                        tr.terminated,
                        cfg.alpha,
                        self.gamma,
                    )
                    window["td_abs"] += float(np.abs(td).sum())
                    window["td_n"] += td.size
                    self.updates += 1
                self.env_steps += len(tr)
                if cadence.after_step(self.env_steps, metrics):
                    break
        finally:
            worlds.close()

    # -- state ----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Q-table, counters and the exploration generator's state."""
        return {
            "q": self.q.copy(),
            "env_steps": int(self.env_steps),
            "updates": int(self.updates),
            "rng": self.rng.bit_generator.state,
            "run_steps": -1 if self.run_steps is None else int(self.run_steps),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        q = np.asarray(state["q"], dtype=np.float64)
        if q.shape != self.q.shape:
            raise ValueError(
                f"Q-table shape mismatch: checkpoint {q.shape}, this env {self.q.shape} "
                "(same map/lookdist/directions needed)"
            )
        self.q = q.copy()
        self.env_steps = int(state["env_steps"])
        self.updates = int(state["updates"])
        self.rng.bit_generator.state = dict(state["rng"])
        run_steps = int(state.get("run_steps", -1))  # absent in older checkpoints
        if run_steps >= 0:
            self.set_run_length(run_steps)


class TabularQ(_TabularAgent):
    """Tabular Q-learning over the local observation's state id (see module docstring)."""

    name: ClassVar[str] = "tabular_q"
    Config: ClassVar[type] = Config
