"""GreedyMouse maps: parsing, validation and precomputed shortest-path tables.

Pure logic: numpy and scipy only, no Gymnasium / PettingZoo / pygame.

A map is a text file, one row per line: ``X`` is a wall, a space or ``.`` is free.
Cells are addressed as ``(row, col)`` with row 0 at the top, and free cells are also
numbered ``0 … F-1`` in row-major order (``GridMap.cell_index``). All movement and
shortest-path tables are indexed by these free-cell ids.

Directions (and so the tie-breaking order of the cat's shortest paths) are
``N, NE, E, SE, S, SW, W, NW`` for ``directions=8`` and ``N, E, S, W`` for
``directions=4``; the cat takes the *first* direction in that order whose cell is one
step closer to its target.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import shortest_path

#: (d_row, d_col) of the 8 compass directions, in action order 0..7.
DIRECTIONS_8: tuple[tuple[int, int], ...] = (
    (-1, 0),  # 0 N
    (-1, 1),  # 1 NE
    (0, 1),  # 2 E
    (1, 1),  # 3 SE
    (1, 0),  # 4 S
    (1, -1),  # 5 SW
    (0, -1),  # 6 W
    (-1, -1),  # 7 NW
)
#: (d_row, d_col) of the 4 compass directions, in action order 0..3 (N, E, S, W).
DIRECTIONS_4: tuple[tuple[int, int], ...] = ((-1, 0), (0, 1), (1, 0), (0, -1))

WALL_CHARS = frozenset("X")
FREE_CHARS = frozenset(" .")


class MapError(ValueError):
    """A map file or string that is not a valid GreedyMouse map."""


def builtin_maps() -> list[str]:
    """Names of the maps shipped with the package (usable as ``map=NAME``)."""
    root = resources.files("smpc_gym.envs.greedy_mouse") / "maps"
    return sorted(p.name[: -len(".txt")] for p in root.iterdir() if p.name.endswith(".txt"))


def directions_for(directions: int) -> tuple[tuple[int, int], ...]:
    """The direction vectors for ``directions`` (4 or 8), in action order."""
    if directions == 8:
        return DIRECTIONS_8
    if directions == 4:
        return DIRECTIONS_4
    raise ValueError(f"directions must be 4 or 8, got {directions!r}")


@dataclass(frozen=True)
class Topology:
    """Movement and shortest-path tables of one map under one movement rule.

    Attributes:
        move: ``(F, A)`` int32, the cell reached from cell ``s`` by action ``a``
            (``s`` itself when the move is blocked by a wall, the grid edge or, with
            ``cut_corners=False``, a corner).
        blocked: ``(F, A)`` bool, ``move[s, a] == s``.
        dist: ``(F, F)`` int32, BFS distance between two cells under the same moves.
        next_hop: ``(F, F)`` int32, ``next_hop[src, dst]`` is the first cell of a
            shortest path from ``src`` to ``dst`` (ties broken by direction order);
            ``src`` itself when ``src == dst``.
    """

    directions: int
    cut_corners: bool
    move: np.ndarray
    blocked: np.ndarray
    dist: np.ndarray
    next_hop: np.ndarray


@dataclass(frozen=True, eq=False)
class GridMap:
    """A parsed, validated map.

    Attributes:
        name: the built-in name or the path it was loaded from.
        walls: ``(H, W)`` bool, True on walls.
        free_cells: ``(F, 2)`` int32 ``(row, col)`` of each free cell, row-major.
        cell_index: ``(H, W)`` int32, the free-cell id of each cell, -1 on walls.
    """

    name: str
    walls: np.ndarray
    free_cells: np.ndarray
    cell_index: np.ndarray
    _topologies: dict[tuple[int, bool], Topology] = field(default_factory=dict, repr=False)

    @property
    def height(self) -> int:
        return int(self.walls.shape[0])

    @property
    def width(self) -> int:
        return int(self.walls.shape[1])

    @property
    def num_free(self) -> int:
        return int(self.free_cells.shape[0])

    def topology(self, directions: int = 8, cut_corners: bool = True) -> Topology:
        """Movement and all-pairs shortest-path tables (computed once, then cached).

        Raises:
            MapError: if the free cells are not one connected component under these
                moves (the message names a cell that cannot be reached).
        """
        key = (directions, bool(cut_corners))
        topo = self._topologies.get(key)
        if topo is None:
            topo = _build_topology(self, directions, bool(cut_corners))
            self._topologies[key] = topo
        return topo


def parse_map(text: str, name: str = "<string>") -> GridMap:
    """Parse map text. Raises :class:`MapError` naming the offending row / cell."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines = lines[:-1]  # the final newline
    lines = [ln.rstrip("\r") for ln in lines]
    if not lines or all(ln == "" for ln in lines):
        raise MapError(f"map {name!r} is empty: it needs rows of 'X' (wall) and ' '/'.' (free)")
    width = len(lines[0])
    if width == 0:
        raise MapError(f"map {name!r}: row 0 is empty")
    for r, ln in enumerate(lines):
        if len(ln) != width:
            raise MapError(
                f"map {name!r} is ragged: row {r} has width {len(ln)}, row 0 has width "
                f"{width} (all rows must be the same width)"
            )
        for c, ch in enumerate(ln):
            if ch not in WALL_CHARS and ch not in FREE_CHARS:
                raise MapError(
                    f"map {name!r}: unknown character {ch!r} at (row {r}, col {c}); "
                    "allowed: 'X' wall, ' ' or '.' free"
                )
    walls = np.array([[ch in WALL_CHARS for ch in ln] for ln in lines], dtype=bool)
    free = np.argwhere(~walls).astype(np.int32)
    if free.shape[0] < 3:
        raise MapError(
            f"map {name!r} has {free.shape[0]} free cells; at least 3 are needed "
            "(mouse, cat and cheese on distinct cells)"
        )
    cell_index = np.full(walls.shape, -1, dtype=np.int32)
    cell_index[free[:, 0], free[:, 1]] = np.arange(free.shape[0], dtype=np.int32)
    walls.setflags(write=False)
    free.setflags(write=False)
    cell_index.setflags(write=False)
    return GridMap(name=name, walls=walls, free_cells=free, cell_index=cell_index)


