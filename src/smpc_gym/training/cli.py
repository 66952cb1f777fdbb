"""The command line behind ``train.py``, ``python -m smpc_gym`` and ``smpc-gym``.

Three commands::

    train.py --algo ALGO --env ENV [--config agents/ALGO.yaml] [--set key=value ...]
             [--seed N] [--steps N | --episodes N] [--out runs/NAME] [--resume]
             [--render] [--quiet] [...]
    train.py plot RUN [RUN ...] [--metric M ...] [--out F.png] [--smooth K]
             (default: the periodic evaluation with its 95% CI, else the training return)
    train.py eval RUN [--episodes N] [--epsilon E] [--render [--max-steps N]]
             [--normalized] [--json] [--write] [--threads N]

Bad input (unknown algo, env, field, bad value, algo/env mismatch, an existing run
folder without ``--resume``/``--overwrite``, ``--resume`` with nothing to resume) prints
one ``error:`` line and exits with code 2, without a traceback. Ctrl-C during training
finishes the current step, writes a checkpoint and exits with 130, naming the file
(a second Ctrl-C aborts at once; the last periodic checkpoint is then named).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from smpc_gym.storage.files import IntegrityError
from smpc_gym.training.config import ConfigError, parse_count

PROG = "train.py"


class UsageError(Exception):
    """Bad command-line usage (exit code 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, no usage dump
        raise UsageError(message)


def _train_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog=PROG,
        description="Train an algorithm on an env; see also `plot` and `eval` subcommands.",
        epilog="Subcommands: `%(prog)s plot RUN...`, `%(prog)s eval RUN`.",
    )
    p.add_argument("--algo", help="algorithm name (see --list)")
    p.add_argument(
        "--env",
        help="greedy_mouse or supply_chain, or a registered id (GreedyMouse-v0, "
        "SupplyChain-v0, greedy_mouse_v0, supply_chain_v0, smpc/...)",
    )
    p.add_argument("--config", help="agent preset file (default agents/ALGO.yaml)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a Config field, env.KWARG, or env_preset=NAME (repeatable)",
    )
    p.add_argument("--seed", type=int, default=0)
    length = p.add_mutually_exclusive_group()
    length.add_argument("--steps", type=_count, help="total env steps (e.g. 300000 or 3e5)")
    length.add_argument(
        "--episodes", type=_count, help="total episodes (x episode length; 1e3 is fine)"
    )
    p.add_argument("--out", help="run folder (default runs/ALGO-ENV-SEED)")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run folder")
    p.add_argument("--render", action="store_true", help="show a few episodes at the end")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument(
        "--checkpoint-every",
        type=int,
        help="env steps between checkpoints (default: a tenth of the run, at least 1000); "
        "Ctrl-C also checkpoints, so an interrupted run loses at most this many steps",
    )
    p.add_argument(
        "--eval-every",
        type=int,
        help="evaluate on the fixed evaluation seeds every N env steps (--eval-episodes "
        "episodes) and log eval/mean_return, eval/ci95_return, ... (CSV, TensorBoard)",
    )
    p.add_argument("--keep-checkpoints", type=int, default=3)
    p.add_argument("--eval-episodes", type=int, default=20)
    p.add_argument("--eval-epsilon", type=float, help="exploration during evaluation")
    p.add_argument("--no-tensorboard", action="store_true", help="CSV only")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (default 1: the agents' small networks and batches run "
        "fastest on one thread, and party processes share the cores)",
    )
    p.add_argument("--list", action="store_true", help="list algorithms and exit")
    launch = p.add_argument_group("multi-process launch (secure algorithms)")
    launch.add_argument("--rank", type=int, help="this party's rank")
    launch.add_argument("--world-size", type=int, help="number of parties")
    launch.add_argument("--rendezvous", help="tcp://HOST:PORT of rank 0")
    launch.add_argument(
        "--dealer",
        metavar="HOST:PORT",
        help="run THIS process as the dealer (holds no data) of the parties meeting at "
        "tcp://HOST:PORT, then exit; needs --world-size (default 2) and no --algo",
    )
    launch.add_argument(
        "--world",
        metavar="HOST:PORT",
        help="secure_maddpg: the world simulator's address (default: a local one on "
        "127.0.0.1; multi-machine: required, on a host neither player controls)",
    )
    return p


