"""Tests of the multi-mouse GreedyMouse PettingZoo env (smpc_gym.greedy_mouse_v0)."""

from __future__ import annotations

import warnings
from collections import deque

import numpy as np
import pettingzoo
import pytest
from pettingzoo.test import (
    api_test,
    max_cycles_test,
    parallel_api_test,
    parallel_seed_test,
    render_test,
)
from pettingzoo.test.state_test import state_test

import smpc_gym
from smpc_gym import greedy_mouse_v0
from smpc_gym.envs.greedy_mouse.core import episode_key, new_base
from smpc_gym.envs.greedy_mouse.env import GreedyMouseEnv
from smpc_gym.envs.greedy_mouse.maps import DIRECTIONS_8, load_map
from smpc_gym.envs.greedy_mouse.multi_core import MultiMouseConfig, MultiMouseWorld

N, NE, E, SE, S, SW, W, NW = range(8)

CORRIDOR = "XXXXXXXXX\nX       X\nXXXXXXXXX\n"  # free (1,1) … (1,7)
ROOM = "XXXXXX\nX    X\nX    X\nX    X\nXXXXXX\n"  # free rows 1-3, cols 1-4


@pytest.fixture
def corridor(tmp_path):
    p = tmp_path / "corridor.txt"
    p.write_text(CORRIDOR)
    return str(p)


@pytest.fixture
def room(tmp_path):
    p = tmp_path / "room.txt"
    p.write_text(ROOM)
    return str(p)


def place(env, mice, cat, cheeses):
    """Put the entities of a reset env on the given (row, col) cells."""
    world = env.unwrapped.world
    ci = world.grid.cell_index
    world.mice = [int(ci[r, c]) for r, c in mice]
    world.alive = [True] * len(mice)
    world.cat = int(ci[cat])
    world.cheeses = [int(ci[r, c]) for r, c in cheeses]
    for cell in [*world.mice, world.cat, *world.cheeses]:
        assert cell >= 0, "placed on a wall"


# --------------------------------------------------------------------------- API checkers
API_CONFIGS = [
    {},
    {"respawn": False, "step_reward": 0.0},
    {"num_mice": 1},
    {"num_mice": 3, "obs_mode": "global"},
    {"num_mice": 4, "obs_mode": "features", "num_cheese": 2, "respawn": False},
    {"num_mice": 3, "obs_mode": "local", "lookdist": 2, "directions": 4, "respawn": False},
    {"num_mice": 2, "obs_mode": "global", "respawn": False, "cat_speed": 0.5},
]


