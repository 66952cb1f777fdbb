"""Results table for secure MADDPG: EDE vs secure 2PC vs NDS, and secure-vs-EDE weight error.

Takes finished run folders of ``train.py`` and prints one table:

* **secure 2PC** — a ``train.py --algo secure_maddpg`` run (from scratch:
  ``pretrain_steps=0``);
* **EDE twin** — plaintext EDE MADDPG (:func:`maddpg.maddpg_update`) replayed here on the
  *same stream* the secure run saw: same seed (same initial weights), the same world
  resets (:func:`secure_maddpg._episode_seed`), the same per-player OU noise generators,
  the same minibatch sampler, the same config and the same number of env steps. The only
  difference is that the twin computes in float32 where the secure run computes on
  fixed-point shares; so the weight error between the two after the whole run is MPC's
  error, compounded through the trajectory (actions that differ by fixed-point error
  move the world slightly differently);
* **EDE** and **NDS** — ``train.py --algo maddpg`` / ``--algo nds`` runs with the same
  config and steps (the runner's own world seeds);

each evaluated with the runner's evaluation (``eval.json``: 20 greedy episodes on the
fixed evaluation seeds; the twin is evaluated the same way here). The secure weights are
reconstructed from the two parties' final share files (``party_shares/party0|1``) — an
analysis step that needs both parties' files, i.e. something only the two players
together (or a test harness) can do.

Usage::

    python benchmarks/secure_maddpg_results.py --secure runs/sm-secure \\
        --ede runs/sm-ede --nds runs/sm-nds [--json]

``--json`` prints one object: ``steps``, ``config`` (the secure run's), ``rows`` (per
method: ``reward_0``, ``reward_1`` (mean reward per step), ``wastage_units_0/1`` (per
episode), ``ncr_0/1`` (per episode), ``total_ncr``, ``total_wastage_units``), and
``weights`` (per network group ``actors``, ``critics``, ``target_actors``,
``target_critics`` and ``all``: ``mae``, ``rmse``, ``max`` of secure − EDE twin over every
parameter of both players).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from smpc_gym.agents import maddpg
from smpc_gym.agents import secure_maddpg as sm
from smpc_gym.agents.common.ou_noise import OUNoise
from smpc_gym.training.evaluate import eval_seeds, evaluate_supply_chain
from smpc_gym.training.run import read_run_config

GROUPS = ("actors", "critics", "target_actors", "target_critics")


def plain_twin(
    cfg: sm.Config,
    env_kwargs: Mapping[str, Any],
    seed: int,
    steps: int,
    init: maddpg.MADDPG | None = None,
    cls: type[maddpg.MADDPG] = maddpg.MADDPG,
):
    """Plaintext EDE MADDPG on the stream a secure run with this config and seed sees.

    Mirrors :func:`secure_maddpg.party_main` step for step (action = actor + OU noise ·
    caps, clipped; own reward minus waste cost for ``train_reward: ncr``; one update per
    step once a batch is there), with :func:`maddpg.maddpg_update` in float32. ``init``:
    the pre-trained networks the secure phase starts from (:func:`maddpg.pretrain_for`);
    as in :meth:`secure_maddpg.SecureNets.share`, the targets restart as copies of the
    online networks and the optimisers, replay, noise and sampler start fresh. ``cls``:
    :class:`maddpg.MADDPG` (EDE) or :class:`smpc_gym.agents.nds.NDS` for an NDS learner
    on the same stream.
    """
    from smpc_gym import supply_chain_v0

    torch.set_num_threads(1)
    pcfg = cfg.plain()
    algo = cls(pcfg, dict(env_kwargs), seed)  # same init and sampler as the parties
    if init is not None:
        for mods, targets, src in (
            (algo.nets.actors, algo.nets.target_actors, init.nets.actors),
            (algo.nets.critics, algo.nets.target_critics, init.nets.critics),
        ):
            for m, t, s in zip(mods, targets, src, strict=True):
                m.load_state_dict(s.state_dict())
                t.load_state_dict(s.state_dict())
    seeds = np.random.SeedSequence(int(seed)).generate_state(8)
    noise = [
        OUNoise(
            sm.ACTION_DIM,
            cfg.ou_theta,
            cfg.ou_sigma,
            torch.Generator().manual_seed(int(seeds[2 + i])),
        )
        for i in range(sm.N_PLAYERS)
    ]
    high = algo.nets.action_high
    env = supply_chain_v0.parallel_env(**dict(env_kwargs))
    episodes = 0
    obs, _ = env.reset(seed=sm._episode_seed(seed, episodes))
    for nz in noise:
        nz.reset()
    for _ in range(steps):
        feats = [torch.as_tensor(obs[a], dtype=torch.float32)[None] for a in sm.AGENTS]
        actions = {}
        acts = []
        with torch.no_grad():
            for i, a in enumerate(sm.AGENTS):
                mean = algo.nets.actors[i](algo.sharing.actor_input(i, feats))[0]  # env units
                act = mean + noise[i].sample()[0] * high[i]
                act = torch.minimum(torch.clamp(act, min=0.0), high[i])
                acts.append(act)
                actions[a] = act.numpy().astype(np.float32)
        next_obs, rew, term, trunc, infos = env.step(actions)
        ended = False
        for i, a in enumerate(sm.AGENTS):
            waste = float(infos[a].get("waste_cost", 0.0))
            r = (rew[a] - waste) if pcfg.train_reward == "ncr" else rew[a]
            done = float(term[a] or (trunc[a] and cfg.done_on_truncation))
            algo.replay[i].add(
                feats[i],
                torch.as_tensor(next_obs[a], dtype=torch.float32)[None],
                acts[i][None],
                torch.tensor([r * cfg.reward_scale]),
                torch.tensor([done]),
            )
            ended = ended or bool(term[a] or trunc[a])
        if ended:
            episodes += 1
            obs, _ = env.reset(seed=sm._episode_seed(seed, episodes))
            for nz in noise:
                nz.reset()
        else:
            obs = next_obs
        size = algo.replay[0].size
        if size >= max(cfg.batch_size, cfg.learning_starts):
            idx = maddpg.sample_indices(size, cfg.batch_size, algo.sampler)
            batch = [r.get(idx) for r in algo.replay]
            maddpg.maddpg_update(algo.nets, algo.opts, batch, pcfg, algo.sharing)
    env.close()
    return algo


def secure_weights(run_dir: Path) -> tuple[int, dict[str, list[list[torch.Tensor]]]]:
    """Reconstruct every network from both parties' last share files (analysis only)."""
    share_dir = run_dir / "party_shares"
    files = [sorted((share_dir / f"party{r}").glob("shares-*.pt")) for r in range(2)]
    if not files[0] or not files[1]:
        raise FileNotFoundError(f"no share files under {share_dir}")
    step = int(files[0][-1].stem.split("-")[1])
    states = [sm.load_share_file(share_dir, r, step) for r in range(2)]
    out: dict[str, list[list[torch.Tensor]]] = {}
    for g in GROUPS:
        shares = [s["nets"][g] for s in states]
        nets: list[list[torch.Tensor]] = [[], []]
        for k, (s0, s1) in enumerate(zip(*shares, strict=True)):
            value = (s0 + s1).double() / 2.0**16  # int64 ring sum, then fixed-point decode
            for p in range(2):
                v = value[p]
                nets[p].append(v.t().float() if k % 2 == 0 else v.reshape(-1).float())
        out[g] = nets
    return step, out


