"""smpc_gym: environments and agents for privacy-preserving multi-agent RL.

Importing the package registers its environments and nothing heavy is imported:

* Gymnasium: ``GreedyMouse-v0`` (``gym.make("GreedyMouse-v0")``, and
  ``gym.make("smpc_gym:GreedyMouse-v0")`` without importing this package first),
  with a natively batched ``vector_entry_point`` for ``gym.make_vec``.
* PettingZoo: ``smpc/GreedyMouse-v0`` (multi-mouse) and ``smpc/SupplyChain-v0``, in
  both the ``"parallel"`` and ``"aec"`` registries (``pettingzoo.make("parallel", ...)``).
* ``smpc_gym.greedy_mouse_v0`` and ``smpc_gym.supply_chain_v0`` expose
  ``parallel_env(**kwargs)`` and ``env(**kwargs)`` in PettingZoo's usual style.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__version__ = "0.1.0"

__all__ = ["__version__", "greedy_mouse_v0", "supply_chain_v0"]

_LAZY_MODULES = {
    "greedy_mouse_v0": "smpc_gym.greedy_mouse_v0",
    "supply_chain_v0": "smpc_gym.supply_chain_v0",
}


def __getattr__(name: str) -> ModuleType:
    if name in _LAZY_MODULES:
        module = importlib.import_module(_LAZY_MODULES[name])
        globals()[name] = module
        return module
    raise AttributeError(f"module 'smpc_gym' has no attribute {name!r}")


def _register() -> None:
    """Register every env of :mod:`smpc_gym.envs.registry` with Gymnasium and PettingZoo."""
    import pettingzoo
    from gymnasium.envs.registration import register as gym_register
    from gymnasium.envs.registration import registry as gym_registry

    from smpc_gym.envs.registry import env_specs

    for spec in env_specs():
        if spec.gym_id is not None and spec.gym_id not in gym_registry:
            gym_register(
                id=spec.gym_id,
                entry_point=spec.gym_entry_point,
                vector_entry_point=spec.vector_entry_point,
                max_episode_steps=spec.default_length,
            )
        if spec.pettingzoo_id is None:
            continue
        for env_type, registry, attr in (
            ("parallel", pettingzoo.parallel_registry, "parallel_env"),
            ("aec", pettingzoo.aec_registry, "env"),
        ):
            if spec.pettingzoo_id not in registry:
                pettingzoo.register(
                    env_type, spec.pettingzoo_id, entry_point=f"{spec.entry_module}:{attr}"
                )


_register()
