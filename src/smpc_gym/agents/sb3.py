"""Stable-Baselines3 DQN and PPO on ``GreedyMouse-v0`` — the well-known yardsticks.

Both train SB3's own implementation on ``gym.make("GreedyMouse-v0", obs_mode="features",
**env_kwargs)`` (``n_envs`` copies in SB3's ``DummyVecEnv``) and adapt ``learn()`` to the
runner's hooks with a callback that logs every ``log_every`` env steps and writes a
checkpoint whenever ``hooks.should_checkpoint`` says so.

``state_dict`` holds the policy's parameters (online and, for DQN, target Q-networks),
the optimiser state and SB3's counters (``num_timesteps``, ``_n_updates``). What resume
means for SB3: the weights, optimiser and step counter continue exactly, and so does the
ε / learning-rate schedule (SB3 computes it from ``num_timesteps`` / total steps); the
DQN replay buffer and PPO's current rollout are NOT restored (they are refilled from
fresh episodes), and SB3's internal RNG streams restart from the seed.

Seeding: SB3 seeds its components with ``set_random_seed``, which also seeds Python's,
numpy's and torch's *global* generators — a documented departure from the project's
no-global-RNG rule, confined to these two wrappers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from smpc_gym.agents.base import Algorithm, TrainHooks


def _make_venv(env_kwargs: Mapping[str, Any], n_envs: int, seed: int) -> Any:
    from stable_baselines3.common.env_util import make_vec_env

    from smpc_gym.envs.registry import get_env_spec

    kwargs, spec = dict(env_kwargs), get_env_spec("greedy_mouse")
    return make_vec_env(lambda: spec.make(**kwargs), n_envs=n_envs, seed=seed)


def _check_positive(cfg: Any, names: Sequence[str]) -> None:
    for name in names:
        if getattr(cfg, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(cfg, name)!r}")


def _hook_callback(owner: _SB3Base, hooks: TrainHooks, log_every: int) -> Any:
    from stable_baselines3.common.callbacks import BaseCallback

    class _HooksCallback(BaseCallback):
        """Forwards SB3 progress to the runner's hooks (logs and checkpoints)."""

        def __init__(self) -> None:
            super().__init__(verbose=0)
            self.next_log = (owner.env_steps // log_every + 1) * log_every
            self.last_logged = -1
            self.cheese = 0
            self.deaths = 0
            self.steps = 0

        def _on_step(self) -> bool:
            for info in self.locals.get("infos", ()):
                self.cheese += int(bool(info.get("cheese_eaten", False)))
                self.deaths += int(bool(info.get("eaten", False)))
            n = int(self.model.num_timesteps)
            self.steps += n - owner.env_steps
            owner.env_steps = n
            due = hooks.should_checkpoint(n)
            if n >= self.next_log or due:
                self._log(n)
            if due:
                hooks.checkpoint(n)
            return True

        def _log(self, n: int) -> None:
            if n == self.last_logged:
                return
            steps = max(self.steps, 1)
            metrics = {
                "train/cheese_per_1000_steps": 1000.0 * self.cheese / steps,
                "train/deaths_per_1000_steps": 1000.0 * self.deaths / steps,
            }
            buf = self.model.ep_info_buffer
            if buf:
                metrics["train/episode_return"] = float(np.mean([e["r"] for e in buf]))
            if hasattr(self.model, "exploration_rate"):
                metrics["epsilon"] = float(self.model.exploration_rate)
            hooks.log(n, metrics)
            self.cheese = self.deaths = self.steps = 0
            self.last_logged = n
            self.next_log = (n // log_every + 1) * log_every

        def _on_training_end(self) -> None:
            self._log(int(self.model.num_timesteps))

    return _HooksCallback()


class _SB3Base(Algorithm):
    """Shared SB3 adapter: model construction in subclasses, train/act/state here."""

    envs: ClassVar[tuple[str, ...]] = ("greedy_mouse",)

    def __init__(self, config: Any, env_kwargs: Mapping[str, Any], seed: int) -> None:
        env_kwargs = {"obs_mode": "features", **dict(env_kwargs)}
        super().__init__(config, env_kwargs, seed)
        self.venv = _make_venv(self.env_kwargs, config.n_envs, self.seed)
        self.model = self._build_model()

    def _build_model(self) -> Any:
        raise NotImplementedError

    def train(self, total_steps: int, hooks: TrainHooks) -> None:
        """``model.learn`` until ``num_timesteps >= total_steps`` (PPO may overshoot by
        less than one rollout of ``n_steps * n_envs``)."""
        remaining = int(total_steps) - int(self.model.num_timesteps)
        if remaining <= 0:
            return
        self.model.learn(
            total_timesteps=remaining,
            callback=_hook_callback(self, hooks, self.config.log_every),
            reset_num_timesteps=False,
            progress_bar=False,
        )
        self.env_steps = int(self.model.num_timesteps)

    def act_batch(self, obs: np.ndarray, epsilon: float = 0.0) -> np.ndarray:
        """Greedy actions for a batch of observations (``epsilon`` is not supported)."""
        actions, _ = self.model.predict(np.asarray(obs, dtype=np.float32), deterministic=True)
        return np.asarray(actions, dtype=np.int64)

    def act(self, obs: Any, deterministic: bool = True) -> int:
        """SB3's ``predict`` for one observation."""
        action, _ = self.model.predict(
            np.asarray(obs, dtype=np.float32), deterministic=deterministic
        )
        return int(action)

    def state_dict(self) -> dict[str, Any]:
        """Policy parameters, optimiser state and SB3's step / update counters."""
        return {
            "policy": self.model.policy.state_dict(),
            "optimizer": self.model.policy.optimizer.state_dict(),
            "num_timesteps": int(self.model.num_timesteps),
            "n_updates": int(getattr(self.model, "_n_updates", 0)),
            "env_steps": int(self.env_steps),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (the replay buffer / rollout is not
        part of it: see the module docstring)."""
        self.model.policy.load_state_dict(state["policy"])
        self.model.policy.optimizer.load_state_dict(state["optimizer"])
        self.model.num_timesteps = int(state["num_timesteps"])
        self.model._n_updates = int(state["n_updates"])
        self.env_steps = int(state["env_steps"])


@dataclass
class DQNConfig:
    """SB3 DQN hyper-parameters (names follow ``stable_baselines3.DQN``).

    Attributes:
        n_envs: copies of the env in SB3's DummyVecEnv.
        learning_rate: Adam learning rate.
        buffer_size: replay capacity.
        learning_starts: env steps before learning starts.
        batch_size: minibatch size.
        gamma: discount.
        train_freq: env ``step()`` calls between training phases.
        gradient_steps: gradient steps per training phase.
        target_update_interval: env steps between target-network copies.
        exploration_fraction: fraction of the run over which ε decays.
        exploration_initial_eps: initial ε.
        exploration_final_eps: final ε.
        max_grad_norm: gradient clip.
        net_arch: hidden-layer sizes of the Q-network.
        log_every: env steps between training-metric rows.
    """

    n_envs: int = 1
    learning_rate: float = 5e-4
    buffer_size: int = 100_000
    learning_starts: int = 5_000
    batch_size: int = 128
    gamma: float = 0.99
    train_freq: int = 4
    gradient_steps: int = 1
    target_update_interval: int = 2_000
    exploration_fraction: float = 0.2
    exploration_initial_eps: float = 1.0
    exploration_final_eps: float = 0.05
    max_grad_norm: float = 10.0
    net_arch: tuple[int, ...] = (128, 128)
    log_every: int = 5_000

    def __post_init__(self) -> None:
        self.net_arch = tuple(int(h) for h in self.net_arch)
        _check_positive(
            self,
            (
                "n_envs",
                "buffer_size",
                "batch_size",
                "train_freq",
                "target_update_interval",
                "log_every",
            ),
        )
        if not 0.0 < self.exploration_fraction <= 1.0:
            raise ValueError(
                f"exploration_fraction must be in (0, 1], got {self.exploration_fraction!r}"
            )


class SB3DQN(_SB3Base):
    """Stable-Baselines3's DQN (MlpPolicy) on GreedyMouse features."""

    name: ClassVar[str] = "sb3_dqn"
    Config: ClassVar[type] = DQNConfig

    def _build_model(self) -> Any:
        from stable_baselines3 import DQN

        c = self.config
        return DQN(
            "MlpPolicy",
            self.venv,
            learning_rate=c.learning_rate,
            buffer_size=c.buffer_size,
            learning_starts=c.learning_starts,
            batch_size=c.batch_size,
            gamma=c.gamma,
            train_freq=c.train_freq,
            gradient_steps=c.gradient_steps,
            target_update_interval=c.target_update_interval,
            exploration_fraction=c.exploration_fraction,
            exploration_initial_eps=c.exploration_initial_eps,
            exploration_final_eps=c.exploration_final_eps,
            max_grad_norm=c.max_grad_norm,
            policy_kwargs={"net_arch": list(c.net_arch)},
            seed=self.seed,
            device="cpu",
            verbose=0,
        )

    def train(self, total_steps: int, hooks: TrainHooks) -> None:
        """SB3 DQN ``learn``; ε decays over ``exploration_fraction`` of ``total_steps``."""
        super().train(total_steps, hooks)


@dataclass
class PPOConfig:
    """SB3 PPO hyper-parameters (names follow ``stable_baselines3.PPO``).

    Attributes:
        n_envs: copies of the env in SB3's DummyVecEnv.
        learning_rate: Adam learning rate.
        n_steps: rollout length per env.
        batch_size: minibatch size.
        n_epochs: optimisation epochs per rollout.
        gamma: discount.
        gae_lambda: GAE λ.
        clip_range: PPO clip ε.
        ent_coef: entropy bonus.
        vf_coef: value-loss weight.
        max_grad_norm: gradient clip.
        net_arch: hidden-layer sizes of the policy and value MLPs.
        log_every: env steps between training-metric rows.
    """

    n_envs: int = 8
    learning_rate: float = 3e-4
    n_steps: int = 256
    batch_size: int = 256
    n_epochs: int = 4
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    net_arch: tuple[int, ...] = (64, 64)
    log_every: int = 5_000

    def __post_init__(self) -> None:
        self.net_arch = tuple(int(h) for h in self.net_arch)
        _check_positive(self, ("n_envs", "n_steps", "batch_size", "n_epochs", "log_every"))


class SB3PPO(_SB3Base):
    """Stable-Baselines3's PPO (MlpPolicy) on GreedyMouse features."""

    name: ClassVar[str] = "sb3_ppo"
    Config: ClassVar[type] = PPOConfig

    def _build_model(self) -> Any:
        from stable_baselines3 import PPO

        c = self.config
        return PPO(
            "MlpPolicy",
            self.venv,
            learning_rate=c.learning_rate,
            n_steps=c.n_steps,
            batch_size=c.batch_size,
            n_epochs=c.n_epochs,
            gamma=c.gamma,
            gae_lambda=c.gae_lambda,
            clip_range=c.clip_range,
            ent_coef=c.ent_coef,
            vf_coef=c.vf_coef,
            max_grad_norm=c.max_grad_norm,
            policy_kwargs={"net_arch": list(c.net_arch)},
            seed=self.seed,
            device="cpu",
            verbose=0,
        )
