"""Stress test of secure MADDPG training: many secure updates beside a plaintext twin.

Two real party processes run secure MADDPG updates (:class:`secure_maddpg.Party`, the
code training uses) while party 0 runs the plaintext EDE update
(:func:`maddpg.maddpg_update`) on a twin that starts from the same networks and gets the
same minibatch indices (drawn from the shared, seeded sampler, as in training; a MADDPG
update has no other randomness — exploration noise only enters acting, which is checked
separately below). After **every** update:

* every parameter of every network (actors, critics and both targets) is revealed to
  party 0 (a benchmark-only reveal) and compared with the twin: ``max_abs_weight_error``
  is the largest absolute difference seen over the whole run;
* both secure actors act on the same 32 states as the twin's actors (the acting path,
  ``forward_stacked`` under exact truncation); ``max_abs_action_error`` is the largest
  difference in units of the action caps (actions are ``cap · σ(·)``);
* an update counts as ``undetected`` when its weight error exceeds 1e-3 and no redo
  (the revealed-loss check) fired during it.

``wraps_prevented_or_caught``: truncations that CrypTen's local truncation would have got
wrong on the very same shares (the parties exchange their shares to count them, uncounted
in the communication figures; benchmark only), plus redos by the loss check.

``--pretrained`` starts, as the headline preset does (``python train.py --algo
secure_maddpg --env supply_chain``: its ``pretrain_steps`` of plaintext MADDPG on the
simulated market ``pretrain_env``, the preset's loss scales), from pre-trained networks
and fresh optimiser states, with targets equal to the online networks, and replays the
pre-training buffer. Pre-training takes long, so ``--cache FILE`` keeps its result (with
a SHA-256 check on reading it back).

The cost of the protection is measured in the same run: ``--cost-updates`` extra updates
alternate between exact truncation and CrypTen's local truncation (``trunc.set_mode``),
each from its own copy of the start state, timed interleaved.

Usage::

    python benchmarks/secure_maddpg_stress.py --updates 20 --optimizer adam
    python benchmarks/secure_maddpg_stress.py --updates 2000 --pretrained --json
    python benchmarks/secure_maddpg_stress.py --updates 50 --truncation local   # old path

``--json`` prints one object with the keys ``config``, ``updates``,
``max_abs_weight_error``, ``max_abs_action_error``, ``wraps_prevented_or_caught``,
``would_wrap``, ``redos``, ``undetected``, ``seconds_per_update`` (secure update only,
without the checks), ``worst_update`` (the update with the largest weight error) and
``cost`` (``exact`` / ``local``: ``seconds``, ``mb``, ``rounds`` per update, party 0's
CrypTen counters; ``ratio_seconds``, ``ratio_mb``, ``ratio_rounds``: exact / local).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import hashlib
import io
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

from smpc_gym.agents import maddpg
from smpc_gym.agents import secure_maddpg as sm
from smpc_gym.secure.runtime import PROVIDERS, PartyConfig, launch_local, resolve_provider
from smpc_gym.training.config import resolve

SEED = 0
N_ACT_STATES = 32


def preset_config(sets: list[str] | None = None) -> tuple[sm.Config, dict[str, Any]]:
    """The headline preset's secure_maddpg config for supply_chain (with ``--set``
    overrides, checked as ``train.py`` checks them), and its env kwargs."""
    rc = resolve("secure_maddpg", "supply_chain", sets=list(sets or []))
    return sm.Config(**rc.config), dict(rc.env_kwargs)


def _synthetic(n: int, high: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(5)
    done = torch.zeros(n, 1)
    done[39::40] = 1.0
    return [
        {
            "obs": torch.rand(n, 5, generator=g),
            "next_obs": torch.rand(n, 5, generator=g),
            "action": torch.rand(n, 2, generator=g) * high[i],
            "reward": (torch.rand(n, 1, generator=g) * 100 - 20) * 0.01,
            "done": done.clone(),
        }
        for i in range(2)
    ]


def _pretrain_key(cfg: sm.Config) -> str:
    return json.dumps(
        [cfg.pretrain_steps, cfg.pretrain_config, cfg.pretrain_env, cfg.hidden], sort_keys=True
    )


def _pretrain(cfg: sm.Config, env: dict[str, Any]) -> dict[str, Any]:
    """The pipeline's pre-training (:func:`maddpg.pretrain_for`, as each party runs it)."""
    torch.set_num_threads(1)
    sim = maddpg.pretrain_for(cfg, env, SEED)
    n = sim.replay[0].size
    data = [{k: v[:n].clone() for k, v in r.data.items()} for r in sim.replay]
    return {
        "actors": [a.state_dict() for a in sim.nets.actors],
        "critics": [c.state_dict() for c in sim.nets.critics],
        "data": data,
        "key": _pretrain_key(cfg),
    }


