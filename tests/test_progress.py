"""The progress display's fixed columns and the one log/evaluate/checkpoint/stop cadence."""

from __future__ import annotations

import io
import re

import pytest

from smpc_gym.agents.base import NullHooks
from smpc_gym.agents.common.cadence import Cadence
from smpc_gym.training.progress import TrainingProgress, format_duration, format_line

LINE = re.compile(
    r"^(?P<phase>.{13}) +(?P<step>[\d,]+) / (?P<total>[\d,]+) +(?P<pct>\d+)%  "
    r"elapsed (?P<elapsed>\d+:\d\d:\d\d) +(?P<rate>[\d,.]+|-) (?P<unit>\w+)/s  "
    r"ETA (?P<eta>\d+:\d\d:\d\d|-:--:--)"
)


def test_durations() -> None:
    assert format_duration(0) == "0:00:00"
    assert format_duration(3725.4) == "1:02:05"
    assert format_duration(None) == "-:--:--"
    assert format_duration(float("inf")) == "-:--:--"


def test_lines_have_fixed_columns_whatever_the_numbers() -> None:
    lines = [
        format_line("train", 5, 50_000, 1.0, 5.0, metrics={"loss": 0.5}),
        format_line("train", 45_000, 50_000, 3600.0, 12_345.6),
        format_line("secure phase", 7, 400, 12.0, None),
        format_line("evaluation", 3, 3, 2.0, 1.5, unit="episodes"),
    ]
    spans = []
    for line in lines:
        m = LINE.match(line)
        assert m, line
        spans.append((m.end("step"), line.index("%"), line.index("elapsed")))
    for column in zip(*spans, strict=True):  # steps, percentages, times line up
        assert len(set(column)) == 1, lines
    m = LINE.match(lines[0])
    assert m and m["pct"] == "0" and m["rate"] == "5" and m["eta"] == "2:46:39"  # 49,995 s
    assert "loss=0.5" in lines[0]
    assert LINE.match(lines[2])["eta"] == "-:--:--"  # no rate yet: no ETA
    assert LINE.match(lines[3])["eta"] == "0:00:00" and LINE.match(lines[3])["unit"] == "episodes"
    slow = LINE.match(format_line("secure phase", 30, 320, 97.0, 0.31))
    assert slow and slow["rate"] == "0.31" and slow["eta"] == "0:15:35"  # 290 / 0.31 s


def test_plain_lines_at_each_tenth_and_phase_changes() -> None:
    out = io.StringIO()
    p = TrainingProgress(1000, 0, "dqn on runs/x", tty=False, stream=out)
    for step in range(50, 1001, 50):
        p.update(step, {"loss": 1.0})
    p.update(1000)  # the end is printed once
    text = out.getvalue().splitlines()
    assert text[0] == "dqn on runs/x"
    steps = [int(LINE.match(t)["step"].replace(",", "")) for t in text[1:]]
    assert steps == [100, 200, 300, 400, 500, 600, 700, 800, 900, 1000]
    p.phase("evaluation", total=5, start=0, unit="episodes")
    assert LINE.match(out.getvalue().splitlines()[-1])["phase"].strip() == "evaluation"
    p.event("Ctrl-C: finishing this step")
    assert out.getvalue().splitlines()[-1] == "Ctrl-C: finishing this step"


def test_resumed_progress_starts_at_the_resumed_step() -> None:
    out = io.StringIO()
    p = TrainingProgress(1000, 600, tty=False, stream=out)
    p.update(650)  # not yet the next tenth
    p.update(700)
    assert [LINE.match(t)["step"] for t in out.getvalue().splitlines()] == ["700"]


def test_quiet_prints_nothing() -> None:
    out = io.StringIO()
    p = TrainingProgress(100, 0, "label", quiet=True, stream=out)
    p.update(100, {"a": 1})
    p.phase("evaluation", total=2)
    p.event("x")
    p.close()
    assert out.getvalue() == ""


def test_live_bar_on_a_terminal_shows_the_same_fields() -> None:
    stream = io.StringIO()
    p = TrainingProgress(1000, 0, tty=True, stream=stream)
    p.update(500, {"loss": 0.25})
    task = p._bar.tasks[0]
    assert task.completed == 500 and task.description == "train"
    assert task.fields["metrics"] == "loss=0.25" and task.fields["rate"].endswith("steps/s")
    p.phase("secure phase")
    assert p._bar.tasks[0].description == "secure phase"
    p.event("a redo")
    p.close()
    assert "a redo" in stream.getvalue() and p._bar is None


