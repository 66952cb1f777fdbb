"""The contract between algorithms and the experiment runner (``train.py``).

Every algorithm module in :mod:`smpc_gym.agents` defines

* a ``Config`` dataclass whose fields are the algorithm's hyper-parameters (each
  documented in the class docstring; YAML presets and ``--set`` only override them), and
* a subclass of :class:`Algorithm` registered with :func:`register_algorithm`.

The runner (``smpc_gym.training``) owns the run folder: it resolves the config, creates
the algorithm, calls :meth:`Algorithm.train` with a :class:`TrainHooks` object (logging,
checkpoints, progress), writes checkpoints atomically from :meth:`Algorithm.state_dict`
and evaluates the final policy with :meth:`Algorithm.act`. Algorithms never write files
themselves except through :meth:`save`.

Resuming: ``state_dict()`` must capture everything needed to continue training with no
step lost or doubled: weights, optimiser state, replay buffer, schedules, generator
states and the env-step counter :attr:`Algorithm.env_steps`. Environments are rebuilt
and reset on resume (an episode in progress at the checkpoint is restarted; this is
documented behaviour).
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar, Protocol

import numpy as np
import torch

from smpc_gym.envs.registry import ENV_NAMES as ENV_NAMES  # the --env names
from smpc_gym.storage import payload


class TrainHooks(Protocol):
    """What the runner offers an algorithm during :meth:`Algorithm.train`.

    Algorithms do not keep their own "every N steps" bookkeeping: they end each loop
    iteration with :meth:`smpc_gym.agents.common.cadence.Cadence.after_step`, which calls
    these hooks in the right order (log, periodic evaluation, checkpoint, stop on Ctrl-C).
    """

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        """Record one row of metrics at env step ``step`` (CSV, TensorBoard, progress bar).

        ``step`` is the total number of env steps taken so far (summed over all worlds
        / players' joint steps). Rows must be logged with strictly increasing steps.
        """

    def should_checkpoint(self, step: int) -> bool:
        """True when a checkpoint is due at env step ``step`` (``--checkpoint-every``)."""

    def checkpoint(self, step: int) -> None:
        """Write a checkpoint now (the runner calls ``state_dict()``); ``step`` must
        equal ``algorithm.env_steps`` and be the step of the last logged row or later."""

    def stop_requested(self) -> bool:
        """True once the user pressed Ctrl-C: checkpoint this step and return from
        ``train`` (the runner then exits, naming the checkpoint)."""

    def should_evaluate(self, step: int) -> bool:
        """True when a periodic evaluation (``--eval-every``) is due at ``step``."""

    def evaluate(self, step: int) -> Mapping[str, float]:
        """Evaluate the current policy on the fixed evaluation seeds; returns ``eval/…``
        metrics for the row logged at ``step`` (the caller logs them)."""

    def next_checkpoint(self, step: int) -> int | None:
        """The first env step after ``step`` at which a checkpoint is due (None: never)."""

    def next_evaluation(self, step: int) -> int | None:
        """The first env step after ``step`` at which an evaluation is due (None: never)."""

    def phase(self, name: str, total: int | None = None, start: int | None = None) -> None:
        """Name the phase the algorithm is in (``start-up``, ``pre-training``, ``secure
        phase`` …) for the progress display; ``total`` gives the phase its own length
        (counted from ``start``, default 0), whose rate and ETA the display then shows."""

    def advance(self, step: int, metrics: Mapping[str, float] | None = None) -> None:
        """Show progress to ``step`` of the current phase without logging a row (a phase
        whose steps are not the run's env steps, e.g. plaintext pre-training)."""

    def event(self, message: str) -> None:
        """Show a one-off event (e.g. a redone secure update) as one line."""


class NullHooks:
    """Hooks that do nothing: for tests and for using an algorithm without the runner."""

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        pass

    def should_checkpoint(self, step: int) -> bool:
        return False

    def checkpoint(self, step: int) -> None:
        pass

    def stop_requested(self) -> bool:
        return False

    def should_evaluate(self, step: int) -> bool:
        return False

    def evaluate(self, step: int) -> Mapping[str, float]:
        return {}

    def next_checkpoint(self, step: int) -> int | None:
        return None

    def next_evaluation(self, step: int) -> int | None:
        return None

    def phase(self, name: str, total: int | None = None, start: int | None = None) -> None:
        pass

    def advance(self, step: int, metrics: Mapping[str, float] | None = None) -> None:
        pass

    def event(self, message: str) -> None:
        pass


class Algorithm(abc.ABC):
    """Base class of every algorithm.

    Subclasses set the class attributes, take ``(config, env_kwargs, seed)`` in their
    constructor, and implement the abstract methods.

    Attributes:
        name: the ``--algo`` name.
        envs: the ``--env`` names this algorithm supports.
        Config: the hyper-parameter dataclass.
        env_steps: env steps taken so far in training (part of ``state_dict``).
        launch_options: how this process was launched, for algorithms that run as one
            of several processes (``secure_maddpg``, ``secure_fed_dqn``). The runner sets
            it before :meth:`train` from the CLI flags ``--rank N``, ``--world-size N``
            and ``--rendezvous tcp://HOST:PORT`` as ``{"rank": int, "world_size": int,
            "rendezvous": str}`` (only the flags given; empty for an ordinary run, in
            which case a multi-party algorithm spawns its parties itself). It is not part
            of the config or the checkpoint, so a resumed party must be relaunched with
            the same flags.
    """

    name: ClassVar[str]
    envs: ClassVar[tuple[str, ...]]
    Config: ClassVar[type]
    launch_options: Mapping[str, Any] = MappingProxyType({})

    def __init__(self, config: Any, env_kwargs: Mapping[str, Any], seed: int) -> None:
        if not dataclasses.is_dataclass(config):
            raise TypeError(f"{type(self).__name__} needs a {self.Config.__name__} config")
        self.config: Any = config  # the subclass's Config (a dataclass instance)
        self.env_kwargs = dict(env_kwargs)
        self.seed = int(seed)
        self.env_steps = 0

    @abc.abstractmethod
    def train(self, total_steps: int, hooks: TrainHooks) -> None:
        """Train from ``self.env_steps`` until ``self.env_steps >= total_steps``.

        End every loop iteration with a :class:`~smpc_gym.agents.common.cadence.Cadence`'s
        ``after_step`` (it logs, evaluates, checkpoints when the hooks say so) and return
        early when it returns True (Ctrl-C: the checkpoint of this step is written).
        """

    @abc.abstractmethod
    def act(self, obs: Any, deterministic: bool = True) -> Any:
        """The policy's action for one observation.

        GreedyMouse: ``obs`` is one observation of ``GreedyMouseEnv`` built with
        ``self.env_kwargs``; returns an ``int``. SupplyChain: ``obs`` is the parallel
        env's ``{agent: observation}`` dict; returns ``{agent: action array}``.
        """

    @abc.abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: tensors, numpy arrays, plain Python values and
        generator states only (it is saved with ``torch.save`` and loaded with
        ``weights_only=True``)."""

    @abc.abstractmethod
    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""

    def final_report(self, seeds: Sequence[int]) -> dict[str, Any] | None:
        """The algorithm's own end-of-run report on the evaluation ``seeds``, or None.

        The runner calls it once after the final evaluation, prints its ``"text"`` and
        writes the whole dict (JSON-serialisable) to ``report.json`` in the run folder.
        Default: no report. Secure MADDPG returns the paper's Table 5 (its policy, the
        pre-trained policy, myopic and random play, and the cost of the secure phase).
        """
        return None

    def save(self, path: str | Path) -> None:
        """Save config, env kwargs, seed and state to ``path`` (atomic, verified file)."""
        save_algorithm(self, path)

    @classmethod
    def load(cls, path: str | Path) -> Algorithm:
        """Load an algorithm saved with :meth:`save` (its hash is checked first)."""
        algo = load_algorithm(path)
        if not isinstance(algo, cls):
            raise TypeError(f"{path} holds a {type(algo).__name__}, not a {cls.__name__}")
        return algo


def algorithm_payload(algo: Algorithm) -> dict[str, Any]:
    """The dict :func:`save_algorithm` writes (format of :mod:`smpc_gym.storage.payload`)."""
    return {
        "format": payload.FORMAT,
        "name": algo.name,
        "config": dataclasses.asdict(algo.config),
        "env_kwargs": dict(algo.env_kwargs),
        "seed": int(algo.seed),
        "env_steps": int(algo.env_steps),
        "state": algo.state_dict(),
        "versions": payload.versions(),
    }


def save_algorithm(algo: Algorithm, path: str | Path) -> None:
    """Save ``algo`` to ``path``: atomically, as a verified file (SHA-256 header)."""
    payload.write_payload(path, algorithm_payload(algo))


def build_config(config_cls: type, values: Mapping[str, Any]) -> Any:
    """Rebuild a config dataclass from a saved dict; unknown fields are an error."""
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValueError(
            f"unknown {config_cls.__name__} field(s) {unknown}; valid: {sorted(fields)}"
        )
    return config_cls(**dict(values))


def load_algorithm(path: str | Path) -> Algorithm:
    """Load an algorithm saved with :func:`save_algorithm`, rebuilt via the registry.

    The file's hash is verified before it is deserialised (``weights_only=True``).

    Raises:
        FileNotFoundError: no file at ``path``.
        smpc_gym.storage.IntegrityError: the file is damaged, unverified or not an
            algorithm file; the message names it.
    """
    saved = payload.read_payload(path)
    cls = get_algorithm(saved["name"])
    config = build_config(cls.Config, saved["config"])
    algo = cls(config, saved["env_kwargs"], saved["seed"])
    algo.load_state_dict(saved["state"])
    algo.env_steps = int(saved.get("env_steps", algo.env_steps))
    return algo


_REGISTRY: dict[str, str] = {
    # name -> "module:Class"; imported lazily so listing algorithms stays cheap.
    "random": "smpc_gym.agents.baselines:RandomAgent",
    "heuristic": "smpc_gym.agents.baselines:HeuristicAgent",
    "tabular_q": "smpc_gym.agents.tabular_q:TabularQ",
    "bandit": "smpc_gym.agents.bandit:Bandit",
    "dqn": "smpc_gym.agents.dqn:DQN",
    "fed_dqn": "smpc_gym.agents.fed_dqn:FedDQN",
    "secure_fed_dqn": "smpc_gym.agents.secure_fed_dqn:SecureFedDQN",
    "maddpg": "smpc_gym.agents.maddpg:MADDPG",
    "nds": "smpc_gym.agents.nds:NDS",
    "secure_maddpg": "smpc_gym.agents.secure_maddpg:SecureMADDPG",
    "sb3_dqn": "smpc_gym.agents.sb3:SB3DQN",
    "sb3_ppo": "smpc_gym.agents.sb3:SB3PPO",
}


def algorithm_names() -> list[str]:
    """All ``--algo`` names."""
    return sorted(_REGISTRY)


def get_algorithm(name: str) -> type[Algorithm]:
    """The algorithm class for ``name``; a clear error lists the valid names."""
    import importlib

    if name not in _REGISTRY:
        raise ValueError(
            f"unknown algorithm {name!r}; choose one of: {', '.join(algorithm_names())}"
        )
    module_name, cls_name = _REGISTRY[name].split(":")
    module = importlib.import_module(module_name)
    return getattr(module, cls_name)


def torch_generator(seed: int) -> torch.Generator:
    """A seeded ``torch.Generator`` (never use torch's global RNG)."""
    g = torch.Generator()
    g.manual_seed(int(seed))
    return g


def numpy_generator(seed: int) -> np.random.Generator:
    """A seeded ``np.random.Generator`` (never use numpy's global RNG)."""
    return np.random.default_rng(int(seed))
