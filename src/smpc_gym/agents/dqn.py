"""DQN on GreedyMouse (features observation), CleanRL-style: read it top to bottom.

1. :class:`Config` — every hyper-parameter, documented.
2. :func:`make_q_network` — an MLP from observation features to one Q-value per action.
3. :class:`DQNLearner` — the learning unit: online and target Q-networks, ONE persistent
   Adam optimiser, a replay buffer, ε-greedy acting, and :meth:`DQNLearner.update`, one
   gradient step of the Huber TD loss (double-DQN target by default). It steps the worlds
   it is given (:meth:`DQNLearner.step`, :meth:`DQNLearner.local_train`) and exposes
   :meth:`~DQNLearner.get_weights` / :meth:`~DQNLearner.set_weights`, so federated DQN
   (plain and secure) reuses it unchanged as each data holder's local learner.
4. :class:`DQN` — the algorithm the runner sees: one learner on ``num_envs`` worlds of
   the batched vector env, logging and checkpointing through the hooks.

Env steps are counted per world transition (``num_envs`` per vector step). Gradient steps
happen once per ``train_every`` env steps after ``learning_starts``; the target network
is refreshed every ``target_update_every`` env steps (hard copy when ``tau == 1``).
Rewards are multiplied by ``reward_scale`` for the loss only (logged metrics are raw).
Truncation at the time limit bootstraps; only ``terminated`` stops the bootstrap.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from smpc_gym.agents.base import Algorithm, TrainHooks, numpy_generator, torch_generator
from smpc_gym.agents.common.cadence import Cadence
from smpc_gym.agents.common.networks import mlp
from smpc_gym.agents.common.replay import ReplayBuffer
from smpc_gym.agents.common.schedules import check_exploration_fields, exploration_schedule
from smpc_gym.agents.common.vector_worlds import VectorWorlds


# --------------------------------------------------------------------------- config
@dataclass
class Config:
    """DQN hyper-parameters.

    Attributes:
        num_envs: worlds of the vector env stepped together (env steps per vector step).
        hidden: hidden-layer sizes of the Q-network MLP.
        lr: Adam learning rate.
        gamma: discount.
        buffer_size: replay capacity (transitions).
        batch_size: transitions per gradient step.
        learning_starts: env steps of pure collection before the first gradient step.
        train_every: env steps per gradient step (e.g. 4 with ``num_envs=8`` → 2 gradient
            steps per vector step).
        target_update_every: env steps between target-network updates.
        tau: target update rate: 1.0 = hard copy, < 1 = Polyak averaging.
        eps_start: ε at step 0.
        eps_end: final ε.
        exploration_fraction: fraction of the run's total env steps over which ε decays
            linearly from ``eps_start`` to ``eps_end`` (as SB3's ``exploration_fraction``),
            so a short ``--steps`` run still ends at ``eps_end``.
        eps_decay_steps: if set, the decay lasts this many env steps whatever the run
            length (overrides ``exploration_fraction``); None (default) uses the fraction.
        double_dqn: pick the bootstrap action with the online net (double DQN).
        max_grad_norm: gradient-norm clip (0 disables).
        reward_scale: rewards are multiplied by this in the loss.
        log_every: env steps between training-metric rows.
    """

    num_envs: int = 8
    hidden: tuple[int, ...] = (128, 128)
    lr: float = 5e-4
    gamma: float = 0.99
    buffer_size: int = 100_000
    batch_size: int = 128
    learning_starts: int = 5_000
    train_every: int = 4
    target_update_every: int = 2_000
    tau: float = 1.0
    eps_start: float = 1.0
    eps_end: float = 0.05
    exploration_fraction: float = 1 / 6  # 50,000 of the preset's 300,000 steps
    eps_decay_steps: int | None = None
    double_dqn: bool = True
    max_grad_norm: float = 10.0
    reward_scale: float = 0.01
    log_every: int = 5_000

    def __post_init__(self) -> None:
        self.hidden = tuple(int(h) for h in self.hidden)
        positive = (
            "num_envs",
            "buffer_size",
            "batch_size",
            "train_every",
            "target_update_every",
            "log_every",
        )
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        if not 0.0 <= self.gamma < 1.0:
            raise ValueError(f"gamma must be in [0, 1), got {self.gamma!r}")
        if not 0.0 < self.tau <= 1.0:
            raise ValueError(f"tau must be in (0, 1], got {self.tau!r}")
        check_exploration_fields(self)
        if self.learning_starts < 0:
            raise ValueError(f"learning_starts must be >= 0, got {self.learning_starts!r}")
        if self.max_grad_norm < 0:
            raise ValueError(f"max_grad_norm must be >= 0, got {self.max_grad_norm!r}")


# -------------------------------------------------------------------------- network
def make_q_network(
    obs_dim: int, num_actions: int, hidden: Sequence[int], generator: torch.Generator
) -> nn.Sequential:
    """The Q-network: ``obs_dim → hidden... → num_actions``, ReLU, seeded by ``generator``."""
    return mlp(obs_dim, hidden, num_actions, generator=generator, activation="relu")


# -------------------------------------------------------------------------- learner
class DQNLearner:
    """One DQN learning unit (the whole agent in :class:`DQN`; one data holder in
    federated DQN).

    Args:
        config: the DQN :class:`Config`.
        obs_dim: length of the (flat, float) observation.
        num_actions: size of the discrete action space.
        seed: seeds the network initialisation, exploration and replay sampling.
    """

    def __init__(self, config: Config, obs_dim: int, num_actions: int, seed: int) -> None:
        self.config = config
        self.obs_dim = int(obs_dim)
        self.num_actions = int(num_actions)
        self.rng = numpy_generator(seed)
        self.q = make_q_network(obs_dim, num_actions, config.hidden, torch_generator(seed))
        self.target = copy.deepcopy(self.q)
        self.target.requires_grad_(False)
        self.optimizer = torch.optim.Adam(self.q.parameters(), lr=config.lr)
        self.buffer = ReplayBuffer(config.buffer_size, (self.obs_dim,), np.float32)
        self.run_steps: int | None = None  # the run length ε is scheduled over
        self.epsilon = exploration_schedule(config, None)
        self.env_steps = 0  # transitions collected by this learner
        self.grad_steps = 0
        self._update_credit = 0.0
        self._last_target_update = 0
        self.last_loss = float("nan")
        self.last_q = float("nan")

    def set_run_length(self, total_steps: int) -> None:
        """Size the ε schedule for a run of ``total_steps`` env steps (see
        :func:`~smpc_gym.agents.common.schedules.exploration_schedule`)."""
        self.run_steps = int(total_steps)
        self.epsilon = exploration_schedule(self.config, self.run_steps)

    # acting -----------------------------------------------------------------------
    @torch.no_grad()
    def q_values(self, obs: np.ndarray) -> np.ndarray:
        """Q-values ``(n, num_actions)`` of a batch of observations."""
        x = torch.as_tensor(np.asarray(obs, dtype=np.float32).reshape(-1, self.obs_dim))
        return self.q(x).numpy()

    def act_batch(self, obs: np.ndarray, epsilon: float = 0.0) -> np.ndarray:
        """ε-greedy actions for a batch of observations."""
        actions = self.q_values(obs).argmax(axis=1)
        if epsilon > 0.0:
            explore = self.rng.random(actions.shape[0]) < epsilon
            if explore.any():
                actions[explore] = self.rng.integers(0, self.num_actions, int(explore.sum()))
        return actions

    # one gradient step --------------------------------------------------------------
    def update(self) -> float:
        """One gradient step on a replay batch; returns the Huber loss."""
        cfg = self.config
        b = self.buffer.sample(cfg.batch_size, self.rng)
        with torch.no_grad():
            next_target = self.target(b["next_obs"])
            if cfg.double_dqn:
                next_a = self.q(b["next_obs"]).argmax(dim=1, keepdim=True)
                next_v = next_target.gather(1, next_a).squeeze(1)
            else:
                next_v = next_target.max(dim=1).values
            td_target = b["rewards"] * cfg.reward_scale + cfg.gamma * next_v * (
                1.0 - b["terminated"]
            )
        q_sa = self.q(b["obs"]).gather(1, b["actions"].unsqueeze(1)).squeeze(1)
        loss = F.smooth_l1_loss(q_sa, td_target)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.max_grad_norm > 0:
            nn.utils.clip_grad_norm_(self.q.parameters(), cfg.max_grad_norm)
        self.optimizer.step()
        self.grad_steps += 1
        self.last_loss = float(loss.item())
        self.last_q = float(q_sa.mean().item())
        return self.last_loss

    def update_target(self) -> None:
        """Move the target network toward the online one (copy when ``tau == 1``)."""
        tau = self.config.tau
        with torch.no_grad():
            for t, p in zip(self.target.parameters(), self.q.parameters(), strict=True):
                if tau >= 1.0:
                    t.copy_(p)
                else:
                    t.lerp_(p, tau)

    # interacting with worlds ------------------------------------------------------
    def step(self, worlds: VectorWorlds, epsilon: float | None = None) -> int:
        """One vector step of ``worlds``: act, store, and the gradient steps now due.

        ``epsilon`` overrides the learner's own schedule (federated DQN drives ε by the
        total env steps of all holders). Returns the number of transitions collected.
        """
        cfg = self.config
        eps = self.epsilon(self.env_steps) if epsilon is None else float(epsilon)
        actions = self.act_batch(worlds.obs, eps)
        tr = worlds.step(actions)
        n = len(tr)
        if n:
            self.buffer.add(tr.obs, tr.actions, tr.rewards, tr.next_obs, tr.terminated)
        self.env_steps += n
        if self.env_steps >= cfg.learning_starts and len(self.buffer) >= cfg.batch_size:
            self._update_credit += n / cfg.train_every
            while self._update_credit >= 1.0:
                self.update()
                self._update_credit -= 1.0
        if self.env_steps - self._last_target_update >= cfg.target_update_every:
            self.update_target()
            self._last_target_update = self.env_steps
        return n

    def local_train(self, worlds: VectorWorlds, steps: int, epsilon: float | None = None) -> int:
        """Collect and learn on ``worlds`` for at least ``steps`` env steps; returns how
        many were taken."""
        taken = 0
        while taken < steps:
            taken += self.step(worlds, epsilon)
        return taken

    # weights for federated averaging ------------------------------------------------
    def get_weights(self) -> dict[str, torch.Tensor]:
        """A copy of the online Q-network's parameters (``state_dict`` order)."""
        return {k: v.detach().clone() for k, v in self.q.state_dict().items()}

    def set_weights(self, weights: Mapping[str, torch.Tensor]) -> None:
        """Load online Q-network parameters (the target network and the optimiser's
        moments are kept: they follow on their own schedule)."""
        self.q.load_state_dict(dict(weights))

    # checkpointing ------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Networks, optimiser, replay buffer, counters and the generator state."""
        return {
            "q": self.q.state_dict(),
            "target": self.target.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "buffer": self.buffer.state_dict(),
            "rng": self.rng.bit_generator.state,
            "env_steps": int(self.env_steps),
            "grad_steps": int(self.grad_steps),
            "update_credit": float(self._update_credit),
            "last_target_update": int(self._last_target_update),
            "run_steps": -1 if self.run_steps is None else int(self.run_steps),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        self.q.load_state_dict(state["q"])
        self.target.load_state_dict(state["target"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.buffer.load_state_dict(state["buffer"])
        self.rng.bit_generator.state = dict(state["rng"])
        self.env_steps = int(state["env_steps"])
        self.grad_steps = int(state["grad_steps"])
        self._update_credit = float(state["update_credit"])
        self._last_target_update = int(state["last_target_update"])
        run_steps = int(state.get("run_steps", -1))  # absent in older checkpoints
        if run_steps >= 0:
            self.set_run_length(run_steps)


def probe_spaces(env_kwargs: Mapping[str, Any]) -> tuple[int, int]:
    """``(obs_dim, num_actions)`` of ``GreedyMouse-v0`` with these kwargs (flat float obs)."""
    import gymnasium as gym

    from smpc_gym.envs.registry import get_env_spec

    observation_space, action_space = get_env_spec("greedy_mouse").spaces(**dict(env_kwargs))
    shape = observation_space.shape
    if shape is None or len(shape) != 1:
        raise ValueError(
            f"DQN needs a flat vector observation (obs_mode='features'), got space "
            f"{observation_space} for obs_mode={env_kwargs.get('obs_mode', 'local')!r}"
        )
    if not isinstance(action_space, gym.spaces.Discrete):
        raise ValueError(f"DQN needs a Discrete action space, got {action_space}")
    return int(shape[0]), int(action_space.n)


# ------------------------------------------------------------------------ algorithm
DQNConfig = Config  # the name the class body can use (its own ``Config`` is the ClassVar)


class DQN(Algorithm):
    """Deep Q-learning with replay and a target network on ``num_envs`` GreedyMouse worlds.

    Uses ``obs_mode="features"`` unless ``env_kwargs`` says otherwise (any flat vector
    observation works). ``act(obs)`` is greedy; ``act(obs, deterministic=False)`` is
    ε-greedy with the schedule's current ε.
    """

    name: ClassVar[str] = "dqn"
    envs: ClassVar[tuple[str, ...]] = ("greedy_mouse",)
    Config: ClassVar[type] = Config

    def __init__(self, config: DQNConfig, env_kwargs: Mapping[str, Any], seed: int) -> None:
        env_kwargs = {"obs_mode": "features", **dict(env_kwargs)}
        super().__init__(config, env_kwargs, seed)
        obs_dim, num_actions = probe_spaces(self.env_kwargs)
        self.learner = DQNLearner(config, obs_dim, num_actions, seed)
        self._world_rng = numpy_generator(seed + 1)

    def act_batch(self, obs: np.ndarray, epsilon: float = 0.0) -> np.ndarray:
        """Actions for a batch of observations (greedy unless ``epsilon`` > 0)."""
        return self.learner.act_batch(obs, epsilon)

    def act(self, obs: Any, deterministic: bool = True) -> int:
        """Greedy action (or ε-greedy with the current ε when not ``deterministic``)."""
        eps = 0.0 if deterministic else self.learner.epsilon(self.env_steps)
        return int(self.learner.act_batch(np.asarray(obs)[None], eps)[0])

    def train(self, total_steps: int, hooks: TrainHooks) -> None:
        """Train until ``total_steps`` env steps (summed over the worlds).

        ε decays over ``exploration_fraction`` of the run length given to the *first*
        ``train`` call; it is kept in the checkpoint, so a resumed run continues the same
        schedule and a finished run extended with ``--resume --steps N`` stays at
        ``eps_end`` instead of exploring again.
        """
        cfg = self.config
        if self.learner.run_steps is None:
            self.learner.set_run_length(total_steps)
        worlds = VectorWorlds(self.env_kwargs, cfg.num_envs, int(self._world_rng.integers(2**31)))
        cadence = Cadence(hooks, cfg.log_every, self.env_steps, total_steps)
        try:
            while self.env_steps < total_steps:
                self.learner.step(worlds)
                self.env_steps = self.learner.env_steps
                if cadence.after_step(self.env_steps, lambda: self._metrics(worlds)):
                    break
        finally:
            worlds.close()

    def _metrics(self, worlds: VectorWorlds) -> dict[str, float]:
        m = worlds.stats()
        worlds.reset_stats()
        m["epsilon"] = self.learner.epsilon(self.env_steps)
        m["loss"] = self.learner.last_loss
        m["q_mean"] = self.learner.last_q
        m["grad_steps"] = float(self.learner.grad_steps)
        return m

    def state_dict(self) -> dict[str, Any]:
        """The learner's state plus the world-seed generator."""
        return {
            "learner": self.learner.state_dict(),
            "world_rng": self._world_rng.bit_generator.state,
            "env_steps": int(self.env_steps),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        self.learner.load_state_dict(state["learner"])
        self._world_rng.bit_generator.state = dict(state["world_rng"])
        self.env_steps = int(state["env_steps"])
