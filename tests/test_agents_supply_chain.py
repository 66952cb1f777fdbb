"""Fast tests of maddpg (EDE) and nds on SupplyChain: shapes, update order, replay,
noise, save/load, and a hand-checked single update."""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import pytest
import torch

from smpc_gym.agents.base import NullHooks, get_algorithm
from smpc_gym.agents.common.ou_noise import OUNoise
from smpc_gym.agents.common.supply_chain_eval import evaluate, myopic_policy, random_policy
from smpc_gym.agents.maddpg import (
    MADDPG,
    Config,
    DataSharing,
    Nets,
    Optimisers,
    PlayerBatch,
    PlayerReplay,
    maddpg_update,
    make_actor,
    make_critic,
    sample_indices,
)
from smpc_gym.agents.nds import NDS

HIGH = [torch.tensor([10.0, 20.0]), torch.tensor([18.0, 20.0])]
SMALL = {
    "hidden": 16,
    "batch_size": 32,
    "learning_starts": 64,
    "log_every": 40,
    "buffer_size": 10_000,
}


def _algo(cls: type[MADDPG], seed: int = 0, **overrides: object) -> MADDPG:
    return cls(cls.Config(**{**SMALL, **overrides}), {}, seed)


def _flat(module: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in module.parameters()])


class Recorder(NullHooks):
    """Keeps every logged row."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, dict[str, float]]] = []

    def log(self, step, metrics):  # type: ignore[override]
        self.rows.append((step, dict(metrics)))


# --------------------------------------------------------------------------- registry, shapes
def test_registry_names_the_classes() -> None:
    assert get_algorithm("maddpg") is MADDPG
    assert get_algorithm("nds") is NDS
    assert MADDPG.envs == ("supply_chain",) and NDS.envs == ("supply_chain",)


@pytest.mark.parametrize(
    ("cls", "actor_in", "critic_in"), [(MADDPG, 10, 14), (NDS, 5, 7)], ids=["ede", "nds"]
)
def test_paper_network_shapes(cls: type[MADDPG], actor_in: int, critic_in: int) -> None:
    algo = cls(cls.Config(), {}, 0)
    for i in range(2):
        a_lin = [m for m in algo.nets.actors[i] if isinstance(m, torch.nn.Linear)]
        c_lin = [m for m in algo.nets.critics[i] if isinstance(m, torch.nn.Linear)]
        assert [(m.in_features, m.out_features) for m in a_lin] == [
            (actor_in, 128),
            (128, 128),
            (128, 2),
        ]
        assert [(m.in_features, m.out_features) for m in c_lin] == [
            (critic_in, 128),
            (128, 128),
            (128, 1),
        ]
        acts = [type(m).__name__ for m in algo.nets.actors[i]]
        assert acts == ["Linear", "ReLU", "Linear", "ReLU", "Linear", "Sigmoid", "ScaleToCaps"]
        # targets start equal to the online networks
        assert torch.equal(_flat(algo.nets.actors[i]), _flat(algo.nets.target_actors[i]))
        assert torch.equal(_flat(algo.nets.critics[i]), _flat(algo.nets.target_critics[i]))


def test_init_depends_only_on_the_passed_generator() -> None:
    a = make_actor(10, 8, HIGH[0], torch.Generator().manual_seed(3))
    torch.manual_seed(999)  # global state must not matter
    b = make_actor(10, 8, HIGH[0], torch.Generator().manual_seed(3))
    c = make_actor(10, 8, HIGH[0], torch.Generator().manual_seed(4))
    assert torch.equal(_flat(a), _flat(b))
    assert not torch.equal(_flat(a), _flat(c))


def test_actor_output_stays_within_caps() -> None:
    gen = torch.Generator().manual_seed(0)
    for high in HIGH:
        actor = make_actor(10, 32, high, gen)
        x = torch.cat([torch.rand(200, 10), 1e4 * torch.randn(200, 10)])
        out = actor(x).detach()
        assert out.shape == (400, 2)
        assert torch.all(out >= 0) and torch.all(out <= high)


def test_training_actions_stay_within_caps() -> None:
    algo = _algo(MADDPG, ou_sigma=3.0)  # huge noise: clipping must hold
    algo.train(120, NullHooks())
    for i in range(2):
        acts = algo.replay[i].data["action"][: algo.replay[i].size]
        assert torch.all(acts >= 0) and torch.all(acts <= algo.nets.action_high[i])
        assert (acts == 0).any() or (acts == algo.nets.action_high[i]).any()


# --------------------------------------------------------------------------- training runs
@pytest.mark.parametrize("cls", [MADDPG, NDS], ids=["maddpg", "nds"])
def test_trains_a_few_hundred_steps(cls: type[MADDPG]) -> None:
    algo = _algo(cls)
    before = [_flat(a).clone() for a in algo.nets.actors]
    hooks = Recorder()
    algo.train(240, hooks)
    assert algo.env_steps == 240
    assert algo.episodes == 6  # 40-step episodes
    assert algo.updates == 240 - SMALL["learning_starts"] + 1
    steps = [s for s, _ in hooks.rows]
    assert steps == sorted(set(steps)) and steps[-1] == 240
    last = hooks.rows[-1][1]
    for key in ("reward_0", "ncr_1", "wastage_units_0", "critic_loss_1", "actor_loss_0"):
        assert np.isfinite(last[key]), key
    for i in range(2):
        assert not torch.equal(before[i], _flat(algo.nets.actors[i]))
    res = evaluate(algo.policy, {}, episodes=20, seed=1)
    assert res["episodes"] == 20 and np.isfinite(res["total_ncr"])


def test_batched_worlds_count_env_steps_per_world() -> None:
    algo = _algo(MADDPG, n_envs=4, updates_per_iter=2)
    algo.train(160, NullHooks())
    assert algo.env_steps == 160 and algo.episodes == 4
    assert algo.replay[0].size == 160
    # updates start once 64 transitions are stored: iterations 16..40 → 25 × 2 updates
    assert algo.updates == 50


def test_replay_rewards_are_scaled_ncr_increments() -> None:
    algo = _algo(MADDPG, learning_starts=10_000, log_every=40)
    hooks = Recorder()
    algo.train(80, hooks)
    assert len(hooks.rows) == 2
    for ep, (_, row) in enumerate(hooks.rows):
        for i in range(2):
            r = algo.replay[i].data["reward"][40 * ep : 40 * (ep + 1)]
            assert float(r.sum()) * 100 == pytest.approx(row[f"ncr_{i}"], rel=1e-4, abs=1e-2)
            done = algo.replay[i].data["done"][40 * ep : 40 * (ep + 1), 0]
            assert done.tolist() == [0.0] * 39 + [1.0]
    # train_reward="reward" stores the raw reward (waste cost not subtracted)
    raw = _algo(MADDPG, learning_starts=10_000, log_every=40, train_reward="reward")
    hooks = Recorder()
    raw.train(40, hooks)
    total = float(raw.replay[0].data["reward"][:40].sum()) * 100
    assert total == pytest.approx(hooks.rows[0][1]["reward_0"], rel=1e-4, abs=1e-2)


def test_same_seed_same_run_and_different_seed_differs() -> None:
    a, b, c = _algo(NDS, 5), _algo(NDS, 5), _algo(NDS, 6)
    for x in (a, b, c):
        x.train(120, NullHooks())
    assert torch.equal(_flat(a.nets.critics[1]), _flat(b.nets.critics[1]))
    assert not torch.equal(_flat(a.nets.critics[1]), _flat(c.nets.critics[1]))


# --------------------------------------------------------------------------- save / load
@pytest.mark.parametrize("cls", [MADDPG, NDS], ids=["maddpg", "nds"])
def test_state_dict_round_trip_identical_actions_and_resume(cls: type[MADDPG]) -> None:
    algo = _algo(cls, seed=3)
    algo.train(120, NullHooks())
    buf = io.BytesIO()
    torch.save(algo.state_dict(), buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)

    other = _algo(cls, seed=99)  # different init, overwritten by the load
    other.load_state_dict(state)
    obs = np.random.default_rng(0).uniform(0, 1, size=(50, 2, 5)).astype(np.float32)
    assert np.array_equal(algo.policy(obs), other.policy(obs))
    one = {"player_0": obs[0, 0], "player_1": obs[0, 1]}
    a1, a2 = algo.act(one), other.act(one)
    for k in a1:
        assert np.array_equal(a1[k], a2[k])
    assert other.env_steps == 120

    # resuming continues exactly as the uninterrupted run
    algo.train(200, NullHooks())
    other.train(200, NullHooks())
    for i in range(2):
        assert torch.equal(_flat(algo.nets.actors[i]), _flat(other.nets.actors[i]))
        assert torch.equal(_flat(algo.nets.target_critics[i]), _flat(other.nets.target_critics[i]))
    assert algo.updates == other.updates


def test_act_returns_actions_in_the_env_action_space() -> None:
    algo = _algo(MADDPG)
    obs = {"player_0": np.full(5, 0.5, np.float32), "player_1": np.zeros(5, np.float32)}
    for det in (True, False):
        act = algo.act(obs, deterministic=det)
        assert set(act) == {"player_0", "player_1"}
        for i, k in enumerate(("player_0", "player_1")):
            assert act[k].shape == (2,) and act[k].dtype == np.float32
            assert np.all(act[k] >= 0) and np.all(act[k] <= HIGH[i].numpy())
    feats = np.stack([obs["player_0"], obs["player_1"]])[None]
    greedy = algo.act(obs)
    assert np.array_equal(np.stack([greedy["player_0"], greedy["player_1"]]), algo.policy(feats)[0])


def test_act_plays_the_parallel_env() -> None:
    sc = pytest.importorskip("smpc_gym.supply_chain_v0")
    env = sc.parallel_env()
    algo = _algo(NDS)
    obs, _ = env.reset(seed=0)
    steps = 0
    while env.agents:
        act = algo.act(obs)
        for a in env.agents:
            assert env.action_space(a).contains(act[a])
        obs, *_ = env.step(act)
        steps += 1
    assert steps == 40


# --------------------------------------------------------------------------- replay, sampler
def test_replay_wraps_and_round_trips() -> None:
    rep = PlayerReplay(5)
    for k in range(3):
        n = 2
        rows = torch.full((n, 5), float(k))
        rep.add(
            rows, rows + 1, torch.full((n, 2), float(k)), torch.full((n,), float(k)), torch.zeros(n)
        )
    assert rep.size == 5 and rep.pos == 1
    assert rep.data["reward"][:, 0].tolist() == [2.0, 0.0, 1.0, 1.0, 2.0]
    batch = rep.get(torch.tensor([0, 3]))
    assert batch.obs.shape == (2, 5) and batch.reward.shape == (2, 1) and batch.done.shape == (2, 1)
    other = PlayerReplay(5)
    other.load_state_dict(rep.state_dict())
    for f in PlayerReplay.FIELDS:
        assert torch.equal(other.data[f], rep.data[f])
    assert (other.pos, other.size) == (rep.pos, rep.size)


def test_sampler_is_the_only_source_of_indices() -> None:
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    i1 = sample_indices(1000, 128, g1)
    i2 = sample_indices(1000, 128, g2)
    assert torch.equal(i1, i2) and i1.min() >= 0 and i1.max() < 1000
    assert not torch.equal(i1, sample_indices(1000, 128, g1))


# --------------------------------------------------------------------------- OU noise
def test_ou_noise_seeded_and_stationary_variance() -> None:
    theta, sigma = 0.15, 0.3
    a = OUNoise(2, theta, sigma, torch.Generator().manual_seed(1), n_envs=4000)
    b = OUNoise(2, theta, sigma, torch.Generator().manual_seed(1), n_envs=4000)
    for _ in range(150):
        xa, xb = a.sample(), b.sample()
    assert torch.equal(xa, xb)
    # x' = (1-θ)x + σε has stationary variance σ² / (1 - (1-θ)²)
    expected = sigma**2 / (1 - (1 - theta) ** 2)
    assert float(xa.var()) == pytest.approx(expected, rel=0.08)
    assert abs(float(xa.mean())) < 0.05
    # successive values are correlated (lag-1 correlation 1-θ), unlike white noise
    xn = a.sample()
    corr = torch.corrcoef(torch.stack([xa.flatten(), xn.flatten()]))[0, 1]
    assert float(corr) == pytest.approx(1 - theta, abs=0.05)
    a.reset()
    assert torch.all(a.state == 0)


# --------------------------------------------------------------------------- the update
def _mlp(x: torch.Tensor, net: torch.nn.Sequential, out: str) -> torch.Tensor:
    """Forward by hand: Linear, ReLU, Linear, ReLU, Linear [, Sigmoid·high]."""
    lin = [m for m in net if isinstance(m, torch.nn.Linear)]
    h = torch.relu(x @ lin[0].weight.T + lin[0].bias)
    h = torch.relu(h @ lin[1].weight.T + lin[1].bias)
    z = h @ lin[2].weight.T + lin[2].bias
    return torch.sigmoid(z) * net[-1].high if out == "actor" else z


def _tiny(mode: str, seed: int = 0) -> tuple[Nets, Optimisers, list[PlayerBatch], Config]:
    cfg = Config(hidden=4, optimizer="sgd", momentum=0.0, actor_lr=0.05, critic_lr=0.1, tau=0.3)
    sharing = DataSharing(mode)
    g = torch.Generator().manual_seed(seed)
    actors = [make_actor(sharing.actor_in_dim, 4, HIGH[i], g) for i in range(2)]
    critics = [make_critic(sharing.critic_in_dim, 4, g) for _ in range(2)]
    # targets deliberately different from the online nets, so their use is visible
    t_actors = [make_actor(sharing.actor_in_dim, 4, HIGH[i], g) for i in range(2)]
    t_critics = [make_critic(sharing.critic_in_dim, 4, g) for _ in range(2)]
    nets = Nets(actors, critics, t_actors, t_critics, [h.clone() for h in HIGH])
    opts = Optimisers(
        [torch.optim.SGD(a.parameters(), lr=cfg.actor_lr) for a in actors],
        [torch.optim.SGD(c.parameters(), lr=cfg.critic_lr) for c in critics],
    )
    batch = []
    for i in range(2):
        batch.append(
            PlayerBatch(
                obs=torch.rand(3, 5, generator=g),
                next_obs=torch.rand(3, 5, generator=g),
                action=torch.rand(3, 2, generator=g) * HIGH[i],
                reward=torch.tensor([[0.5], [-0.25], [1.0]]),
                done=torch.tensor([[0.0], [1.0], [0.0]]),
            )
        )
    return nets, opts, batch, cfg


def test_single_ede_update_matches_a_hand_computation() -> None:
    import copy

    nets, opts, batch, cfg = _tiny("ede")
    before = copy.deepcopy(nets)
    stats = maddpg_update(nets, opts, batch, cfg, DataSharing("ede"))

    s = torch.cat([batch[0].obs, batch[1].obs], 1)
    s2 = torch.cat([batch[0].next_obs, batch[1].next_obs], 1)
    a_scaled = torch.cat([batch[0].action / HIGH[0], batch[1].action / HIGH[1]], 1)
    # target actors on next states -> target critic -> y = r + γ(1 − done)Q'
    na = [_mlp(s2, before.target_actors[j], "actor") for j in range(2)]
    na_scaled = torch.cat([na[0] / HIGH[0], na[1] / HIGH[1]], 1)
    critics_after = []
    for i in range(2):
        q_next = _mlp(torch.cat([s2, na_scaled], 1), before.target_critics[i], "critic")
        y = batch[i].reward + cfg.gamma * (1 - batch[i].done) * q_next
        # the row with done = 1 does not bootstrap
        assert float(y[1, 0].detach()) == pytest.approx(-0.25)
        critic = copy.deepcopy(before.critics[i])
        q = _mlp(torch.cat([s, a_scaled], 1), critic, "critic")
        loss = ((q - y.detach()) ** 2).mean()
        assert stats[f"critic_loss_{i}"] == pytest.approx(float(loss.detach()), rel=1e-5)
        grads = torch.autograd.grad(loss, list(critic.parameters()))
        with torch.no_grad():
            for p, gr in zip(critic.parameters(), grads, strict=True):
                p -= cfg.critic_lr * gr
        critics_after.append(critic)
        assert torch.allclose(_flat(critic), _flat(nets.critics[i]), atol=1e-6)

    # actors: gradient through the UPDATED critic, own action replaced
    for i in range(2):
        actor = copy.deepcopy(before.actors[i])
        own = _mlp(s, actor, "actor") / HIGH[i]
        parts = [own if j == i else batch[j].action / HIGH[j] for j in range(2)]
        loss = -_mlp(torch.cat([s, *parts], 1), critics_after[i], "critic").mean()
        assert stats[f"actor_loss_{i}"] == pytest.approx(float(loss.detach()), rel=1e-5)
        grads = torch.autograd.grad(loss, list(actor.parameters()))
        with torch.no_grad():
            for p, gr in zip(actor.parameters(), grads, strict=True):
                p -= cfg.actor_lr * gr
        assert torch.allclose(_flat(actor), _flat(nets.actors[i]), atol=1e-6)
        # soft target updates with τ
        exp_t = (1 - cfg.tau) * _flat(before.target_actors[i]) + cfg.tau * _flat(actor)
        assert torch.allclose(exp_t, _flat(nets.target_actors[i]), atol=1e-6)
        exp_c = (1 - cfg.tau) * _flat(before.target_critics[i]) + cfg.tau * _flat(critics_after[i])
        assert torch.allclose(exp_c, _flat(nets.target_critics[i]), atol=1e-6)


def test_critic_target_by_hand_on_a_constant_target_critic() -> None:
    nets, opts, batch, cfg = _tiny("ede")
    # make every target critic output exactly 2.0 and every online critic exactly 0.0
    for c in nets.target_critics + nets.critics:
        with torch.no_grad():
            for p in c.parameters():
                p.zero_()
    for c in nets.target_critics:
        with torch.no_grad():
            c[-1].bias.fill_(2.0)
    stats = maddpg_update(nets, opts, batch, cfg, DataSharing("ede"))
    # y = r + 0.99·(1 − done)·2 = [0.5 + 1.98, −0.25, 1.0 + 1.98]; loss = mean(y²)
    y = torch.tensor([2.48, -0.25, 2.98])
    assert stats["critic_loss_0"] == pytest.approx(float((y**2).mean()), rel=1e-6)
    assert stats["q_mean_0"] == 0.0


@pytest.mark.parametrize(("mode", "isolated"), [("nds", True), ("ede", False)])
def test_other_players_columns_reach_own_update_only_under_ede(mode: str, isolated: bool) -> None:
    import copy

    nets, opts, batch, cfg = _tiny(mode)
    nets2 = copy.deepcopy(nets)
    opts2 = Optimisers(
        [torch.optim.SGD(a.parameters(), lr=cfg.actor_lr) for a in nets2.actors],
        [torch.optim.SGD(c.parameters(), lr=cfg.critic_lr) for c in nets2.critics],
    )
    changed = copy.deepcopy(batch)
    changed[1] = dataclasses.replace(
        changed[1], obs=changed[1].obs.flip(0), action=changed[1].action.flip(0)
    )
    maddpg_update(nets, opts, batch, cfg, DataSharing(mode))
    maddpg_update(nets2, opts2, changed, cfg, DataSharing(mode))
    same = torch.equal(_flat(nets.critics[0]), _flat(nets2.critics[0])) and torch.equal(
        _flat(nets.actors[0]), _flat(nets2.actors[0])
    )
    assert same == isolated


def test_adam_is_the_default_and_sgd_an_option() -> None:
    assert isinstance(_algo(MADDPG).opts.critics[0], torch.optim.Adam)
    sgd = _algo(MADDPG, optimizer="sgd", momentum=0.8)
    assert isinstance(sgd.opts.actors[1], torch.optim.SGD)
    assert sgd.opts.actors[1].param_groups[0]["momentum"] == 0.8
    assert sgd.opts.actors[1].param_groups[0]["lr"] == Config().actor_lr


# --------------------------------------------------------------------------- config, eval
def test_paper_defaults() -> None:
    c = Config()
    assert (c.hidden, c.batch_size, c.actor_lr, c.critic_lr) == (128, 128, 1e-4, 1e-3)
    assert (c.gamma, c.tau, c.buffer_size, c.ou_theta, c.ou_sigma) == (
        0.99,
        0.01,
        1_000_000,
        0.15,
        0.3,
    )
    assert c.reward_scale == 0.01 and c.n_envs == 1 and c.updates_per_iter == 1


@pytest.mark.parametrize(
    ("field", "value"),
    [("optimizer", "rmsprop"), ("train_reward", "profit"), ("batch_size", 0), ("gamma", 1.5)],
)
def test_bad_config_names_the_value(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=str(value)):
        Config(**{field: value})


def test_myopic_benchmark_per_step_rewards_by_hand() -> None:
    # price_0 = 10, price_1 = 15, both order 5: r0 ≈ 10·5 − 0.5·5 = 47.5, r1 ≈ 15·5 − 10·5 = 25
    # once stock flows; over a 40-step episode the first steps depend on initial stock.
    res = evaluate(myopic_policy(), {"demand_noise": 0.0, "initial_stock": (5.0, 5.0)}, 4, 0)
    assert res["players"]["player_0"]["reward"] == pytest.approx(40 * 47.5)
    assert res["players"]["player_1"]["reward"] == pytest.approx(40 * 25.0)
    rnd = evaluate(random_policy({}, 0), {}, 30, 0)
    assert rnd["episodes"] == 30 and rnd["total_wastage_units"] > 0
