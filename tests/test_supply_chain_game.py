"""SupplyChain pure dynamics (game.py): hand-worked equations, config validation, bad input,
and agreement of the batched numpy game with the scalar fast path.

Every hand-worked case uses ``demand_noise=0`` so that ``D = max(0, 20 - price_1)`` with the
default ``A = 20, B = 1``; expected numbers are written out from the spec's equations.
Each case runs on both implementations (``impl`` fixture).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from smpc_gym.envs.supply_chain.game import (
    ScalarSupplyChainGame,
    SupplyChainConfig,
    SupplyChainGame,
    measure_throughput,
)

NOISELESS = {"demand_noise": 0.0}


class Run:
    """Drives one episode on either implementation and returns per-step dicts."""

    def __init__(self, impl: str, initial_stock: tuple[float, float], **params) -> None:
        self.cfg = SupplyChainConfig(**{**NOISELESS, **params})
        self.impl = impl
        self.rng = np.random.default_rng(0)
        if impl == "scalar":
            self.game = ScalarSupplyChainGame(self.cfg)
            self.game.reset(self.rng, initial_stock=initial_stock)
        else:
            self.game = SupplyChainGame(self.cfg, batch_size=1)
            self.game.reset(self.rng, initial_stock=initial_stock)

    def step(self, a0: tuple[float, float], a1: tuple[float, float]) -> dict:
        if self.impl == "scalar":
            r = self.game.step(np.array(a0), np.array(a1), self.rng)
            out = {f.name: getattr(r, f.name) for f in dataclasses.fields(r)}
            out["stock"] = tuple(self.game.stock)
            return out
        r = self.game.step(np.array([[a0, a1]], dtype=np.float64), self.rng)
        out = {}
        for f in dataclasses.fields(r):
            v = getattr(r, f.name)[0]
            out[f.name] = tuple(v.tolist()) if np.ndim(v) else v.item()
        out["stock"] = tuple(self.game.stock[0].tolist())
        return out


@pytest.fixture(params=["scalar", "batched"])
def impl(request) -> str:
    return request.param


def approx(x):
    return pytest.approx(x, abs=1e-9)


# ---------------------------------------------------------------- hand-worked equations
def test_shipping_limited_by_upstream_stock(impl):
    # stock_0 = 3 < quantity_1 = 5  ->  x = 3.  D = 20 - 15 = 5, stock_1 = 0 -> y = 0.
    r = Run(impl, (3.0, 0.0)).step((10.0, 4.0), (15.0, 5.0))
    assert r["demand"] == approx(5.0)
    assert r["shipped"] == approx(3.0)
    assert r["sold"] == approx(0.0)
    assert r["reward"] == approx((10 * 3 - 0.5 * 4, 0 - 10 * 3))  # (28, -30)
    assert r["stock"] == approx((3 - 3 + 4, 0 - 0 + 3))
    assert r["unmet_demand"] == approx((5 - 3, 5 - 0))


def test_sales_limited_by_downstream_stock(impl):
    # D = 20 - 12 = 8 but stock_1 = 2 -> y = 2; x = min(6, 10) = 6.
    r = Run(impl, (10.0, 2.0)).step((9.0, 0.0), (12.0, 6.0))
    assert r["demand"] == approx(8.0)
    assert r["sold"] == approx(2.0)
    assert r["shipped"] == approx(6.0)
    assert r["reward"] == approx((9 * 6 - 0, 12 * 2 - 9 * 6))  # (54, -30)
    assert r["unmet_demand"] == approx((0.0, 6.0))
    assert r["stock"] == approx((10 - 6, 2 - 2 + 6))


def test_sales_limited_by_demand_and_both_rewards(impl):
    # Interior case: D = 20 - 14 = 6 <= stock_1 = 9; x = 5 <= stock_0 = 8.
    r = Run(impl, (8.0, 9.0)).step((7.0, 6.0), (14.0, 5.0))
    assert r["sold"] == approx(6.0)
    assert r["shipped"] == approx(5.0)
    assert r["revenue"] == approx((7 * 5, 14 * 6))
    assert r["cost"] == approx((0.5 * 6, 7 * 5))
    assert r["reward"] == approx((35 - 3, 84 - 35))  # (32, 49)
    assert r["stock"] == approx((8 - 5 + 6, 9 - 6 + 5))


def test_demand_truncated_at_zero(impl):
    # price_1 = 18 with A = 10: A - B p = -8 -> D = 0; nothing sold.
    r = Run(impl, (5.0, 5.0), demand_intercept=10.0).step((5.0, 0.0), (18.0, 0.0))
    assert r["demand"] == 0.0
    assert r["sold"] == 0.0


def test_one_step_lead_time(impl):
    # Both start empty and order 5 every step; D = 5.
    run = Run(impl, (0.0, 0.0))
    s1 = run.step((10.0, 5.0), (15.0, 5.0))
    assert (s1["shipped"], s1["sold"]) == (0.0, 0.0)  # raw material not yet arrived
    assert s1["stock"] == approx((5.0, 0.0))
    s2 = run.step((10.0, 5.0), (15.0, 5.0))
    assert s2["shipped"] == approx(5.0)
    assert s2["sold"] == 0.0  # goods shipped this step arrive after sales
    assert s2["stock"] == approx((5.0, 5.0))
    s3 = run.step((10.0, 5.0), (15.0, 5.0))
    assert s3["sold"] == approx(5.0)
    assert s3["reward"] == approx((47.5, 25.0))


def test_waste_above_storage_cap(impl):
    # cap 10. Step 1: stock (10, 0); ship 6 at price_0 8, buy 7 -> stock_0 = 10-6+7 = 11:
    # 1 unit over cap (cost 0.5). stock_1 = 6 (bought at 8).
    # A = 18 and price_1 = 18 (its cap) make D = 0: player 1 sells nothing.
    run = Run(impl, (10.0, 0.0), storage_cap=10.0, demand_intercept=18.0)
    s1 = run.step((8.0, 7.0), (18.0, 6.0))
    assert s1["wasted"] == approx((1.0, 0.0))
    assert s1["waste_cost"] == approx((0.5, 0.0))
    assert s1["stock"] == approx((10.0, 6.0))
    # Step 2: D = 18 - 18 = 0; ship 8 at price_0 6 -> stock_1 = 6 + 8 = 14: 4 over cap;
    # they are units of this shipment, bought at 6 -> waste cost 24. stock_0 = 10-8+0 = 2.
    s2 = run.step((6.0, 0.0), (18.0, 8.0))
    assert s2["sold"] == 0.0
    assert s2["wasted"] == approx((0.0, 4.0))
    assert s2["waste_cost"] == approx((0.0, 4 * 6.0))
    assert s2["stock"] == approx((2.0, 10.0))


def test_perishable_mode(impl):
    # Step 1: stock (6, 7); ship x = 4, D = 20 - 15 = 5 sold. Unsold old stock wasted:
    # player 0: 6 - 4 = 2 units at raw cost 0.5 = 1.0; player 1: 7 - 5 = 2 units of its
    # initial stock (not bought in the episode: cost 0). New arrivals carry over:
    # stock = (q_0, x) = (5, 4), player 1's 4 units bought at price_0 = 10.
    run = Run(impl, (6.0, 7.0), perishable=True)
    s1 = run.step((10.0, 5.0), (15.0, 4.0))
    assert s1["wasted"] == approx((2.0, 2.0))
    assert s1["waste_cost"] == approx((1.0, 0.0))
    assert s1["stock"] == approx((5.0, 4.0))
    # Step 2: D = 20 - 17 = 3 of 4 sold -> 1 unit bought at 10 wasted (cost 10);
    # player 0 ships 2 of 5 -> 3 wasted (cost 1.5). Stock = (q_0, x) = (0, 2).
    s2 = run.step((9.0, 0.0), (17.0, 2.0))
    assert s2["sold"] == approx(3.0)
    assert s2["wasted"] == approx((3.0, 1.0))
    assert s2["waste_cost"] == approx((1.5, 10.0))
    assert s2["stock"] == approx((0.0, 2.0))


def test_not_perishable_keeps_unsold_stock(impl):
    # Same first step without perishable: nothing wasted, unsold stock kept.
    s1 = Run(impl, (6.0, 7.0)).step((10.0, 5.0), (15.0, 4.0))
    assert s1["wasted"] == approx((0.0, 0.0))
    assert s1["stock"] == approx((6 - 4 + 5, 7 - 5 + 4))


def test_end_of_episode_leftovers_are_waste_and_ncr(impl):
    # max_cycles = 2, stock (5, 0), D = 5 every step.
    run = Run(impl, (5.0, 0.0), max_cycles=2)
    s1 = run.step((10.0, 4.0), (15.0, 5.0))
    # x = 5, y = 0; r = (50 - 2, 0 - 50); stock -> (4, 5), player 1's units at 10 each.
    assert not s1["truncated"]
    assert s1["reward"] == approx((48.0, -50.0))
    assert s1["leftover"] == approx((0.0, 0.0))
    s2 = run.step((8.0, 3.0), (15.0, 2.0))
    # x = 2, y = 5; r = (16 - 1.5, 75 - 16) = (14.5, 59); stock -> (4-2+3, 5-5+2) = (5, 2)
    # and both are leftovers at the end: player 0 at 0.5 -> 2.5; player 1's 2 units were
    # bought at price_0 = 8 this step -> 16.
    assert s2["truncated"]
    assert s2["reward"] == approx((14.5, 59.0))
    assert s2["leftover"] == approx((5.0, 2.0))
    assert s2["wasted"] == approx((5.0, 2.0))
    assert s2["waste_cost"] == approx((2.5, 16.0))
    assert s2["stock"] == approx((0.0, 0.0))
    # NCR_i = sum_t r_i - waste cost_i
    assert s2["ncr"] == approx((48.0 + 14.5 - 2.5, -50.0 + 59.0 - 16.0))


def test_leftover_valued_at_average_price_paid(impl):
    # Player 1 buys 4 at 10 then 4 at 6, sells nothing (A = 18, price_1 = 18: D = 0):
    # leftover 8 units that cost 40 + 24 = 64 in total -> waste cost 64 (8 per unit).
    run = Run(impl, (10.0, 0.0), max_cycles=2, demand_intercept=18.0)
    run.step((10.0, 0.0), (18.0, 4.0))
    s2 = run.step((6.0, 0.0), (18.0, 4.0))
    assert s2["leftover"] == approx((2.0, 8.0))
    assert s2["waste_cost"] == approx((2 * 0.5, 64.0))


def test_step_after_episode_end_raises(impl):
    run = Run(impl, (1.0, 1.0), max_cycles=1)
    assert run.step((1.0, 1.0), (1.0, 1.0))["truncated"]
    with pytest.raises(RuntimeError, match="reset"):
        run.step((1.0, 1.0), (1.0, 1.0))


# ---------------------------------------------------------------- actions
def test_out_of_range_actions_are_clipped_and_counted(impl):
    run = Run(impl, (10.0, 10.0))
    # player 0: price -1 -> 0, quantity 25 -> 20 (2 clipped); player 1: price 30 -> 18 (1).
    s1 = run.step((-1.0, 25.0), (30.0, 5.0))
    assert s1["clipped"] == (2, 1)
    assert s1["cost"][0] == approx(0.5 * 20)  # clipped quantity used
    assert s1["demand"] == approx(20 - 18)  # clipped price used
    s2 = run.step((5.0, 5.0), (5.0, -3.0))
    assert s2["clipped"] == (0, 1)
    assert s2["clipped_total"] == (2, 2)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("player", [0, 1])
def test_non_finite_action_names_the_player(impl, bad, player):
    run = Run(impl, (5.0, 5.0))
    acts = [(5.0, 5.0), (5.0, 5.0)]
    acts[player] = (5.0, bad)
    with pytest.raises(ValueError, match=f"player_{player}.*NaN or inf"):
        run.step(*acts)


def test_wrong_shape_and_dtype_scalar():
    g = ScalarSupplyChainGame()
    rng = np.random.default_rng(0)
    g.reset(rng)
    with pytest.raises(ValueError, match=r"player_1 action must have shape \(2,\)"):
        g.step(np.zeros(2), np.zeros(3), rng)
    with pytest.raises(TypeError, match="player_0 action must be real numbers"):
        g.step(np.array(["a", "b"]), np.zeros(2), rng)
    with pytest.raises(TypeError, match="player_0"):
        g.step(np.array([True, False]), np.zeros(2), rng)


def test_wrong_shape_and_dtype_batched():
    g = SupplyChainGame(batch_size=3)
    rng = np.random.default_rng(0)
    g.reset(rng)
    with pytest.raises(ValueError, match=r"shape \(3, 2, 2\)"):
        g.step(np.zeros((2, 2, 2)), rng)
    with pytest.raises(TypeError, match="dtype"):
        g.step(np.zeros((3, 2, 2), dtype=complex), rng)
    a = np.ones((3, 2, 2))
    a[2, 1, 0] = np.nan
    with pytest.raises(ValueError, match="player_1.*episode 2"):
        g.step(a, rng)


# ---------------------------------------------------------------- config
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("p_max", (10.0,)),
        ("p_max", (10.0, -1.0)),
        ("p_max", "ab"),
        ("q_max", -1.0),
        ("q_max", 0.0),
        ("raw_cost", -0.5),
        ("raw_cost", float("nan")),
        ("demand_intercept", -1.0),
        ("demand_slope", -1.0),
        ("demand_noise", -0.1),
        ("storage_cap", 0.0),
        ("perishable", "yes"),
        ("initial_stock", (5.0, 2.0)),
        ("initial_stock", (-1.0, 2.0)),
        ("initial_stock", (0.0, 30.0)),
        ("max_cycles", 0),
        ("max_cycles", 2.5),
        ("max_cycles", True),
    ],
)
def test_invalid_config_names_the_field(field, value):
    with pytest.raises(ValueError, match=f"SupplyChainConfig.{field}="):
        SupplyChainConfig(**{field: value})


def test_unknown_parameter_names_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown SupplyChain parameter\(s\) \['pmax'\].*p_max"):
        SupplyChainConfig.from_mapping({"pmax": (1, 2)})


def test_config_defaults_are_the_spec_table():
    cfg = SupplyChainConfig()
    assert cfg.p_max == (10.0, 18.0)
    assert (cfg.q_max, cfg.raw_cost, cfg.storage_cap, cfg.max_cycles) == (20.0, 0.5, 20.0, 40)
    assert (cfg.demand_intercept, cfg.demand_slope, cfg.demand_noise) == (20.0, 1.0, 1.0)
    assert cfg.perishable is False
    assert cfg.initial_stock == (0.0, 10.0)
    assert SupplyChainConfig(p_max=[5, 6]).p_max == (5.0, 6.0)  # lists from YAML are fine


# ---------------------------------------------------------------- batched vs scalar
@pytest.mark.parametrize("perishable", [False, True])
@pytest.mark.parametrize("seed", [0, 1])
def test_scalar_fast_path_matches_batched_game(perishable, seed):
    cfg = SupplyChainConfig(perishable=perishable, storage_cap=12.0, max_cycles=15)
    rng_a, rng_b = np.random.default_rng(seed), np.random.default_rng(seed)
    act_rng = np.random.default_rng(100 + seed)
    scalar, batched = ScalarSupplyChainGame(cfg), SupplyChainGame(cfg, 1)
    scalar.reset(rng_a)
    batched.reset(rng_b)
    assert scalar.stock == pytest.approx(batched.stock[0].tolist(), abs=0)
    for _ in range(cfg.max_cycles):
        # include out-of-range values so clipping is compared too
        a = act_rng.uniform(-2.0, 24.0, size=(2, 2))
        rs = scalar.step(a[0], a[1], rng_a)
        rb = batched.step(a[None], rng_b)
        for name in ("reward", "wasted", "waste_cost", "leftover", "unmet_demand", "ncr"):
            assert getattr(rs, name) == pytest.approx(getattr(rb, name)[0].tolist(), abs=1e-9)
        assert rs.clipped == tuple(rb.clipped[0].tolist())
        assert rs.demand == pytest.approx(rb.demand[0], abs=1e-12)
        assert rs.truncated == bool(rb.truncated[0])
        obs_b = batched.observations()[0]
        np.testing.assert_allclose(scalar.observation(0), obs_b[0], atol=1e-6)
        np.testing.assert_allclose(scalar.observation(1), obs_b[1], atol=1e-6)


def test_batch_rows_are_independent_episodes():
    """Row b of a noiseless batch equals a scalar run with row b's actions and stock."""
    cfg = SupplyChainConfig(demand_noise=0.0, max_cycles=10)
    b = 4
    rng = np.random.default_rng(5)
    stocks = rng.uniform(0, 10, size=(b, 2))
    actions = rng.uniform(0, 1, size=(cfg.max_cycles, b, 2, 2)) * cfg.action_high
    batched = SupplyChainGame(cfg, b)
    batched.reset(rng, initial_stock=stocks)
    rewards = np.array([batched.step(actions[t], rng).reward for t in range(cfg.max_cycles)])
    for row in range(b):
        g = ScalarSupplyChainGame(cfg)
        g.reset(rng, initial_stock=tuple(stocks[row]))
        for t in range(cfg.max_cycles):
            r = g.step(actions[t, row, 0], actions[t, row, 1], rng)
            assert r.reward == pytest.approx(rewards[t, row].tolist(), abs=1e-9)


