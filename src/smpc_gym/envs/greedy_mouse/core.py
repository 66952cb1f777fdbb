"""GreedyMouse world logic: pure numpy, no Gymnasium / PettingZoo / pygame.

This module holds the rules of the game once, in two forms that must agree exactly:

* :class:`World` — one world as Python ints over precomputed tables (``.tolist()``);
  this is what :class:`~smpc_gym.envs.greedy_mouse.env.GreedyMouseEnv` steps, because
  Python ints beat numpy on a single world.
* :class:`BatchedWorld` — ``N`` worlds as numpy arrays of free-cell ids, all stepped by
  the same array operations; this is what
  :class:`~smpc_gym.envs.greedy_mouse.vector.GreedyMouseVectorEnv` steps.

Randomness is *counter based*, so the two forms draw identical numbers without a
per-world generator: each world has a 63-bit ``base`` (drawn once from the env's seeded
``np.random.Generator`` when it is reset with a seed), each episode ``e`` of the world
gets the key ``episode_key(base, e)``, and the ``slot``-th random number of step ``t``
is ``uniform(key, t, slot)`` (a SplitMix64 hash of the three, mapped to ``[0, 1)``).
A uniform choice among ``m`` candidates is ``floor(u * m)``. Reset draws use ``t = 0``;
step ``t`` (``1, 2, …``) uses slot 0 for the cat's ``cat_speed`` coin, slot 1 for the
cheese respawn and slot 2 for the mouse respawn.

Step order (see the spec): 1. mouse moves (a blocked move stays: ``hit_wall``); 2. mouse
on the cat → eaten; 3. else mouse on the cheese → cheese reward, the cheese respawns on
a free cell holding neither mouse nor cat; 4. the cat moves one ``next_hop`` toward the
mouse (with probability ``cat_speed``); 5. cat on the mouse → eaten. Being eaten ends the
step: with ``respawn=True`` the mouse respawns on a cell at BFS distance
``>= min_cat_distance`` from the cat (and not on the cheese); otherwise the episode
terminates. Reward = ``step_reward`` + ``wall_penalty`` if the move was blocked +
``cheese_reward`` if cheese was eaten + ``eaten_reward`` if eaten.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from smpc_gym.envs.greedy_mouse.maps import DIRECTIONS_8, GridMap
from smpc_gym.envs.options import describe_unknown

OBS_MODES: tuple[str, ...] = ("local", "global", "features")

#: Local-observation cell codes.
EMPTY, WALL, CHEESE, CAT = 0, 1, 2, 3

#: Length of the ``features`` observation.
NUM_FEATURES = 14

_M64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_SLOT = 0xD1B54A32D192ED03
_EPISODE = 0xBF58476D1CE4E5B9
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB
_TWO_M53 = 2.0**-53
_COMBO_MAX = 4_000_000  # entries of the precomputed local-observation table

# Random-number slots (see the module docstring).
SLOT_CAT, SLOT_CHEESE, SLOT_MOUSE = 0, 1, 2
SLOT_RESET_MOUSE, SLOT_RESET_CAT, SLOT_RESET_CHEESE = 3, 4, 5


# --------------------------------------------------------------------------- config


@dataclass(frozen=True)
class WorldConfig:
    """Rules of one GreedyMouse world (everything but the map). See ``GreedyMouseEnv``.

    Attributes:
        directions: 8 (``Discrete(8)``: N, NE, E, SE, S, SW, W, NW) or 4 (N, E, S, W);
            the cat moves under the same rule.
        cut_corners: with ``False`` a diagonal move needs both orthogonal cells free.
        cat_speed: probability in ``[0, 1]`` that the cat moves in a step.
        respawn: ``True``: an eaten mouse respawns; ``False``: being eaten terminates.
        min_cat_distance: BFS distance (>= 1) the cat keeps from a (re)spawned mouse.
        step_reward, cheese_reward, eaten_reward: reward terms (added).
        wall_penalty: added to the reward when the move was blocked (use a value <= 0).
        obs_mode: ``"local"``, ``"global"`` or ``"features"``.
        lookdist: Chebyshev radius (>= 1) of the ``local`` observation window.
    """

    directions: int = 8
    cut_corners: bool = True
    cat_speed: float = 1.0
    respawn: bool = True
    min_cat_distance: int = 3
    step_reward: float = -1.0
    cheese_reward: float = 50.0
    eaten_reward: float = -100.0
    wall_penalty: float = 0.0
    obs_mode: str = "local"
    lookdist: int = 1

    def __post_init__(self) -> None:
        def _int(name: str, value: Any) -> None:
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise TypeError(f"{name} must be an int, got {value!r} ({type(value).__name__})")

        def _real(name: str, value: Any) -> None:
            if isinstance(value, bool) or not isinstance(
                value, (int, float, np.integer, np.floating)
            ):
                raise TypeError(f"{name} must be a number, got {value!r} ({type(value).__name__})")
            if not np.isfinite(value):
                raise ValueError(f"{name} must be finite, got {value!r}")

        _int("directions", self.directions)
        if self.directions not in (4, 8):
            raise ValueError(f"directions must be 4 or 8, got {self.directions!r}")
        for name in ("cut_corners", "respawn"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise TypeError(f"{name} must be True or False, got {getattr(self, name)!r}")
        _real("cat_speed", self.cat_speed)
        if not 0.0 <= float(self.cat_speed) <= 1.0:
            raise ValueError(f"cat_speed must be a probability in [0, 1], got {self.cat_speed!r}")
        _int("min_cat_distance", self.min_cat_distance)
        if self.min_cat_distance < 1:
            raise ValueError(f"min_cat_distance must be >= 1, got {self.min_cat_distance!r}")
        for name in ("step_reward", "cheese_reward", "eaten_reward", "wall_penalty"):
            _real(name, getattr(self, name))
        if self.obs_mode not in OBS_MODES:
            raise ValueError(f"obs_mode must be one of {list(OBS_MODES)}, got {self.obs_mode!r}")
        _int("lookdist", self.lookdist)
        if self.lookdist < 1:
            raise ValueError(f"lookdist must be an int >= 1, got {self.lookdist!r}")


def world_config(
    owner: str, kwargs: Mapping[str, Any], extra_valid: Iterable[str] = ()
) -> WorldConfig:
    """A :class:`WorldConfig` from an env's keyword arguments (the one place an env's
    world kwargs are named: its fields). Unknown names raise ``TypeError`` naming
    ``owner`` and listing the fields and ``extra_valid`` (the env's other kwargs)."""
    unknown = {k: v for k, v in kwargs.items() if k not in CONFIG_FIELDS}
    check_kwargs(owner, unknown, (*CONFIG_FIELDS, *extra_valid))
    return WorldConfig(**kwargs)


def check_kwargs(owner: str, unknown: Mapping[str, Any], valid: Iterable[str]) -> None:
    """Raise ``TypeError`` naming unknown keyword arguments and listing the valid ones."""
    if not unknown:
        return
    valid = sorted(valid)
    raise TypeError(
        f"{owner} got unexpected keyword argument(s) {describe_unknown(unknown, valid)}; "
        f"valid keyword arguments are: {', '.join(valid)}"
    )


#: Names of :class:`WorldConfig` fields (the env keyword arguments besides map/render_mode).
CONFIG_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(WorldConfig))


