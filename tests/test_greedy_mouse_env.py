"""GreedyMouseEnv: API checkers, hand-worked dynamics, the greedy cat, bad input, seeding."""

from __future__ import annotations

import warnings
from collections import deque

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import smpc_gym  # noqa: F401  (registers GreedyMouse-v0)
from smpc_gym.envs.greedy_mouse import core
from smpc_gym.envs.greedy_mouse.env import GreedyMouseEnv
from smpc_gym.envs.greedy_mouse.maps import MapError

# 2 x 6 open room: every cell has >= 2 cells at BFS distance >= 3 (so min_cat_distance=3).
ROOM = "XXXXXXXX\nX      X\nX      X\nXXXXXXXX\n"
# 5 x 5 room with one wall block at (2, 3) for observation tests.
BOX = "XXXXXXX\nX     X\nX   X X\nX     X\nX     X\nX     X\nXXXXXXX\n"

N, NE, E, SE, S, SW, W, NW = range(8)

CONFIGS = [
    {},
    {"obs_mode": "global"},
    {"obs_mode": "features"},
    {"directions": 4},
    {"directions": 4, "obs_mode": "features", "cut_corners": False},
    {"lookdist": 2},
    {"respawn": False, "step_reward": 0.0},
    {"cat_speed": 0.5, "map": "maze41"},
]


def write_map(tmp_path, text: str, name: str = "m.txt") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def make(tmp_path=None, text: str | None = None, **kwargs) -> GreedyMouseEnv:
    if text is not None:
        kwargs["map"] = write_map(tmp_path, text)
    return gym.make("GreedyMouse-v0", **kwargs).unwrapped


# --------------------------------------------------------------------------- API checkers


