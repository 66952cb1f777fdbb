"""The env registry: one :class:`EnvSpec` per environment, the only place env facts live.

Everything above the env layer that needs to know something about an env — how to build
it (single or batched), which keyword arguments it takes and their types, how long an
episode is, who plays it, how a policy is evaluated on it, what the scripted baselines
do on it — asks its spec here instead of branching on the env's name::

    from smpc_gym.envs.registry import get_env_spec

    spec = get_env_spec("greedy_mouse")
    env = spec.make(obs_mode="features")       # gym.make("GreedyMouse-v0", ...)
    steps = 5 * spec.episode_length({})       # 5 episodes in env steps (5,000)
    body = spec.evaluate(policy, {}, seeds=[10_000, 10_001])

Specs import their env modules lazily, so importing this module is cheap (it is what
``import smpc_gym`` uses to register the envs with Gymnasium and PettingZoo).

The two specs:

* ``greedy_mouse``: Gymnasium id ``GreedyMouse-v0`` (:meth:`EnvSpec.make` is
  ``gym.make``, with its TimeLimit), a native vector env (:meth:`EnvSpec.make_vec`),
  episode length ``max_episode_steps`` (default 1000), single-agent (``players`` is
  empty); PettingZoo id ``smpc/GreedyMouse-v0`` is the multi-mouse game.
* ``supply_chain``: PettingZoo id ``smpc/SupplyChain-v0`` (:meth:`EnvSpec.make` is
  ``supply_chain_v0.parallel_env``), no vector env (the batched game is
  :class:`~smpc_gym.envs.supply_chain.game.SupplyChainGame`), episode length
  ``max_cycles`` (default 40), players ``player_0`` and ``player_1``.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from smpc_gym.envs.evaluation import PolicyRun
from smpc_gym.envs.greedy_mouse import ENV_ID

__all__ = ["ENV_NAMES", "EnvSpec", "env_specs", "get_env_spec"]


@dataclass(frozen=True)
class EnvSpec:
    """Everything the layers above need to know about one environment.

    Attributes:
        name: the short name (``--env``, preset sections, run folders).
        gym_id: the Gymnasium id ``import smpc_gym`` registers (single-agent form), or
            None; :meth:`make` builds it with ``gym.make``.
        gym_entry_point, vector_entry_point: the Gymnasium entry points registered
            under ``gym_id`` (``"module:Class"``).
        pettingzoo_id: the PettingZoo id registered in both the ``"parallel"`` and
            ``"aec"`` registries, or None.
        entry_module: the PettingZoo-style entry module (``smpc_gym.<name>_v0``) with
            ``parallel_env``/``env`` registered under ``pettingzoo_id``. For GreedyMouse
            this is the multi-mouse game, not what :meth:`make` builds.
        length_kwarg: the env kwarg that sets the episode length.
        default_length: the episode length when that kwarg is not given.
        players: the agents' names in the env's obs/action dicts; ``()`` for a
            single-agent Gymnasium env (plain obs and action).
        eval_keys: the ``eval.json`` keys only this env's evaluation has.
    """

    name: str
    gym_id: str | None
    gym_entry_point: str | None
    vector_entry_point: str | None
    pettingzoo_id: str | None
    entry_module: str | None
    length_kwarg: str
    default_length: int
    players: tuple[str, ...]
    eval_keys: tuple[str, ...]
    _make: Callable[..., Any] = dataclasses.field(repr=False)
    _make_vec: Callable[..., Any] | None = dataclasses.field(repr=False)
    _kwarg_types: Callable[[], dict[str, Any]] = dataclasses.field(repr=False)
    _rollout: Callable[[], ModuleType] = dataclasses.field(repr=False)
    _policies: Callable[[], ModuleType] = dataclasses.field(repr=False)
    _policy_kwargs: Mapping[str, Mapping[str, Any]] = dataclasses.field(repr=False)

    def make(self, **kwargs: Any) -> Any:
        """Build one env with these kwargs (``render_mode`` included)."""
        return self._make(**kwargs)

    def make_vec(self, num_envs: int, **kwargs: Any) -> Any:
        """Build ``num_envs`` natively batched worlds; ValueError if the env has none."""
        if self._make_vec is None:
            raise ValueError(f"env {self.name!r} has no vector env (make_vec)")
        return self._make_vec(num_envs, **kwargs)

    @property
    def ids(self) -> tuple[str, ...]:
        """Every other name the runner accepts for this env: its Gymnasium id (also as
        ``smpc_gym:<id>``), its PettingZoo id (also without the ``smpc/`` prefix) and its
        PettingZoo entry module's name (``greedy_mouse_v0``)."""
        names: list[str] = []
        if self.gym_id:
            names += [self.gym_id, f"smpc_gym:{self.gym_id}"]
        if self.pettingzoo_id:
            names += [self.pettingzoo_id, self.pettingzoo_id.split("/", 1)[-1]]
        if self.entry_module:
            names.append(self.entry_module.rsplit(".", 1)[-1])
        return tuple(dict.fromkeys(n for n in names if n != self.name))

    def spaces(self, **kwargs: Any) -> tuple[Any, Any]:
        """``(observation_space, action_space)`` of one env made with ``kwargs``.

        For a multi-player env, the first player's spaces.
        """
        env = self.make(**kwargs)
        try:
            if self.players:
                first = self.players[0]
                return env.observation_space(first), env.action_space(first)
            return env.observation_space, env.action_space
        finally:
            env.close()

    @property
    def has_vector_env(self) -> bool:
        """True when :meth:`make_vec` is available."""
        return self._make_vec is not None

    def kwarg_types(self) -> dict[str, Any]:
        """Env kwarg name → type annotation (``render_mode`` excluded: not a run setting)."""
        return self._kwarg_types()

    def episode_length(self, env_kwargs: Mapping[str, Any]) -> int:
        """Env steps per episode under ``env_kwargs``."""
        return int(env_kwargs.get(self.length_kwarg, self.default_length))

    def with_episode_length(self, env_kwargs: Mapping[str, Any], steps: int) -> dict[str, Any]:
        """A copy of ``env_kwargs`` whose episodes last ``steps`` env steps."""
        return {**env_kwargs, self.length_kwarg: int(steps)}

    @property
    def evaluate(self) -> Callable[..., dict[str, Any]]:
        """The env's evaluation, ``evaluate(policy, env_kwargs, seeds, epsilon=0.0,
        render_mode=None) -> dict``: one episode of ``policy`` per seed; returns the env's
        part of ``eval.json`` (returns, their summary, ``mean_episode_steps`` and
        :attr:`eval_keys`)."""
        return self._rollout().evaluate_policy

    @property
    def run_policy(self) -> Callable[..., PolicyRun]:
        """The env's plain run of a fixed policy, ``run_policy(policy, env_kwargs, seed,
        start_step, total_steps, log_every)``: yields ``(env_step, episodes_ended, row or
        None)`` after every step, with a row of training metrics every ``log_every``
        steps and at the end."""
        return self._rollout().run_policy

    @property
    def baseline_policy(self) -> Callable[..., Callable[[Any], Any]]:
        """The env's scripted policies, ``baseline_policy(kind, env_kwargs, rng,
        noise=0.0)``: ``kind`` ``"random"`` or ``"heuristic"``, ``rng`` a
        ``np.random.Generator``, ``noise`` the heuristic's jitter where it has one."""
        return self._policies().baseline_policy

    def policy_env_kwargs(self, kind: str) -> dict[str, Any]:
        """Env kwargs the baseline policy ``kind`` needs (e.g. the observation it reads)."""
        return dict(self._policy_kwargs.get(kind, {}))


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints.get(f.name, Any) for f in dataclasses.fields(cls)}


