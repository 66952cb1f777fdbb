"""``benchmarks/fixed_point_bits.py``: noise twins at several fractional bit widths.

Run as a user runs it (a subprocess, a short pre-training): the JSON keys, that the noise
reaches the update (a 16-bit twin differs from the noiseless update, and by more than a
24-bit one), and that a bad ``--bits`` is refused naming the value.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "fixed_point_bits.py"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )


def test_noise_twins_report_per_width_and_the_noise_reaches_the_update() -> None:
    res = _run("--updates", "3", "--bits", "16,24", "--set", "pretrain_steps=300", "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["updates"] == 3
    assert set(out["bits"]) == {"16", "24"}
    keys = {"max_abs_error", "median", "p99", "updates_over_1e-3", "worst_update"}
    for row in out["bits"].values():
        assert set(row) == keys
        assert 1 <= row["worst_update"] <= 3
    sixteen, twenty_four = out["bits"]["16"], out["bits"]["24"]
    assert sixteen["max_abs_error"] > 0  # a twin without its noise would give 0
    assert sixteen["max_abs_error"] > twenty_four["max_abs_error"]


def test_bad_bits_are_refused_naming_the_value() -> None:
    res = _run("--bits", "16,x")
    assert res.returncode == 2
    assert "'16,x'" in res.stderr
    res = _run("--bits", "4")
    assert res.returncode == 2
    assert "[8, 40]" in res.stderr