def _plot_parser() -> argparse.ArgumentParser:
    p = _Parser(prog=f"{PROG} plot", description="Learning curves of runs (PNG).")
    p.add_argument("runs", nargs="*", help="run folders")
    p.add_argument(
        "--baseline", action="append", default=[], help="run drawn as a dashed mean line"
    )
    p.add_argument("--metric", action="append", help="metric column (repeatable)")
    p.add_argument(
        "--out", help="PNG path (default: learning_curves.png in the (first) run folder)"
    )
    p.add_argument("--smooth", type=int, default=1, help="moving-average window (rows)")
    p.add_argument("--title")
    return p


def _eval_parser() -> argparse.ArgumentParser:
    p = _Parser(prog=f"{PROG} eval", description="Evaluate (and replay) a trained run.")
    p.add_argument("run", help="run folder")
    p.add_argument("--episodes", type=int, help="episodes (default 20; 3 with --render)")
    p.add_argument("--epsilon", type=float, help="exploration during evaluation")
    p.add_argument("--render", action="store_true", help="replay in a pygame window")
    p.add_argument(
        "--max-steps",
        type=int,
        help="with --render: cut each episode to this many steps (default 200)",
    )
    p.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (default 1, as in training)"
    )
    p.add_argument("--normalized", action="store_true", help="also the normalized score")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--write", action="store_true", help="overwrite the run's eval.json")
    return p


def _count(text: str) -> int:
    """argparse ``type`` for counts: ``100000``, ``100_000`` and ``1e5`` are accepted; a
    number that is not whole is refused with the value named."""
    try:
        return parse_count(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("count: ")) from None


