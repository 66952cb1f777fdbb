"""--resume after a SIGKILL continues the same run: every logged step exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from smpc_gym.training.checkpoint import load_algorithm
from smpc_gym.training.cli import main
from smpc_gym.training.run import list_checkpoints, read_metrics

ROOT = Path(__file__).resolve().parents[1]
ALGO = "tabular_q"  # the fastest learner; its checkpoint holds the Q-table and ε schedule
SETTINGS = [
    "--algo", ALGO, "--env", "greedy_mouse", "--seed", "5", "--quiet",
    "--set", "num_envs=4", "--set", "log_every=200", "--set", "env.max_episode_steps=100",
    "--checkpoint-every", "1000", "--eval-episodes", "2", "--no-tensorboard",
]  # fmt: skip


def _steps(run: Path) -> list[float]:
    return [r["step"] for r in read_metrics(run / "metrics.csv")[1]]


def test_resume_after_sigkill_has_every_step_once(tmp_path) -> None:
    run = tmp_path / "killed"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), *SETTINGS, "--steps", "50000000"]
        + ["--out", str(run)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            ckpts = list_checkpoints(run)
            steps = _steps(run)
            # a checkpoint exists and rows were logged after it: the case to repair
            if len(ckpts) >= 2 and steps and steps[-1] > ckpts[-1][0]:
                break
            assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(0.05)
        else:
            pytest.fail("no checkpoint within 120 s")
        assert proc.poll() is None  # killed mid-run, not after it finished
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL

    ckpt_step = list_checkpoints(run)[-1][0]
    before = [s for s in _steps(run) if s <= ckpt_step]
    assert any(s > ckpt_step for s in _steps(run))
    total = ckpt_step + 3000

    assert main(["--out", str(run), "--resume", "--steps", str(total), "--quiet"]) == 0
    resumed = _steps(run)
    assert resumed[: len(before)] == before  # history up to the checkpoint kept as is
    assert all(b > a for a, b in zip(resumed, resumed[1:], strict=False))  # no repeats
    assert resumed[-1] == total
    assert load_algorithm(run / "model.pt").env_steps == total

    # The same run without interruption logs exactly the same steps: nothing lost.
    ref = tmp_path / "reference"
    assert main([*SETTINGS, "--steps", str(total), "--out", str(ref)]) == 0
    assert resumed == _steps(ref)


def test_ctrl_c_keeps_last_checkpoint(tmp_path, monkeypatch, capsys) -> None:
    from smpc_gym.agents import baselines

    original = baselines._Baseline.train

    def interrupted(self, total_steps, hooks):
        original(self, 300, hooks)  # logs + checkpoints up to step 300 ...
        raise KeyboardInterrupt  # ... then the user presses Ctrl-C

    monkeypatch.setattr(baselines._Baseline, "train", interrupted)
    run = tmp_path / "r"
    argv = ["--algo", "random", "--env", "greedy_mouse", "--steps", "1000", "--quiet"]
    argv += ["--set", "log_every=100", "--checkpoint-every", "100", "--out", str(run)]
    assert main(argv) == 130
    assert "--resume" in capsys.readouterr().err
    assert list_checkpoints(run)[-1][0] == 300
    assert load_algorithm(list_checkpoints(run)[-1][1]).env_steps == 300
    assert not (run / "model.pt").exists()
    monkeypatch.undo()
    stale = run / "checkpoints" / ".ckpt-000000000400.pt.abc123.tmp"  # a save cut short
    stale.write_bytes(b"partial")
    assert main(["--out", str(run), "--resume", "--quiet", "--eval-episodes", "1"]) == 0
    assert _steps(run) == [100, 200, 300, 400, 500, 600, 700, 800, 900, 1000]
    assert not stale.exists()
