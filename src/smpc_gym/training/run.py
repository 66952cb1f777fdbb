"""The run folder and the training loop around an :class:`~smpc_gym.agents.base.Algorithm`.

A run folder (default ``runs/<algo>-<env>-<seed>``) holds::

    config.yaml      the fully resolved run: algo, env, env_preset, env_kwargs, config,
                     seed, steps, launch, runner settings, package versions
    metrics.csv      one row per hooks.log() call: step, wall_time, then the metrics
                     (appended and flushed per row; a new metric name rewrites the header)
    tb/              TensorBoard event files (when tensorboard is installed)
    checkpoints/     ckpt-<step>.pt, written atomically; the last ``keep`` are kept
    model.pt         the final algorithm (same format as a checkpoint)
    eval.json        final evaluation (see smpc_gym.training.evaluate)

Resume semantics (``--resume``): the latest checkpoint is loaded (its env step ``S``),
rows of ``metrics.csv`` with ``step > S`` are dropped (as is a half-written last line),
TensorBoard is re-opened with ``purge_step=S+1`` so its later events are hidden, and
training continues from ``S``. Every step the algorithm logs therefore appears exactly
once, in strictly increasing order. An episode in progress at the checkpoint restarts
(documented in :mod:`smpc_gym.agents.base`). Ctrl-C or a crash leaves the last
checkpoint intact: checkpoints are only ever replaced atomically.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import shutil
import sys
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

CKPT_RE = re.compile(r"^ckpt-(\d+)\.pt$")
RUN_FILES = ("config.yaml", "metrics.csv", "model.pt", "eval.json")
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


class _Progress:
    """A rich progress bar with live metrics; plain milestone lines when not a TTY."""

    def __init__(self, total: int, start: int, label: str, quiet: bool) -> None:
        self.total, self.label, self.quiet = total, label, quiet
        self.tty = sys.stdout.isatty() and not quiet
        self._next_pct = 10 * (int(100 * start / max(total, 1)) // 10 + 1)
        self._progress: Any = None
        if self.tty:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[metrics]}"),
            )
            self._progress.start()
            self._task = self._progress.add_task(label, total=total, completed=start, metrics="")

    def update(self, step: int, metrics: Mapping[str, float]) -> None:
        text = "  ".join(f"{k}={_short(v)}" for k, v in list(metrics.items())[:4])
        if self._progress is not None:
            self._progress.update(self._task, completed=min(step, self.total), metrics=text)
        elif not self.quiet:
            pct = 100 * step / max(self.total, 1)
            if pct >= self._next_pct:
                print(f"{self.label}: step {step}/{self.total} ({pct:.0f}%)  {text}", flush=True)
                while self._next_pct <= pct:
                    self._next_pct += 10

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def _short(v: Any) -> str:
    try:
        return f"{float(v):.4g}"
    except (TypeError, ValueError):
        return str(v)


class RunHooks:
    """The runner's :class:`~smpc_gym.agents.base.TrainHooks`: CSV + TensorBoard +
    progress bar logging, and periodic atomic checkpoints of ``algo``."""

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
    ) -> None:
        self.run_dir = run_dir
        self.algo = algo
        self.checkpoint_every = max(1, int(checkpoint_every))
        self.keep = max(1, int(keep_checkpoints))
        self.last_step = start_step
        self.last_ckpt = start_step
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
        self.progress = _Progress(total_steps, start_step, f"{algo.name} on {run_dir.name}", quiet)
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
        save_algorithm(self.algo, self.run_dir / "checkpoints" / f"ckpt-{step:012d}.pt")
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
    render: bool = False,
    tensorboard: bool = True,
    steps: int | None = None,
) -> dict[str, Any]:
    """Train (or resume) a run in ``run_dir`` and return its evaluation (``eval.json``).

    With ``resume=True`` the run's own ``config.yaml`` is used (``run`` may be None;
    ``steps`` may extend the run's length). A new run's length is ``run.steps`` alone
    (:func:`~smpc_gym.training.config.resolve` sets it from ``--steps``/``--episodes``);
    ``steps`` is refused without ``resume``. ``checkpoint_every`` defaults to a tenth of
    the run (at least 1,000 steps).
    """
    from smpc_gym.training.evaluate import evaluate, write_eval

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
        ckpt = resume_checkpoint([p for _, p in list_checkpoints(run_dir)])  # newest good
        if ckpt is not None:
            algo = load_algorithm(ckpt)
            algo.launch_options = dict(run.launch)
            start = int(algo.env_steps)
        else:
            algo = build_algorithm(run)
        wall_offset = MetricsCSV(run_dir / "metrics.csv").truncate_after(start)
        if start == 0:
            (run_dir / "metrics.csv").unlink(missing_ok=True)
            shutil.rmtree(run_dir / "tb", ignore_errors=True)
        checkpoint_every = checkpoint_every or saved.get("runner", {}).get("checkpoint_every")
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

    every = int(checkpoint_every or max(1_000, run.steps // 10))
    record = run.to_dict()
    record["runner"] = {"checkpoint_every": every, "keep_checkpoints": keep_checkpoints}
    record["versions"] = versions()
    _write_yaml(run_dir / "config.yaml", record)

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
    )
    try:
        if algo.env_steps < run.steps:
            algo.train(run.steps, hooks)
        if not list_checkpoints(run_dir) or list_checkpoints(run_dir)[-1][0] != algo.env_steps:
            hooks.checkpoint(algo.env_steps)
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
    result = evaluate(algo, run.env, run.env_kwargs, episodes=eval_episodes, epsilon=eval_epsilon)
    write_eval(run_dir / "eval.json", result)
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
