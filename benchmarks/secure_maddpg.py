"""Cost of one secure MADDPG update: ours vs a straightforward CrypTen version vs plaintext.

Two real party processes (the project runtime, one torch thread each) run, on the same
random replay data and the same minibatch indices:

* **ours** — :func:`smpc_gym.agents.secure_maddpg.secure_update` (hand-written stacked
  forward/backward, fused Beaver rounds, reused ReLU masks, Adam or SGD on shares);
* **straightforward** — both players' networks as ``crypten.nn`` modules, updated one
  player after the other with CrypTen autograd, ``crypten.nn.MSELoss`` and
  ``crypten.optim.SGD`` (momentum), in :func:`maddpg.maddpg_update`'s order;

and party 0 times the plaintext EDE update (:func:`maddpg.maddpg_update`) on the same
batch in the same run, so every secure time is also reported as a ratio to plaintext.

Usage::

    python benchmarks/secure_maddpg.py                 # paper networks, batch 128
    python benchmarks/secure_maddpg.py --updates 5 --optimizer adam --json

``--json`` prints one JSON object with the keys ``config`` (the arguments), ``plain_s``
(plaintext EDE seconds per update), and for ``ours`` and ``straightforward``:
``seconds``, ``ratio_to_plain``, ``bytes`` and ``rounds`` (per update, party 0's CrypTen
counters: bytes it sent+received as CrypTen counts them, communication rounds), plus
``speedup_vs_straightforward`` (straightforward seconds / ours).
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from smpc_gym.agents import maddpg
from smpc_gym.agents import secure_maddpg as sm
from smpc_gym.secure.runtime import PartyConfig, launch_local

SEED = 0


def _data(n: int, high: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    out = []
    for i in range(2):
        out.append(
            {
                "obs": torch.rand(n, 5, generator=g),
                "next_obs": torch.rand(n, 5, generator=g),
                "action": torch.rand(n, 2, generator=g) * high[i],
                "reward": torch.rand(n, 1, generator=g) * 0.5,
                "done": torch.zeros(n, 1),
            }
        )
    return out


def _fill(replay: maddpg.PlayerReplay, d: dict[str, torch.Tensor]) -> None:
    replay.add(d["obs"], d["next_obs"], d["action"], d["reward"], d["done"])


def _plain_seconds(cfg: sm.Config, data, n_updates: int) -> float:
    algo = maddpg.MADDPG(cfg.plain(), {}, SEED)
    for i in range(2):
        _fill(algo.replay[i], data[i])
    idx = maddpg.sample_indices(algo.replay[0].size, cfg.batch_size, algo.sampler)
    batch = [r.get(idx) for r in algo.replay]
    maddpg.maddpg_update(algo.nets, algo.opts, batch, cfg.plain(), algo.sharing)  # warm-up
    t = time.perf_counter()
    for _ in range(n_updates):
        maddpg.maddpg_update(algo.nets, algo.opts, batch, cfg.plain(), algo.sharing)
    return (time.perf_counter() - t) / n_updates


def _straightforward(ctx, cfg: sm.Config, batch_cols, high):
    """Both players' crypten.nn networks, one after the other, CrypTen autograd + SGD."""
    crypten = ctx.crypten
    nn = crypten.nn
    h = cfg.hidden

    def actor():
        return nn.Sequential(
            nn.Linear(10, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(), nn.Linear(h, 2), nn.Sigmoid()
        ).encrypt(src=0)

    def critic():
        return nn.Sequential(
            nn.Linear(14, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(), nn.Linear(h, 1)
        ).encrypt(src=0)

    actors, critics = [actor() for _ in range(2)], [critic() for _ in range(2)]
    t_actors, t_critics = [actor() for _ in range(2)], [critic() for _ in range(2)]
    a_opt = [crypten.optim.SGD(a.parameters(), lr=cfg.actor_lr, momentum=0.9) for a in actors]
    c_opt = [crypten.optim.SGD(c.parameters(), lr=cfg.critic_lr, momentum=0.9) for c in critics]
    loss_fn = nn.MSELoss()
    # each player shares its own columns
    cols = [
        crypten.cryptensor(
            batch_cols[i] if i == ctx.rank else torch.zeros_like(batch_cols[i]), src=i
        )
        for i in range(2)
    ]
    s = crypten.cat([c[:, 0:5] for c in cols], dim=1)
    s2 = crypten.cat([c[:, 5:10] for c in cols], dim=1)
    a = [c[:, 10:12] for c in cols]
    r = [c[:, 12:13] for c in cols]
    for m in actors + critics + t_actors + t_critics:
        m.train()
    ctx.reset_comm_stats()
    t0 = time.perf_counter()
    for i in range(2):  # critic updates, one player after the other
        with crypten.no_grad():
            a2 = [t_actors[j](s2) for j in range(2)]
            q2 = t_critics[i](crypten.cat([s2, *a2], dim=1))
            y = r[i] + q2 * cfg.gamma
        q = critics[i](crypten.cat([s, *a], dim=1))
        loss = loss_fn(q, y)
        c_opt[i].zero_grad()
        loss.backward()
        c_opt[i].step()
    for i in range(2):  # actor updates
        own = actors[i](s)
        acts = [own if j == i else a[j] for j in range(2)]
        loss = -critics[i](crypten.cat([s, *acts], dim=1)).mean()
        a_opt[i].zero_grad()
        loss.backward()
        a_opt[i].step()
    with crypten.no_grad():  # soft target updates
        for src, dst in zip(actors + critics, t_actors + t_critics, strict=True):
            for p, tp in zip(src.parameters(), dst.parameters(), strict=True):
                tp.share = (tp.mul(1 - cfg.tau) + p.mul(cfg.tau)).share
    return time.perf_counter() - t0, ctx.comm_stats()


def _party(ctx, cfg: sm.Config, data, n_updates: int, high, do_plain: bool):
    torch.set_num_threads(1)
    party = sm.Party(ctx.crypten, ctx.rank, cfg, {}, SEED, action_high=high)
    _fill(party.replay, data[ctx.rank])
    ours = []
    for k in range(n_updates + 1):  # the first update is a warm-up (not timed)
        idx = maddpg.sample_indices(party.replay.size, cfg.batch_size, party.sampler)
        ctx.barrier()
        ctx.reset_comm_stats()
        t = time.perf_counter()
        party.update(idx)
        if k:
            ours.append((time.perf_counter() - t, ctx.comm_stats()))
    own = party.replay.get(idx)
    cols = torch.cat([own.obs, own.next_obs, own.action * party.inv_high, own.reward], dim=1)
    straight = []
    for _ in range(n_updates):
        ctx.barrier()
        straight.append(_straightforward(ctx, cfg, [cols, cols], high))
    plain = _plain_seconds(cfg, data, max(3, n_updates)) if do_plain and ctx.rank == 0 else None

    def summary(rows):
        n = len(rows)
        return {
            "seconds": sum(r[0] for r in rows) / n,
            "bytes": sum(r[1]["bytes"] for r in rows) / n,
            "rounds": sum(r[1]["rounds"] for r in rows) / n,
        }

    return {"ours": summary(ours), "straightforward": summary(straight), "plain_s": plain}


def main() -> None:
    """Run the benchmark and print the table (or JSON)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--updates", type=int, default=3, help="timed updates (after 1 warm-up)")
    p.add_argument(
        "--optimizer",
        choices=("sgd", "adam"),
        default="sgd",
        help="our optimiser (the straightforward version always uses CrypTen SGD)",
    )
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(1)
    cfg = sm.Config(
        hidden=args.hidden, batch_size=args.batch, optimizer=args.optimizer, reveal_losses=False
    )
    high = maddpg.action_caps({})
    data = _data(max(2 * args.batch, 256), high)
    res = launch_local(
        _party,
        2,
        (cfg, data, args.updates, high, True),
        config=PartyConfig(world_size=2, timeout_s=600),
    )[0]
    plain = res["plain_s"]
    out = {"config": vars(args), "plain_s": plain}
    for k in ("ours", "straightforward"):
        out[k] = {**res[k], "ratio_to_plain": res[k]["seconds"] / plain}
    out["speedup_vs_straightforward"] = res["straightforward"]["seconds"] / res["ours"]["seconds"]
    if args.json:
        print(json.dumps(out, sort_keys=True))
        return
    print(
        f"secure MADDPG update, actor 10-{args.hidden}-{args.hidden}-2, critic "
        f"14-{args.hidden}-{args.hidden}-1, batch {args.batch}, 2 parties, 1 thread each"
    )
    print(f"{'version':<18}{'s/update':>10}{'x plain':>10}{'MB':>9}{'rounds':>8}")
    print(f"{'plaintext EDE':<18}{plain:>10.4f}{1.0:>10.1f}{0:>9.1f}{0:>8d}")
    for k, label in (("ours", f"ours ({args.optimizer})"), ("straightforward", "crypten.nn + SGD")):
        v = out[k]
        print(
            f"{label:<18}{v['seconds']:>10.3f}{v['ratio_to_plain']:>10.0f}"
            f"{v['bytes'] / 1e6:>9.1f}{v['rounds']:>8.0f}"
        )
    print(
        f"speed-up of ours over the straightforward version: "
        f"{out['speedup_vs_straightforward']:.2f}x"
    )


if __name__ == "__main__":
    main()
