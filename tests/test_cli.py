"""train.py's command line: clear one-line errors (exit 2), --set validation, presets,
and the plot / eval subcommands on a tiny run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from smpc_gym.training.cli import main
from smpc_gym.training.config import ConfigError, coerce, resolve

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--set", "env.max_episode_steps=50", "--set", "log_every=50", "--eval-episodes", "2"]


def _error(capsys, argv: list[str]) -> str:
    """Run the CLI expecting a bad-input failure; return its one error line."""
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1, err
    assert err.startswith("train.py: error: ")
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize(
    ("argv", "expect"),
    [
        (["--algo", "nope", "--env", "greedy_mouse"], ["unknown algorithm 'nope'", "tabular_q"]),
        (["--algo", "random", "--env", "nowhere"], ["unknown env 'nowhere'", "supply_chain"]),
        (
            ["--algo", "tabular_q", "--env", "supply_chain"],
            ["does not support env 'supply_chain'", "greedy_mouse"],
        ),
        (
            ["--algo", "random", "--env", "greedy_mouse", "--set", "bogus=1"],
            ["unknown", "'bogus'", "log_every"],
        ),
        (
            ["--algo", "random", "--env", "greedy_mouse", "--set", "log_every=abc"],
            ["log_every", "'abc'", "int"],
        ),
        (
            ["--algo", "random", "--env", "greedy_mouse", "--set", "log_every=1.5"],
            ["log_every", "1.5", "int"],
        ),
        (
            ["--algo", "random", "--env", "greedy_mouse", "--set", "env.speed=2"],
            ["unknown greedy_mouse env kwarg 'speed'", "cat_speed"],
        ),
        (
            ["--algo", "random", "--env", "greedy_mouse", "--set", "env.respawn=maybe"],
            ["env.respawn", "'maybe'", "bool"],
        ),
        (
            ["--algo", "random", "--env", "greedy_mouse", "--set", "env.map=no_such_map"],
            ["no_such_map"],
        ),
        (
            ["--algo", "random", "--env", "supply_chain", "--set", "env_preset=arctic"],
            ["unknown supply_chain preset", "perishable"],
        ),
        (["--algo", "random", "--env", "greedy_mouse", "--set", "novalue"], ["key=value"]),
        (["--algo", "random", "--env", "greedy_mouse", "--steps", "0"], ["steps", "positive"]),
        (["--algo", "random", "--env", "greedy_mouse", "--steps", "ten"], ["--steps", "ten"]),
        (["--env", "greedy_mouse"], ["--algo and --env are required"]),
        (
            ["--algo", "random", "--env", "greedy_mouse", "--steps", "5", "--episodes", "1"],
            ["not allowed with"],
        ),
        (["--algo", "random", "--env", "greedy_mouse", "--rendezvous", "h:1"], ["tcp://"]),
        (
            ["--algo", "random", "--env", "greedy_mouse", "--resume", "--set", "log_every=5"],
            ["--resume continues with the run's own config.yaml"],
        ),
        (["--algo", "random", "--env", "greedy_mouse", "--resume"], ["not a run folder"]),
        (["plot", "/nonexistent/run"], ["not a run folder"]),
        (["eval", "/nonexistent/run"], ["not a run folder"]),
    ],
)
def test_bad_input_is_one_line_exit_2(capsys, tmp_path, argv, expect) -> None:
    argv = [*argv, "--out", str(tmp_path / "run")] if argv[0] not in ("plot", "eval") else argv
    err = _error(capsys, argv)
    for fragment in expect:
        assert fragment in err, err
    assert not (tmp_path / "run" / "metrics.csv").exists()


def test_module_and_train_py_exit_2_without_traceback(tmp_path, monkeypatch, capsys) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "smpc_gym", "--algo", "nope", "--env", "greedy_mouse"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "unknown algorithm 'nope'" in proc.stderr
    # train.py is the same CLI (run in-process to save a second interpreter start).
    import runpy

    monkeypatch.setattr(sys, "argv", ["train.py", "--algo", "nope", "--env", "greedy_mouse"])
    with pytest.raises(SystemExit) as exc:
        runpy.run_path(str(ROOT / "train.py"), run_name="__main__")
    assert exc.value.code == 2
    assert "unknown algorithm 'nope'" in capsys.readouterr().err


def test_output_into_a_closed_pipe_ends_quietly(tmp_path) -> None:
    """``train.py --list | head -1``: the reader leaves early; no BrokenPipeError trace."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "smpc_gym", "--list"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # before the interpreter has started: every write hits EPIPE
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141, err
    assert err == ""


