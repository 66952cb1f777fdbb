"""SupplyChain PettingZoo env: PettingZoo's own checkers, the myopic benchmark, privacy
hygiene, seeding, bad input, info contents, rendering, presets and registration."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pettingzoo
import pytest
import yaml
from pettingzoo.test import api_test, parallel_api_test, parallel_seed_test, render_test

import smpc_gym
from smpc_gym import supply_chain_v0
from smpc_gym.envs.supply_chain.game import SupplyChainConfig, SupplyChainGame
from smpc_gym.envs.supply_chain.policies import (
    MyopicPolicy,
    UniformRandomPolicy,
    evaluate_batched,
    myopic_action,
)

PRESETS = Path(__file__).resolve().parents[1] / "envs" / "supply_chain.yaml"
AGENTS = ("player_0", "player_1")


# ---------------------------------------------------------------- PettingZoo checkers
@pytest.mark.parametrize("params", [{}, {"perishable": True}])
def test_parallel_api(params):
    parallel_api_test(supply_chain_v0.parallel_env(**params), num_cycles=200)


def test_aec_api():
    api_test(supply_chain_v0.env(), num_cycles=200)


def test_parallel_seed():
    parallel_seed_test(supply_chain_v0.parallel_env, num_cycles=100)


def test_render_modes():
    render_test(supply_chain_v0.env)


def test_registered_with_pettingzoo():
    par = pettingzoo.make("parallel", "smpc/SupplyChain-v0", max_cycles=3)
    assert par.possible_agents == list(AGENTS)
    par.reset(seed=0)
    steps = 0
    while par.agents:
        par.step({a: myopic_action(a) for a in par.agents})
        steps += 1
    assert steps == 3
    aec = pettingzoo.make("aec", "smpc/SupplyChain-v0")
    assert isinstance(aec, pettingzoo.AECEnv)
    assert smpc_gym.supply_chain_v0 is supply_chain_v0


def test_spaces():
    env = supply_chain_v0.parallel_env(p_max=(7.0, 9.0), q_max=12.0)
    for i, a in enumerate(AGENTS):
        obs_space = env.observation_space(a)
        assert obs_space is env.observation_space(a)
        assert obs_space.shape == (5,) and obs_space.dtype == np.float32
        assert (obs_space.low == 0).all() and (obs_space.high == 1).all()
        act = env.action_space(a)
        np.testing.assert_array_equal(act.low, [0, 0])
        np.testing.assert_array_equal(act.high, [(7.0, 9.0)[i], 12.0])
        assert act.dtype == np.float32


# ---------------------------------------------------------------- myopic benchmark
def test_myopic_benchmark_rewards_about_47_5_and_25():
    """Derivation: ``smpc_gym.envs.supply_chain.policies`` docstring.

    Idealized 47.5 / 25. Realized per-step means over 40-step episodes:
    r_0 = 47.5 - 10 * E[5 - min(5, U(0, 10))] / 40 = 47.1875 exactly (and per episode
    sum r_0 = 1900 - 10 * (5 - min(5, stock_0))); r_1 ~ 25 + 0.3125 - 15 * E[U] / 40 with
    E[U] (total unmet demand, a reflected zero-drift walk) estimated 5.9 and allowed
    5..7, i.e. r_1 in [22.69, 23.44]. Tolerance: that band plus 4 standard errors of the
    sample mean (per-episode sd ~1.8 for r_1 -> 4 SE ~ 0.11 at N = 4000).
    """
    n = 4000
    cfg = SupplyChainConfig()
    game = SupplyChainGame(cfg, batch_size=n)
    rng = np.random.default_rng(2024)
    game.reset(rng)
    stock_0 = game.stock[:, 0].copy()
    obs = game.observations()
    policies = [MyopicPolicy(a) for a in AGENTS]
    total = np.zeros((n, 2))
    for _ in range(cfg.max_cycles):
        actions = np.stack([policies[i](obs[:, i]) for i in range(2)], axis=1)
        total += game.step(actions, rng).reward
        obs = game.observations()
    # player 0: exact per episode (step 1 ships min(5, stock_0), then 5 every step)
    np.testing.assert_allclose(total[:, 0], 1900.0 - 10.0 * (5.0 - np.minimum(5.0, stock_0)))
    per_step = total / cfg.max_cycles
    mean = per_step.mean(axis=0)
    se = per_step.std(axis=0, ddof=1) / np.sqrt(n)
    assert abs(mean[0] - 47.1875) <= 4 * se[0]
    assert 25 + 0.3125 - 15 * 7 / 40 - 4 * se[1] <= mean[1] <= 25 + 0.3125 - 15 * 5 / 40 + 4 * se[1]
    # "about 47.5 and 25": within the derived biases (0.31 and 2.3) plus 4 SE
    assert abs(mean[0] - 47.5) <= 0.3125 + 4 * se[0]
    assert abs(mean[1] - 25.0) <= 15 * 7 / 40 - 0.3125 + 4 * se[1]


def test_myopic_benchmark_through_the_env():
    """Same check through the PettingZoo env (fewer episodes: 4 SE ~ 0.5 at N = 200)."""
    env = supply_chain_v0.parallel_env()
    policies = {a: MyopicPolicy(a) for a in AGENTS}
    means = []
    for seed in range(200):
        obs, _ = env.reset(seed=seed)
        stock_0 = env.game.stock[0]
        total = np.zeros(2)
        while env.agents:
            obs, rew, _, _, infos = env.step({a: policies[a](obs[a]) for a in env.agents})
            total += [rew["player_0"], rew["player_1"]]
        assert total[0] == pytest.approx(1900.0 - 10.0 * (5.0 - min(5.0, stock_0)))
        means.append(total / 40)
    means = np.array(means)
    se = means.std(axis=0, ddof=1) / np.sqrt(len(means))
    assert abs(means[:, 0].mean() - 47.1875) <= 4 * se[0]
    assert 22.6875 - 4 * se[1] <= means[:, 1].mean() <= 23.4375 + 4 * se[1]


def test_evaluate_batched_myopic_and_random_baselines():
    myopic = evaluate_batched([MyopicPolicy(0), MyopicPolicy(1)], episodes=2000, seed=1)
    assert abs(myopic["reward_per_step_0"] - 47.1875) <= 4 * myopic["reward_per_step_se_0"]
    se1 = myopic["reward_per_step_se_1"]
    assert 22.6875 - 4 * se1 <= myopic["reward_per_step_1"] <= 23.4375 + 4 * se1
    # player 0's NCR: 40 * 47.1875 minus its waste cost (leftover max(5, stock_0), E = 6.25)
    assert myopic["ncr_0"] == pytest.approx(1887.5 - 0.5 * 6.25, abs=1.0)
    rand = evaluate_batched(
        [UniformRandomPolicy(i, np.random.default_rng(i)) for i in range(2)], episodes=2000
    )
    # the myopic prices are near the joint optimum; random play wastes far more
    for i in range(2):
        assert myopic[f"ncr_{i}"] > rand[f"ncr_{i}"] + 100
        assert myopic[f"waste_{i}"] < rand[f"waste_{i}"]


def test_uniform_random_policy_is_seeded_and_in_bounds():
    cfg = SupplyChainConfig(p_max=(4.0, 6.0), q_max=3.0)
    a = UniformRandomPolicy("player_1", np.random.default_rng(3), cfg)
    b = UniformRandomPolicy("player_1", np.random.default_rng(3), cfg)
    obs = np.zeros((500, 5), np.float32)
    acts = a(obs)
    np.testing.assert_array_equal(acts, b(obs))
    assert acts.shape == (500, 2) and acts.dtype == np.float32
    assert acts.min() >= 0 and acts[:, 0].max() <= 6.0 and acts[:, 1].max() <= 3.0
    assert acts[:, 0].max() > 5.0  # uses the whole range
    assert a(np.zeros(5)).shape == (2,)
    with pytest.raises(ValueError, match="player_7"):
        UniformRandomPolicy("player_7", np.random.default_rng(0))


# ---------------------------------------------------------------- privacy hygiene
def _fixed_actions(n: int, seed: int) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [
        {
            "player_0": np.array([rng.uniform(0, 10), rng.uniform(2, 6)], np.float32),
            "player_1": np.array([rng.uniform(0, 18), rng.uniform(0, 3)], np.float32),
        }
        for _ in range(n)
    ]


def _streams(env, initial_stock, actions, seed=0):
    obs, _ = env.reset(seed=seed, options={"initial_stock": initial_stock})
    out = {a: {"obs": [obs[a]], "rew": [], "info": []} for a in AGENTS}
    for act in actions:
        obs, rew, _, _, infos = env.step(act)
        for a in AGENTS:
            out[a]["obs"].append(obs[a])
            out[a]["rew"].append(rew[a])
            out[a]["info"].append(infos[a])
    return out


def _same(s1, s2) -> bool:
    return (
        all(np.array_equal(x, y) for x, y in zip(s1["obs"], s2["obs"], strict=True))
        and s1["rew"] == s2["rew"]
        and s1["info"] == s2["info"]
    )


def test_player_0_stream_ignores_player_1_private_data():
    actions = _fixed_actions(40, seed=1)
    base = _streams(supply_chain_v0.parallel_env(), (8.0, 2.0), actions)
    # player 1's private data: its stock, its consumers' demand (level and noise)
    other = _streams(
        supply_chain_v0.parallel_env(demand_intercept=25.0, demand_noise=3.0),
        (8.0, 9.0),
        actions,
        seed=123,
    )
    assert _same(base["player_0"], other["player_0"])
    assert not _same(base["player_1"], other["player_1"])  # the change was visible to p1


def test_player_1_stream_ignores_player_0_private_data():
    # Player 0's stock stays above player 1's orders (<= 3) in both runs, so the goods
    # player 1 receives are the same; raw cost and stock level are player 0's secrets.
    actions = _fixed_actions(40, seed=2)
    base = _streams(supply_chain_v0.parallel_env(), (6.0, 4.0), actions)
    other = _streams(supply_chain_v0.parallel_env(raw_cost=2.0), (15.0, 4.0), actions)
    assert _same(base["player_1"], other["player_1"])
    assert not _same(base["player_0"], other["player_0"])


def test_state_is_the_joint_view_and_observations_are_per_player():
    env = supply_chain_v0.parallel_env()
    obs, _ = env.reset(seed=3)
    pol = {a: UniformRandomPolicy(a, np.random.default_rng(i)) for i, a in enumerate(AGENTS)}
    while True:
        assert set(obs) == set(AGENTS)
        for a in AGENTS:
            assert obs[a].shape == (5,)
            assert env.observation_space(a).contains(obs[a])
        state = env.state()
        assert env.state_space.contains(state)
        np.testing.assert_array_equal(state, np.concatenate([obs["player_0"], obs["player_1"]]))
        if not env.agents:
            break
        obs, *_ = env.step({a: pol[a](obs[a]) for a in env.agents})


# ---------------------------------------------------------------- seeding
def _trajectory(seed: int):
    env = supply_chain_v0.parallel_env()
    obs, _ = env.reset(seed=seed)
    pol = {a: UniformRandomPolicy(a, np.random.default_rng(7 + i)) for i, a in enumerate(AGENTS)}
    traj = [np.concatenate([obs[a] for a in AGENTS])]
    while env.agents:
        obs, rew, _, _, _ = env.step({a: pol[a](obs[a]) for a in env.agents})
        traj.append(np.concatenate([obs[a] for a in AGENTS] + [[rew[a] for a in AGENTS]]))
    return traj


def test_same_seed_same_trajectory_different_seed_different():
    a, b, c = _trajectory(11), _trajectory(11), _trajectory(12)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[0], c[0])  # different initial stocks
    assert any(not np.array_equal(x, y) for x, y in zip(a[1:], c[1:], strict=True))


def test_reset_without_seed_continues_the_stream():
    env = supply_chain_v0.parallel_env()
    first, _ = env.reset(seed=5)
    second, _ = env.reset()
    assert not np.array_equal(first["player_0"], second["player_0"])


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("agent", AGENTS)
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_action_raises_naming_player(agent, bad):
    env = supply_chain_v0.parallel_env()
    env.reset(seed=0)
    actions = {a: myopic_action(a) for a in AGENTS}
    actions[agent] = np.array([bad, 5.0], np.float32)
    with pytest.raises(ValueError, match=f"{agent} action .* NaN or inf"):
        env.step(actions)


def test_non_finite_action_raises_in_aec():
    env = supply_chain_v0.env()
    env.reset(seed=0)
    env.step(myopic_action("player_0"))
    with pytest.raises(ValueError, match="player_1"):
        env.step(np.array([15.0, np.nan], np.float32))


def test_wrong_shape_dtype_and_agents():
    env = supply_chain_v0.parallel_env()
    env.reset(seed=0)
    ok = myopic_action("player_0")
    with pytest.raises(ValueError, match=r"player_1 action must have shape \(2,\).*\(3,\)"):
        env.step({"player_0": ok, "player_1": np.zeros(3, np.float32)})
    with pytest.raises(TypeError, match="player_1 action must be real numbers"):
        env.step({"player_0": ok, "player_1": np.array(["15", "5"])})
    with pytest.raises(ValueError, match=r"missing \['player_1'\]"):
        env.step({"player_0": ok})
    with pytest.raises(ValueError, match=r"unknown \['player_9'\]"):
        env.step({"player_0": ok, "player_1": ok, "player_9": ok})


def test_out_of_range_actions_clipped_and_counted_in_info():
    env = supply_chain_v0.parallel_env()
    env.reset(seed=0)
    _, _, _, _, infos = env.step(
        {"player_0": np.array([-3.0, 50.0], np.float32), "player_1": np.array([15.0, 5.0])}
    )
    assert infos["player_0"]["clipped"] == 2 and infos["player_1"]["clipped"] == 0
    assert infos["player_0"]["cost"] == pytest.approx(0.5 * 20.0)  # q_0 clipped to q_max
    _, _, _, _, infos = env.step(
        {"player_0": np.array([99.0, 5.0]), "player_1": np.array([15.0, 5.0])}
    )
    assert infos["player_0"]["clipped"] == 1
    assert infos["player_0"]["clipped_total"] == 3
    assert env.game.last_price[0] == 10.0  # clipped to p_max[0]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"q_max": -1}, "q_max"),
        ({"max_cycles": 0}, "max_cycles"),
        ({"p_max": (10.0, 18.0, 3.0)}, "p_max"),
        ({"demand_noise": -1.0}, "demand_noise"),
        ({"storage_cap": -5.0}, "storage_cap"),
    ],
)
def test_invalid_parameters_name_the_field(params, field):
    with pytest.raises(ValueError, match=field):
        supply_chain_v0.parallel_env(**params)


def test_unknown_parameter_and_render_mode():
    with pytest.raises(ValueError, match=r"unknown SupplyChain parameter\(s\) \['qmax'\]"):
        supply_chain_v0.parallel_env(qmax=3)
    with pytest.raises(ValueError, match="render_mode='rgb'"):
        supply_chain_v0.parallel_env(render_mode="rgb")


def test_step_after_episode_end_raises():
    env = supply_chain_v0.parallel_env(max_cycles=1)
    env.reset(seed=0)
    env.step({a: myopic_action(a) for a in AGENTS})
    assert env.agents == []
    with pytest.raises(RuntimeError, match="reset"):
        env.step({a: myopic_action(a) for a in AGENTS})


# ---------------------------------------------------------------- info and episode end
def test_info_hand_worked_step_and_ncr_at_end():
    # noise 0, stock (5, 0), max_cycles 2 (same numbers as the game-level test).
    env = supply_chain_v0.parallel_env(demand_noise=0.0, max_cycles=2)
    env.reset(seed=0, options={"initial_stock": (5.0, 0.0)})
    _, rew, _, trunc, infos = env.step(
        {"player_0": np.array([10.0, 4.0]), "player_1": np.array([15.0, 5.0])}
    )
    assert rew == {"player_0": 48.0, "player_1": -50.0}
    assert trunc == {"player_0": False, "player_1": False}
    i0, i1 = infos["player_0"], infos["player_1"]
    assert (i0["revenue"], i0["cost"], i0["units_sold"], i0["units_received"]) == (
        50.0,
        2.0,
        5.0,
        4.0,
    )
    assert (i1["revenue"], i1["cost"], i1["units_sold"], i1["units_received"]) == (
        0.0,
        50.0,
        0.0,
        5.0,
    )
    assert i1["unmet_demand"] == 5.0 and i0["unmet_demand"] == 0.0
    assert "ncr" not in i0 and "ncr" not in i1
    _, rew, _, trunc, infos = env.step(
        {"player_0": np.array([8.0, 3.0]), "player_1": np.array([15.0, 2.0])}
    )
    assert trunc == {"player_0": True, "player_1": True} and env.agents == []
    assert rew == {"player_0": 14.5, "player_1": 59.0}
    assert infos["player_0"]["leftover"] == 5.0 and infos["player_1"]["leftover"] == 2.0
    assert infos["player_0"]["waste_cost"] == 2.5 and infos["player_1"]["waste_cost"] == 16.0
    assert infos["player_0"]["ncr"] == pytest.approx(48.0 + 14.5 - 2.5)
    assert infos["player_1"]["ncr"] == pytest.approx(-50.0 + 59.0 - 16.0)


def test_ncr_is_sum_of_rewards_minus_waste_costs_random_play():
    env = supply_chain_v0.parallel_env(storage_cap=8.0, initial_stock=(0.0, 8.0))
    obs, _ = env.reset(seed=9)
    pol = {a: UniformRandomPolicy(a, np.random.default_rng(i)) for i, a in enumerate(AGENTS)}
    sums = {a: [0.0, 0.0, 0.0] for a in AGENTS}  # reward, waste cost, waste units
    while env.agents:
        obs, rew, _, _, infos = env.step({a: pol[a](obs[a]) for a in env.agents})
        for a in AGENTS:
            sums[a][0] += rew[a]
            sums[a][1] += infos[a]["waste_cost"]
            sums[a][2] += infos[a]["units_wasted"]
    for a in AGENTS:
        assert sums[a][2] > 0  # the small cap makes waste happen
        assert infos[a]["cum_waste"] == pytest.approx(sums[a][2])
        assert infos[a]["ncr"] == pytest.approx(sums[a][0] - sums[a][1])
    assert env.game.stock == [0.0, 0.0]  # leftovers were discarded


def test_max_cycles_attribute_sets_episode_length():
    env = supply_chain_v0.parallel_env()
    env.max_cycles = 3
    env.reset(seed=0)
    n = 0
    while env.agents:
        env.step({a: myopic_action(a) for a in env.agents})
        n += 1
    assert n == 3
    with pytest.raises(ValueError, match="max_cycles"):
        env.max_cycles = 0


# ---------------------------------------------------------------- rendering
def test_ansi_table_shows_the_step():
    env = supply_chain_v0.parallel_env(render_mode="ansi", demand_noise=0.0)
    env.reset(seed=0, options={"initial_stock": (8.0, 9.0)})
    assert "t=0/40" in env.render()
    env.step({"player_0": np.array([7.0, 6.0]), "player_1": np.array([14.0, 5.0])})
    text = env.render()
    lines = text.splitlines()
    assert lines[0].startswith("t=1/40  demand=6.00")
    assert lines[1].split()[:4] == ["player", "price", "qty", "stock"]
    assert lines[2].split()[:8] == ["p0", "7.00", "6.00", "9.00", "5.00", "35.00", "3.00", "32.00"]
    assert lines[3].split()[:8] == [
        "p1",
        "14.00",
        "5.00",
        "8.00",
        "6.00",
        "84.00",
        "35.00",
        "49.00",
    ]


def test_rgb_array_frame_changes_with_the_game():
    env = supply_chain_v0.parallel_env(render_mode="rgb_array")
    env.reset(seed=0)
    f0 = env.render()
    assert f0.dtype == np.uint8 and f0.ndim == 3 and f0.shape[2] == 3
    env.step({a: myopic_action(a) for a in AGENTS})
    f1 = env.render()
    assert f1.shape == f0.shape and not np.array_equal(f0, f1)
    env.close()


# ---------------------------------------------------------------- presets
def test_presets_file_builds_valid_envs():
    presets = yaml.safe_load(PRESETS.read_text())
    assert set(presets) >= {"default", "perishable"}
    assert SupplyChainConfig.from_mapping(presets["default"]) == SupplyChainConfig()
    assert SupplyChainConfig.from_mapping(presets["perishable"]) == SupplyChainConfig(
        perishable=True
    )
    for params in presets.values():
        env = supply_chain_v0.parallel_env(**params)
        env.reset(seed=0)
        env.step({a: myopic_action(a) for a in AGENTS})


def test_pygame_not_imported_without_pixel_rendering():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from smpc_gym import supply_chain_v0\n"
        "e = supply_chain_v0.parallel_env(render_mode='ansi')\n"
        "e.reset(seed=0)\n"
        "e.step({a: e.action_space(a).sample() for a in e.agents})\n"
        "e.render()\n"
        "print('pygame' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_config_object_and_reset_option_validation():
    cfg = SupplyChainConfig(q_max=7.0)
    env = supply_chain_v0.parallel_env(config=cfg)
    assert env.config is cfg and env.action_space("player_1").high[1] == 7.0
    with pytest.raises(ValueError, match="either config= or parameters"):
        supply_chain_v0.parallel_env(config=cfg, q_max=3.0)
    with pytest.raises(ValueError, match="initial_stock"):
        env.reset(seed=0, options={"initial_stock": (5.0, 25.0)})  # above storage_cap 20
    obs, _ = env.reset(seed=0, options={"initial_stock": (5.0, 10.0)})
    assert obs["player_0"][0] == pytest.approx(5 / 20) and obs["player_1"][0] == 0.5


def test_bad_config_and_reset_options_are_named():
    with pytest.raises(TypeError, match=r"config must be a SupplyChainConfig or None, got str "):
        supply_chain_v0.parallel_env(config="default")
    env = supply_chain_v0.parallel_env()
    with pytest.raises(TypeError, match=r"options must be a dict or None, got str 'junk'"):
        env.reset(seed=0, options="junk")
    with pytest.raises(ValueError, match=r"'initial_stok' \(did you mean 'initial_stock'\?\)"):
        env.reset(seed=0, options={"initial_stok": (5.0, 5.0)})
    # PettingZoo's API tests probe the signature with options={"options": 1}: accepted.
    env.reset(seed=0, options={"options": 1})
