"""``benchmarks/adam_floor.py``: SecureAdam's formula against torch Adam, plaintext."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_reports_the_floor_and_the_grid_yardstick_per_seed() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    res = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks/adam_floor.py"),
            "--seeds",
            "41",
            "--updates",
            "5",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    row = out["seeds"]["41"]
    assert set(row) == {"floor", "grid"}
    for r in row.values():
        assert set(r) == {"mae", "where"}
        assert r["mae"] > 0  # each variant really differs from torch Adam
