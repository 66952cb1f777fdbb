"""Worlds of the GreedyMouse vector env, stepped for a learner: transitions plus stats.

:class:`VectorWorlds` wraps ``gym.make_vec("GreedyMouse-v0", num_envs=N,
vectorization_mode="vector_entry_point", **env_kwargs)`` and turns each vector step into
a batch of learning transitions ``(obs, action, reward, next_obs, terminated)``, handling
both Gymnasium autoreset modes:

* ``NEXT_STEP`` (Gymnasium's default): the step after an episode end only resets that
  world; it is not a transition and is dropped (and not counted as an env step).
* ``SAME_STEP``: the true last observation of a finished episode is
  ``info["final_obs"]``; the returned observation is already the new episode's first.

Truncation (the 1,000-step time limit) is *not* terminal: learners bootstrap from the
last observation. Only ``terminated`` (e.g. eaten with ``respawn=False``) stops the
bootstrap. The class also keeps running totals (cheese, deaths, finished-episode
returns) for training logs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class Transitions:
    """One vector step's learning transitions (only the valid rows)."""

    obs: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_obs: np.ndarray
    terminated: np.ndarray
    #: indices (into the vector env's worlds) of the rows above
    worlds: np.ndarray

    def __len__(self) -> int:
        return int(self.actions.shape[0])


def make_vector_env(env_kwargs: Mapping[str, Any], num_envs: int) -> Any:
    """The natively batched GreedyMouse vector env with ``num_envs`` worlds."""
    from smpc_gym.envs.registry import get_env_spec

    return get_env_spec("greedy_mouse").make_vec(int(num_envs), **dict(env_kwargs))


def _info_flags(info: Mapping[str, Any], key: str, n: int) -> np.ndarray:
    value = info.get(key)
    if value is None:
        return np.zeros(n, dtype=bool)
    arr = np.asarray(value)
    mask = info.get("_" + key)
    if mask is not None:
        arr = np.where(np.asarray(mask, dtype=bool), arr, 0)
    return arr.astype(bool).reshape(n)


class VectorWorlds:
    """``num_envs`` GreedyMouse worlds stepped together, with learning bookkeeping.

    Args:
        env_kwargs: keyword arguments of ``GreedyMouse-v0`` (``obs_mode``, ``map``, ...).
        num_envs: number of worlds.
        seed: seeds the worlds' reset (world ``i`` gets ``seed + i``).
    """

    def __init__(self, env_kwargs: Mapping[str, Any], num_envs: int, seed: int) -> None:
        from gymnasium.vector import AutoresetMode

        if num_envs <= 0:
            raise ValueError(f"num_envs must be positive, got {num_envs!r}")
        self.num_envs = int(num_envs)
        self.env = make_vector_env(env_kwargs, self.num_envs)
        mode = self.env.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
        if mode not in (AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP):
            raise ValueError(f"unsupported autoreset mode {mode!r} of the GreedyMouse vector env")
        self._same_step = mode == AutoresetMode.SAME_STEP
        self.obs, _ = self.env.reset(seed=int(seed))
        self._resetting = np.zeros(self.num_envs, dtype=bool)
        self._ep_return = np.zeros(self.num_envs, dtype=np.float64)
        self.reset_stats()

    def reset_stats(self) -> None:
        """Zero the running totals reported by :meth:`stats`."""
        self.stat_steps = 0
        self.stat_cheese = 0
        self.stat_deaths = 0
        self.stat_reward = 0.0
        self.finished_returns: list[float] = []

    def stats(self) -> dict[str, float]:
        """Training metrics since the last :meth:`reset_stats`."""
        steps = max(self.stat_steps, 1)
        out = {
            "train/reward_per_step": self.stat_reward / steps,
            "train/cheese_per_1000_steps": 1000.0 * self.stat_cheese / steps,
            "train/deaths_per_1000_steps": 1000.0 * self.stat_deaths / steps,
        }
        if self.finished_returns:
            out["train/episode_return"] = float(np.mean(self.finished_returns))
        return out

    def step(self, actions: np.ndarray) -> Transitions:
        """Step every world with ``actions`` (one per world) and return the transitions."""
        actions = np.asarray(actions, dtype=np.int64)
        prev_obs = self.obs
        obs, rewards, terminated, truncated, info = self.env.step(actions)
        rewards = np.asarray(rewards, dtype=np.float32)
        terminated = np.asarray(terminated, dtype=bool)
        done = terminated | np.asarray(truncated, dtype=bool)
        if self._same_step:
            valid = np.ones(self.num_envs, dtype=bool)
            next_obs = np.array(obs, copy=True)
            if done.any():
                final = info["final_obs"]
                for i in np.flatnonzero(done):
                    next_obs[i] = final[i]
        else:
            valid = ~self._resetting
            next_obs = obs
            self._resetting = done
        self.obs = obs
        idx = np.flatnonzero(valid)
        cheese = _info_flags(info, "cheese_eaten", self.num_envs) & valid
        eaten = _info_flags(info, "eaten", self.num_envs) & valid
        self.stat_steps += int(idx.size)
        self.stat_cheese += int(cheese.sum())
        self.stat_deaths += int(eaten.sum())
        self.stat_reward += float(rewards[valid].sum())
        self._ep_return[valid] += rewards[valid]
        for i in np.flatnonzero(done & valid):
            self.finished_returns.append(float(self._ep_return[i]))
            self._ep_return[i] = 0.0
        return Transitions(
            obs=prev_obs[idx],
            actions=actions[idx],
            rewards=rewards[idx],
            next_obs=next_obs[idx],
            terminated=terminated[idx],
            worlds=idx,
        )

    def close(self) -> None:
        """Close the vector env."""
        self.env.close()
