"""GreedyMouseVectorEnv: construction, exact equality with the single env, autoreset, errors."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

import smpc_gym  # noqa: F401  (registers GreedyMouse-v0)
from smpc_gym.envs.greedy_mouse.vector import GreedyMouseVectorEnv

INFO_SCALARS = (
    "cheese_eaten",
    "eaten",
    "hit_wall",
    "episode_step",
    "total_cheese",
    "total_eaten",
    "total_wall_hits",
    "episode_return",
)


@pytest.mark.parametrize("mode", ["vector_entry_point", None])
def test_make_vec_builds_the_native_vector_env(mode):
    kwargs = {} if mode is None else {"vectorization_mode": mode}
    envs = gym.make_vec("GreedyMouse-v0", num_envs=5, lookdist=2, **kwargs)
    assert isinstance(envs.unwrapped, GreedyMouseVectorEnv)
    assert envs.num_envs == 5
    assert envs.max_episode_steps == 1000  # taken from the registration
    assert envs.metadata["autoreset_mode"] is AutoresetMode.NEXT_STEP
    assert envs.single_observation_space == gym.spaces.MultiDiscrete([4] * 24)
    assert envs.observation_space.shape == (5, 24)
    assert envs.action_space == gym.spaces.MultiDiscrete([8] * 5)
    obs, info = envs.reset(seed=0)
    assert obs in envs.observation_space
    assert info["mouse"].shape == (5, 2) and info["_mouse"].all()
    envs.close()
    envs.close()


def run_equality(kwargs: dict, num: int, steps: int, seed: int = 7) -> dict:
    """Step the vector env and ``num`` single envs (gym.make, seeds seed+i) in lockstep."""
    vec = gym.make_vec(
        "GreedyMouse-v0", num_envs=num, vectorization_mode="vector_entry_point", **kwargs
    )
    singles = [gym.make("GreedyMouse-v0", **kwargs) for _ in range(num)]
    vobs, vinfo = vec.reset(seed=seed)
    pending = [False] * num
    for i, env in enumerate(singles):
        obs, info = env.reset(seed=seed + i)
        np.testing.assert_array_equal(vobs[i], obs)
        assert tuple(vinfo["mouse"][i]) == info["mouse"]
    rng = np.random.default_rng(seed)
    counts = {"terminated": 0, "truncated": 0, "eaten": 0, "cheese": 0, "autoreset": 0}
    for t in range(steps):
        actions = rng.integers(0, vec.single_action_space.n, size=num)
        vobs, vrew, vterm, vtrunc, vinfo = vec.step(actions)
        for i, env in enumerate(singles):
            if pending[i]:  # NEXT_STEP autoreset: this step resets world i
                obs, info = env.reset()
                rew, term, trunc = 0.0, False, False
                counts["autoreset"] += 1
            else:
                obs, rew, term, trunc, info = env.step(int(actions[i]))
            where = (t, i)
            np.testing.assert_array_equal(vobs[i], obs, err_msg=str(where))
            assert (vrew[i], vterm[i], vtrunc[i]) == (rew, term, trunc), where
            for key in ("mouse", "cat", "cheese"):
                assert tuple(vinfo[key][i]) == info[key], (where, key)
            for key in INFO_SCALARS:
                assert vinfo[key][i] == info[key], (where, key)
            pending[i] = term or trunc
            counts["terminated"] += term
            counts["truncated"] += trunc
            counts["eaten"] += info["eaten"]
            counts["cheese"] += info["cheese_eaten"]
    return counts


def test_vector_equals_single_respawn_across_truncation():
    counts = run_equality({}, num=4, steps=1030)
    assert counts["truncated"] == 4 and counts["autoreset"] == 4
    assert counts["eaten"] > 50 and counts["cheese"] > 10 and counts["terminated"] == 0


def test_vector_equals_single_episodic():
    counts = run_equality({"respawn": False, "step_reward": 0.0}, num=5, steps=400)
    assert counts["terminated"] > 50 and counts["autoreset"] > 40


@pytest.mark.parametrize(
    "kwargs",
    [
        {"cat_speed": 0.6, "directions": 4, "obs_mode": "features"},
        {"obs_mode": "global", "wall_penalty": -2.0, "cut_corners": False},
        {"map": "maze41", "lookdist": 2, "min_cat_distance": 6},
        {"lookdist": 3},  # local obs too big for the precomputed table: scatter path
    ],
    ids=["speed-dir4-features", "global-wall", "maze41-look2", "look3"],
)
def test_vector_equals_single_other_options(kwargs):
    counts = run_equality(kwargs, num=3, steps=250)
    assert counts["eaten"] > 0


def test_vector_matches_gymnasium_sync_vector_env():
    """Gymnasium's own SyncVectorEnv (seed + i per env, NEXT_STEP) gives the same batch."""
    kw = {"respawn": False, "step_reward": 0.0, "cat_speed": 0.8}
    native = gym.make_vec(
        "GreedyMouse-v0", num_envs=6, vectorization_mode="vector_entry_point", **kw
    )
    sync = gym.make_vec("GreedyMouse-v0", num_envs=6, vectorization_mode="sync", **kw)
    a, _ = native.reset(seed=3)
    b, _ = sync.reset(seed=3)
    np.testing.assert_array_equal(a, b)
    rng = np.random.default_rng(0)
    dones = 0
    for _ in range(300):
        actions = rng.integers(0, 8, size=6)
        ra = native.step(actions)
        rb = sync.step(actions)
        for x, y in zip(ra[:4], rb[:4], strict=True):
            np.testing.assert_array_equal(x, y)
        dones += ra[2].sum()
    assert dones > 20


