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
    python benchmarks/secure_maddpg.py --updates 5 --optimizer sgd --json
    python benchmarks/secure_maddpg.py --provider tfp_player0_sees_all   # the opt-out

``--provider`` picks where the Beaver triples come from: ``TTP`` (default, the dealer
process, which holds no data; party 0 fetches each triple's ``c`` share from it, one
extra exchange per triple batch, counted in party 0's bytes and rounds) or
``tfp_player0_sees_all`` (party 0 makes them locally and could read every opened value).

The versions are timed interleaved (one update of each per round), so a change of load
on a shared machine hits all of them alike; the ratios are the figures to compare.

``--json`` prints one JSON object with the keys ``provider`` (the canonical provider name
it ran with), ``config`` (the arguments), ``plain_s``
(plaintext EDE seconds per update), and for ``ours_sgd``, ``ours_adam`` (those asked
for with ``--optimizer``) and ``straightforward``: ``seconds``, ``ratio_to_plain``,
``bytes`` and ``rounds`` (per update, party 0's CrypTen counters: bytes it
sent+received as CrypTen counts them, communication rounds), plus
``speedup_sgd_vs_straightforward`` / ``speedup_adam_vs_straightforward``
(straightforward seconds / ours).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import torch

from smpc_gym.agents import maddpg
from smpc_gym.agents import secure_maddpg as sm
from smpc_gym.secure.runtime import (
    DEFAULT_PROVIDER,
    PROVIDERS,
    PartyConfig,
    launch_local,
    resolve_provider,
)

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


def _timed_update(ctx, party: sm.Party) -> tuple[float, dict[str, int]]:
    idx = maddpg.sample_indices(party.replay.size, party.cfg.batch_size, party.sampler)
    ctx.barrier()
    ctx.reset_comm_stats()
    t = time.perf_counter()
    party.update(idx)
    return time.perf_counter() - t, ctx.comm_stats()


def _party(ctx, cfg: sm.Config, data, n_updates: int, high, do_plain: bool, optimizers):
    torch.set_num_threads(1)
    parties = {}
    for opt in optimizers:
        party = sm.Party(
            ctx.crypten,
            ctx.rank,
            dataclasses.replace(cfg, optimizer=opt),
            {},
            SEED,
            action_high=high,
        )
        _fill(party.replay, data[ctx.rank])
        _timed_update(ctx, party)  # warm-up, not timed
        parties[opt] = party
    own = next(iter(parties.values())).replay.get(torch.arange(cfg.batch_size))
    cols = torch.cat([own.obs, own.next_obs, own.action / high[ctx.rank], own.reward], dim=1)
    # interleaved: one update of each version per round, so load drift hits all alike
    rows: dict[str, list] = {f"ours_{opt}": [] for opt in optimizers}
    rows["straightforward"] = []
    for _ in range(n_updates):
        for opt, party in parties.items():
            rows[f"ours_{opt}"].append(_timed_update(ctx, party))
        ctx.barrier()
        rows["straightforward"].append(_straightforward(ctx, cfg, [cols, cols], high))
    plain = _plain_seconds(cfg, data, max(3, n_updates)) if do_plain and ctx.rank == 0 else None

    def summary(r):
        n = len(r)
        return {
            "seconds": sum(x[0] for x in r) / n,
            "bytes": sum(x[1]["bytes"] for x in r) / n,
            "rounds": sum(x[1]["rounds"] for x in r) / n,
        }

    return {**{k: summary(v) for k, v in rows.items()}, "plain_s": plain}


def main() -> None:
    """Run the benchmark and print the table (or JSON)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--updates", type=int, default=3, help="timed updates (after 1 warm-up)")
    p.add_argument(
        "--optimizer",
        choices=("both", "sgd", "adam"),
        default="both",
        help="our optimiser(s) (the straightforward version always uses CrypTen SGD)",
    )
    p.add_argument(
        "--provider",
        type=resolve_provider,
        default=DEFAULT_PROVIDER,
        help=f"Beaver-triple provider, one of {PROVIDERS} (default {DEFAULT_PROVIDER})",
    )
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(1)
    optimizers = ("sgd", "adam") if args.optimizer == "both" else (args.optimizer,)
    cfg = sm.Config(hidden=args.hidden, batch_size=args.batch, reveal_losses=False)
    high = maddpg.action_caps({})
    data = _data(max(2 * args.batch, 256), high)
    res = launch_local(
        _party,
        2,
        (cfg, data, args.updates, high, True, optimizers),
        config=PartyConfig(world_size=2, timeout_s=600, provider=args.provider),
    )[0]
    plain = res["plain_s"]
    out = {"provider": args.provider, "config": vars(args), "plain_s": plain}
    keys = [f"ours_{o}" for o in optimizers] + ["straightforward"]
    for k in keys:
        out[k] = {**res[k], "ratio_to_plain": res[k]["seconds"] / plain}
    for o in optimizers:
        out[f"speedup_{o}_vs_straightforward"] = (
            res["straightforward"]["seconds"] / res[f"ours_{o}"]["seconds"]
        )
    if args.json:
        print(json.dumps(out, sort_keys=True))
        return
    print(
        f"secure MADDPG update, actor 10-{args.hidden}-{args.hidden}-2, critic "
        f"14-{args.hidden}-{args.hidden}-1, batch {args.batch}, 2 parties, 1 thread each, "
        f"{args.updates} timed updates per version (interleaved), provider {args.provider}"
    )
    print(f"{'version':<24}{'s/update':>10}{'x plain':>10}{'MB':>9}{'rounds':>8}{'speed-up':>10}")
    print(f"{'plaintext EDE':<24}{plain:>10.4f}{1.0:>10.1f}{0:>9.1f}{0:>8d}")
    labels = {f"ours_{o}": f"ours ({o})" for o in optimizers}
    labels["straightforward"] = "crypten.nn + CrypTen SGD"
    for k in keys:
        v = out[k]
        sp = out.get(f"speedup_{k[5:]}_vs_straightforward", 1.0)
        print(
            f"{labels[k]:<24}{v['seconds']:>10.3f}{v['ratio_to_plain']:>10.0f}"
            f"{v['bytes'] / 1e6:>9.1f}{v['rounds']:>8.0f}{sp:>9.2f}x"
        )


if __name__ == "__main__":
    main()