def weight_errors(secure: Mapping[str, Any], plain: maddpg.MADDPG) -> dict[str, dict[str, float]]:
    """MAE, RMSE, max |secure − plaintext| per network group and over all parameters."""
    res: dict[str, dict[str, float]] = {}
    every = []
    for g in GROUPS:
        diffs = []
        for p, mod in enumerate(getattr(plain.nets, g)):
            for s, q in zip(secure[g][p], mod.parameters(), strict=True):
                diffs.append((s - q.detach()).reshape(-1).abs())
        d = torch.cat(diffs)
        every.append(d)
        res[g] = {
            "mae": float(d.mean()),
            "rmse": float(d.pow(2).mean().sqrt()),
            "max": float(d.max()),
        }
    d = torch.cat(every)
    res["all"] = {
        "mae": float(d.mean()),
        "rmse": float(d.pow(2).mean().sqrt()),
        "max": float(d.max()),
    }
    return res


def _row(ev: Mapping[str, Any]) -> dict[str, float]:
    pl = ev["players"]
    row = {}
    for i, a in enumerate(sm.AGENTS):
        row[f"reward_{i}"] = float(pl[a]["reward"])
        row[f"wastage_units_{i}"] = float(pl[a]["wastage_units"])
        row[f"ncr_{i}"] = float(pl[a]["ncr"])
    row["total_ncr"] = float(ev["total_ncr"])
    row["total_wastage_units"] = float(ev["total_wastage_units"])
    return row


def main() -> None:
    """Build the table from the run folders (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--secure", required=True, type=Path)
    p.add_argument("--ede", type=Path)
    p.add_argument("--nds", type=Path)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    rc = read_run_config(args.secure)
    cfg = sm.Config(**dict(rc.get("config") or {}))
    env_kwargs = dict(rc.get("env_kwargs") or {})
    seed = int(rc.get("seed", 0))
    step, secure = secure_weights(args.secure)
    if cfg.pretrain_steps:
        sys.exit("the twin replays secure runs from scratch only (pretrain_steps=0)")
    twin = plain_twin(cfg, env_kwargs, seed, step)
    twin_eval = evaluate_supply_chain(
        lambda obs: twin.act(obs, deterministic=True), env_kwargs, eval_seeds(20)
    )
    rows: dict[str, dict[str, float]] = {}
    rows["secure 2PC"] = _row(json.loads((args.secure / "eval.json").read_text()))
    rows["EDE twin (same stream)"] = _row(twin_eval)
    for name, d in (("EDE (runner)", args.ede), ("NDS (runner)", args.nds)):
        if d is not None:
            rows[name] = _row(json.loads((d / "eval.json").read_text()))
    out = {
        "steps": step,
        "config": {k: v for k, v in (rc.get("config") or {}).items()},
        "rows": rows,
        "weights": weight_errors(secure, twin),
    }
    if args.json:
        print(json.dumps(out, sort_keys=True))
        return
    print(f"{step} env steps, seed {seed}, optimizer {cfg.optimizer}; eval: 20 greedy episodes")
    cols = ("reward_0", "reward_1", "ncr_0", "ncr_1", "wastage_units_0", "wastage_units_1")
    print(f"{'':<24}" + "".join(f"{c:>17}" for c in cols))
    for name, r in rows.items():
        print(f"{name:<24}" + "".join(f"{r[c]:>17.2f}" for c in cols))
    print("weights, secure − EDE twin:")
    for g, v in out["weights"].items():
        print(f"  {g:<16} MAE {v['mae']:.3e}  RMSE {v['rmse']:.3e}  max {v['max']:.3e}")


if __name__ == "__main__":
    main()
