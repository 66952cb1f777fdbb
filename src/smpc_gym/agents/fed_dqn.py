"""Federated DQN on GreedyMouse: N data holders, local DQN learners, FedAvg rounds.

Each of ``holders`` data holders owns its own ``num_envs`` worlds of the batched vector
env (its private experience: the worlds, the transitions and the replay buffer never
leave it) and a local :class:`~smpc_gym.agents.dqn.DQNLearner` with its own optimiser
and target network. One round:

1. every holder runs ``local_train`` for ``sync_every`` of its own env steps, starting
   from the current global weights;
2. the coordinator averages the holders' online Q-network weights with
   :func:`smpc_gym.federated.fedavg.fedavg`, weighted by the number of samples each
   holder collected in the round (FedAvg), and takes the server step
   ``global + server_lr · (average − global)`` (``server_lr = 1``: the average itself);
3. every holder loads the new global weights (``set_weights``); the global model is what
   :meth:`FedDQN.act` uses.

Only weights cross the holder boundary. ``secure_fed_dqn`` replaces step 2 by secure
aggregation (override :meth:`FedDQN.aggregate`) and keeps everything else.

Counting and schedules: ``env_steps`` is the total over all holders. ε decays with the
*total* env steps over ``exploration_fraction`` of the total run (``eps_decay_steps``,
when set, is a total too), so at any total step the holders explore as much as a single
DQN at the same step; ``learning_starts``, ``train_every``,
``target_update_every`` and ``buffer_size`` are per holder (local steps).

Progress per total env step: averaging the holders' parallel steps gives roughly *one*
step of a ``holders``-times larger batch, not ``holders`` steps. With dqn's
``train_every = 4`` on every holder, the global model therefore advances about
``1/holders`` as far per total env step as one DQN (measured: 4 holders learned far more
slowly than ``dqn``). The preset (``agents/fed_dqn.yaml``) compensates on the holders'
side: ``train_every = 1`` (one local gradient step per local env step, ``holders``× the
compute of one DQN) and ``target_update_every = 500`` local steps (= 2,000 total, as
dqn's). ``server_lr`` > 1 is the other lever (FedAvg with a server step size, Reddi et
al. 2021); ``server_lr = holders`` diverged in our measurement.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from smpc_gym.agents.base import Algorithm, TrainHooks, numpy_generator
from smpc_gym.agents.common.cadence import Cadence
from smpc_gym.agents.common.schedules import exploration_schedule
from smpc_gym.agents.common.vector_worlds import VectorWorlds
from smpc_gym.agents.dqn import Config as DQNConfig
from smpc_gym.agents.dqn import DQNLearner, probe_spaces


@dataclass
class Config(DQNConfig):
    """Federated-DQN hyper-parameters: every :class:`smpc_gym.agents.dqn.Config` field
    (per holder; ``num_envs`` is the number of worlds *each holder* owns, and
    ``exploration_fraction`` / ``eps_decay_steps`` refer to total env steps) plus:

    Attributes:
        holders: number of data holders (clients).
        sync_every: local env steps each holder takes between FedAvg rounds.
        server_lr: server step size η_s applied to the averaged update (FedAvg with a
            server learning rate, Reddi et al. 2021, "Adaptive Federated Optimization"):
            ``global ← global + η_s · mean_h(w_h − global)``. 1.0 is plain FedAvg.
    """

    num_envs: int = 2
    holders: int = 4
    sync_every: int = 500
    server_lr: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.holders < 1:
            raise ValueError(f"holders must be >= 1, got {self.holders!r}")
        if self.sync_every < 1:
            raise ValueError(f"sync_every must be >= 1, got {self.sync_every!r}")
        if not self.server_lr > 0:
            raise ValueError(f"server_lr must be > 0, got {self.server_lr!r}")


FedDQNConfig = Config  # the name the class body can use (its own ``Config`` is the ClassVar)


class FedDQN(Algorithm):
    """FedAvg over ``holders`` local DQN learners, each on its own worlds."""

    name: ClassVar[str] = "fed_dqn"
    envs: ClassVar[tuple[str, ...]] = ("greedy_mouse",)
    Config: ClassVar[type] = Config

    def __init__(self, config: FedDQNConfig, env_kwargs: Mapping[str, Any], seed: int) -> None:
        env_kwargs = {"obs_mode": "features", **dict(env_kwargs)}
        super().__init__(config, env_kwargs, seed)
        obs_dim, num_actions = probe_spaces(self.env_kwargs)
        # Every holder starts from the same initial weights (those of holder 0).
        self.learners = [
            DQNLearner(config, obs_dim, num_actions, seed + 1000 * h) for h in range(config.holders)
        ]
        init = self.learners[0].get_weights()
        for learner in self.learners:
            learner.set_weights(init)
            learner.target.load_state_dict(init)
        self.global_learner = DQNLearner(config, obs_dim, num_actions, seed)
        self.global_learner.set_weights(init)
        self.run_steps: int | None = None  # the run length ε is scheduled over
        self.epsilon = exploration_schedule(config, None)
        self.rounds = 0
        self._world_rng = numpy_generator(seed + 1)

    # aggregation (the step secure_fed_dqn replaces) -----------------------------------
    def aggregate(
        self, weights: Sequence[Mapping[str, torch.Tensor]], samples: Sequence[float]
    ) -> dict[str, torch.Tensor]:
        """FedAvg: the sample-weighted mean of the holders' weights."""
        from smpc_gym.federated.fedavg import fedavg

        return fedavg(weights, samples)

    def sync(self, samples: Sequence[float]) -> None:
        """One aggregation: average the holders' weights, take the server step
        (``server_lr``) from the current global weights, hand the result back."""
        avg = self.aggregate([lr.get_weights() for lr in self.learners], samples)
        eta = float(self.config.server_lr)
        if eta != 1.0:
            prev = self.global_learner.get_weights()
            avg = {k: prev[k] + eta * (avg[k] - prev[k]) for k in avg}
        for learner in self.learners:
            learner.set_weights(avg)
        self.global_learner.set_weights(avg)
        self.rounds += 1

    # acting -----------------------------------------------------------------------
    def act_batch(self, obs: np.ndarray, epsilon: float = 0.0) -> np.ndarray:
        """Actions of the global (averaged) model for a batch of observations."""
        return self.global_learner.act_batch(obs, epsilon)

    def act(self, obs: Any, deterministic: bool = True) -> int:
        """Greedy action of the global model (ε-greedy with the current ε otherwise)."""
        eps = 0.0 if deterministic else self.epsilon(self.env_steps)
        return int(self.global_learner.act_batch(np.asarray(obs)[None], eps)[0])

    # training ---------------------------------------------------------------------
    def train(self, total_steps: int, hooks: TrainHooks) -> None:
        """FedAvg rounds until ``total_steps`` env steps in total over all holders.

        ε decays over ``exploration_fraction`` of the run length given to the first
        ``train`` call (kept in the checkpoint, as in :meth:`DQN.train
        <smpc_gym.agents.dqn.DQN.train>`).
        """
        cfg = self.config
        if self.run_steps is None:
            self.set_run_length(total_steps)
        worlds = [
            VectorWorlds(self.env_kwargs, cfg.num_envs, int(self._world_rng.integers(2**31)))
            for _ in self.learners
        ]
        cadence = Cadence(hooks, cfg.log_every, self.env_steps, total_steps)
        try:
            while self.env_steps < total_steps:
                eps = self.epsilon(self.env_steps)
                samples = []
                for learner, w in zip(self.learners, worlds, strict=True):
                    samples.append(float(learner.local_train(w, cfg.sync_every, epsilon=eps)))
                self.sync(samples)
                self.env_steps = sum(lr.env_steps for lr in self.learners)
                if cadence.after_step(
                    self.env_steps, functools.partial(self._metrics, worlds, eps)
                ):
                    break
        finally:
            for w in worlds:
                w.close()

    def set_run_length(self, total_steps: int) -> None:
        """Size the ε schedule for a run of ``total_steps`` total env steps."""
        self.run_steps = int(total_steps)
        self.epsilon = exploration_schedule(self.config, self.run_steps)

    def _metrics(self, worlds: Sequence[VectorWorlds], eps: float) -> dict[str, float]:
        stats = [w.stats() for w in worlds]
        m: dict[str, float] = {}
        for key in stats[0]:
            vals = [s[key] for s in stats if key in s]
            m[key] = float(np.mean(vals))
        for w in worlds:
            w.reset_stats()
        m["epsilon"] = eps
        m["rounds"] = float(self.rounds)
        losses = [lr.last_loss for lr in self.learners if np.isfinite(lr.last_loss)]
        m["loss"] = float(np.mean(losses)) if losses else float("nan")
        m["grad_steps"] = float(sum(lr.grad_steps for lr in self.learners))
        return m

    # state ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Every holder's learner state, the global weights and the counters."""
        return {
            "learners": [lr.state_dict() for lr in self.learners],
            "global": self.global_learner.get_weights(),
            "rounds": int(self.rounds),
            "world_rng": self._world_rng.bit_generator.state,
            "env_steps": int(self.env_steps),
            "run_steps": -1 if self.run_steps is None else int(self.run_steps),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        if len(state["learners"]) != len(self.learners):
            raise ValueError(
                f"checkpoint has {len(state['learners'])} holders, this config has "
                f"{len(self.learners)}"
            )
        for learner, s in zip(self.learners, state["learners"], strict=True):
            learner.load_state_dict(s)
        self.global_learner.set_weights(state["global"])
        self.rounds = int(state["rounds"])
        self._world_rng.bit_generator.state = dict(state["world_rng"])
        self.env_steps = int(state["env_steps"])
        run_steps = int(state.get("run_steps", -1))  # absent in older checkpoints
        if run_steps >= 0:
            self.set_run_length(run_steps)