def _load_or_pretrain(cfg: sm.Config, env: dict[str, Any], cache: str) -> dict[str, Any]:
    path = Path(cache) if cache else None
    if path is not None and path.exists():
        blob = path.read_bytes()
        want = Path(str(path) + ".sha256").read_text().split()[0]
        got = hashlib.sha256(blob).hexdigest()
        if got != want:
            raise ValueError(f"{path}: SHA-256 {got} does not match its .sha256 file ({want})")
        res = torch.load(io.BytesIO(blob), weights_only=True)
        if res.get("key") != _pretrain_key(cfg):
            raise ValueError(
                f"{path} was pre-trained with {res.get('key')}, this run wants {_pretrain_key(cfg)}"
            )
        return res
    res = _pretrain(cfg, env)
    if path is not None:
        buf = io.BytesIO()
        torch.save(res, buf)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(buf.getvalue())
        Path(str(path) + ".sha256").write_text(hashlib.sha256(buf.getvalue()).hexdigest() + "\n")
        tmp.replace(path)
    return res


def _nets(cfg: sm.Config, high: list[torch.Tensor], pre: dict[str, Any] | None):
    """Plaintext (actors, critics): pre-trained, or initialised as training does."""
    sh = maddpg.DataSharing("ede")
    seeds = sm._seeds(SEED)
    actors, critics = [], []
    for i in range(2):
        gen = torch.Generator().manual_seed(int(seeds[i]))
        a = maddpg.make_actor(sh.actor_in_dim, cfg.hidden, high[i], gen)
        c = maddpg.make_critic(sh.critic_in_dim, cfg.hidden, gen)
        if pre is not None:
            a.load_state_dict(pre["actors"][i])
            c.load_state_dict(pre["critics"][i])
        actors.append(a)
        critics.append(c)
    return actors, critics


def _fill(replay: maddpg.PlayerReplay, d: dict[str, torch.Tensor]) -> None:
    replay.add(d["obs"], d["next_obs"], d["action"], d["reward"], d["done"])


class FloorEpsAdam(torch.optim.Optimizer):
    """Plaintext Adam with :class:`SecureAdam`'s formula: ``θ −= lr·m̂/√(v̂ + ε²)``.

    ``SecureAdam`` floors ε at ``2^-12 / grad_scale`` (fixed-point resolution) and puts it
    under the square root; ``torch.optim.Adam`` (ε = 1e-8) takes full ``lr`` steps on
    coordinates whose gradient is ~0, which the secure one damps by design. This twin
    runs the secure algorithm in floating point, so the comparison measures only what
    MPC adds (fixed-point rounding, wraps).
    """

    def __init__(self, params: Any, lr: float, betas=(0.9, 0.999), eps: float = 1e-8):
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps})

    @torch.no_grad()
    def step(self, closure: Any = None) -> None:  # noqa: D102 - torch's signature
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                st = self.state[p]
                if not st:
                    st["t"], st["m"], st["v"] = 0, torch.zeros_like(p), torch.zeros_like(p)
                st["t"] += 1
                st["m"].mul_(b1).add_(p.grad, alpha=1 - b1)
                st["v"].mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
                m_hat = st["m"] / (1 - b1 ** st["t"])
                v_hat = st["v"] / (1 - b2 ** st["t"])
                p.add_(-group["lr"] * m_hat / torch.sqrt(v_hat + group["eps"] ** 2))


def _twin(cfg: sm.Config, actors, critics, high, twin: str = "secure-eps"):
    pc = cfg.plain()
    if cfg.optimizer == "adam" and twin == "secure-eps":
        ae = max(cfg.adam_eps, 2.0**-12 / cfg.actor_grad_scale)
        ce = max(cfg.adam_eps, 2.0**-12 / cfg.critic_grad_scale)
        nets = maddpg.Nets(
            actors=actors,
            critics=critics,
            target_actors=[copy.deepcopy(a) for a in actors],
            target_critics=[copy.deepcopy(c) for c in critics],
            action_high=high,
        )
        opts = maddpg.Optimisers(
            actors=[FloorEpsAdam(a.parameters(), pc.actor_lr, eps=ae) for a in actors],
            critics=[FloorEpsAdam(c.parameters(), pc.critic_lr, eps=ce) for c in critics],
        )
        return nets, opts
    nets = maddpg.Nets(
        actors=actors,
        critics=critics,
        target_actors=[copy.deepcopy(a) for a in actors],
        target_critics=[copy.deepcopy(c) for c in critics],
        action_high=high,
    )
    opts = maddpg.Optimisers(
        actors=[maddpg.make_optimiser(a.parameters(), pc.actor_lr, pc) for a in actors],
        critics=[maddpg.make_optimiser(c.parameters(), pc.critic_lr, pc) for c in critics],
    )
    return nets, opts


