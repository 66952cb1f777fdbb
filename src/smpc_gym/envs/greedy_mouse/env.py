"""``GreedyMouse-v0``: the single-world Gymnasium environment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from smpc_gym.envs.greedy_mouse import core
from smpc_gym.envs.greedy_mouse.maps import GridMap, Topology, load_map
from smpc_gym.envs.greedy_mouse.render import PygameWindow, render_ansi, render_rgb_array
from smpc_gym.envs.options import check_reset_options

_INT_TYPES = (int, np.integer)

#: The keys ``reset(options=...)`` understands: pinned ``(row, col)`` cells.
_RESET_OPTIONS = ("mouse", "cat", "cheese")


@dataclass(frozen=True)
class WorldSetup:
    """What the single and the vector env build alike from their keyword arguments: the
    validated :class:`~smpc_gym.envs.greedy_mouse.core.WorldConfig`, the map, its
    topology and the world's tables, and the single-world spaces."""

    config: core.WorldConfig
    grid: GridMap
    topology: Topology
    tables: core.Tables

    @classmethod
    def build(
        cls,
        owner: str,
        map: str | Path | GridMap,  # noqa: A002 - the documented kwarg name
        world: Mapping[str, Any],
        extra_valid: tuple[str, ...],
    ) -> WorldSetup:
        """Validate ``world`` (unknown names raise ``TypeError`` naming ``owner``) and load
        the map and tables."""
        config = core.world_config(owner, world, extra_valid)
        grid = load_map(map)
        return cls(
            config=config,
            grid=grid,
            topology=grid.topology(config.directions, config.cut_corners),
            tables=core.build_tables(
                grid,
                config.directions,
                bool(config.cut_corners),
                config.min_cat_distance,
                config.lookdist,
            ),
        )

    def action_space(self) -> spaces.Discrete:
        """``Discrete(directions)``."""
        return spaces.Discrete(self.config.directions)

    def observation_space(self) -> spaces.Space:
        """One world's observation space under ``config.obs_mode``."""
        mode = self.config.obs_mode
        if mode == "local":
            k = core.num_local_cells(self.config.lookdist)
            return spaces.MultiDiscrete(np.full(k, 4, dtype=np.int64))
        if mode == "global":
            h, w = self.grid.walls.shape
            return spaces.Box(0, 1, (4, h, w), dtype=np.uint8)
        return spaces.Box(-1.0, 1.0, (core.NUM_FEATURES,), dtype=np.float32)

    @property
    def obs_method(self) -> str:
        """The world method producing observations: ``obs_local``/``obs_global``/
        ``obs_features``."""
        return f"obs_{self.config.obs_mode}"


