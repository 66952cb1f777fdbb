"""``GreedyMouseVectorEnv``: N GreedyMouse worlds stepped together by numpy (vector_entry_point)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from smpc_gym.envs.greedy_mouse import core
from smpc_gym.envs.greedy_mouse.env import WorldSetup
from smpc_gym.envs.greedy_mouse.maps import GridMap, Topology
from smpc_gym.envs.greedy_mouse.render import render_ansi, render_rgb_array

_INFO_KEYS = (
    "mouse",
    "cat",
    "cheese",
    "cheese_eaten",
    "eaten",
    "hit_wall",
    "episode_step",
    "total_cheese",
    "total_eaten",
    "total_wall_hits",
    "episode_return",
)


class GreedyMouseVectorEnv(VectorEnv):
    """``num_envs`` independent GreedyMouse worlds, natively batched.

    Every world follows exactly the rules of
    :class:`~smpc_gym.envs.greedy_mouse.env.GreedyMouseEnv` (same keyword arguments),
    but all worlds are stepped by the same numpy array operations of
    :class:`~smpc_gym.envs.greedy_mouse.core.BatchedWorld`, so thousands of worlds cost
    little more than one. Built by
    ``gym.make_vec("GreedyMouse-v0", num_envs=N)`` (the registered ``vector_entry_point``,
    also the default vectorization mode) or directly.

    **Spaces.** ``single_observation_space`` / ``single_action_space`` are the single
    env's; ``observation_space`` / ``action_space`` are batched (``MultiDiscrete`` of
    shape ``(N,)`` for actions). ``step`` takes an integer array of shape ``(N,)``.

    **Autoreset.** Gymnasium's default ``AutoresetMode.NEXT_STEP``
    (``metadata["autoreset_mode"]``): when world ``i`` terminates (eaten with
    ``respawn=False``) or is truncated (``max_episode_steps`` steps since its reset,
    default 1000 as registered), the step returns its final observation; the *next*
    ``step`` ignores world ``i``'s action, resets it and returns its first observation with
    reward 0, ``terminated=truncated=False``.

    **Info.** The single env's keys, each an array over worlds (positions ``mouse``,
    ``cat``, ``cheese`` as ``int64 (N, 2)`` ``(row, col)``), with Gymnasium's ``_key``
    masks (all ``True``: every world reports every key each step).

    **Seeding and equality with the single env.** ``reset(seed=s)`` gives world ``i``
    the generator ``np_random(s + i)`` (a list of seeds gives world ``i`` ``seeds[i]``)
    and draws the world's random base from it exactly as ``GreedyMouseEnv.reset(seed=s + i)``
    does; every later random event is a hash of (base, episode number, step, event
    slot), computed for all worlds at once. So world ``i`` reproduces, step for step, a
    single env reset with seed ``s + i``, then stepped with the same actions and, after
    each episode end, ``reset()`` without a seed — also with ``cat_speed < 1`` and in
    both respawn and episodic modes. ``reset()`` without a seed starts a new episode in
    every world. ``reset(seed=None)`` before any seed draws fresh entropy.

    **Rendering.** ``render_mode="rgb_array"`` / ``"ansi"``: ``render()`` returns a tuple
    with one frame / string per world.
    """

    metadata = {
        "render_modes": ["rgb_array", "ansi"],
        "render_fps": 8,
        "autoreset_mode": AutoresetMode.NEXT_STEP,
    }

    def __init__(
        self,
        num_envs: int = 1,
        map: str | Path | GridMap = "classic",  # noqa: A002 - the documented kwarg name
        *,
        max_episode_steps: int | None = 1000,
        render_mode: str | None = None,
        **world: Any,
    ) -> None:
        """Build ``num_envs`` worlds; ``map`` and ``world`` are ``GreedyMouseEnv``'s."""
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)):
            raise TypeError(f"num_envs must be an int >= 1, got {num_envs!r}")
        if num_envs < 1:
            raise ValueError(f"num_envs must be an int >= 1, got {num_envs!r}")
        if max_episode_steps is not None and (
            isinstance(max_episode_steps, bool)
            or not isinstance(max_episode_steps, (int, np.integer))
            or max_episode_steps < 1
        ):
            raise ValueError(
                f"max_episode_steps must be None or an int >= 1, got {max_episode_steps!r}"
            )
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode must be None or one of {self.metadata['render_modes']}, "
                f"got {render_mode!r}"
            )
        setup = WorldSetup.build(
            "GreedyMouseVectorEnv",
            map,
            world,
            ("map", "render_mode", "num_envs", "max_episode_steps"),
        )
        self.config = setup.config
        self.num_envs = int(num_envs)
        self.max_episode_steps = None if max_episode_steps is None else int(max_episode_steps)
        self.render_mode = render_mode
        self._grid, self._topology, self._tables = setup.grid, setup.topology, setup.tables
        self._world = core.BatchedWorld(self._tables, self.config, self.num_envs)
        self._num_actions = int(self.config.directions)

        self.single_action_space = setup.action_space()
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.single_observation_space = setup.observation_space()
        self._obs = getattr(self._world, setup.obs_method)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)

        self._seeded = False
        self._started = False
        n = self.num_envs
        self._autoreset = np.zeros(n, dtype=bool)
        self._no = np.zeros(n, dtype=bool)
        self._mask = np.ones(n, dtype=bool)
        self._zero_r = np.zeros(n, dtype=np.float64)

    # ------------------------------------------------------------------ public state

    @property
    def grid(self) -> GridMap:
        """The map shared by all worlds."""
        return self._grid

    @property
    def topology(self) -> Topology:
        """Movement and shortest-path tables (shared by all worlds)."""
        return self._topology

    @property
    def world(self) -> core.BatchedWorld:
        """The batched world state (read-only use: positions as free-cell ids)."""
        return self._world

    @property
    def positions(self) -> dict[str, np.ndarray]:
        """Current ``(row, col)`` of ``mouse``, ``cat`` and ``cheese``, each ``int64 (N, 2)``."""
        fc = self._grid.free_cells.astype(np.int64)
        w = self._world
        return {"mouse": fc[w.mouse], "cat": fc[w.cat], "cheese": fc[w.cheese]}

    # ------------------------------------------------------------------ API

    def reset(
        self,
        *,
        seed: int | Sequence[int | None] | None = None,
        options: dict[str, Any] | None = None,
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start a new episode in every world (seeding as in the class docstring)."""
        if options:
            raise ValueError(
                f"GreedyMouseVectorEnv.reset takes no options (got {options!r}); pin "
                "positions with GreedyMouseEnv.reset(options=...) instead"
            )
        w = self._world
        n = self.num_envs
        if seed is None:
            super().reset(seed=None)
            if not self._seeded:
                w.base[:] = self.np_random.integers(0, 2**63, size=n, dtype=np.int64).astype(
                    np.uint64
                )
                w.episode[:] = 0
                self._seeded = True
            else:
                w.episode += 1
        else:
            if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
                seeds: list[int | None] = [int(seed) + i for i in range(n)]
                super().reset(seed=int(seed))
            elif isinstance(seed, Sequence) and not isinstance(seed, str):
                if len(seed) != n:
                    raise ValueError(
                        f"reset(seed=...) got {len(seed)} seeds for {n} worlds; pass one int "
                        "(world i gets seed + i) or a list of num_envs ints"
                    )
                seeds = list(seed)
                super().reset(seed=None)
            else:
                raise TypeError(f"seed must be None, an int or a list of {n} ints, got {seed!r}")
            for i, s in enumerate(seeds):
                rng, _ = seeding.np_random(s)
                w.base[i] = np.uint64(core.new_base(rng))
            w.episode[:] = 0
            self._seeded = True
        w.reset_worlds(np.arange(n))
        self._autoreset[:] = False
        self._started = True
        return self._obs(), self._info(self._no, self._no, self._no)

    def step(
        self, actions: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step every world (worlds that ended last step are reset instead)."""
        if not self._started:
            raise RuntimeError("call reset() before the first step()")
        a = np.asarray(actions)
        if a.shape != (self.num_envs,):
            raise ValueError(
                f"actions must have shape ({self.num_envs},) (one per world), got {a.shape}"
            )
        if a.dtype.kind not in "iu":
            raise TypeError(
                f"actions must be integers in 0 … {self._num_actions - 1}, got dtype {a.dtype}"
            )
        if a.size and (a.min() < 0 or a.max() >= self._num_actions):
            bad = a[(a < 0) | (a >= self._num_actions)]
            raise ValueError(
                f"actions out of range: {bad[:5].tolist()}; allowed: 0 … {self._num_actions - 1}"
            )
        w = self._world
        reward, eaten, cheese_eaten, hit_wall = w.step(a.astype(np.int64, copy=False))
        # With respawn=True nobody terminates; otherwise being eaten terminates.
        terminated = eaten.copy() if not self.config.respawn else np.zeros(self.num_envs, bool)
        if self.max_episode_steps is not None:
            truncated = w.t >= self.max_episode_steps
        else:
            truncated = np.zeros(self.num_envs, dtype=bool)
        was_done = self._autoreset
        if was_done.any():
            which = np.flatnonzero(was_done)
            w.episode[which] += 1
            w.reset_worlds(which)
            reward[which] = 0.0
            terminated[which] = False
            truncated[which] = False
            eaten[which] = False
            cheese_eaten[which] = False
            hit_wall[which] = False
        self._autoreset = terminated | truncated
        return (
            self._obs(),
            reward,
            terminated,
            truncated,
            self._info(eaten, cheese_eaten, hit_wall),
        )

    def render(self) -> tuple[Any, ...] | None:
        """One frame (``rgb_array``) or string (``ansi``) per world, or ``None``."""
        if self.render_mode is None:
            return None
        fc = [tuple(p) for p in self._grid.free_cells.tolist()]
        w = self._world
        out = []
        for i in range(self.num_envs):
            args = (
                self._grid.walls,
                [fc[w.mouse[i]]],
                [fc[w.cat[i]]],
                [fc[w.cheese[i]]],
                [
                    f"cheese eaten: {w.total_cheese[i]}   times eaten: {w.total_eaten[i]}",
                    f"step: {w.t[i]}   return: {w.total_reward[i]:g}",
                ],
            )
            out.append(
                render_rgb_array(*args) if self.render_mode == "rgb_array" else render_ansi(*args)
            )
        return tuple(out)

    def close_extras(self, **kwargs: Any) -> None:
        """Nothing to release (no window); present so ``close()`` stays idempotent."""

    # ------------------------------------------------------------------ helpers

    def _info(
        self, eaten: np.ndarray, cheese_eaten: np.ndarray, hit_wall: np.ndarray
    ) -> dict[str, Any]:
        w = self._world
        cells = self._tables.cells

        def pos(cell: np.ndarray) -> np.ndarray:
            return np.take(cells, cell, axis=0)

        info: dict[str, Any] = {
            "mouse": pos(w.mouse),
            "cat": pos(w.cat),
            "cheese": pos(w.cheese),
            "cheese_eaten": cheese_eaten,
            "eaten": eaten,
            "hit_wall": hit_wall,
            "episode_step": w.t.copy(),
            "total_cheese": w.total_cheese.copy(),
            "total_eaten": w.total_eaten.copy(),
            "total_wall_hits": w.total_wall_hits.copy(),
            "episode_return": w.total_reward.copy(),
        }
        mask = self._mask.copy()
        for key in _INFO_KEYS:
            info["_" + key] = mask
        return info