@functools.lru_cache(maxsize=32)
def _load_cached(key: str, text: str) -> GridMap:
    return parse_map(text, name=key)


def load_map(map: str | Path | GridMap = "classic") -> GridMap:  # noqa: A002 - env kwarg
    """Load a built-in map by name (``"classic"``, ``"maze41"``) or a map file by path
    (a :class:`GridMap` is returned as it is).

    Parsed maps (and their shortest-path tables) are cached by name and content, so
    many envs on the same map share one table.
    """
    if isinstance(map, GridMap):
        return map
    if not isinstance(map, (str, Path)):
        raise TypeError(  # type: ignore[unreachable]
            f"map must be a built-in name or a file path, got {type(map).__name__}"
        )
    names = builtin_maps()
    if isinstance(map, str) and map in names:
        root = resources.files("smpc_gym.envs.greedy_mouse") / "maps"
        text = (root / f"{map}.txt").read_text(encoding="utf-8")
        return _load_cached(map, text)
    path = Path(map)
    if path.is_file():
        return _load_cached(str(path), _read_map_file(path))
    raise MapError(
        f"unknown map {str(map)!r}: not a built-in map ({', '.join(names)}) and no such file"
    )


def _read_map_file(path: Path) -> str:
    """The text of a map file, which must be UTF-8 (maps use only 'X', ' ' and '.')."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise MapError(
            f"map file {str(path)!r} is not UTF-8 text: byte 0x{data[exc.start]:02x} at offset "
            f"{exc.start} (line {line}) cannot be decoded; save the file as UTF-8 (a map needs "
            "only 'X' for walls and ' ' or '.' for free cells)"
        ) from None


#: Memory an env on a map needs per *pair* of free cells, in bytes: the all-pairs tables
#: (``Topology.dist``/``next_hop`` here, then ``core.build_tables``' int64 copies, the
#: far-cell and local-slot tables and their Python-list mirrors for the single env). About
#: 190-200 bytes per pair were measured (peak RSS) on open square maps of 900 and 2,500
#: free cells; the table grows with the square of the number of free cells.
TABLE_BYTES_PER_PAIR = 200


def _available_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux ``MemAvailable``), if known."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, OSError, ValueError):
        return None


def _bytes(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:,.0f} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def check_table_memory(grid: GridMap, available: int | None = None) -> int:
    """Refuse, before building anything, a map whose tables cannot fit in memory.

    The tables hold one entry per pair of free cells, about :data:`TABLE_BYTES_PER_PAIR`
    bytes each. Returns the estimated bytes.

    Args:
        grid: the map.
        available: bytes available (default: the system's available memory; no check
            if that is unknown).

    Raises:
        MapError: the estimate exceeds the available memory; the message states both
            and the largest number of free cells that would fit.
    """
    n = grid.num_free
    need = n * n * TABLE_BYTES_PER_PAIR
    available = _available_memory() if available is None else available
    if available is not None and need > available:
        fits = math.isqrt(available // TABLE_BYTES_PER_PAIR)
        raise MapError(
            f"map {grid.name!r} is too large: its {n:,} free cells make {n * n:,} pairs, and "
            f"the shortest-path tables an env needs take about {_bytes(need)} "
            f"({TABLE_BYTES_PER_PAIR} bytes per pair), but only {_bytes(available)} of memory "
            f"is available; use a map with at most about {fits:,} free cells (turn unused "
            "areas into 'X' walls)"
        )
    return need


def _build_topology(grid: GridMap, directions: int, cut_corners: bool) -> Topology:
    check_table_memory(grid)  # fail in milliseconds, not with MemoryError after minutes
    dirs = directions_for(directions)
    h, w = grid.walls.shape
    free = grid.free_cells
    n_free = free.shape[0]
    n_act = len(dirs)

    def is_free(r: np.ndarray, c: np.ndarray) -> np.ndarray:
        inside = (r >= 0) & (r < h) & (c >= 0) & (c < w)
        out = np.zeros(r.shape, dtype=bool)
        out[inside] = ~grid.walls[r[inside], c[inside]]
        return out

    move = np.empty((n_free, n_act), dtype=np.int32)
    own = np.arange(n_free, dtype=np.int32)
    for a, (dr, dc) in enumerate(dirs):
        r, c = free[:, 0] + dr, free[:, 1] + dc
        ok = is_free(r, c)
        if dr != 0 and dc != 0 and not cut_corners:
            ok &= is_free(free[:, 0] + dr, free[:, 1]) & is_free(free[:, 0], free[:, 1] + dc)
        dest = own.copy()
        dest[ok] = grid.cell_index[r[ok], c[ok]]
        move[:, a] = dest
    blocked = move == own[:, None]

    # Unweighted all-pairs shortest paths (BFS per source, in C).
    rows = np.repeat(own, n_act)[~blocked.ravel()]
    cols = move.ravel()[~blocked.ravel()]
    adj = csr_matrix((np.ones(rows.shape[0], dtype=np.int8), (rows, cols)), shape=(n_free, n_free))
    dist_f = shortest_path(adj, method="D", directed=True, unweighted=True)
    if np.isinf(dist_f).any():
        src, dst = np.argwhere(np.isinf(dist_f))[0]
        raise MapError(
            f"map {grid.name!r} is disconnected (directions={directions}, "
            f"cut_corners={cut_corners}): cell {tuple(int(v) for v in free[dst])} cannot be "
            f"reached from cell {tuple(int(v) for v in free[src])}; all free cells must "
            "form one connected component"
        )
    dist = dist_f.astype(np.int32)

    # next_hop[src, dst]: first direction (in order) whose cell is one step closer to dst.
    next_hop = np.repeat(own[:, None], n_free, axis=1)  # src == dst stays
    chosen = np.zeros((n_free, n_free), dtype=bool)
    chosen[own, own] = True
    for a in range(n_act):
        nbr = move[:, a]  # (F,)
        closer = (dist[nbr, :] == dist - 1) & ~blocked[:, a][:, None] & ~chosen
        next_hop[closer] = np.broadcast_to(nbr[:, None], (n_free, n_free))[closer]
        chosen |= closer
    assert chosen.all(), "internal error: shortest-path table incomplete"
    for arr in (move, blocked, dist, next_hop):
        arr.setflags(write=False)
    return Topology(directions, cut_corners, move, blocked, dist, next_hop.astype(np.int32))