# --------------------------------------------------------------------------- randomness


def _mix(z: int) -> int:
    z = ((z ^ (z >> 30)) * _MIX1) & _M64
    z = ((z ^ (z >> 27)) * _MIX2) & _M64
    return z ^ (z >> 31)


def episode_key(base: int, episode: int) -> int:
    """The random key of episode ``episode`` (0, 1, …) of a world with seed ``base``."""
    return _mix((base ^ _mix((episode * _EPISODE + _GOLDEN) & _M64)) & _M64)


def uniform(key: int, t: int, slot: int) -> float:
    """The ``slot``-th uniform number in ``[0, 1)`` of step ``t`` under ``key``."""
    return (_mix((key + t * _GOLDEN + slot * _SLOT) & _M64) >> 11) * _TWO_M53


def _pick(key: int, t: int, slot: int, m: int) -> int:
    k = int(uniform(key, t, slot) * m)
    return k if k < m else m - 1


def _mix_np(z: np.ndarray) -> np.ndarray:
    z = (z ^ (z >> np.uint64(30))) * np.uint64(_MIX1)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(_MIX2)
    return z ^ (z >> np.uint64(31))


def episode_key_np(base: np.ndarray, episode: np.ndarray) -> np.ndarray:
    """Batched :func:`episode_key` (``uint64`` in, ``uint64`` out)."""
    e = episode.astype(np.uint64) * np.uint64(_EPISODE) + np.uint64(_GOLDEN)
    return _mix_np(base ^ _mix_np(e))