# -- GreedyMouse ----------------------------------------------------------------------

#: Steps per GreedyMouse episode unless ``max_episode_steps`` says otherwise.
GREEDY_MOUSE_EPISODE_STEPS = 1000


def _gm_make(**kwargs: Any) -> Any:
    import gymnasium as gym

    return gym.make(ENV_ID, **kwargs)


def _gm_make_vec(num_envs: int, **kwargs: Any) -> Any:
    import gymnasium as gym

    return gym.make_vec(
        ENV_ID,
        num_envs=int(num_envs),
        vectorization_mode="vector_entry_point",
        **kwargs,
    )


def _gm_kwarg_types() -> dict[str, Any]:
    from pathlib import Path

    from smpc_gym.envs.greedy_mouse.core import WorldConfig
    from smpc_gym.envs.greedy_mouse.maps import GridMap

    return {
        "map": str | Path | GridMap,
        **_field_types(WorldConfig),
        "max_episode_steps": int,  # gym.make's TimeLimit argument
    }


def _gm_rollout() -> ModuleType:
    from smpc_gym.envs.greedy_mouse import rollout

    return rollout


def _gm_policies() -> ModuleType:
    from smpc_gym.envs.greedy_mouse import policies

    return policies


# -- SupplyChain ----------------------------------------------------------------------


