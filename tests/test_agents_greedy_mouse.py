"""Fast tests of the GreedyMouse learners: tabular_q, bandit, dqn, fed_dqn, sb3_dqn, sb3_ppo.

Each algorithm trains a few hundred env steps on NullHooks-like recording hooks, a
state_dict → load_state_dict round trip reproduces the policy exactly, and the core
update rules are checked on hand-made transitions.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from smpc_gym.agents.base import NullHooks, get_algorithm
from smpc_gym.agents.common.replay import ReplayBuffer
from smpc_gym.agents.common.schedules import ExponentialSchedule, LinearSchedule
from smpc_gym.agents.tabular_q import td_update

torch.set_num_threads(1)

FAST_CONFIGS = {
    "tabular_q": {"num_envs": 4, "log_every": 100},
    "bandit": {"num_envs": 4, "log_every": 100},
    "dqn": {
        "num_envs": 4,
        "hidden": (16,),
        "learning_starts": 64,
        "batch_size": 32,
        "buffer_size": 1000,
        "target_update_every": 100,
        "log_every": 100,
    },
    "fed_dqn": {
        "num_envs": 2,
        "holders": 3,
        "sync_every": 50,
        "hidden": (16,),
        "learning_starts": 32,
        "batch_size": 16,
        "buffer_size": 500,
        "target_update_every": 50,
        "log_every": 100,
    },
    "sb3_dqn": {
        "learning_starts": 50,
        "batch_size": 16,
        "buffer_size": 500,
        "net_arch": (16,),
        "log_every": 100,
    },
    "sb3_ppo": {
        "n_envs": 2,
        "n_steps": 64,
        "batch_size": 64,
        "n_epochs": 1,
        "net_arch": (16,),
        "log_every": 100,
    },
}
ENV_KWARGS = {
    "tabular_q": {"obs_mode": "local"},
    "bandit": {"obs_mode": "local"},
    "dqn": {"obs_mode": "features"},
    "fed_dqn": {"obs_mode": "features"},
    "sb3_dqn": {"obs_mode": "features"},
    "sb3_ppo": {"obs_mode": "features"},
}
ALGOS = list(FAST_CONFIGS)


class RecordingHooks(NullHooks):
    """Records logged steps and checkpoint calls; asks for a checkpoint every 200 steps."""

    def __init__(self, algo=None, every: int = 200) -> None:
        self.logged: list[int] = []
        self.rows: list[dict] = []
        self.checkpoints: list[int] = []
        self.algo = algo
        self.every = every
        self._next = every

    def log(self, step, metrics) -> None:
        self.logged.append(step)
        self.rows.append(dict(metrics))

    def should_checkpoint(self, step) -> bool:
        return step >= self._next

    def checkpoint(self, step) -> None:
        assert self.algo is None or step == self.algo.env_steps
        assert self.logged and self.logged[-1] <= step
        self.checkpoints.append(step)
        self._next = (step // self.every + 1) * self.every


def make(name: str, seed: int = 0, **overrides):
    cls = get_algorithm(name)
    cfg = cls.Config(**{**FAST_CONFIGS[name], **overrides})
    return cls(cfg, ENV_KWARGS[name], seed)


def sample_obs(name: str, n: int = 64, seed: int = 123) -> np.ndarray:
    """Observations of real worlds (random play) for comparing policies."""
    from smpc_gym.agents.common.vector_worlds import VectorWorlds

    worlds = VectorWorlds(ENV_KWARGS[name], 8, seed)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n // 8):
        out.append(np.array(worlds.obs, copy=True))
        worlds.step(rng.integers(0, 8, 8))
    worlds.close()
    return np.concatenate(out)


# ------------------------------------------------------------------ schedules, buffer
def test_linear_schedule_interpolates_then_stays_flat():
    s = LinearSchedule(1.0, 0.1, 100)
    assert s(0) == pytest.approx(1.0)
    assert s(50) == pytest.approx(0.55)
    assert s(100) == pytest.approx(0.1)
    assert s(10_000) == pytest.approx(0.1)
    assert LinearSchedule(1.0, 0.2, 0)(0) == pytest.approx(0.2)
    with pytest.raises(ValueError, match="duration"):
        LinearSchedule(1.0, 0.1, -1)


def test_exponential_schedule_decays_to_floor():
    s = ExponentialSchedule(1.0, 0.05, 0.9)
    assert s(1) == pytest.approx(0.9)
    assert s(2) == pytest.approx(0.81)
    assert s(1000) == pytest.approx(0.05)


def test_replay_buffer_wraps_and_round_trips():
    buf = ReplayBuffer(5, (2,))
    for i in range(3):
        o = np.full((3, 2), i, dtype=np.float32)
        buf.add(o, np.array([i] * 3), np.ones(3), o + 1, np.zeros(3))
    assert len(buf) == 5 and buf.pos == 4
    # the oldest rows were overwritten by the third batch
    assert sorted(buf.actions.tolist()) == [1, 1, 2, 2, 2]
    other = ReplayBuffer(5, (2,))
    other.load_state_dict(buf.state_dict())
    a = buf.sample(10, np.random.default_rng(1))
    b = other.sample(10, np.random.default_rng(1))
    for k in a:
        assert torch.equal(a[k], b[k])


# ---------------------------------------------------------------------- tabular rule
def test_tabular_terminal_transition_does_not_bootstrap():
    q = np.zeros((4, 2))
    q[3] = [10.0, 5.0]  # the next state's values
    td_update(
        q,
        np.array([0]),
        np.array([1]),
        np.array([-100.0]),
        np.array([3]),
        np.array([True]),
        0.5,
        0.9,
    )
    assert q[0, 1] == pytest.approx(0.5 * -100.0)  # target = r only
    # the same transition truncated/non-terminal bootstraps: r + γ max Q[s']
    td_update(
        q,
        np.array([1]),
        np.array([0]),
        np.array([-1.0]),
        np.array([3]),
        np.array([False]),
        0.5,
        0.9,
    )
    assert q[1, 0] == pytest.approx(0.5 * (-1.0 + 0.9 * 10.0))


def test_tabular_repeated_pairs_act_like_sequential_updates():
    q = np.zeros((2, 2))
    n = 3
    td_update(
        q,
        np.zeros(n, int),
        np.zeros(n, int),
        np.full(n, 8.0),
        np.ones(n, int),
        np.ones(n, bool),
        0.5,
        0.9,
    )
    seq = 0.0
    for _ in range(n):
        seq += 0.5 * (8.0 - seq)
    assert q[0, 0] == pytest.approx(seq)


def test_bandit_ignores_future_value():
    algo = make("bandit")
    assert algo.gamma == 0.0
    assert get_algorithm("tabular_q").Config().gamma > 0


# ------------------------------------------------------------------------- DQN rules
def test_dqn_target_network_updates_on_schedule():
    algo = make("dqn", learning_starts=32, target_update_every=200, train_every=1)
    learner = algo.learner
    from smpc_gym.agents.common.vector_worlds import VectorWorlds

    worlds = VectorWorlds(algo.env_kwargs, 4, 0)
    before = copy.deepcopy(learner.target.state_dict())
    while learner.env_steps < 196:
        learner.step(worlds)
    assert learner.grad_steps > 0
    online = learner.q.state_dict()
    # trained, but the target has not moved yet
    assert all(torch.equal(before[k], learner.target.state_dict()[k]) for k in before)
    assert any(not torch.equal(before[k], online[k]) for k in before)
    learner.step(worlds)  # crosses 200 env steps
    assert learner.env_steps >= 200
    assert all(
        torch.equal(learner.target.state_dict()[k], learner.q.state_dict()[k]) for k in before
    )
    worlds.close()


def test_dqn_soft_target_update_moves_part_way():
    algo = make("dqn", tau=0.25)
    learner = algo.learner
    with torch.no_grad():
        for p in learner.q.parameters():
            p.add_(1.0)
    old = [t.clone() for t in learner.target.parameters()]
    learner.update_target()
    for t, o, p in zip(learner.target.parameters(), old, learner.q.parameters(), strict=True):
        assert torch.allclose(t, o + 0.25 * (p - o))


def test_dqn_rejects_image_observation():
    cls = get_algorithm("dqn")
    with pytest.raises(ValueError, match="features"):
        cls(cls.Config(), {"obs_mode": "global"}, 0)


def test_config_errors_name_the_bad_value():
    with pytest.raises(ValueError, match="alpha.*1.5"):
        get_algorithm("tabular_q").Config(alpha=1.5)
    with pytest.raises(ValueError, match="holders.*0"):
        get_algorithm("fed_dqn").Config(holders=0)
    with pytest.raises(ValueError, match="gamma"):
        get_algorithm("dqn").Config(gamma=1.0)


# ---------------------------------------------------------------- every algorithm
@pytest.mark.parametrize("name", ALGOS)
def test_trains_a_few_hundred_steps_and_logs(name):
    algo = make(name)
    hooks = RecordingHooks(algo)
    algo.train(400, hooks)
    assert algo.env_steps >= 400
    assert hooks.logged, "no metrics logged"
    assert all(b > a for a, b in zip(hooks.logged, hooks.logged[1:], strict=False))
    assert hooks.checkpoints, "checkpoints were due but never written"
    assert all(np.isfinite(v) or np.isnan(v) for row in hooks.rows for v in row.values())
    obs = sample_obs(name, 8)
    actions = [algo.act(o) for o in obs]
    assert all(isinstance(a, int) and 0 <= a < 8 for a in actions)


@pytest.mark.parametrize("name", ALGOS)
def test_state_dict_round_trip_gives_identical_actions(name):
    algo = make(name, seed=1)
    algo.train(300, NullHooks())
    state = algo.state_dict()
    fresh = make(name, seed=99)
    obs = sample_obs(name)
    fresh.load_state_dict(state)
    assert fresh.env_steps == algo.env_steps
    assert [algo.act(o) for o in obs] == [fresh.act(o) for o in obs]


@pytest.mark.parametrize("name", ["tabular_q", "dqn", "fed_dqn"])
def test_resume_continues_exactly(name):
    """Train 300 + 300 steps with a state_dict hand-over == 600 steps straight through?
    Not bitwise (worlds are rebuilt on resume, as documented), but the step counter,
    learner counters and the training itself continue with nothing lost or doubled."""
    algo = make(name, seed=2)
    algo.train(300, NullHooks())
    first = algo.env_steps
    resumed = make(name, seed=2)
    resumed.load_state_dict(algo.state_dict())
    hooks = RecordingHooks(resumed)
    resumed.train(600, hooks)
    assert resumed.env_steps >= 600
    assert hooks.logged[0] > first


def test_resumed_state_dict_survives_the_runner_checkpoint_format(tmp_path):
    checkpoint = pytest.importorskip("smpc_gym.training.checkpoint")
    algo = make("dqn", seed=3)
    algo.train(200, NullHooks())
    path = tmp_path / "model.pt"
    checkpoint.save_algorithm(algo, path)
    loaded = checkpoint.load_algorithm(path)
    obs = sample_obs("dqn", 16)
    assert [algo.act(o) for o in obs] == [loaded.act(o) for o in obs]
    assert len(loaded.learner.buffer) == len(algo.learner.buffer)


def test_fed_dqn_holders_share_the_averaged_weights():
    algo = make("fed_dqn", seed=4)
    algo.train(300, NullHooks())
    w0 = algo.global_learner.get_weights()
    for learner in algo.learners:
        w = learner.get_weights()
        assert all(torch.equal(w[k], w0[k]) for k in w0)
    # every holder collected its own share of the env steps
    assert sum(lr.env_steps for lr in algo.learners) == algo.env_steps
    assert len({lr.env_steps for lr in algo.learners}) == 1
    assert algo.rounds >= 1


def test_fed_dqn_average_is_sample_weighted():
    algo = make("fed_dqn", seed=5)
    ws = []
    for i, learner in enumerate(algo.learners):
        with torch.no_grad():
            for p in learner.q.parameters():
                p.fill_(float(i))
        ws.append(learner.get_weights())
    algo.sync([1.0, 1.0, 2.0])
    expected = (0 * 1 + 1 * 1 + 2 * 2) / 4
    for v in algo.global_learner.get_weights().values():
        assert torch.allclose(v, torch.full_like(v, expected))


def test_fed_dqn_server_lr_scales_the_averaged_update():
    """server_lr η: global ← global + η · (sample-weighted mean of holder weights − global);
    η = 1 is plain FedAvg (the test above), η = holders applies the sum of equal updates."""
    algo = make("fed_dqn", seed=6, server_lr=3.0)
    prev = algo.global_learner.get_weights()
    for i, learner in enumerate(algo.learners):
        with torch.no_grad():
            for name, p in learner.q.named_parameters():
                p.copy_(prev[name] + 0.01 * (i + 1))
    algo.sync([1.0, 1.0, 2.0])
    mean_delta = 0.01 * (1 * 1 + 2 * 1 + 3 * 2) / 4
    new = algo.global_learner.get_weights()
    for k, v in new.items():
        assert torch.allclose(v, prev[k] + 3.0 * mean_delta, atol=1e-6), k
    for learner in algo.learners:  # every holder starts the next round from it
        w = learner.get_weights()
        assert all(torch.equal(w[k], new[k]) for k in new)
    with pytest.raises(ValueError, match="server_lr.*0"):
        get_algorithm("fed_dqn").Config(server_lr=0.0)


@pytest.mark.parametrize("name", ALGOS)
def test_preset_resolves_and_builds(name):
    """agents/<name>.yaml's greedy_mouse section is valid for the algorithm's Config."""
    from smpc_gym.training.config import build_algorithm, resolve

    run = resolve(name, "greedy_mouse", seed=0)
    algo = build_algorithm(run)
    assert algo.name == name
    assert run.env_kwargs["obs_mode"] == (
        "local" if name in ("tabular_q", "bandit") else "features"
    )