def uniform_np(key: np.ndarray, t: np.ndarray, slot: int) -> np.ndarray:
    """Batched :func:`uniform`."""
    z = key + t.astype(np.uint64) * np.uint64(_GOLDEN) + np.uint64((slot * _SLOT) & _M64)
    return (_mix_np(z) >> np.uint64(11)).astype(np.float64) * _TWO_M53


def _pick_np(key: np.ndarray, t: np.ndarray, slot: int, m: np.ndarray | int) -> np.ndarray:
    k = (uniform_np(key, t, slot) * m).astype(np.int64)
    return np.minimum(k, np.asarray(m) - 1)


def new_base(rng: np.random.Generator) -> int:
    """Draw a world's 63-bit random base from a seeded generator."""
    return int(rng.integers(0, 2**63, dtype=np.int64))


# --------------------------------------------------------------------------- tables


def local_offsets(lookdist: int) -> list[tuple[int, int]]:
    """``(d_row, d_col)`` of the local window in observation order.

    Row-major over the ``(2 * lookdist + 1)^2`` square around the mouse, skipping the
    mouse's own cell: for ``lookdist=1`` that is NW, N, NE, W, E, SW, S, SE.
    """
    return [
        (dr, dc)
        for dr in range(-lookdist, lookdist + 1)
        for dc in range(-lookdist, lookdist + 1)
        if (dr, dc) != (0, 0)
    ]


def num_local_cells(lookdist: int) -> int:
    """Length ``k`` of the ``local`` observation: ``(2 * lookdist + 1)^2 - 1``."""
    return (2 * lookdist + 1) ** 2 - 1


def num_local_states(lookdist: int = 1) -> int:
    """Number of distinct :func:`local_state_id` values: ``4 ** k``."""
    return 4 ** num_local_cells(lookdist)


def local_state_id(obs: Any) -> Any:
    """Map a ``local`` observation to an integer state id, for tabular agents.

    ``id = sum(obs[j] * 4**j)``, so ids run over ``0 … 4**k - 1`` (see
    :func:`num_local_states`); 65,536 states for the default ``lookdist=1``.

    Args:
        obs: one observation (shape ``(k,)``) → a Python ``int``; or a batch
            (shape ``(N, k)``) → an ``int64`` array of ``N`` ids (needs ``k <= 31``).
    """
    a = np.asarray(obs)
    if a.ndim == 1:
        out = 0
        for v in reversed(a.tolist()):
            out = out * 4 + int(v)
        return out
    if a.ndim == 2:
        k = a.shape[1]
        if k > 31:
            raise ValueError(
                f"batched state ids need k <= 31 cells, got k={k}; pass rows one by one"
            )
        return a.astype(np.int64) @ (np.int64(4) ** np.arange(k, dtype=np.int64))
    raise ValueError(f"obs must have shape (k,) or (N, k), got {a.shape}")


