"""The run folder and the training loop around an :class:`~smpc_gym.agents.base.Algorithm`.

A run folder (default ``runs/<algo>-<env>-<seed>``) holds::

    config.yaml      the fully resolved run: algo, env, env_preset, env_kwargs, config,
                     seed, steps, launch, runner settings, package versions
    metrics.csv      one row per hooks.log() call: step, wall_time, then the metrics
                     (appended and flushed per row; a new metric name rewrites the header);
                     with --eval-every, eval/... columns on the evaluated steps
    tb/              TensorBoard event files (when tensorboard is installed)
    checkpoints/     ckpt-<step>.pt, written atomically; the last ``keep`` are kept
    model.pt         the final algorithm (same format as a checkpoint)
    eval.json        final evaluation (see smpc_gym.training.evaluate)
    report.json      the algorithm's own end-of-run report, when it has one (secure
                     MADDPG: the paper's Table 5 and the secure phase's cost), also
                     printed at the end of the run
    learning_curves.png   written by ``train.py plot``

Resume semantics (``--resume``): the latest checkpoint is loaded (its env step ``S``),
rows of ``metrics.csv`` with ``step > S`` are dropped (as is a half-written last line),
TensorBoard is re-opened with ``purge_step=S+1`` so its later events are hidden, and
training continues from ``S``. Every step the algorithm logs therefore appears exactly
once, in strictly increasing order. An episode in progress at the checkpoint restarts
(documented in :mod:`smpc_gym.agents.base`). ``--resume`` names the checkpoint and step
it continues from, and refuses (:class:`NothingToResume`) when the run has no checkpoint
or is finished and not extended with a larger ``--steps``.

Ctrl-C (:class:`StopRequest`): the algorithm finishes its current step, checkpoints it
and returns; :class:`TrainingInterrupted` names the file. A second Ctrl-C, or an algorithm
that cannot stop at a step of its choosing (``stops_on_request = False``: secure MADDPG's
lockstep parties), ends at once; the message then names the last checkpoint that exists.
A crash leaves the last checkpoint intact: checkpoints are only ever replaced atomically.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import shutil
import signal
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from smpc_gym.training.checkpoint import (
    atomic_write_bytes,
    load_algorithm,
    read_payload,
    resume_checkpoint,
    save_algorithm,
    versions,
)
from smpc_gym.training.config import ConfigError, RunConfig, build_algorithm
from smpc_gym.training.progress import TrainingProgress

CKPT_RE = re.compile(r"^ckpt-(\d+)\.pt$")
RUN_FILES = ("config.yaml", "metrics.csv", "model.pt", "eval.json", "report.json")
RUN_DIRS = ("checkpoints", "tb")


def default_run_dir(algo: str, env: str, seed: int, root: str | Path = "runs") -> Path:
    """``runs/<algo>-<env>-<seed>``."""
    return Path(root) / f"{algo}-{env}-{seed}"


def list_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """``(step, path)`` of the run's checkpoints, oldest first."""
    d = Path(run_dir) / "checkpoints"
    if not d.is_dir():
        return []
    out = []
    for p in d.iterdir():
        m = CKPT_RE.match(p.name)
        if m:
            out.append((int(m.group(1)), p))
    return sorted(out)


def read_run_config(run_dir: str | Path) -> dict[str, Any]:
    """The run folder's ``config.yaml`` as a dict (ConfigError if missing)."""
    p = Path(run_dir) / "config.yaml"
    if not p.is_file():
        raise ConfigError(f"{run_dir} is not a run folder (no config.yaml)")
    with open(p) as f:
        data = yaml.safe_load(f)
    if not isinstance(data, Mapping) or "algo" not in data:
        raise ConfigError(f"{p}: not a run config")
    return dict(data)


def run_config_from_dict(data: Mapping[str, Any]) -> RunConfig:
    """Rebuild a :class:`RunConfig` from ``config.yaml``'s contents."""
    return RunConfig(
        algo=data["algo"],
        env=data["env"],
        env_preset=data.get("env_preset", "default"),
        env_kwargs=dict(data.get("env_kwargs") or {}),
        config=dict(data.get("config") or {}),
        seed=int(data["seed"]),
        steps=int(data["steps"]),
        launch=dict(data.get("launch") or {}),
    )


