"""Run-relative exploration: ε decays over ``exploration_fraction`` of the run (as SB3's
``exploration_fraction``), the presets keep their old decay lengths at their preset
lengths, a short run ends at ``eps_end``, and a run too short to learn is warned about."""

from __future__ import annotations

import pytest
import torch

from smpc_gym.agents.base import get_algorithm
from smpc_gym.agents.common.schedules import decay_steps, exploration_schedule
from smpc_gym.training.config import ConfigError, build_algorithm, resolve, short_run_warnings

torch.set_num_threads(1)

EPS_GREEDY = ("tabular_q", "bandit", "dqn", "fed_dqn", "secure_fed_dqn")


class _Recorder:
    """Hooks that keep every logged row."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, dict[str, float]]] = []

    def log(self, step: int, metrics) -> None:
        self.rows.append((step, dict(metrics)))

    def should_checkpoint(self, step: int) -> bool:
        return False

    def checkpoint(self, step: int) -> None:
        pass


def test_decay_steps_is_the_rounded_fraction_of_the_run() -> None:
    assert decay_steps(0.1666667, 300_000) == 50_000
    assert decay_steps(0.3333333, 300_000) == 100_000
    assert decay_steps(0.5, 3_001) == 1_500  # round half to even
    assert decay_steps(0.0, 10_000) == 0
    with pytest.raises(ValueError, match="exploration_fraction must be in \\[0, 1\\], got 1.5"):
        decay_steps(1.5, 100)


def test_explicit_decay_steps_override_the_fraction() -> None:
    cfg = get_algorithm("dqn").Config(exploration_fraction=0.5, eps_decay_steps=1_000)
    assert exploration_schedule(cfg, 1_000_000).duration == 1_000
    cfg = get_algorithm("dqn").Config(exploration_fraction=0.5)
    assert exploration_schedule(cfg, 1_000_000).duration == 500_000
    # before the run length is known, ε is at its start value
    assert exploration_schedule(cfg, None)(12_345) == cfg.eps_start


@pytest.mark.parametrize("algo", EPS_GREEDY)
def test_bad_exploration_fields_are_refused(algo: str) -> None:
    cls = get_algorithm(algo).Config
    with pytest.raises(ValueError, match="exploration_fraction must be in \\[0, 1\\], got -0.1"):
        cls(exploration_fraction=-0.1)
    with pytest.raises(ValueError, match="eps_decay_steps must be >= 0 or None"):
        cls(eps_decay_steps=-5)


# The decay lengths the presets had as absolute step counts before the fraction: the
# fractions reproduce them exactly at the preset lengths.
OLD_DECAY = {
    "tabular_q": 100_000,
    "bandit": 50_000,
    "dqn": 50_000,
    "fed_dqn": 50_000,
    "secure_fed_dqn": 50_000,
}


@pytest.mark.parametrize("algo", EPS_GREEDY)
def test_presets_keep_their_decay_at_the_preset_length(algo: str) -> None:
    run = resolve(algo, "greedy_mouse")
    cfg = get_algorithm(algo).Config(**run.config)
    assert cfg.eps_decay_steps is None  # the preset uses the fraction
    assert exploration_schedule(cfg, run.steps).duration == OLD_DECAY[algo]
    # and a run of a tenth of the length decays over a tenth of the steps
    assert exploration_schedule(cfg, run.steps // 10).duration == OLD_DECAY[algo] // 10


@pytest.mark.parametrize("algo", ["tabular_q", "dqn", "fed_dqn"])
def test_short_run_ends_at_eps_end(algo: str) -> None:
    sets = ["log_every=200", "exploration_fraction=0.75"]  # decays over 900 of 1,200 steps
    if algo != "tabular_q":  # no gradient step: only the schedule is under test
        sets += ["hidden=[8]", "learning_starts=100000"]
    if algo == "fed_dqn":
        sets += ["holders=2", "sync_every=100"]
    run = resolve(algo, "greedy_mouse", sets=sets, steps=1_200)
    algo_ = build_algorithm(run)
    hooks = _Recorder()
    algo_.train(run.steps, hooks)
    eps = [m["epsilon"] for _, m in hooks.rows]
    assert len(eps) >= 5 and eps == sorted(eps, reverse=True) and len(set(eps)) > 2
    assert eps[-1] == pytest.approx(algo_.config.eps_end)
    # the old absolute schedule (50k / 100k steps) would still be exploring here
    assert algo_.config.eps_end + 0.5 < 1.0 - 1_200 / OLD_DECAY[algo]


def test_schedule_survives_checkpoint_and_is_not_restarted_by_extension() -> None:
    run = resolve("tabular_q", "greedy_mouse", sets=["log_every=200", "num_envs=4"], steps=800)
    first = build_algorithm(run)
    first.train(400, _Recorder())  # a finished 400-step run: its schedule spans 400 steps
    resumed = build_algorithm(run)
    resumed.load_state_dict(first.state_dict())
    assert resumed.run_steps == first.run_steps == 400
    assert resumed.epsilon(300) == first.epsilon(300)
    # extending the finished run keeps the finished schedule: ε stays at eps_end
    hooks = _Recorder()
    resumed.train(800, hooks)
    assert all(m["epsilon"] == pytest.approx(run.config["eps_end"]) for _, m in hooks.rows)


def test_resumed_dqn_continues_the_same_schedule() -> None:
    sets = ["num_envs=4", "hidden=[8]", "learning_starts=64", "batch_size=16", "log_every=200"]
    run = resolve("dqn", "greedy_mouse", sets=sets, steps=2_000)
    a = build_algorithm(run)
    a.learner.set_run_length(run.steps)
    b = build_algorithm(run)
    b.load_state_dict(a.state_dict())
    assert b.learner.run_steps == 2_000
    assert b.learner.epsilon(100) == a.learner.epsilon(100) < run.config["eps_start"]


def test_short_run_warning_names_learning_starts_and_a_fix() -> None:
    run = resolve("dqn", "greedy_mouse", steps=3_000)
    (msg,) = short_run_warnings(run, preset_steps=300_000)
    assert "learning_starts=5000" in msg and "never train" in msg
    assert "--steps 5001" in msg and "300000" in msg and "--set learning_starts=300" in msg
    assert short_run_warnings(resolve("dqn", "greedy_mouse", steps=5_001)) == []
    # federated: learning_starts counts each holder's own steps
    fed = resolve("fed_dqn", "greedy_mouse", steps=4_000)  # 1,000 per holder < 1,250
    (msg,) = short_run_warnings(fed)
    assert "per holder (4 holders)" in msg and "--steps 5001" in msg
    assert short_run_warnings(resolve("fed_dqn", "greedy_mouse", steps=6_000)) == []
    assert short_run_warnings(resolve("tabular_q", "greedy_mouse", steps=10)) == []
    sb3 = resolve("sb3_dqn", "greedy_mouse", steps=1_000)
    assert len(short_run_warnings(sb3)) == 1


def test_cli_prints_the_short_run_warning(tmp_path, capsys) -> None:
    from smpc_gym.training.cli import main

    argv = ["--algo", "dqn", "--env", "greedy_mouse", "--steps", "1e2", "--out", str(tmp_path)]
    argv += ["--set", "env.max_episode_steps=20", "--eval-episodes", "1", "--overwrite"]
    argv += ["--set", "hidden=[8]", "--no-tensorboard"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "warning: --steps 100 gives 100 env steps" in err and "learning_starts=5000" in err
    with pytest.raises(ConfigError):
        resolve("dqn", "greedy_mouse", sets=["exploration_fraction=2"])
