"""Learning curves of several runs: one panel per metric, one line per run, x = env steps."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from smpc_gym.training.config import ConfigError
from smpc_gym.training.run import read_metrics

DEFAULT_METRIC = "episode_return"


def smooth(y: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average over ``window`` rows, ignoring NaNs (NaN where none)."""
    if window <= 1:
        return y
    out = np.full_like(y, np.nan, dtype=np.float64)
    for i in range(len(y)):
        chunk = y[max(0, i - window + 1) : i + 1]
        chunk = chunk[~np.isnan(chunk)]
        if len(chunk):
            out[i] = chunk.mean()
    return out


def resolve_metric(header: Sequence[str], metric: str) -> str | None:
    """The column for ``metric``: an exact match, else the one column named
    ``<prefix>/<metric>`` (algorithms may namespace their metrics, e.g.
    ``train/episode_return``)."""
    if metric in header:
        return metric
    matches = [h for h in header if h.endswith("/" + metric)]
    return matches[0] if len(matches) == 1 else None


def load_curve(run_dir: str | Path, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """``(steps, values)`` of ``metric`` from a run's ``metrics.csv`` (NaN rows dropped;
    see :func:`resolve_metric` for how the column is found)."""
    header, rows = read_metrics(Path(run_dir) / "metrics.csv")
    if not rows:
        raise ConfigError(f"{run_dir}: no metrics.csv rows to plot")
    column = resolve_metric(header, metric)
    if column is None:
        valid = [h for h in header if h not in ("step", "wall_time")]
        raise ConfigError(f"{run_dir}: no metric {metric!r}; it has: {', '.join(valid)}")
    steps = np.array([r["step"] for r in rows], dtype=np.float64)
    values = np.array([r[column] for r in rows], dtype=np.float64)
    keep = ~np.isnan(values)
    return steps[keep], values[keep]


def plot_runs(
    run_dirs: Sequence[str | Path],
    metrics: Sequence[str] = (DEFAULT_METRIC,),
    out: str | Path = "learning_curves.png",
    window: int = 1,
    labels: Sequence[str] | None = None,
    title: str | None = None,
    baselines: Sequence[str | Path] = (),
) -> Path:
    """Draw ``metrics`` of ``run_dirs`` (one panel per metric, side by side) into a PNG.

    Args:
        run_dirs: run folders (each with a ``metrics.csv``).
        metrics: metric column names; a run without one is an error naming the valid ones.
        out: the PNG path (parent folders are created).
        window: moving-average window in rows (1 = raw).
        labels: legend labels (default: the run folder names).
        title: figure title.
        baselines: runs drawn as dashed horizontal lines at the mean of their metric
            (for non-learning baselines, whose runs are usually much shorter).

    Returns:
        The path written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not run_dirs and not baselines:
        raise ConfigError("plot: give at least one run folder")
    labels = list(labels) if labels is not None else [Path(r).name for r in run_dirs]
    if len(labels) != len(run_dirs):
        raise ConfigError(f"plot: {len(labels)} labels for {len(run_dirs)} runs")
    curves = {m: [load_curve(r, m) for r in run_dirs] for m in metrics}
    flat = {m: [float(np.mean(load_curve(r, m)[1])) for r in baselines] for m in metrics}
    fig, axes = plt.subplots(1, len(metrics), figsize=(6 * len(metrics), 4), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        for (x, y), label in zip(curves[metric], labels, strict=True):
            ax.plot(x, smooth(y, window), label=label, linewidth=1.5)
        for i, (value, run) in enumerate(zip(flat[metric], baselines, strict=True)):
            color = f"C{(len(run_dirs) + i) % 10}"
            label = f"{Path(run).name} (mean)"
            ax.axhline(value, linestyle="--", linewidth=1.2, color=color, label=label)
        ax.set_xlabel("env steps")
        ax.set_ylabel(metric if window <= 1 else f"{metric} (mean of {window} rows)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        ax.ticklabel_format(axis="x", style="sci", scilimits=(-3, 4))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