def _launch(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if args.rank is not None:
        out["rank"] = args.rank
    if args.world_size is not None:
        out["world_size"] = args.world_size
    if args.rendezvous is not None:
        if not str(args.rendezvous).startswith("tcp://"):
            raise ConfigError(f"--rendezvous {args.rendezvous!r}: expected tcp://HOST:PORT")
        out["rendezvous"] = args.rendezvous
    if args.world is not None:
        from smpc_gym.envs.supply_chain.remote import parse_address

        try:
            parse_address(args.world)
        except ValueError as exc:
            raise ConfigError(f"--world: {exc}") from None
        out["world"] = args.world
    return out


def _run_dealer(args: argparse.Namespace) -> int:
    """``train.py --dealer HOST:PORT``: be the dealer of the group meeting there."""
    from smpc_gym.secure.runtime import PartyConfig, run_ttp_dealer

    if args.algo or args.rank is not None or args.rendezvous:
        raise ConfigError(
            "--dealer runs only the dealer: drop --algo/--rank/--rendezvous (the dealer joins "
            "the parties' rendezvous at the --dealer address)"
        )
    from smpc_gym.envs.supply_chain.remote import parse_address

    try:
        parse_address(args.dealer)
        cfg = PartyConfig.from_env(
            world_size=args.world_size or 2, rendezvous=f"tcp://{args.dealer}"
        )
    except ValueError as exc:
        raise ConfigError(f"--dealer: {exc}") from None
    run_ttp_dealer(cfg)
    return 0


def check_env(env: str, env_kwargs: dict[str, Any]) -> None:
    """Build the env once so bad kwargs fail before training (as a ConfigError)."""
    from smpc_gym.envs.registry import get_env_spec

    try:
        e = get_env_spec(env).make(**env_kwargs)
    except (TypeError, ValueError, KeyError, OSError) as exc:
        raise ConfigError(f"env {env} with {env_kwargs}: {exc}") from None
    e.close()


def cmd_train(argv: Sequence[str]) -> int:
    """``train.py --algo ... --env ...``."""
    from smpc_gym.training import config as cfg
    from smpc_gym.training import run as runmod

    args = _train_parser().parse_args(argv)
    if args.list:
        from smpc_gym.agents.base import algorithm_names, get_algorithm

        for name in algorithm_names():
            try:
                envs = ", ".join(get_algorithm(name).envs)
            except ImportError:
                envs = "(module not available)"
            print(f"{name:16s} {envs}")
        return 0
    if args.dealer:
        return _run_dealer(args)
    launch = _launch(args)
    if args.threads is not None:  # always set (default 1); None only when called as a library
        if args.threads < 1:
            raise ConfigError(f"--threads: bad value {args.threads}; expected an int >= 1")
        import torch

        torch.set_num_threads(args.threads)
    if args.resume and (args.set or args.config):
        raise ConfigError(
            "--resume continues with the run's own config.yaml; --set/--config cannot change "
            "a run midway (start a new run with --out)"
        )
    if args.resume and args.out and not (args.algo or args.env):
        run = None
        out = Path(args.out)
    else:
        if not args.algo or not args.env:
            raise UsageError("--algo and --env are required (or --resume --out RUN)")
        env = cfg.env_name(args.env)
        run = cfg.resolve(
            args.algo,
            env,
            sets=args.set,
            config_path=args.config,
            seed=args.seed,
            steps=args.steps,
            episodes=args.episodes,
            launch=launch,
        )
        out = Path(args.out) if args.out else runmod.default_run_dir(args.algo, env, args.seed)
        if not args.quiet:
            preset = cfg.agent_preset(args.algo, env, args.config).get("steps")
            for warning in cfg.short_run_warnings(run, preset):
                print(f"{PROG}: warning: {warning}", file=sys.stderr)
    if args.resume:
        saved = runmod.run_config_from_dict(runmod.read_run_config(out))
        check_env(saved.env, saved.env_kwargs)
    else:
        assert run is not None
        check_env(run.env, run.env_kwargs)
    for name, value in (
        ("--eval-episodes", args.eval_episodes),
        ("--keep-checkpoints", args.keep_checkpoints),
    ):
        if value < 1:
            raise ConfigError(f"{name}: bad value {value}; expected an int >= 1")
    for name, value in (
        ("--checkpoint-every", args.checkpoint_every),
        ("--eval-every", args.eval_every),
    ):
        if value is not None and value < 1:
            raise ConfigError(f"{name}: bad value {value}; expected an int >= 1")
    steps = args.steps if args.resume else None
    if args.resume and args.episodes is not None:
        raise ConfigError("--resume takes --steps to extend a run, not --episodes")
    result = runmod.train(
        run,
        out,
        resume=args.resume,
        overwrite=args.overwrite,
        quiet=args.quiet,
        checkpoint_every=args.checkpoint_every,
        keep_checkpoints=args.keep_checkpoints,
        eval_episodes=args.eval_episodes,
        eval_epsilon=args.eval_epsilon,
        eval_every=args.eval_every,
        render=args.render,
        tensorboard=not args.no_tensorboard,
        steps=steps,
    )
    if not args.quiet:
        print(f"run folder: {out}")
        print(_summary_line(result))
    return 0


def _summary_line(result: dict[str, Any]) -> str:
    if not result.get("evaluated", True):
        return f"no evaluation: {result['reason']}"
    parts = [
        f"eval over {result['episodes']} episodes: mean return {result['mean_return']:.2f}"
        f" ± {result['std_return']:.2f}"
    ]
    if "cheese_per_1000_steps" in result:
        parts.append(
            f"cheese/1000 steps {result['cheese_per_1000_steps']:.2f}, "
            f"deaths/1000 steps {result['deaths_per_1000_steps']:.2f}"
        )
    if "players" in result:
        parts.append(
            f"total NCR {result['total_ncr']:.2f}, wastage {result['total_wastage_units']:.2f}"
        )
    return "; ".join(parts)


def cmd_plot(argv: Sequence[str]) -> int:
    """``train.py plot RUN...``."""
    from smpc_gym.training.plot import plot_runs

    args = _plot_parser().parse_args(argv)
    if not args.runs and not args.baseline:
        raise UsageError("plot: give at least one run folder")
    for r in [*args.runs, *args.baseline]:
        if not (Path(r) / "metrics.csv").is_file():
            raise ConfigError(f"{r} is not a run folder (no metrics.csv)")
    if args.smooth < 1:
        raise ConfigError(f"--smooth: bad value {args.smooth}; expected an int >= 1")
    out = args.out or Path([*args.runs, *args.baseline][0]) / "learning_curves.png"
    path = plot_runs(
        args.runs,
        metrics=args.metric or None,
        out=out,
        window=args.smooth,
        title=args.title,
        baselines=args.baseline,
    )
    print(path)
    return 0


def cmd_eval(argv: Sequence[str]) -> int:
    """``train.py eval RUN``."""
    from smpc_gym.training.evaluate import evaluate, normalized_score_of, replay, write_eval
    from smpc_gym.training.run import load_run, read_run_config

    args = _eval_parser().parse_args(argv)
    episodes = args.episodes if args.episodes is not None else (3 if args.render else 20)
    for name, value in (
        ("--episodes", episodes),
        ("--max-steps", args.max_steps),
        ("--threads", args.threads),
    ):
        if value is not None and value < 1:
            raise ConfigError(f"{name}: bad value {value}; expected an int >= 1")
    if args.max_steps is not None and not args.render:
        raise ConfigError("--max-steps applies to --render only (evaluation plays whole episodes)")
    if args.epsilon is not None and not 0 <= args.epsilon <= 1:
        raise ConfigError(f"--epsilon: bad value {args.epsilon}; expected a float in [0, 1]")
    import torch

    torch.set_num_threads(args.threads)  # the one-thread default of training
    saved = read_run_config(args.run)
    algo = load_run(args.run)
    if args.render:
        if args.write:
            raise ConfigError("--write with --render: shortened replays are not an evaluation")
        result = replay(
            algo,
            saved["env"],
            algo.env_kwargs,
            episodes=episodes,
            max_steps=args.max_steps or 200,
            epsilon=args.epsilon,
        )
    else:
        result = evaluate(
            algo, saved["env"], algo.env_kwargs, episodes=episodes, epsilon=args.epsilon
        )
    if args.normalized:
        result["normalized_score"] = normalized_score_of(result)
    if args.write:
        write_eval(Path(args.run) / "eval.json", result)
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True))
    else:
        _print_table(args.run, result)
    return 0