class GreedyMouseEnv(gym.Env[np.ndarray, int]):
    """
    ## Description

    The classic "QLearningMouse" game: a mouse on a walled grid looks for cheese while a
    greedy cat hunts it along shortest paths. The mouse is the learner; the cat is
    scripted. Default map ``classic`` (14 wide × 11 high, 74 free cells); ``maze41``
    (41 × 41) is a larger built-in map, and any text file of ``X`` (wall) and
    ``' '``/``'.'`` (free) rows can be passed as ``map="path/to/map.txt"``.
    Coordinates are ``(row, col)`` with row 0 at the top.

    ## Action Space

    ``Discrete(8)``: 0 N, 1 NE, 2 E, 3 SE, 4 S, 5 SW, 6 W, 7 NW (N is row - 1).
    With ``directions=4``: ``Discrete(4)``: 0 N, 1 E, 2 S, 3 W. A move into a wall or off
    the grid leaves the mouse in place (``info["hit_wall"]``). Diagonal moves may pass
    between two walls unless ``cut_corners=False``. Actions must be ints (Python or
    numpy integer, or a 0-d integer array) in range; anything else raises.

    ## Observation Space

    * ``obs_mode="local"`` (default): ``MultiDiscrete([4] * k)`` with
      ``k = (2 * lookdist + 1)**2 - 1``: the cells within Chebyshev radius ``lookdist``
      of the mouse, row-major, skipping the mouse's own cell (``lookdist=1``: NW, N, NE,
      W, E, SW, S, SE). Codes: 0 empty, 1 wall (or off the grid), 2 cheese, 3 cat (the cat
      wins when it stands on the cheese). ``core.local_state_id(obs)`` maps an
      observation to an integer in ``0 … 4**k - 1`` for tabular agents. The mouse's own
      cell is not part of the window; the cat can only share it in the final
      observation of an episodic (``respawn=False``) episode, which is flagged by
      ``terminated=True``.
    * ``obs_mode="global"``: ``Box(0, 1, (4, H, W), uint8)``, one-hot channels wall,
      mouse, cat, cheese.
    * ``obs_mode="features"``: ``Box(-1, 1, (14,), float32)``: cat row and column offset
      from the mouse divided by the map height / width, the same for the cheese, the BFS
      distances mouse→cat and mouse→cheese divided by the map's largest BFS distance,
      then the wall mask (1 = wall or off grid) of the 8 neighbours in N, NE, E, SE, S,
      SW, W, NW order.

    ## Dynamics (step order)

    1. The mouse moves. 2. If it is on the cat's cell it is eaten. 3. Otherwise, if it is
    on the cheese it eats it and the cheese respawns on a random free cell holding
    neither mouse nor cat. 4. The cat moves one cell along a shortest path toward the
    mouse (8-connected, or 4-connected with ``directions=4``), or with probability
    ``1 - cat_speed`` stays; among equally short first steps it takes the first in the
    direction order above. Shortest paths are precomputed once per map, so this is a
    table look-up. 5. If the cat is on the mouse's cell the mouse is eaten. Being eaten
    ends the step: with ``respawn=True`` the mouse respawns on a random free cell at
    BFS distance ``>= min_cat_distance`` from the cat (and off the cheese); with
    ``respawn=False`` the episode terminates.

    ## Rewards

    Each step: ``step_reward`` (-1), plus ``wall_penalty`` (0; it is *added*, so pass a
    negative value) when the move was blocked, plus ``cheese_reward`` (+50) for eating
    the cheese, plus ``eaten_reward`` (-100) for being eaten. A step can combine terms,
    e.g. eating the cheese and then being caught gives ``-1 + 50 - 100``.

    ## Starting State

    Mouse, cat and cheese on three distinct free cells, uniformly at random, with the
    cat at BFS distance ``>= min_cat_distance`` (3) from the mouse. ``reset(options=...)``
    may pin any of them: ``{"mouse": (r, c), "cat": (r, c), "cheese": (r, c)}`` (pinned
    cells must be free and distinct; ``min_cat_distance`` is not enforced for them).

    ## Episode End

    * ``respawn=True`` (default, the original game): never terminates. Registered with
      ``max_episode_steps=1000``, so Gymnasium's ``TimeLimit`` truncates after 1,000
      steps and the return is ``50·cheese - 100·deaths - 1000``.
    * ``respawn=False``: being eaten terminates. Caveat: with the default
      ``step_reward=-1`` dying early can out-score surviving without cheese (eaten after
      6 steps: -106; surviving 1,000 steps: -1000), so for the episodic variant use
      ``step_reward=0``.

    Stepping a terminated episode before ``reset()`` raises ``RuntimeError``.

    ## Info

    ``reset`` and ``step`` return the same keys: ``mouse``, ``cat``, ``cheese``
    (``(row, col)`` after the step), ``cheese_eaten``, ``eaten``, ``hit_wall`` (this
    step; ``False`` on reset), ``episode_step``, and the episode totals
    ``total_cheese``, ``total_eaten``, ``total_wall_hits``, ``episode_return``.

    ## Arguments

    ``gym.make("GreedyMouse-v0", map="classic", directions=8, cut_corners=True,
    cat_speed=1.0, respawn=True, min_cat_distance=3, step_reward=-1.0,
    cheese_reward=50.0, eaten_reward=-100.0, wall_penalty=0.0, obs_mode="local",
    lookdist=1, render_mode=None)``. Unknown keyword arguments raise ``TypeError``
    listing the valid ones; bad values raise ``ValueError``/``TypeError`` naming them.

    ## Seeding and randomness

    ``reset(seed=s)`` seeds ``self.np_random`` and draws the world's random ``base``
    from it; episode ``e`` after that seeded reset (``reset()`` without a seed counts
    ``e = 1, 2, …``) uses the key ``core.episode_key(base, e)``, and every random event
    is a hash of that key, the step number and an event slot (see ``core``). So the same
    seed and actions give the same trajectory, and world ``i`` of
    ``GreedyMouseVectorEnv`` reset with seed ``s`` is exactly this env reset with seed
    ``s + i``.

    ## Rendering

    ``render_mode`` ``"human"`` (pygame window at 8 fps), ``"rgb_array"`` (``uint8 (H, W,
    3)``: walls beige, mouse blue, cat black, cheese orange, score lines below) or
    ``"ansi"`` (``#`` wall, ``m`` mouse, ``c`` cat, ``o`` cheese). ``close()`` is
    idempotent.

    ## Version History

    * v0: first version (fixes vs the original game: deterministic documented step
      order and tie-breaks, safe spawns, visible walls in the local observation,
      precomputed shortest paths).
    """

    metadata = {"render_modes": ["human", "rgb_array", "ansi"], "render_fps": 8}

    def __init__(
        self,
        map: str | Path | GridMap = "classic",  # noqa: A002 - the documented kwarg name
        *,
        render_mode: str | None = None,
        **world: Any,
    ) -> None:
        """Build the env; ``world`` holds the :class:`~smpc_gym.envs.greedy_mouse.core.
        WorldConfig` fields (``directions``, ``obs_mode``, …), all documented above."""
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode must be None or one of {self.metadata['render_modes']}, "
                f"got {render_mode!r}"
            )
        setup = WorldSetup.build("GreedyMouseEnv", map, world, ("map", "render_mode"))
        self.config = setup.config
        self._grid, self._topology, self._tables = setup.grid, setup.topology, setup.tables
        self._world = core.World(self._tables, self.config)
        self._pos = [tuple(p) for p in self._grid.free_cells.tolist()]
        self.render_mode = render_mode
        self.action_space = setup.action_space()  # type: ignore[assignment]
        self._num_actions = int(self.config.directions)
        self.observation_space = setup.observation_space()  # type: ignore[assignment]
        self._obs = getattr(self._world, setup.obs_method)
        self._base: int | None = None
        self._episode = 0
        self._started = False
        self._done = False
        self._last = (False, False, False)  # eaten, cheese_eaten, hit_wall
        self._window: PygameWindow | None = None

    # ------------------------------------------------------------------ public state

    @property
    def grid(self) -> GridMap:
        """The map (walls, free cells, cell ids)."""
        return self._grid

    @property
    def topology(self) -> Topology:
        """Movement and shortest-path tables under this env's ``directions``/``cut_corners``."""
        return self._topology

    @property
    def mouse_pos(self) -> tuple[int, int]:
        """The mouse's ``(row, col)``."""
        return self._pos[self._world.mouse]

    @property
    def cat_pos(self) -> tuple[int, int]:
        """The cat's ``(row, col)``."""
        return self._pos[self._world.cat]

    @property
    def cheese_pos(self) -> tuple[int, int]:
        """The cheese's ``(row, col)``."""
        return self._pos[self._world.cheese]

    # ------------------------------------------------------------------ API

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode; ``options`` may pin ``mouse``/``cat``/``cheese`` cells.

        Raises:
            TypeError: ``options`` is neither a dict nor ``None``.
            ValueError: an unknown option key (the message suggests the closest valid
                one) or a cell that is not a free cell of the map.
        """
        options = check_reset_options("GreedyMouse-v0", options, _RESET_OPTIONS)
        super().reset(seed=seed)
        if seed is not None or self._base is None:
            self._base = core.new_base(self.np_random)
            self._episode = 0
        else:
            self._episode += 1
        self._world.reset(core.episode_key(self._base, self._episode))
        if options:
            self._apply_options(options)
        self._started = True
        self._done = False
        self._last = (False, False, False)
        if self.render_mode == "human":
            self._render_human()
        return self._obs(), self._info()

    def step(self, action: int) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        """Advance one step (see the class docstring for the order of events)."""
        if type(action) is not int:
            action = self._check_action(action)
        elif not 0 <= action < self._num_actions:
            raise ValueError(
                f"action {action!r} is out of range: allowed actions are "
                f"0 … {self._num_actions - 1} (Discrete({self._num_actions}))"
            )
        if self._done or not self._started:
            raise RuntimeError(
                "the episode is over (the mouse was eaten with respawn=False); call reset() "
                "before step()"
                if self._started
                else "call reset() before the first step()"
            )
        reward, eaten, cheese_eaten, hit_wall = self._world.step(action)
        self._last = (eaten, cheese_eaten, hit_wall)
        terminated = eaten and not self.config.respawn
        self._done = terminated
        if self.render_mode == "human":
            self._render_human()
        return self._obs(), reward, terminated, False, self._info()

    def render(self) -> np.ndarray | str | None:
        """Render per ``render_mode`` (``None``: nothing, with a warning from Gymnasium)."""
        if self.render_mode is None:
            gym.logger.warn(
                "render() called without a render_mode; pass render_mode='rgb_array', "
                "'ansi' or 'human' to gym.make"
            )
            return None
        if self.render_mode == "ansi":
            return render_ansi(
                self._grid.walls,
                [self.mouse_pos],
                [self.cat_pos],
                [self.cheese_pos],
                self._score_lines(),
            )
        frame = self._frame()
        if self.render_mode == "human":
            self._show(frame)
            return None
        return frame

    def close(self) -> None:
        """Close the render window if one is open (safe to call more than once)."""
        if self._window is not None:
            self._window.close()
            self._window = None

    # ------------------------------------------------------------------ helpers

    def _check_action(self, action: Any) -> int:
        a = action
        if isinstance(a, np.ndarray):
            if a.shape != ():
                raise ValueError(
                    f"action must be a single int, got an array of shape {a.shape}: {a!r} "
                    f"(allowed: 0 … {self._num_actions - 1})"
                )
            a = a[()]
        if isinstance(a, (bool, np.bool_)) or not isinstance(a, _INT_TYPES):
            raise TypeError(
                f"action must be an int in 0 … {self._num_actions - 1}, got {action!r} "
                f"({type(action).__name__})"
            )
        a = int(a)
        if not 0 <= a < self._num_actions:
            raise ValueError(
                f"action {a!r} is out of range: allowed actions are "
                f"0 … {self._num_actions - 1} (Discrete({self._num_actions}))"
            )
        return a

    def _apply_options(self, options: dict[str, Any]) -> None:
        names = _RESET_OPTIONS  # (keys checked by check_reset_options)
        w = self._world
        cells = {"mouse": w.mouse, "cat": w.cat, "cheese": w.cheese}
        pinned: dict[str, int] = {}
        for name in names:
            if name not in options or options[name] is None:
                continue
            pos = options[name]
            try:
                r, c = (int(v) for v in pos)
            except (TypeError, ValueError):
                raise ValueError(
                    f"reset option {name!r} must be a (row, col) pair, got {pos!r}"
                ) from None
            g = self._grid
            if not (0 <= r < g.height and 0 <= c < g.width) or g.walls[r, c]:
                raise ValueError(f"reset option {name}={(r, c)} is not a free cell of the map")
            pinned[name] = int(g.cell_index[r, c])
        if len(set(pinned.values())) < len(pinned):
            raise ValueError(f"pinned cells must be distinct, got {options!r}")
        cells.update(pinned)
        # Re-draw unpinned entities that collide with pinned ones (deterministic draws).
        slot = 16
        for name in names:
            if name in pinned:
                continue
            others = {cells[o] for o in names if o != name}
            while cells[name] in others:
                cells[name] = int(core.uniform(w.key, 0, slot) * self._tables.num_free)
                slot += 1
        w.mouse, w.cat, w.cheese = cells["mouse"], cells["cat"], cells["cheese"]

    def _info(self) -> dict[str, Any]:
        w = self._world
        pos = self._pos
        eaten, cheese_eaten, hit_wall = self._last
        return {
            "mouse": pos[w.mouse],
            "cat": pos[w.cat],
            "cheese": pos[w.cheese],
            "cheese_eaten": cheese_eaten,
            "eaten": eaten,
            "hit_wall": hit_wall,
            "episode_step": w.t,
            "total_cheese": w.total_cheese,
            "total_eaten": w.total_eaten,
            "total_wall_hits": w.total_wall_hits,
            "episode_return": w.total_reward,
        }

    def _score_lines(self) -> list[str]:
        w = self._world
        return [
            f"cheese eaten: {w.total_cheese}   times eaten: {w.total_eaten}",
            f"step: {w.t}   return: {w.total_reward:g}",
        ]

    def _frame(self) -> np.ndarray:
        return render_rgb_array(
            self._grid.walls,
            [self.mouse_pos],
            [self.cat_pos],
            [self.cheese_pos],
            self._score_lines(),
        )

    def _show(self, frame: np.ndarray) -> None:
        if self._window is None:
            self._window = PygameWindow("GreedyMouse-v0")
        self._window.show(frame, self.metadata["render_fps"])

    def _render_human(self) -> None:
        self._show(self._frame())