def test_seed_list_and_reset_without_seed():
    vec = GreedyMouseVectorEnv(num_envs=3)
    a, _ = vec.reset(seed=[10, 11, 12])
    b, _ = vec.reset(seed=10)
    np.testing.assert_array_equal(a, b)
    single = gym.make("GreedyMouse-v0")
    single.reset(seed=11)
    _, info = vec.reset()
    _, sinfo = single.reset()
    assert tuple(info["mouse"][1]) == sinfo["mouse"]
    with pytest.raises(ValueError, match="got 2 seeds for 3 worlds"):
        vec.reset(seed=[1, 2])
    with pytest.raises(TypeError, match="seed must be None, an int or a list"):
        vec.reset(seed="abc")


def trajectory(seed: int, num: int = 8, steps: int = 200) -> list:
    vec = GreedyMouseVectorEnv(num_envs=num, cat_speed=0.7)
    obs, _ = vec.reset(seed=seed)
    rng = np.random.default_rng(99)
    out = [obs.copy()]
    for _ in range(steps):
        obs, rew, _, _, info = vec.step(rng.integers(0, 8, size=num))
        out.extend([obs.copy(), rew.copy(), info["cat"].copy()])
    return out


def test_same_seed_same_trajectory_different_seed_different():
    a, b, c = trajectory(1), trajectory(1), trajectory(2)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c, strict=True))
    assert not np.array_equal(a[0], c[0])


def test_worlds_differ_from_each_other():
    vec = GreedyMouseVectorEnv(num_envs=64)
    _, info = vec.reset(seed=0)
    assert len({tuple(p) for p in info["mouse"]}) > 20


def test_truncation_and_next_step_autoreset():
    vec = GreedyMouseVectorEnv(num_envs=3, max_episode_steps=5)
    vec.reset(seed=0)
    zeros = np.zeros(3, dtype=np.int64)
    for t in range(1, 6):
        obs, rew, term, trunc, info = vec.step(zeros)
        assert trunc.all() == (t == 5) and not term.any()
    final_steps = info["episode_step"].copy()
    assert (final_steps == 5).all()
    obs, rew, term, trunc, info = vec.step(zeros)  # the reset step
    assert (rew == 0).all() and not term.any() and not trunc.any()
    assert (info["episode_step"] == 0).all() and (info["total_eaten"] == 0).all()
    _, _, _, _, info = vec.step(zeros)
    assert (info["episode_step"] == 1).all()


@pytest.mark.parametrize(
    ("actions", "exc", "match"),
    [
        (np.array([0, 8, 1]), ValueError, r"out of range: \[8\]; allowed: 0 … 7"),
        (np.array([0, -1, 1]), ValueError, r"out of range: \[-1\]"),
        (np.array([0.5, 1.0, 2.0]), TypeError, "must be integers"),
        (np.array([0, 1]), ValueError, r"shape \(3,\)"),
        (3, ValueError, r"shape \(3,\)"),
    ],
)
def test_bad_actions(actions, exc, match):
    vec = GreedyMouseVectorEnv(num_envs=3)
    vec.reset(seed=0)
    with pytest.raises(exc, match=match):
        vec.step(actions)


def test_bad_construction():
    with pytest.raises(RuntimeError, match="reset"):
        GreedyMouseVectorEnv(num_envs=2).step(np.zeros(2, dtype=np.int64))
    with pytest.raises(ValueError, match="num_envs must be an int >= 1, got 0"):
        GreedyMouseVectorEnv(num_envs=0)
    with pytest.raises(TypeError, match=r"'lookdistance' \(did you mean 'lookdist'\?\)"):
        gym.make_vec("GreedyMouse-v0", num_envs=2, lookdistance=2)
    with pytest.raises(ValueError, match="max_episode_steps must be None or an int >= 1"):
        GreedyMouseVectorEnv(num_envs=2, max_episode_steps=0)
    with pytest.raises(ValueError, match="cat_speed must be a probability"):
        GreedyMouseVectorEnv(num_envs=2, cat_speed=2)


def test_render_modes():
    vec = GreedyMouseVectorEnv(num_envs=2, render_mode="ansi")
    vec.reset(seed=0)
    frames = vec.render()
    assert len(frames) == 2
    assert all("".join(f.splitlines()[:11]).count("m") == 1 for f in frames)
    vec = GreedyMouseVectorEnv(num_envs=2, render_mode="rgb_array")
    vec.reset(seed=0)
    frames = vec.render()
    assert len(frames) == 2 and frames[0].dtype == np.uint8 and frames[0].ndim == 3
