"""A uniform experience-replay buffer in preallocated numpy arrays.

Transitions are added in batches (one row per world of a vector env) and sampled
uniformly with a passed-in ``np.random.Generator``. ``terminated`` marks true terminal
transitions only (no bootstrap); time-limit truncations are stored as non-terminal, so
the learner bootstraps from ``next_obs`` as it should.

The buffer's :meth:`state_dict` holds plain numpy arrays and ints, so a checkpoint
(``torch.save``, loaded with ``weights_only=True``) restores it exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch


class ReplayBuffer:
    """Fixed-capacity ring buffer of ``(obs, action, reward, next_obs, terminated)``.

    Args:
        capacity: maximum number of transitions kept (oldest overwritten first).
        obs_shape: shape of one observation.
        obs_dtype: numpy dtype used to store observations.
    """

    def __init__(
        self, capacity: int, obs_shape: tuple[int, ...], obs_dtype: Any = np.float32
    ) -> None:
        if capacity <= 0:
            raise ValueError(f"replay capacity must be positive, got {capacity!r}")
        self.capacity = int(capacity)
        self.obs = np.zeros((self.capacity, *obs_shape), dtype=obs_dtype)
        self.next_obs = np.zeros((self.capacity, *obs_shape), dtype=obs_dtype)
        self.actions = np.zeros(self.capacity, dtype=np.int64)
        self.rewards = np.zeros(self.capacity, dtype=np.float32)
        self.terminated = np.zeros(self.capacity, dtype=np.float32)
        self.pos = 0
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def add(
        self,
        obs: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        next_obs: np.ndarray,
        terminated: np.ndarray,
    ) -> None:
        """Add a batch of ``n`` transitions (first axis of every argument)."""
        n = int(np.shape(actions)[0])
        if n > self.capacity:
            raise ValueError(f"batch of {n} transitions exceeds capacity {self.capacity}")
        idx = (self.pos + np.arange(n)) % self.capacity
        self.obs[idx] = obs
        self.next_obs[idx] = next_obs
        self.actions[idx] = actions
        self.rewards[idx] = rewards
        self.terminated[idx] = terminated
        self.pos = int((self.pos + n) % self.capacity)
        self.size = int(min(self.size + n, self.capacity))

    def sample(self, batch_size: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        """``batch_size`` transitions drawn uniformly with replacement, as torch tensors."""
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        idx = rng.integers(0, self.size, size=batch_size)
        return {
            "obs": torch.as_tensor(self.obs[idx], dtype=torch.float32),
            "actions": torch.as_tensor(self.actions[idx]),
            "rewards": torch.as_tensor(self.rewards[idx]),
            "next_obs": torch.as_tensor(self.next_obs[idx], dtype=torch.float32),
            "terminated": torch.as_tensor(self.terminated[idx]),
        }

    def state_dict(self) -> dict[str, Any]:
        """The stored transitions (only the filled part) and the write position."""
        n = self.size
        return {
            "capacity": self.capacity,
            "pos": self.pos,
            "size": n,
            "obs": self.obs[:n].copy(),
            "next_obs": self.next_obs[:n].copy(),
            "actions": self.actions[:n].copy(),
            "rewards": self.rewards[:n].copy(),
            "terminated": self.terminated[:n].copy(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (capacities must match)."""
        if int(state["capacity"]) != self.capacity:
            raise ValueError(
                f"replay capacity mismatch: checkpoint has {state['capacity']}, "
                f"this buffer has {self.capacity}"
            )
        n = int(state["size"])
        for key in ("obs", "next_obs", "actions", "rewards", "terminated"):
            getattr(self, key)[:n] = np.asarray(state[key])
        self.size = n
        self.pos = int(state["pos"])
