"""Evaluation metrics, the eval.json contract, baselines and the normalized score."""

from __future__ import annotations

import numpy as np
import pytest

from smpc_gym.agents.baselines import BaselineConfig, HeuristicAgent, RandomAgent
from smpc_gym.training.evaluate import (
    COMMON_KEYS,
    GREEDY_MOUSE_KEYS,
    PLAYER_KEYS,
    SUPPLY_CHAIN_KEYS,
    eval_seeds,
    evaluate,
    evaluate_greedy_mouse,
    normalized_score,
    reference_returns,
)

GM = {"max_episode_steps": 200}


def _agent(cls, env: str, env_kwargs: dict, seed: int = 0):
    kwargs = cls.env_kwargs_for(env, env_kwargs)
    return cls(BaselineConfig(env=env), kwargs, seed), kwargs


def test_eval_seeds_are_fixed() -> None:
    assert eval_seeds(3) == [10000, 10001, 10002]
    with pytest.raises(ValueError, match="episodes must be >= 1"):
        eval_seeds(0)


def test_greedy_mouse_metrics_are_consistent_with_the_rewards() -> None:
    agent, kwargs = _agent(RandomAgent, "greedy_mouse", GM)
    r = evaluate(agent, "greedy_mouse", kwargs, episodes=4)
    assert set(COMMON_KEYS) | set(GREEDY_MOUSE_KEYS) <= set(r)
    steps = r["mean_episode_steps"] * r["episodes"]
    assert steps == 800
    cheese = r["cheese_per_1000_steps"] * steps / 1000
    deaths = r["deaths_per_1000_steps"] * steps / 1000
    assert deaths > 0  # a random mouse gets eaten
    # default rewards: return = 50 * cheese - 100 * deaths - steps
    assert sum(r["returns"]) == pytest.approx(50 * cheese - 100 * deaths - steps)
    # a life ends at each death and at each episode end not already ended by a death
    assert steps / (deaths + r["episodes"]) <= r["mean_survival_steps"]
    assert r["mean_survival_steps"] <= steps / max(deaths, 1)
    assert r["mean_return"] == pytest.approx(np.mean(r["returns"]))
    assert r["std_return"] == pytest.approx(np.std(r["returns"]))
    assert r["exploration"] == 0.0 and r["seeds"] == eval_seeds(4)


def test_survival_in_the_episodic_variant_is_the_episode_length() -> None:
    kwargs = {**GM, "respawn": False, "step_reward": 0.0}
    r = evaluate_greedy_mouse(lambda obs: 0, kwargs, [0, 1, 2, 3])
    # without respawn every episode is exactly one life
    assert r["mean_survival_steps"] == pytest.approx(r["mean_episode_steps"])
    assert r["deaths_per_1000_steps"] > 0  # a mouse that only goes north gets caught


def test_same_seeds_same_result_and_seeds_matter() -> None:
    def stay_north(obs):
        return 0

    a = evaluate_greedy_mouse(stay_north, GM, [1, 2, 3])
    b = evaluate_greedy_mouse(stay_north, GM, [1, 2, 3])
    c = evaluate_greedy_mouse(stay_north, GM, [4, 5, 6])
    assert a == b
    assert a["returns"] != c["returns"]


def test_exploration_is_recorded_and_used() -> None:
    def stay_north(obs):
        return 0

    greedy = evaluate_greedy_mouse(stay_north, GM, [7, 8])
    explore = evaluate_greedy_mouse(stay_north, GM, [7, 8], epsilon=1.0)
    assert greedy["returns"] != explore["returns"]
    agent, kwargs = _agent(HeuristicAgent, "greedy_mouse", GM)
    assert evaluate(agent, "greedy_mouse", kwargs, episodes=1, epsilon=0.05)["exploration"] == 0.05
    with pytest.raises(ValueError, match="epsilon"):
        evaluate(agent, "greedy_mouse", kwargs, episodes=1, epsilon=2.0)