def read_metrics(path: str | Path) -> tuple[list[str], list[dict[str, float]]]:
    """Header and well-formed rows of a ``metrics.csv`` (a torn last line is skipped)."""
    p = Path(path)
    if not p.is_file():
        return [], []
    with open(p, newline="") as f:
        lines = list(csv.reader(f))
    if not lines:
        return [], []
    header, rows = lines[0], []
    for line in lines[1:]:
        if len(line) != len(header):
            continue
        try:
            row = {
                k: (float(v) if v != "" else math.nan) for k, v in zip(header, line, strict=True)
            }
        except ValueError:
            continue
        rows.append(row)
    return header, rows


class MetricsCSV:
    """``metrics.csv``: appended and flushed per row; columns ``step, wall_time, ...``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.header, _ = read_metrics(path)
        self._f: io.TextIOWrapper | None = None

    def truncate_after(self, step: int) -> float:
        """Drop rows with ``step > step`` (and torn lines); return the last kept wall_time."""
        header, rows = read_metrics(self.path)
        kept = [r for r in rows if r["step"] <= step]
        self._rewrite(header, kept)
        return kept[-1].get("wall_time", 0.0) if kept else 0.0

    def _rewrite(self, header: list[str], rows: list[dict[str, float]]) -> None:
        self.close()
        buf = io.StringIO()
        if header:
            w = csv.writer(buf, lineterminator="\n")
            w.writerow(header)
            for r in rows:
                w.writerow([_fmt(r.get(k, math.nan)) for k in header])
        atomic_write_bytes(self.path, buf.getvalue().encode())
        self.header = list(header)

    def write(self, step: int, wall_time: float, metrics: Mapping[str, float]) -> None:
        """Append one row (rewriting the header first if a new metric appears)."""
        new = [k for k in metrics if k not in self.header and k not in ("step", "wall_time")]
        if not self.header or new:
            _, rows = read_metrics(self.path)
            header = self.header or ["step", "wall_time"]
            self._rewrite(header + new, rows)
        if self._f is None:
            self._f = open(self.path, "a", newline="")  # noqa: SIM115 - kept open for appends
        values = {"step": step, "wall_time": wall_time, **metrics}
        self._f.write(",".join(_fmt(values.get(k, math.nan)) for k in self.header) + "\n")
        self._f.flush()

    def sync(self) -> None:
        """Make appended rows durable (called before every checkpoint)."""
        if self._f is not None:
            self._f.flush()
            os.fsync(self._f.fileno())

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return str(int(v))
    if isinstance(v, int):
        return str(v)
    try:
        f = float(v)
    except (TypeError, ValueError):
        return ""
    if math.isnan(f):
        return ""
    return repr(f) if not f.is_integer() or abs(f) >= 1e16 else str(int(f))


class StopRequest:
    """Ctrl-C handling for a training run: the first SIGINT asks the algorithm to stop
    after its current step (it checkpoints that step), the second aborts at once.

    Installed only in the main thread (``signal`` allows no other); elsewhere Ctrl-C
    raises :class:`KeyboardInterrupt` as usual and the last periodic checkpoint is kept.
    """

    def __init__(self, cooperative: bool = True, on_request: Any = None) -> None:
        self.requested = False
        self.cooperative = cooperative
        self.on_request = on_request
        self._previous: Any = None

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested or not self.cooperative:
            self.requested = True
            raise KeyboardInterrupt
        self.requested = True
        if self.on_request is not None:
            self.on_request()


class RunHooks:
    """The runner's :class:`~smpc_gym.agents.base.TrainHooks`: CSV + TensorBoard +
    progress display, periodic atomic checkpoints of ``algo``, periodic evaluation
    (``eval_every``) and the Ctrl-C stop request."""

    def __init__(
        self,
        run_dir: Path,
        algo: Any,
        total_steps: int,
        *,
        start_step: int = 0,
        wall_offset: float = 0.0,
        checkpoint_every: int = 10_000,
        keep_checkpoints: int = 3,
        quiet: bool = False,
        tensorboard: bool = True,
        eval_every: int | None = None,
        evaluator: Any = None,
        progress: TrainingProgress | None = None,
    ) -> None:
        self.run_dir = run_dir
        self.algo = algo
        self.checkpoint_every = max(1, int(checkpoint_every))
        self.keep = max(1, int(keep_checkpoints))
        self.last_step = start_step
        self.last_ckpt = start_step
        self.eval_every = int(eval_every) if eval_every else None
        self.last_eval = start_step
        self.evaluator = evaluator  # step -> {"eval/...": value}
        self.stop = StopRequest()
        self._t0 = time.monotonic() - wall_offset
        self.csv = MetricsCSV(run_dir / "metrics.csv")
        self.tb: Any = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard not installed: CSV only
                pass
            else:
                self.tb = SummaryWriter(
                    log_dir=str(run_dir / "tb"),
                    purge_step=start_step + 1 if start_step > 0 else None,
                )
        self.progress = progress or TrainingProgress(total_steps, start_step, quiet=quiet)
        self.rows_logged = 0
        self._min_next = start_step + 1 if start_step > 0 else 0

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        """Write one metrics row at env step ``step`` (strictly increasing)."""
        step = int(step)
        if step < self._min_next:
            raise ValueError(
                f"hooks.log: step {step} is not after the last logged/resumed step "
                f"{self.last_step} (rows must have strictly increasing steps)"
            )
        clean = {str(k): float(v) for k, v in metrics.items()}
        self.csv.write(step, round(time.monotonic() - self._t0, 3), clean)
        if self.tb is not None:
            for k, v in clean.items():
                if math.isfinite(v):
                    self.tb.add_scalar(k, v, step)
        self.progress.update(step, clean)
        self.last_step = step
        self._min_next = step + 1
        self.rows_logged += 1

    def should_checkpoint(self, step: int) -> bool:
        """True every ``checkpoint_every`` env steps."""
        return int(step) - self.last_ckpt >= self.checkpoint_every

    def next_checkpoint(self, step: int) -> int | None:
        """The env step at which the next checkpoint falls due."""
        return max(self.last_ckpt + self.checkpoint_every, int(step) + 1)

    def stop_requested(self) -> bool:
        """True once Ctrl-C was pressed (see :class:`StopRequest`)."""
        return self.stop.requested

    def should_evaluate(self, step: int) -> bool:
        """True every ``eval_every`` env steps (never without ``eval_every``)."""
        return self.eval_every is not None and int(step) - self.last_eval >= self.eval_every

    def next_evaluation(self, step: int) -> int | None:
        """The env step at which the next periodic evaluation falls due (None: off)."""
        if self.eval_every is None:
            return None
        return max(self.last_eval + self.eval_every, int(step) + 1)

    def evaluate(self, step: int) -> dict[str, float]:
        """Run the periodic evaluation now; ``eval/…`` metrics for the row at ``step``."""
        self.last_eval = int(step)
        if self.evaluator is None:
            return {}
        return dict(self.evaluator(int(step)))

    def phase(self, name: str, total: int | None = None, start: int | None = None) -> None:
        """Show ``name`` as the current phase (with its own ``total`` and ``start``)."""
        self.progress.phase(name, total=total, start=start)

    def advance(self, step: int, metrics: Mapping[str, float] | None = None) -> None:
        """Show progress to ``step`` of the current phase (no metrics row is written)."""
        self.progress.update(step, metrics)

    def event(self, message: str) -> None:
        """Print a one-line event."""
        self.progress.event(message)

    def checkpoint(self, step: int) -> None:
        """Atomically write ``checkpoints/ckpt-<step>.pt`` and prune old ones."""
        step = int(step)
        if step != self.algo.env_steps:
            raise ValueError(
                f"hooks.checkpoint({step}) but algorithm.env_steps = {self.algo.env_steps}"
            )
        if step < self.last_step:
            raise ValueError(f"hooks.checkpoint({step}) is before the last logged step")
        self.csv.sync()
        if self.tb is not None:
            self.tb.flush()
        save_algorithm(self.algo, checkpoint_path(self.run_dir, step))
        self.last_ckpt = step
        for _, old in list_checkpoints(self.run_dir)[: -self.keep]:
            old.unlink(missing_ok=True)

    def close(self) -> None:
        self.progress.close()
        self.csv.close()
        if self.tb is not None:
            self.tb.close()
            self.tb = None


def _write_yaml(path: Path, data: Mapping[str, Any]) -> None:
    atomic_write_bytes(path, yaml.safe_dump(dict(data), sort_keys=False).encode())


def prepare_run_dir(run_dir: Path, overwrite: bool) -> None:
    """Refuse to clobber an existing run unless ``overwrite`` (then remove only run files)."""
    if (run_dir / "config.yaml").exists() or (run_dir / "metrics.csv").exists():
        if not overwrite:
            raise ConfigError(
                f"run folder {run_dir} already exists; use --resume to continue it, "
                "--overwrite to start over, or --out for a new folder"
            )
        for name in RUN_FILES:
            (run_dir / name).unlink(missing_ok=True)
        for name in RUN_DIRS:
            shutil.rmtree(run_dir / name, ignore_errors=True)
    run_dir.mkdir(parents=True, exist_ok=True)


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C ended a run; the message says which checkpoint holds it (or that none does)."""


