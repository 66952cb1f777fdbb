"""SupplyChain game dynamics: pure, batched numpy (no Gymnasium / PettingZoo / pygame).

Two players trade one good. Player 0 (upstream) buys raw material at ``raw_cost`` per
unit and sells to player 1 (downstream) at ``price_0``; player 1 sells to consumers at
``price_1``. :class:`SupplyChainGame` runs ``batch_size`` independent episodes at once:
every array has a leading batch dimension ``B``; player arrays are ``(B, 2)`` with column
0 for player 0 and column 1 for player 1. Actions are ``(B, 2, 2)``:
``actions[b, i] = (price_i, quantity_i)``.

One step (spec ``supply_chain.md``), for each episode ``b``::

    D   = max(0, A - B_slope * price_1 + sigma * eps),  eps ~ N(0, 1)  (demand)
    x   = min(quantity_1, stock_0)                                     (shipped)
    y   = min(D, stock_1)                                               (sold)
    r_0 = price_0 * x - raw_cost * quantity_0
    r_1 = price_1 * y - price_0 * x
    stock_0 <- stock_0 - x + quantity_0      (purchases arrive after sales:
    stock_1 <- stock_1 - y + x                a one-step lead time)
    waste:  perishable -> the unsold old stock (stock_0 - x, stock_1 - y) is discarded
                          before the new units arrive;
            then stock above storage_cap is discarded;
            after the final step (t = max_cycles - 1) all leftover stock is discarded.

Waste cost: player 0 pays ``raw_cost`` per wasted unit. Player 1 pays the ``price_0`` it
paid for the unit:

* over-cap waste is valued at this step's ``price_0``: the stock carried over is at most
  ``storage_cap`` (it was capped last step), so the overflow is always part of the
  shipment that just arrived — exact;
* perishable and end-of-episode waste (units from earlier steps) is valued at
  ``unit_cost_1``, the moving weighted-average price_0 of the units on hand: keeping
  ``k`` newly arrived units sets ``unit_cost_1 <- (held * unit_cost_1 + k * price_0) /
  (held + k)``; selling or wasting units leaves it unchanged. This is exact whenever the
  units on hand were bought at one price (always in perishable mode after step 1);
  player 1's initial stock was not bought in the episode and counts at unit cost 0.

Normalized cumulative revenue: ``NCR_i = sum_t r_i - sum_t waste_cost_i`` (rewards do
not include waste costs; agents that want them add them).

Out-of-range actions are clipped into ``[0, p_max[i]] x [0, q_max]`` and counted;
NaN / inf actions raise ``ValueError`` naming the player.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Names of the players, index i <-> ``PLAYER_NAMES[i]``.
PLAYER_NAMES: tuple[str, str] = ("player_0", "player_1")

#: Observation feature names per player (5 each), in order.
OBS_FEATURES: tuple[tuple[str, ...], tuple[str, ...]] = (
    ("stock", "last_price", "last_quantity", "raw_cost", "last_order_received"),
    ("stock", "last_price", "last_quantity", "last_unit_cost_paid", "last_demand"),
)
OBS_DIM = 5


def _pair(a: np.ndarray | float, b: np.ndarray | float, n: int) -> np.ndarray:
    """``(n, 2)`` array with columns ``a`` and ``b`` (cheaper than ``np.stack`` at small n)."""
    out = np.empty((n, 2))
    out[:, 0] = a
    out[:, 1] = b
    return out


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )


@dataclass(frozen=True)
class SupplyChainConfig:
    """Every parameter of the SupplyChain game (defaults: the paper's Appendix I setting).

    Attributes:
        p_max: price caps ``(p_max_0, p_max_1)`` of player 0 and player 1; each > 0.
        q_max: order-quantity cap of both players; > 0.
        raw_cost: raw-material price per unit paid by player 0; >= 0.
        demand_intercept: ``A`` in ``D = max(0, A - B * price_1 + sigma * eps)``; >= 0.
        demand_slope: ``B``; >= 0.
        demand_noise: ``sigma`` (``eps ~ N(0, 1)``); >= 0.
        storage_cap: stock above this is discarded as waste after every step; > 0.
        perishable: if True, the unsold stock on hand is wasted at the end of every step
            (units that arrive in the step carry over).
        initial_stock: ``(low, high)``: each player's initial stock is drawn
            ``U(low, high)`` from the env's generator; ``0 <= low <= high <= storage_cap``.
        max_cycles: steps per episode (then truncation); integer >= 1.

    Invalid values raise ``ValueError`` naming the field, the bad value and what is allowed.
    """

    p_max: tuple[float, float] = (10.0, 18.0)
    q_max: float = 20.0
    raw_cost: float = 0.5
    demand_intercept: float = 20.0
    demand_slope: float = 1.0
    demand_noise: float = 1.0
    storage_cap: float = 20.0
    perishable: bool = False
    initial_stock: tuple[float, float] = (0.0, 10.0)
    max_cycles: int = 40

    def __post_init__(self) -> None:
        def bad(name: str, value: Any, allowed: str) -> ValueError:
            return ValueError(f"SupplyChainConfig.{name}={value!r} is invalid: {allowed}")

        def pair(name: str, value: Any) -> tuple[float, float]:
            if isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
                raise bad(name, value, "expected a sequence of 2 numbers")
            if len(value) != 2:
                raise bad(name, value, f"expected exactly 2 numbers, got {len(value)}")
            if not all(_is_real(v) and math.isfinite(v) for v in value):
                raise bad(name, value, "both entries must be finite numbers")
            return (float(value[0]), float(value[1]))

        p_max = pair("p_max", self.p_max)
        if min(p_max) <= 0:
            raise bad("p_max", self.p_max, "both price caps must be > 0")
        object.__setattr__(self, "p_max", p_max)

        for name, strict in (
            ("q_max", True),
            ("raw_cost", False),
            ("demand_intercept", False),
            ("demand_slope", False),
            ("demand_noise", False),
            ("storage_cap", True),
        ):
            value = getattr(self, name)
            if not _is_real(value) or not math.isfinite(value):
                raise bad(name, value, "must be a finite number")
            if (strict and value <= 0) or value < 0:
                raise bad(name, value, "must be > 0" if strict else "must be >= 0")
            object.__setattr__(self, name, float(value))

        if not isinstance(self.perishable, (bool, np.bool_)):
            raise bad("perishable", self.perishable, "must be True or False")
        object.__setattr__(self, "perishable", bool(self.perishable))

        low, high = pair("initial_stock", self.initial_stock)
        if not 0 <= low <= high <= self.storage_cap:
            raise bad(
                "initial_stock",
                self.initial_stock,
                f"need 0 <= low <= high <= storage_cap ({self.storage_cap:g})",
            )
        object.__setattr__(self, "initial_stock", (low, high))

        mc = self.max_cycles
        if not isinstance(mc, (int, np.integer)) or isinstance(mc, (bool, np.bool_)):
            raise bad("max_cycles", mc, "must be an integer >= 1")
        if mc < 1:
            raise bad("max_cycles", mc, "must be an integer >= 1")
        object.__setattr__(self, "max_cycles", int(mc))

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """Names of all config fields (the valid keyword arguments / preset keys)."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_mapping(cls, params: Mapping[str, Any]) -> SupplyChainConfig:
        """Build a config from ``{field: value}``; unknown keys raise ``ValueError``
        naming them and the valid ones (lists are accepted for the pair fields)."""
        valid = cls.field_names()
        unknown = sorted(set(params) - set(valid))
        if unknown:
            raise ValueError(
                f"unknown SupplyChain parameter(s) {unknown}; valid: {', '.join(valid)}"
            )
        return cls(**dict(params))

    def replace(self, **changes: Any) -> SupplyChainConfig:
        """A copy with ``changes`` applied (validated like the constructor)."""
        return SupplyChainConfig.from_mapping({**dataclasses.asdict(self), **changes})

    @property
    def demand_scale(self) -> float:
        """Scale of the demand feature: ``A + 3 * sigma`` (``1`` if that is 0)."""
        scale = self.demand_intercept + 3.0 * self.demand_noise
        return scale if scale > 0 else 1.0

    @property
    def action_high(self) -> np.ndarray:
        """``(2, 2)`` upper action bounds: row i = ``(p_max[i], q_max)``."""
        return np.array(
            [[self.p_max[0], self.q_max], [self.p_max[1], self.q_max]], dtype=np.float64
        )


@dataclass
class StepResult:
    """Everything one batched step produced (arrays have leading batch dim ``B``).

    Player arrays are ``(B, 2)`` (column i = player i). ``revenue`` is
    ``(price_0 * shipped, price_1 * sold)``, ``cost`` is
    ``(raw_cost * quantity_0, price_0 * shipped)``; ``reward = revenue - cost``.
    ``unmet_demand`` is ``(quantity_1 - shipped, D - sold)``: each player's demand it
    could not serve (player 0's demand is player 1's order). ``wasted`` counts all units discarded in the step (perishable + over-cap + end of
    episode leftovers), of which ``leftover`` are the end-of-episode leftovers.
    ``clipped`` is the number of action components (0-2) clipped this step,
    ``clipped_total`` the episode's running count. ``ncr`` is
    ``cum_reward - cum_waste_cost``, final once ``truncated``.
    """

    demand: np.ndarray
    shipped: np.ndarray
    sold: np.ndarray
    unmet_demand: np.ndarray
    revenue: np.ndarray
    cost: np.ndarray
    reward: np.ndarray
    wasted: np.ndarray
    leftover: np.ndarray
    waste_cost: np.ndarray
    clipped: np.ndarray
    clipped_total: np.ndarray
    cum_reward: np.ndarray
    cum_waste: np.ndarray
    cum_waste_cost: np.ndarray
    ncr: np.ndarray
    truncated: np.ndarray


class SupplyChainGame:
    """``batch_size`` SupplyChain episodes stepped together (see the module docstring).

    State arrays (public, read them; mutate only through :meth:`reset` / :meth:`step`):
    ``stock`` (B, 2), ``last_price`` (B, 2), ``last_quantity`` (B, 2), ``last_demand`` (B,),
    ``unit_cost_1`` (B,), ``t`` (B,) step counter, and the episode sums ``cum_reward``,
    ``cum_revenue``, ``cum_waste``, ``cum_waste_cost``, ``clipped_total`` (B, 2).
    """

    def __init__(self, config: SupplyChainConfig | None = None, batch_size: int = 1) -> None:
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size={batch_size!r} is invalid: must be an integer >= 1")
        self.config = config if config is not None else SupplyChainConfig()
        self.batch_size = int(batch_size)
        b = self.batch_size
        self.stock = np.zeros((b, 2))
        self.last_price = np.zeros((b, 2))
        self.last_quantity = np.zeros((b, 2))
        self.last_demand = np.zeros(b)
        self.unit_cost_1 = np.zeros(b)
        self.t = np.zeros(b, dtype=np.int64)
        self.cum_reward = np.zeros((b, 2))
        self.cum_revenue = np.zeros((b, 2))
        self.cum_waste = np.zeros((b, 2))
        self.cum_waste_cost = np.zeros((b, 2))
        self.clipped_total = np.zeros((b, 2), dtype=np.int64)
        self._started = False

    # ------------------------------------------------------------------ reset
    def reset(
        self,
        rng: np.random.Generator,
        initial_stock: np.ndarray | tuple[float, float] | None = None,
        mask: np.ndarray | None = None,
    ) -> None:
        """Start new episodes (all, or those where ``mask`` is True).

        Initial stocks are drawn ``U(low, high)`` from ``rng`` (always ``(B, 2)`` draws,
        so the generator stream does not depend on ``mask`` or overrides);
        ``initial_stock`` (shape ``(2,)`` or ``(B, 2)``, each in ``[0, storage_cap]``)
        overrides the draw.
        """
        cfg = self.config
        b = self.batch_size
        low, high = cfg.initial_stock
        stock = rng.uniform(low, high, size=(b, 2))
        if initial_stock is not None:
            override = np.broadcast_to(np.asarray(initial_stock, dtype=np.float64), (b, 2))
            if (
                not np.all(np.isfinite(override))
                or np.any(override < 0)
                or np.any(override > cfg.storage_cap)
            ):
                raise ValueError(
                    f"initial_stock={initial_stock!r} is invalid: each must be in "
                    f"[0, storage_cap={cfg.storage_cap:g}]"
                )
            stock = override.copy()
        rows = slice(None) if mask is None else np.asarray(mask, dtype=bool)
        self.stock[rows] = stock[rows]
        for arr in (
            self.last_price,
            self.last_quantity,
            self.last_demand,
            self.unit_cost_1,
            self.t,
            self.cum_reward,
            self.cum_revenue,
            self.cum_waste,
            self.cum_waste_cost,
            self.clipped_total,
        ):
            arr[rows] = 0
        self._started = True

    # ------------------------------------------------------------------ inputs
    def check_actions(self, actions: Any) -> tuple[np.ndarray, np.ndarray]:
        """Validate ``actions`` (``(B, 2, 2)``, or ``(2, 2)`` when ``B == 1``) and clip them.

        Returns ``(clipped float64 actions (B, 2, 2), clip counts (B, 2))``.
        Raises ``TypeError`` for a non-numeric dtype, ``ValueError`` for a wrong shape or
        NaN / inf (naming the player).
        """
        a = np.asarray(actions)
        if a.dtype.kind not in "fiu":
            raise TypeError(
                f"actions must be real numbers (float or int dtype), got dtype {a.dtype}"
            )
        b = self.batch_size
        if a.shape == (2, 2) and b == 1:
            a = a.reshape(1, 2, 2)
        if a.shape != (b, 2, 2):
            raise ValueError(
                f"actions must have shape ({b}, 2, 2) = (batch, player, [price, quantity]),"
                f" got {a.shape}"
            )
        a = a.astype(np.float64, copy=False)
        finite = np.isfinite(a)
        if not finite.all():
            bad = ~finite.all(axis=2)  # (B, 2)
            player = int(np.argmax(bad.any(axis=0)))
            row = int(np.argmax(bad[:, player]))
            raise ValueError(
                f"{PLAYER_NAMES[player]} action {a[row, player].tolist()} contains NaN or inf"
                f" (episode {row}); actions must be finite (price, quantity)"
            )
        high = self.config.action_high
        clipped = np.minimum(np.maximum(a, 0.0), high)
        counts = np.count_nonzero(clipped != a, axis=2)
        return clipped, counts

    # ------------------------------------------------------------------ step
    def step(self, actions: Any, rng: np.random.Generator) -> StepResult:
        """Advance every episode by one step; ``rng`` draws the demand noise (``B`` normals).

        Raises ``RuntimeError`` if :meth:`reset` was not called or an episode is over.
        """
        if not self._started:
            raise RuntimeError("call reset(rng) before step()")
        cfg = self.config
        if np.any(self.t >= cfg.max_cycles):
            raise RuntimeError(
                "an episode is over (t == max_cycles); reset it (reset(rng, mask=...))"
            )
        a, counts = self.check_actions(actions)
        price = a[:, :, 0]
        qty = a[:, :, 1]
        p0, p1 = price[:, 0], price[:, 1]
        q0, q1 = qty[:, 0], qty[:, 1]
        s0, s1 = self.stock[:, 0], self.stock[:, 1]

        eps = rng.standard_normal(self.batch_size)
        demand = np.maximum(
            cfg.demand_intercept - cfg.demand_slope * p1 + cfg.demand_noise * eps, 0.0
        )
        shipped = np.minimum(q1, s0)
        sold = np.minimum(demand, s1)

        n = self.batch_size
        raw = cfg.raw_cost
        revenue = _pair(p0 * shipped, p1 * sold, n)
        cost = _pair(raw * q0, p0 * shipped, n)
        reward = revenue - cost

        held = _pair(s0 - shipped, s1 - sold, n)  # unsold old stock
        if cfg.perishable:
            wasted = held
            waste_cost = _pair(raw * held[:, 0], self.unit_cost_1 * held[:, 1], n)
            held = np.zeros_like(held)
        else:
            wasted = np.zeros_like(held)
            waste_cost = np.zeros_like(held)

        # arrivals (one-step lead time). The stock carried over is <= storage_cap, so any
        # overflow comes from the units that just arrived: player 1 paid price_0 for them.
        new_stock = held + _pair(q0, shipped, n)
        over = np.maximum(new_stock - cfg.storage_cap, 0.0)
        new_stock = new_stock - over
        wasted = wasted + over
        waste_cost = waste_cost + over * _pair(raw, p0, n)
        # player 1's moving-average unit cost over the units it keeps
        held1 = held[:, 1]
        kept1 = shipped - over[:, 1]
        total1 = held1 + kept1
        uc1 = np.divide(
            held1 * self.unit_cost_1 + kept1 * p0,
            total1,
            out=self.unit_cost_1.copy(),
            where=total1 > 0,
        )
        unit_cost_new = _pair(raw, uc1, n)

        t_next = self.t + 1
        truncated = t_next >= cfg.max_cycles
        leftover = np.where(truncated[:, None], new_stock, 0.0)
        if truncated.any():
            new_stock = new_stock - leftover
            wasted = wasted + leftover
            waste_cost = waste_cost + leftover * unit_cost_new

        # commit
        self.stock = new_stock
        self.unit_cost_1 = uc1
        self.last_price = price.copy()
        self.last_quantity = qty.copy()
        self.last_demand = demand
        self.t = t_next
        self.cum_reward = self.cum_reward + reward
        self.cum_revenue = self.cum_revenue + revenue
        self.cum_waste = self.cum_waste + wasted
        self.cum_waste_cost = self.cum_waste_cost + waste_cost
        self.clipped_total = self.clipped_total + counts
        return StepResult(
            demand=demand,
            shipped=shipped,
            sold=sold,
            unmet_demand=_pair(q1 - shipped, demand - sold, n),
            revenue=revenue,
            cost=cost,
            reward=reward,
            wasted=wasted,
            leftover=leftover,
            waste_cost=waste_cost,
            clipped=counts,
            clipped_total=self.clipped_total,
            cum_reward=self.cum_reward,
            cum_waste=self.cum_waste,
            cum_waste_cost=self.cum_waste_cost,
            ncr=self.cum_reward - self.cum_waste_cost,
            truncated=truncated,
        )

    def play(self, policy: Callable[[np.ndarray], Any], rng: np.random.Generator) -> StepResult:
        """Reset every episode from ``rng`` and play them all to the end with ``policy``.

        ``policy`` maps :meth:`observations` ``(B, 2, 5)`` to actions ``(B, 2, 2)``; the
        returned last :class:`StepResult` holds each episode's totals (``cum_reward``,
        ``ncr``, ...). The game draws stocks and demand noise from ``rng`` independently of
        the actions, so policies played from equally seeded generators face the same
        episodes.
        """
        self.reset(rng)
        while True:
            result = self.step(np.asarray(policy(self.observations()), dtype=np.float64), rng)
            if result.truncated.all():
                return result

    # ------------------------------------------------------------------ views
    def observations(self) -> np.ndarray:
        """``(B, 2, 5)`` float32 private features per player, scaled and clipped to [0, 1].

        player 0: ``[stock_0 / storage_cap, price_0(t-1) / p_max_0, quantity_0(t-1) / q_max,
        raw_cost / p_max_0, quantity_1(t-1) / q_max]``;
        player 1: ``[stock_1 / storage_cap, price_1(t-1) / p_max_1, quantity_1(t-1) / q_max,
        price_0(t-1) / p_max_0, D(t-1) / demand_scale]``. "t-1" values are 0 after reset.
        """
        cfg = self.config
        b = self.batch_size
        obs = np.empty((b, 2, OBS_DIM))
        obs[:, :, 0] = self.stock / cfg.storage_cap
        obs[:, 0, 1] = self.last_price[:, 0] / cfg.p_max[0]
        obs[:, 1, 1] = self.last_price[:, 1] / cfg.p_max[1]
        obs[:, :, 2] = self.last_quantity / cfg.q_max
        obs[:, 0, 3] = cfg.raw_cost / cfg.p_max[0]
        obs[:, 0, 4] = self.last_quantity[:, 1] / cfg.q_max
        obs[:, 1, 3] = self.last_price[:, 0] / cfg.p_max[0]
        obs[:, 1, 4] = self.last_demand / cfg.demand_scale
        np.clip(obs, 0.0, 1.0, out=obs)
        return obs.astype(np.float32)

    def state(self) -> np.ndarray:
        """``(B, 10)`` float32 joint view ``[obs_0, obs_1]`` (explicit data exchange)."""
        return self.observations().reshape(self.batch_size, 2 * OBS_DIM)


@dataclass(slots=True)
class ScalarStep:
    """One step of :class:`ScalarSupplyChainGame`; fields as in :class:`StepResult`, but
    plain Python floats, player values as ``(player_0, player_1)`` tuples."""

    demand: float
    shipped: float
    sold: float
    unmet_demand: tuple[float, float]
    revenue: tuple[float, float]
    cost: tuple[float, float]
    reward: tuple[float, float]
    wasted: tuple[float, float]
    leftover: tuple[float, float]
    waste_cost: tuple[float, float]
    clipped: tuple[int, int]
    clipped_total: tuple[int, int]
    ncr: tuple[float, float]
    truncated: bool


class ScalarSupplyChainGame:
    """One episode with plain Python floats: the fast path behind the PettingZoo env.

    Same equations, same generator draws (initial stocks: ``uniform(size=2)``; demand
    noise: one ``standard_normal()`` per step) as :class:`SupplyChainGame` with
    ``batch_size=1``; ``tests/test_supply_chain_game.py`` checks the two agree step by step.
    A numpy step costs ~100 us at batch 1, this ~10 us.
    """

    def __init__(self, config: SupplyChainConfig | None = None) -> None:
        self.config = config if config is not None else SupplyChainConfig()
        self.stock = [0.0, 0.0]
        self.last_price = [0.0, 0.0]
        self.last_quantity = [0.0, 0.0]
        self.last_demand = 0.0
        self.unit_cost_1 = 0.0
        self.t = 0
        self.cum_reward = [0.0, 0.0]
        self.cum_revenue = [0.0, 0.0]
        self.cum_waste = [0.0, 0.0]
        self.cum_waste_cost = [0.0, 0.0]
        self.clipped_total = [0, 0]
        self._started = False

    def reset(
        self, rng: np.random.Generator, initial_stock: tuple[float, float] | None = None
    ) -> None:
        """Start a new episode; initial stocks from ``rng`` unless ``initial_stock`` given."""
        cfg = self.config
        low, high = cfg.initial_stock
        drawn = rng.uniform(low, high, size=2)
        if initial_stock is not None:
            vals = [float(v) for v in np.asarray(initial_stock, dtype=np.float64).reshape(2)]
            if not all(math.isfinite(v) and 0 <= v <= cfg.storage_cap for v in vals):
                raise ValueError(
                    f"initial_stock={initial_stock!r} is invalid: each must be in "
                    f"[0, storage_cap={cfg.storage_cap:g}]"
                )
            self.stock = vals
        else:
            self.stock = [float(drawn[0]), float(drawn[1])]
        self.last_price = [0.0, 0.0]
        self.last_quantity = [0.0, 0.0]
        self.last_demand = 0.0
        self.unit_cost_1 = 0.0
        self.t = 0
        self.cum_reward = [0.0, 0.0]
        self.cum_revenue = [0.0, 0.0]
        self.cum_waste = [0.0, 0.0]
        self.cum_waste_cost = [0.0, 0.0]
        self.clipped_total = [0, 0]
        self._started = True

    def check_action(self, player: int, action: Any) -> tuple[float, float, int]:
        """Validate player ``player``'s action ``(price, quantity)`` (shape ``(2,)``, real
        dtype, finite) and clip it; returns ``(price, quantity, n_clipped)``."""
        name = PLAYER_NAMES[player]
        a = action if type(action) is np.ndarray else np.asarray(action)
        if a.dtype.kind not in "fiu":
            raise TypeError(
                f"{name} action must be real numbers (float or int dtype), got dtype {a.dtype}"
            )
        if a.shape != (2,):
            raise ValueError(
                f"{name} action must have shape (2,) = (price, quantity), got {a.shape}"
            )
        price = float(a[0])
        qty = float(a[1])
        if not (math.isfinite(price) and math.isfinite(qty)):
            raise ValueError(
                f"{name} action [{price}, {qty}] contains NaN or inf; actions must be finite"
            )
        cfg = self.config
        p_hi = cfg.p_max[player]
        n = 0
        if price < 0.0:
            price, n = 0.0, n + 1
        elif price > p_hi:
            price, n = p_hi, n + 1
        if qty < 0.0:
            qty, n = 0.0, n + 1
        elif qty > cfg.q_max:
            qty, n = cfg.q_max, n + 1
        return price, qty, n

    def step(self, action_0: Any, action_1: Any, rng: np.random.Generator) -> ScalarStep:
        """Advance the episode by one step (see the module docstring for the equations)."""
        if not self._started:
            raise RuntimeError("call reset(rng) before step()")
        cfg = self.config
        if self.t >= cfg.max_cycles:
            raise RuntimeError("the episode is over (t == max_cycles); call reset(rng)")
        p0, q0, c0 = self.check_action(0, action_0)
        p1, q1, c1 = self.check_action(1, action_1)
        s0, s1 = self.stock

        eps = float(rng.standard_normal())
        demand = cfg.demand_intercept - cfg.demand_slope * p1 + cfg.demand_noise * eps
        demand = demand if demand > 0.0 else 0.0
        shipped = q1 if q1 < s0 else s0
        sold = demand if demand < s1 else s1
        rev0, rev1 = p0 * shipped, p1 * sold
        cost0, cost1 = cfg.raw_cost * q0, p0 * shipped
        r0, r1 = rev0 - cost0, rev1 - cost1

        h0, h1 = s0 - shipped, s1 - sold
        w0 = w1 = wc0 = wc1 = 0.0
        if cfg.perishable:
            w0, w1 = h0, h1
            wc0, wc1 = h0 * cfg.raw_cost, h1 * self.unit_cost_1
            h0 = h1 = 0.0
        cap = cfg.storage_cap
        n0, n1 = h0 + q0, h1 + shipped
        if n0 > cap:  # overflow: units that just arrived (carried stock is <= cap)
            w0 += n0 - cap
            wc0 += (n0 - cap) * cfg.raw_cost
            n0 = cap
        if n1 > cap:
            w1 += n1 - cap
            wc1 += (n1 - cap) * p0
            n1 = cap
        kept1 = n1 - h1
        uc1 = (h1 * self.unit_cost_1 + kept1 * p0) / n1 if n1 > 0 else self.unit_cost_1
        t_next = self.t + 1
        truncated = t_next >= cfg.max_cycles
        l0 = l1 = 0.0
        if truncated:
            l0, l1 = n0, n1
            w0 += l0
            w1 += l1
            wc0 += l0 * cfg.raw_cost
            wc1 += l1 * uc1
            n0 = n1 = 0.0

        self.stock = [n0, n1]
        self.unit_cost_1 = uc1
        self.last_price = [p0, p1]
        self.last_quantity = [q0, q1]
        self.last_demand = demand
        self.t = t_next
        cr, cv, cw, cwc, ct = (
            self.cum_reward,
            self.cum_revenue,
            self.cum_waste,
            self.cum_waste_cost,
            self.clipped_total,
        )
        self.cum_reward = [cr[0] + r0, cr[1] + r1]
        self.cum_revenue = [cv[0] + rev0, cv[1] + rev1]
        self.cum_waste = [cw[0] + w0, cw[1] + w1]
        self.cum_waste_cost = [cwc[0] + wc0, cwc[1] + wc1]
        self.clipped_total = [ct[0] + c0, ct[1] + c1]
        return ScalarStep(
            demand=demand,
            shipped=shipped,
            sold=sold,
            unmet_demand=(q1 - shipped, demand - sold),
            revenue=(rev0, rev1),
            cost=(cost0, cost1),
            reward=(r0, r1),
            wasted=(w0, w1),
            leftover=(l0, l1),
            waste_cost=(wc0, wc1),
            clipped=(c0, c1),
            clipped_total=(self.clipped_total[0], self.clipped_total[1]),
            ncr=(
                self.cum_reward[0] - self.cum_waste_cost[0],
                self.cum_reward[1] - self.cum_waste_cost[1],
            ),
            truncated=truncated,
        )

    def observation(self, player: int) -> np.ndarray:
        """Player ``player``'s 5 private features, float32 in [0, 1] (see
        :meth:`SupplyChainGame.observations`)."""
        cfg = self.config
        if player == 0:
            vals = (
                self.stock[0] / cfg.storage_cap,
                self.last_price[0] / cfg.p_max[0],
                self.last_quantity[0] / cfg.q_max,
                cfg.raw_cost / cfg.p_max[0],
                self.last_quantity[1] / cfg.q_max,
            )
        else:
            vals = (
                self.stock[1] / cfg.storage_cap,
                self.last_price[1] / cfg.p_max[1],
                self.last_quantity[1] / cfg.q_max,
                self.last_price[0] / cfg.p_max[0],
                self.last_demand / cfg.demand_scale,
            )
        return np.array([0.0 if v < 0.0 else 1.0 if v > 1.0 else v for v in vals], np.float32)


def measure_throughput(
    batch_size: int = 1024,
    steps: int = 2000,
    seed: int = 0,
    config: SupplyChainConfig | None = None,
) -> dict[str, float]:
    """Time the batched game under uniform random actions (reset when episodes end).

    Returns ``{"batch_size", "steps", "seconds", "batch_steps_per_s",
    "episode_steps_per_s"}`` where ``episode_steps_per_s = batch_size * steps / seconds``
    (each batched step advances ``batch_size`` episodes by one step). Action sampling
    is done before timing starts, so the figure is the game's own cost.
    """
    cfg = config if config is not None else SupplyChainConfig()
    game = SupplyChainGame(cfg, batch_size)
    rng = np.random.default_rng(seed)
    pool = rng.uniform(0.0, 1.0, size=(16, batch_size, 2, 2)) * cfg.action_high
    game.reset(rng)
    start = time.perf_counter()
    for i in range(steps):
        result = game.step(pool[i % 16], rng)
        if result.truncated[0]:
            game.reset(rng)
    seconds = time.perf_counter() - start
    return {
        "batch_size": float(batch_size),
        "steps": float(steps),
        "seconds": seconds,
        "batch_steps_per_s": steps / seconds,
        "episode_steps_per_s": batch_size * steps / seconds,
    }
