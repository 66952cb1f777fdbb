"""Secure MADDPG's party process: :class:`Party` (one player's shares of every network and
its own plaintext data; every reveal goes through :meth:`Party.reveal`), the per-party
share files (:func:`share_file`, :func:`load_share_file`), the start-up agreement
(:func:`run_facts`) and :func:`party_main`, the loop each party process runs, with the
adapters that carry its log rows and checkpoints to the launcher.

:func:`party_main` is spawned by reference, so it stays a module-level function here.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import math
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

import smpc_gym.agents.secure_maddpg.config  # noqa: F401 - the qualified name in annotations
from smpc_gym.agents import maddpg
from smpc_gym.agents.base import NullHooks
from smpc_gym.agents.common.cadence import Cadence
from smpc_gym.agents.common.ou_noise import OUNoise
from smpc_gym.agents.secure_maddpg.config import (
    ACTION_DIM,
    N_FEATURES,
    N_PLAYERS,
    FixedPointOverflow,
)
from smpc_gym.agents.secure_maddpg.update import (
    SecureNets,
    make_optimisers,
    secure_update,
    share_batch,
    warm_start_optimisers,
)
from smpc_gym.envs.supply_chain.remote import PlayerView
from smpc_gym.storage.payload import load_torch, save_torch


def _seeds(seed: int) -> np.ndarray:
    """The same split as :class:`maddpg.MADDPG` (so both start from identical weights)."""
    return np.random.SeedSequence(int(seed)).generate_state(8)


def _atomic_save(obj: Any, path: Path) -> None:
    """Write a share file: atomic, verified (SHA-256 header), see :mod:`smpc_gym.storage`."""
    save_torch(path, obj)


def share_file(share_dir: str | Path, rank: int, step: int) -> Path:
    """Where party ``rank`` keeps its shares at env step ``step``."""
    return Path(share_dir) / f"party{rank}" / f"shares-{int(step):012d}.pt"


def load_share_file(share_dir: str | Path, rank: int, step: int) -> dict[str, Any]:
    """Party ``rank``'s share checkpoint of step ``step``, verified before it is loaded.

    Raises:
        smpc_gym.storage.IntegrityError: the file is damaged or unverified (the message
            names it); ``FileNotFoundError`` if it is missing.
    """
    return load_torch(share_file(share_dir, rank, step))


class Party:
    """Player ``rank``'s process state: shares of all networks, its own plaintext data.

    Args:
        crypten: the initialised CrypTen module (from the runtime's ``PartyContext``).
        rank: 0 or 1 (= player index).
        cfg: the run's :class:`~smpc_gym.agents.secure_maddpg.config.Config`.
        env_kwargs: the private game's parameters (for the action caps and pre-training).
        seed: the run's public seed.
        init_nets: optional plaintext ``(actors, critics)`` to start from (only entry
            ``rank`` of each is read); default: the same init as plaintext MADDPG.
        pretrain_hooks: hooks that see the plaintext pre-training's log rows (progress).
        init_opts: with ``init_nets`` from a pre-training by Adam, its (public) optimisers,
            for ``cfg.adam_warm_start`` (the pipeline's own pre-training passes them itself).
    """

    def __init__(
        self,
        crypten: Any,
        rank: int,
        cfg: smpc_gym.agents.secure_maddpg.config.Config,
        env_kwargs: Mapping[str, Any],
        seed: int,
        init_nets: tuple[Sequence[Any], Sequence[Any]] | None = None,
        action_high: Sequence[torch.Tensor] | None = None,
        pretrain_hooks: Any = None,
        init_opts: maddpg.Optimisers | None = None,
    ) -> None:
        self.crypten = crypten
        self.rank = int(rank)
        self.cfg = cfg
        self.seed = int(seed)
        seeds = _seeds(seed)
        high = list(action_high) if action_high is not None else maddpg.action_caps(env_kwargs)
        self.high = high[self.rank]
        self.inv_high = 1.0 / self.high
        #: the pre-trained actors' weights (public: learned from public data only), for
        #: the end-of-run table's "pre-trained" row; None without pre-training
        self.pretrained_actors: list[dict[str, np.ndarray]] | None = None
        self.pretrained_step: int | None = None  # the pre-training snapshot kept (public)
        pretrain_opts = init_opts  # public, for the secure Adams' warm start
        actors: Sequence[Any]
        critics: Sequence[Any]
        if init_nets is None:
            actors, critics, pretrain_opts = self._initial_plain_nets(
                env_kwargs, seeds, high, pretrain_hooks
            )
        else:
            actors, critics = init_nets
        self.nets = SecureNets.share(actors, critics, cfg.hidden, self.rank)
        self.opts = make_optimisers(cfg)
        #: whether the secure Adams continue the pre-training's moments (adam_warm_start)
        self.warm_started = (
            cfg.adam_warm_start
            and pretrain_opts is not None
            and warm_start_optimisers(self.opts, self.nets, pretrain_opts)
        )
        self.replay = maddpg.PlayerReplay(cfg.buffer_size)
        self.noise = OUNoise(
            ACTION_DIM,
            cfg.ou_theta,
            cfg.ou_sigma,
            torch.Generator().manual_seed(int(seeds[2 + self.rank])),
        )
        self.sampler = torch.Generator().manual_seed(int(seeds[4]))
        self.env_steps = 0
        self.episodes = 0
        self.updates = 0
        self.overflow_redos = 0  # wrap-arounds repaired by a redo (see update)
        # (shares before the update, its rows) of the last two updates, for a redo
        self._recent: collections.deque[tuple[dict[str, Any], torch.Tensor]] = collections.deque(
            maxlen=2
        )
        self.reveal_log: list[dict[str, Any]] = []

    def _initial_plain_nets(
        self,
        env_kwargs: Mapping[str, Any],
        seeds: np.ndarray,
        high: Sequence[torch.Tensor],
        pretrain_hooks: Any = None,
    ) -> tuple[list[Any], list[Any], maddpg.Optimisers | None]:
        """(actors, critics, the pre-training's optimisers or None)."""
        cfg = self.cfg
        if cfg.pretrain_steps > 0:
            # The paper's pipeline: plaintext MADDPG on simulated (public) data. Deterministic
            # (one torch thread, seeded generators), so both parties get the same networks.
            # Its progress (public: the simulated market's steps and returns) is reported.
            sim = maddpg.pretrain_for(cfg, env_kwargs, self.seed, hooks=pretrain_hooks)
            self.pretrained_actors = [
                {k: v.numpy().copy() for k, v in a.state_dict().items()} for a in sim.nets.actors
            ]
            self.pretrained_step = int(sim.env_steps)
            return list(sim.nets.actors), list(sim.nets.critics), sim.opts
        sh = maddpg.DataSharing("ede")
        actors: list[Any] = [None] * N_PLAYERS
        critics: list[Any] = [None] * N_PLAYERS
        i = self.rank  # only this player's networks are created here
        gen = torch.Generator().manual_seed(int(seeds[i]))
        actors[i] = maddpg.make_actor(sh.actor_in_dim, cfg.hidden, high[i], gen)
        critics[i] = maddpg.make_critic(sh.critic_in_dim, cfg.hidden, gen)
        return actors, critics, None

    # -- reveals (every plaintext output of the protocol goes through here) --------------
    def reveal(self, x: Any, dst: int | None, what: str) -> torch.Tensor | None:
        """``x.get_plain_text(dst)``, recorded in :attr:`reveal_log` (None if not for us)."""
        value = x.get_plain_text(dst=dst)
        mine = dst is None or dst == self.rank
        self.reveal_log.append({"what": what, "dst": dst, "received": mine})
        return value if mine else None

    # -- acting -------------------------------------------------------------------------
    def secure_act(self, own_obs: np.ndarray) -> torch.Tensor:
        """Both actors on the shared 10 features; returns this player's action in [0, 1]²."""
        from smpc_gym.secure.mpc_nn import (
            ACT_FRAC_BITS,
            fast_dispatch,
            forward_stacked,
            share_rounded,
        )
        from smpc_gym.secure.trunc import exact_truncation

        c = self.crypten
        feats = []
        with fast_dispatch(), exact_truncation():  # no local truncation anywhere
            for i in range(N_PLAYERS):
                x = torch.as_tensor(own_obs, dtype=torch.float32).reshape(1, N_FEATURES)
                x_i = x if i == self.rank else torch.zeros_like(x)
                feats.append(share_rounded(x_i, i, ACT_FRAC_BITS))
            s = c.cat(feats, dim=1)
            (a,), _ = forward_stacked([self.nets.actors], [c.stack([s] * N_PLAYERS)])
        mine = None
        for i in range(N_PLAYERS):
            v = self.reveal(a[i], dst=i, what=f"action_{i}")
            if v is not None:
                mine = v.reshape(ACTION_DIM)
        assert mine is not None
        return mine

    # -- updating -------------------------------------------------------------------------
    def update(self, indices: torch.Tensor) -> dict[str, float]:
        """One secure update on the rows ``indices`` of both players' buffers.

        A two-party truncation that wraps around corrupts a share by ~2^47 and shows as a
        huge revealed loss in this update or the next. Then both parties (they see the
        same revealed losses, so they decide alike) restore their shares from before the
        previous update and redo the last two updates on the same rows, with fresh
        triples and masks, up to ``cfg.overflow_redos`` times; nothing new is revealed
        (the redone updates reveal their losses like any update). The losses returned,
        and logged, for the previous update stay those of its first attempt.
        """
        if not (self.cfg.reveal_losses and self.cfg.overflow_redos):
            return self._update_once(indices)  # no redo possible: no copies to keep
        self._recent.append((self._weights_state(), indices))
        try:
            return self._update_once(indices)
        except FixedPointOverflow as exc:
            error = exc
        start, rows = self._recent[0][0], [idx for _, idx in self._recent]
        for attempt in range(1, self.cfg.overflow_redos + 1):
            if self.rank == 0:
                print(
                    f"secure_maddpg: {error}; redoing the last {len(rows)} update(s) "
                    f"(attempt {attempt} of {self.cfg.overflow_redos})",
                    file=sys.stderr,
                    flush=True,
                )
            self._load_weights_state(start)
            self._recent.clear()
            self.overflow_redos += 1
            try:
                for idx in rows:
                    self._recent.append((self._weights_state(), idx))
                    out = self._update_once(idx)
            except FixedPointOverflow as exc:
                error = exc
                continue
            return out
        raise error

    def _update_once(self, indices: torch.Tensor) -> dict[str, float]:
        from smpc_gym.secure.comm import phase
        from smpc_gym.secure.mpc_nn import fast_dispatch
        from smpc_gym.secure.trunc import exact_truncation

        own = self.replay.get(indices)
        with fast_dispatch(), exact_truncation():  # no local truncation anywhere
            with phase("input"):
                b = share_batch(self.crypten, self.rank, own, self.inv_high, len(indices))
            losses = secure_update(self.crypten, self.nets, self.opts, b, self.cfg)
        self.updates += 1
        out: dict[str, float] = {}
        for k, v in losses.items():
            with phase("reveal"):
                plain = self.reveal(v, dst=None, what=k)
            assert plain is not None
            for i in range(N_PLAYERS):
                val = float(plain[i])
                if not math.isfinite(val) or abs(val) > 1e6:
                    raise FixedPointOverflow(
                        f"{k}_{i} = {val} after update {self.updates}: the fixed-point ring "
                        "wrapped around (lower critic_grad_scale/actor_grad_scale or the "
                        "learning rates); the last checkpoint is intact"
                    )
                out[f"{k}_{i}"] = val
        return out

    def _weights_state(self) -> dict[str, Any]:
        """Copies of this party's shares of all networks and optimiser states."""
        actor_opt, critic_opt = self.opts
        return {
            "updates": self.updates,
            "nets": {k: m.shares() for k, m in self.nets.modules().items()},
            "actor_opt": actor_opt.state_shares(),
            "critic_opt": critic_opt.state_shares(),
        }

    def _load_weights_state(self, state: Mapping[str, Any]) -> None:
        self.updates = int(state["updates"])
        for k, m in self.nets.modules().items():
            m.load_shares(state["nets"][k])
        actor_opt, critic_opt = self.opts
        actor_opt.load_state_shares(state["actor_opt"], self.nets.actors.weights[0])
        critic_opt.load_state_shares(state["critic_opt"], self.nets.critics.weights[0])

    # -- checkpoints ----------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """This party's share checkpoint: its shares, its own data, counters."""
        return {
            "rank": self.rank,
            "env_steps": self.env_steps,
            "episodes": self.episodes,
            **self._weights_state(),
            "replay": self.replay.state_dict(),
            "noise": self.noise.state_dict(),
            "sampler": self.sampler.get_state(),
        }

    def load(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state` (the other party must load its file of the same step)."""
        if int(state["rank"]) != self.rank:
            raise ValueError(f"share file of party {state['rank']} given to party {self.rank}")
        self.env_steps = int(state["env_steps"])
        self.episodes = int(state["episodes"])
        self._load_weights_state(state)
        self._recent.clear()
        self.replay.load_state_dict(state["replay"])
        self.noise.load_state_dict(state["noise"])
        self.sampler.set_state(state["sampler"])

    def save(self, share_dir: str | Path) -> Path:
        """Atomically write :meth:`state` to :func:`share_file`."""
        path = share_file(share_dir, self.rank, self.env_steps)
        _atomic_save(self.state(), path)
        return path

    def final_weights(self) -> dict[str, Any] | None:
        """Reveal each player's own actor and critic to it (``reveal_final_weights="owner"``)."""
        if self.cfg.reveal_final_weights != "owner":
            return None
        mine: dict[str, Any] = {}
        for name in ("actors", "critics"):
            mlp = getattr(self.nets, name)
            for i in range(N_PLAYERS):
                layers = None
                with _RevealRecorder(self, f"{name[:-1]}_{i}_weights", dst=i):
                    layers = mlp.reveal_net(i, dst=i)
                if layers is not None:
                    # numpy, not tensors: torch shares tensors sent between processes
                    # through shared memory that dies with this process
                    mine[name[:-1]] = [(w.numpy().copy(), b.numpy().copy()) for w, b in layers]
        return mine


class _RevealRecorder:
    def __init__(self, party: Party, what: str, dst: int) -> None:
        self.party, self.what, self.dst = party, what, dst

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> None:
        self.party.reveal_log.append(
            {"what": self.what, "dst": self.dst, "received": self.dst == self.party.rank}
        )


@dataclass
class PartyJob:
    """Everything a party process needs (picklable)."""

    cfg: smpc_gym.agents.secure_maddpg.config.Config
    env_kwargs: dict[str, Any]
    seed: int
    total_steps: int
    world_address: tuple[str, int]
    world_key: bytes
    share_dir: str
    resume_step: int | None
    checkpoint_every: int
    reports: Any = None  # a multiprocessing queue to the launcher (local launch)
    return_private: bool = False  # tests only: also return this player's own replay rows


#: fields of :class:`~smpc_gym.agents.secure_maddpg.config.Config` that may differ between the parties (paths on each machine)
_LOCAL_FIELDS = ("share_dir", "world_key_file")
#: modules whose source defines the protocol; their hash is part of the code version
_PROTOCOL_MODULES = (
    "smpc_gym.agents.secure_maddpg",  # the package: every one of its modules
    "smpc_gym.agents.secure_maddpg.config",
    "smpc_gym.agents.secure_maddpg.update",
    "smpc_gym.agents.secure_maddpg.party",
    "smpc_gym.agents.secure_maddpg.algorithm",
    "smpc_gym.secure.mpc_nn",
    "smpc_gym.secure.optim",
    "smpc_gym.secure.ring",
    "smpc_gym.secure.runtime",
)


def code_version() -> str:
    """``"<package version>+<12 hex of SHA-256 over the protocol modules' source>"``."""
    import importlib.util

    import smpc_gym

    h = hashlib.sha256()
    for name in _PROTOCOL_MODULES:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin:
            h.update(Path(spec.origin).read_bytes())
    return f"{smpc_gym.__version__}+{h.hexdigest()[:12]}"


def run_facts(job: PartyJob) -> dict[str, int | str]:
    """What both parties must agree on before the first secure operation.

    ``resume_step`` (-1 for a fresh start), ``config_hash`` (SHA-256 of the config
    without the per-machine paths, the game parameters, the seed and the step budget) and
    ``code_version`` (:func:`code_version`). Compared by
    :func:`smpc_gym.secure.runtime.check_agreement`; revealed to both parties.
    """
    cfg = {k: v for k, v in dataclasses.asdict(job.cfg).items() if k not in _LOCAL_FIELDS}
    blob = json.dumps(
        {"cfg": cfg, "env": job.env_kwargs, "seed": job.seed, "total_steps": job.total_steps},
        sort_keys=True,
        default=repr,
    )
    return {
        "resume_step": -1 if job.resume_step is None else int(job.resume_step),
        "config_hash": hashlib.sha256(blob.encode()).hexdigest()[:16],
        "code_version": code_version(),
    }


def party_main(ctx: Any, job: PartyJob, reporter: Any = None) -> dict[str, Any]:
    """The training loop of one party (run by the runtime in each party process).

    Both parties run this in lockstep: secure act → own env step through the
    :class:`PlayerView` → store own columns → (once a batch is there) one secure update
    with indices from the shared sampler → per-party share checkpoint every
    ``job.checkpoint_every`` steps. Reports log rows and checkpoints through ``reporter``
    (or ``job.reports``, a queue to the launcher).
    """
    torch.set_num_threads(1)
    cfg, rank = job.cfg, ctx.rank
    pid_file = Path(job.share_dir) / f"party{rank}" / "pid"
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.write_text(str(os.getpid()))  # for operators (and the kill test)
    from smpc_gym.secure.runtime import check_agreement

    check_agreement(ctx, run_facts(job))  # before any secure operation
    report = reporter or _QueueReporter(job.reports, rank)
    progress = _PretrainProgress(report, cfg.pretrain_steps)
    party = Party(ctx.crypten, rank, cfg, job.env_kwargs, job.seed, pretrain_hooks=progress)
    if job.resume_step is not None:
        party.load(load_share_file(job.share_dir, rank, job.resume_step))
        if party.env_steps != job.resume_step:
            raise RuntimeError(
                f"share file says step {party.env_steps}, expected {job.resume_step}"
            )
    view = PlayerView(job.world_address, rank, job.world_key, timeout_s=cfg.timeout_s)
    plain_cfg = cfg.plain()
    timing = {"update_s": 0.0, "updates": 0, "bytes": 0, "rounds": 0, "step_s": 0.0, "steps": 0}
    window: list[dict[str, float]] = []
    losses: dict[str, list[float]] = {}
    hooks = _PartyHooks(report, party, job)
    cadence = Cadence(hooks, cfg.log_every, party.env_steps, job.total_steps)

    def row() -> dict[str, float]:
        nonlocal window, losses
        out = _log_row(party, window, losses, timing, rank)
        window, losses = [], {}
        return out

    try:
        obs, _ = view.reset(party.episodes)
        party.noise.reset()
        ep = {"reward": 0.0, "wastage_units": 0.0, "wastage_cost": 0.0}
        while party.env_steps < job.total_steps:
            t0 = time.perf_counter()
            unit = party.secure_act(obs)
            action = unit * party.high + party.noise.sample()[0] * party.high
            action = torch.minimum(torch.clamp(action, min=0.0), party.high)
            next_obs, reward, term, trunc, info = view.step(action.numpy())
            waste = float(info.get("waste_cost", 0.0))
            r_train = (reward - waste) if plain_cfg.train_reward == "ncr" else reward
            ended = bool(term or trunc)
            done = float(term or (trunc and cfg.done_on_truncation))
            party.replay.add(
                torch.as_tensor(obs, dtype=torch.float32)[None],
                torch.as_tensor(next_obs, dtype=torch.float32)[None],
                action[None],
                torch.tensor([r_train * cfg.reward_scale]),
                torch.tensor([done]),
            )
            ep["reward"] += reward
            ep["wastage_units"] += float(info.get("units_wasted", 0.0))
            ep["wastage_cost"] += waste
            party.env_steps += 1
            timing["step_s"] += time.perf_counter() - t0
            timing["steps"] += 1
            if ended:
                ep["ncr"] = ep["reward"] - ep["wastage_cost"]
                window.append({f"{k}_{rank}": v for k, v in ep.items()})
                party.episodes += 1
                ep = {"reward": 0.0, "wastage_units": 0.0, "wastage_cost": 0.0}
                obs, _ = view.reset(party.episodes)
                party.noise.reset()
            else:
                obs = next_obs
            size = party.replay.size
            if size >= max(cfg.batch_size, cfg.learning_starts):
                idx = maddpg.sample_indices(size, cfg.batch_size, party.sampler)
                ctx.reset_comm_stats()
                t1 = time.perf_counter()
                stats = party.update(idx)
                timing["update_s"] += time.perf_counter() - t1
                st = ctx.comm_stats()
                timing["bytes"] += st["bytes"]
                timing["rounds"] += st["rounds"]
                timing["updates"] += 1
                for k, v in stats.items():
                    losses.setdefault(k, []).append(v)
            cadence.after_step(party.env_steps, row)  # parties never stop on request
        if hooks.saved != party.env_steps:  # the runner's final checkpoint needs this step
            hooks.checkpoint(party.env_steps)
        final = party.final_weights()
    finally:
        view.close()
    return {
        "rank": rank,
        "env_steps": party.env_steps,
        "episodes": party.episodes,
        "updates": party.updates,
        "final": final,
        # public, and the same in both parties: party 0's copy is enough
        "pretrained_actors": party.pretrained_actors if rank == 0 else None,
        "pretrained_step": party.pretrained_step,
        "timing": timing,
        "reveal_log": party.reveal_log,
        **({"private": _own_rows(party)} if job.return_private else {}),
    }


def _own_rows(party: Party) -> np.ndarray:
    """This player's own replay rows (features, next features, action, reward) as numpy."""
    d, n = party.replay.data, party.replay.size
    cols = [d["obs"][:n], d["next_obs"][:n], d["action"][:n] * party.inv_high, d["reward"][:n]]
    return torch.cat(cols, dim=1).numpy().copy()


def _log_row(
    party: Party,
    window: list[dict[str, float]],
    losses: Mapping[str, list[float]],
    timing: Mapping[str, float],
    rank: int,
) -> dict[str, float]:
    row: dict[str, float] = {
        "episodes": float(party.episodes),
        "updates": float(party.updates),
        "overflow_redos": float(party.overflow_redos),  # since this launch
    }
    if window:
        for key in window[0]:
            row[key] = float(np.mean([e[key] for e in window]))
    for k, v in losses.items():
        row[k] = float(np.mean(v))
    if timing["updates"]:
        n = timing["updates"]
        row["secure_update_s"] = timing["update_s"] / n
        row[f"bytes_per_update_{rank}"] = timing["bytes"] / n
        row["rounds_per_update"] = timing["rounds"] / n
    if timing["steps"]:
        row["secure_act_step_s"] = timing["step_s"] / timing["steps"]
    return row


class _PartyHooks:
    """A party's side of :class:`~smpc_gym.agents.common.cadence.Cadence`: rows go to the
    reporter; a checkpoint saves this party's shares, then tells the reporter."""

    def __init__(self, report: Any, party: Party, job: PartyJob) -> None:
        self.report, self.party, self.job = report, party, job
        self.saved = party.env_steps

    def log(self, step: int, row: Mapping[str, float]) -> None:
        self.report.log(step, row)

    def should_checkpoint(self, step: int) -> bool:
        return bool(self.report.want_checkpoint(step, self.job.checkpoint_every))

    def checkpoint(self, step: int) -> None:
        self.party.save(self.job.share_dir)
        self.report.checkpointed(step)
        self.saved = int(step)


class _PretrainProgress(NullHooks):
    """Hooks of the plaintext pre-training: its log rows go to the reporter as progress
    (step, the phase's total, the simulated market's total NCR while training and at each
    snapshot check; all public)."""

    def __init__(self, report: Any, total: int) -> None:
        self.report, self.total = report, int(total)

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        shown = {k: float(metrics[k]) for k in ("total_ncr", "select/total_ncr") if k in metrics}
        send = getattr(self.report, "pretrain", None)  # a reporter may not show progress
        if send is not None:
            send(int(step), self.total, shown)


class _QueueReporter:
    """Party side of the local launch: log rows and checkpoints go to the launcher
    (pre-training progress from party 0 only: both parties run the same one)."""

    def __init__(self, q: Any, rank: int) -> None:
        self.q, self.rank = q, rank

    def pretrain(self, step: int, total: int, metrics: Mapping[str, float]) -> None:
        if self.q is not None and self.rank == 0:
            self.q.put(("pretrain", self.rank, int(step), {"total": float(total), **metrics}))

    def log(self, step: int, row: Mapping[str, float]) -> None:
        if self.q is not None:
            self.q.put(("log", self.rank, int(step), dict(row)))

    def want_checkpoint(self, step: int, every: int) -> bool:
        return every > 0 and step % every == 0

    def checkpointed(self, step: int) -> None:
        if self.q is not None:
            self.q.put(("ckpt", self.rank, int(step), None))
