"""Pieces every env's evaluation rollout shares: the return summary and info counters.

The rollouts themselves live beside each env (``greedy_mouse/rollout.py``,
``supply_chain/rollout.py``) and are reached through :mod:`smpc_gym.envs.registry`.
"""

from __future__ import annotations

import math
from collections.abc import Generator, Mapping, Sequence
from typing import Any

import numpy as np

#: What an env's ``run_policy`` yields after every step: ``(env_step, episodes_ended,
#: row)``, ``row`` a dict of training metrics at log points and None otherwise.
PolicyRun = Generator[tuple[int, int, dict[str, float] | None], None, None]


def summarize_returns(returns: Sequence[float]) -> dict[str, Any]:
    """``mean_return``, ``std_return`` (ddof=0), ``ci95_return`` (half-width of the 95%
    t-interval of the mean; 0 for one episode) and ``returns`` (as floats)."""
    r = np.asarray(returns, dtype=np.float64)
    n = len(r)
    ci = 0.0
    if n > 1:
        from scipy import stats

        ci = float(stats.t.ppf(0.975, n - 1) * r.std(ddof=1) / math.sqrt(n))
    return {
        "mean_return": float(r.mean()),
        "std_return": float(r.std()),
        "ci95_return": ci,
        "returns": [float(x) for x in r],
    }


def info_count(info: Mapping[str, Any], key: str) -> int:
    """``info[key]`` as an int count (absent or None: 0; a bool counts as 0 or 1)."""
    v = info.get(key, 0)
    if isinstance(v, (bool, np.bool_)):
        return int(v)
    return int(v) if v is not None else 0