def _sc_make(**kwargs: Any) -> Any:
    from smpc_gym.envs.supply_chain.parallel import SupplyChainParallelEnv

    return SupplyChainParallelEnv(**kwargs)


def _sc_kwarg_types() -> dict[str, Any]:
    from smpc_gym.envs.supply_chain.game import SupplyChainConfig

    return _field_types(SupplyChainConfig)


def _sc_rollout() -> ModuleType:
    from smpc_gym.envs.supply_chain import rollout

    return rollout


def _sc_policies() -> ModuleType:
    from smpc_gym.envs.supply_chain import policies

    return policies


_SPECS: dict[str, EnvSpec] = {
    spec.name: spec
    for spec in (
        EnvSpec(
            name="greedy_mouse",
            gym_id=ENV_ID,
            gym_entry_point="smpc_gym.envs.greedy_mouse.env:GreedyMouseEnv",
            vector_entry_point="smpc_gym.envs.greedy_mouse.vector:GreedyMouseVectorEnv",
            pettingzoo_id="smpc/GreedyMouse-v0",
            entry_module="smpc_gym.greedy_mouse_v0",
            length_kwarg="max_episode_steps",
            default_length=GREEDY_MOUSE_EPISODE_STEPS,
            players=(),
            eval_keys=("cheese_per_1000_steps", "deaths_per_1000_steps", "mean_survival_steps"),
            _make=_gm_make,
            _make_vec=_gm_make_vec,
            _kwarg_types=_gm_kwarg_types,
            _rollout=_gm_rollout,
            _policies=_gm_policies,
            _policy_kwargs={"heuristic": {"obs_mode": "global"}},
        ),
        EnvSpec(
            name="supply_chain",
            gym_id=None,
            gym_entry_point=None,
            vector_entry_point=None,
            pettingzoo_id="smpc/SupplyChain-v0",
            entry_module="smpc_gym.supply_chain_v0",
            length_kwarg="max_cycles",
            default_length=40,
            players=("player_0", "player_1"),
            eval_keys=("players", "total_reward", "total_ncr", "total_wastage_units"),
            _make=_sc_make,
            _make_vec=None,
            _kwarg_types=_sc_kwarg_types,
            _rollout=_sc_rollout,
            _policies=_sc_policies,
            _policy_kwargs={},
        ),
    )
}

#: Environment names understood by the runner (``--env``), in registry order.
ENV_NAMES: tuple[str, ...] = tuple(_SPECS)


def env_specs() -> tuple[EnvSpec, ...]:
    """Every registered :class:`EnvSpec`, in :data:`ENV_NAMES` order."""
    return tuple(_SPECS.values())


def get_env_spec(name: str) -> EnvSpec:
    """The :class:`EnvSpec` of ``name``; ValueError naming the valid names otherwise."""
    try:
        return _SPECS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown env {name!r}; choose one of: {', '.join(ENV_NAMES)}") from None
