"""Federated rounds across real processes: coordinator, holders, repository, faults.

:func:`run_federated` drives the federated protocol with real party processes
(:func:`smpc_gym.secure.runtime.launch_local`): rank 0 is the **coordinator**, ranks
``1..N`` the **data holders** (see :mod:`smpc_gym.federated.secure_agg` for why).
One round (steps 3 and 4 are :func:`holder_update` and :func:`aggregate_updates`, which
``secure_fed_dqn`` calls too):

1. the coordinator publishes the global weights (a plaintext broadcast: the global
   model is public to the holders);
2. each holder runs ``local_update(holder_id, global_state, round, generator)`` — a
   module-level function the caller provides (e.g. a few DQN steps on its own worlds) —
   and forms its update ``Δ_i = new − global``;
3. optional DP on the holder (:mod:`smpc_gym.federated.dp`): clip to ``C``; in local
   mode add ``N(0, (σC)²)``;
4. aggregation: ``"secure"`` (only ``Σ w_i Δ_i`` and ``Σ w_i`` revealed, to the
   coordinator) or ``"plain"`` (the holders send ``Δ_i`` to the coordinator in the clear,
   the baseline); with DP the weights are equal (fixed sensitivity), otherwise ``w_i`` is
   the holder's sample count; central DP adds the noise once to the revealed sum;
5. the coordinator applies the mean update and stores the model and the round's metrics
   in the :class:`~smpc_gym.federated.repository.ModelRepository` (the only writer).

Faults: a holder that dies, raises or hangs breaks the gloo group; every party errors out
within ``timeout_s`` and :func:`launch_local` raises :class:`PartyError` naming it. The
round in progress is never written (the repository keeps the last completed round). Then,
per ``on_holder_failure``: ``"abandon"`` re-raises (as :class:`RoundAbandoned`), or
``"drop"`` relaunches the group *without the failed holder(s)* from the repository's last
round and carries on, as long as at least ``min_holders`` remain.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from smpc_gym.federated.dp import DPConfig, PrivacyAccountant, add_gaussian_noise, privatize_local
from smpc_gym.federated.fedavg import flatten_state, unflatten_state
from smpc_gym.federated.repository import ModelRepository
from smpc_gym.federated.secure_agg import (
    COORDINATOR,
    prepare_secure_sum,
    secure_sum,
    secure_weighted_mean,
)
from smpc_gym.secure.comm import gather_tensors
from smpc_gym.secure.runtime import (
    DEFAULT_PROVIDER,
    PartyConfig,
    PartyContext,
    PartyError,
    launch_local,
)

__all__ = [
    "AGGREGATIONS",
    "FAILURE_POLICIES",
    "Aggregate",
    "FederatedResult",
    "RoundAbandoned",
    "RoundsConfig",
    "aggregate_updates",
    "holder_update",
    "run_federated",
]

AGGREGATIONS = ("secure", "plain")
FAILURE_POLICIES = ("abandon", "drop")

#: ``local_update(holder_id, global_state, round, generator) -> (new_state, n_samples)``
LocalUpdate = Callable[
    [int, dict[str, torch.Tensor], int, torch.Generator], tuple[Mapping[str, torch.Tensor], float]
]


class RoundAbandoned(PartyError):
    """A round was abandoned because a holder failed (``on_holder_failure="abandon"``)."""


@dataclass
class RoundsConfig:
    """Settings of :func:`run_federated`.

    Attributes:
        holders: number of data holders N (>= 2; ids ``1..N``).
        rounds: number of federated rounds.
        aggregation: ``"secure"`` or ``"plain"``.
        on_holder_failure: ``"abandon"`` or ``"drop"`` (see the module docstring).
        min_holders: fewest holders a round may run with under ``"drop"`` (>= 2: with one
            holder the "aggregate" is its update).
        timeout_s: party timeout (a dead/hung party fails the others within this).
        provider: Beaver-triple provider of the process group (the secure sum itself
            uses no triples); default the dealer, see
            :func:`smpc_gym.secure.runtime.resolve_provider`.
        seed: root seed; holder ``i`` in round ``r`` gets ``torch.Generator`` seeded from
            ``(seed, i, r)``, the coordinator's central-DP noise from ``(seed, 0, r)``.
        dp: differential-privacy settings.
    """

    holders: int = 4
    rounds: int = 5
    aggregation: str = "secure"
    on_holder_failure: str = "abandon"
    min_holders: int = 2
    timeout_s: float = 60.0
    provider: str = DEFAULT_PROVIDER
    seed: int = 0
    dp: DPConfig = field(default_factory=DPConfig)

    def __post_init__(self) -> None:
        if isinstance(self.dp, Mapping):
            self.dp = DPConfig(**self.dp)
        if self.holders < 2:
            raise ValueError(f"holders must be >= 2, got {self.holders}")
        if self.rounds < 0:
            raise ValueError(f"rounds must be >= 0, got {self.rounds}")
        if self.aggregation not in AGGREGATIONS:
            raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {self.aggregation!r}")
        if self.on_holder_failure not in FAILURE_POLICIES:
            raise ValueError(
                f"on_holder_failure must be one of {FAILURE_POLICIES}, "
                f"got {self.on_holder_failure!r}"
            )
        if not 2 <= self.min_holders <= self.holders:
            raise ValueError(f"min_holders must be in [2, holders], got {self.min_holders}")


@dataclass
class FederatedResult:
    """What :func:`run_federated` returns."""

    state: dict[str, torch.Tensor]  #: the final global model
    rounds_done: int
    holders: list[int]  #: holders still active at the end
    dropped: list[int]  #: holders dropped after failures
    privacy: dict[int, dict[str, float]]  #: per-holder {"epsilon", "delta", "rounds"}
    metrics: list[dict[str, Any]]  #: per-round metrics from the repository
    failures: list[str] = field(default_factory=list)  #: PartyError messages survived


def holder_update(
    new: torch.Tensor, global_vec: torch.Tensor, samples: float, dp: DPConfig, gen: torch.Generator
) -> tuple[torch.Tensor, float, float]:
    """A holder's round update (steps 2-3), in its own process: ``Δ = new − global`` (both
    flat, in float64), clipped and, in local DP mode, noised from ``gen``
    (:func:`~smpc_gym.federated.dp.privatize_local`). Returns ``(Δ, weight, norm)``:
    ``weight`` is ``samples`` without DP and 1 with it (fixed sensitivity), ``norm`` the
    L2 norm of ``Δ`` before clipping."""
    delta = new.to(torch.float64) - global_vec.to(torch.float64)
    delta, norm = privatize_local(delta, dp, gen)
    return delta, (1.0 if dp.mode != "off" else float(samples)), norm


@dataclass
class Aggregate:
    """What the coordinator learns from a round's aggregation (step 4)."""

    mean: torch.Tensor  #: ``Σ w_i Δ_i / Σ w_i`` in float64, central-DP noise included
    total_weight: float  #: ``Σ w_i``
    extra: torch.Tensor | None  #: ``Σ extra_i`` when the holders sent extras