def test_heuristic_mouse_clearly_beats_random() -> None:
    seeds = eval_seeds(10)
    h, hk = _agent(HeuristicAgent, "greedy_mouse", GM)
    r, rk = _agent(RandomAgent, "greedy_mouse", GM)
    rh = evaluate(h, "greedy_mouse", hk, seeds=seeds)
    rr = evaluate(r, "greedy_mouse", rk, seeds=seeds)
    # non-overlapping 95% intervals, and far fewer deaths
    assert rh["mean_return"] - rh["ci95_return"] > rr["mean_return"] + rr["ci95_return"]
    assert rh["deaths_per_1000_steps"] < 0.2 * rr["deaths_per_1000_steps"]
    assert rh["cheese_per_1000_steps"] > rr["cheese_per_1000_steps"]


def test_heuristic_needs_the_global_observation() -> None:
    with pytest.raises(ValueError, match="obs_mode"):
        HeuristicAgent(BaselineConfig(env="greedy_mouse"), {"obs_mode": "local"}, 0)


def test_supply_chain_metrics() -> None:
    agent, kwargs = _agent(HeuristicAgent, "supply_chain", {})
    r = evaluate(agent, "supply_chain", kwargs, episodes=20)
    assert set(COMMON_KEYS) | set(SUPPLY_CHAIN_KEYS) <= set(r)
    players = r["players"]
    assert sorted(players) == ["player_0", "player_1"]
    steps = r["mean_episode_steps"]
    assert steps == 40
    for values in players.values():
        assert set(values) == set(PLAYER_KEYS)
        # NCR = cumulative reward - waste cost (per episode, averaged)
        assert values["ncr"] == pytest.approx(values["reward"] * steps - values["wastage_cost"])
    # The myopic benchmark's hand-worked expectation (spec): ~47.5 and ~25 per step.
    assert players["player_0"]["reward"] == pytest.approx(47.5, abs=1.5)
    assert players["player_1"]["reward"] == pytest.approx(25.0, abs=3.0)
    total = (players["player_0"]["reward"] + players["player_1"]["reward"]) * steps
    assert r["total_reward"] == pytest.approx(total) == pytest.approx(r["mean_return"])
    assert r["total_ncr"] == pytest.approx(players["player_0"]["ncr"] + players["player_1"]["ncr"])


def test_random_supply_chain_actions_are_in_bounds() -> None:
    from smpc_gym import supply_chain_v0

    agent, _ = _agent(RandomAgent, "supply_chain", {"p_max": [4.0, 6.0], "q_max": 3.0})
    env = supply_chain_v0.parallel_env(p_max=(4.0, 6.0), q_max=3.0)
    obs, _ = env.reset(seed=0)
    for _ in range(20):
        actions = agent.act(obs)
        for p, a in actions.items():
            assert env.action_space(p).contains(a)
        obs, *_ = env.step(actions)


def test_normalized_score() -> None:
    assert normalized_score(-50.0, -100.0, 0.0) == 0.5
    assert normalized_score(-100.0, -100.0, 0.0) == 0.0
    assert normalized_score(10.0, -100.0, 0.0) == pytest.approx(1.1)
    with pytest.raises(ValueError, match="undefined"):
        normalized_score(1.0, 2.0, 2.0)
    ref = reference_returns("supply_chain", {}, eval_seeds(3))
    assert ref["heuristic"] > ref["random"]


def test_replay_cuts_episodes_of_both_envs(monkeypatch) -> None:
    from smpc_gym.agents.baselines import RandomAgent
    from smpc_gym.training import evaluate as ev

    seen = []
    monkeypatch.setattr(
        ev, "evaluate", lambda algo, env, kw, **k: seen.append((env, dict(kw), k)) or {}
    )
    mouse = RandomAgent(RandomAgent.Config(env="greedy_mouse"), {}, 0)
    ev.replay(mouse, "greedy_mouse", {"max_episode_steps": 500}, episodes=2, max_steps=40)
    chain = RandomAgent(RandomAgent.Config(env="supply_chain"), {}, 0)
    ev.replay(chain, "supply_chain", {}, episodes=1, max_steps=7, epsilon=0.5)
    ev.replay(chain, "supply_chain", {"max_cycles": 5}, episodes=1, max_steps=7)
    assert [(e, kw) for e, kw, _ in seen] == [
        ("greedy_mouse", {"max_episode_steps": 40}),
        ("supply_chain", {"max_cycles": 7}),
        ("supply_chain", {"max_cycles": 5}),  # never longer than the run's own episodes
    ]
    assert all(k["render_mode"] == "human" for _, _, k in seen)
    assert seen[1][2]["epsilon"] == 0.5 and seen[0][2]["episodes"] == 2
