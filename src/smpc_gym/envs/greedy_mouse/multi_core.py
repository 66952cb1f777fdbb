"""Multi-mouse GreedyMouse dynamics: N mice, one cat, K cheeses on one grid.

Pure logic: numpy only (plus :mod:`.maps` and :mod:`.core`), no Gymnasium / PettingZoo /
pygame, so the rules can be tested on their own and the PettingZoo env
(:class:`~smpc_gym.envs.greedy_mouse.parallel.GreedyMouseParallelEnv`) stays thin.

It reuses the single env's pieces: the option checks (:class:`.core.WorldConfig`), the
precomputed tables (:func:`.core.build_tables`: moves, BFS distances, next hops, far
cells, local windows — as Python lists, because a Python list look-up beats a numpy call
on a handful of mice) and the counter-based randomness (:func:`.core.uniform`). With
``num_mice=1, num_cheese=1`` every draw uses the single env's slot, so the same seed and
actions give exactly :class:`~smpc_gym.envs.greedy_mouse.env.GreedyMouseEnv`'s
trajectory.

Rules (the single-agent rules of :class:`~smpc_gym.envs.greedy_mouse.env.GreedyMouseEnv` with these multi-mouse
choices; with one mouse they reduce exactly to the single env):

1. Every live mouse moves (simultaneously; mice do not block each other and may share
   a cell). Moving into a wall / the edge leaves the mouse in place (``hit_wall``).
2. Every mouse on the cat's cell is eaten. If any mouse is eaten here the cat spends
   the step eating: sub-step 4 is skipped for everyone (with one mouse this is the
   single env's "being eaten ends the step").
3. Every cheese with at least one live, uneaten mouse on it is eaten: by that mouse, or,
   when several mice reached it in the same step, by one of them drawn uniformly (the
   others get nothing for it). A cheese that is eaten respawns at once on a uniformly
   drawn free cell holding no mouse, not the cat and no other cheese. Cheeses are
   processed in index order.
4. The cat picks its target: the live mouse nearest by BFS distance from the cat's
   cell, ties to the lowest mouse index. It moves one cell along a shortest path to it
   (``next_hop``; ties between first steps by direction order N, NE, E, …) — or, with
   probability ``1 - cat_speed``, stays.
5. Every live mouse on the cat's (new) cell is eaten.

At the end of the step each eaten mouse either respawns (``respawn=True``) on a
uniformly drawn free cell at BFS distance >= ``min_cat_distance`` from the cat that
holds no other mouse and no cheese, or (``respawn=False``) leaves the game for good.
Eaten mice respawn in index order, each avoiding the ones placed before it. If no cell
meets all the conditions, the free cells farthest from the cat among those holding
nothing else are used instead (only possible on tiny or crowded maps).

Rewards per live mouse and step: ``step_reward`` (+ ``wall_penalty`` when it hit a
wall) + ``cheese_reward`` for a cheese it ate + ``eaten_reward`` when eaten.

Reset: mouse 0 uniformly on a free cell, the cat uniformly among the cells at BFS
distance >= ``min_cat_distance`` from it (as in the single env) — unless that cell has
fewer than ``num_mice`` cells that far, in which case the cat is drawn uniformly among
the cells that do and mouse 0 among the cells far from it — then the other mice on distinct cells drawn
uniformly among the cells that far from the cat, then the cheeses on distinct free
cells drawn uniformly among the rest. So all entities start on distinct cells and every
mouse starts at least ``min_cat_distance`` from the cat.

Randomness: episode key ``key`` (from :func:`.core.episode_key`) and the ``slot``-th
number of step ``t`` is ``core.uniform(key, t, slot)``. Slots: the single env's slots
(cat coin 0, cheese-0 respawn 1, mouse-0 respawn 2, reset of mouse 0 / cat / cheese 0:
3 / 4 / 5), and for the other entities ``100 + 3k`` (respawn of cheese ``k``),
``101 + 3i`` (respawn of mouse ``i``), ``102 + 3k`` (who eats cheese ``k``),
``200 + 2i`` / ``201 + 2k`` (reset of mouse ``i`` / cheese ``k``), ``1000`` / ``1001``
(reset of cat / mouse 0 when the first cat has no room).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from .core import (
    CAT,
    CHEESE,
    CONFIG_FIELDS,
    SLOT_CAT,
    SLOT_CHEESE,
    SLOT_MOUSE,
    SLOT_RESET_CAT,
    SLOT_RESET_CHEESE,
    SLOT_RESET_MOUSE,
    WALL,
    Tables,
    WorldConfig,
    build_tables,
    check_kwargs,
    local_offsets,
    uniform,
)
from .maps import GridMap, Topology, load_map

__all__ = ["MultiMouseConfig", "MultiMouseWorld", "StepOutcome", "local_offsets"]

#: Local-observation code of another mouse (0-3 are the single env's codes).
MOUSE = 4
#: Channel order of the ``global`` observation (``MOUSE_OTHERS`` only with several mice).
CH_WALL, CH_MOUSE, CH_CAT, CH_CHEESE, CH_OTHERS = 0, 1, 2, 3, 4


@dataclass
class MultiMouseConfig:
    """Options of the multi-mouse GreedyMouse world (all keyword arguments of the env).

    Attributes:
        num_mice: number of mice (agents ``mouse_0 … mouse_{N-1}``), >= 1.
        num_cheese: number of cheeses on the grid at all times, >= 1.
        map: a built-in map name (``"classic"``, ``"maze41"``) or a map file path.
        obs_mode: ``"local"``, ``"global"`` or ``"features"`` (see the env docstring).
        lookdist: Chebyshev radius of the ``local`` observation, >= 1.
        directions: 8 (compass incl. diagonals) or 4 (N, E, S, W) — for mice and cat.
        cut_corners: allow diagonal moves between two walls that touch at a corner.
        cat_speed: probability in [0, 1] that the cat moves in a step.
        respawn: eaten mice respawn (True) or leave the game (False).
        min_cat_distance: minimum BFS distance cat–mouse at reset and respawn, >= 1.
        max_cycles: steps after which every remaining mouse is truncated, >= 1.
        step_reward: reward of every live mouse each step.
        cheese_reward: reward for eating a cheese.
        eaten_reward: reward for being eaten.
        wall_penalty: added to the reward of a mouse that moved into a wall.
    """

    num_mice: int = 2
    num_cheese: int = 1
    map: str | Path = "classic"
    obs_mode: str = "local"
    lookdist: int = 1
    directions: int = 8
    cut_corners: bool = True
    cat_speed: float = 1.0
    respawn: bool = True
    min_cat_distance: int = 3
    max_cycles: int = 1000
    step_reward: float = -1.0
    cheese_reward: float = 50.0
    eaten_reward: float = -100.0
    wall_penalty: float = 0.0
    _grid: GridMap | None = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def from_kwargs(cls, extra_valid: tuple[str, ...] = (), **kwargs: Any) -> MultiMouseConfig:
        """Build a validated config from keyword arguments.

        ``extra_valid`` names further arguments the caller accepts (listed in the error).

        Raises:
            TypeError: for unknown names (listing the valid ones) or wrongly typed values.
            ValueError: for out-of-range values or more mice/cheeses than the map can hold.
        """
        valid = [f.name for f in fields(cls) if f.init]
        unknown = {k: v for k, v in kwargs.items() if k not in valid}
        check_kwargs("greedy_mouse_v0", unknown, [*valid, *extra_valid])
        cfg = cls(**kwargs)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """Check every option; raise ``ValueError``/``TypeError`` naming the bad value."""
        # The options shared with the single env are checked by its own config class,
        # so both envs accept and reject exactly the same values.
        WorldConfig(**{name: getattr(self, name) for name in CONFIG_FIELDS})
        for name, lo in (("num_mice", 1), ("num_cheese", 1), ("max_cycles", 1)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise TypeError(f"{name} must be an int >= {lo}, got {v!r} ({type(v).__name__})")
            if v < lo:
                raise ValueError(f"{name} must be >= {lo}, got {v!r}")
        grid = load_map(self.map)
        need = self.num_mice + self.num_cheese + 1
        if need > grid.num_free:
            raise ValueError(
                f"num_mice={self.num_mice} and num_cheese={self.num_cheese} do not fit on map "
                f"{grid.name!r}: it has {grid.num_free} free cells and needs num_mice + "
                f"num_cheese + 1 (cat) <= {grid.num_free}"
            )
        self._grid = grid
        # Plain Python types from here on (numpy scalars are accepted as input).
        for name in ("num_mice", "num_cheese", "max_cycles", "lookdist", "directions"):
            setattr(self, name, int(getattr(self, name)))
        self.min_cat_distance = int(self.min_cat_distance)
        self.cut_corners, self.respawn = bool(self.cut_corners), bool(self.respawn)
        for name in ("cat_speed", "step_reward", "cheese_reward", "eaten_reward", "wall_penalty"):
            setattr(self, name, float(getattr(self, name)))

    @property
    def grid(self) -> GridMap:
        """The loaded map (after :meth:`validate`)."""
        if self._grid is None:
            self.validate()
        assert self._grid is not None
        return self._grid


def _pick(key: int, t: int, slot: int, m: int) -> int:
    """Uniform index in ``0 … m-1`` from ``uniform(key, t, slot)`` (as the single env)."""
    k = int(uniform(key, t, slot) * m)
    return k if k < m else m - 1


@dataclass
class StepOutcome:
    """What happened to each mouse in one :meth:`MultiMouseWorld.step` (index = mouse)."""

    rewards: list[float]
    eaten: list[bool]
    cheese_eaten: list[int]  # 1 if the mouse ate a cheese this step, else 0
    hit_wall: list[bool]
    cat_ate: bool  # a mouse was eaten in sub-step 2 and the cat did not move
    cat_target: int  # index of the mouse the cat chased; -1 if it ate (or none is live)


class MultiMouseWorld:
    """The state and rules of one multi-mouse world (see the module docstring).

    State (all public, Python ints): ``mice[i]`` free-cell id of mouse ``i`` (once it has
    left the game, ``alive[i]`` is False and ``mice[i]`` the cell where it was eaten),
    ``alive[i]``, ``cat``, ``cheeses[k]``, the episode's random ``key`` and the step
    counter ``t``. Free-cell ids index ``grid.free_cells`` / ``grid.cell_index``.
    Positions can be set directly (tests do, for hand-worked cases).
    """

    def __init__(self, config: MultiMouseConfig) -> None:
        """Fetch the shared tables for ``config`` (validated) and check that it fits."""
        config.validate()
        self.config = config
        self.grid: GridMap = config.grid
        self.topology: Topology = self.grid.topology(config.directions, config.cut_corners)
        tab = build_tables(
            self.grid,
            config.directions,
            config.cut_corners,
            config.min_cat_distance,
            config.lookdist,
        )
        self.tables: Tables = tab
        self.num_free = tab.num_free
        self.num_mice = config.num_mice
        self.max_dist = tab.max_dist
        self.free_rc: list[tuple[int, int]] = [(int(r), int(c)) for r, c in self.grid.free_cells]
        self._move = tab.move_l
        self._dist = tab.dist_l
        self._hop = tab.next_hop_l
        self._far = tab.far_l
        self._far_rank = tab.far_rank_l
        # Local window as free-cell ids (F = wall / off-grid sentinel), so that one
        # fancy-index per mouse reads its window from a shared code array.
        offs = local_offsets(config.lookdist)
        self._window = np.full((tab.num_free, len(offs)), tab.num_free, dtype=np.intp)
        ci, (h, w) = self.grid.cell_index, self.grid.walls.shape
        for cell, (r, c) in enumerate(self.free_rc):
            for j, (dr, dc) in enumerate(offs):
                if 0 <= r + dr < h and 0 <= c + dc < w and ci[r + dr, c + dc] >= 0:
                    self._window[cell, j] = ci[r + dr, c + dc]
        self._codes_base = np.zeros(tab.num_free + 1, dtype=np.int64)
        self._codes_base[-1] = WALL
        self._walls8 = tab.wall8_l
        mcd = config.min_cat_distance
        self._cat_starts = np.flatnonzero(tab.far_count >= config.num_mice).tolist()
        if not self._cat_starts:
            raise ValueError(
                f"num_mice={config.num_mice} do not fit on map {self.grid.name!r} with "
                f"min_cat_distance={mcd}: no cell has {config.num_mice} free cells at BFS "
                f"distance >= {mcd} (at most {int(tab.far_count.max())}); use fewer mice "
                "or a smaller min_cat_distance"
            )
        self.mice: list[int] = [0] * config.num_mice
        self.alive: list[bool] = [True] * config.num_mice
        self.cat = 0
        self.cheeses: list[int] = [0] * config.num_cheese
        self.key = 0
        self.t = 0

    def dist(self, a: int, b: int) -> int:
        """BFS distance between free cells ``a`` and ``b``."""
        return self._dist[a][b]

    # ---------------------------------------------------------------- sampling
    def _pick_free(self, t: int, slot: int, taken: set[int]) -> int:
        """Uniform free cell not in ``taken`` (the single env's ``_pick_excluding_*``)."""
        k = _pick(self.key, t, slot, self.num_free - len(taken))
        for x in sorted(taken):
            if k >= x:
                k += 1
        return k

    def _pick_far(self, t: int, slot: int, taken: set[int]) -> int:
        """Uniform cell at distance >= min_cat_distance from the cat, not in ``taken``.

        -1 if there is none. Same draw as the single env's mouse respawn.
        """
        far = self._far[self.cat]
        d = self._dist[self.cat]
        mcd = self.config.min_cat_distance
        rank = self._far_rank[self.cat]
        skip = sorted(rank[x] for x in taken if d[x] >= mcd)
        m = len(far) - len(skip)
        if m <= 0:
            return -1
        k = _pick(self.key, t, slot, m)
        for r in skip:
            if k >= r:
                k += 1
        return far[k]

    def _respawn_cell(self, t: int, slot: int, taken: set[int]) -> int:
        cell = self._pick_far(t, slot, taken)
        if cell >= 0:
            return cell
        # Tiny / crowded map: the farthest free cells holding nothing else.
        d = self._dist[self.cat]
        rest = [c for c in range(self.num_free) if c != self.cat and c not in taken]
        if not rest:
            rest = [c for c in range(self.num_free) if c != self.cat]
        best = max(d[c] for c in rest)
        options = [c for c in rest if d[c] == best]
        return options[_pick(self.key, t, slot, len(options))]

    def reset(self, key: int) -> None:
        """Place mice, cat and cheeses for a new episode with random key ``key``."""
        cfg = self.config
        self.key = key
        self.t = 0
        n = self.num_free
        need = cfg.num_mice
        far_l = self._far
        mouse0 = _pick(key, 0, SLOT_RESET_MOUSE, n)  # the single env's draws ...
        far = far_l[mouse0]
        cat = far[_pick(key, 0, SLOT_RESET_CAT, len(far))]
        if len(far_l[cat]) < need:  # ... unless that cat has no room for all the mice
            cat = self._cat_starts[_pick(key, 0, 1000, len(self._cat_starts))]
            far = far_l[cat]
            mouse0 = far[_pick(key, 0, 1001, len(far))]
        self.cat = cat
        self.mice = [mouse0]
        self.alive = [True] * need
        taken = {mouse0, cat}
        for i in range(1, need):
            cell = self._pick_far(0, 200 + 2 * i, taken)
            self.mice.append(cell)
            taken.add(cell)
        self.cheeses = []
        for k in range(cfg.num_cheese):
            cell = self._pick_free(0, SLOT_RESET_CHEESE if k == 0 else 201 + 2 * k, taken)
            self.cheeses.append(cell)
            taken.add(cell)

    # ---------------------------------------------------------------- dynamics
    def step(self, actions: list[int]) -> StepOutcome:
        """Advance one step. ``actions[i]`` is mouse ``i``'s action (ignored if not alive)."""
        cfg = self.config
        self.t = t = self.t + 1
        n = self.num_mice
        mice, alive, move = self.mice, self.alive, self._move
        r_step, r_wall = cfg.step_reward, cfg.step_reward + cfg.wall_penalty
        rewards = [0.0] * n
        eaten = [False] * n
        hit_wall = [False] * n
        got = [0] * n
        live = [i for i in range(n) if alive[i]]
        cat = self.cat
        # 1. mice move; 2. mice that walked onto the cat are eaten
        cat_ate = False
        for i in live:
            src = mice[i]
            dst = move[src][actions[i]]
            if dst == src:
                hit_wall[i] = True
                rewards[i] = r_wall
            else:
                mice[i] = dst
                rewards[i] = r_step
            if dst == cat:
                eaten[i] = cat_ate = True
        # 3. cheese
        cheeses = self.cheeses
        for k, cell in enumerate(cheeses):
            on = [i for i in live if mice[i] == cell and not eaten[i]]
            if not on:
                continue
            winner = on[0] if len(on) == 1 else on[_pick(self.key, t, 102 + 3 * k, len(on))]
            got[winner] = 1
            rewards[winner] += cfg.cheese_reward
            taken = {mice[i] for i in live}
            taken.add(cat)
            taken.update(cheeses)
            cheeses[k] = self._pick_free(t, SLOT_CHEESE if k == 0 else 100 + 3 * k, taken)
        # 4. cat; 5. the cat reaches mice
        target = -1
        if not cat_ate:
            d = self._dist[cat]
            best = -1
            for i in live:
                if best < 0 or d[mice[i]] < best:
                    target, best = i, d[mice[i]]
            if target >= 0:
                speed = cfg.cat_speed
                if speed >= 1.0 or uniform(self.key, t, SLOT_CAT) < speed:
                    cat = self._hop[cat][mice[target]]
                    self.cat = cat
                for i in live:
                    if mice[i] == cat:
                        eaten[i] = True
        # eaten mice: reward, then respawn or leave
        if any(eaten):
            taken = {mice[i] for i in live if not eaten[i]}
            taken.update(cheeses)
            for i in live:
                if not eaten[i]:
                    continue
                rewards[i] += cfg.eaten_reward
                if cfg.respawn:
                    mice[i] = self._respawn_cell(t, SLOT_MOUSE if i == 0 else 101 + 3 * i, taken)
                    taken.add(mice[i])
                else:
                    alive[i] = False  # stays on the cell where it was eaten, off the game
        return StepOutcome(rewards, eaten, got, hit_wall, cat_ate, target)

    # ---------------------------------------------------------------- observations
    def cell_codes(self) -> np.ndarray:
        """``(F + 1,)`` int64 local-observation code of every free cell, + 1 (wall) at ``F``.

        Codes 0 empty, 2 cheese, 3 cat, 4 a live mouse (only with several mice; a mouse
        never sees its own cell). Priority on a shared cell: cat > cheese > mouse.
        """
        codes = self._codes_base.copy()
        if self.num_mice > 1:
            alive = self.alive
            for j, cell in enumerate(self.mice):
                if alive[j]:
                    codes[cell] = MOUSE
        for cell in self.cheeses:
            codes[cell] = CHEESE
        codes[self.cat] = CAT
        return codes

    def local_obs(self, i: int, codes: np.ndarray | None = None) -> np.ndarray:
        """Local observation of mouse ``i`` (pass :meth:`cell_codes` to share it).

        The window's cells in :func:`local_offsets` order, coded 0 empty, 1 wall (or
        off the grid), 2 cheese, 3 cat, 4 another mouse.
        """
        if codes is None:
            codes = self.cell_codes()
        return codes[self._window[self.mice[i]]]

    def global_obs(self, i: int) -> np.ndarray:
        """``(C, H, W)`` uint8 one-hot planes seen by mouse ``i``.

        Channels: wall, this mouse, cat, cheese, and with several mice a fifth plane of
        the *other* live mice.
        """
        obs = self._global_base()
        r, c = self.free_rc[self.mice[i]]
        obs[CH_MOUSE, r, c] = 1
        if self.num_mice > 1:
            for j in range(self.num_mice):
                if j != i and self.alive[j]:
                    rr, cc = self.free_rc[self.mice[j]]
                    obs[CH_OTHERS, rr, cc] = 1
        return obs

    def _global_base(self) -> np.ndarray:
        n_ch = 5 if self.num_mice > 1 else 4
        obs = np.zeros((n_ch, self.grid.height, self.grid.width), dtype=np.uint8)
        obs[CH_WALL] = self.grid.walls
        r, c = self.free_rc[self.cat]
        obs[CH_CAT, r, c] = 1
        for k in self.cheeses:
            r, c = self.free_rc[k]
            obs[CH_CHEESE, r, c] = 1
        return obs

    def nearest_cheese(self, cell: int) -> int:
        """The cheese cell nearest (BFS) to ``cell``; ties to the lowest cheese index."""
        d = self._dist[cell]
        return min(self.cheeses, key=lambda k: d[k])

    def features_obs(self, i: int) -> np.ndarray:
        """The ``features`` vector of mouse ``i`` (float32, every entry in [-1, 1]).

        ``[cat_dr/H, cat_dc/W, cheese_dr/H, cheese_dc/W, dist_cat/D, dist_cheese/D,
        wall N, NE, E, SE, S, SW, W, NW]`` with ``D`` the map's largest BFS distance and
        ``cheese`` the nearest cheese; with several mice three more entries for the
        nearest other live mouse ``[dr/H, dc/W, dist/D]`` (``[0, 0, 1]`` when there is
        none).
        """
        cell = self.mice[i]
        h, w, dmax = self.grid.height, self.grid.width, self.max_dist
        r, c = self.free_rc[cell]
        d = self._dist[cell]
        cr, cc = self.free_rc[self.cat]
        ch = self.nearest_cheese(cell)
        kr, kc = self.free_rc[ch]
        vals = [
            (cr - r) / h,
            (cc - c) / w,
            (kr - r) / h,
            (kc - c) / w,
            d[self.cat] / dmax,
            d[ch] / dmax,
        ]
        vals.extend(self._walls8[cell])
        if self.num_mice > 1:
            others = [j for j in range(self.num_mice) if j != i and self.alive[j]]
            if others:
                j = min(others, key=lambda j: (d[self.mice[j]], j))
                mr, mc = self.free_rc[self.mice[j]]
                vals.extend(((mr - r) / h, (mc - c) / w, d[self.mice[j]] / dmax))
            else:
                vals.extend((0.0, 0.0, 1.0))
        return np.array(vals, dtype=np.float32)

    @property
    def features_size(self) -> int:
        """Length of :meth:`features_obs`."""
        return 14 + (3 if self.num_mice > 1 else 0)

    def state_planes(self) -> np.ndarray:
        """``(3 + N, H, W)`` uint8 global state: wall, cat, cheese, mouse_0 … mouse_{N-1}.

        A mouse that has left the game (``respawn=False``) has an all-zero plane.
        """
        planes = np.zeros((3 + self.num_mice, self.grid.height, self.grid.width), np.uint8)
        planes[0] = self.grid.walls
        r, c = self.free_rc[self.cat]
        planes[1, r, c] = 1
        for k in self.cheeses:
            r, c = self.free_rc[k]
            planes[2, r, c] = 1
        for j in range(self.num_mice):
            if self.alive[j]:
                r, c = self.free_rc[self.mice[j]]
                planes[3 + j, r, c] = 1
        return planes