@pytest.mark.parametrize(
    "kwargs", CONFIGS, ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items())
)
def test_gymnasium_check_env_no_warnings(kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        env = gym.make("GreedyMouse-v0", **kwargs)
        check_env(env.unwrapped, skip_render_check=False)
        # The registered, wrapped env (PassiveEnvChecker, TimeLimit) runs without warnings.
        env.reset(seed=0)
        for a in range(40):
            _, _, term, trunc, _ = env.step(a % env.action_space.n)
            if term or trunc:
                env.reset()
        env.close()


@pytest.mark.parametrize(
    "kwargs",
    [c for c in CONFIGS if c.get("obs_mode") != "global"],
    ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items()),
)
def test_sb3_check_env_no_warnings(kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sb3_check_env(gym.make("GreedyMouse-v0", **kwargs).unwrapped)


def test_sb3_check_env_global_obs():
    """SB3 treats any 3-D Box as an image for its CNN (uint8 0..255, >= 36x36 pixels).

    The global grid is a (4, H, W) 0/1 one-hot, not an image; for SB3's MLP policies it is
    flattened, which passes without warnings. Unwrapped, the only warnings are those image
    ones (and nothing else).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        env = gym.make("GreedyMouse-v0", obs_mode="global").unwrapped
        sb3_check_env(gym.wrappers.FlattenObservation(env))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sb3_check_env(gym.make("GreedyMouse-v0", obs_mode="global").unwrapped)
    messages = [str(w.message) for w in caught]
    assert messages, "expected SB3's image warnings for a (4, H, W) Box"
    assert all("image" in m for m in messages), messages


def test_make_by_module_prefix_and_spaces():
    env = gym.make("smpc_gym:GreedyMouse-v0")
    assert env.spec.max_episode_steps == 1000
    assert env.action_space == gym.spaces.Discrete(8)
    assert env.observation_space == gym.spaces.MultiDiscrete([4] * 8)
    assert gym.make("GreedyMouse-v0", directions=4).action_space == gym.spaces.Discrete(4)
    assert gym.make("GreedyMouse-v0", lookdist=2).observation_space.shape == (24,)
    g = gym.make("GreedyMouse-v0", obs_mode="global").observation_space
    assert g.shape == (4, 11, 14) and g.dtype == np.uint8
    f = gym.make("GreedyMouse-v0", obs_mode="features").observation_space
    assert f.shape == (14,) and f.dtype == np.float32


def test_truncates_at_1000_steps_in_respawn_mode():
    env = gym.make("GreedyMouse-v0")
    env.reset(seed=3)
    rng = np.random.default_rng(0)
    for t in range(1, 1001):
        _, _, term, trunc, info = env.step(int(rng.integers(8)))
        assert not term
        assert trunc == (t == 1000)
    assert info["episode_step"] == 1000
    assert info["episode_return"] == pytest.approx(
        50 * info["total_cheese"] - 100 * info["total_eaten"] - 1000
    )


# --------------------------------------------------------------------------- the greedy cat


def bfs_from(walls: np.ndarray, target: tuple[int, int], dirs, cut_corners: bool) -> dict:
    """Independent BFS distances to ``target`` (moves are symmetric)."""
    h, w = walls.shape

    def free(r, c):
        return 0 <= r < h and 0 <= c < w and not walls[r, c]

    def nbrs(r, c):
        for dr, dc in dirs:
            if not free(r + dr, c + dc):
                continue
            if dr and dc and not cut_corners and not (free(r + dr, c) and free(r, c + dc)):
                continue
            yield r + dr, c + dc

    dist = {target: 0}
    queue = deque([target])
    while queue:
        cell = queue.popleft()
        for nb in nbrs(*cell):
            if nb not in dist:
                dist[nb] = dist[cell] + 1
                queue.append(nb)
    return dist, nbrs


DIRS8 = [(-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1)]
DIRS4 = [(-1, 0), (0, 1), (1, 0), (0, -1)]


@pytest.mark.parametrize(
    ("map_name", "directions", "cut_corners"),
    [("classic", 8, True), ("classic", 4, True), ("classic", 8, False), ("maze41", 8, True)],
)
def test_cat_takes_first_step_of_a_shortest_path(map_name, directions, cut_corners):
    env = make(map=map_name, directions=directions, cut_corners=cut_corners)
    walls = env.grid.walls
    dirs = DIRS8 if directions == 8 else DIRS4
    h, w = walls.shape
    cache: dict = {}
    checked = ties = caught = 0
    for seed in range(20):
        env.reset(seed=seed)
        rng = np.random.default_rng(seed)
        for _ in range(150):
            mouse_before, cat_before = env.mouse_pos, env.cat_pos
            action = int(rng.integers(directions))
            # Where the mouse moves, by the test's own rule.
            dr, dc = dirs[action]
            r, c = mouse_before[0] + dr, mouse_before[1] + dc

            def free(rr, cc):
                return 0 <= rr < h and 0 <= cc < w and not walls[rr, cc]

            ok = free(r, c) and (
                cut_corners
                or not (dr and dc)
                or (free(r, mouse_before[1]) and free(mouse_before[0], c))
            )
            mouse = (r, c) if ok else mouse_before
            _, _, _, _, info = env.step(action)
            assert info["hit_wall"] == (not ok)
            if mouse == cat_before:  # stepped onto the cat: eaten, the cat does not move
                assert info["eaten"] and info["cat"] == cat_before
                continue
            if mouse not in cache:
                cache[mouse] = bfs_from(walls, mouse, dirs, cut_corners)
            dist, nbrs = cache[mouse]
            closer = {nb for nb in nbrs(*cat_before) if dist[nb] == dist[cat_before] - 1}
            # The first neighbour in direction order that is one step closer.
            ordered = [
                (cat_before[0] + dr, cat_before[1] + dc)
                for dr, dc in dirs
                if (cat_before[0] + dr, cat_before[1] + dc) in closer
            ]
            assert info["cat"] == ordered[0], (seed, cat_before, mouse, ordered)
            assert info["eaten"] == (ordered[0] == mouse)
            if not info["eaten"]:
                assert info["mouse"] == mouse
            checked += 1
            ties += len(ordered) > 1
            caught += info["eaten"]
    assert checked > 2000 and ties > 100 and caught > 20  # ties and catches were exercised


def test_cat_speed_zero_never_moves_and_half_moves_sometimes():
    env = make(cat_speed=0.0)
    env.reset(seed=1)
    cat = env.cat_pos
    for a in range(200):
        env.step(a % 8)
        assert env.cat_pos == cat
    env = make(cat_speed=0.5, respawn=False, step_reward=0.0)
    moved = stayed = 0
    for seed in range(20):
        env.reset(seed=seed)
        for a in range(30):
            before = env.cat_pos
            _, _, term, _, info = env.step((a * 3) % 8)
            if term:
                break
            moved += info["cat"] != before
            stayed += info["cat"] == before
    assert moved > 50 and stayed > 50


# --------------------------------------------------------------------------- hand-worked


def test_eating_cheese(tmp_path):
    env = make(tmp_path, ROOM)
    obs, info = env.reset(seed=0, options={"mouse": (1, 1), "cheese": (1, 2), "cat": (1, 6)})
    assert (info["mouse"], info["cheese"], info["cat"]) == ((1, 1), (1, 2), (1, 6))
    _, reward, term, trunc, info = env.step(E)
    assert reward == 50 - 1
    assert info["cheese_eaten"] and not info["eaten"] and not info["hit_wall"]
    assert info["mouse"] == (1, 2)
    assert info["cheese"] not in {(1, 2), (1, 6)}
    # The cat (1,6) -> mouse (1,2): SW (2,5) and W (1,5) are both one step closer; SW comes
    # first in the direction order N, NE, E, SE, S, SW, W, NW.
    assert info["cat"] == (2, 5)
    assert info["total_cheese"] == 1 and info["episode_return"] == 49
    assert not term and not trunc


def test_cheese_respawns_on_a_cell_without_mouse_or_cat(tmp_path):
    env = make(tmp_path, ROOM)
    spots = set()
    for seed in range(60):
        env.reset(seed=seed, options={"mouse": (2, 2), "cheese": (2, 3), "cat": (1, 3)})
        _, _, _, _, info = env.step(E)
        assert info["cheese_eaten"]
        assert info["cheese"] not in {(2, 3), (1, 3)}
        spots.add(info["cheese"])
    assert len(spots) >= 8  # 10 cells allowed: the draw is spread over them


def test_eaten_by_stepping_onto_the_cat(tmp_path):
    env = make(tmp_path, ROOM)
    env.reset(seed=0, options={"mouse": (1, 1), "cat": (1, 2), "cheese": (2, 6)})
    _, reward, term, _, info = env.step(E)
    assert reward == -1 - 100
    assert info["eaten"] and not term
    assert info["cat"] == (1, 2)  # the step ended: the cat did not move
    # Respawned at BFS distance >= 3 from the cat (Chebyshev in an open room), off the cheese.
    r, c = info["mouse"]
    assert max(abs(r - 1), abs(c - 2)) >= 3 and info["mouse"] != (2, 6)
    assert info["total_eaten"] == 1


def test_eaten_when_the_cat_steps_onto_the_mouse_episodic(tmp_path):
    env = make(tmp_path, ROOM, respawn=False, wall_penalty=-5.0)
    env.reset(seed=0, options={"mouse": (1, 1), "cat": (2, 2), "cheese": (2, 6)})
    _, reward, term, trunc, info = env.step(N)  # into the wall: stays, then the cat pounces
    assert info["hit_wall"] and info["eaten"]
    assert reward == -1 - 5 - 100
    assert term and not trunc
    assert info["mouse"] == info["cat"] == (1, 1)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(E)
    env.reset()
    env.step(E)  # fine again after reset


def test_cheese_then_caught_in_the_same_step(tmp_path):
    env = make(tmp_path, ROOM, respawn=False, step_reward=0.0)
    env.reset(seed=0, options={"mouse": (1, 1), "cheese": (1, 2), "cat": (2, 3)})
    _, reward, term, _, info = env.step(E)
    assert info["cheese_eaten"] and info["eaten"] and term
    assert reward == 50 - 100


def test_hitting_a_wall(tmp_path):
    env = make(tmp_path, ROOM, wall_penalty=-3.0, cat_speed=0.0)  # a cat that stays put
    env.reset(seed=0, options={"mouse": (1, 1), "cat": (2, 6), "cheese": (1, 6)})
    for action, hit in ((N, True), (NW, True), (W, True), (SW, True), (S, False)):
        before = env.mouse_pos
        _, reward, _, _, info = env.step(action)
        assert info["hit_wall"] == hit
        assert reward == (-1 - 3 if hit else -1)
        if hit:
            assert info["mouse"] == before
    assert info["mouse"] == (2, 1)
    assert info["total_wall_hits"] == 4


def test_cut_corners(tmp_path):
    text = "XXXXX\nX  XX\nXX  X\nXX  X\nXXXXX\n"
    env = make(tmp_path, text, min_cat_distance=1)
    env.reset(seed=0, options={"mouse": (1, 2), "cat": (3, 3), "cheese": (1, 1)})
    _, _, _, _, info = env.step(SE)  # (1,2) -> (2,3) past the wall corner at (1,3)
    assert not info["hit_wall"]
    env = make(tmp_path, text, min_cat_distance=1, cut_corners=False)
    env.reset(seed=0, options={"mouse": (1, 2), "cat": (3, 3), "cheese": (1, 1)})
    _, _, _, _, info = env.step(SE)
    assert info["hit_wall"] and info["mouse"] == (1, 2)


def test_respawn_vs_episodic_over_many_seeds(tmp_path):
    path = write_map(tmp_path, ROOM)
    resp = make(map=path)
    epis = make(map=path, respawn=False)
    for seed in range(40):
        for env in (resp, epis):
            env.reset(seed=seed, options={"mouse": (1, 3), "cat": (1, 4), "cheese": (2, 1)})
        _, r1, t1, _, i1 = resp.step(E)
        _, r2, t2, _, i2 = epis.step(E)
        assert r1 == r2 == -101 and i1["eaten"] and i2["eaten"]
        assert not t1 and t2
        r, c = i1["mouse"]
        assert max(abs(r - 1), abs(c - 4)) >= 3 and i1["mouse"] != (2, 1)
        assert i2["mouse"] == (1, 4)


def test_reset_places_cat_at_least_min_cat_distance_away():
    env = make(min_cat_distance=5)
    dist = env.topology.dist
    idx = env.grid.cell_index
    for seed in range(100):
        _, info = env.reset(seed=seed)
        m, c, ch = info["mouse"], info["cat"], info["cheese"]
        assert len({m, c, ch}) == 3
        assert dist[idx[m], idx[c]] >= 5


def test_local_observation_encoding(tmp_path):
    env = make(tmp_path, BOX, min_cat_distance=1)
    obs, _ = env.reset(seed=0, options={"mouse": (2, 2), "cat": (3, 3), "cheese": (1, 1)})
    # Window order NW, N, NE, W, E, SW, S, SE around (2, 2): cheese NW, cat SE.
    assert obs.tolist() == [2, 0, 0, 0, 0, 0, 0, 3]
    obs, _ = env.reset(seed=0, options={"mouse": (1, 5), "cat": (5, 5), "cheese": (2, 5)})
    # (1,5) is in the top-right corner; (2,4) is the inner wall block.
    assert obs.tolist() == [1, 1, 1, 0, 1, 1, 2, 1]
    assert core.local_state_id(obs) == sum(v * 4**j for j, v in enumerate(obs.tolist()))
    assert 0 <= core.local_state_id(obs) < core.num_local_states(1) == 4**8


def test_local_observation_lookdist_2(tmp_path):
    env = make(tmp_path, BOX, min_cat_distance=1, lookdist=2)
    obs, _ = env.reset(seed=0, options={"mouse": (1, 1), "cat": (3, 3), "cheese": (1, 3)})
    expected = np.array(
        [
            [1, 1, 1, 1, 1],  # row -1 (off grid) and row 0 (wall)
            [1, 1, 1, 1, 1],
            [1, 1, -9, 0, 2],  # row 1: wall col 0 / col -1, mouse, free, cheese
            [1, 1, 0, 0, 0],
            [1, 1, 0, 0, 3],
        ]
    ).ravel()
    expected = np.delete(expected, 12)  # the mouse's own cell is not in the window
    assert obs.shape == (24,)
    assert obs.tolist() == expected.tolist()


def test_cat_shares_cell_with_cheese_shows_cat(tmp_path):
    env = make(tmp_path, BOX, min_cat_distance=1)
    env.reset(seed=0, options={"mouse": (3, 3), "cat": (3, 4), "cheese": (1, 1)})
    env.unwrapped._world.cheese = env.grid.cell_index[3, 4]  # cat standing on the cheese
    assert env._obs().tolist()[4] == core.CAT


def test_features_observation(tmp_path):
    env = make(tmp_path, BOX, min_cat_distance=1, obs_mode="features")
    obs, _ = env.reset(seed=0, options={"mouse": (1, 1), "cat": (4, 5), "cheese": (1, 3)})
    h, w = 7, 7
    max_dist = int(env.topology.dist.max())
    expected = [3 / h, 4 / w, 0 / h, 2 / w, 4 / max_dist, 2 / max_dist]
    expected += [1, 1, 0, 0, 0, 1, 1, 1]  # walls N, NE, E, SE, S, SW, W, NW of (1, 1)
    assert obs.dtype == np.float32
    np.testing.assert_allclose(obs, np.array(expected, dtype=np.float32))


def test_global_observation_channels(tmp_path):
    env = make(tmp_path, BOX, min_cat_distance=1, obs_mode="global")
    obs, _ = env.reset(seed=0, options={"mouse": (1, 1), "cat": (4, 5), "cheese": (1, 3)})
    assert obs.shape == (4, 7, 7) and obs.dtype == np.uint8
    np.testing.assert_array_equal(obs[0], env.grid.walls.astype(np.uint8))
    for ch, pos in ((1, (1, 1)), (2, (4, 5)), (3, (1, 3))):
        assert obs[ch].sum() == 1 and obs[ch][pos] == 1


def test_info_on_reset_and_step_has_all_keys():
    env = gym.make("GreedyMouse-v0")
    keys = {
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
    }
    _, info = env.reset(seed=0)
    assert set(info) == keys
    assert all(isinstance(info[k], tuple) and len(info[k]) == 2 for k in ("mouse", "cat", "cheese"))
    u = env.unwrapped
    assert (u.mouse_pos, u.cat_pos, u.cheese_pos) == (info["mouse"], info["cat"], info["cheese"])
    _, _, _, _, info = env.step(0)
    assert set(info) == keys and info["episode_step"] == 1


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("action", "exc", "match"),
    [
        (8, ValueError, r"out of range.*0 … 7"),
        (-1, ValueError, r"out of range.*0 … 7"),
        (np.int64(9), ValueError, r"out of range"),
        (1.5, TypeError, r"must be an int in 0 … 7"),
        ("a", TypeError, r"must be an int"),
        (np.array([1, 2]), ValueError, r"single int.*shape \(2,\)"),
        (None, TypeError, r"must be an int"),
        (True, TypeError, r"must be an int"),
    ],
)
def test_bad_actions(action, exc, match):
    env = gym.make("GreedyMouse-v0")
    env.reset(seed=0)
    with pytest.raises(exc, match=match):
        env.step(action)


def test_numpy_actions_are_accepted():
    env = gym.make("GreedyMouse-v0")
    env.reset(seed=0)
    env.step(np.int64(3))
    env.step(np.array(2))
    env.step(np.int8(1))


def test_step_before_reset():
    env = GreedyMouseEnv()
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("XXXX\nX  X\nXXX\n", "ragged: row 2"),
        ("", "empty"),
        ("XXXXXXX\nX  X  X\nXXXXXXX\n", "disconnected"),
    ],
)
def test_bad_maps_via_make(tmp_path, text, match):
    with pytest.raises(MapError, match=match):
        gym.make("GreedyMouse-v0", map=write_map(tmp_path, text))


def test_unknown_map_via_make():
    with pytest.raises(MapError, match=r"unknown map 'nope'.*classic.*maze41"):
        gym.make("GreedyMouse-v0", map="nope")


def test_unknown_keyword_names_it_and_lists_valid_ones():
    with pytest.raises(TypeError) as err:
        gym.make("GreedyMouse-v0", lookdistance=2)
    msg = str(err.value)
    assert "'lookdistance'" in msg and "did you mean 'lookdist'" in msg
    for valid in ("lookdist", "obs_mode", "map", "cat_speed", "render_mode"):
        assert valid in msg


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"directions": 5}, ValueError, "directions must be 4 or 8, got 5"),
        ({"lookdist": 0}, ValueError, "lookdist must be an int >= 1, got 0"),
        ({"lookdist": 1.5}, TypeError, "lookdist must be an int"),
        ({"cat_speed": 1.5}, ValueError, r"cat_speed must be a probability in \[0, 1\], got 1.5"),
        (
            {"obs_mode": "x"},
            ValueError,
            r"obs_mode must be one of \['local', 'global', 'features'\]",
        ),
        ({"min_cat_distance": 0}, ValueError, "min_cat_distance must be >= 1"),
        (
            {"min_cat_distance": 40},
            ValueError,
            r"min_cat_distance=40 is too large.*allowed: 1 … \d+",
        ),
        ({"respawn": "yes"}, TypeError, "respawn must be True or False"),
        ({"step_reward": float("nan")}, ValueError, "step_reward must be finite"),
    ],
)
def test_bad_values(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        gym.make("GreedyMouse-v0", **kwargs)


def test_bad_render_mode():
    with pytest.raises(ValueError, match=r"render_mode must be None or one of \['human'"):
        GreedyMouseEnv(render_mode="video")


def test_min_cat_distance_limit_on_a_small_map(tmp_path):
    path = write_map(tmp_path, ROOM)
    make(map=path, min_cat_distance=3)
    with pytest.raises(ValueError, match=r"allowed: 1 … 3"):
        make(map=path, min_cat_distance=4)


def test_bad_reset_options(tmp_path):
    env = make(tmp_path, ROOM)
    with pytest.raises(ValueError, match="not a free cell"):
        env.reset(options={"mouse": (0, 0)})
    with pytest.raises(ValueError, match="distinct"):
        env.reset(options={"mouse": (1, 1), "cat": (1, 1)})
    with pytest.raises(ValueError, match=r"unknown reset option.*allowed"):
        env.reset(options={"dog": (1, 1)})
    with pytest.raises(ValueError, match=r"'chese' \(did you mean 'cheese'\?\); allowed keys"):
        env.reset(options={"chese": (1, 1)})  # misspelt: named, with a suggestion
    with pytest.raises(TypeError, match=r"options must be a dict or None, got str 'junk'.*'mouse'"):
        env.reset(options="junk")
    env.reset(options={})  # Gymnasium's checker passes an empty dict
    # Pinning one entity re-draws the others off it.
    for seed in range(30):
        _, info = env.reset(seed=seed, options={"cheese": (1, 1)})
        assert info["cheese"] == (1, 1) and len({info["mouse"], info["cat"], (1, 1)}) == 3


# --------------------------------------------------------------------------- seeding


def rollout(env, seed: int, steps: int = 300) -> list:
    obs, info = env.reset(seed=seed)
    rng = np.random.default_rng(123)
    out = [(obs.tolist(), info["mouse"], info["cat"], info["cheese"])]
    for _ in range(steps):
        obs, r, term, trunc, info = env.step(int(rng.integers(env.action_space.n)))
        out.append((obs.tolist(), r, term, info["mouse"], info["cat"], info["cheese"]))
        if term or trunc:
            env.reset()
    return out


@pytest.mark.parametrize("kwargs", [{}, {"cat_speed": 0.6}, {"respawn": False}])
def test_same_seed_same_trajectory_different_seed_different(kwargs):
    a = rollout(gym.make("GreedyMouse-v0", **kwargs), seed=5)
    b = rollout(gym.make("GreedyMouse-v0", **kwargs), seed=5)
    c = rollout(gym.make("GreedyMouse-v0", **kwargs), seed=6)
    assert a == b
    assert a != c
    assert a[0] != c[0]  # different starting positions, not only later events


def test_reset_without_seed_continues_the_seeded_sequence():
    env = gym.make("GreedyMouse-v0")
    env.reset(seed=11)
    starts = [env.reset()[1]["mouse"] for _ in range(3)]
    env.reset(seed=11)
    assert [env.reset()[1]["mouse"] for _ in range(3)] == starts