def _weight_error(party: sm.Party, twin: maddpg.Nets, rank: int) -> float | None:
    worst = 0.0
    plain = (
        {
            "actors": twin.actors,
            "critics": twin.critics,
            "target_actors": twin.target_actors,
            "target_critics": twin.target_critics,
        }
        if rank == 0
        else {}
    )
    for name, mlp in party.nets.modules().items():
        for p in range(2):
            layers = mlp.reveal_net(p, dst=0)
            if rank != 0:
                continue
            lin = [m for m in plain[name][p].modules() if isinstance(m, torch.nn.Linear)]
            for (w, b), m in zip(layers, lin, strict=True):
                worst = max(
                    worst,
                    float((w - m.weight.detach()).abs().max()),
                    float((b - m.bias.detach()).abs().max()),
                )
    return worst if rank == 0 else None


def _action_error(
    ctx, party: sm.Party, twin: maddpg.Nets, states: torch.Tensor, high
) -> float | None:
    from smpc_gym.secure.mpc_nn import fast_dispatch, forward_stacked
    from smpc_gym.secure.trunc import exact_truncation

    c = ctx.crypten
    with fast_dispatch(), exact_truncation():
        s = c.cryptensor(states, src=0)  # public test states
        (a,), _ = forward_stacked([party.nets.actors], [c.stack([s, s])])
        sec = a.get_plain_text(dst=0)
    if ctx.rank != 0:
        return None
    with torch.no_grad():
        errs = [(sec[i] - twin.actors[i](states) / high[i]).abs().max() for i in range(2)]
    return float(max(errs))


def _party(
    ctx,
    cfg: sm.Config,
    data,
    pre,
    high,
    n_updates: int,
    mode: str,
    cost_updates: int,
    count: bool,
    twin_kind: str,
):
    from smpc_gym.secure import trunc

    torch.set_num_threads(1)
    trunc.set_mode(mode)
    actors, critics = _nets(cfg, high, pre)
    party = sm.Party(
        ctx.crypten, ctx.rank, cfg, {}, SEED, init_nets=(actors, critics), action_high=high
    )
    _fill(party.replay, data[ctx.rank])
    twin, opts = (
        _twin(cfg, *_nets(cfg, high, pre), high, twin_kind) if ctx.rank == 0 else (None, None)
    )
    states = torch.cat([data[0]["obs"][:N_ACT_STATES], data[1]["obs"][:N_ACT_STATES]], dim=1)
    sharing = maddpg.DataSharing("ede")
    plain_sampler = torch.Generator().manual_seed(int(sm._seeds(SEED)[4]))
    w_err = a_err = 0.0
    undetected = 0
    worst = {"update": 0, "error": 0.0}
    secs = 0.0
    trunc.count_local_wraps(count)
    trunc.STATS["would_wrap"] = 0
    for u in range(n_updates):
        idx = maddpg.sample_indices(party.replay.size, cfg.batch_size, party.sampler)
        redos = party.overflow_redos
        ctx.barrier()
        t = time.perf_counter()
        party.update(idx)
        secs += time.perf_counter() - t
        caught = party.overflow_redos > redos
        if ctx.rank == 0:
            pidx = maddpg.sample_indices(party.replay.size, cfg.batch_size, plain_sampler)
            assert torch.equal(pidx, idx)
            batch = [maddpg.PlayerBatch(**{k: v[idx] for k, v in d.items()}) for d in data]
            maddpg.maddpg_update(twin, opts, batch, cfg.plain(), sharing)
        trunc.count_local_wraps(False)
        we = _weight_error(party, twin, ctx.rank)
        ae = _action_error(ctx, party, twin, states, high)
        trunc.count_local_wraps(count)
        if ctx.rank == 0:
            w_err, a_err = max(w_err, we), max(a_err, ae)
            if we > worst["error"]:
                worst = {"update": u + 1, "error": we}
            if we > 1e-3 and not caught:
                undetected += 1
            if (u + 1) % 10 == 0 or u + 1 == n_updates:
                print(
                    f"update {u + 1}: weight error {we:.2e} (max {w_err:.2e}), action error "
                    f"{ae:.2e}, would-wrap {trunc.STATS['would_wrap']}, redos "
                    f"{party.overflow_redos}, {secs / (u + 1):.2f} s/update",
                    file=sys.stderr,
                    flush=True,
                )
    trunc.count_local_wraps(False)
    out = {
        "updates": n_updates,
        "max_abs_weight_error": w_err,
        "max_abs_action_error": a_err,
        "would_wrap": trunc.STATS["would_wrap"],
        "redos": party.overflow_redos,
        "wraps_prevented_or_caught": trunc.STATS["would_wrap"] + party.overflow_redos,
        "undetected": undetected,
        "seconds_per_update": secs / max(n_updates, 1),
        "worst_update": worst,
    }
    # cost of the protection: exact vs local truncation, interleaved, same start state
    cost_cfg = dataclasses.replace(cfg, reveal_losses=False)
    runs = {}
    for m in ("exact", "local"):
        p = sm.Party(
            ctx.crypten, ctx.rank, cost_cfg, {}, SEED, init_nets=(actors, critics), action_high=high
        )
        _fill(p.replay, data[ctx.rank])
        runs[m] = (p, [])
    for _ in range(cost_updates):
        for m, (p, rows) in runs.items():
            trunc.set_mode(m)
            idx = maddpg.sample_indices(p.replay.size, cfg.batch_size, p.sampler)
            ctx.barrier()
            ctx.reset_comm_stats()
            t = time.perf_counter()
            p.update(idx)
            rows.append((time.perf_counter() - t, ctx.comm_stats()))
    trunc.set_mode("exact")
    if cost_updates:
        cost: dict[str, Any] = {}
        for m, (_, rows) in runs.items():
            n = len(rows)
            cost[m] = {
                "seconds": sum(r[0] for r in rows) / n,
                "mb": sum(r[1]["bytes"] for r in rows) / n / 1e6,
                "rounds": sum(r[1]["rounds"] for r in rows) / n,
            }
        for k in ("seconds", "mb", "rounds"):
            cost[f"ratio_{k}"] = cost["exact"][k] / cost["local"][k]
        out["cost"] = cost
    return out


