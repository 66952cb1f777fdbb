"""Multi-mouse GreedyMouse in PettingZoo's usual module style.

* :func:`parallel_env` — the :class:`~smpc_gym.envs.greedy_mouse.parallel.GreedyMouseParallelEnv`
  (``ParallelEnv``), documented in that class's docstring.
* :func:`env` — the same game as an AEC env (PettingZoo's ``parallel_to_aec``, which
  adds the ``OrderEnforcingWrapper``). ``AssertOutOfBoundsWrapper`` is not added: the
  env's own action check already rejects bad actions, with a message naming the agent.
* :func:`raw_env` — the AEC env without the order-enforcing wrapper.

All take the env's keyword arguments (``num_mice``, ``num_cheese``, ``map``,
``obs_mode``, ``respawn``, ``render_mode``, …). Also reachable as
``pettingzoo.make("parallel" | "aec", "smpc/GreedyMouse-v0", **kwargs)`` after
``import smpc_gym``.

Example::

    from smpc_gym import greedy_mouse_v0

    env = greedy_mouse_v0.parallel_env(num_mice=4, num_cheese=2)
    obs, infos = env.reset(seed=0)
    while env.agents:
        actions = {a: env.action_space(a).sample() for a in env.agents}
        obs, rewards, terminations, truncations, infos = env.step(actions)
"""

from __future__ import annotations

from typing import Any

from pettingzoo import AECEnv
from pettingzoo.utils.conversions import parallel_to_aec, parallel_to_aec_wrapper

from smpc_gym.envs.greedy_mouse.parallel import GreedyMouseParallelEnv

__all__ = ["GreedyMouseParallelEnv", "env", "parallel_env", "raw_env"]


def parallel_env(**kwargs: Any) -> GreedyMouseParallelEnv:
    """The multi-mouse GreedyMouse ``ParallelEnv`` (see ``GreedyMouseParallelEnv``)."""
    return GreedyMouseParallelEnv(**kwargs)


def raw_env(**kwargs: Any) -> AECEnv:
    """The AEC form without PettingZoo's order-enforcing wrapper."""
    return parallel_to_aec_wrapper(parallel_env(**kwargs))


def env(**kwargs: Any) -> AECEnv:
    """The AEC form (``parallel_to_aec``, with the ``OrderEnforcingWrapper``)."""
    return parallel_to_aec(parallel_env(**kwargs))
