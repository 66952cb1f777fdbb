"""One progress display for every algorithm and phase of a run.

Every run prints the same fixed columns, whatever the algorithm::

    phase          step / total          done   elapsed   rate            ETA       metrics
    train       12,000 / 50,000           24%   0:00:12   1,000 steps/s   0:00:38   epsilon=0.5 ...

On a terminal this is a live `rich <https://rich.readthedocs.io>`_ progress bar; when
stdout is not a terminal (a log file, CI, a pipe) the same columns are printed as one
plain line at each tenth of the run, at every phase change and at the end, so a log reads
like a table. ``elapsed`` and ``rate`` count this process only (a resumed run starts its
clock again at the resumed step). Phases (``start-up``, ``pre-training``, ``train``,
``secure phase``, ``evaluation`` …) are named by the algorithm or the runner through
:meth:`TrainingProgress.phase`; one-off events (a checkpoint on Ctrl-C, a redone secure
update) go through :meth:`TrainingProgress.event` and print one line above the bar.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

#: Width of the phase column (longer phase names are cut).
PHASE_WIDTH = 13
#: Width of the step and total columns (wider totals widen them).
COUNT_WIDTH = 11
#: How many metrics the metrics column shows (the first ones logged).
SHOWN_METRICS = 4


def format_duration(seconds: float | None) -> str:
    """``H:MM:SS`` (``-:--:--`` when unknown, e.g. an ETA before any progress)."""
    if seconds is None or seconds != seconds or seconds < 0 or seconds == float("inf"):
        return "-:--:--"
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def format_rate(rate: float | None, unit: str = "steps") -> str:
    """``"1,000 steps/s"``; under 10 per second two significant digits (``"0.31
    steps/s"``: a secure phase's rate is not 0); ``"- steps/s"`` when unknown."""
    if rate is None or not rate > 0:
        return f"- {unit}/s"
    return f"{rate:,.0f} {unit}/s" if rate >= 10 else f"{rate:.2g} {unit}/s"


def format_metrics(metrics: Mapping[str, float], limit: int = SHOWN_METRICS) -> str:
    """``key=value`` pairs of the first ``limit`` metrics, 4 significant digits."""
    parts = []
    for k, v in list(metrics.items())[:limit]:
        try:
            parts.append(f"{k}={float(v):.4g}")
        except (TypeError, ValueError):
            parts.append(f"{k}={v}")
    return "  ".join(parts)


def format_line(
    phase: str,
    step: int,
    total: int,
    elapsed: float,
    rate: float | None,
    unit: str = "steps",
    metrics: Mapping[str, float] | None = None,
) -> str:
    """One plain progress line with the fixed columns of the module docstring."""
    width = max(len(f"{total:,}"), COUNT_WIDTH)
    pct = 100.0 * step / total if total > 0 else 100.0
    eta = (total - step) / rate if rate and rate > 0 and step < total else None
    if step >= total:
        eta = 0.0
    rate_text = format_rate(rate, unit)
    return (
        f"{phase[:PHASE_WIDTH]:<{PHASE_WIDTH}} {step:>{width},} / {total:<{width},}  {pct:4.0f}%  "
        f"elapsed {format_duration(elapsed)}  {rate_text:>16}  "
        f"ETA {format_duration(eta)}  {format_metrics(metrics or {})}"
    ).rstrip()


class TrainingProgress:
    """The progress display of one run (see the module docstring).

    Args:
        total: the run's length in ``unit`` (env steps for training).
        start: where this process starts (the resumed step, else 0).
        label: shown once at the start (e.g. ``"dqn on runs/dqn-greedy_mouse-0"``).
        unit: what is counted (``"steps"``; ``"episodes"`` in the evaluation phase).
        quiet: print nothing at all.
        tty: force the live bar (True) or plain lines (False); default: whether
            ``stream`` is a terminal.
        stream: where plain lines go (default ``sys.stdout``).
    """

    def __init__(
        self,
        total: int,
        start: int = 0,
        label: str = "",
        *,
        unit: str = "steps",
        quiet: bool = False,
        tty: bool | None = None,
        stream: TextIO | None = None,
    ) -> None:
        self.quiet = quiet
        self.stream = stream if stream is not None else sys.stdout
        self.tty = (self.stream.isatty() if tty is None else tty) and not quiet
        self._bar: Any = None
        self._task: Any = None
        self.lines: list[str] = []  # the plain lines printed (for tests and logs)
        self._phase, self._unit, self._total = "train", unit, int(total)
        self._created = time.monotonic()
        self._tenths = True
        self._reset_clock(int(start))
        self.step = int(start)
        self.metrics: dict[str, float] = {}
        if self.tty:
            self._start_bar()
        if label and not quiet:
            self._print(label)

    # -- the clock of the current phase ---------------------------------------------------
    def _reset_clock(self, start: int) -> None:
        self._t0 = time.monotonic()
        self._start = start
        self._next_tenth = (10 * start // max(self._total, 1)) + 1

    def elapsed(self) -> float:
        """Seconds since this display was created (this process's part of the run)."""
        return time.monotonic() - self._created

    def rate(self) -> float | None:
        """``unit`` per second in the current phase so far (None before any progress)."""
        done, dt = self.step - self._start, time.monotonic() - self._t0
        return done / dt if done > 0 and dt > 0 else None

    def eta(self) -> float | None:
        """Seconds left in the current phase at the current rate (None: unknown)."""
        if self.step >= self._total:
            return 0.0
        r = self.rate()
        return (self._total - self.step) / r if r else None

    def _eta_text(self) -> str:
        return format_duration(self.eta())

    def _rate_text(self) -> str:
        return format_rate(self.rate(), self._unit)

    def line(self) -> str:
        """The current state as one plain line (:func:`format_line`)."""
        return format_line(
            self._phase, self.step, self._total, self.elapsed(), self.rate(), self._unit,
            self.metrics,
        )  # fmt: skip

    # -- what algorithms and the runner call ---------------------------------------------
    def phase(
        self,
        name: str,
        total: int | None = None,
        start: int | None = None,
        unit: str | None = None,
        tenths: bool = True,
    ) -> None:
        """Start phase ``name`` (optionally with its own ``total``/``start``/``unit``);
        the rate and ETA restart with it (``elapsed`` keeps counting). ``tenths=False``:
        plain output prints only the phase's first and last line (short phases such as
        a periodic evaluation)."""
        if name == self._phase and total is None and start is None and unit is None:
            return
        self._tenths = tenths
        self._phase = str(name)
        if total is not None:
            self._total = int(total)
        if unit is not None:
            self._unit = unit
        self.step = int(start) if start is not None else (0 if total is not None else self.step)
        self.metrics = {}
        self._reset_clock(self.step)
        if self._bar is not None:
            self._bar.update(
                self._task,
                description=self._phase,
                total=self._total,
                completed=self.step,
                metrics="",
                rate=self._rate_text(),
                eta=self._eta_text(),
            )
        elif not self.quiet:
            self._print(self.line())

    def update(self, step: int, metrics: Mapping[str, float] | None = None) -> None:
        """Progress to ``step``; ``metrics`` (if given) replace the metrics column."""
        self.step = int(step)
        if metrics is not None:
            self.metrics = dict(metrics)
        if self._bar is not None:
            self._bar.update(
                self._task, completed=min(self.step, self._total),
                metrics=format_metrics(self.metrics), rate=self._rate_text(),
                eta=self._eta_text(),
            )  # fmt: skip
        elif not self.quiet:
            tenth = 10 * self.step // max(self._total, 1)
            if not self._tenths and self.step < self._total:
                return
            if tenth >= self._next_tenth or self.step >= self._total:
                if self.step >= self._total and self._next_tenth > 10:
                    return  # the final line is already out
                self._print(self.line())
                self._next_tenth = max(tenth, self._next_tenth) + 1
                if self.step >= self._total:
                    self._next_tenth = 11

    def event(self, message: str) -> None:
        """Print one line (above the live bar on a terminal)."""
        if not self.quiet:
            self._print(str(message))

    def close(self) -> None:
        """Stop the live bar (idempotent)."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    # -- output ------------------------------------------------------------------------------
    def _print(self, text: str) -> None:
        self.lines.append(text)
        if self._bar is not None:
            self._bar.console.print(text, highlight=False, markup=False)
        else:
            print(text, file=self.stream, flush=True)

    def _start_bar(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        self._bar = Progress(
            TextColumn(f"[bold]{{task.description:<{PHASE_WIDTH}.{PHASE_WIDTH}}}"),
            BarColumn(bar_width=24),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[rate]:>16}"),
            TextColumn("ETA {task.fields[eta]}"),
            TextColumn("{task.fields[metrics]}"),
            console=Console(file=self.stream),
        )
        self._bar.start()
        self._task = self._bar.add_task(
            self._phase, total=self._total, completed=self.step, metrics="", rate="",
            eta=format_duration(None),
        )  # fmt: skip