def main() -> None:
    """Run the stress benchmark and print the summary (or JSON)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--updates", type=int, default=20)
    p.add_argument("--pretrained", action="store_true", help="start from pre-trained networks")
    p.add_argument("--pretrain-steps", type=int, default=None, help="default: the preset's")
    p.add_argument("--cache", default="", help="file to keep/reuse the pre-training result")
    p.add_argument("--optimizer", choices=("adam", "sgd"), default="adam")
    p.add_argument(
        "--truncation", choices=("exact", "local"), default="exact", help="local: the old path"
    )
    p.add_argument(
        "--provider",
        type=resolve_provider,
        default=None,
        help=f"one of {PROVIDERS} (default: the preset's)",
    )
    p.add_argument(
        "--cost-updates", type=int, default=2, help="updates per truncation mode for the cost"
    )
    p.add_argument("--no-count", action="store_true", help="do not count would-be local wraps")
    p.add_argument(
        "--twin",
        choices=("secure-eps", "torch"),
        default="secure-eps",
        help="plaintext Adam twin: SecureAdam's formula in floating point (measures MPC "
        "error only) or torch.optim.Adam (also measures the ε floor)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="preset override, as train.py --set (e.g. critic_grad_scale=1024)",
    )
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(1)
    cfg, env = preset_config(args.set)
    cfg = dataclasses.replace(cfg, optimizer=args.optimizer)
    if args.pretrain_steps is not None:
        cfg = dataclasses.replace(cfg, pretrain_steps=args.pretrain_steps)
    if args.provider:
        cfg = dataclasses.replace(cfg, provider=args.provider)
    high = maddpg.action_caps(env)
    pre = None
    if args.pretrained:
        t = time.perf_counter()
        pre = _load_or_pretrain(cfg, env, args.cache)
        print(f"pre-training ready in {time.perf_counter() - t:.0f} s", file=sys.stderr, flush=True)
        data = pre["data"]
        data = [{k: d[k] for k in ("obs", "next_obs", "action", "reward", "done")} for d in data]
    else:
        data = _synthetic(max(4 * cfg.batch_size, 512), high)
    res = launch_local(
        _party,
        2,
        (
            cfg,
            data,
            pre,
            high,
            args.updates,
            args.truncation,
            args.cost_updates,
            not args.no_count,
            args.twin,
        ),
        config=PartyConfig(world_size=2, timeout_s=600, provider=cfg.provider),
    )[0]
    out = {
        "config": {**vars(args), "provider": cfg.provider, "pretrain_steps": cfg.pretrain_steps},
        **res,
    }
    if args.json:
        print(json.dumps(out, sort_keys=True))
        return
    for k, v in out.items():
        print(f"{k}: {v}")


if __name__ == "__main__":
    main()
