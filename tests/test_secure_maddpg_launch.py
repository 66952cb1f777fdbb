"""Secure MADDPG as real, separately started processes; failure and resume.

* two processes started independently (as on two machines) meet at a tcp rendezvous on
  127.0.0.1, with the dealer (``train.py --dealer``) and the world simulator
  (``python -m smpc_gym.envs.supply_chain.remote serve`` with a 0600 key file) started as
  their own processes, exactly as docs/security/transport.md describes, and complete a
  short run;
* a party killed mid-training makes the other side fail within the configured timeout
  with a message naming the dead party; ``--resume`` (the runner's resume) then continues
  from the last per-party share checkpoint to the end.

Both run in the default suite (each spawns several processes and runs CrypTen for 10–20 s
on an idle machine, minutes on a busy one).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from smpc_gym.secure.runtime import free_port

PY = sys.executable
TINY = {"hidden": 8, "batch_size": 8, "learning_starts": 8, "log_every": 10}


def _env() -> dict[str, str]:
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    return env


PARTY_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from smpc_gym.agents import secure_maddpg as sm
    from smpc_gym.agents.base import NullHooks
    rank, rendezvous, share_dir = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    cfg = sm.Config(**json.loads(sys.argv[4]), share_dir=share_dir, timeout_s=60,
                    world_key_file=sys.argv[6])
    algo = sm.SecureMADDPG(cfg, {}, 3)
    algo.launch_options = {"rank": rank, "world_size": 2, "rendezvous": rendezvous,
                           "world": sys.argv[5]}
    algo.train(14, NullHooks())
    print(json.dumps({"rank": rank, "env_steps": algo.env_steps, "updates": algo.updates,
                      "own_actor": sorted(algo.actors)}))
    """
)


DEALER_SCRIPT = (
    "import sys; from smpc_gym.training.cli import main; "
    "raise SystemExit(main(['--dealer', sys.argv[1]]))"
)


def test_two_separately_started_processes_tcp(tmp_path: Path) -> None:
    from smpc_gym.envs.supply_chain.remote import write_key_file

    port = free_port()
    rendezvous = f"tcp://127.0.0.1:{port}"
    key_file = write_key_file(tmp_path / "world.key")
    world = f"127.0.0.1:{free_port()}"
    mod = "smpc_gym.envs.supply_chain.remote"
    helpers = [
        subprocess.Popen(
            [PY, "-m", mod, "serve", world, "--key-file", str(key_file), "--seed", "3"],
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
        ),
        subprocess.Popen(
            [PY, "-c", DEALER_SCRIPT, f"127.0.0.1:{port}"],
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
        ),
    ]
    procs = [
        subprocess.Popen(
            [
                PY,
                "-c",
                PARTY_SCRIPT,
                str(r),
                rendezvous,
                str(tmp_path),
                json.dumps(TINY),
                world,
                str(key_file),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
        )
        for r in (0, 1)
    ]
    try:
        outs = [p.communicate(timeout=300) for p in procs]
        try:
            helper_errs = [h.communicate(timeout=60)[1] for h in helpers]
        except subprocess.TimeoutExpired as exc:  # say why: the parties' own ends first
            ends = "\n".join(
                f"party {r} exit {p.returncode}: {err[-1500:]}"
                for r, (p, (_out, err)) in enumerate(zip(procs, outs, strict=True))
            )
            raise AssertionError(f"{exc}\n{ends}") from exc
    finally:
        for p in [*procs, *helpers]:
            if p.poll() is None:
                p.kill()
                p.communicate()
    for h, err in zip(helpers, helper_errs, strict=True):
        assert h.returncode == 0, err[-3000:]  # the dealer and the world both exit cleanly
    for p, (_out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-3000:]
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
    for r, res in enumerate(results):
        assert res["rank"] == r and res["env_steps"] == 14 and res["updates"] == 7
        assert res["own_actor"] == [r]  # each party learned only its own actor


RUN_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from smpc_gym.training.config import RunConfig
    from smpc_gym.training.run import train
    run_dir, resume, cfg = sys.argv[1], sys.argv[2] == "1", json.loads(sys.argv[3])
    run = RunConfig(algo="secure_maddpg", env="supply_chain", env_preset="default",
                    env_kwargs={}, config=cfg, seed=4, steps=int(sys.argv[4]))
    res = train(None if resume else run, run_dir, resume=resume, quiet=True,
                checkpoint_every=10, tensorboard=False, eval_episodes=1,
                steps=int(sys.argv[4]) if resume else None)
    print(json.dumps({"ok": True}))
    """
)


def test_killed_party_fails_the_other_in_time_and_resume_continues(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    cfg = {**TINY, "timeout_s": 20}
    launcher = subprocess.Popen(
        [PY, "-c", RUN_SCRIPT, str(run_dir), "0", json.dumps(cfg), "400"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    shares = run_dir / "party_shares"
    deadline = time.monotonic() + 240
    while not list((shares / "party1").glob("shares-*.pt")):
        assert launcher.poll() is None, launcher.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "no share checkpoint appeared"
        time.sleep(0.5)
    os.kill(int((shares / "party1" / "pid").read_text()), signal.SIGKILL)
    killed_at = time.monotonic()
    _, err = launcher.communicate(timeout=cfg["timeout_s"] + 60)
    waited = time.monotonic() - killed_at
    assert launcher.returncode != 0
    assert "party 1" in err and "killed" in err, err[-2000:]
    assert waited < cfg["timeout_s"] + 30, f"the launcher took {waited:.0f}s to give up"
    ckpts = sorted((run_dir / "checkpoints").glob("ckpt-*.pt"))
    assert ckpts, "the runner kept no checkpoint"
    step = int(ckpts[-1].stem.split("-")[1])

    resumed = subprocess.Popen(
        [PY, "-c", RUN_SCRIPT, str(run_dir), "1", json.dumps(cfg), str(step + 4)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    try:
        out, err = resumed.communicate(timeout=900)
    except subprocess.TimeoutExpired:
        resumed.kill()
        out, err = resumed.communicate()
        raise AssertionError("resume hung: " + err[-3000:]) from None
    done = subprocess.CompletedProcess(resumed.args, resumed.returncode, out, err)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = (run_dir / "metrics.csv").read_text().splitlines()
    steps = [int(float(line.split(",")[0])) for line in metrics[1:]]
    assert steps == sorted(set(steps)) and steps[-1] == step + 4  # nothing doubled
    assert (shares / "party0" / f"shares-{step + 12:012d}.pt").exists() or steps[-1] == step + 4
    eval_json = json.loads((run_dir / "eval.json").read_text())
    assert "players" in eval_json