def aggregate_updates(
    ctx: PartyContext,
    delta: torch.Tensor | None,
    weight: float | None,
    *,
    numel: int,
    aggregation: str,
    dp: DPConfig,
    central_noise: torch.Generator | None = None,
    extra: torch.Tensor | None = None,
    extra_numel: int = 0,
) -> Aggregate | None:
    """Step 4 of a round, a collective every party calls (holders with their ``delta``,
    ``weight`` and optional ``extra`` vector; the coordinator with None and the sizes).

    ``aggregation="secure"``: :func:`~smpc_gym.federated.secure_agg.secure_weighted_mean`
    reveals to the coordinator only ``Σ w_i Δ_i / Σ w_i`` and ``Σ w_i``, and a second
    secure sum only ``Σ extra_i``. ``"plain"``: every holder's ``[w_i Δ_i, w_i, extra_i]``
    reaches the coordinator in the clear (the baseline). Central DP
    (``dp.mode="central"``, σ > 0) then adds ``N(0, (σC)²)`` to the weighted sum on the
    coordinator, from ``central_noise``. Returns the :class:`Aggregate` on the
    coordinator, None elsewhere.
    """
    if aggregation == "secure":
        out = secure_weighted_mean(ctx, delta, weight, numel=numel)
        extra_sum = secure_sum(ctx, extra, numel=extra_numel) if extra_numel else None
    else:
        mine = torch.zeros(numel + 1 + extra_numel, dtype=torch.float64)
        if delta is not None and weight is not None:
            w = torch.tensor([weight], dtype=torch.float64)
            parts_ = [delta * weight, w]
            if extra_numel:
                if extra is None:
                    raise ValueError(
                        f"extra_numel is {extra_numel} but this holder passed no extra"
                    )
                parts_.append(extra.to(torch.float64))
            mine = torch.cat(parts_)
        parts = gather_tensors(ctx, mine, COORDINATOR)  # every update in the clear
        out, extra_sum = None, None
        if parts is not None:
            s = torch.stack(parts[1:]).sum(0)
            out = (s[:numel] / s[numel], float(s[numel]))
            extra_sum = s[numel + 1 :] if extra_numel else None
    if out is None:
        return None
    mean, total_w = out
    if dp.mode == "central" and dp.noise_multiplier > 0:
        if central_noise is None:
            raise ValueError("central DP needs the coordinator's central_noise generator")
        mean = add_gaussian_noise(mean * total_w, dp.noise_std, central_noise) / total_w
    return Aggregate(mean=mean, total_weight=total_w, extra=extra_sum)