def _print_table(run: str, result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{run}: {result['episodes']} episodes, ε = {result['exploration']}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in (
        "mean_return",
        "std_return",
        "ci95_return",
        "mean_episode_steps",
        "cheese_per_1000_steps",
        "deaths_per_1000_steps",
        "mean_survival_steps",
        "total_reward",
        "total_ncr",
        "total_wastage_units",
        "normalized_score",
    ):
        if key in result:
            table.add_row(key, f"{result[key]:.3f}")
    for player, values in result.get("players", {}).items():
        for key, value in values.items():
            table.add_row(f"{player}.{key}", f"{value:.3f}")
    Console().print(table)


def _fail(message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 2 bad input, 130 interrupted, 141 when
    standard output was closed early, as in ``train.py --list | head -1``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {"plot": cmd_plot, "eval": cmd_eval}
    try:
        if argv and argv[0] in commands:
            return commands[argv[0]](argv[1:])
        return cmd_train(argv)
    except (UsageError, ConfigError) as exc:
        return _fail(str(exc))
    except IntegrityError as exc:  # a damaged, unverified or forged file: named, no traceback
        return _fail(str(exc))
    except KeyboardInterrupt as exc:  # run.TrainingInterrupted says which checkpoint
        print(f"{PROG}: {exc or 'interrupted'}", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader left: say nothing more, like any Unix filter
        # Python flushes stdout again at exit; point it at /dev/null so that flush is quiet.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 128 + signal.SIGPIPE
