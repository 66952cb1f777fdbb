"""Learning curves of several runs: one panel per metric, one line per run, x = env steps.

By default the curve is the periodic evaluation (``--eval-every``: ``eval/mean_return``
on the fixed evaluation seeds, drawn with its 95% confidence band from
``eval/ci95_return``): what the greedy policy achieves, not the training return, which
includes exploration noise. A run trained without ``--eval-every`` has no evaluation
column; then the training return is drawn and the axis label says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from smpc_gym.training.config import ConfigError
from smpc_gym.training.run import read_metrics

DEFAULT_METRIC = "eval/mean_return"
#: drawn when a run has no evaluation column (no ``--eval-every``)
FALLBACK_METRIC = "episode_return"
#: the column holding the half-width of a metric's 95% CI, for metrics that have one
CI_COLUMNS = {"eval/mean_return": "eval/ci95_return"}


def has_metric(run_dir: str | Path, metric: str) -> bool:
    """Whether ``run_dir``'s ``metrics.csv`` has a column for ``metric`` (with values)."""
    header, rows = read_metrics(Path(run_dir) / "metrics.csv")
    column = resolve_metric(header, metric)
    return column is not None and any(not np.isnan(r[column]) for r in rows)


def default_metrics(run_dirs: Sequence[str | Path]) -> list[str]:
    """``[eval/mean_return]`` when every run has it, else the training return."""
    if run_dirs and all(has_metric(r, DEFAULT_METRIC) for r in run_dirs):
        return [DEFAULT_METRIC]
    return [FALLBACK_METRIC]


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
    metrics: Sequence[str] | None = None,
    out: str | Path = "learning_curves.png",
    window: int = 1,
    labels: Sequence[str] | None = None,
    title: str | None = None,
    baselines: Sequence[str | Path] = (),
) -> Path:
    """Draw ``metrics`` of ``run_dirs`` (one panel per metric, side by side) into a PNG.

    Args:
        run_dirs: run folders (each with a ``metrics.csv``).
        metrics: metric column names (default :func:`default_metrics`: the evaluation
            curve with its CI band); a run without one is an error naming the valid ones.
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
    if metrics is None:
        metrics = default_metrics([*run_dirs, *baselines])
    labels = list(labels) if labels is not None else [Path(r).name for r in run_dirs]
    if len(labels) != len(run_dirs):
        raise ConfigError(f"plot: {len(labels)} labels for {len(run_dirs)} runs")
    curves = {m: [load_curve(r, m) for r in run_dirs] for m in metrics}
    bands = {
        m: [
            load_curve(r, CI_COLUMNS[m]) if has_metric(r, CI_COLUMNS[m]) else None for r in run_dirs
        ]
        for m in metrics
        if m in CI_COLUMNS
    }
    flat = {m: [float(np.mean(load_curve(r, m)[1])) for r in baselines] for m in metrics}
    fig, axes = plt.subplots(1, len(metrics), figsize=(6 * len(metrics), 4), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        for i, ((x, y), label) in enumerate(zip(curves[metric], labels, strict=True)):
            ys = smooth(y, window)
            ax.plot(x, ys, label=label, linewidth=1.5, color=f"C{i % 10}", marker=".")
            band = bands.get(metric, [None] * len(labels))[i]
            if band is not None and len(band[1]) == len(ys):
                ci = band[1]
                ax.fill_between(x, ys - ci, ys + ci, alpha=0.2, color=f"C{i % 10}", linewidth=0)
        for i, (value, run) in enumerate(zip(flat[metric], baselines, strict=True)):
            color = f"C{(len(run_dirs) + i) % 10}"
            label = f"{Path(run).name} (mean)"
            ax.axhline(value, linestyle="--", linewidth=1.2, color=color, label=label)
        ax.set_xlabel("env steps")
        ylabel = metric if window <= 1 else f"{metric} (mean of {window} rows)"
        if metric in bands:
            ylabel += " ± 95% CI"
        elif metric == FALLBACK_METRIC:
            ylabel += " (training, with exploration)"
        ax.set_ylabel(ylabel)
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
