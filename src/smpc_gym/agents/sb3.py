"""Stable-Baselines3 DQN and PPO on ``GreedyMouse-v0`` — the well-known yardsticks.

Both train SB3's own implementation on ``gym.make("GreedyMouse-v0", obs_mode="features",
**env_kwargs)`` (``n_envs`` copies in SB3's ``DummyVecEnv``) and adapt ``learn()`` to the
runner's hooks with a callback that drives a :class:`~smpc_gym.agents.common.cadence.Cadence`
(log rows every ``log_every`` env steps, periodic evaluations and checkpoints when the
runner asks; Ctrl-C ends ``learn`` after a checkpoint).

``state_dict`` holds the policy's parameters (online and, for DQN, target Q-networks),
the optimiser state and SB3's counters (``num_timesteps``, ``_n_updates``). What resume
means for SB3: the weights, optimiser and step counter continue exactly, and so does the
ε / learning-rate schedule (SB3 computes it from ``num_timesteps`` / total steps); the
DQN replay buffer and PPO's current rollout are NOT restored (they are refilled from
fresh episodes), and SB3's internal RNG streams restart from the seed.

Reward scale: ``reward_scale`` multiplies the rewards SB3 learns from (a ``VecEnv``
wrapper outside SB3's ``Monitor``, so logged episode returns stay raw). GreedyMouse's
rewards (-1 per step, +50, -100) are far from the unit scale SB3's defaults assume; PPO's
shared gradient clip is then dominated by the value loss and the policy barely moves
(the unscaled preset scored at the random level), so the ``sb3_ppo`` preset scales by
0.01, as rl-zoo normalises rewards.

SB3's own file: at the end of :meth:`train` under the runner, ``model.zip`` (SB3's
``model.save``: policy, optimiser and hyper-parameters, no replay buffer) is written into
the run folder beside ``model.pt``, so ``PPO.load("runs/.../model.zip")`` /
``DQN.load(...)`` open the trained policy with SB3 alone (see :meth:`export`). SB3's
``load`` unpickles parts of that file (cloudpickle): load only files you trust.

Seeding: SB3 seeds its components with ``set_random_seed``, which also seeds Python's,
numpy's and torch's *global* generators — a documented departure from the project's
no-global-RNG rule, confined to these two wrappers.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from smpc_gym.agents.base import Algorithm, TrainHooks
from smpc_gym.agents.common.cadence import Cadence

#: The file :meth:`_SB3Base.export` writes into the run folder (SB3's own format).
MODEL_ZIP = "model.zip"


def _make_venv(
    env_kwargs: Mapping[str, Any], n_envs: int, seed: int, reward_scale: float = 1.0
) -> Any:
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecEnvWrapper

    from smpc_gym.envs.registry import get_env_spec

    class _ScaleReward(VecEnvWrapper):
        """Multiplies the rewards by ``reward_scale`` (after Monitor: logs stay raw)."""

        def reset(self) -> Any:
            return self.venv.reset()

        def step_wait(self) -> Any:
            obs, rewards, dones, infos = self.venv.step_wait()
            return obs, rewards * reward_scale, dones, infos

    kwargs, spec = dict(env_kwargs), get_env_spec("greedy_mouse")
    venv = make_vec_env(lambda: spec.make(**kwargs), n_envs=n_envs, seed=seed)
    return venv if reward_scale == 1.0 else _ScaleReward(venv)


def _check_positive(cfg: Any, names: Sequence[str]) -> None:
    for name in names:
        if getattr(cfg, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(cfg, name)!r}")
    if not cfg.reward_scale > 0:
        raise ValueError(f"reward_scale must be > 0, got {cfg.reward_scale!r}")


def _hook_callback(owner: _SB3Base, hooks: TrainHooks, log_every: int, total_steps: int) -> Any:
    from stable_baselines3.common.callbacks import BaseCallback

    class _HooksCallback(BaseCallback):
        """Forwards SB3 progress to the runner's hooks through a :class:`Cadence`
        (logs, evaluations, checkpoints; returning False stops ``learn`` on Ctrl-C)."""

        def __init__(self) -> None:
            super().__init__(verbose=0)
            self.cadence = Cadence(hooks, log_every, owner.env_steps, total_steps)
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
            return not self.cadence.after_step(n, self._metrics)

        def _metrics(self) -> dict[str, float]:
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
            self.cheese = self.deaths = self.steps = 0
            return metrics

        def _on_training_end(self) -> None:
            self.cadence.finish(int(self.model.num_timesteps), self._metrics)

    return _HooksCallback()


class _SB3Base(Algorithm):
    """Shared SB3 adapter: model construction in subclasses, train/act/state here."""

    envs: ClassVar[tuple[str, ...]] = ("greedy_mouse",)

    def __init__(self, config: Any, env_kwargs: Mapping[str, Any], seed: int) -> None:
        env_kwargs = {"obs_mode": "features", **dict(env_kwargs)}
        super().__init__(config, env_kwargs, seed)
        self.venv = _make_venv(self.env_kwargs, config.n_envs, self.seed, config.reward_scale)
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
            callback=_hook_callback(self, hooks, self.config.log_every, int(total_steps)),
            reset_num_timesteps=False,
            progress_bar=False,
        )
        self.env_steps = int(self.model.num_timesteps)
        run_dir = getattr(hooks, "run_dir", None)  # the runner's hooks name the run folder
        if run_dir is not None:
            self.export(Path(run_dir) / MODEL_ZIP)

    def export(self, path: str | Path) -> Path:
        """Write SB3's own ``model.save`` file to ``path`` (atomically, with the normal
        umask permissions) and return the path.

        ``PPO.load(path)`` / ``DQN.load(path)`` reopen it with SB3 alone; its
        ``predict(obs, deterministic=True)`` is the policy :meth:`act` uses, so it
        reproduces the run's evaluation. The replay buffer is not included.
        """
        from smpc_gym.storage.files import atomic_write_bytes

        buf = io.BytesIO()
        self.model.save(buf)
        # plain bytes (SB3 must open it), written atomically with the umask's permissions
        return atomic_write_bytes(path, buf.getvalue())

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
        reward_scale: rewards are multiplied by this for learning (1.0: unchanged).
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
    reward_scale: float = 1.0
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
        reward_scale: rewards are multiplied by this for learning (1.0: unchanged).
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
    reward_scale: float = 1.0
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