@dataclass(frozen=True, eq=False)
class Tables:
    """Precomputed tables of one map under one :class:`WorldConfig` (shared, read-only).

    Arrays are indexed by free-cell ids (see :class:`GridMap`); the ``*_l`` attributes
    are the same tables as nested Python lists, for the single-world fast path.
    """

    grid: GridMap
    num_free: int
    num_actions: int
    min_cat_distance: int
    move: np.ndarray  # (F, A) int64
    move_flat: np.ndarray  # (F*A,) int64
    next_hop_flat: np.ndarray  # (F*F,) int64
    dist: np.ndarray  # (F, F) int64
    far: np.ndarray  # (F, F) int64, far[c, :far_count[c]] = cells at dist >= d from c
    far_count: np.ndarray  # (F,) int64
    far_rank: np.ndarray  # (F, F) int64, index of x in far[c] (valid when dist >= d)
    local_base: np.ndarray  # (F, k) int64 wall codes of the window
    local_slot: np.ndarray  # (F, F) int64, slot of cell x in the window of cell m, or -1
    local_slot_k: np.ndarray  # (F*F,) int64, the same with k (a dummy slot) instead of -1
    local_combo: np.ndarray | None  # (F*(k+1)*(k+1), k) every local obs, or None if too big
    cells: np.ndarray  # (F, 2) int64 (row, col) of each free cell
    wall8: np.ndarray  # (F, 8) float32, walls (or grid edge) at the 8 neighbours
    rows: np.ndarray  # (F,) int64
    cols: np.ndarray  # (F,) int64
    max_dist: int
    move_l: list[list[int]]
    next_hop_l: list[list[int]]
    dist_l: list[list[int]]
    far_l: list[list[int]]
    far_rank_l: list[list[int]]
    local_base_l: list[list[int]]
    local_slot_l: list[list[int]]
    wall8_l: list[list[float]]


def max_min_cat_distance(grid: GridMap, directions: int = 8, cut_corners: bool = True) -> int:
    """Largest ``min_cat_distance`` the map allows.

    Every cell must have at least two cells at that distance or more (a respawning mouse
    must avoid both the cat's surroundings and the cheese).
    """
    dist = grid.topology(directions, cut_corners).dist
    return int(np.sort(dist, axis=1)[:, -2].min())


@functools.lru_cache(maxsize=64)
def build_tables(
    grid: GridMap, directions: int, cut_corners: bool, min_cat_distance: int, lookdist: int
) -> Tables:
    """Build (or fetch from the cache) the tables for one map and rule set.

    Raises:
        ValueError: if ``min_cat_distance`` is too large for the map.
    """
    topo = grid.topology(directions, cut_corners)
    n_free = grid.num_free
    limit = max_min_cat_distance(grid, directions, cut_corners)
    if min_cat_distance > limit:
        raise ValueError(
            f"min_cat_distance={min_cat_distance} is too large for map {grid.name!r} "
            f"(directions={directions}): some cells have fewer than two cells that far away; "
            f"allowed: 1 … {limit}"
        )
    move = topo.move.astype(np.int64)
    dist = topo.dist.astype(np.int64)
    next_hop = topo.next_hop.astype(np.int64)

    far_mask = dist >= min_cat_distance
    far_count = far_mask.sum(axis=1).astype(np.int64)
    far = np.zeros((n_free, n_free), dtype=np.int64)
    far_l: list[list[int]] = []
    for src in range(n_free):
        cells = np.flatnonzero(far_mask[src])
        far[src, : cells.size] = cells
        far_l.append(cells.tolist())
    far_rank = np.cumsum(far_mask, axis=1) - 1

    h, w = grid.walls.shape
    rows = grid.free_cells[:, 0].astype(np.int64)
    cols = grid.free_cells[:, 1].astype(np.int64)
    offs = local_offsets(lookdist)
    k = len(offs)
    local_base = np.empty((n_free, k), dtype=np.int64)
    local_slot = np.full((n_free, n_free), -1, dtype=np.int64)
    for j, (dr, dc) in enumerate(offs):
        r, c = rows + dr, cols + dc
        inside = (r >= 0) & (r < h) & (c >= 0) & (c < w)
        cell = np.full(n_free, -1, dtype=np.int64)
        cell[inside] = grid.cell_index[r[inside], c[inside]]
        local_base[:, j] = np.where(cell >= 0, EMPTY, WALL)
        ok = cell >= 0
        local_slot[np.flatnonzero(ok), cell[ok]] = j
    wall8 = np.empty((n_free, 8), dtype=np.float32)
    for j, (dr, dc) in enumerate(DIRECTIONS_8):
        r, c = rows + dr, cols + dc
        inside = (r >= 0) & (r < h) & (c >= 0) & (c < w)
        wall = np.ones(n_free, dtype=bool)
        wall[inside] = grid.walls[r[inside], c[inside]]
        wall8[:, j] = wall
    local_slot_k = np.where(local_slot >= 0, local_slot, k).ravel()
    # Every local observation, indexed by (mouse cell, cheese slot, cat slot), so that the
    # batched encoder is a single gather (only when it is small: lookdist=1 on most maps).
    local_combo = None
    if n_free * (k + 1) ** 2 * k <= _COMBO_MAX:
        combo = np.repeat(local_base[:, None, None, :], k + 1, axis=1)
        combo = np.repeat(combo, k + 1, axis=2)
        combo = np.concatenate([combo, np.zeros((*combo.shape[:3], 1), np.int64)], axis=3)
        slots = np.arange(k + 1)
        combo[:, slots, :, slots] = CHEESE
        combo[:, :, slots, slots] = CAT
        local_combo = np.ascontiguousarray(combo[..., :k].reshape(-1, k))
    tables = Tables(
        grid=grid,
        num_free=n_free,
        num_actions=directions,
        min_cat_distance=min_cat_distance,
        move=move,
        move_flat=move.ravel().copy(),
        next_hop_flat=next_hop.ravel().copy(),
        dist=dist,
        far=far,
        far_count=far_count,
        far_rank=far_rank,
        local_base=local_base,
        local_slot=local_slot,
        local_slot_k=local_slot_k,
        local_combo=local_combo,
        cells=np.stack([rows, cols], axis=1),
        wall8=wall8,
        rows=rows,
        cols=cols,
        max_dist=max(1, int(dist.max())),
        move_l=move.tolist(),
        next_hop_l=next_hop.tolist(),
        dist_l=dist.tolist(),
        far_l=far_l,
        far_rank_l=far_rank.tolist(),
        local_base_l=local_base.tolist(),
        local_slot_l=local_slot.tolist(),
        wall8_l=wall8.tolist(),
    )
    for name in ("move", "move_flat", "next_hop_flat", "dist", "far", "far_count", "far_rank"):
        getattr(tables, name).setflags(write=False)
    for name in ("local_base", "local_slot", "local_slot_k", "wall8", "rows", "cols", "cells"):
        getattr(tables, name).setflags(write=False)
    if local_combo is not None:
        local_combo.setflags(write=False)
    return tables


