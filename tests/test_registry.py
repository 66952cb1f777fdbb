"""The env registry states each env's facts once, and they agree with the envs."""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import pettingzoo
import pytest

from smpc_gym.envs.greedy_mouse.core import CONFIG_FIELDS
from smpc_gym.envs.registry import ENV_NAMES, env_specs, get_env_spec
from smpc_gym.envs.supply_chain.game import PLAYER_NAMES, SupplyChainConfig


def test_names_and_unknown_env() -> None:
    assert ENV_NAMES == ("greedy_mouse", "supply_chain")
    assert [s.name for s in env_specs()] == list(ENV_NAMES)
    with pytest.raises(ValueError, match=r"unknown env 'nope'.*greedy_mouse, supply_chain"):
        get_env_spec("nope")


def test_registered_ids_are_the_specs() -> None:
    gm = get_env_spec("greedy_mouse")
    assert gym.spec(gm.gym_id).max_episode_steps == gm.default_length
    assert gym.spec(gm.gym_id).vector_entry_point == gm.vector_entry_point
    for spec in env_specs():
        assert spec.pettingzoo_id in pettingzoo.parallel_registry
        assert spec.pettingzoo_id in pettingzoo.aec_registry


def test_ids_of_a_spec_without_an_entry_module() -> None:
    # entry_module is optional in the spec; ids lists the other names without it
    sc = get_env_spec("supply_chain")
    assert "supply_chain_v0" in sc.ids
    bare = dataclasses.replace(sc, entry_module=None, pettingzoo_id=None)
    assert bare.ids == ()


def test_supply_chain_facts_match_the_game() -> None:
    sc = get_env_spec("supply_chain")
    env = sc.make()
    assert tuple(env.possible_agents) == sc.players == PLAYER_NAMES
    assert sc.default_length == SupplyChainConfig().max_cycles == env.max_cycles
    assert set(sc.kwarg_types()) == set(SupplyChainConfig.field_names())
    assert sc.episode_length({"max_cycles": 7}) == 7
    with pytest.raises(ValueError, match="no vector env"):
        sc.make_vec(2)


def test_greedy_mouse_kwargs_are_what_the_envs_accept() -> None:
    gm = get_env_spec("greedy_mouse")
    types = gm.kwarg_types()
    assert set(types) == {"map", "max_episode_steps", *CONFIG_FIELDS}
    assert gm.players == ()
    kwargs = {"directions": 4, "obs_mode": "features", "max_episode_steps": 12}
    env = gm.make(**kwargs)
    assert env.action_space.n == 4 and gm.episode_length(kwargs) == 12
    obs, _ = env.reset(seed=0)
    steps = 0
    done = False
    while not done:
        obs, _, term, trunc, _ = env.step(0)
        steps, done = steps + 1, term or trunc
    assert steps <= 12
    vec = gm.make_vec(3, **kwargs)
    assert vec.num_envs == 3 and vec.single_action_space == env.action_space
    with pytest.raises(TypeError, match="did you mean 'directions'"):
        gm.make(direction=4)
    with pytest.raises(TypeError, match="GreedyMouseVectorEnv.*did you mean 'directions'"):
        gm.make_vec(2, direction=4)


@pytest.mark.parametrize("name", ENV_NAMES)
def test_evaluation_and_baselines_come_from_the_spec(name: str) -> None:
    spec = get_env_spec(name)
    kwargs = spec.with_episode_length({}, 20)
    for kind in ("random", "heuristic"):
        env_kwargs = {**kwargs, **spec.policy_env_kwargs(kind)}
        policy = spec.baseline_policy(kind, env_kwargs, np.random.default_rng(0), 1.5)
        body = spec.evaluate(policy, env_kwargs, [1, 2])
        assert set(spec.eval_keys) <= set(body)
        assert body["mean_episode_steps"] == 20 and len(body["returns"]) == 2
    rows = [r for _, _, r in spec.run_policy(policy, env_kwargs, 0, 0, 45, 20) if r]
    assert len(rows) == 3  # at 20, 40 and the last step 45
    with pytest.raises(ValueError, match="unknown baseline policy 'smart'"):
        spec.baseline_policy("smart", kwargs, np.random.default_rng(0))
