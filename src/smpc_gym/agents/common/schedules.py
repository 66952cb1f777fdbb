"""Exploration schedules (ε as a function of the env step).

Schedules are plain dataclasses with no state of their own: the value depends only on
the env step, so resuming a run needs nothing beyond the step counter.
"""

from __future__ import annotations

from dataclasses import dataclass


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
