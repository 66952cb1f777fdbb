"""--resume after a SIGKILL continues the same run: every logged step exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from smpc_gym.agents.base import get_algorithm
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


# --- Ctrl-C on a real train.py, then --resume: one test per algorithm family -------------
BIG = "10000000"  # never reached: the run is interrupted
FAMILIES = {
    # family: (algo, env, --set overrides, --checkpoint-every)
    "tabular": ("tabular_q", "greedy_mouse",
                ["num_envs=4", "log_every=200", "env.max_episode_steps=100"], 1000),
    "dqn": ("dqn", "greedy_mouse",
            ["num_envs=4", "hidden=[16]", "learning_starts=64", "batch_size=32",
             "buffer_size=1000", "target_update_every=100", "log_every=100"], 400),
    "fed_dqn": ("fed_dqn", "greedy_mouse",
                ["num_envs=2", "holders=2", "sync_every=50", "hidden=[16]",
                 "learning_starts=32", "batch_size=16", "buffer_size=500",
                 "target_update_every=50", "log_every=100"], 400),
    "secure_fed_dqn": ("secure_fed_dqn", "greedy_mouse",
                       ["num_envs=2", "holders=2", "sync_every=50", "hidden=[16]",
                        "learning_starts=32", "batch_size=16", "buffer_size=500",
                        "target_update_every=50", "log_every=100"], 200),
    "maddpg": ("maddpg", "supply_chain",
               ["n_envs=2", "hidden=8", "batch_size=8", "learning_starts=8",
                "buffer_size=1000", "log_every=20"], 100),
    "secure_maddpg": ("secure_maddpg", "supply_chain",
                      ["hidden=8", "batch_size=8", "learning_starts=8", "log_every=5",
                       "pretrain_steps=0"], 10),
    "sb3": ("sb3_dqn", "greedy_mouse",
            ["learning_starts=50", "batch_size=16", "buffer_size=500", "net_arch=[16]",
             "log_every=100"], 400),
}  # fmt: skip
#: slow: families whose parties are separate processes (CrypTen start-up dominates), and
#: two whose checkpoint path is the same as dqn's (fed_dqn) or a wrapper's (sb3)
SLOW = {"secure_fed_dqn", "secure_maddpg", "fed_dqn", "sb3"}


def _start(run: Path, algo: str, env: str, sets: list[str], every: int) -> subprocess.Popen:
    argv = [sys.executable, str(ROOT / "train.py"), "--algo", algo, "--env", env]
    argv += [x for s in sets for x in ("--set", s)]
    argv += ["--steps", BIG, "--checkpoint-every", str(every), "--out", str(run)]
    argv += ["--no-tensorboard", "--eval-episodes", "1", "--quiet"]
    env_vars = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT / "src")}
    return subprocess.Popen(
        argv, cwd=run.parent, env=env_vars, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


@pytest.mark.parametrize(
    "family", [pytest.param(f, marks=pytest.mark.slow) if f in SLOW else f for f in FAMILIES]
)
def test_ctrl_c_then_resume_loses_at_most_checkpoint_every(family, tmp_path, capsys) -> None:
    algo, env, sets, every = FAMILIES[family]
    run = tmp_path / family
    proc = _start(run, algo, env, sets, every)
    try:
        deadline = time.monotonic() + 300
        while not list_checkpoints(run):  # the first periodic checkpoint
            if proc.poll() is not None:
                pytest.fail(f"train.py ended early ({proc.returncode}): {proc.stderr.read()}")
            if time.monotonic() > deadline:
                pytest.fail("no checkpoint within 300 s")
            time.sleep(0.05)
        first = list_checkpoints(run)[-1][0]
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    step, path = list_checkpoints(run)[-1]
    assert f"checkpoint {path} holds step {step}" in err  # names the file that exists
    assert load_algorithm(path).env_steps == step
    assert not (run / "model.pt").exists()  # no claim of a finished run
    logged = _steps(run)
    cooperative = getattr(get_algorithm(algo), "stops_on_request", True)
    if cooperative:  # finished its step, checkpointed it: nothing logged is lost
        assert step > first and logged[-1] == step
    else:  # parties ended at once: back to the last periodic checkpoint
        assert logged[-1] - step < every
    kept = [s for s in logged if s <= step]

    total = step + every
    assert main(["--out", str(run), "--resume", "--steps", str(total), "--eval-episodes", "1"]) == 0
    out = capsys.readouterr().out
    assert f"resuming {run} from {path} at step {step} of {total}" in out
    resumed = _steps(run)
    assert resumed[: len(kept)] == kept  # history up to the checkpoint kept as is
    assert all(b > a for a, b in zip(resumed, resumed[1:], strict=False))  # none twice
    assert resumed[-1] >= total and load_algorithm(run / "model.pt").env_steps >= total
    assert (run / "eval.json").is_file()


def test_resume_refuses_without_checkpoint_or_when_finished(tmp_path, capsys) -> None:
    run = tmp_path / "r"
    argv = ["--algo", "random", "--env", "greedy_mouse", "--steps", "300", "--quiet"]
    argv += ["--set", "log_every=100", "--checkpoint-every", "100", "--out", str(run)]
    argv += ["--eval-episodes", "1", "--no-tensorboard"]
    assert main(argv) == 0
    before = (run / "eval.json").read_bytes()
    os.utime(run / "eval.json", (1, 1))
    # finished: refused with the reason, eval.json untouched
    assert main(["--out", str(run), "--resume", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "is finished (step 300 of 300" in err and "--steps N" in err
    assert (run / "eval.json").read_bytes() == before
    assert (run / "eval.json").stat().st_mtime == 1
    # extended: resumes and says it replaces eval.json
    assert main(["--out", str(run), "--resume", "--steps", "400", "--eval-episodes", "1"]) == 0
    out = capsys.readouterr().out
    assert f"resuming {run} from" in out and "at step 300 of 400" in out
    assert f"replacing {run / 'eval.json'}" in out
    # nothing to resume: refused, not silently retrained from 0
    for ckpt in (run / "checkpoints").iterdir():
        ckpt.unlink()
    assert main(["--out", str(run), "--resume", "--steps", "500", "--quiet"]) == 2
    assert "has no checkpoint to resume from" in capsys.readouterr().err