class NothingToResume(ConfigError):
    """``--resume`` on a run that has no checkpoint, or that is already finished."""


def checkpoint_path(run_dir: str | Path, step: int) -> Path:
    """``<run_dir>/checkpoints/ckpt-<step, 12 digits>.pt``."""
    return Path(run_dir) / "checkpoints" / f"ckpt-{int(step):012d}.pt"


def resume_point(run_dir: str | Path) -> tuple[Path, int] | None:
    """The checkpoint ``--resume`` continues from and its env step (None: none)."""
    ckpts = list_checkpoints(run_dir)
    if not ckpts:
        return None
    step, path = ckpts[-1]
    return path, step


def _interrupted_message(run_dir: Path, step_reached: int | None) -> str:
    point = resume_point(run_dir)
    if point is None:
        return (
            f"interrupted before the first checkpoint: nothing of {run_dir} can be resumed; "
            "start it again (add --overwrite)"
        )
    path, step = point
    where = f" (reached step {step_reached})" if step_reached and step_reached > step else ""
    return (
        f"interrupted{where}; checkpoint {path} holds step {step}; continue with: "
        f"train.py --resume --out {run_dir}"
    )


def _say(quiet: bool, message: str) -> None:
    if not quiet:
        print(message, flush=True)


def _eval_metrics(result: Mapping[str, Any]) -> dict[str, float]:
    """The ``eval/…`` CSV/TensorBoard columns of an evaluation result."""
    from smpc_gym.training.evaluate import GREEDY_MOUSE_KEYS

    keys = ("mean_return", "ci95_return", "std_return", *GREEDY_MOUSE_KEYS)
    keys += ("total_ncr", "total_wastage_units")
    return {f"eval/{k}": float(result[k]) for k in keys if k in result}