class Hooks(NullHooks):
    """Records calls; checkpoint every ``ckpt`` steps, evaluate every ``ev`` steps."""

    def __init__(self, ckpt: int = 0, ev: int = 0, stop_at: int | None = None) -> None:
        self.calls: list[tuple] = []
        self.ckpt, self.ev, self.stop_at = ckpt, ev, stop_at
        self.last_ckpt = self.last_eval = 0
        self.step = 0

    def log(self, step, metrics) -> None:
        self.calls.append(("log", step, dict(metrics)))

    def should_checkpoint(self, step) -> bool:
        return bool(self.ckpt) and step - self.last_ckpt >= self.ckpt

    def checkpoint(self, step) -> None:
        self.last_ckpt = step
        self.calls.append(("ckpt", step))

    def should_evaluate(self, step) -> bool:
        return bool(self.ev) and step - self.last_eval >= self.ev

    def evaluate(self, step):
        self.last_eval = step
        return {"eval/mean_return": -1.0}

    def next_checkpoint(self, step):
        return self.last_ckpt + self.ckpt if self.ckpt else None

    def stop_requested(self) -> bool:
        return self.stop_at is not None and self.step >= self.stop_at


def _loop(hooks: Hooks, start: int, total: int, stride: int, log_every: int) -> int:
    cadence = Cadence(hooks, log_every, start, total)
    step = start
    while step < total:
        step += stride
        hooks.step = step
        if cadence.after_step(step, lambda s=step: {"at": float(s)}):
            break
    return step


def test_cadence_logs_checkpoints_evaluates_in_order() -> None:
    h = Hooks(ckpt=300, ev=500)
    _loop(h, 0, 1000, 40, 200)
    logs = [c[1] for c in h.calls if c[0] == "log"]
    ckpts = [c[1] for c in h.calls if c[0] == "ckpt"]
    # first step at/past each multiple of 200, plus checkpoint/eval steps, plus the end
    assert logs == [200, 320, 400, 520, 600, 640, 800, 960, 1000]
    assert ckpts == [320, 640, 960]
    evals = [c[1] for c in h.calls if c[0] == "log" and "eval/mean_return" in c[2]]
    assert evals == [520]  # merged into that step's row, not a second row
    for i, call in enumerate(h.calls):  # each checkpoint's step already has its row
        if call[0] == "ckpt":
            assert h.calls[i - 1][:2] == ("log", call[1])


def test_cadence_stops_after_checkpointing_the_step_of_the_request() -> None:
    h = Hooks(ckpt=10_000, stop_at=130)
    end = _loop(h, 0, 1000, 40, 200)
    assert end == 160  # the first step at/after the request
    assert h.calls[-2:] == [("log", 160, {"at": 160.0}), ("ckpt", 160)]


def test_cadence_resumed_midway_keeps_the_grid() -> None:
    h = Hooks()
    _loop(h, 410, 1000, 40, 200)
    assert [c[1] for c in h.calls] == [610, 810, 1010]  # the last step overshoots


def test_cadence_next_due_bounds_chunked_loops() -> None:
    h = Hooks(ckpt=300)
    c = Cadence(h, 100, 0, 1000)
    assert c.next_due(0) == 300
    assert Cadence(NullHooks(), 100, 0, 1000).next_due(0) == 1000  # nothing due: the end


def test_cadence_rejects_bad_log_every() -> None:
    with pytest.raises(ValueError, match="log_every: bad value 0"):
        Cadence(NullHooks(), 0, 0, 10)


def test_short_phases_print_only_their_first_and_last_line() -> None:
    out = io.StringIO()
    p = TrainingProgress(1000, 0, tty=False, stream=out)
    p.phase("evaluation", total=20, start=0, unit="episodes", tenths=False)
    for n in range(1, 21):
        p.update(n)
    p.phase("train", total=1000, start=500, unit="steps")
    p.update(600)
    lines = [LINE.match(t) for t in out.getvalue().splitlines()]
    assert [(m["phase"].strip(), m["step"]) for m in lines] == [
        ("evaluation", "0"),
        ("evaluation", "20"),
        ("train", "500"),
        ("train", "600"),  # tenths again in the train phase
    ]
