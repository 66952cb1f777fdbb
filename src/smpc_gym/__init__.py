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
    from gymnasium.envs.registration import register as gym_register
    from gymnasium.envs.registration import registry as gym_registry

    if "GreedyMouse-v0" not in gym_registry:
        gym_register(
            id="GreedyMouse-v0",
            entry_point="smpc_gym.envs.greedy_mouse.env:GreedyMouseEnv",
            vector_entry_point="smpc_gym.envs.greedy_mouse.vector:GreedyMouseVectorEnv",
            max_episode_steps=1000,
        )

    import pettingzoo

    for env_type, attr in (("parallel", "parallel_env"), ("aec", "env")):
        registry = (
            pettingzoo.parallel_registry if env_type == "parallel" else pettingzoo.aec_registry
        )
        for env_id, module in (
            ("smpc/GreedyMouse-v0", "smpc_gym.greedy_mouse_v0"),
            ("smpc/SupplyChain-v0", "smpc_gym.supply_chain_v0"),
        ):
            if env_id not in registry:
                pettingzoo.register(env_type, env_id, entry_point=f"{module}:{attr}")


_register()
