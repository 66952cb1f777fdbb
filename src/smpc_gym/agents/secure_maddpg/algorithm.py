"""Secure MADDPG's runner bridge: :class:`SecureMADDPG`, the :class:`Algorithm` the runner
sees. It spawns the party processes (or, under ``--rank``, is one), relays their log rows
and checkpoints to the runner, and acts with the owners' revealed actors afterwards.
"""

from __future__ import annotations

import multiprocessing
import queue as queue_mod
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from smpc_gym.agents import maddpg
from smpc_gym.agents.base import Algorithm, TrainHooks
from smpc_gym.agents.secure_maddpg.config import AGENTS, N_FEATURES, N_PLAYERS, Config
from smpc_gym.agents.secure_maddpg.party import PartyJob, party_main
from smpc_gym.envs.supply_chain.remote import (
    new_key,
    parse_address,
    read_key_file,
    start_world,
)


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


class _DirectReporter:
    """Party side of a multi-machine launch: this process is the party and the runner."""

    def __init__(self, algo: SecureMADDPG, hooks: TrainHooks, total_steps: int) -> None:
        self.algo, self.hooks = algo, hooks
        self.progress = _PhaseProgress(hooks, total_steps, algo.env_steps)

    def pretrain(self, step: int, total: int, metrics: Mapping[str, float]) -> None:
        self.progress.pretrain(step, total, metrics)

    def log(self, step: int, row: Mapping[str, float]) -> None:
        self.algo.env_steps = int(step)
        self.progress.secure(step, row)
        self.hooks.log(step, row)

    def want_checkpoint(self, step: int, every: int) -> bool:
        if every > 0:
            return step % every == 0
        return bool(self.hooks.should_checkpoint(step))

    def checkpointed(self, step: int) -> None:
        self.algo.env_steps = int(step)
        self.algo.share_step = int(step)
        self.hooks.checkpoint(step)


class _PhaseProgress:
    """The launcher's view of a run's phases: ``start-up`` (named by ``train``), then
    ``pre-training`` (party 0's plaintext pre-training steps, with their rate and ETA), then
    ``secure phase`` (from the end of pre-training; its steps are the run's env steps),
    and a one-line event whenever a party repaired a fixed-point wrap-around by a redo."""

    def __init__(self, hooks: TrainHooks, total_steps: int, start_step: int = 0) -> None:
        self.hooks, self.total, self.start = hooks, int(total_steps), int(start_step)
        self.current = "start-up"
        self.redos = 0.0

    def _enter_secure(self, step: int) -> None:
        if self.current != "secure phase":
            self.current = "secure phase"
            self.hooks.phase("secure phase", total=self.total, start=int(step))

    def pretrain(self, step: int, total: int, metrics: Mapping[str, float]) -> None:
        """Party 0 reached pre-training step ``step`` of ``total``."""
        if self.current == "start-up":
            self.current = "pre-training"
            # the phase starts at the first report: its rate counts from there
            self.hooks.phase("pre-training", total=int(total), start=int(step))
        elif self.current == "pre-training":
            self.hooks.advance(int(step), dict(metrics))
        if self.current == "pre-training" and step >= total:
            self._enter_secure(self.start)

    def secure(self, step: int, row: Mapping[str, float]) -> None:
        """A secure-phase row at env step ``step`` is about to be logged."""
        self._enter_secure(step)
        redos = float(row.get("overflow_redos", 0.0))
        if redos > self.redos:
            self.hooks.event(
                f"secure phase: {redos - self.redos:.0f} fixed-point wrap-around(s) repaired "
                f"by a redo before step {step} ({redos:.0f} in this launch)"
            )
            self.redos = redos


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
        self.pretrained_actors: list[Any] | None = None  # this launch's, for final_report
        self.pretrained_step: int | None = None  # which pre-training snapshot they are
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

    def final_report(self, seeds: Sequence[int]) -> dict[str, Any] | None:
        """The paper's Table 5 on the evaluation ``seeds`` (see
        :func:`~smpc_gym.agents.common.supply_chain_eval.evaluate_secure_run`): the secure
        policy, the pre-trained policy it started from, myopic and random play on the
        private game, and the cost block of this launch's secure updates.

        With a pre-training, ``"pretrained_step"`` says which of its snapshots the
        secure phase started from (see ``pretrain_select_every``), and the text says so.
        None when the plaintext actors are not both here (``reveal_final_weights:
        none``, or one party of a multi-machine launch).
        """
        if any(i not in self.actors for i in range(N_PLAYERS)):
            return None
        from smpc_gym.agents.common.supply_chain_eval import evaluate_secure_run

        report = evaluate_secure_run(
            [self.actors[i] for i in range(N_PLAYERS)],
            self.config,
            self.env_kwargs,
            self.seed,
            seeds,
            # the cost block needs secure updates (none in a run shorter than a batch)
            self.last_results if any(r["timing"]["updates"] for r in self.last_results) else None,
            pretrained=self.pretrained_actors,
        )
        if self.pretrained_step is not None:
            report["pretrained_step"] = self.pretrained_step
            report["text"] += (
                f"\npre-trained: the snapshot of simulated step {self.pretrained_step:,} "
                f"of {self.config.pretrain_steps:,} (the best-scoring on the simulated market)"
            )
        return report

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
            res = run_party(party_main, pc, (job, _DirectReporter(self, hooks, total_steps)))
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
            target=self._relay,
            args=(reports, _PhaseProgress(hooks, total_steps, self.env_steps), hooks, stop, errors),
            daemon=True,
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
        self,
        q: Any,
        phases: _PhaseProgress,
        hooks: TrainHooks,
        stop: threading.Event,
        errors: list[BaseException],
    ) -> None:
        """Launcher thread: merge both parties' rows per step; checkpoint when both saved;
        show pre-training progress and the phases (``phases``)."""
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
                if kind == "pretrain":
                    shown = {k: v for k, v in payload.items() if k != "total"}
                    phases.pretrain(step, int(payload["total"]), shown)
                elif kind == "log":
                    rows.setdefault(step, {})[rank] = payload
                    if len(rows[step]) == N_PLAYERS:
                        merged = self._merge(rows.pop(step))
                        phases.secure(step, merged)
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
            if res.get("pretrained_step") is not None:
                self.pretrained_step = int(res["pretrained_step"])
            if res.get("pretrained_actors"):
                self.pretrained_actors = [
                    self._actor_from_state(i, sd) for i, sd in enumerate(res["pretrained_actors"])
                ]
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
        self.actors = {
            int(k): self._actor_from_state(int(k), sd)
            for k, sd in dict(state.get("actors", {})).items()
        }

    def _actor_from_state(self, i: int, state: Mapping[str, Any]) -> torch.nn.Module:
        """Player ``i``'s plaintext actor with the weights ``state`` (a state dict)."""
        actor = maddpg.make_actor(
            2 * N_FEATURES, self.config.hidden, self.high[i], torch.Generator().manual_seed(0)
        )
        actor.load_state_dict({k: torch.as_tensor(v) for k, v in state.items()})
        return actor
