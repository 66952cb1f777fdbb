"""Secure federated DQN: ``fed_dqn`` with every data holder a real party process and the
averaging done by secure aggregation (only the aggregate is revealed), optional DP, and
the model repository.

Processes (:func:`smpc_gym.secure.runtime.launch_local`): rank 0 is the **coordinator**,
ranks ``1..holders`` are the **data holders**; holder ``h`` (rank ``h + 1``) owns exactly
what holder ``h`` owns in :class:`~smpc_gym.agents.fed_dqn.FedDQN` — its worlds, replay
buffer, optimiser and local learner, built from the same seeds — and none of it leaves
its process. One round, as in ``fed_dqn``:

1. every holder runs ``local_train`` for ``sync_every`` env steps from the global weights
   (ε from the *total* env steps, as in ``fed_dqn``);
2. it forms its update ``Δ_h = w_h − w_global``; with DP it clips ``Δ_h`` to ``clip_norm``
   and (``dp_mode="local"``) adds ``N(0, (σ·clip_norm)²)``;
3. :func:`~smpc_gym.federated.secure_agg.secure_weighted_mean` reveals to the coordinator
   only ``Σ n_h Δ_h / Σ n_h`` and ``Σ n_h`` (``n_h`` = samples; equal weights under DP);
   ``aggregation="plain"`` sends the updates in the clear instead (the baseline);
4. the coordinator adds central-DP noise if configured, applies the mean update (times
   the public server step size ``server_lr``, as in ``fed_dqn``), stores
   the global model in the repository (``<run_dir>/repository``) and broadcasts it; the
   holders load it. Training statistics (returns, cheese, deaths, loss) are also
   aggregated securely: the coordinator logs means over holders only.

Same seeds give the same computation as ``fed_dqn`` up to fixed-point rounding of the
aggregate (≤ 2⁻¹⁶ per element per round); ``tests/test_secure_fed_dqn.py`` measures the
final-weight MAE.

Training runs in segments (one process group per segment) of at most ``segment_steps``
total env steps, each ending where the runner wants its next checkpoint
(``--checkpoint-every``) or periodic evaluation (``--eval-every``); checkpoints are written
between segments, so ``--resume`` continues from the last checkpoint, and Ctrl-C lets the
current segment finish (at most ``--checkpoint-every`` steps), checkpoints and stops. Log
rows are computed in the coordinator every ``log_every`` steps and reach the runner at the
end of their segment. A holder that dies makes the segment fail within
``timeout_s`` with a :class:`~smpc_gym.secure.runtime.PartyError` naming it; the
repository keeps every completed round.

Multi-machine: ``--rank R --world-size holders+1 --rendezvous tcp://HOST:PORT`` per
process (rank 0 = coordinator); each process then runs its own party for the whole run.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from smpc_gym.agents.base import TrainHooks
from smpc_gym.agents.common.cadence import Cadence
from smpc_gym.agents.common.schedules import exploration_schedule
from smpc_gym.agents.common.vector_worlds import VectorWorlds
from smpc_gym.agents.dqn import DQNLearner, probe_spaces
from smpc_gym.agents.fed_dqn import Config as FedConfig
from smpc_gym.agents.fed_dqn import FedDQN

#: per-holder statistics that are averaged (securely) over holders for logging
STAT_KEYS = (
    "train/reward_per_step",
    "train/cheese_per_1000_steps",
    "train/deaths_per_1000_steps",
    "loss",
)


@dataclass
class Config(FedConfig):
    """Secure federated DQN: every :class:`smpc_gym.agents.fed_dqn.Config` field plus:

    Attributes:
        aggregation: ``"secure"`` (only the aggregate revealed) or ``"plain"``.
        dp_mode: ``"off"``, ``"local"`` or ``"central"`` (see :mod:`smpc_gym.federated.dp`).
        clip_norm: L2 bound on each holder's round update (DP on).
        noise_multiplier: σ; noise std is ``σ · clip_norm`` (DP on).
        dp_delta: δ at which ε is reported per holder.
        timeout_s: party timeout (a dead/hung party fails the others within it).
        provider: Beaver-triple provider: ``"TTP"`` (default; a dealer process that
            holds no data) or ``"tfp_player0_sees_all"`` (rank 0, the coordinator, makes
            the triples and could read what is opened with them); see
            :func:`smpc_gym.secure.runtime.resolve_provider`.
        segment_steps: at most this many total env steps per process group (segments
            also end at the runner's checkpoint and evaluation steps).
        repo_every: store the global model every this many rounds (and the last).
    """

    holders: int = 4
    aggregation: str = "secure"
    dp_mode: str = "off"
    clip_norm: float = 1.0
    noise_multiplier: float = 0.0
    dp_delta: float = 1e-5
    timeout_s: float = 120.0
    provider: str = "TTP"
    segment_steps: int = 100_000
    repo_every: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.holders < 2:
            raise ValueError(
                f"holders must be >= 2 for secure aggregation (with one holder the aggregate "
                f"is its update), got {self.holders!r}"
            )
        if self.aggregation not in ("secure", "plain"):
            raise ValueError(f"aggregation must be 'secure' or 'plain', got {self.aggregation!r}")
        self.dp_config()  # validates the DP fields
        if self.segment_steps < self.sync_every:
            raise ValueError(
                f"segment_steps ({self.segment_steps}) must be >= sync_every ({self.sync_every})"
            )
        if self.repo_every < 1:
            raise ValueError(f"repo_every must be >= 1, got {self.repo_every!r}")

    def dp_config(self) -> Any:
        """The :class:`smpc_gym.federated.dp.DPConfig` these fields describe."""
        from smpc_gym.federated.dp import DPConfig

        return DPConfig(
            mode=self.dp_mode,
            clip_norm=self.clip_norm,
            noise_multiplier=self.noise_multiplier,
            delta=self.dp_delta,
        )


SecureFedDQNConfig = Config


def _party(ctx: Any, job: dict[str, Any]) -> dict[str, Any]:
    """One party of a segment: coordinator (rank 0) or holder ``rank - 1``."""
    from smpc_gym.federated.fedavg import flatten_state, unflatten_state
    from smpc_gym.federated.repository import ModelRepository
    from smpc_gym.federated.rounds import aggregate_updates, holder_update
    from smpc_gym.federated.secure_agg import COORDINATOR, secure_sum

    cfg: Any = job["config"]
    dp = cfg.dp_config()
    template = job["global"]
    d = flatten_state(template).numel()
    global_vec = flatten_state(template).to(torch.float32)
    holder = ctx.rank - 1
    learner: Any = None
    worlds: Any = None
    mean_stats: Any = None
    if ctx.rank != COORDINATOR:
        obs_dim, num_actions = job["spaces"]
        learner = DQNLearner(cfg, obs_dim, num_actions, job["seed"] + 1000 * holder)
        learner.load_state_dict(job["learners"][holder])
        worlds = VectorWorlds(job["env_kwargs"], cfg.num_envs, job["world_seeds"][holder])
        noise_gen = torch.Generator().manual_seed(job["seed"] * 7919 + holder)
    repo = ModelRepository(job["repo_dir"]) if ctx.rank == COORDINATOR else None
    schedule = exploration_schedule(cfg, job["run_steps"])
    env_steps, rounds = job["env_steps"], job["rounds"]
    logs: list[tuple[int, dict[str, float]]] = []
    next_log = (env_steps // cfg.log_every + 1) * cfg.log_every
    comm_bytes = 0
    try:
        while env_steps < job["target_steps"]:
            eps = schedule(env_steps)
            delta, weight, samples = None, None, None
            if learner is not None:
                taken = float(learner.local_train(worlds, cfg.sync_every, epsilon=eps))
                new = flatten_state(learner.get_weights())
                delta, weight, _ = holder_update(new, global_vec, taken, dp, noise_gen)
                samples = torch.tensor([taken], dtype=torch.float64)
            ctx.reset_comm_stats()
            agg = aggregate_updates(
                ctx,
                delta,
                weight,
                numel=d,
                aggregation=cfg.aggregation,
                dp=dp,
                central_noise=torch.Generator().manual_seed(job["seed"] * 104729 + rounds),
                extra=samples,  # Σ samples (= the weights without DP): the steps taken
                extra_numel=1,
            )
            comm_bytes = ctx.comm_stats()["bytes"]
            if agg is not None:  # the coordinator
                assert agg.extra is not None
                # server step (fed_dqn's server_lr): a public scaling of the revealed mean
                step = cfg.server_lr * agg.mean
                global_vec = (global_vec.to(torch.float64) + step).to(torch.float32)
                steps_vec = torch.tensor([float(agg.extra[0])])
            else:
                steps_vec = torch.zeros(1)
            ctx.comm.broadcast(global_vec, COORDINATOR)  # publish the new global model
            ctx.comm.broadcast(steps_vec, COORDINATOR)
            env_steps += int(round(float(steps_vec[0])))
            rounds += 1
            if learner is not None:
                learner.set_weights(unflatten_state(global_vec, template))
            # round statistics: only their mean over holders is revealed
            if env_steps >= next_log or env_steps >= job["target_steps"]:
                stats = None
                if worlds is not None:
                    st = worlds.stats()
                    worlds.reset_stats()
                    st["loss"] = learner.last_loss if np.isfinite(learner.last_loss) else 0.0
                    ret = st.get("train/episode_return")
                    vals = [float(st[k]) for k in STAT_KEYS]
                    vals += [0.0 if ret is None else float(ret), 0.0 if ret is None else 1.0]
                    stats = torch.tensor(vals, dtype=torch.float64)
                mean_stats = secure_sum(ctx, stats, numel=len(STAT_KEYS) + 2)
                if ctx.rank == COORDINATOR:
                    row = {
                        k: float(v) / cfg.holders
                        for k, v in zip(STAT_KEYS, mean_stats[:4], strict=True)
                    }
                    if float(mean_stats[-1]) > 0.5:  # holders that finished an episode
                        row["train/episode_return"] = float(mean_stats[-2] / mean_stats[-1])
                    row.update(epsilon=eps, rounds=float(rounds), comm_bytes_round=comm_bytes)
                    logs.append((env_steps, row))
                next_log = (env_steps // cfg.log_every + 1) * cfg.log_every
            if repo is not None and (
                rounds % cfg.repo_every == 0 or env_steps >= job["target_steps"]
            ):
                repo.save(rounds, unflatten_state(global_vec, template), {"env_steps": env_steps})
    finally:
        if worlds is not None:
            worlds.close()
    result: dict[str, Any] = {"env_steps": env_steps, "rounds": rounds}
    if ctx.rank == COORDINATOR:
        result["global"] = unflatten_state(global_vec, template)
        result["logs"] = logs
    else:
        result["learner"] = learner.state_dict()
    return result


class SecureFedDQN(FedDQN):
    """``fed_dqn`` with holders as party processes and secure aggregation (see module)."""

    name: ClassVar[str] = "secure_fed_dqn"
    envs: ClassVar[tuple[str, ...]] = ("greedy_mouse",)
    Config: ClassVar[type] = Config

    def __init__(
        self, config: SecureFedDQNConfig, env_kwargs: Mapping[str, Any], seed: int
    ) -> None:
        super().__init__(config, env_kwargs, seed)
        self.repo_dir: str | None = None
        self.privacy: dict[int, dict[str, float]] = {}

    def _repo_dir(self, hooks: TrainHooks) -> str:
        if self.repo_dir is None:
            run_dir = getattr(hooks, "run_dir", None)
            if run_dir is not None:
                self.repo_dir = str(Path(run_dir) / "repository")
            else:
                self.repo_dir = tempfile.mkdtemp(prefix="secure_fed_dqn_repo_")
        return self.repo_dir

    def train(self, total_steps: int, hooks: TrainHooks) -> None:
        """Secure FedAvg rounds, one process group per segment, until ``total_steps``."""
        from smpc_gym.federated.repository import ModelRepository
        from smpc_gym.secure.launch import run_parties

        cfg: Any = self.config
        if self.run_steps is None:
            self.set_run_length(total_steps)
        repo_dir = self._repo_dir(hooks)
        repo = ModelRepository(repo_dir)
        if repo.latest_round() is None:
            repo.save(0, self.global_learner.get_weights(), {"env_steps": self.env_steps})
        world_seeds = [int(self._world_rng.integers(2**31)) for _ in self.learners]
        world = cfg.holders + 1
        opts = dict(self.launch_options)
        cadence = Cadence(hooks, cfg.log_every, self.env_steps, total_steps)
        while self.env_steps < total_steps:
            # A segment (one process group) ends where the runner wants a checkpoint or an
            # evaluation, so both happen at the requested cadence, not every segment_steps.
            target = (
                total_steps
                if "rank" in opts
                else min(cadence.next_due(self.env_steps), self.env_steps + cfg.segment_steps)
            )
            job = {
                "config": cfg,
                "env_kwargs": self.env_kwargs,
                "seed": self.seed,
                "spaces": probe_spaces(self.env_kwargs),
                "learners": [lr.state_dict() for lr in self.learners],
                "global": self.global_learner.get_weights(),
                "world_seeds": world_seeds,
                "env_steps": self.env_steps,
                "rounds": self.rounds,
                "target_steps": target,
                "run_steps": self.run_steps,
                "repo_dir": repo_dir,
            }
            results = run_parties(
                _party,
                world,
                (job,),
                opts,
                timeout_s=cfg.timeout_s,
                provider=cfg.provider,
                algo=f"secure_fed_dqn with holders={cfg.holders}",
            )
            for r, res in results.items():
                if r > 0:
                    self.learners[r - 1].load_state_dict(res["learner"])
            first = next(iter(results.values()))
            self.env_steps, self.rounds = int(first["env_steps"]), int(first["rounds"])
            last: dict[str, float] = {}
            if 0 in results:
                self.global_learner.set_weights(results[0]["global"])
                self._account()
                for step, row in results[0]["logs"]:
                    if step < self.env_steps:
                        hooks.log(step, {**row, "dp_epsilon": self._epsilon()})
                    else:  # the segment's last row: logged below with any evaluation
                        last = {**row, "dp_epsilon": self._epsilon()}
            # next segment's worlds continue with fresh seeds, drawn like fed_dqn's
            world_seeds = [int(self._world_rng.integers(2**31)) for _ in self.learners]
            if cadence.after_step(self.env_steps, last.copy, log=bool(last)):
                break

    def _account(self) -> None:
        from smpc_gym.federated.dp import PrivacyAccountant

        cfg: Any = self.config
        acc = PrivacyAccountant(cfg.dp_config(), range(cfg.holders))
        for _ in range(self.rounds):
            acc.step()
        self.privacy = acc.report()

    def _epsilon(self) -> float:
        if not self.privacy:
            return math.inf
        return float(self.privacy[0]["epsilon"])