def _round_generator(seed: int, who: int, round_: int) -> torch.Generator:
    import numpy as np

    state = np.random.SeedSequence([seed, who, round_]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 31 | int(state[1]) >> 1)


def _party(
    ctx: PartyContext,
    local_update: LocalUpdate,
    holder_ids: list[int],
    start_round: int,
    cfg: RoundsConfig,
    repo_dir: str,
    template: dict[str, torch.Tensor],
) -> dict[str, Any]:
    """One party of a federated run (coordinator at rank 0, holders at 1..N)."""
    d = flatten_state(template).numel()
    repo = ModelRepository(repo_dir) if ctx.rank == COORDINATOR else None
    if repo is not None:
        global_vec = flatten_state(repo.load(start_round)).to(torch.float32)
    else:
        global_vec = torch.zeros(d, dtype=torch.float32)
    for r in range(start_round + 1, cfg.rounds + 1):
        t0 = time.perf_counter()
        ctx.comm.broadcast(global_vec, COORDINATOR)  # 1. publish (in place on holders)
        if cfg.aggregation == "secure":
            # offline phase of this round's secure sum (the data-independent mask), before
            # local training rather than on the aggregation's critical path
            prepare_secure_sum(ctx, d + 1)  # secure_weighted_mean sums [wΔ, w]
        delta, weight, norm = None, None, 0.0
        if ctx.rank != COORDINATOR:
            hid = holder_ids[ctx.rank - 1]
            gen = _round_generator(cfg.seed, hid, r)
            g_state = unflatten_state(global_vec, template)
            new_state, samples = local_update(hid, g_state, r, gen)  # 2. local training
            # 3. clip / local noise
            delta, weight, norm = holder_update(
                flatten_state(new_state), global_vec, samples, cfg.dp, gen
            )
        t1 = time.perf_counter()
        ctx.reset_comm_stats()
        agg = aggregate_updates(  # 4. aggregate
            ctx,
            delta,
            weight,
            numel=d,
            aggregation=cfg.aggregation,
            dp=cfg.dp,
            central_noise=_round_generator(cfg.seed, 0, r),
        )
        agg_s = time.perf_counter() - t1
        stats = ctx.comm_stats()
        norms = gather_tensors(ctx, torch.tensor([norm], dtype=torch.float64), COORDINATOR)
        if ctx.rank == COORDINATOR:  # 5. apply and store
            assert agg is not None and repo is not None and norms is not None
            global_vec = (global_vec.to(torch.float64) + agg.mean).to(torch.float32)
            repo.save(
                r,
                unflatten_state(global_vec, template),
                metrics={
                    "holders": list(holder_ids),
                    "aggregation": cfg.aggregation,
                    "round_seconds": time.perf_counter() - t0,
                    "aggregation_seconds": agg_s,
                    "coordinator_bytes": stats["bytes"],
                    "mean_update_norm": float(torch.stack(norms[1:]).mean()),
                },
            )
    return {"rank": ctx.rank}


