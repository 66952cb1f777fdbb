"""The multi-mouse GreedyMouse PettingZoo ``ParallelEnv`` (see its class docstring)."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import logger, spaces
from gymnasium.utils import seeding
from pettingzoo import ParallelEnv

from smpc_gym.envs.options import check_reset_options

from .core import episode_key, new_base
from .multi_core import MultiMouseConfig, MultiMouseWorld, local_offsets


class GreedyMouseParallelEnv(ParallelEnv):
    """N mice share one grid with one greedy cat and ``num_cheese`` cheeses.

    The multi-agent form of ``GreedyMouse-v0`` (:class:`~smpc_gym.envs.greedy_mouse.env.GreedyMouseEnv`): every rule of
    the single-mouse env applies unless stated here, and with ``num_mice=1,
    num_cheese=1`` the dynamics, rewards and observations are the single env's.

    Constructors: ``smpc_gym.greedy_mouse_v0.parallel_env(**kwargs)`` (this class),
    ``smpc_gym.greedy_mouse_v0.env(**kwargs)`` (AEC), or
    ``pettingzoo.make("parallel" | "aec", "smpc/GreedyMouse-v0", **kwargs)``.

    ## Agents
    ``possible_agents = ["mouse_0", …, "mouse_{N-1}"]`` (``num_mice=N``, default 2).

    ## Action space
    Per mouse ``Discrete(8)``: 0 N, 1 NE, 2 E, 3 SE, 4 S, 5 SW, 6 W, 7 NW (row decreases
    going N); ``directions=4`` gives ``Discrete(4)``: N, E, S, W. Moving into a wall or
    the edge leaves the mouse in place (``info["hit_wall"]``). Diagonal moves between
    two walls that touch at a corner are allowed unless ``cut_corners=False``.
    ``step(actions)`` needs exactly one action for each agent in ``env.agents`` (a
    Python or numpy integer in range); a missing, extra, out-of-range or non-integer
    action is an error naming the agent.

    ## Observation space (``obs_mode``, per mouse)
    * ``"local"`` (default): the cells within Chebyshev radius ``lookdist`` (default 1)
      of the mouse, row-major, skipping its own cell (``lookdist=1``: NW, N, NE, W, E,
      SW, S, SE). Codes 0 empty, 1 wall (also outside the grid), 2 cheese, 3 cat, and —
      with more than one mouse — 4 another mouse. Priority on a shared cell:
      cat > cheese > mouse. Space ``MultiDiscrete([4 or 5] * k)``, ``k = (2L+1)^2 - 1``.
      With one mouse ``core.local_state_id`` maps it to a tabular state id; with
      several, use base 5 (``sum(obs[j] * 5**j)``).
    * ``"global"``: ``Box(0, 1, (C, H, W), uint8)`` one-hot planes wall, this mouse,
      cat, cheese (all cheeses), and with more than one mouse a fifth plane of the
      other live mice (``C = 4`` or ``5``).
    * ``"features"``: ``Box(-1, 1, (14,) or (17,), float32)``: the cat's and the
      nearest cheese's (BFS; ties: lowest cheese index) offsets ``(d_row/H, d_col/W)``, the BFS distances to the cat and
      to the nearest cheese divided by the map's largest BFS distance, the wall mask of
      the 8 neighbours (N, NE, … NW; outside counts as wall), and with several mice the
      nearest other live mouse's ``(d_row/H, d_col/W, dist/D)`` (ties: lowest index;
      ``(0, 0, 1)`` if none).

    Other mice are visible (code 4 / fifth plane / features tail) but do not block
    movement; several mice may share a cell.

    ## State
    ``state()`` is ``Box(0, 1, (3 + N, H, W), uint8)`` (``state_space``): planes wall,
    cat, cheese, mouse_0 … mouse_{N-1} (an all-zero plane for a mouse that has left).

    ## Step order (deterministic given the seed)
    1. Every live mouse moves (simultaneously).
    2. Every mouse on the cat's cell is eaten; if one is, the cat spends the step
       eating and does not move (sub-step 4 is skipped) — with one mouse this is the
       single env's "being eaten ends the step".
    3. A cheese reached by a live, uneaten mouse is eaten by it and respawns on a
       random free cell holding no mouse, no cat and no other cheese. **Two or more
       mice on the same cheese**: one of them, drawn uniformly (seeded, see below),
       eats it (+``cheese_reward``); the others get nothing for it.
    4. The cat chases the **nearest live mouse by BFS distance** (ties: the lowest
       mouse index) and moves one cell along a shortest path (ties between first steps
       by direction order N, NE, E, SE, S, SW, W, NW); with probability ``1 - cat_speed``
       it stays.
    5. Every live mouse on the cat's new cell is eaten.
    Eaten mice then respawn (``respawn=True``) on random free cells at BFS distance
    ``>= min_cat_distance`` from the cat, not on another mouse, a cheese or the cat — or
    (``respawn=False``) are terminated and leave ``agents`` (and the grid: the cat no
    longer chases them and the others no longer see them).

    ## Rewards (per live mouse and step)
    ``step_reward`` (default -1) every step, ``+ wall_penalty`` (default 0) after moving
    into a wall, ``+ cheese_reward`` (+50) for eating a cheese, ``+ eaten_reward`` (-100)
    when eaten. With ``respawn=False`` and ``step_reward=-1``, being eaten early can
    out-score surviving without cheese; use ``step_reward=0`` for the episodic variant.

    ## Starting state
    ``mouse_0`` on a random free cell and the cat on a random cell at BFS distance
    ``>= min_cat_distance`` (default 3) from it (exactly as the single env; if that cat
    cell has too few cells that far for all the mice, the cat is redrawn among the cells
    with room and ``mouse_0`` among the cells far from it), the other mice on distinct
    random cells that far from the cat, the cheeses on distinct random free cells
    holding nothing else.

    ## Seeding and randomness
    The single env's scheme: ``reset(seed=s)`` seeds ``self.np_random`` and draws the
    world's random base from it; unseeded resets count episodes under that base; every
    random event is a hash of the episode key, the step and an event slot
    (``smpc_gym.envs.greedy_mouse.core``). With ``num_mice=1, num_cheese=1`` every event
    uses the single env's slot, so the same seed and actions give exactly
    ``GreedyMouseEnv``'s trajectory (observations, rewards, infos).

    ## Episode end
    ``respawn=True`` (default): no mouse is ever terminated; all are truncated after
    ``max_cycles`` (default 1000) steps. ``respawn=False``: an eaten mouse is
    terminated; the rest are truncated at ``max_cycles``. ``agents`` is empty when the
    episode is over (then call ``reset``).

    ## Info (per mouse, after ``reset`` and every ``step``)
    The single env's keys — ``mouse``, ``cat``, ``cheese``, ``cheese_eaten``, ``eaten``,
    ``hit_wall`` (this step; ``False`` on reset), ``episode_step``, and this mouse's
    episode totals ``total_cheese``, ``total_eaten``, ``total_wall_hits``,
    ``episode_return`` — with positions as ``(row, col)``: ``mouse`` is this mouse (where
    it was eaten, once it has left), and **``cheese`` is a tuple of all cheese
    positions** (in cheese order; one entry with ``num_cheese=1``). Plus ``mice``
    (``{agent: (row, col)}`` of the live mice) and ``cat_target`` (the agent the cat
    chased this step, even if a ``cat_speed`` coin kept it in place; ``None`` on reset
    and when the cat spent the step eating).

    ## Arguments
    ``num_mice=2, num_cheese=1, map="classic", obs_mode="local", lookdist=1,
    directions=8, cut_corners=True, cat_speed=1.0, respawn=True, min_cat_distance=3,
    max_cycles=1000, step_reward=-1, cheese_reward=50, eaten_reward=-100,
    wall_penalty=0, render_mode=None`` (see
    :class:`~smpc_gym.envs.greedy_mouse.multi_core.MultiMouseConfig`). Unknown names,
    bad values, and more mice than the map can place are errors naming the value.
    ``max_cycles`` may also be changed later through the attribute of the same name.

    ## Rendering
    ``render_mode`` ``"human"`` (pygame window), ``"rgb_array"`` (``uint8 (H, W, 3)``;
    mice numbered), ``"ansi"`` (text grid: ``#`` wall, ``m`` mouse, ``c`` cat, ``o``
    cheese), each with two text lines: the step and each mouse's cheese count, then
    each mouse's times eaten (in index order). The renderer numbers the mice it draws
    0, 1, …; once some mice have left (``respawn=False``) the second line lists which
    mice are still on the board, in that order. ``close()`` is idempotent.

    ## Version history
    * v0: initial version.
    """

    metadata: dict[str, Any] = {
        "name": "greedy_mouse_v0",
        "render_modes": ["human", "rgb_array", "ansi"],
        "render_fps": 8,
        "is_parallelizable": True,
    }

    def __init__(self, render_mode: str | None = None, **kwargs: Any) -> None:
        """Create the env; see the class docstring for the keyword arguments."""
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode must be None or one of {self.metadata['render_modes']}, "
                f"got {render_mode!r}"
            )
        self.config = MultiMouseConfig.from_kwargs(extra_valid=("render_mode",), **kwargs)
        self.world = MultiMouseWorld(self.config)
        self.render_mode = render_mode
        self.max_cycles = self.config.max_cycles
        n = self.config.num_mice
        self.possible_agents: list[str] = [f"mouse_{i}" for i in range(n)]
        self.agents: list[str] = []
        self._index = {a: i for i, a in enumerate(self.possible_agents)}
        grid = self.world.grid
        h, w = grid.height, grid.width
        mode = self.config.obs_mode
        self._obs_spaces: dict[str, spaces.Space] = {}
        for a in self.possible_agents:
            if mode == "local":
                k = len(local_offsets(self.config.lookdist))
                sp: spaces.Space = spaces.MultiDiscrete([5 if n > 1 else 4] * k)
            elif mode == "global":
                sp = spaces.Box(0, 1, (5 if n > 1 else 4, h, w), np.uint8)
            else:
                sp = spaces.Box(-1.0, 1.0, (self.world.features_size,), np.float32)
            self._obs_spaces[a] = sp
        self._act_spaces = {
            a: spaces.Discrete(self.config.directions) for a in self.possible_agents
        }
        # The dict attributes some wrappers read; same objects as the methods return.
        self.observation_spaces = self._obs_spaces
        self.action_spaces = self._act_spaces
        self.state_space = spaces.Box(0, 1, (3 + n, h, w), np.uint8)
        self._n_actions = self.config.directions
        self.np_random: np.random.Generator | None = None
        self._base: int | None = None  # world random base, drawn from np_random on seeding
        self._episode = 0
        self._window: Any = None
        self._has_reset = False
        self.num_moves = 0
        # Episode totals per mouse: cheese, eaten, wall hits, return.
        self._totals: tuple[list[int], list[int], list[int], list[float]] = self._zero_totals()
        self._target = -1

    def _zero_totals(self) -> tuple[list[int], list[int], list[int], list[float]]:
        n = self.config.num_mice
        return [0] * n, [0] * n, [0] * n, [0.0] * n

    # ------------------------------------------------------------------ spaces
    def observation_space(self, agent: str) -> spaces.Space:
        """The observation space of ``agent`` (the same object on every call)."""
        try:
            return self._obs_spaces[agent]
        except KeyError:
            raise KeyError(f"unknown agent {agent!r}; agents are {self.possible_agents}") from None

    def action_space(self, agent: str) -> spaces.Space:
        """The action space of ``agent`` (the same object on every call)."""
        try:
            return self._act_spaces[agent]
        except KeyError:
            raise KeyError(f"unknown agent {agent!r}; agents are {self.possible_agents}") from None

    # ------------------------------------------------------------------ API
    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
        """Start an episode; ``seed`` seeds the env's randomness (kept across resets).

        As in the single env: a seeded reset draws the world's random base from
        ``self.np_random``; later unseeded resets count episodes 1, 2, … under that base.
        No ``options`` are defined (unlike the single env, positions cannot be pinned):
        any key raises ``ValueError``, except ``"options"``, which PettingZoo's API tests
        pass to probe the signature and which is ignored.
        """
        check_reset_options("greedy_mouse_v0", options, (), ignored=("options",))
        if seed is not None or self._base is None:
            self.np_random, _ = seeding.np_random(seed)
            self._base = new_base(self.np_random)
            self._episode = 0
        else:
            self._episode += 1
        self.world.reset(episode_key(self._base, self._episode))
        self.agents = self.possible_agents[:]
        self.num_moves = 0
        self._totals = self._zero_totals()
        self._has_reset = True
        self._target = -1
        n = self.config.num_mice
        false = [False] * n
        obs = self._observations(self.agents)
        infos = self._infos(self.agents, false, [0] * n, false)
        if self.render_mode == "human":
            self.render()
        return obs, infos

    def step(
        self, actions: dict[str, Any]
    ) -> tuple[
        dict[str, Any],
        dict[str, float],
        dict[str, bool],
        dict[str, bool],
        dict[str, dict[str, Any]],
    ]:
        """Advance every live mouse by one step; see the class docstring for the rules."""
        if not self._has_reset:
            raise RuntimeError("step() called before reset(); call env.reset() first")
        if not self.agents:
            raise RuntimeError(
                "step() called after the episode ended (no live agents); call env.reset()"
            )
        act_list = self._check_actions(actions)
        out = self.world.step(act_list)
        self.num_moves += 1
        self._target = out.cat_target
        truncate = self.num_moves >= self.max_cycles
        respawn = self.config.respawn
        agents = self.agents
        index = self._index
        rewards: dict[str, float] = {}
        terms: dict[str, bool] = {}
        truncs: dict[str, bool] = {}
        t_cheese, t_eaten, t_wall, t_return = self._totals
        for a in agents:
            i = index[a]
            r = out.rewards[i]
            t_cheese[i] += out.cheese_eaten[i]
            t_eaten[i] += out.eaten[i]
            t_wall[i] += out.hit_wall[i]
            t_return[i] += r
            rewards[a] = r
            terms[a] = out.eaten[i] and not respawn
            truncs[a] = truncate
        obs = self._observations(agents)
        infos = self._infos(agents, out.eaten, out.cheese_eaten, out.hit_wall)
        self.agents = [a for a in agents if not (terms[a] or truncs[a])]
        if self.render_mode == "human":
            self.render()
        return obs, rewards, terms, truncs, infos

    def _check_actions(self, actions: dict[str, Any]) -> list[int]:
        if not isinstance(actions, dict):
            raise TypeError(
                f"actions must be a dict {{agent: action}} for the agents {self.agents}, "
                f"got {type(actions).__name__}"
            )
        agents = self.agents
        act = [0] * self.config.num_mice
        n_act = self._n_actions
        index = self._index
        for a in agents:
            try:
                v = actions[a]
            except KeyError:
                missing = [b for b in agents if b not in actions]
                raise ValueError(
                    f"missing action for agent(s) {missing}; step() needs one action for "
                    f"each live agent {agents}"
                ) from None
            if type(v) is not int or not 0 <= v < n_act:
                v = self._check_action(a, v)
            act[index[a]] = v
        if len(actions) != len(agents):
            extra = [b for b in actions if b not in agents]
            what = "unknown agent" if extra[0] not in index else "agent that is no longer live"
            raise ValueError(f"action given for {what} {extra[0]!r}; live agents are {agents}")
        return act

    def _check_action(self, agent: str, v: Any) -> int:
        n_act = self._n_actions
        if type(v) is not int:
            if (isinstance(v, np.ndarray) and v.shape == ()) or isinstance(v, np.integer):
                if not np.issubdtype(np.asarray(v).dtype, np.integer):
                    raise TypeError(
                        f"action for {agent!r} must be an integer in [0, {n_act}), got {v!r} "
                        f"of dtype {np.asarray(v).dtype}"
                    )
                v = int(v)
            else:
                raise TypeError(
                    f"action for {agent!r} must be an integer in [0, {n_act}), got {v!r} "
                    f"({type(v).__name__})"
                )
        if not 0 <= v < n_act:
            raise ValueError(
                f"action for {agent!r} must be in [0, {n_act}) (directions="
                f"{self.config.directions}), got {v}"
            )
        return v

    # ------------------------------------------------------------------ obs / info
    def _observations(self, agents: list[str]) -> dict[str, Any]:
        world = self.world
        index = self._index
        mode = self.config.obs_mode
        if mode == "local":
            codes = world.cell_codes()
            return {a: world.local_obs(index[a], codes) for a in agents}
        if mode == "global":
            return {a: world.global_obs(index[a]) for a in agents}
        return {a: world.features_obs(index[a]) for a in agents}

    def _infos(
        self,
        agents: list[str],
        eaten: list[bool],
        cheese_eaten: list[int],
        hit_wall: list[bool],
    ) -> dict[str, dict[str, Any]]:
        world = self.world
        rc = world.free_rc
        cat = rc[world.cat]
        cheese = tuple([rc[k] for k in world.cheeses])
        mice_cells, alive = world.mice, world.alive
        mice = {a: rc[mice_cells[i]] for i, a in enumerate(self.possible_agents) if alive[i]}
        target = self.possible_agents[self._target] if self._target >= 0 else None
        t_cheese, t_eaten, t_wall, t_return = self._totals
        step = self.num_moves
        index = self._index
        infos = {}
        for a in agents:
            i = index[a]
            infos[a] = {
                "mouse": rc[mice_cells[i]],
                "cat": cat,
                "cheese": cheese,
                "mice": mice.copy(),
                "cheese_eaten": cheese_eaten[i] > 0,
                "eaten": eaten[i],
                "hit_wall": hit_wall[i],
                "episode_step": step,
                "total_cheese": t_cheese[i],
                "total_eaten": t_eaten[i],
                "total_wall_hits": t_wall[i],
                "episode_return": t_return[i],
                "cat_target": target,
            }
        return infos

    def state(self) -> np.ndarray:
        """The global state planes (see ``state_space`` and the class docstring)."""
        if not self._has_reset:
            raise RuntimeError("state() called before reset(); call env.reset() first")
        return self.world.state_planes()

    # ------------------------------------------------------------------ rendering
    def _scene(self) -> tuple[list[tuple[int, int]], list[tuple[int, int]], list[str]]:
        world = self.world
        rc = world.free_rc
        live = [i for i in range(world.num_mice) if world.alive[i]]
        mice = [rc[world.mice[i]] for i in live]
        cheeses = [rc[k] for k in world.cheeses]
        t_cheese, t_eaten = self._totals[0], self._totals[1]
        lines = [
            f"step {self.num_moves}   cheese: {' '.join(map(str, t_cheese))}",
            f"eaten: {' '.join(map(str, t_eaten))}",
        ]
        if len(live) < world.num_mice:
            # The renderer numbers the mice it is given 0, 1, …: say which ones they are.
            lines[1] += f"   on board: {','.join(map(str, live))}"
        return mice, cheeses, lines

    def render(self) -> np.ndarray | str | None:
        """Render per ``render_mode``: a frame, a string, or a window update (None)."""
        if self.render_mode is None:
            logger.warn(
                "render() called without a render_mode; pass render_mode='rgb_array', "
                "'ansi' or 'human' to the constructor"
            )
            return None
        if not self._has_reset:
            raise RuntimeError("render() called before reset(); call env.reset() first")
        from . import render as _render

        mice, cheeses, lines = self._scene()
        cat = [self.world.free_rc[self.world.cat]]
        walls = self.world.grid.walls
        if self.render_mode == "ansi":
            return _render.render_ansi(walls, mice, cat, cheeses, lines)
        frame = _render.render_rgb_array(walls, mice, cat, cheeses, lines)
        if self.render_mode == "rgb_array":
            return frame
        if self._window is None:
            self._window = _render.PygameWindow("GreedyMouse (multi-mouse)")
        self._window.show(frame, self.metadata["render_fps"])
        return None

    def close(self) -> None:
        """Close the render window, if any (idempotent)."""
        if self._window is not None:
            self._window.close()
            self._window = None