def _evaluate(
    progress: TrainingProgress,
    algo: Any,
    run: RunConfig,
    episodes: int,
    epsilon: float | None,
) -> dict[str, Any]:
    """The run's evaluation (``eval.json``'s dict) on the fixed evaluation seeds, shown
    as the ``evaluation`` phase of ``progress`` (periodic and final evaluations alike)."""
    from smpc_gym.training.evaluate import evaluate

    progress.phase("evaluation", total=episodes, start=0, unit="episodes", tenths=False)
    result = evaluate(algo, run.env, run.env_kwargs, episodes=episodes, epsilon=epsilon)
    progress.update(episodes, _eval_metrics(result))  # (no per-episode callback yet)
    return result


def _final_report(
    progress: TrainingProgress, algo: Any, run_dir: Path, seeds: list[int]
) -> dict[str, Any] | None:
    """The algorithm's end-of-run report (:meth:`~smpc_gym.agents.base.Algorithm.
    final_report`) on the evaluation ``seeds``, written to ``report.json`` (None: none)."""
    from smpc_gym.agents.base import Algorithm

    (run_dir / "report.json").unlink(missing_ok=True)
    if getattr(type(algo), "final_report", None) in (None, Algorithm.final_report):
        return None  # no report: no phase line either
    progress.phase("report", total=1, start=0, unit="reports", tenths=False)
    report = algo.final_report(seeds)
    if report is None:
        return None
    progress.update(1)
    text = json.dumps(_finite(report), indent=2)  # in the report's order: rows as printed
    atomic_write_bytes(run_dir / "report.json", (text + "\n").encode())
    return report