def test_set_values_are_parsed_and_typed() -> None:
    run = resolve(
        "random",
        "supply_chain",
        sets=["log_every=1e3", "env.p_max=[5, 9]", "env.perishable=true", "env.q_max=7"],
        steps=100,
    )
    assert run.config["log_every"] == 1000 and isinstance(run.config["log_every"], int)
    assert run.env_kwargs["p_max"] == (5.0, 9.0)
    assert run.env_kwargs["perishable"] is True
    assert run.env_kwargs["q_max"] == 7.0 and isinstance(run.env_kwargs["q_max"], float)
    assert run.config["env"] == "supply_chain"  # filled from --env


def test_presets_layer_in_order() -> None:
    # envs/supply_chain.yaml 'perishable' preset, then --set env.* wins over it.
    run = resolve("random", "supply_chain", sets=["env_preset=perishable"], steps=10)
    assert run.env_preset == "perishable" and run.env_kwargs["perishable"] is True
    run = resolve(
        "random", "supply_chain", sets=["env_preset=perishable", "env.perishable=false"], steps=10
    )
    assert run.env_kwargs["perishable"] is False
    # agents/heuristic.yaml sets obs_mode=global for greedy_mouse and a default length.
    run = resolve("heuristic", "greedy_mouse")
    assert run.env_kwargs["obs_mode"] == "global"
    assert run.steps == 20000
    # --episodes uses the env's episode length.
    assert resolve("random", "supply_chain", episodes=3).steps == 3 * 40
    assert (
        resolve("random", "greedy_mouse", sets=["env.max_episode_steps=30"], episodes=2).steps == 60
    )


def test_bad_preset_file_names_the_file(tmp_path) -> None:
    bad = tmp_path / "mine.yaml"
    bad.write_text("greedy_mouse:\n  config: {log_evry: 5}\n")
    with pytest.raises(ConfigError, match=r"mine\.yaml.*log_evry.*valid"):
        resolve("random", "greedy_mouse", config_path=bad)
    bad.write_text("greedy_mouse:\n  stepz: 5\n")
    with pytest.raises(ConfigError, match="stepz"):
        resolve("random", "greedy_mouse", config_path=bad)


def test_coerce_checks_types() -> None:
    assert coerce([1, 2], tuple[float, float], "x") == (1.0, 2.0)
    assert coerce(None, int | None, "x") is None
    assert coerce(3, int | None, "x") == 3
    with pytest.raises(ConfigError, match="x: bad value"):
        coerce([1, 2, 3], tuple[float, float], "x")
    with pytest.raises(ConfigError):
        coerce(True, int, "x")  # a bool is not an int here
    with pytest.raises(ConfigError):
        coerce("a", float, "x")


def test_existing_run_needs_resume_or_overwrite(capsys, tmp_path) -> None:
    out = tmp_path / "run"
    argv = ["--algo", "random", "--env", "greedy_mouse", "--steps", "50", "--quiet", "--out"]
    assert main([*argv, str(out), *TINY]) == 0
    err = _error(capsys, [*argv, str(out), *TINY])
    assert "--resume" in err and "--overwrite" in err
    assert main([*argv, str(out), *TINY, "--overwrite"]) == 0


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("runs")
    runs = []
    for algo in ("random", "heuristic"):
        out = root / algo
        code = main(
            ["--algo", algo, "--env", "greedy_mouse", "--steps", "200", "--quiet"]
            + ["--out", str(out), "--checkpoint-every", "100", *TINY]
        )
        assert code == 0
        runs.append(out)
    return runs[0], runs[1]