# --------------------------------------------------------------------------- one world


def _pick_excluding_two(key: int, t: int, slot: int, n: int, a: int, b: int) -> int:
    """Uniform cell id in ``0 … n-1`` other than ``a`` and ``b`` (``a != b``)."""
    k = _pick(key, t, slot, n - 2)
    lo, hi = (a, b) if a < b else (b, a)
    if k >= lo:
        k += 1
    if k >= hi:
        k += 1
    return k


class World:
    """One GreedyMouse world over Python ints (the single-env fast path).

    Attributes (read them, don't assign): ``mouse``, ``cat``, ``cheese`` (free-cell ids),
    ``key`` (episode random key), ``t`` (steps since reset), and the episode totals
    ``total_cheese``, ``total_eaten``, ``total_wall_hits``, ``total_reward``.
    """

    def __init__(self, tables: Tables, config: WorldConfig) -> None:
        """A world on ``tables`` under ``config``; call :meth:`reset` before :meth:`step`."""
        self.tables = tables
        self.config = config
        self._move = tables.move_l
        self._hop = tables.next_hop_l
        self._cat_speed = float(config.cat_speed)
        self._respawn = bool(config.respawn)
        self._rewards = (
            float(config.step_reward),
            float(config.wall_penalty),
            float(config.cheese_reward),
            float(config.eaten_reward),
        )
        self.mouse = self.cat = self.cheese = -1
        self.key = 0
        self.t = 0
        self.total_cheese = self.total_eaten = self.total_wall_hits = 0
        self.total_reward = 0.0

    def reset(self, key: int) -> None:
        """Place mouse, cat and cheese for a new episode with random key ``key``."""
        tab = self.tables
        n = tab.num_free
        mouse = _pick(key, 0, SLOT_RESET_MOUSE, n)
        far = tab.far_l[mouse]
        cat = far[_pick(key, 0, SLOT_RESET_CAT, len(far))]
        cheese = _pick_excluding_two(key, 0, SLOT_RESET_CHEESE, n, mouse, cat)
        self.mouse, self.cat, self.cheese = mouse, cat, cheese
        self.key = key
        self.t = 0
        self.total_cheese = self.total_eaten = self.total_wall_hits = 0
        self.total_reward = 0.0

    def step(self, action: int) -> tuple[float, bool, bool, bool]:
        """Advance one step; return ``(reward, eaten, cheese_eaten, hit_wall)``.

        ``eaten`` with ``respawn=False`` means the episode is over (terminated).
        """
        self.t = t = self.t + 1
        r_step, r_wall, r_cheese, r_eaten = self._rewards
        mouse = self._move[self.mouse][action]
        hit_wall = mouse == self.mouse
        reward = r_step
        if hit_wall:
            reward += r_wall
            self.total_wall_hits += 1
        self.mouse = mouse
        cat = self.cat
        eaten = mouse == cat
        cheese_eaten = False
        if not eaten:
            if mouse == self.cheese:
                cheese_eaten = True
                reward += r_cheese
                self.total_cheese += 1
                self.cheese = _pick_excluding_two(
                    self.key, t, SLOT_CHEESE, self.tables.num_free, mouse, cat
                )
            if self._cat_speed >= 1.0 or uniform(self.key, t, SLOT_CAT) < self._cat_speed:
                cat = self._hop[cat][mouse]
                self.cat = cat
            eaten = cat == mouse
        if eaten:
            reward += r_eaten
            self.total_eaten += 1
            if self._respawn:
                self.mouse = self._respawn_mouse(t)
        self.total_reward += reward
        return reward, eaten, cheese_eaten, hit_wall

    def _respawn_mouse(self, t: int) -> int:
        tab = self.tables
        cat, cheese = self.cat, self.cheese
        far = tab.far_l[cat]
        inside = tab.dist_l[cat][cheese] >= tab.min_cat_distance
        k = _pick(self.key, t, SLOT_MOUSE, len(far) - inside)
        if inside and k >= tab.far_rank_l[cat][cheese]:
            k += 1
        return far[k]

    # Observations ------------------------------------------------------------------

    def obs_local(self) -> np.ndarray:
        """The ``local`` observation (``int64 (k,)``)."""
        tab = self.tables
        m = self.mouse
        o = tab.local_base_l[m].copy()
        slots = tab.local_slot_l[m]
        s = slots[self.cheese]
        if s >= 0:
            o[s] = CHEESE
        s = slots[self.cat]
        if s >= 0:
            o[s] = CAT
        return np.array(o, dtype=np.int64)

    def obs_global(self) -> np.ndarray:
        """The ``global`` observation (``uint8 (4, H, W)``: wall, mouse, cat, cheese)."""
        tab = self.tables
        out = np.zeros((4, *tab.grid.walls.shape), dtype=np.uint8)
        out[0] = tab.grid.walls
        for ch, cell in ((1, self.mouse), (2, self.cat), (3, self.cheese)):
            out[ch, tab.rows[cell], tab.cols[cell]] = 1
        return out

    def obs_features(self) -> np.ndarray:
        """The ``features`` observation (``float32 (14,)``, see ``GreedyMouseEnv``)."""
        tab = self.tables
        g = tab.grid
        m, c, ch = self.mouse, self.cat, self.cheese
        mr, mc = tab.rows[m], tab.cols[m]
        d = tab.dist_l[m]
        head = [
            (tab.rows[c] - mr) / g.height,
            (tab.cols[c] - mc) / g.width,
            (tab.rows[ch] - mr) / g.height,
            (tab.cols[ch] - mc) / g.width,
            d[c] / tab.max_dist,
            d[ch] / tab.max_dist,
        ]
        return np.array(head + tab.wall8_l[m], dtype=np.float32)


