"""Secure MADDPG: the EDE update of :mod:`smpc_gym.agents.maddpg` under two-party CrypTen.

Reads top to bottom: :class:`Config`, the secure networks (:class:`SecureNets`), the secure
update (:func:`secure_update`, line-by-line twin of :func:`maddpg.maddpg_update`), the
party process (:class:`Party`, :func:`party_main`) and the runner-facing algorithm
(:class:`SecureMADDPG`).

Who holds what (README.md, "Secure MADDPG", has the full threat model):

* Player ``i`` is party ``i``, a separate OS process (CrypTen over ``torch.distributed``).
  It holds its own observations, actions, rewards and replay columns in the clear, and
  reaches the game only through a :class:`~smpc_gym.envs.supply_chain.remote.PlayerView`,
  which carries *its* action to the world simulator and *its* observation/reward/info
  back — nothing else ever arrives (typed frames, HMAC-authenticated with a per-run key).
* All network weights (both actors, both critics, their targets) and the optimiser states
  are secret-shared from start to end; each party checkpoints its own shares.
* Revealed: player i's action to player i only (``get_plain_text(dst=i)``); minibatch
  indices are never sent at all — both parties draw them from the sampler seeded with the
  run's (public) seed; with ``reveal_losses`` the scalar losses to both parties; with
  ``reveal_final_weights="owner"`` each player's own actor and critic to that player at
  the end. Every reveal goes through :meth:`Party.reveal`, which records it.

* Beaver triples and other correlated randomness come from a dealer process that holds
  no data (``provider: TTP``, the default); ``provider: tfp_player0_sees_all`` lets
  player 0 generate them and so read every opened value (docs/security/trust-model.md).
* Before the first secure operation both parties compare their resume step, a hash of
  the run's config and the code version (:func:`run_facts`); a mismatch stops both.

The world simulator (:mod:`smpc_gym.envs.supply_chain.remote`) stands in for the physical
supply chain: a third process owned by neither party that steps the game with both
players' actions and answers each player with its own part only. In a deployment each
player's side of the world is its own business (its stock, its customers); the simulator
exists so the two parties never need each other's actions in the clear to run an episode.
It holds both players' game state, so across machines it must run on a host neither
player controls (``world_address``).
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import math
import multiprocessing
import os
import queue as queue_mod
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from smpc_gym.agents import maddpg
from smpc_gym.agents.base import Algorithm, TrainHooks
from smpc_gym.agents.common.cadence import Cadence
from smpc_gym.agents.common.ou_noise import OUNoise
from smpc_gym.envs.supply_chain.remote import (
    PlayerView,
    episode_seed,
    new_key,
    parse_address,
    read_key_file,
    start_world,
)
from smpc_gym.storage.payload import load_torch, save_torch

AGENTS = maddpg.AGENTS
N_FEATURES = maddpg.N_FEATURES
ACTION_DIM = maddpg.ACTION_DIM
N_PLAYERS = len(AGENTS)
_episode_seed = episode_seed  # the world's per-episode seed (benchmarks replay episodes)


# ---------------------------------------------------------------------------------------
# Config
# ---------------------------------------------------------------------------------------
@dataclass
class Config(maddpg.Config):
    """Secure MADDPG hyper-parameters: every field of :class:`maddpg.Config` plus:

    Attributes:
        reveal_losses: reveal the scalar critic/actor losses to both players for logging.
            Not a protection: every truncation is exact (:mod:`smpc_gym.secure.trunc`), so
            no fixed-point wrap-around can happen inside the stated ranges.
        overflow_redos: a guard for values *outside* the stated ranges (needs
            ``reveal_losses``): on a huge or NaN revealed loss, roll both parties back to
            their shares from before the previous update and redo the last two updates on
            the same minibatches, up to this many times in a row; then the run stops with
            :class:`FixedPointOverflow` (0: stop at once).
        reveal_final_weights: ``"owner"`` (each player learns its own actor and critic at
            the end; needed for evaluation) or ``"none"`` (weights stay shared forever).
        provider: Beaver-triple provider: ``"TTP"`` (default; a dealer process that holds
            no data) or ``"tfp_player0_sees_all"`` (player 0 generates the triples and can
            read every opened value: the other player's data, all weights and gradients).
        timeout_s: a party that dies or hangs makes the other fail within this time.
        critic_grad_scale: public loss scale ``c`` of the critic gradients (fixed point,
            see :mod:`smpc_gym.secure.optim`).
        actor_grad_scale: the same for the actor gradients (which are much smaller).
        adam_nr_iters: warm-started Newton iterations for Adam's ``1/√v̂`` per step.
        adam_refresh_every: steps between range-reduced restarts of Adam's Newton iterations
            (1 = every step, robust; see :mod:`smpc_gym.secure.optim`).
        pretrain_steps: plaintext MADDPG steps on *simulated, public* data before the
            secure phase (the paper's pipeline; 0 = start secure from scratch). Both
            parties run the same deterministic pre-training and secret-share the result.
        pretrain_env: env parameter overrides for the simulated game (e.g. a different
            ``demand_intercept``); the private game uses the run's env parameters.
        pretrain_config: overrides of :class:`maddpg.Config` fields for pre-training only
            (e.g. its own ``optimizer``, learning rates, ``n_envs``); the secure phase
            uses the run's values. Unknown keys are an error.
        checkpoint_every: env steps between per-party share checkpoints (0: whenever the
            runner asks, i.e. ``hooks.should_checkpoint``).
        share_dir: folder of the per-party share files ("" = ``<run folder>/party_shares``
            under the runner, else a temporary folder).
        world_address: ``HOST:PORT`` of the world simulator (``--world``). Local runs: ""
            starts it on 127.0.0.1 (a free port); a given address makes the launcher start
            it there. Multi-machine runs: required; start the simulator yourself on a host
            neither player controls (``python -m smpc_gym.envs.supply_chain.remote serve``).
        world_key_file: multi-machine runs: the 0600 file holding the world channel's key
            (``python -m smpc_gym.envs.supply_chain.remote keygen``); local runs draw a
            fresh key per run and ignore this.
    """

    reveal_losses: bool = True
    overflow_redos: int = 3
    reveal_final_weights: str = "owner"
    provider: str = "TTP"
    timeout_s: float = 120.0
    critic_grad_scale: float = 2.0**6
    actor_grad_scale: float = 2.0**10
    adam_nr_iters: int = 3
    adam_refresh_every: int = 1
    pretrain_steps: int = 0
    pretrain_env: dict[str, Any] = field(default_factory=dict)
    pretrain_config: dict[str, Any] = field(default_factory=dict)
    checkpoint_every: int = 0
    share_dir: str = ""
    world_address: str = ""
    world_key_file: str = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.reveal_final_weights not in ("owner", "none"):
            raise ValueError(
                f"reveal_final_weights must be 'owner' or 'none', got {self.reveal_final_weights!r}"
            )
        from smpc_gym.secure.runtime import resolve_provider

        self.provider = resolve_provider(self.provider)
        if self.world_address:
            parse_address(self.world_address)  # raises naming the bad value
        if self.n_envs != 1:
            raise ValueError(f"secure_maddpg steps one world (n_envs=1), got n_envs={self.n_envs}")
        if self.timeout_s <= 0 or self.critic_grad_scale <= 0 or self.actor_grad_scale <= 0:
            raise ValueError(
                "timeout_s, critic_grad_scale and actor_grad_scale must be > 0, got "
                f"{self.timeout_s}, {self.critic_grad_scale}, {self.actor_grad_scale}"
            )
        if self.pretrain_steps < 0 or self.checkpoint_every < 0 or self.overflow_redos < 0:
            raise ValueError(
                "pretrain_steps, checkpoint_every and overflow_redos must be >= 0, got "
                f"{self.pretrain_steps}, {self.checkpoint_every}, {self.overflow_redos}"
            )

        maddpg.pretrain_config(self.plain(), self.pretrain_config)  # validates the keys

    def plain(self) -> maddpg.Config:
        """The plaintext :class:`maddpg.Config` with the same shared fields."""
        names = {f.name for f in dataclasses.fields(maddpg.Config)}
        return maddpg.Config(**{k: v for k, v in dataclasses.asdict(self).items() if k in names})


class FixedPointOverflow(RuntimeError):
    """A revealed loss was huge or NaN: the fixed-point ring wrapped around."""


# ---------------------------------------------------------------------------------------
# Secure networks
# ---------------------------------------------------------------------------------------
def _shapes(in_dim: int, hidden: int, out_dim: int) -> list[tuple[int, int]]:
    return [(in_dim, hidden), (hidden, hidden), (hidden, out_dim)]


@dataclass
class SecureNets:
    """Both players' actors, critics and targets as stacked :class:`SharedMLP` (P = 2)."""

    actors: Any
    critics: Any
    target_actors: Any
    target_critics: Any

    @classmethod
    def share(
        cls, actors: Sequence[Any], critics: Sequence[Any], hidden: int, rank: int
    ) -> SecureNets:
        """Secret-share plaintext networks; network i is read only in party i."""
        from smpc_gym.secure.mpc_nn import SharedMLP

        sh = maddpg.DataSharing("ede")
        owners = list(range(N_PLAYERS))
        a = SharedMLP.from_plain(
            actors, owners, _shapes(sh.actor_in_dim, hidden, ACTION_DIM), "sigmoid", rank
        )
        c = SharedMLP.from_plain(critics, owners, _shapes(sh.critic_in_dim, hidden, 1), rank=rank)
        return cls(actors=a, critics=c, target_actors=a.clone(), target_critics=c.clone())

    def modules(self) -> dict[str, Any]:
        """Name → :class:`SharedMLP`."""
        return {
            "actors": self.actors,
            "critics": self.critics,
            "target_actors": self.target_actors,
            "target_critics": self.target_critics,
        }


def make_optimisers(cfg: Config) -> tuple[Any, Any]:
    """(actor optimiser, critic optimiser) on shares, each stepping both players at once."""
    from smpc_gym.secure.optim import SecureAdam, SecureSGD

    def make(lr: float, scale: float) -> Any:
        if cfg.optimizer == "adam":
            return SecureAdam(
                lr,
                eps=cfg.adam_eps,
                grad_scale=scale,
                nr_iters=cfg.adam_nr_iters,
                refresh_every=cfg.adam_refresh_every,
            )
        return SecureSGD(lr, momentum=cfg.momentum, grad_scale=scale)

    return make(cfg.actor_lr, cfg.actor_grad_scale), make(cfg.critic_lr, cfg.critic_grad_scale)


def share_batch(
    crypten: Any, rank: int, own: maddpg.PlayerBatch, inv_high: torch.Tensor, batch_size: int
) -> dict[str, Any]:
    """Secret-share both players' columns of a minibatch (each party inputs its own).

    Player i packs ``[obs, next_obs, action / high_i, reward, done]`` (14 columns) into one
    tensor and shares it with ``src=i``; the other party contributes a placeholder of the
    same shape (its values are never used: ``cryptensor(src=i)`` ignores non-owners' input).
    """
    parts = []
    for i in range(N_PLAYERS):
        if i == rank:
            x = torch.cat(
                [own.obs, own.next_obs, own.action * inv_high, own.reward, own.done], dim=1
            )
        else:
            x = torch.zeros(batch_size, 2 * N_FEATURES + ACTION_DIM + 2)
        parts.append(crypten.cryptensor(x, src=i))
    f = N_FEATURES
    s = crypten.cat([p[:, 0:f] for p in parts], dim=1)
    s2 = crypten.cat([p[:, f : 2 * f] for p in parts], dim=1)
    a = crypten.cat([p[:, 2 * f : 2 * f + ACTION_DIM] for p in parts], dim=1)
    r = crypten.stack([p[:, 2 * f + ACTION_DIM : 2 * f + ACTION_DIM + 1] for p in parts])
    d = crypten.stack([p[:, 2 * f + ACTION_DIM + 1 :] for p in parts])
    return {"obs": s, "next_obs": s2, "action": a, "reward": r, "done": d}


def _soft_update(target: Any, online: Any, tau: float) -> None:
    from smpc_gym.secure.optim import flatten_cat, mul_public, unflatten_like

    tp, op = target.parameters(), online.parameters()
    new = mul_public(flatten_cat(tp), 1.0 - tau) + mul_public(flatten_cat(op), tau)
    target.set_parameters(unflatten_like(new, tp))


def secure_update(
    crypten: Any, nets: SecureNets, opts: tuple[Any, Any], b: Mapping[str, Any], cfg: Config
) -> dict[str, Any]:
    """One MADDPG update of both players under MPC, in :func:`maddpg.maddpg_update`'s order.

    ``b`` is :func:`share_batch`'s output. Both players' work is stacked (P = 2):

    A. actors(s) and target actors(s') in one stacked forward pass (the actors' outputs
       and cache are reused by the actor update: the actors have not changed yet);
    B. critics([s, a]) and target critics([s', a'₀, a'₁]) in one stacked pass;
       ``y = r + γ(1 − d)Q'``; backward of ``MSE`` (loss-scaled) and the critic step;
    C. the updated critics on ``[s, a with player i's action replaced by actor_i(s)]``,
       backward of ``−mean Q`` to each player's own action columns only, through the
       cached actor pass, and the actor step;
    D. soft target updates (local linear operations on shares).

    Returns:
        Shares of the per-player losses ``critic_loss`` ``[P]`` and ``actor_loss`` ``[P]``
        (computed only if ``cfg.reveal_losses``; else an empty dict). Nothing is revealed.
    """
    from smpc_gym.secure.comm import phase
    from smpc_gym.secure.mpc_nn import backward_stacked, beaver_many, forward_stacked
    from smpc_gym.secure.optim import mul_public

    actor_opt, critic_opt = opts
    P, B = N_PLAYERS, int(b["obs"].size(0))
    s, s2, a = b["obs"], b["next_obs"], b["action"]
    rep = [crypten.stack([t] * P) for t in (s, s2)]

    # A. actors(s) and target actors(s')
    with phase("forward"):
        (a_cur, a_next), (actor_cache, _) = forward_stacked([nets.actors, nets.target_actors], rep)

    # B. critic update
    x = crypten.cat([s, a], dim=1)
    x2 = crypten.cat([s2, a_next[0], a_next[1]], dim=1)
    with phase("forward"):
        (q, q2), (critic_cache, _) = forward_stacked(
            [nets.critics, nets.target_critics], [crypten.stack([x] * P), crypten.stack([x2] * P)]
        )
        (not_done_q2,) = beaver_many([("mul", 1 - b["done"], q2)])
    y = b["reward"] + mul_public(not_done_q2, cfg.gamma)
    diff = q - y
    out: dict[str, Any] = {}
    if cfg.reveal_losses:
        with phase("loss"):
            out["critic_loss"] = mul_public(diff.square().sum(dim=(1)).reshape(P), 1.0 / B)
    dq = mul_public(diff, 2.0 * cfg.critic_grad_scale / B)
    with phase("backward"):
        grads, _ = backward_stacked([nets.critics], [critic_cache], [dq])
    assert grads is not None  # weight_grads=True
    with phase("optimiser"):
        nets.critics.set_parameters(critic_opt.step(nets.critics.parameters(), grads[0]))

    # C. actor update through the updated critics
    own = [
        crypten.cat([s, a_cur[0], a[:, 2:4]], dim=1),
        crypten.cat([s, a[:, 0:2], a_cur[1]], dim=1),
    ]
    with phase("forward"):
        (qa,), (qa_cache,) = forward_stacked([nets.critics], [crypten.stack(own)])
    if cfg.reveal_losses:
        out["actor_loss"] = mul_public(qa.sum(dim=1).reshape(P), -1.0 / B)
    dqa = crypten.cryptensor(torch.full((P, B, 1), -cfg.actor_grad_scale / B), src=0)
    f2 = 2 * N_FEATURES
    with phase("backward"):
        _, d_act = backward_stacked(
            [nets.critics],
            [qa_cache],
            [dqa],
            weight_grads=False,
            input_cols=[slice(f2, f2 + ACTION_DIM), slice(f2 + ACTION_DIM, f2 + 2 * ACTION_DIM)],
        )
        agrads, _ = backward_stacked([nets.actors], [actor_cache], [d_act])
    assert agrads is not None  # weight_grads=True
    with phase("optimiser"):
        nets.actors.set_parameters(actor_opt.step(nets.actors.parameters(), agrads[0]))

    # D. targets
    with phase("targets"):
        _soft_update(nets.target_actors, nets.actors, cfg.tau)
        _soft_update(nets.target_critics, nets.critics, cfg.tau)
    return out


# ---------------------------------------------------------------------------------------
# The party process
# ---------------------------------------------------------------------------------------
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
        cfg: the run's :class:`Config`.
        env_kwargs: the private game's parameters (for the action caps and pre-training).
        seed: the run's public seed.
        init_nets: optional plaintext ``(actors, critics)`` to start from (only entry
            ``rank`` of each is read); default: the same init as plaintext MADDPG.
    """

    def __init__(
        self,
        crypten: Any,
        rank: int,
        cfg: Config,
        env_kwargs: Mapping[str, Any],
        seed: int,
        init_nets: tuple[Sequence[Any], Sequence[Any]] | None = None,
        action_high: Sequence[torch.Tensor] | None = None,
    ) -> None:
        self.crypten = crypten
        self.rank = int(rank)
        self.cfg = cfg
        self.seed = int(seed)
        seeds = _seeds(seed)
        high = list(action_high) if action_high is not None else maddpg.action_caps(env_kwargs)
        self.high = high[self.rank]
        self.inv_high = 1.0 / self.high
        if init_nets is None:
            init_nets = self._initial_plain_nets(env_kwargs, seeds, high)
        actors, critics = init_nets
        self.nets = SecureNets.share(actors, critics, cfg.hidden, self.rank)
        self.opts = make_optimisers(cfg)
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
        self, env_kwargs: Mapping[str, Any], seeds: np.ndarray, high: Sequence[torch.Tensor]
    ) -> tuple[list[Any], list[Any]]:
        cfg = self.cfg
        if cfg.pretrain_steps > 0:
            # The paper's pipeline: plaintext MADDPG on simulated (public) data. Deterministic
            # (one torch thread, seeded generators), so both parties get the same networks.
            sim = maddpg.pretrain_for(cfg, env_kwargs, self.seed)
            return list(sim.nets.actors), list(sim.nets.critics)
        sh = maddpg.DataSharing("ede")
        actors: list[Any] = [None] * N_PLAYERS
        critics: list[Any] = [None] * N_PLAYERS
        i = self.rank  # only this player's networks are created here
        gen = torch.Generator().manual_seed(int(seeds[i]))
        actors[i] = maddpg.make_actor(sh.actor_in_dim, cfg.hidden, high[i], gen)
        critics[i] = maddpg.make_critic(sh.critic_in_dim, cfg.hidden, gen)
        return actors, critics

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
        from smpc_gym.secure.mpc_nn import fast_dispatch, forward_stacked
        from smpc_gym.secure.trunc import exact_truncation

        c = self.crypten
        feats = []
        with fast_dispatch(), exact_truncation():  # no local truncation anywhere
            for i in range(N_PLAYERS):
                x = torch.as_tensor(own_obs, dtype=torch.float32).reshape(1, N_FEATURES)
                feats.append(c.cryptensor(x if i == self.rank else torch.zeros_like(x), src=i))
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

    cfg: Config
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


def _plain_actor(
    layers: Sequence[tuple[torch.Tensor, torch.Tensor]], high: torch.Tensor, hidden: int
) -> torch.nn.Module:
    actor = maddpg.make_actor(2 * N_FEATURES, hidden, high, torch.Generator().manual_seed(0))
    linears = [m for m in actor.modules() if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        for lin, (w, b) in zip(linears, layers, strict=True):
            lin.weight.copy_(torch.as_tensor(w))
            lin.bias.copy_(torch.as_tensor(b))
    return actor


#: fields of :class:`Config` that may differ between the parties (paths on each machine)
_LOCAL_FIELDS = ("share_dir", "world_key_file")
#: modules whose source defines the protocol; their hash is part of the code version
_PROTOCOL_MODULES = (
    "smpc_gym.agents.secure_maddpg.party",
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
    party = Party(ctx.crypten, rank, cfg, job.env_kwargs, job.seed)
    if job.resume_step is not None:
        party.load(load_share_file(job.share_dir, rank, job.resume_step))
        if party.env_steps != job.resume_step:
            raise RuntimeError(
                f"share file says step {party.env_steps}, expected {job.resume_step}"
            )
    report = reporter or _QueueReporter(job.reports, rank)
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


class _QueueReporter:
    """Party side of the local launch: log rows and checkpoints go to the launcher."""

    def __init__(self, q: Any, rank: int) -> None:
        self.q, self.rank = q, rank

    def log(self, step: int, row: Mapping[str, float]) -> None:
        if self.q is not None:
            self.q.put(("log", self.rank, int(step), dict(row)))

    def want_checkpoint(self, step: int, every: int) -> bool:
        return every > 0 and step % every == 0

    def checkpointed(self, step: int) -> None:
        if self.q is not None:
            self.q.put(("ckpt", self.rank, int(step), None))


class _DirectReporter:
    """Party side of a multi-machine launch: this process is the party and the runner."""

    def __init__(self, algo: SecureMADDPG, hooks: TrainHooks) -> None:
        self.algo, self.hooks = algo, hooks

    def log(self, step: int, row: Mapping[str, float]) -> None:
        self.algo.env_steps = int(step)
        self.hooks.phase("secure phase")
        self.hooks.log(step, row)

    def want_checkpoint(self, step: int, every: int) -> bool:
        if every > 0:
            return step % every == 0
        return bool(self.hooks.should_checkpoint(step))

    def checkpointed(self, step: int) -> None:
        self.algo.env_steps = int(step)
        self.algo.share_step = int(step)
        self.hooks.checkpoint(step)


# ---------------------------------------------------------------------------------------
# The algorithm the runner sees
# ---------------------------------------------------------------------------------------
class SecureMADDPG(Algorithm):
    """MADDPG on EDE-shaped networks with every update and action under two-party CrypTen.

    ``train`` spawns the two party processes, the world simulator and (under the default
    ``provider: TTP``) the dealer, unless the runner passed ``--rank`` (then this process
    *is* that party and meets the other at ``--rendezvous``; the dealer and the world
    simulator are then started separately, see docs/security/transport.md). The party processes do all
    the work; this object only relays their log rows and checkpoints to the runner. Its
    checkpoint (``state_dict``) records the env step and where the per-party share files
    are; each party saves and loads its own shares. ``act`` uses the owners' revealed
    actors (``reveal_final_weights: owner``).
    """

    name: ClassVar[str] = "secure_maddpg"
    envs: ClassVar[tuple[str, ...]] = ("supply_chain",)
    Config: ClassVar[type] = Config
    #: The parties run in lockstep in their own processes and cannot agree on a step to
    #: stop at, so Ctrl-C ends them at once and the runner names the last checkpoint both
    #: parties wrote (at most ``--checkpoint-every`` steps old).
    stops_on_request: ClassVar[bool] = False
    #: The policy exists in plaintext only at the end (owners' revealed actors), so
    #: ``--eval-every`` is refused.
    evaluates_during_training: ClassVar[bool] = False

    def __init__(self, config: Any, env_kwargs: Mapping[str, Any], seed: int) -> None:
        super().__init__(config, env_kwargs, seed)
        self.share_dir = str(config.share_dir)
        self.share_step: int | None = None
        self.episodes = 0
        self.updates = 0
        self.actors: dict[int, Any] = {}
        self.last_results: list[dict[str, Any]] = []
        self.high = maddpg.action_caps(self.env_kwargs)

    # -- acting ---------------------------------------------------------------------------
    def act(self, obs: Any, deterministic: bool = True) -> dict[str, np.ndarray]:
        """Greedy actions from the owners' revealed actors (local runs after training)."""
        missing = [AGENTS[i] for i in range(N_PLAYERS) if i not in self.actors]
        if missing:
            raise RuntimeError(
                f"no plaintext actor for {missing}: weights are revealed only to their owner "
                "at the end of training and only with reveal_final_weights='owner' (a "
                "multi-machine party holds only its own actor)"
            )
        feats = torch.cat(
            [torch.as_tensor(np.asarray(obs[a]), dtype=torch.float32) for a in AGENTS]
        )[None]
        out = {}
        with torch.no_grad():
            for i, a in enumerate(AGENTS):
                out[a] = self.actors[i](feats)[0].numpy().astype(np.float32)
        return out

    # -- training -------------------------------------------------------------------------
    def _share_dir(self, hooks: TrainHooks) -> str:
        if not self.share_dir:
            run_dir = getattr(hooks, "run_dir", None)
            self.share_dir = (
                str(Path(run_dir) / "party_shares")
                if run_dir is not None
                else tempfile.mkdtemp(prefix="secure_maddpg_shares_")
            )
        return self.share_dir

    def _job(
        self,
        total_steps: int,
        hooks: TrainHooks,
        world: tuple[str, int],
        key: bytes,
        reports: Any,
    ) -> PartyJob:
        every = self.config.checkpoint_every or int(getattr(hooks, "checkpoint_every", 0) or 0)
        return PartyJob(
            cfg=self.config,
            env_kwargs=dict(self.env_kwargs),
            seed=self.seed,
            total_steps=int(total_steps),
            world_address=world,
            world_key=key,
            share_dir=self._share_dir(hooks),
            resume_step=self.share_step,
            checkpoint_every=every,
            reports=reports,
        )

    def train(self, total_steps: int, hooks: TrainHooks) -> None:
        """Run both parties until ``env_steps >= total_steps`` (see the class docstring)."""
        from smpc_gym.secure.launch import party_config_for
        from smpc_gym.secure.runtime import PartyConfig, launch_local, run_party

        cfg = self.config
        opts = dict(self.launch_options)
        pc = party_config_for(
            opts,
            N_PLAYERS,
            timeout_s=cfg.timeout_s,
            provider=cfg.provider,
            algo="secure_maddpg",
        )
        if pc is not None:
            world_address = str(opts.get("world") or cfg.world_address)
            if not world_address or not cfg.world_key_file:
                raise ValueError(
                    "a multi-machine secure_maddpg party needs the world simulator's address "
                    "(--world HOST:PORT) and its key file (world_key_file=PATH); start the "
                    "simulator on a host neither player controls with `python -m "
                    "smpc_gym.envs.supply_chain.remote serve HOST:PORT --key-file PATH "
                    f"--seed {self.seed}`"
                )
            world = parse_address(world_address)
            key = read_key_file(cfg.world_key_file)
            job = self._job(total_steps, hooks, world, key, None)
            res = run_party(party_main, pc, (job, _DirectReporter(self, hooks)))
            self._absorb([res])
            return

        hooks.phase("start-up")  # spawning parties, CrypTen, plaintext pre-training
        key = new_key()  # fresh per run; reaches only this launcher's child processes
        world_address = str(opts.get("world") or cfg.world_address)
        where = parse_address(world_address) if world_address else None
        proc, world = start_world(self.env_kwargs, self.seed, key, where)
        ctx = multiprocessing.get_context("spawn")
        reports = ctx.Queue()
        job = self._job(total_steps, hooks, world, key, reports)
        pcfg = PartyConfig(world_size=N_PLAYERS, timeout_s=cfg.timeout_s, provider=cfg.provider)
        stop = threading.Event()
        errors: list[BaseException] = []
        relay = threading.Thread(
            target=self._relay, args=(reports, hooks, stop, errors), daemon=True
        )
        relay.start()
        try:
            results = launch_local(party_main, N_PLAYERS, (job,), config=pcfg)
        finally:
            stop.set()
            relay.join()
            if proc.is_alive():
                proc.terminate()
            proc.join(5)
        if errors:
            raise errors[0]
        self._absorb(results)

    def _relay(
        self, q: Any, hooks: TrainHooks, stop: threading.Event, errors: list[BaseException]
    ) -> None:
        """Launcher thread: merge both parties' rows per step; checkpoint when both saved."""
        rows: dict[int, dict[int, dict[str, float]]] = {}
        ckpts: dict[int, set[int]] = {}
        while True:
            try:
                kind, rank, step, payload = q.get(timeout=0.2)
            except queue_mod.Empty:
                if stop.is_set():
                    return
                continue
            try:
                if kind == "log":
                    rows.setdefault(step, {})[rank] = payload
                    if len(rows[step]) == N_PLAYERS:
                        hooks.phase("secure phase")
                        merged = self._merge(rows.pop(step))
                        self.episodes = int(merged.get("episodes", self.episodes))
                        self.updates = int(merged.get("updates", self.updates))
                        self.env_steps = step
                        hooks.log(step, merged)
                elif kind == "ckpt":
                    ckpts.setdefault(step, set()).add(rank)
                    if len(ckpts[step]) == N_PLAYERS:
                        ckpts.pop(step)
                        self.env_steps = step
                        self.share_step = step
                        hooks.checkpoint(step)
            except BaseException as exc:  # noqa: BLE001 - surfaced after the parties stop
                errors.append(exc)

    @staticmethod
    def _merge(per_rank: Mapping[int, Mapping[str, float]]) -> dict[str, float]:
        merged: dict[str, float] = {}
        for rank in sorted(per_rank):
            for k, v in per_rank[rank].items():
                if k in ("secure_update_s", "secure_act_step_s", "rounds_per_update"):
                    merged[k] = max(merged.get(k, 0.0), v)
                else:
                    merged.setdefault(k, v)
        if "reward_0" in merged and "reward_1" in merged:
            merged["total_reward"] = merged["reward_0"] + merged["reward_1"]
            merged["total_ncr"] = merged["ncr_0"] + merged["ncr_1"]
        return merged

    def _absorb(self, results: Sequence[Mapping[str, Any]]) -> None:
        self.last_results = [dict(r) for r in results]
        for res in results:
            self.env_steps = int(res["env_steps"])
            self.episodes = int(res["episodes"])
            self.updates = int(res["updates"])
            final = res.get("final")
            if final and "actor" in final:
                r = int(res["rank"])
                self.actors[r] = _plain_actor(final["actor"], self.high[r], self.config.hidden)

    # -- state ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Env step, the share folder and step, counters, and owners' revealed actors."""
        return {
            "env_steps": self.env_steps,
            "episodes": self.episodes,
            "updates": self.updates,
            "share_dir": self.share_dir,
            "share_step": -1 if self.share_step is None else int(self.share_step),
            "actors": {str(i): a.state_dict() for i, a in self.actors.items()},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` (the parties reload their own share files on train)."""
        self.env_steps = int(state["env_steps"])
        self.episodes = int(state["episodes"])
        self.updates = int(state["updates"])
        self.share_dir = str(state["share_dir"])
        step = int(state["share_step"])
        self.share_step = None if step < 0 else step
        self.actors = {}
        for k, sd in dict(state.get("actors", {})).items():
            i = int(k)
            actor = maddpg.make_actor(
                2 * N_FEATURES, self.config.hidden, self.high[i], torch.Generator().manual_seed(0)
            )
            actor.load_state_dict(sd)
            self.actors[i] = actor