def run_federated(
    local_update: LocalUpdate,
    init_state: Mapping[str, torch.Tensor],
    config: RoundsConfig,
    repo_dir: str | Path,
    *,
    run_config: Any = None,
) -> FederatedResult:
    """Run ``config.rounds`` federated rounds (resuming from ``repo_dir`` if it has any).

    Args:
        local_update: module-level (picklable) function
            ``(holder_id, global_state, round, generator) -> (new_state, n_samples)``.
        init_state: the public initial model (stored as round 0 if the repository is empty).
        config: rounds, holders, aggregation, DP, fault policy.
        repo_dir: the model repository directory.
        run_config: hashed into the repository manifest (defaults to ``config``).

    Raises:
        RoundAbandoned: a holder failed and the policy is ``"abandon"`` (or too few
            holders would remain); the repository still holds every completed round.
    """
    repo = ModelRepository(repo_dir, config=run_config if run_config is not None else config)
    template = {k: v.detach().clone() for k, v in init_state.items()}
    if repo.latest_round() is None:
        repo.save(0, template, metrics={"holders": []})
    active = list(range(1, config.holders + 1))
    dropped: list[int] = []
    failures: list[str] = []
    while (repo.latest_round() or 0) < config.rounds:
        start = repo.latest_round() or 0
        n = len(active)
        pcfg = PartyConfig(world_size=n + 1, timeout_s=config.timeout_s, provider=config.provider)
        try:
            launch_local(
                _party,
                n + 1,
                (local_update, active, start, config, str(repo_dir), template),
                config=pcfg,
            )
        except PartyError as exc:
            failed = [active[r - 1] for r in exc.ranks if 1 <= r <= n]
            if config.on_holder_failure == "abandon" or not failed:
                raise RoundAbandoned(
                    f"round {(repo.latest_round() or 0) + 1} abandoned: {exc}", exc.ranks
                ) from exc
            remaining = [h for h in active if h not in failed]
            if len(remaining) < config.min_holders:
                raise RoundAbandoned(
                    f"round {(repo.latest_round() or 0) + 1} abandoned: only {len(remaining)} "
                    f"holder(s) left after dropping {failed} (min_holders={config.min_holders})"
                    f": {exc}",
                    exc.ranks,
                ) from exc
            failures.append(str(exc).splitlines()[0])
            dropped += failed
            active = remaining
    acc = PrivacyAccountant(config.dp, range(1, config.holders + 1))
    metrics = repo.metrics()
    for m in metrics:
        if m["round"] > 0:
            acc.step(m["holders"])
    privacy = acc.report()
    if config.dp.mode == "off":
        privacy = {
            h: {**v, "epsilon": math.inf if v["rounds"] else 0.0} for h, v in privacy.items()
        }
    return FederatedResult(
        state=repo.load(),
        rounds_done=repo.latest_round() or 0,
        holders=active,
        dropped=dropped,
        privacy=privacy,
        metrics=metrics,
        failures=failures,
    )
