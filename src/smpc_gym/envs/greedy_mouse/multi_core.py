"""Multi-mouse GreedyMouse dynamics: N mice, one cat, K cheeses on one grid.

Pure logic: numpy only (plus :mod:`.maps`), no Gymnasium / PettingZoo / pygame, so the
rules can be tested on their own and the PettingZoo env
(:class:`~smpc_gym.envs.greedy_mouse.parallel.GreedyMouseParallelEnv`) stays thin.

The per-step hot path works on Python ints and lists built once from the map's
precomputed tables (``move``, ``dist``, ``next_hop``): with a handful of mice a Python
list look-up is several times faster than a numpy call on a tiny array.

Rules (the single-agent rules of ``specs/greedy_mouse.md`` with these multi-mouse
choices; with ``num_mice=1`` and ``num_cheese=1`` they reduce exactly to the single env):

1. Every live mouse moves (simultaneously; mice do not block each other and may share
   a cell). Moving into a wall / the edge leaves the mouse in place (``hit_wall``).
2. Every mouse on the cat's cell is eaten. If any mouse is eaten here the cat spends
   the step eating: sub-step 4 is skipped for everyone (with one mouse this is the
   single env's "being eaten ends the step").
3. Every cheese with at least one live, uneaten mouse on it is eaten: by that mouse, or,
   when several mice reached it in the same step, by one of them drawn uniformly with
   the world's generator (the others get nothing for it). A cheese that is eaten
   respawns at once on a uniformly drawn free cell holding no mouse, no cat and no other
   cheese. Cheeses are processed in index order.
4. The cat picks its target: the live mouse nearest by BFS distance from the cat's
   cell, ties to the lowest mouse index. It moves one cell along a shortest path to it
   (``next_hop``; ties between first steps by direction order N, NE, E, …) — or, with
   probability ``1 - cat_speed``, stays (one ``random()`` draw per step, only when
   ``cat_speed < 1``).
5. Every live mouse on the cat's (new) cell is eaten.

At the end of the step each eaten mouse either respawns (``respawn=True``) on a
uniformly drawn free cell at BFS distance >= ``min_cat_distance`` from the cat that
holds no other mouse, no cheese and not the cat, or (``respawn=False``) leaves the grid
for good. Eaten mice respawn in index order, each avoiding the ones placed before it.
If no cell meets all the conditions, the free cells farthest from the cat among those
holding nothing else are used instead (only possible on tiny or crowded maps).

Rewards per live mouse and step: ``step_reward`` (+ ``wall_penalty`` when it hit a
wall) + ``cheese_reward`` per cheese it ate + ``eaten_reward`` when eaten.

Reset: the cat is placed uniformly on a free cell that has at least ``num_mice`` free
cells at BFS distance >= ``min_cat_distance``; the mice on distinct cells drawn
uniformly among those; the cheeses on distinct free cells drawn uniformly among the
rest. So all entities start on distinct cells and every mouse starts at least
``min_cat_distance`` from the cat.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from .core import CONFIG_FIELDS, WorldConfig, check_kwargs, local_offsets
from .maps import GridMap, Topology, load_map

__all__ = ["MultiMouseConfig", "MultiMouseWorld", "StepOutcome", "local_offsets"]

#: Local-observation cell codes.
EMPTY, WALL, CHEESE, CAT, MOUSE = 0, 1, 2, 3, 4
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


@dataclass
class StepOutcome:
    """What happened to each mouse in one :meth:`MultiMouseWorld.step` (index = mouse)."""

    rewards: list[float]
    eaten: list[bool]
    cheese_eaten: list[int]  # cheeses eaten by the mouse this step (0 or more)
    hit_wall: list[bool]
    cat_ate: bool  # a mouse was eaten in sub-step 2 and the cat did not move
    cat_target: int  # index of the mouse the cat chased, -1 when it did not move


class MultiMouseWorld:
    """The state and rules of one multi-mouse world (see the module docstring).

    State (all public, Python ints): ``mice[i]`` free-cell id of mouse ``i`` (once it has
    left the game, ``alive[i]`` is False and ``mice[i]`` the cell where it was eaten),
    ``alive[i]``, ``cat``, ``cheeses[k]``. Free-cell ids index
    ``grid.free_cells`` / ``grid.cell_index``. Positions can be set directly (tests do,
    for hand-worked cases); the rules only require cat and cheeses on free cells.
    """

    def __init__(self, config: MultiMouseConfig) -> None:
        """Precompute the Python-int tables for ``config`` (validated)."""
        config.validate()
        self.config = config
        self.grid: GridMap = config.grid
        self.topology: Topology = self.grid.topology(config.directions, config.cut_corners)
        topo = self.topology
        n_free = self.grid.num_free
        self.num_free = n_free
        self._move: list[list[int]] = topo.move.tolist()
        self._dist: list[list[int]] = topo.dist.tolist()
        self._next_hop: list[list[int]] = topo.next_hop.tolist()
        self.free_rc: list[tuple[int, int]] = [(int(r), int(c)) for r, c in self.grid.free_cells]
        self.max_dist = int(topo.dist.max())
        # Cells far enough from each cell for a mouse to start / respawn there.
        mcd = config.min_cat_distance
        far = topo.dist >= mcd
        self._far_count = far.sum(axis=1)
        self._cat_starts = np.flatnonzero(self._far_count >= config.num_mice)
        if self._cat_starts.size == 0:
            raise ValueError(
                f"num_mice={config.num_mice} do not fit on map {self.grid.name!r} with "
                f"min_cat_distance={mcd}: no cell has {config.num_mice} free cells at BFS "
                f"distance >= {mcd} (at most {int(self._far_count.max())}); use fewer mice "
                "or a smaller min_cat_distance"
            )
        self._far: list[list[int]] = [np.flatnonzero(row).tolist() for row in far]
        self._all_cells: list[int] = list(range(n_free))
        self._local_nbrs = self._local_neighbour_table(config.lookdist)
        self._walls8: list[list[int]] = [self.neighbour_walls(s) for s in range(n_free)]
        self.num_mice = config.num_mice
        self.mice: list[int] = [0] * config.num_mice
        self.alive: list[bool] = [True] * config.num_mice
        self.cat = 0
        self.cheeses: list[int] = [0] * config.num_cheese

    # ---------------------------------------------------------------- tables
    def _local_neighbour_table(self, lookdist: int) -> np.ndarray:
        """``(F, k)`` int: free-cell id of each local cell, ``F`` (a wall sentinel) else."""
        h, w = self.grid.height, self.grid.width
        ci = self.grid.cell_index
        offs = local_offsets(lookdist)
        table = np.full((self.num_free, len(offs)), self.num_free, dtype=np.intp)
        for s, (r, c) in enumerate(self.free_rc):
            for j, (dr, dc) in enumerate(offs):
                rr, cc = r + dr, c + dc
                if 0 <= rr < h and 0 <= cc < w and ci[rr, cc] >= 0:
                    table[s, j] = ci[rr, cc]
        return table

    def neighbour_walls(self, cell: int) -> list[int]:
        """1/0 wall mask of the 8 neighbours of ``cell`` in direction order N, NE, … NW."""
        h, w = self.grid.height, self.grid.width
        r, c = self.free_rc[cell]
        out = []
        for dr, dc in (
            (-1, 0),
            (-1, 1),
            (0, 1),
            (1, 1),
            (1, 0),
            (1, -1),
            (0, -1),
            (-1, -1),
        ):
            rr, cc = r + dr, c + dc
            out.append(int(not (0 <= rr < h and 0 <= cc < w) or bool(self.grid.walls[rr, cc])))
        return out

    def dist(self, a: int, b: int) -> int:
        """BFS distance between free cells ``a`` and ``b``."""
        return self._dist[a][b]

    # ---------------------------------------------------------------- sampling
    @staticmethod
    def _uniform_index(rng: np.random.Generator, m: int) -> int:
        """A uniform index in ``0 … m-1`` (one ``random()`` draw: cheaper than ``integers``)."""
        k = int(rng.random() * m)
        return k if k < m else m - 1

    def _draw_from(self, rng: np.random.Generator, cells: list[int], taken: set[int]) -> int:
        """A uniform element of ``cells`` not in ``taken`` (-1 if there is none).

        Rejection sampling first (the taken set is small), then an exact draw.
        """
        m = len(cells)
        for _ in range(16):
            c = cells[self._uniform_index(rng, m)]
            if c not in taken:
                return c
        options = [c for c in cells if c not in taken]
        if not options:
            return -1
        return options[self._uniform_index(rng, len(options))]

    def _draw_cell(self, rng: np.random.Generator, taken: set[int]) -> int:
        """A uniform free cell not in ``taken``."""
        return self._draw_from(rng, self._all_cells, taken)

    def _draw_respawn(self, rng: np.random.Generator, taken: set[int]) -> int:
        """A respawn cell: >= min_cat_distance from the cat, not in ``taken``."""
        cell = self._draw_from(rng, self._far[self.cat], taken)
        if cell >= 0:
            return cell
        # Tiny / crowded map: the farthest free cells holding nothing else.
        d = self._dist[self.cat]
        rest = [c for c in self._all_cells if c != self.cat and c not in taken]
        if not rest:
            rest = [c for c in self._all_cells if c != self.cat]
        best = max(d[c] for c in rest)
        options = [c for c in rest if d[c] == best]
        return options[self._uniform_index(rng, len(options))]

    def reset(self, rng: np.random.Generator) -> None:
        """Place the cat, the mice and the cheeses (see the module docstring)."""
        cfg = self.config
        self.cat = int(self._cat_starts[int(rng.integers(self._cat_starts.size))])
        far = self._far[self.cat]
        picks = rng.choice(len(far), size=cfg.num_mice, replace=False)
        self.mice = [far[int(p)] for p in picks]
        self.alive = [True] * cfg.num_mice
        taken = set(self.mice)
        taken.add(self.cat)
        rest = [c for c in self._all_cells if c not in taken]
        picks = rng.choice(len(rest), size=cfg.num_cheese, replace=False)
        self.cheeses = [rest[int(p)] for p in picks]

    # ---------------------------------------------------------------- dynamics
    def step(self, actions: list[int], rng: np.random.Generator) -> StepOutcome:
        """Advance one step. ``actions[i]`` is mouse ``i``'s action (ignored if not alive)."""
        cfg = self.config
        n = self.num_mice
        mice, alive, move = self.mice, self.alive, self._move
        rewards = [0.0] * n
        eaten = [False] * n
        hit_wall = [False] * n
        got = [0] * n
        live = [i for i in range(n) if alive[i]]
        cat = self.cat
        # 1. mice move
        for i in live:
            src = mice[i]
            dst = move[src][actions[i]]
            if dst == src:
                hit_wall[i] = True
                rewards[i] = cfg.step_reward + cfg.wall_penalty
            else:
                mice[i] = dst
                rewards[i] = cfg.step_reward
        # 2. mice that walked onto the cat
        cat_ate = False
        for i in live:
            if mice[i] == cat:
                eaten[i] = True
                cat_ate = True
        # 3. cheese
        for k in range(len(self.cheeses)):
            cell = self.cheeses[k]
            on = [i for i in live if mice[i] == cell and not eaten[i]]
            if not on:
                continue
            winner = on[0] if len(on) == 1 else on[self._uniform_index(rng, len(on))]
            got[winner] += 1
            rewards[winner] += cfg.cheese_reward
            taken = {mice[i] for i in live}
            taken.add(cat)
            taken.update(self.cheeses)
            self.cheeses[k] = self._draw_cell(rng, taken)
        # 4. cat
        target = -1
        if not cat_ate:
            chasing = [i for i in live if not eaten[i]]
            if chasing:
                d = self._dist[cat]
                target = min(chasing, key=lambda i: (d[mice[i]], i))
                if cfg.cat_speed >= 1.0 or rng.random() < cfg.cat_speed:
                    cat = self._next_hop[cat][mice[target]]
                    self.cat = cat
            # 5. the cat reaches mice
            for i in chasing:
                if mice[i] == cat:
                    eaten[i] = True
        # eaten mice: reward, then respawn or leave
        if any(eaten):
            taken = {mice[i] for i in live if not eaten[i]}
            taken.add(cat)
            taken.update(self.cheeses)
            for i in live:
                if not eaten[i]:
                    continue
                rewards[i] += cfg.eaten_reward
                if cfg.respawn:
                    mice[i] = self._draw_respawn(rng, taken)
                    taken.add(mice[i])
                else:
                    alive[i] = False  # stays on the cell where it was eaten, off the game
        return StepOutcome(rewards, eaten, got, hit_wall, cat_ate, target)

    # ---------------------------------------------------------------- observations
    def cell_codes(self) -> np.ndarray:
        """``(F + 1,)`` int64 local codes of every free cell (+ a wall sentinel at ``F``).

        Priority when several entities share a cell: cat > cheese > other mouse.
        """
        codes = np.zeros(self.num_free + 1, dtype=np.int64)
        codes[-1] = WALL
        if self.num_mice > 1:
            for i in range(self.num_mice):
                if self.alive[i]:
                    codes[self.mice[i]] = MOUSE
        for c in self.cheeses:
            codes[c] = CHEESE
        codes[self.cat] = CAT
        return codes

    def local_obs(self, i: int, codes: np.ndarray) -> np.ndarray:
        """Local observation of mouse ``i`` given :meth:`cell_codes`."""
        return codes[self._local_nbrs[self.mice[i]]]

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
