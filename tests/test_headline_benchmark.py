"""``benchmarks/headline_run.py``: the README's first command, run and read as a user would.

Slow (a short secure run: a small pre-training, 13 secure updates, two evaluation
episodes, ~1.5 min): the JSON keys the results page reads, the cost of the secure update
against the plaintext one from the same run, and the comparison with the myopic row.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_headline_run_reports_table_cost_and_wall_time(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    args = ["--steps", "140", "--set", "pretrain_steps=300", "--set", "pretrain_select_every=100"]
    args += ["--eval-episodes", "2", "--quiet"]
    out = tmp_path / "run"
    res = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks/headline_run.py"),
            "--json",
            "--keep",
            str(out),
            "--",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
        check=False,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    d = json.loads(res.stdout)
    assert set(d) == {
        "command",
        "finished_in_s",
        "rows",
        "cost",
        "pretrained_step",
        "ncr_secure_minus_myopic",
        "beats_myopic",
    }
    assert d["pretrained_step"] in (100, 200, 300)  # the best of the three checks
    assert d["command"].endswith(" ".join(args))
    assert set(d["rows"]) == {"secure 2PC", "pre-trained", "myopic", "random"}
    assert d["cost"]["updates"] > 0 and d["cost"]["ratio_to_plain"] > 1
    sec, myo = d["rows"]["secure 2PC"], d["rows"]["myopic"]
    assert d["ncr_secure_minus_myopic"] == sec["total_ncr"] - myo["total_ncr"]
    report = json.loads((out / "report.json").read_text())  # --keep keeps the run folder
    assert report["pretrained_step"] == d["pretrained_step"]
    assert f"snapshot of simulated step {d['pretrained_step']:,} of 300" in report["text"]


def test_an_existing_keep_folder_is_refused(tmp_path: Path) -> None:
    res = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks/headline_run.py"), "--keep", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert res.returncode == 2
    assert str(tmp_path) in res.stderr and "exists" in res.stderr