def test_masked_reset_only_resets_chosen_rows():
    g = SupplyChainGame(SupplyChainConfig(max_cycles=5), batch_size=3)
    rng = np.random.default_rng(0)
    g.reset(rng)
    g.step(np.ones((3, 2, 2)), rng)
    stock_before = g.stock.copy()
    g.reset(rng, mask=np.array([False, True, False]))
    assert g.t.tolist() == [1, 0, 1]
    np.testing.assert_array_equal(g.stock[[0, 2]], stock_before[[0, 2]])
    assert g.cum_reward[1].tolist() == [0.0, 0.0]


def test_observations_scaled_clipped_and_private():
    cfg = SupplyChainConfig(demand_noise=0.0)
    g = SupplyChainGame(cfg, 1)
    rng = np.random.default_rng(0)
    g.reset(rng, initial_stock=(4.0, 6.0))
    g.step(np.array([[[8.0, 5.0], [9.0, 3.0]]]), rng)
    obs = g.observations()[0]
    # player 0: stock (4-3+5)/20, price 8/10, qty 5/20, raw cost 0.5/10, order 3/20
    np.testing.assert_allclose(obs[0], [6 / 20, 0.8, 0.25, 0.05, 0.15], atol=1e-6)
    # player 1: stock (6-6+3)/20 (D = 11 > 6), price 9/18, qty 3/20, paid 8/10, D 11/(A + 3 * 0)
    np.testing.assert_allclose(obs[1], [3 / 20, 0.5, 0.15, 0.8, 11 / 20], atol=1e-6)
    assert g.state().shape == (1, 10)
    np.testing.assert_array_equal(g.state()[0], obs.reshape(10))


def test_measure_throughput_reports_episode_steps():
    out = measure_throughput(batch_size=8, steps=50, seed=0)
    assert out["episode_steps_per_s"] == pytest.approx(out["batch_steps_per_s"] * 8)
    assert out["steps"] == 50 and out["seconds"] > 0


# ---------------------------------------------------------------- layering
def _imported_modules(path) -> set[str]:
    import ast

    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_pure_modules_import_only_numpy_and_stdlib():
    import sys
    from pathlib import Path

    import smpc_gym.envs.supply_chain as pkg

    root = Path(pkg.__file__).parent
    allowed = set(sys.stdlib_module_names) | {"numpy", "smpc_gym", "__future__"}
    for name in ("game.py", "policies.py", "__init__.py"):
        assert _imported_modules(root / name) <= allowed, name
    # pygame only inside rendering code, and there only lazily (not at module level)
    for name in ("game.py", "policies.py", "parallel.py", "__init__.py"):
        assert "pygame" not in _imported_modules(root / name), name
    import ast

    top = ast.parse((root / "render.py").read_text()).body
    assert not any(
        isinstance(n, (ast.Import, ast.ImportFrom)) and "pygame" in ast.unparse(n) for n in top
    )
