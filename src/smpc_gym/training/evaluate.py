"""Evaluation of a trained policy, the ``eval.json`` contract, and normalized scores.

Evaluation runs ``episodes`` (default 20) episodes on the fixed seed list
:func:`eval_seeds` (``10000, 10001, …``; disjoint from training seeds), acting with
``algo.act(obs, deterministic=True)``. With ``epsilon > 0`` a uniformly random action is
taken with that probability instead (from a generator seeded by the episode seed), e.g.
to break deterministic loops of a tabular policy; the value used is recorded. When
``epsilon`` is not given, an ``eval_epsilon`` field of the algorithm's Config is used if it
has one, else 0 (greedy).

``eval.json`` keys (stable; all numbers are floats unless noted):

==========================  ===============================================================
``algo``, ``env``           the run's ``--algo`` and ``--env`` names (str)
``env_kwargs``              env kwargs used for evaluation (object)
``episodes``                number of evaluation episodes (int)
``seeds``                   the episode seeds (list of int)
``exploration``             ε used during evaluation (0.0 = greedy)
``mean_return``             mean episode return (GreedyMouse: the mouse's return;
                            SupplyChain: both players' rewards summed)
``std_return``              standard deviation of the episode returns (ddof=0)
``ci95_return``             half-width of the 95% t-interval of the mean return
``returns``                 every episode's return (list)
``mean_episode_steps``      mean episode length in env steps
GreedyMouse only:
``cheese_per_1000_steps``   cheese eaten per 1,000 env steps (all episodes pooled)
``deaths_per_1000_steps``   times eaten per 1,000 env steps (pooled)
``mean_survival_steps``     mean life length: total steps / lives, where a life ends at
                            each death or at the episode's end (a life still going when
                            the time limit cuts it counts, cut short)
SupplyChain only:
``players``                 ``{player_0: {...}, player_1: {...}}``, each with
                            ``reward`` (mean reward per step), ``wastage_units`` and
                            ``wastage_cost`` (mean per episode), ``ncr`` (mean
                            normalized cumulative revenue per episode)
``total_reward``            mean per-episode reward of both players (= mean_return)
``total_ncr``               sum of the players' ``ncr``
``total_wastage_units``     sum of the players' ``wastage_units``
==========================  ===============================================================

Normalized score: :func:`normalized_score` is ``(R − R_random) / (R_heuristic −
R_random)``; :func:`reference_returns` measures ``R_random`` and ``R_heuristic`` on the
same seeds and env kwargs (the heuristic sees the observation mode it needs; the
dynamics, and so the seeds' worlds, do not depend on the observation mode).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from smpc_gym.envs.greedy_mouse.rollout import evaluate_policy as evaluate_greedy_mouse
from smpc_gym.envs.registry import get_env_spec
from smpc_gym.envs.supply_chain.rollout import PLAYER_KEYS
from smpc_gym.envs.supply_chain.rollout import evaluate_policy as evaluate_supply_chain
from smpc_gym.training.checkpoint import atomic_write_bytes

EVAL_SEED_BASE = 10_000

#: ``eval.json`` keys present for every env.
COMMON_KEYS = (
    "algo",
    "env",
    "env_kwargs",
    "episodes",
    "seeds",
    "exploration",
    "mean_return",
    "std_return",
    "ci95_return",
    "returns",
    "mean_episode_steps",
)
#: ``eval.json`` keys of one env only (each env's :attr:`EnvSpec.eval_keys`).
GREEDY_MOUSE_KEYS = get_env_spec("greedy_mouse").eval_keys
SUPPLY_CHAIN_KEYS = get_env_spec("supply_chain").eval_keys

__all__ = [
    "COMMON_KEYS",
    "GREEDY_MOUSE_KEYS",
    "PLAYER_KEYS",
    "SUPPLY_CHAIN_KEYS",
    "eval_seeds",
    "evaluate",
    "evaluate_greedy_mouse",
    "evaluate_supply_chain",
    "normalized_score",
    "normalized_score_of",
    "reference_returns",
    "replay",
    "write_eval",
]


def eval_seeds(episodes: int) -> list[int]:
    """The fixed evaluation seed list: ``EVAL_SEED_BASE + i`` for ``i < episodes``."""
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    return [EVAL_SEED_BASE + i for i in range(int(episodes))]


def evaluate(
    algo: Any,
    env: str,
    env_kwargs: Mapping[str, Any] | None = None,
    *,
    episodes: int = 20,
    seeds: Sequence[int] | None = None,
    epsilon: float | None = None,
    render_mode: str | None = None,
) -> dict[str, Any]:
    """Evaluate a trained :class:`~smpc_gym.agents.base.Algorithm`; returns the
    ``eval.json`` dict (keys in this module's docstring)."""
    env_kwargs = dict(algo.env_kwargs if env_kwargs is None else env_kwargs)
    seeds = list(seeds) if seeds is not None else eval_seeds(episodes)
    if epsilon is None:
        epsilon = float(getattr(algo.config, "eval_epsilon", 0.0) or 0.0)
    if not 0.0 <= epsilon <= 1.0:
        raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")

    def policy(obs: Any) -> Any:
        return algo.act(obs, deterministic=True)

    body = get_env_spec(env).evaluate(policy, env_kwargs, seeds, epsilon, render_mode)
    head = {
        "algo": getattr(algo, "name", type(algo).__name__),
        "env": env,
        "env_kwargs": env_kwargs,
        "episodes": len(seeds),
        "seeds": seeds,
        "exploration": float(epsilon),
    }
    return {**head, **body}


def normalized_score(r: float, r_random: float, r_heuristic: float) -> float:
    """``(R − R_random) / (R_heuristic − R_random)``: 0 = random, 1 = the heuristic."""
    denom = r_heuristic - r_random
    if denom == 0:
        raise ValueError(
            f"heuristic and random score the same ({r_heuristic}); normalized score undefined"
        )
    return (r - r_random) / denom


def reference_returns(
    env: str, env_kwargs: Mapping[str, Any], seeds: Sequence[int], seed: int = 0
) -> dict[str, float]:
    """``{"random": R_random, "heuristic": R_heuristic}`` mean returns on ``seeds``."""
    from smpc_gym.agents.baselines import HeuristicAgent, RandomAgent

    out = {}
    for cls in (RandomAgent, HeuristicAgent):
        kwargs = cls.env_kwargs_for(env, env_kwargs)
        agent = cls(cls.Config(env=env), kwargs, seed)
        out[cls.name] = evaluate(agent, env, kwargs, seeds=seeds, epsilon=0.0)["mean_return"]
    return out


def normalized_score_of(result: Mapping[str, Any]) -> float:
    """Normalized score of an ``eval.json`` dict, measuring random and heuristic on the
    same env kwargs and seeds."""
    ref = reference_returns(result["env"], result["env_kwargs"], result["seeds"])
    return normalized_score(result["mean_return"], ref["random"], ref["heuristic"])


def write_eval(path: str | Path, result: Mapping[str, Any]) -> None:
    """Write ``eval.json`` atomically (sorted keys)."""
    atomic_write_bytes(path, (json.dumps(result, indent=2, sort_keys=True) + "\n").encode())


def replay(
    algo: Any,
    env: str,
    env_kwargs: Mapping[str, Any] | None = None,
    episodes: int = 3,
    max_steps: int | None = 200,
) -> dict[str, Any]:
    """Show ``episodes`` episodes of the policy in a pygame window (``render_mode="human"``).

    Episodes longer than ``max_steps`` steps are cut to it (None: the env's own length;
    at 8 fps a full 1,000-step GreedyMouse episode takes two minutes; SupplyChain's 40
    steps are shown whole).
    """
    kwargs = dict(algo.env_kwargs if env_kwargs is None else env_kwargs)
    spec = get_env_spec(env)
    if max_steps is not None and spec.episode_length(kwargs) > max_steps:
        kwargs = spec.with_episode_length(kwargs, max_steps)
    return evaluate(algo, env, kwargs, episodes=episodes, render_mode="human")