@pytest.mark.parametrize("kwargs", API_CONFIGS, ids=lambda kw: ",".join(map(str, kw.items())))
def test_pettingzoo_checkers_pass(kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        parallel_api_test(greedy_mouse_v0.parallel_env(**kwargs), num_cycles=300)
    # parallel_api_test reports dict-key and dead-agent problems only as warnings.
    assert [str(w.message) for w in caught] == []
    with warnings.catch_warnings():
        # api_test nags that MultiDiscrete observations "probably should be" Box/Discrete.
        warnings.filterwarnings("ignore", message="Observation space for each agent probably")
        api_test(greedy_mouse_v0.env(**kwargs), num_cycles=300)
    parallel_seed_test(lambda: greedy_mouse_v0.parallel_env(**kwargs), num_cycles=200)


@pytest.mark.parametrize("kwargs", [{}, {"respawn": False, "num_mice": 3}])
def test_render_test_passes(kwargs):
    render_test(lambda render_mode=None: greedy_mouse_v0.env(render_mode=render_mode, **kwargs))


def test_pettingzoo_max_cycles_and_state_checkers_pass():
    max_cycles_test(greedy_mouse_v0)  # max_cycles=4 through both constructors
    state_test(greedy_mouse_v0.env(num_mice=3), greedy_mouse_v0.parallel_env(num_mice=3))
    state_test(
        greedy_mouse_v0.env(num_mice=2, respawn=False),
        greedy_mouse_v0.parallel_env(num_mice=2, respawn=False),
    )


def test_pettingzoo_make_parallel_and_aec():
    assert smpc_gym is not None
    par = pettingzoo.make("parallel", "smpc/GreedyMouse-v0", num_mice=4)
    obs, infos = par.reset(seed=3)
    assert par.agents == ["mouse_0", "mouse_1", "mouse_2", "mouse_3"]
    assert set(obs) == set(infos) == set(par.agents)
    out = par.step({a: 2 for a in par.agents})
    assert all(set(d) == set(par.possible_agents) for d in out)
    aec = pettingzoo.make("aec", "smpc/GreedyMouse-v0", num_mice=4)
    aec.reset(seed=3)
    n_steps = 0
    for agent in aec.agent_iter(40):
        _, _, term, trunc, _ = aec.last()
        aec.step(None if term or trunc else aec.action_space(agent).sample())
        n_steps += 1
    assert n_steps == 40
    assert aec.num_agents == 4


def test_spaces_are_cached_and_shaped():
    env = greedy_mouse_v0.parallel_env(num_mice=3)
    for a in env.possible_agents:
        assert env.observation_space(a) is env.observation_space(a)
        assert env.action_space(a) is env.action_space(a)
        assert env.action_space(a).n == 8
        assert list(env.observation_space(a).nvec) == [5] * 8
    assert env.observation_space("mouse_0") is not env.observation_space("mouse_1")
    assert env.state_space.shape == (6, 11, 14)
    with pytest.raises(KeyError, match="mouse_3"):
        env.observation_space("mouse_3")
    one = greedy_mouse_v0.parallel_env(num_mice=1)
    assert list(one.observation_space("mouse_0").nvec) == [4] * 8  # as the single env
    assert greedy_mouse_v0.parallel_env(num_mice=1, obs_mode="global").observation_space(
        "mouse_0"
    ).shape == (4, 11, 14)
    assert greedy_mouse_v0.parallel_env(num_mice=2, obs_mode="features").observation_space(
        "mouse_1"
    ).shape == (17,)
    assert greedy_mouse_v0.parallel_env(directions=4).action_space("mouse_0").n == 4


# --------------------------------------------------------------------------- bad input
def test_bad_constructor_arguments_are_named():
    with pytest.raises(TypeError, match="'num_mouse' .did you mean 'num_mice'.*render_mode"):
        greedy_mouse_v0.parallel_env(num_mouse=2)
    with pytest.raises(ValueError, match="num_mice must be >= 1, got 0"):
        greedy_mouse_v0.parallel_env(num_mice=0)
    with pytest.raises(ValueError, match="obs_mode .* got 'pixels'"):
        greedy_mouse_v0.parallel_env(obs_mode="pixels")
    with pytest.raises(ValueError, match="render_mode .* got 'video'"):
        greedy_mouse_v0.parallel_env(render_mode="video")
    with pytest.raises(ValueError, match="cat_speed .* got 1.5"):
        greedy_mouse_v0.parallel_env(cat_speed=1.5)
    with pytest.raises(TypeError, match="unexpected keyword argument.*'bogus'"):
        greedy_mouse_v0.env(bogus=1)
    with pytest.raises(ValueError, match="min_cat_distance must be >= 1, got 0"):
        greedy_mouse_v0.parallel_env(min_cat_distance=0)
    with pytest.raises(TypeError, match="num_cheese must be an int"):
        greedy_mouse_v0.parallel_env(num_cheese=1.5)


def test_too_many_mice_for_the_map(corridor):
    # 7 free cells: 6 mice + 1 cheese + cat = 8 > 7.
    with pytest.raises(ValueError, match="num_mice=6 and num_cheese=1 do not fit.*7 free cells"):
        greedy_mouse_v0.parallel_env(map=corridor, num_mice=6)
    # At most 4 cells (from an end cell) are >= 3 away: no room for 5 mice.
    with pytest.raises(ValueError, match="num_mice=5 do not fit.*min_cat_distance=3"):
        greedy_mouse_v0.parallel_env(map=corridor, num_mice=5, min_cat_distance=3)
    env = greedy_mouse_v0.parallel_env(map=corridor, num_mice=4, min_cat_distance=3)
    for seed in range(20):  # both reset paths: the single env's draw, and the redraw
        _, infos = env.reset(seed=seed)
        cat = infos["mouse_0"]["cat"]
        assert cat in {(1, 1), (1, 7)}  # the only cells with room for 4 mice
        mice = [infos[a]["mouse"] for a in env.agents]
        assert all(abs(m[1] - cat[1]) >= 3 for m in mice)
        assert len({*mice, cat, *infos["mouse_0"]["cheese"]}) == 6
    # The single env's limit on min_cat_distance applies too.
    with pytest.raises(ValueError, match="min_cat_distance=5 is too large"):
        greedy_mouse_v0.parallel_env(map=corridor, num_mice=1, min_cat_distance=5)
    with pytest.raises(ValueError, match="num_mice=200"):
        greedy_mouse_v0.parallel_env(num_mice=200)


def test_bad_actions_name_the_agent():
    env = greedy_mouse_v0.parallel_env(num_mice=3)
    with pytest.raises(RuntimeError, match="before reset"):
        env.step({"mouse_0": 0})
    env.reset(seed=0)
    ok = {"mouse_0": 0, "mouse_1": np.int64(1), "mouse_2": np.array(2)}
    with pytest.raises(ValueError, match=r"'mouse_1' must be in \[0, 8\).*got 8"):
        env.step({**ok, "mouse_1": 8})
    with pytest.raises(ValueError, match=r"'mouse_2' must be in \[0, 8\).*got -1"):
        env.step({**ok, "mouse_2": -1})
    with pytest.raises(TypeError, match="'mouse_0' must be an integer.*1.0"):
        env.step({**ok, "mouse_0": 1.0})
    with pytest.raises(TypeError, match="'mouse_0' must be an integer.*None"):
        env.step({**ok, "mouse_0": None})
    with pytest.raises(TypeError, match="'mouse_2' must be an integer"):
        env.step({**ok, "mouse_2": np.array(1.0)})
    with pytest.raises(ValueError, match=r"missing action for agent\(s\) \['mouse_2'\]"):
        env.step({"mouse_0": 0, "mouse_1": 0})
    with pytest.raises(ValueError, match="unknown agent 'mouse_9'"):
        env.step({**ok, "mouse_9": 0})
    with pytest.raises(TypeError, match="must be a dict"):
        env.step([0, 0, 0])
    env.step(ok)  # the valid dict (with numpy ints) is accepted


# --------------------------------------------------------------------------- hand-worked rules
def test_cat_chases_the_nearest_mouse(corridor):
    env = greedy_mouse_v0.parallel_env(map=corridor, num_mice=2, min_cat_distance=1)
    env.reset(seed=0)
    stay = {"mouse_0": N, "mouse_1": N}  # N is a wall in the corridor: nobody moves
    # cat at col 3: mouse_0 (col 1) is 2 away, mouse_1 (col 7) 4 away -> cat goes W.
    place(env, mice=[(1, 1), (1, 7)], cat=(1, 3), cheeses=[(1, 5)])
    _, rew, _, _, info = env.step(stay)
    assert info["mouse_0"]["cat"] == (1, 2)
    assert info["mouse_0"]["cat_target"] == "mouse_0"
    assert info["mouse_0"]["hit_wall"] and info["mouse_1"]["hit_wall"]
    assert rew == {"mouse_0": -1.0, "mouse_1": -1.0}
    # cat at col 6: mouse_1 (col 7) is nearer -> cat goes E onto it and eats it.
    place(env, mice=[(1, 1), (1, 7)], cat=(1, 6), cheeses=[(1, 3)])
    _, rew, term, _, info = env.step(stay)
    assert info["mouse_1"]["cat_target"] == "mouse_1"
    assert info["mouse_1"]["cat"] == (1, 7)
    assert info["mouse_1"]["eaten"] and not info["mouse_0"]["eaten"]
    assert rew == {"mouse_0": -1.0, "mouse_1": -101.0}
    assert term == {"mouse_0": False, "mouse_1": False}  # respawn=True: never terminated
    # Tie (both 3 away from col 4): the lowest index, mouse_0, is chased.
    place(env, mice=[(1, 1), (1, 7)], cat=(1, 4), cheeses=[(1, 2)])
    _, _, _, _, info = env.step(stay)
    assert info["mouse_0"]["cat_target"] == "mouse_0"
    assert info["mouse_0"]["cat"] == (1, 3)


def test_nearest_is_by_bfs_distance_not_straight_line(tmp_path):
    # A wall between the cat and mouse_0: straight-line nearer, but a longer path.
    p = tmp_path / "u.txt"
    p.write_text("XXXXXXX\nX     X\nX XXX X\nX     X\nXXXXXXX\n")
    env = greedy_mouse_v0.parallel_env(map=str(p), num_mice=2, min_cat_distance=1)
    env.reset(seed=0)
    # cat (3,3); mouse_0 (1,3) is 2 rows up but BFS 4 away; mouse_1 (3,5)... 2 away.
    place(env, mice=[(1, 3), (3, 5)], cat=(3, 3), cheeses=[(1, 1)])
    _, _, _, _, info = env.step({"mouse_0": N, "mouse_1": S})  # both hit walls
    assert info["mouse_0"]["cat_target"] == "mouse_1"
    assert info["mouse_0"]["cat"] == (3, 4)


def test_mouse_walking_onto_cat_is_eaten_and_cat_pauses(corridor):
    env = greedy_mouse_v0.parallel_env(map=corridor, num_mice=2, min_cat_distance=1, respawn=False)
    env.reset(seed=0)
    place(env, mice=[(1, 2), (1, 6)], cat=(1, 3), cheeses=[(1, 7)])
    obs, rew, term, trunc, info = env.step({"mouse_0": E, "mouse_1": W})
    assert info["mouse_0"]["eaten"] and info["mouse_0"]["mouse"] == (1, 3)
    assert not info["mouse_1"]["eaten"]
    assert info["mouse_1"]["cat"] == (1, 3)  # the cat ate, so it did not move
    assert info["mouse_1"]["cat_target"] is None
    assert rew == {"mouse_0": -101.0, "mouse_1": -1.0}
    assert term == {"mouse_0": True, "mouse_1": False}
    assert trunc == {"mouse_0": False, "mouse_1": False}
    assert set(obs) == {"mouse_0", "mouse_1"}  # the leaving agent gets its last obs
    assert env.agents == ["mouse_1"]
    assert info["mouse_1"]["mice"] == {"mouse_1": (1, 5)}
    # The eaten mouse has left the grid: the cat now chases mouse_1 only, and mouse_1's
    # local view shows no other mouse.
    obs, rew, term, _, info = env.step({"mouse_1": N})
    assert set(rew) == {"mouse_1"}
    assert info["mouse_1"]["cat"] == (1, 4)
    assert info["mouse_1"]["cat_target"] == "mouse_1"
    assert 4 not in obs["mouse_1"]
    # The cat steps onto mouse_1 (sub-step 5): the last agent leaves, episode over.
    obs, rew, term, _, info = env.step({"mouse_1": N})
    assert info["mouse_1"]["eaten"] and term == {"mouse_1": True}
    assert rew == {"mouse_1": -101.0}
    assert env.agents == []
    assert env.state()[3:].sum() == 0  # no mouse on the board
    with pytest.raises(RuntimeError, match="episode ended"):
        env.step({"mouse_1": 0})


def test_cheese_eaten_by_one_mouse_and_respawned(room):
    env = greedy_mouse_v0.parallel_env(map=room, num_mice=2, min_cat_distance=1)
    env.reset(seed=0)
    place(env, mice=[(1, 1), (3, 1)], cat=(3, 4), cheeses=[(1, 2)])
    _, rew, _, _, info = env.step({"mouse_0": E, "mouse_1": N})
    assert info["mouse_0"]["cheese_eaten"] and not info["mouse_1"]["cheese_eaten"]
    assert rew == {"mouse_0": 49.0, "mouse_1": -1.0}
    assert info["mouse_0"]["total_cheese"] == 1 and info["mouse_1"]["total_cheese"] == 0
    (cheese,) = info["mouse_0"]["cheese"]
    assert cheese not in {(1, 2), (2, 1), (3, 4)}  # not under a mouse or the (old) cat
    assert info["mouse_0"]["mouse"] == (1, 2)


def test_two_mice_on_one_cheese_exactly_one_eats_it(room):
    winners = set()
    for seed in range(12):
        env = greedy_mouse_v0.parallel_env(map=room, num_mice=2, min_cat_distance=1)
        env.reset(seed=seed)
        place(env, mice=[(1, 1), (1, 3)], cat=(3, 4), cheeses=[(1, 2)])
        _, rew, _, _, info = env.step({"mouse_0": E, "mouse_1": W})
        got = [a for a in env.possible_agents if info[a]["cheese_eaten"]]
        assert len(got) == 1
        other = "mouse_1" if got[0] == "mouse_0" else "mouse_0"
        assert rew[got[0]] == 49.0 and rew[other] == -1.0
        assert info[other]["total_cheese"] == 0
        assert info["mouse_0"]["mouse"] == info["mouse_1"]["mouse"] == (1, 2)  # shared cell
        winners.add(got[0])
    assert winners == {"mouse_0", "mouse_1"}  # drawn at random, not always the same one


def test_several_cheeses(room):
    env = greedy_mouse_v0.parallel_env(
        map=room, num_mice=2, num_cheese=3, min_cat_distance=1, obs_mode="features"
    )
    obs, infos = env.reset(seed=5)
    assert len(set(infos["mouse_0"]["cheese"])) == 3
    place(env, mice=[(1, 1), (3, 1)], cat=(3, 4), cheeses=[(1, 2), (3, 2), (1, 4)])
    _, rew, _, _, info = env.step({"mouse_0": E, "mouse_1": E})
    assert rew == {"mouse_0": 49.0, "mouse_1": 49.0}
    cheeses = info["mouse_0"]["cheese"]
    assert len(cheeses) == 3 and len(set(cheeses)) == 3
    assert cheeses[2] == (1, 4)  # the uneaten cheese stays
    assert not {(1, 2), (3, 2), (3, 4)} & set(cheeses)  # mice, cat when they respawned
    # Features point at the *nearest* cheese: cheeses 3, 1 and 2 steps from mouse_0.
    place(env, mice=[(2, 1), (3, 4)], cat=(1, 4), cheeses=[(2, 4), (2, 2), (3, 3)])
    obs = env.unwrapped._observations(env.agents)
    f = obs["mouse_0"]
    world = env.unwrapped.world
    assert f[2] == pytest.approx(0 / 5) and f[3] == pytest.approx(1 / 6)  # (2,2) - (2,1)
    assert f[5] == pytest.approx(1 / world.max_dist)


def test_respawn_mode_eaten_mouse_reappears_far_from_cat(corridor):
    env = greedy_mouse_v0.parallel_env(map=corridor, num_mice=2, min_cat_distance=2)
    env.reset(seed=1)
    place(env, mice=[(1, 3), (1, 7)], cat=(1, 4), cheeses=[(1, 1)])
    _, rew, term, _, info = env.step({"mouse_0": E, "mouse_1": N})
    assert info["mouse_0"]["eaten"] and rew["mouse_0"] == -101.0
    assert not term["mouse_0"] and env.agents == ["mouse_0", "mouse_1"]
    pos = info["mouse_0"]["mouse"]
    assert abs(pos[1] - 4) >= 2  # BFS distance along the corridor
    assert pos not in {(1, 7), (1, 1)}  # not onto the other mouse or the cheese
    assert info["mouse_0"]["total_eaten"] == 1


def test_truncation_at_max_cycles():
    env = greedy_mouse_v0.parallel_env(num_mice=3, max_cycles=5)
    env.reset(seed=0)
    for t in range(5):
        _, _, term, trunc, _ = env.step({a: 2 for a in env.agents})
        assert not any(term.values())
        assert all(trunc.values()) == (t == 4)
    assert env.agents == []


def test_num_mice_one_follows_the_single_mouse_rules(corridor):
    env = greedy_mouse_v0.parallel_env(map=corridor, num_mice=1, min_cat_distance=1)
    env.reset(seed=0)
    # Eaten when walking onto the cat: the step ends (cat does not move).
    place(env, mice=[(1, 2)], cat=(1, 3), cheeses=[(1, 7)])
    _, rew, _, _, info = env.step({"mouse_0": E})
    assert info["mouse_0"]["eaten"] and info["mouse_0"]["cat"] == (1, 3)
    assert rew["mouse_0"] == -101.0
    # Cheese, then the cat moves one step towards the mouse.
    place(env, mice=[(1, 5)], cat=(1, 1), cheeses=[(1, 6)])
    _, rew, _, _, info = env.step({"mouse_0": E})
    assert info["mouse_0"]["cheese_eaten"] and rew["mouse_0"] == 49.0
    assert info["mouse_0"]["cat"] == (1, 2)
    # Wall: stays in place, step reward only.
    place(env, mice=[(1, 7)], cat=(1, 1), cheeses=[(1, 4)])
    _, rew, _, _, info = env.step({"mouse_0": E})
    assert info["mouse_0"]["hit_wall"] and info["mouse_0"]["mouse"] == (1, 7)
    assert rew["mouse_0"] == -1.0


def test_wall_penalty_and_custom_rewards(corridor):
    env = greedy_mouse_v0.parallel_env(
        map=corridor, num_mice=1, min_cat_distance=1, wall_penalty=-5, step_reward=0
    )
    env.reset(seed=0)
    place(env, mice=[(1, 7)], cat=(1, 1), cheeses=[(1, 4)])
    _, rew, _, _, _ = env.step({"mouse_0": NE})
    assert rew["mouse_0"] == -5.0


# --------------------------------------------------------------------------- observations
def test_local_observation_encoding(room):
    env = greedy_mouse_v0.parallel_env(map=room, num_mice=3, min_cat_distance=1)
    env.reset(seed=0)
    place(env, mice=[(1, 1), (2, 1), (3, 4)], cat=(1, 2), cheeses=[(2, 2)])
    obs = env.unwrapped._observations(env.agents)
    # Order NW, N, NE, W, E, SW, S, SE. mouse_0 at (1,1): walls above and left.
    assert obs["mouse_0"].tolist() == [1, 1, 1, 1, 3, 1, 4, 2]
    # mouse_1 at (2,1): N is mouse_0 (4), NE the cat, E the cheese.
    assert obs["mouse_1"].tolist() == [1, 4, 3, 1, 2, 1, 0, 0]
    # mouse_2 at (3,4): sees nobody else.
    assert obs["mouse_2"].tolist() == [0, 0, 1, 0, 1, 1, 1, 1]
    for a in env.agents:
        assert env.observation_space(a).contains(obs[a])


def test_global_observation_and_state(room):
    env = greedy_mouse_v0.parallel_env(map=room, num_mice=2, min_cat_distance=1, obs_mode="global")
    env.reset(seed=0)
    place(env, mice=[(1, 1), (3, 3)], cat=(2, 4), cheeses=[(1, 3)])
    obs = env.unwrapped._observations(env.agents)
    o = obs["mouse_1"]
    assert o.shape == (5, 5, 6) and o.dtype == np.uint8
    assert (o[0] == load_map(room).walls).all()
    assert np.argwhere(o[1]).tolist() == [[3, 3]]  # itself
    assert np.argwhere(o[2]).tolist() == [[2, 4]]  # cat
    assert np.argwhere(o[3]).tolist() == [[1, 3]]  # cheese
    assert np.argwhere(o[4]).tolist() == [[1, 1]]  # the other mouse
    s = env.state()
    assert env.state_space.contains(s)
    assert [np.argwhere(s[k]).tolist() for k in range(1, 5)] == [
        [[2, 4]],
        [[1, 3]],
        [[1, 1]],
        [[3, 3]],
    ]


def _bfs(walls, start, moves):
    h, w = walls.shape
    dist = {start: 0}
    q = deque([start])
    while q:
        r, c = q.popleft()
        for dr, dc in moves:
            nr, nc = r + dr, c + dc
            if 0 <= nr < h and 0 <= nc < w and not walls[nr, nc] and (nr, nc) not in dist:
                dist[(nr, nc)] = dist[(r, c)] + 1
                q.append((nr, nc))
    return dist


@pytest.mark.parametrize("map_name,steps", [("classic", 400), ("maze41", 80)])
def test_cat_step_is_first_step_of_shortest_path_to_nearest_mouse(map_name, steps):
    cfg = MultiMouseConfig(num_mice=3, num_cheese=2, map=map_name)
    world = MultiMouseWorld(cfg)
    walls = world.grid.walls
    rng = np.random.default_rng(7)
    world.reset(episode_key(new_base(rng), 0))
    rc = world.free_rc
    checked = 0
    for _ in range(steps):
        actions = [int(a) for a in rng.integers(8, size=3)]
        before_cat = rc[world.cat]
        moved = []
        for i in range(3):  # mouse moves by hand: blocked by walls / edges only
            r, c = rc[world.mice[i]]
            dr, dc = DIRECTIONS_8[actions[i]]
            moved.append((r + dr, c + dc) if not walls[r + dr, c + dc] else (r, c))
        out = world.step(actions)
        if out.cat_ate:
            assert before_cat in moved
            continue
        from_cat = _bfs(walls, before_cat, DIRECTIONS_8)
        nearest = min(range(3), key=lambda i: (from_cat[moved[i]], i))
        assert out.cat_target == nearest
        goal = moved[nearest]
        to_goal = _bfs(walls, goal, DIRECTIONS_8)
        new_cat = rc[world.cat]
        if before_cat == goal:
            assert new_cat == goal
            continue
        # The first direction (N, NE, …) whose cell is one step closer.
        first = next(
            (before_cat[0] + dr, before_cat[1] + dc)
            for dr, dc in DIRECTIONS_8
            if to_goal.get((before_cat[0] + dr, before_cat[1] + dc), -1) == to_goal[before_cat] - 1
        )
        assert new_cat == first
        checked += 1
    assert checked > steps // 2


def test_same_seed_same_trajectory_different_seed_different():
    def run(seed):
        env = greedy_mouse_v0.parallel_env(num_mice=3, num_cheese=2)
        obs, _ = env.reset(seed=seed)
        rng = np.random.default_rng(0)
        trace = [sorted((a, o.tolist()) for a, o in obs.items())]
        for _ in range(60):
            acts = {a: int(rng.integers(8)) for a in env.agents}
            obs, rew, _, _, info = env.step(acts)
            trace.append((sorted(rew.items()), info["mouse_0"]["cat"], info["mouse_0"]["mice"]))
        return trace

    assert run(11) == run(11)
    assert run(11) != run(12)


def test_reset_places_entities_on_distinct_cells_far_from_cat():
    env = greedy_mouse_v0.parallel_env(num_mice=6, num_cheese=3, min_cat_distance=4)
    world = env.unwrapped.world
    for seed in range(20):
        _, infos = env.reset(seed=seed)
        mice = [infos[a]["mouse"] for a in env.agents]
        cat, cheese = infos["mouse_0"]["cat"], infos["mouse_0"]["cheese"]
        assert len({*mice, cat, *cheese}) == 6 + 1 + 3
        ci = world.grid.cell_index
        assert all(world.dist(ci[cat], ci[m]) >= 4 for m in mice)
        assert all(not infos[a]["eaten"] and infos[a]["episode_step"] == 0 for a in env.agents)


def test_rgb_render_shows_mice_and_human_close_is_idempotent():
    env = greedy_mouse_v0.parallel_env(num_mice=3, render_mode="rgb_array")
    env.reset(seed=0)
    frame = env.render()
    assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[1] == 14 * 32
    human = greedy_mouse_v0.parallel_env(num_mice=2, render_mode="human")
    human.reset(seed=0)
    human.step({a: 0 for a in human.agents})
    human.close()
    human.close()
    text = greedy_mouse_v0.parallel_env(num_mice=2, render_mode="ansi")
    text.reset(seed=0)
    grid_lines = text.render().splitlines()
    assert "".join(grid_lines[:11]).count("m") == 2
    assert "".join(grid_lines[:11]).count("c") == 1
    assert grid_lines[11].startswith("step 0")


def test_two_mice_eaten_together_respawn_on_distinct_free_cells(room):
    for seed in range(40):
        env = greedy_mouse_v0.parallel_env(map=room, num_mice=3, min_cat_distance=1)
        env.reset(seed=seed)
        place(env, mice=[(1, 1), (3, 3), (3, 1)], cat=(2, 2), cheeses=[(1, 4)])
        _, rew, _, _, info = env.step({"mouse_0": SE, "mouse_1": NW, "mouse_2": S})
        assert info["mouse_0"]["eaten"] and info["mouse_1"]["eaten"]
        assert rew == {"mouse_0": -101.0, "mouse_1": -101.0, "mouse_2": -1.0}
        cells = [info[a]["mouse"] for a in env.agents] + [(2, 2), (1, 4)]
        assert len(set(cells)) == 5  # mice, cat and cheese all on different cells


@pytest.mark.parametrize(
    "kwargs",
    [
        {"obs_mode": "local"},
        {"obs_mode": "global", "respawn": False, "step_reward": 0.0},
        {"obs_mode": "features", "directions": 4, "wall_penalty": -2.0, "cat_speed": 0.7},
        {"obs_mode": "local", "map": "maze41", "lookdist": 2, "cut_corners": False},
    ],
)
def test_one_mouse_reproduces_the_single_env_trajectory(kwargs):
    """num_mice=1: same seed and actions -> exactly GreedyMouseEnv's trajectory."""
    single = GreedyMouseEnv(**kwargs)
    multi = greedy_mouse_v0.parallel_env(num_mice=1, max_cycles=10**6, **kwargs)
    assert multi.observation_space("mouse_0") == single.observation_space
    assert multi.action_space("mouse_0") == single.action_space
    topo = single.topology
    ci = single.grid.cell_index
    rng = np.random.default_rng(0)
    events = {"cheese_eaten": 0, "eaten": 0, "hit_wall": 0}

    def policy(info):
        # Mostly towards the cheese (so cheese gets eaten), otherwise random (walls).
        if rng.random() < 0.3:
            return int(rng.integers(single.action_space.n))
        m, c = ci[info["mouse"]], ci[info["cheese"]]
        return int(np.flatnonzero(topo.move[m] == topo.next_hop[m, c])[0])

    def same(m_obs, m_info, s_obs, s_info):
        np.testing.assert_array_equal(m_obs, s_obs)
        assert m_obs.dtype == s_obs.dtype
        expected = {**s_info, "cheese": (s_info["cheese"],)}
        assert {k: m_info[k] for k in expected} == expected

    # Seeded resets, then unseeded ones (episode counter under the same base).
    for seed in (0, 1, 2, None, None, 3):
        s_obs, s_info = single.reset(seed=seed)
        m_obs, m_info = multi.reset(seed=seed)
        same(m_obs["mouse_0"], m_info["mouse_0"], s_obs, s_info)
        for _ in range(150):
            action = policy(s_info)
            s_obs, s_rew, s_term, _, s_info = single.step(action)
            m_obs, m_rew, m_term, _, m_info = multi.step({"mouse_0": action})
            assert m_rew["mouse_0"] == s_rew and m_term["mouse_0"] == s_term
            same(m_obs["mouse_0"], m_info["mouse_0"], s_obs, s_info)
            for key in events:
                events[key] += s_info[key]
            if s_term:
                break
    assert all(v > 0 for v in events.values()), events  # every rule was exercised


def test_aec_env_plays_the_same_game_as_the_parallel_env():
    kwargs = {"num_mice": 3, "respawn": False, "step_reward": 0.0, "max_cycles": 300}
    par = greedy_mouse_v0.parallel_env(**kwargs)
    aec = greedy_mouse_v0.env(**kwargs)
    par.reset(seed=5)
    aec.reset(seed=5)
    rng = np.random.default_rng(1)
    n_terminated = 0
    while par.agents:
        acts = {a: int(rng.integers(8)) for a in par.agents}
        while aec.agents and (
            aec.terminations[aec.agent_selection] or aec.truncations[aec.agent_selection]
        ):
            aec.step(None)  # AEC convention: agents that are done step once with None
        assert sorted(aec.agents) == sorted(par.agents)
        for _ in range(len(par.agents)):
            aec.step(acts[aec.agent_selection])
        obs, rew, term, trunc, _ = par.step(acts)
        n_terminated += sum(term.values())
        for a in rew:
            assert aec.rewards[a] == rew[a]
            assert aec.terminations[a] == term[a] and aec.truncations[a] == trunc[a]
            np.testing.assert_array_equal(aec.observe(a), obs[a])
        np.testing.assert_array_equal(aec.state(), par.state())
    assert n_terminated >= 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"num_mice": 2, "num_cheese": 1},
        {"num_mice": 5, "num_cheese": 3, "directions": 4},
        {"num_mice": 3, "num_cheese": 2, "respawn": False, "wall_penalty": -3.0},
        {"num_mice": 4, "num_cheese": 1, "cat_speed": 0.5, "min_cat_distance": 5},
    ],
)
def test_invariants_under_random_play(kwargs):
    env = greedy_mouse_v0.parallel_env(max_cycles=250, **kwargs)
    cfg = env.unwrapped.config
    world = env.unwrapped.world
    ci = world.grid.cell_index
    rng = np.random.default_rng(3)
    for seed in range(3):
        _, infos = env.reset(seed=seed)
        returns = dict.fromkeys(env.agents, 0.0)
        cat = infos["mouse_0"]["cat"]
        while env.agents:
            acts = {a: int(rng.integers(cfg.directions)) for a in env.agents}
            _, rew, term, _, infos = env.step(acts)
            for a, info in infos.items():
                expected = (
                    cfg.step_reward
                    + cfg.wall_penalty * info["hit_wall"]
                    + cfg.cheese_reward * info["cheese_eaten"]
                    + cfg.eaten_reward * info["eaten"]
                )
                assert rew[a] == pytest.approx(expected)
                returns[a] += rew[a]
                assert info["episode_return"] == pytest.approx(returns[a])
                assert term[a] == (info["eaten"] and not cfg.respawn)
            new_cat = infos[next(iter(infos))]["cat"]
            assert world.dist(ci[cat], ci[new_cat]) <= 1  # the cat moves at most one cell
            cat = new_cat
            cheeses = infos[next(iter(infos))]["cheese"]
            live = infos[next(iter(infos))]["mice"]
            assert len(set(cheeses)) == cfg.num_cheese
            assert not set(cheeses) & set(live.values())  # a mouse on a cheese ate it
            assert cat not in live.values()  # a mouse on the cat was eaten
            assert set(live) == {
                a for a in infos if not term[a]
            }  # eaten mice left only if respawn=False
            for info in infos.values():
                if info["eaten"] and cfg.respawn:
                    assert world.dist(ci[cat], ci[info["mouse"]]) >= cfg.min_cat_distance


def test_reset_options_are_checked():
    env = greedy_mouse_v0.parallel_env()
    with pytest.raises(TypeError, match=r"options must be a dict or None, got str 'junk'"):
        env.reset(seed=0, options="junk")
    with pytest.raises(ValueError, match=r"unknown reset option\(s\) 'mouse'; allowed keys: none"):
        env.reset(seed=0, options={"mouse": (1, 1)})  # positions are not pinnable here
    env.reset(seed=0, options={"options": 1})  # PettingZoo's API-test probe is accepted