# --------------------------------------------------------------------------- N worlds


class BatchedWorld:
    """``N`` independent GreedyMouse worlds stepped together by numpy array operations.

    World ``i`` follows exactly the rules (and random draws) of a :class:`World` with the
    same ``base`` and episode number. State arrays (``int64 (N,)``, read them, don't
    assign): ``mouse``, ``cat``, ``cheese``, ``t``, ``episode``, ``base``/``key``
    (``uint64``), and the episode totals ``total_cheese``, ``total_eaten``,
    ``total_wall_hits``, ``total_reward``.
    """

    def __init__(self, tables: Tables, config: WorldConfig, num_worlds: int) -> None:
        """``num_worlds`` worlds on ``tables`` under ``config`` (call :meth:`reset`)."""
        if isinstance(num_worlds, bool) or not isinstance(num_worlds, (int, np.integer)):
            raise TypeError(f"num_worlds must be an int, got {num_worlds!r}")
        if num_worlds < 1:
            raise ValueError(f"num_worlds must be >= 1, got {num_worlds!r}")
        self.tables = tables
        self.config = config
        self.n = n = int(num_worlds)
        self.mouse = np.zeros(n, dtype=np.int64)
        self.cat = np.zeros(n, dtype=np.int64)
        self.cheese = np.zeros(n, dtype=np.int64)
        self.t = np.zeros(n, dtype=np.int64)
        self.episode = np.zeros(n, dtype=np.int64)
        self.base = np.zeros(n, dtype=np.uint64)
        self.key = np.zeros(n, dtype=np.uint64)
        self.total_cheese = np.zeros(n, dtype=np.int64)
        self.total_eaten = np.zeros(n, dtype=np.int64)
        self.total_wall_hits = np.zeros(n, dtype=np.int64)
        self.total_reward = np.zeros(n, dtype=np.float64)
        self._idx = np.arange(n, dtype=np.int64)
        self._a = tables.num_actions
        self._f = tables.num_free
        self._cat_speed = float(config.cat_speed)
        self._respawn = bool(config.respawn)
        k = tables.local_base.shape[1]
        self._k = k
        table = []
        for code in range(8):
            r = float(config.step_reward)
            if code & 1:
                r += float(config.wall_penalty)
            if code & 2:
                r += float(config.cheese_reward)
            if code & 4:
                r += float(config.eaten_reward)
            table.append(r)
        self._reward_table = np.array(table, dtype=np.float64)

    def reset_worlds(self, which: np.ndarray) -> None:
        """Start a new episode (number ``episode[i]``) in the worlds ``which`` (indices)."""
        if which.size == 0:
            return
        tab = self.tables
        key = episode_key_np(self.base[which], self.episode[which])
        zero = np.zeros(which.size, dtype=np.int64)
        mouse = _pick_np(key, zero, SLOT_RESET_MOUSE, self._f)
        k = _pick_np(key, zero, SLOT_RESET_CAT, tab.far_count.take(mouse))
        cat = tab.far.take(mouse * self._f + k)
        cheese = self._pick_excluding_two(key, zero, SLOT_RESET_CHEESE, mouse, cat)
        self.mouse[which] = mouse
        self.cat[which] = cat
        self.cheese[which] = cheese
        self.key[which] = key
        self.t[which] = 0
        self.total_cheese[which] = 0
        self.total_eaten[which] = 0
        self.total_wall_hits[which] = 0
        self.total_reward[which] = 0.0

    def _pick_excluding_two(
        self, key: np.ndarray, t: np.ndarray, slot: int, a: np.ndarray, b: np.ndarray
    ) -> np.ndarray:
        k = _pick_np(key, t, slot, self._f - 2)
        lo = np.minimum(a, b)
        hi = np.maximum(a, b)
        k += k >= lo
        k += k >= hi
        return k

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, ...]:
        """Advance every world one step with ``actions`` (``int (N,)``, already checked).

        Returns:
            ``(reward, eaten, cheese_eaten, hit_wall)`` arrays of shape ``(N,)``; with
            ``respawn=False`` ``eaten`` is the termination flag.
        """
        tab = self.tables
        self.t += 1
        old = self.mouse
        mouse = tab.move_flat.take(old * self._a + actions)
        hit_wall = mouse == old
        self.mouse = mouse
        cat = self.cat
        eaten = mouse == cat
        cheese_eaten = (mouse == self.cheese) & ~eaten
        if cheese_eaten.any():
            w = np.flatnonzero(cheese_eaten)
            self.cheese[w] = self._pick_excluding_two(
                self.key[w], self.t[w], SLOT_CHEESE, mouse[w], cat[w]
            )
        hop = tab.next_hop_flat.take(cat * self._f + mouse)
        if self._cat_speed >= 1.0:
            moves = ~eaten
        else:
            moves = ~eaten & (uniform_np(self.key, self.t, SLOT_CAT) < self._cat_speed)
        cat = np.where(moves, hop, cat)
        self.cat = cat
        eaten |= cat == mouse
        # reward = table[hit_wall + 2 * cheese_eaten + 4 * eaten] (same float sums as World)
        code = hit_wall.view(np.uint8) | (cheese_eaten.view(np.uint8) << 1)
        code |= eaten.view(np.uint8) << 2
        reward = self._reward_table.take(code)
        if self._respawn and eaten.any():
            self._respawn_mice(np.flatnonzero(eaten))
        self.total_cheese += cheese_eaten
        self.total_eaten += eaten
        self.total_wall_hits += hit_wall
        self.total_reward += reward
        return reward, eaten, cheese_eaten, hit_wall

    def _respawn_mice(self, w: np.ndarray) -> None:
        tab = self.tables
        cat, cheese = self.cat[w], self.cheese[w]
        pair = cat * self._f + cheese
        inside = tab.dist.take(pair) >= tab.min_cat_distance
        k = _pick_np(self.key[w], self.t[w], SLOT_MOUSE, tab.far_count.take(cat) - inside)
        k += inside & (k >= tab.far_rank.take(pair))
        self.mouse[w] = tab.far.take(cat * self._f + k)

    # Observations ------------------------------------------------------------------

    def obs_local(self) -> np.ndarray:
        """``local`` observations, ``int64 (N, k)``."""
        tab = self.tables
        f, k = self._f, self._k
        mouse = self.mouse
        at = mouse * f
        s_cheese = tab.local_slot_k.take(at + self.cheese)
        s_cat = tab.local_slot_k.take(at + self.cat)
        if tab.local_combo is not None:
            return tab.local_combo.take((mouse * (k + 1) + s_cheese) * (k + 1) + s_cat, axis=0)
        obs = np.empty((self.n, k + 1), dtype=np.int64)
        tab.local_base.take(mouse, axis=0, out=obs[:, :k])
        flat = obs.reshape(-1)
        row = self._idx * (k + 1)
        flat[row + s_cheese] = CHEESE
        flat[row + s_cat] = CAT
        return np.ascontiguousarray(obs[:, :k])

    def obs_global(self) -> np.ndarray:
        """``global`` observations, ``uint8 (N, 4, H, W)``."""
        tab = self.tables
        h, w = tab.grid.walls.shape
        out = np.zeros((self.n, 4, h, w), dtype=np.uint8)
        out[:, 0] = tab.grid.walls
        for ch, cell in ((1, self.mouse), (2, self.cat), (3, self.cheese)):
            out[self._idx, ch, tab.rows[cell], tab.cols[cell]] = 1
        return out

    def obs_features(self) -> np.ndarray:
        """``features`` observations, ``float32 (N, 14)``."""
        tab = self.tables
        g = tab.grid
        m, c, ch = self.mouse, self.cat, self.cheese
        out = np.empty((self.n, NUM_FEATURES), dtype=np.float32)
        pm = tab.cells.take(m, axis=0)
        out[:, 0:2] = (tab.cells.take(c, axis=0) - pm) / (g.height, g.width)
        out[:, 2:4] = (tab.cells.take(ch, axis=0) - pm) / (g.height, g.width)
        out[:, 4] = tab.dist.take(m * self._f + c) / tab.max_dist
        out[:, 5] = tab.dist.take(m * self._f + ch) / tab.max_dist
        out[:, 6:] = tab.wall8.take(m, axis=0)
        return out
