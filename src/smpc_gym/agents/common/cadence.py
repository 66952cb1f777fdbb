"""When a training loop logs, evaluates, checkpoints and stops: the one implementation.

Every algorithm's loop ends each iteration with::

    if cadence.after_step(self.env_steps, lambda: self._metrics(...)):
        break  # Ctrl-C: a checkpoint of this step was written; the runner exits

:meth:`Cadence.after_step` then

* logs a row every ``log_every`` env steps (at the first step at or past each multiple),
  at the last step of the run, and before any checkpoint or evaluation of a step not yet
  logged, so every checkpoint's step has its row;
* adds the periodic evaluation's metrics to that row when the runner says one is due
  (``--eval-every``, :meth:`~smpc_gym.agents.base.TrainHooks.evaluate`);
* writes a checkpoint when the runner says one is due (``--checkpoint-every``) or when
  the user pressed Ctrl-C (:meth:`~smpc_gym.agents.base.TrainHooks.stop_requested`);
* returns True after a Ctrl-C checkpoint: the loop stops at once, having lost nothing.

``metrics`` is a callable so a loop pays for its statistics only on the steps it logs.
Hooks written before :meth:`TrainHooks.stop_requested` / :meth:`TrainHooks.should_evaluate`
existed (e.g. a test's recorder) work unchanged: the missing methods count as "no".
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any


class Cadence:
    """Log / evaluate / checkpoint / stop bookkeeping for one call of ``train``.

    Args:
        hooks: the runner's :class:`~smpc_gym.agents.base.TrainHooks`.
        log_every: env steps between log rows (the algorithm's ``log_every``).
        start_step: ``env_steps`` when ``train`` was called (resume point).
        total_steps: the ``total_steps`` given to ``train``.
    """

    def __init__(self, hooks: Any, log_every: int, start_step: int, total_steps: int) -> None:
        if int(log_every) < 1:
            raise ValueError(f"log_every: bad value {log_every!r}; expected an int >= 1")
        self.hooks = hooks
        self.log_every = int(log_every)
        self.total_steps = int(total_steps)
        self.next_log = self._after(int(start_step))
        self.last_logged = -1
        self.stopped = False

    def _after(self, step: int) -> int:
        return (step // self.log_every + 1) * self.log_every

    def stop_requested(self) -> bool:
        """Whether the user asked the run to stop (Ctrl-C) — False for hooks without it."""
        fn = getattr(self.hooks, "stop_requested", None)
        return bool(fn()) if fn is not None else False

    def next_due(self, step: int) -> int:
        """The next env step after ``step`` at which a log row, evaluation or checkpoint is
        due (``total_steps`` at the latest). Loops that run in long uninterruptible chunks
        (``secure_fed_dqn``'s process-group segments) end a chunk there."""
        due = [self.total_steps]
        for name in ("next_checkpoint", "next_evaluation"):
            fn = getattr(self.hooks, name, None)
            nxt = fn(step) if fn is not None else None
            if nxt is not None and nxt > step:
                due.append(int(nxt))
        return min(due)

    def after_step(
        self, step: int, metrics: Callable[[], Mapping[str, float]], *, log: bool = False
    ) -> bool:
        """Do what is due at env step ``step`` (see the module docstring); True = stop.

        ``log=True`` logs this step's row even when no row is due (a loop that receives
        rows in chunks hands over the chunk's last row this way).
        """
        step = int(step)
        stop = self.stop_requested()
        ckpt = stop or bool(self.hooks.should_checkpoint(step))
        should_eval = getattr(self.hooks, "should_evaluate", None)
        ev = bool(should_eval(step)) if should_eval is not None else False
        if log or step >= self.next_log or step >= self.total_steps or (ckpt or ev):
            if self.last_logged != step:
                row = dict(metrics())
                if ev:
                    row.update(self.hooks.evaluate(step))
                self.hooks.log(step, row)
                self.last_logged = step
            self.next_log = self._after(step)
        if ckpt:
            self.hooks.checkpoint(step)
        self.stopped = stop
        return stop

    def finish(self, step: int, metrics: Callable[[], Mapping[str, float]]) -> None:
        """Log a last row for ``step`` unless it has one (loops that end outside
        :meth:`after_step`, e.g. an SB3 ``learn`` that overshoots its length)."""
        if self.last_logged != int(step) and not self.stopped:
            self.hooks.log(int(step), dict(metrics()))
            self.last_logged = int(step)