def _finite(value: Any) -> Any:
    """``value`` with NaN/inf floats as None (strict JSON has no NaN)."""
    if isinstance(value, Mapping):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def format_wall_time(seconds: float) -> str:
    """``"7 min 12 s"`` (``"42 s"`` under a minute, ``"1 h 03 min"`` from an hour)."""
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def train(
    run: RunConfig | None,
    run_dir: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    quiet: bool = False,
    checkpoint_every: int | None = None,
    keep_checkpoints: int = 3,
    eval_episodes: int = 20,
    eval_epsilon: float | None = None,
    eval_every: int | None = None,
    render: bool = False,
    tensorboard: bool = True,
    steps: int | None = None,
    progress_tty: bool | None = None,
) -> dict[str, Any]:
    """Train (or resume) a run in ``run_dir`` and return its evaluation (``eval.json``).

    With ``resume=True`` the run's own ``config.yaml`` is used (``run`` may be None;
    ``steps`` may extend the run's length). A new run's length is ``run.steps`` alone
    (:func:`~smpc_gym.training.config.resolve` sets it from ``--steps``/``--episodes``);
    ``steps`` is refused without ``resume``. ``checkpoint_every`` defaults to a tenth of
    the run (at least 1,000 steps). ``eval_every`` evaluates the policy every that many
    env steps on the fixed evaluation seeds (``eval_episodes`` episodes) and logs
    ``eval/mean_return``, ``eval/ci95_return``, … in the same row.

    Raises:
        NothingToResume: ``resume`` with no checkpoint, or on a finished run whose length
            is not extended (its ``eval.json`` is left as it is).
        TrainingInterrupted: Ctrl-C; the message names the checkpoint that holds the run.
    """
    from smpc_gym.training.evaluate import eval_seeds, write_eval

    t_start = time.monotonic()
    run_dir = Path(run_dir)
    start, wall_offset = 0, 0.0
    if resume:
        saved = read_run_config(run_dir)
        resumed = run_config_from_dict(saved)
        if run is not None:
            for field in ("algo", "env", "seed"):
                if getattr(run, field) != getattr(resumed, field):
                    raise ConfigError(
                        f"--resume: {run_dir} is a {field}={getattr(resumed, field)!r} run, "
                        f"not {getattr(run, field)!r}"
                    )
            resumed.launch = dict(run.launch)
        run = resumed
        if steps is not None:
            run.steps = int(steps)
        for stale in (run_dir / "checkpoints").glob(".ckpt-*.tmp"):
            stale.unlink(missing_ok=True)  # a save cut short by a kill
        path = resume_checkpoint([p for _, p in list_checkpoints(run_dir)])  # newest good
        if path is None:
            raise NothingToResume(
                f"--resume: {run_dir} has no checkpoint to resume from (it stopped before "
                "its first one); start it again with --overwrite"
            )
        start = int(CKPT_RE.match(path.name).group(1))  # type: ignore[union-attr]
        if start >= run.steps and (run_dir / "model.pt").is_file():
            raise NothingToResume(
                f"--resume: {run_dir} is finished (step {start} of {run.steps}; its "
                "eval.json is kept); give --steps N with N > "
                f"{start} to train it further, or evaluate it with `train.py eval {run_dir}`"
            )
        algo = load_algorithm(path)
        algo.launch_options = dict(run.launch)
        start = int(algo.env_steps)
        _say(quiet, f"resuming {run_dir} from {path} at step {start} of {run.steps}")
        wall_offset = MetricsCSV(run_dir / "metrics.csv").truncate_after(start)
        (run_dir / "model.pt").unlink(missing_ok=True)  # stale once training continues
        checkpoint_every = checkpoint_every or saved.get("runner", {}).get("checkpoint_every")
        if eval_every is None:
            eval_every = saved.get("runner", {}).get("eval_every")
    else:
        if run is None:
            raise ConfigError("nothing to train: give a RunConfig or resume=True")
        if steps is not None:
            raise ConfigError(
                f"steps={steps} extends a resumed run; a new run's length is run.steps "
                f"({run.steps}, set by resolve(steps=...))"
            )
        prepare_run_dir(run_dir, overwrite)
        algo = build_algorithm(run)

    if eval_every:
        if "rank" in run.launch:
            raise ConfigError(
                "--eval-every: one party of a multi-party launch holds only its part of "
                "the policy and cannot evaluate it; drop --eval-every"
            )
        if not getattr(algo, "evaluates_during_training", True):
            raise ConfigError(
                f"--eval-every: {algo.name} has no plaintext policy until training ends; "
                "evaluate the finished run with `train.py eval RUN`"
            )
    every = int(checkpoint_every or max(1_000, run.steps // 10))
    record = run.to_dict()
    record["runner"] = {
        "checkpoint_every": every,
        "keep_checkpoints": keep_checkpoints,
        "eval_every": int(eval_every) if eval_every else None,
    }
    record["versions"] = versions()
    _write_yaml(run_dir / "config.yaml", record)

    def periodic_eval(step: int) -> dict[str, float]:
        try:
            metrics = _eval_metrics(_evaluate(progress, algo, run, eval_episodes, eval_epsilon))
        finally:
            progress.phase("train", total=run.steps, start=step, unit="steps")
        return metrics

    progress = TrainingProgress(
        run.steps, start, f"{algo.name} on {run_dir}", quiet=quiet, tty=progress_tty
    )
    hooks = RunHooks(
        run_dir,
        algo,
        run.steps,
        start_step=start,
        wall_offset=wall_offset,
        checkpoint_every=every,
        keep_checkpoints=keep_checkpoints,
        quiet=quiet,
        tensorboard=tensorboard,
        eval_every=eval_every,
        evaluator=periodic_eval,
        progress=progress,
    )
    hooks.stop = StopRequest(
        cooperative=getattr(algo, "stops_on_request", True),
        on_request=lambda: progress.event(
            "Ctrl-C: finishing this step and writing a checkpoint (Ctrl-C again to abort)"
        ),
    )
    try:
        with hooks.stop:
            if algo.env_steps < run.steps:
                algo.train(run.steps, hooks)
            if hooks.stop.requested and algo.env_steps < run.steps:
                raise KeyboardInterrupt
            point = resume_point(run_dir)
            if point is None or point[1] != algo.env_steps:
                hooks.checkpoint(algo.env_steps)
    except KeyboardInterrupt:
        raise TrainingInterrupted(_interrupted_message(run_dir, hooks.last_step)) from None
    except Exception:
        # In a terminal, Ctrl-C reaches party processes too: they die, and the launcher
        # reports their failure. That is the interruption, not a new error.
        if hooks.stop.requested:
            raise TrainingInterrupted(_interrupted_message(run_dir, hooks.last_step)) from None
        raise
    finally:
        hooks.close()
    save_algorithm(algo, run_dir / "model.pt")

    if "rank" in run.launch:
        # One party of a multi-machine launch holds only its own share of the policy
        # (at most its own player's actor): a joint evaluation needs every party, so
        # none is written here. Evaluate after collecting the owners' weights locally.
        result = {
            "evaluated": False,
            "reason": f"rank {run.launch['rank']} of a multi-party launch holds only its own "
            "part of the policy; no joint evaluation is possible in one party",
        }
        (run_dir / "eval.json").unlink(missing_ok=True)
        if not quiet:
            print(f"no evaluation: {result['reason']}")
        return result
    if (run_dir / "eval.json").is_file():
        _say(
            quiet, f"replacing {run_dir / 'eval.json'} with the evaluation at step {algo.env_steps}"
        )
    final = TrainingProgress(eval_episodes, quiet=quiet, unit="episodes", tty=progress_tty)
    try:
        result = _evaluate(final, algo, run, eval_episodes, eval_epsilon)
        write_eval(run_dir / "eval.json", result)
        report = _final_report(final, algo, run_dir, eval_seeds(eval_episodes))
    finally:
        final.close()
    if report is not None and not quiet:
        print(report["text"], flush=True)
    _say(quiet, f"finished in {format_wall_time(time.monotonic() - t_start)}")
    if render:
        from smpc_gym.training.evaluate import replay

        replay(algo, run.env, run.env_kwargs, episodes=3)
    return result


def load_run(run_dir: str | Path) -> Any:
    """The trained algorithm of a run folder: ``model.pt``, else its latest checkpoint."""
    run_dir = Path(run_dir)
    model = run_dir / "model.pt"
    if model.is_file():
        return load_algorithm(model)
    ckpts = list_checkpoints(run_dir)
    if ckpts:
        return load_algorithm(ckpts[-1][1])
    raise ConfigError(f"{run_dir} has no model.pt and no checkpoints")


def checkpoint_step(path: str | Path) -> int:
    """The env step stored in a checkpoint or ``model.pt``."""
    return int(read_payload(path)["env_steps"])


def dump_json(data: Any) -> str:
    """JSON with sorted keys (stable output)."""
    return json.dumps(data, indent=2, sort_keys=True)
