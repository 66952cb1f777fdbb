"""Exploration schedules (ε as a function of the env step).

Schedules are plain dataclasses with no state of their own: the value depends only on
the env step, so resuming a run needs nothing beyond the step counter (and the run
length the schedule was sized for, which the algorithms keep in their checkpoints).

Run-relative exploration, as Stable-Baselines3's ``exploration_fraction``: the ε-greedy
agents (``tabular_q``, ``bandit``, ``dqn``, ``fed_dqn``, ``secure_fed_dqn``) decay ε
linearly over ``exploration_fraction`` of the run's total env steps
(:func:`exploration_schedule`), so a short ``--steps`` run still ends at ``eps_end``
instead of half-exploring. An explicit ``eps_decay_steps`` (env steps) overrides the
fraction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class LinearSchedule:
    """Linear interpolation from ``start`` to ``end`` over ``duration`` steps, then flat.

    ``LinearSchedule(1.0, 0.05, 10_000)(5_000) == 0.525``. A ``duration`` of 0 means
    ``end`` from step 0.
    """

    start: float
    end: float
    duration: int

    def __post_init__(self) -> None:
        if self.duration < 0:
            raise ValueError(f"schedule duration must be >= 0, got {self.duration!r}")

    def __call__(self, step: int) -> float:
        """The value at env step ``step`` (``step`` < 0 counts as 0)."""
        if self.duration == 0 or step >= self.duration:
            return float(self.end)
        frac = max(step, 0) / self.duration
        return float(self.start + frac * (self.end - self.start))


@dataclass(frozen=True)
class ExponentialSchedule:
    """``max(end, start * decay ** step)``: the seed project's multiplicative ε decay."""

    start: float
    end: float
    decay: float

    def __post_init__(self) -> None:
        if not 0.0 < self.decay <= 1.0:
            raise ValueError(f"decay must be in (0, 1], got {self.decay!r}")

    def __call__(self, step: int) -> float:
        """The value at env step ``step``."""
        return float(max(self.end, self.start * self.decay ** max(step, 0)))


def decay_steps(fraction: float, total_steps: int) -> int:
    """Env steps of a decay that lasts ``fraction`` of a ``total_steps``-step run.

    Rounded to the nearest step, so a fraction written to a few digits (e.g. 0.1666667
    of 300,000) gives the intended whole count (50,000).
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"exploration_fraction must be in [0, 1], got {fraction!r}")
    if total_steps < 0:
        raise ValueError(f"total_steps must be >= 0, got {total_steps!r}")
    return int(round(float(fraction) * int(total_steps)))


def exploration_schedule(config: Any, total_steps: int | None) -> LinearSchedule:
    """The linear ε schedule of an ε-greedy agent's config for a ``total_steps`` run.

    ``config`` has ``eps_start``, ``eps_end``, ``exploration_fraction`` and
    ``eps_decay_steps``. The decay lasts ``eps_decay_steps`` env steps when that is set
    (not None), else ``exploration_fraction · total_steps``. With neither known (no
    ``eps_decay_steps`` and the run length not yet given, i.e. before training) ε stays
    at ``eps_start``: the value every schedule starts from.
    """
    start, end = float(config.eps_start), float(config.eps_end)
    if config.eps_decay_steps is not None:
        return LinearSchedule(start, end, int(config.eps_decay_steps))
    if total_steps is None:
        return LinearSchedule(start, start, 0)
    return LinearSchedule(start, end, decay_steps(config.exploration_fraction, total_steps))


def check_exploration_fields(config: Any) -> None:
    """Validate the ε fields :func:`exploration_schedule` reads (``ValueError`` naming
    the bad value and the allowed range)."""
    for name in ("eps_start", "eps_end", "exploration_fraction"):
        v = getattr(config, name)
        if not 0.0 <= v <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {v!r}")
    if config.eps_decay_steps is not None and config.eps_decay_steps < 0:
        raise ValueError(
            f"eps_decay_steps must be >= 0 or None (None: use exploration_fraction), "
            f"got {config.eps_decay_steps!r}"
        )