def test_run_folder_contents(tiny_runs) -> None:
    run = tiny_runs[0]
    for name in ("config.yaml", "metrics.csv", "model.pt", "eval.json"):
        assert (run / name).is_file(), name
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "ckpt-000000000100.pt",
        "ckpt-000000000200.pt",
    ]
    assert any((run / "tb").iterdir())
    result = json.loads((run / "eval.json").read_text())
    assert result["episodes"] == 2 and result["seeds"] == [10000, 10001]
    assert result["mean_episode_steps"] == 50


def test_plot_subcommand_writes_png(capsys, tiny_runs, tmp_path) -> None:
    out = tmp_path / "curves.png"
    code = main(["plot", *map(str, tiny_runs), "--out", str(out), "--smooth", "2"])
    assert code == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out.unlink()
    code = main(["plot", str(tiny_runs[0]), "--baseline", str(tiny_runs[1]), "--out", str(out)])
    assert code == 0 and out.is_file()
    err = _error(capsys, ["plot", str(tiny_runs[0]), "--metric", "nope", "--out", str(out)])
    assert "episode_return" in err  # lists the metrics it has


def test_eval_subcommand(capsys, tiny_runs) -> None:
    code = main(["eval", str(tiny_runs[1]), "--episodes", "2", "--json", "--normalized"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["algo"] == "heuristic" and result["episodes"] == 2
    assert "normalized_score" in result
    # the human-readable table
    assert main(["eval", str(tiny_runs[0]), "--episodes", "1"]) == 0
    assert "cheese_per_1000_steps" in capsys.readouterr().out


def test_eval_of_a_damaged_model_names_the_file(capsys, tiny_runs, tmp_path) -> None:
    import shutil

    run = tmp_path / "damaged"
    shutil.copytree(tiny_runs[1], run)
    model = run / "model.pt"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0x01
    model.write_bytes(bytes(data))
    err = _error(capsys, ["eval", str(run), "--episodes", "1"])
    assert str(model) in err


def test_eval_render_replays_headless(tiny_runs, monkeypatch) -> None:
    # SDL_VIDEODRIVER=dummy (conftest): the pygame window path runs without a display.
    from smpc_gym.envs.greedy_mouse.env import GreedyMouseEnv

    monkeypatch.setitem(GreedyMouseEnv.metadata, "render_fps", 1000)  # no 8 fps wait
    assert main(["eval", str(tiny_runs[1]), "--episodes", "1", "--render", "--json"]) == 0


def test_launch_flags_reach_the_algorithm(tmp_path) -> None:
    from smpc_gym.training.run import load_run

    out = tmp_path / "r"
    argv = ["--algo", "random", "--env", "supply_chain", "--steps", "40", "--quiet"]
    argv += ["--out", str(out), "--eval-episodes", "1", "--rank", "1", "--world-size", "2"]
    argv += ["--rendezvous", "tcp://127.0.0.1:29500"]
    assert main(argv) == 0
    import yaml

    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["launch"] == {"rank": 1, "world_size": 2, "rendezvous": "tcp://127.0.0.1:29500"}
    assert load_run(out).env_steps == 40
    # one party of a multi-party launch cannot evaluate the joint policy: no eval.json
    assert not (out / "eval.json").exists()


def test_party_launch_says_why_it_does_not_evaluate(tmp_path, capsys) -> None:
    argv = ["--algo", "random", "--env", "greedy_mouse", "--steps", "20", "--no-tensorboard"]
    argv += ["--out", str(tmp_path / "r"), "--rank", "0", "--world-size", "2"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "no evaluation: rank 0 of a multi-party launch" in out
    assert not (tmp_path / "r" / "eval.json").exists()


def test_render_after_training_replays_short_episodes(tmp_path, monkeypatch) -> None:
    from smpc_gym.training import evaluate

    seen = []
    original = evaluate.evaluate

    def spy(algo, env, env_kwargs=None, **kw):
        if kw.get("render_mode") == "human":  # the replay: record it, skip the window
            seen.append((dict(env_kwargs or {}), kw.get("episodes")))
            return {}
        return original(algo, env, env_kwargs, **kw)

    monkeypatch.setattr(evaluate, "evaluate", spy)
    argv = ["--algo", "random", "--env", "greedy_mouse", "--steps", "50", "--quiet", "--render"]
    assert main([*argv, "--out", str(tmp_path / "r"), "--eval-episodes", "1"]) == 0
    assert seen == [({"max_episode_steps": 200}, 3)]  # 3 episodes, cut to 200 steps


# ------------------------------------------------ --env ids and counts such as 1e5
@pytest.mark.parametrize(
    ("given", "short"),
    [
        ("greedy_mouse", "greedy_mouse"),
        ("GreedyMouse-v0", "greedy_mouse"),
        ("smpc_gym:GreedyMouse-v0", "greedy_mouse"),
        ("smpc/GreedyMouse-v0", "greedy_mouse"),
        ("greedy_mouse_v0", "greedy_mouse"),
        ("SupplyChain-v0", "supply_chain"),
        ("smpc/SupplyChain-v0", "supply_chain"),
        ("supply_chain_v0", "supply_chain"),
    ],
)
def test_env_accepts_registered_ids(given: str, short: str) -> None:
    from smpc_gym.training.config import env_name

    assert env_name(given) == short
    assert resolve("random", given, steps=10).env == short


def test_env_ids_cover_every_runner_env_and_are_registered() -> None:
    import gymnasium as gym
    import pettingzoo

    import smpc_gym
    from smpc_gym.agents.base import ENV_NAMES
    from smpc_gym.training.config import ENV_IDS

    assert set(ENV_IDS) == set(ENV_NAMES)
    for ids in ENV_IDS.values():
        for name in ids:
            if name.startswith("smpc/"):
                assert name in pettingzoo.parallel_registry, name
            elif name.endswith("_v0"):
                assert hasattr(smpc_gym, name), name
            elif name.startswith("GreedyMouse"):
                assert name.removeprefix("smpc_gym:") in gym.registry, name


def test_wrong_env_lists_the_registered_ids(capsys, tmp_path) -> None:
    argv = ["--algo", "random", "--env", "GreedyMouse-v1", "--out", str(tmp_path / "r")]
    err = _error(capsys, argv)
    for fragment in ("unknown env 'GreedyMouse-v1'", "GreedyMouse-v0", "supply_chain_v0"):
        assert fragment in err, err


def test_run_with_a_gym_id_lands_in_the_short_name_folder(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    argv = ["--algo", "random", "--env", "GreedyMouse-v0", "--steps", "5e1", "--quiet", *TINY]
    assert main(argv) == 0
    config = (tmp_path / "runs" / "random-greedy_mouse-0" / "config.yaml").read_text()
    assert "env: greedy_mouse" in config and "steps: 50" in config


@pytest.mark.parametrize(
    ("text", "value"), [("1e5", 100_000), ("2.5e4", 25_000), ("300_000", 300_000), ("1E3", 1000)]
)
def test_counts_accept_scientific_notation(text: str, value: int) -> None:
    from smpc_gym.training.cli import _train_parser

    args = _train_parser().parse_args(["--steps", text])
    assert args.steps == value and isinstance(args.steps, int)
    assert _train_parser().parse_args(["--episodes", text]).episodes == value


@pytest.mark.parametrize("text", ["1.5", "1e-3", "2.5e0", "7.5e-1", "1e5x"])
def test_counts_refuse_what_is_not_whole(capsys, tmp_path, text: str) -> None:
    argv = ["--algo", "random", "--env", "greedy_mouse", "--steps", text]
    err = _error(capsys, [*argv, "--out", str(tmp_path / "r")])
    assert "--steps" in err and repr(text) in err and "whole number" in err


def test_parse_count_refuses_negative_counts() -> None:
    from smpc_gym.training.config import parse_count

    with pytest.raises(ConfigError, match="steps: bad value '-1e3'; expected a whole number >= 0"):
        parse_count("-1e3", "steps")


# --- periodic evaluation, plot into the run folder, fast eval, short render -------------
@pytest.fixture(scope="module")
def eval_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("evalrun") / "tq"
    argv = ["--algo", "tabular_q", "--env", "greedy_mouse", "--steps", "400", "--quiet"]
    argv += ["--set", "num_envs=4", "--eval-every", "150", "--checkpoint-every", "150"]
    argv += ["--out", str(out), *TINY]
    assert main(argv) == 0
    return out


def test_eval_every_logs_eval_columns_in_the_csv_and_tensorboard(eval_run) -> None:
    import yaml

    from smpc_gym.training.checkpoint import load_algorithm
    from smpc_gym.training.evaluate import evaluate
    from smpc_gym.training.run import checkpoint_path, read_metrics

    header, rows = read_metrics(eval_run / "metrics.csv")
    assert {"eval/mean_return", "eval/ci95_return", "eval/cheese_per_1000_steps"} <= set(header)
    evaluated = [int(r["step"]) for r in rows if r["eval/mean_return"] == r["eval/mean_return"]]
    assert evaluated == [152, 304]  # the first step (4 worlds per step) at/past 150, 300
    assert yaml.safe_load((eval_run / "config.yaml").read_text())["runner"]["eval_every"] == 150
    # the logged figure is the evaluation of that step's policy on the fixed seeds
    row = next(r for r in rows if r["step"] == 304)
    again = evaluate(load_algorithm(checkpoint_path(eval_run, 304)), "greedy_mouse", episodes=2)
    assert row["eval/mean_return"] == again["mean_return"]
    assert row["eval/ci95_return"] == again["ci95_return"]
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(eval_run / "tb"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("eval/mean_return")] == evaluated


def test_plot_defaults_to_the_eval_curve_in_the_run_folder(capsys, eval_run, tiny_runs) -> None:
    from smpc_gym.training.plot import default_metrics

    assert main(["plot", str(eval_run)]) == 0
    assert capsys.readouterr().out.strip() == str(eval_run / "learning_curves.png")
    assert (eval_run / "learning_curves.png").read_bytes()[:4] == b"\x89PNG"
    assert default_metrics([eval_run]) == ["eval/mean_return"]
    assert default_metrics([eval_run, tiny_runs[0]]) == ["episode_return"]  # no eval column


def test_eval_uses_one_thread_by_default(eval_run, capsys) -> None:
    import torch

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert main(["eval", str(eval_run), "--episodes", "1", "--json"]) == 0
        assert torch.get_num_threads() == 1
        assert main(["eval", str(eval_run), "--episodes", "1", "--threads", "2", "--json"]) == 0
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_eval_render_is_short_by_default(eval_run, monkeypatch, capsys) -> None:
    from smpc_gym.training import evaluate

    seen = []

    def spy(algo, env, env_kwargs=None, **kw):
        seen.append((dict(env_kwargs or {}).get("max_episode_steps"), kw.get("episodes")))
        return {"episodes": kw.get("episodes"), "exploration": 0.0, "mean_return": 0.0}

    monkeypatch.setattr(evaluate, "evaluate", spy)
    assert main(["eval", str(eval_run), "--render", "--json"]) == 0
    assert main(["eval", str(eval_run), "--render", "--episodes", "2", "--max-steps", "30"]) == 0
    assert seen == [(50, 3), (30, 2)]  # the run's 50-step episodes are already short
    err = _error(capsys, ["eval", str(eval_run), "--max-steps", "30"])
    assert "--max-steps applies to --render only" in err
    err = _error(capsys, ["eval", str(eval_run), "--render", "--write"])
    assert "not an evaluation" in err


def test_eval_every_is_refused_where_no_policy_exists_midway(capsys, tmp_path) -> None:
    err = _error(
        capsys,
        ["--algo", "secure_maddpg", "--env", "supply_chain", "--steps", "10", "--eval-every", "5"]
        + ["--out", str(tmp_path / "s"), "--quiet"],
    )
    assert "secure_maddpg has no plaintext policy until training ends" in err
    err = _error(capsys, ["--algo", "random", "--env", "greedy_mouse", "--eval-every", "0"])
    assert "--eval-every: bad value 0" in err
