"""The headline run's ending: the runner prints secure MADDPG's Table 5 and writes it.

Fast: ``SecureMADDPG.train`` is replaced by a stand-in that hands over the pre-trained
actors as the "secure" ones (no MPC), so everything after training — the one final
evaluation, the Table-5 report, ``report.json``, the wall time — runs for real. The real
two-party run with every phase named is ``test_a_tiny_secure_run_names_every_phase``
(slow).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from smpc_gym.agents import maddpg
from smpc_gym.agents import secure_maddpg as sm
from smpc_gym.agents.base import NullHooks
from smpc_gym.training.config import RunConfig
from smpc_gym.training.run import format_wall_time, train

TINY = {"hidden": 16, "batch_size": 32, "learning_starts": 32, "pretrain_steps": 64}
TIMING = {"update_s": 6.0, "updates": 3, "bytes": 3e6, "rounds": 90, "step_s": 1.0, "steps": 8}


def _fake_train(self: sm.SecureMADDPG, total_steps: int, hooks: NullHooks) -> None:
    """What a finished local launch leaves behind, without the parties: the owners'
    actors (here: the public pre-trained ones) and both parties' results."""
    pre = maddpg.pretrain_for(self.config, self.env_kwargs, self.seed)
    self.actors = {i: pre.nets.actors[i] for i in range(2)}
    self.pretrained_actors = list(pre.nets.actors)  # as party 0 returns them
    self.env_steps = int(total_steps)
    self.last_results = [{"rank": r, "timing": dict(TIMING)} for r in (0, 1)]


def test_the_run_ends_with_table5_and_the_wall_time(tmp_path: Path, monkeypatch, capsys) -> None:
    torch.set_num_threads(1)
    monkeypatch.setattr(sm.SecureMADDPG, "train", _fake_train)
    run = RunConfig(
        algo="secure_maddpg", env="supply_chain", env_preset="default", env_kwargs={},
        config=dict(TINY), seed=2, steps=8,
    )  # fmt: skip
    result = train(run, tmp_path / "run", tensorboard=False, eval_episodes=4, progress_tty=False)
    out = capsys.readouterr().out
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    rows = report["rows"]
    assert list(rows) == ["secure 2PC", "pre-trained", "myopic", "random"]
    # the table scores the policy the runner evaluated, on the same seeds
    assert rows["secure 2PC"]["total_ncr"] == pytest.approx(result["total_ncr"], rel=1e-6)
    assert rows["secure 2PC"]["episodes"] == 4
    assert rows["secure 2PC"] == rows["pre-trained"]  # the stand-in's actors are those
    assert report["cost"]["secure_update_s"] == pytest.approx(2.0)
    assert report["cost"]["rounds_per_update"] == pytest.approx(30.0)
    assert report["text"] in out
    assert "s/update" in out and "MB" in out
    assert out.rstrip().splitlines()[-1].startswith("finished in ")
    assert (tmp_path / "run" / "eval.json").is_file()


def test_no_report_without_both_actors(tmp_path: Path) -> None:
    algo = sm.SecureMADDPG(sm.Config(**TINY), {}, 0)
    assert algo.final_report([10_000]) is None  # no actor revealed: nothing to tabulate


def test_wall_time_reads_as_minutes_and_seconds() -> None:
    assert format_wall_time(42.4) == "42 s"
    assert format_wall_time(432.0) == "7 min 12 s"
    assert format_wall_time(3780.0) == "1 h 03 min"


def _relay_lines(tmp_path: Path, messages: list[tuple]) -> list[str]:
    """The progress lines the launcher prints for these party messages (no parties)."""
    import io
    import queue
    import threading

    from smpc_gym.agents.secure_maddpg.algorithm import _PhaseProgress
    from smpc_gym.training.progress import TrainingProgress
    from smpc_gym.training.run import RunHooks

    algo = sm.SecureMADDPG(sm.Config(**TINY), {}, 0)
    buf = io.StringIO()
    progress = TrainingProgress(20, 0, tty=False, stream=buf)
    hooks = RunHooks(tmp_path, algo, 20, tensorboard=False, progress=progress)
    hooks.phase("start-up")
    q: queue.Queue = queue.Queue()
    for m in messages:
        q.put(m)
    stop, errors = threading.Event(), []
    stop.set()  # the relay drains the queue, then returns
    algo._relay(q, _PhaseProgress(hooks, 20), hooks, stop, errors)
    hooks.close()
    assert not errors, errors
    return buf.getvalue().splitlines()


def test_the_launcher_shows_pretraining_then_the_secure_phase_and_redos(tmp_path: Path) -> None:
    row = {"episodes": 0.0, "updates": 2.0, "overflow_redos": 0.0}
    msgs: list[tuple] = [
        ("pretrain", 0, s, {"total": 64.0, "total_ncr": 1500.0 + s}) for s in (16, 32, 48, 64)
    ]
    msgs += [("log", r, 10, dict(row)) for r in (0, 1)]
    msgs += [("log", r, 20, {**row, "overflow_redos": 1.0}) for r in (0, 1)]
    lines = _relay_lines(tmp_path, msgs)
    phases = [ln.split()[0] for ln in lines if ln[:1].isalpha()]
    assert phases[0] == "start-up"
    pre = [ln for ln in lines if ln.startswith("pre-training")]
    assert pre and "/ 64" in pre[0] and "steps/s" in pre[-1] and "ETA" in pre[-1]
    assert any(ln.startswith("pre-training") and " 64 / 64" in ln for ln in lines)
    secure = [i for i, ln in enumerate(lines) if ln.startswith("secure phase")]
    assert secure and secure[0] > lines.index(pre[-1])  # after pre-training, never before
    assert any("/ 20" in lines[i] for i in secure)
    redo = [ln for ln in lines if "wrap-around" in ln]
    assert len(redo) == 1 and "before step 20" in redo[0]


@pytest.mark.slow
def test_a_tiny_secure_run_names_every_phase(tmp_path: Path, capsys) -> None:
    """A real two-party run through the runner: each phase reports as it runs, and the
    run ends with Table 5 and its wall time."""
    cfg = {"hidden": 8, "batch_size": 8, "learning_starts": 8, "log_every": 4,
           "pretrain_steps": 48, "pretrain_config": {"log_every": 8}, "timeout_s": 60}  # fmt: skip
    run = RunConfig(
        algo="secure_maddpg", env="supply_chain", env_preset="default", env_kwargs={},
        config=cfg, seed=1, steps=12,
    )  # fmt: skip
    train(run, tmp_path / "run", tensorboard=False, eval_episodes=2, progress_tty=False)
    out = capsys.readouterr().out
    starts = [ln.split("  ")[0].strip() for ln in out.splitlines()]
    order = ["start-up", "pre-training", "secure phase", "evaluation", "report"]
    firsts = [next(i for i, s in enumerate(starts) if s.startswith(p)) for p in order]
    assert firsts == sorted(firsts), out
    assert "secure 2PC" in out and "pre-trained" in out and "s/update" in out
    assert out.rstrip().splitlines()[-1].startswith("finished in ")
