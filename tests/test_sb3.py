"""The Stable-Baselines3 yardsticks: SB3's own ``model.zip`` beside ``model.pt`` (opened
by ``PPO.load`` / ``DQN.load`` and reproducing the run's evaluation), the reward scale,
and (slow) the presets reaching a normalized score of 0.9 at their preset lengths."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from smpc_gym.training.cli import main
from smpc_gym.training.config import build_algorithm, resolve

torch.set_num_threads(1)

TINY = {
    "sb3_ppo": ["n_envs=2", "n_steps=64", "batch_size=64", "n_epochs=1", "net_arch=[16]"],
    "sb3_dqn": ["learning_starts=100", "batch_size=16", "buffer_size=500", "net_arch=[16]"],
}


def _tiny_run(algo: str, out: Path) -> dict:
    argv = ["--algo", algo, "--env", "GreedyMouse-v0", "--steps", "300", "--out", str(out)]
    argv += ["--quiet", "--no-tensorboard", "--eval-episodes", "3"]
    argv += ["--set", "env.max_episode_steps=60", "--set", "log_every=100"]
    for s in TINY[algo]:
        argv += ["--set", s]
    assert main(argv) == 0
    return json.loads((out / "eval.json").read_text())


@pytest.mark.parametrize("algo", ["sb3_ppo", "sb3_dqn"])
def test_model_zip_loads_in_sb3_and_reproduces_the_evaluation(algo: str, tmp_path) -> None:
    import stable_baselines3

    from smpc_gym.training.evaluate import evaluate_greedy_mouse

    result = _tiny_run(algo, tmp_path / "run")
    zip_path = tmp_path / "run" / "model.zip"
    assert (tmp_path / "run" / "model.pt").is_file() and zip_path.is_file()
    assert not list((tmp_path / "run").glob(".*.tmp"))  # no temporary file left behind
    umask = os.umask(0)
    os.umask(umask)
    assert zip_path.stat().st_mode & 0o777 == 0o666 & ~umask  # a teammate can read it
    cls = {"sb3_ppo": stable_baselines3.PPO, "sb3_dqn": stable_baselines3.DQN}[algo]
    model = cls.load(zip_path, device="cpu")  # SB3 alone, no smpc_gym wrapper

    def policy(obs: np.ndarray) -> int:
        return int(model.predict(np.asarray(obs, dtype=np.float32), deterministic=True)[0])

    again = evaluate_greedy_mouse(policy, result["env_kwargs"], result["seeds"])
    for key in ("mean_return", "std_return", "cheese_per_1000_steps", "deaths_per_1000_steps"):
        assert again[key] == result[key], key
    assert model.num_timesteps >= 300


def test_model_zip_holds_the_trained_weights_not_the_initial_ones(tmp_path) -> None:
    from stable_baselines3 import PPO

    _tiny_run("sb3_ppo", tmp_path / "run")
    trained = PPO.load(tmp_path / "run" / "model.zip", device="cpu").policy.state_dict()
    run = resolve("sb3_ppo", "greedy_mouse", sets=TINY["sb3_ppo"], steps=300)
    fresh = build_algorithm(run).model.policy.state_dict()
    assert trained.keys() == fresh.keys()
    assert any(not torch.equal(trained[k], fresh[k]) for k in trained)


def test_reward_scale_scales_what_sb3_learns_from_but_not_the_logged_return() -> None:
    sets = ["n_envs=2", "reward_scale=0.01", "env.max_episode_steps=30"]
    algo = build_algorithm(resolve("sb3_ppo", "greedy_mouse", sets=sets, steps=10))
    algo.venv.reset()
    scaled = np.zeros(2)
    episodes = []
    for _ in range(30):
        _, r, _, infos = algo.venv.step(np.array([2, 6]))
        scaled += r
        episodes += [info["episode"]["r"] for info in infos if "episode" in info]
    # SB3 learns from rewards scaled by 0.01 (raw -1 per step, +50 cheese, -100 eaten) ...
    assert np.all(np.abs(scaled) < 30 * 1.02) and np.all(scaled < 0)
    # ... while Monitor, inside the scaling wrapper, records the raw episode returns
    assert len(episodes) == 2
    assert np.allclose(np.sort(episodes), np.sort(scaled / 0.01), atol=1e-3)
    with pytest.raises(Exception, match="reward_scale must be > 0, got 0.0"):
        build_algorithm(resolve("sb3_ppo", "greedy_mouse", sets=["reward_scale=0"], steps=10))


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["sb3_ppo", "sb3_dqn"])
def test_preset_reaches_normalized_090(algo: str, tmp_path) -> None:
    """`train.py --algo sb3_ppo|sb3_dqn --env greedy_mouse` at the preset length (minutes)."""
    from smpc_gym.training.evaluate import normalized_score_of

    argv = ["--algo", algo, "--env", "greedy_mouse", "--out", str(tmp_path / "run")]
    assert main([*argv, "--quiet", "--no-tensorboard"]) == 0
    result = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert result["episodes"] == 20
    assert normalized_score_of(result) >= 0.9
