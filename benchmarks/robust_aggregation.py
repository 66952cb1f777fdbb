"""Byzantine-robust aggregation: learning curves of each rule vs the plain mean, and the cost
of the secure (secret-shared) coordinate median vs its plaintext version.

Learner: **federated tabular Q-learning** on GreedyMouse (``obs_mode="local"``, 65,536
states × 8 actions = 524,288 parameters), chosen over federated DQN so that 16 runs finish
in minutes on a shared 2-core machine; the aggregation is the same code path a DQN update
would take (a ``(N, D)`` tensor of updates into :mod:`smpc_gym.federated.robust`). Each of
``--holders`` N holders owns ``--worlds`` worlds; one round: every holder starts from the
global Q-table, runs Q-learning for ``--local-steps`` env steps on its own worlds and
proposes ``Δ_i = Q_i - Q_global``; ``--byzantine`` f holders replace theirs by the attack
of :mod:`smpc_gym.federated.byzantine` (``sign_flip`` boosted ×``--flip-scale``,
``gaussian`` with std ``--noise-std``, ``alie``); the coordinator applies
``aggregate(rule, Δ, f)``. Every ``--eval-every`` rounds the global greedy policy
(ε = 0.05, as ``tabular_q`` is evaluated) is scored by its average reward per step on fixed
evaluation worlds. Baselines in the same run: the plain mean with no attacker (``clean``)
and a uniformly random policy.

Secure part (skip with ``--no-secure``; only it with ``--secure-only``): for N ∈
``--secure-holders``, one process group of N holders + coordinator runs each of
``--secure-rules`` on shares (:mod:`smpc_gym.federated.secure_robust`: ``median`` =
coordinate median, ``krum`` = Krum with the largest f it tolerates, ``(N - 3) // 2``) on
``--secure-params`` parameters and, in the same processes, the plaintext rule (gather to
the coordinator, then the rule); time, bytes and rounds (coordinator's counters) as ratios.
The comparisons inside the secure rules consume Beaver triples; ``--provider`` picks where
they come from: ``TTP`` (default, a dealer process that holds no data) or
``tfp_player0_sees_all`` (the opt-out: rank 0, the coordinator, deals them and could
unmask every opened value).

JSON (``--json``): ``{"provider": str, "config": {...}, "random_reward_per_step": float,
"runs": {"<attack>/<rule>": {"curve": [[env_steps, reward_per_step], ...],
"final_reward_per_step": float, "vs_clean_mean": float}}, "secure": [{"rule", "holders",
"f", "params", "secure_s", "plain_s", "time_ratio", "bytes", "plain_bytes", "bytes_ratio",
"rounds", "plain_rounds", "max_abs_error"}]}``; ``final_reward_per_step`` is the mean
of the last two evaluations and ``vs_clean_mean`` is
``(final - random) / (clean_final - random)`` (1 = as good as the unattacked mean,
0 = no better than random).

Usage: ``python benchmarks/robust_aggregation.py [--rounds 12] [--json] [--no-secure |
--secure-only] [--provider TTP|tfp_player0_sees_all]`` (``--secure-only --json`` prints
``{"provider", "config", "secure"}`` only; ``provider`` is the canonical provider name);
saves ``docs/img/robust.png``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from smpc_gym.agents.common.vector_worlds import VectorWorlds
from smpc_gym.agents.tabular_q import td_update
from smpc_gym.envs.greedy_mouse import core
from smpc_gym.federated.byzantine import byzantine_updates
from smpc_gym.federated.robust import aggregate
from smpc_gym.federated.secure_robust import SECURE_RULES
from smpc_gym.secure.runtime import DEFAULT_PROVIDER, PROVIDERS, resolve_provider

ENV = {"obs_mode": "local"}
RULES = ("mean", "median", "trimmed_mean", "krum", "bulyan")
ATTACKS = ("sign_flip", "gaussian", "alie")


def evaluate(q: np.ndarray, seed: int, steps: int = 150, n: int = 16) -> float:
    """Average reward per step of the ε=0.05-greedy policy of ``q`` on fixed worlds."""
    rng = np.random.default_rng(seed)
    w = VectorWorlds(ENV, n, seed)
    total, count = 0.0, 0
    try:
        for _ in range(steps):
            a = q[core.local_state_id(w.obs)].argmax(1)
            ex = rng.random(n) < 0.05
            a[ex] = rng.integers(0, q.shape[1], int(ex.sum()))
            tr = w.step(a)
            total += float(tr.rewards.sum())
            count += len(tr)
    finally:
        w.close()
    return total / max(count, 1)


def run(args: argparse.Namespace, attack: str, rule: str, seed: int) -> list[list[float]]:
    """One federated run; returns the learning curve ``[[env_steps, reward], ...]``."""
    n, f = args.holders, (0 if attack == "none" else args.byzantine)
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    worlds = [VectorWorlds(ENV, args.worlds, seed * 100 + h) for h in range(n)]
    n_states, n_act = 4**8, int(worlds[0].env.single_action_space.n)
    q_global = np.zeros((n_states, n_act))
    curve = [[0.0, evaluate(q_global, 777)]]
    steps = 0
    decay = args.rounds * n * args.local_steps // 2
    try:
        for r in range(args.rounds):
            eps = max(0.05, 1.0 - steps / max(decay, 1))
            deltas = []
            for w in worlds:
                q = q_global.copy()
                taken = 0
                while taken < args.local_steps:
                    s = core.local_state_id(w.obs)
                    a = q[s].argmax(1)
                    ex = rng.random(len(a)) < eps
                    a[ex] = rng.integers(0, n_act, int(ex.sum()))
                    tr = w.step(a)
                    if len(tr):
                        td_update(
                            q,
                            core.local_state_id(tr.obs),
                            tr.actions,
                            tr.rewards,
                            core.local_state_id(tr.next_obs),
                            tr.terminated,
                            0.1,
                            0.9,
                        )
                    taken += len(tr)
                steps += taken
                deltas.append(torch.from_numpy((q - q_global).reshape(-1)))
            honest = torch.stack(deltas)
            sent = byzantine_updates(
                attack, honest, list(range(f)), gen, scale=args.flip_scale, std=args.noise_std
            )
            agg = aggregate(rule, sent, f if rule != "mean" else 0)
            q_global = q_global + agg.numpy().reshape(q_global.shape)
            if (r + 1) % args.eval_every == 0 or r + 1 == args.rounds:
                curve.append([float(steps), evaluate(q_global, 777)])
    finally:
        for w in worlds:
            w.close()
    return curve


def _secure_f(rule: str, n: int) -> int:
    """The f used for a secure-cost row: Krum's largest tolerable f = (N - 3) // 2; the
    median does not depend on f (0)."""
    return (n - 3) // 2 if rule == "krum" else 0


def _secure_party(ctx, sizes: list[int], rules: list[str]):  # noqa: ANN001, ANN202
    from smpc_gym.federated.secure_robust import plaintext_gather_rule, secure_rule

    out = []
    n = ctx.world_size - 1
    for rule in rules:
        f = _secure_f(rule, n)
        for d in sizes:
            g = torch.Generator().manual_seed(ctx.rank)
            mine = None if ctx.rank == 0 else torch.randn(d, generator=g, dtype=torch.float64)
            ctx.barrier()
            ctx.reset_comm_stats()
            t0 = time.perf_counter()
            plain = plaintext_gather_rule(ctx, mine, d, rule, f)
            plain_s = time.perf_counter() - t0
            ps = ctx.comm_stats()
            ctx.barrier()
            ctx.reset_comm_stats()
            t0 = time.perf_counter()
            sec = secure_rule(ctx, mine, d, rule, f)
            ctx.barrier()
            sec_s = time.perf_counter() - t0
            ss = ctx.comm_stats()
            if ctx.rank == 0:
                assert plain is not None and sec is not None
                out.append(
                    {
                        "rule": rule,
                        "holders": n,
                        "f": f,
                        "params": d,
                        "secure_s": sec_s,
                        "plain_s": plain_s,
                        "time_ratio": sec_s / max(plain_s, 1e-9),
                        "bytes": ss["bytes"],
                        "plain_bytes": ps["bytes"],
                        "bytes_ratio": ss["bytes"] / max(ps["bytes"], 1),
                        "rounds": ss["rounds"],
                        "plain_rounds": ps["rounds"],
                        "max_abs_error": float((sec - plain).abs().max()),
                    }
                )
    return out


def secure_cost(
    holders: list[int], sizes: list[int], rules: list[str], provider: str = DEFAULT_PROVIDER
) -> list[dict]:
    """Measure each secure rule against its plaintext version (one launch per N, triples
    from ``provider``; rules the N cannot support, e.g. Krum with N < 3, are skipped)."""
    from smpc_gym.federated.robust import min_holders
    from smpc_gym.secure.runtime import PartyConfig, launch_local

    rows = []
    for n in holders:
        ok = [r for r in rules if n >= min_holders(r, _secure_f(r, n))]
        if ok:
            cfg = PartyConfig(world_size=n + 1, provider=provider)
            rows += launch_local(_secure_party, n + 1, (sizes, ok), config=cfg)[0]
    return rows


def plot(results: dict, random_r: float, path: Path) -> None:
    """One figure: a panel per attack, a curve per rule, plus clean mean and random."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(ATTACKS), figsize=(5 * len(ATTACKS), 4), sharey=True)
    clean = np.array(results["none/mean"]["curve"])
    for ax, attack in zip(axes, ATTACKS, strict=True):
        ax.plot(clean[:, 0], clean[:, 1], "k--", label="mean, no attacker")
        for rule in RULES:
            c = np.array(results[f"{attack}/{rule}"]["curve"])
            ax.plot(c[:, 0], c[:, 1], marker=".", label=rule)
        ax.axhline(random_r, color="grey", lw=0.8, ls=":", label="random policy")
        ax.set_title(f"attack: {attack}")
        ax.set_xlabel("env steps (all holders)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("reward per step of the global policy")
    axes[-1].legend(fontsize=8, loc="lower right")
    fig.suptitle("Federated tabular Q on GreedyMouse, f=1 Byzantine of N=7 holders")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _print_secure(secure: list[dict], provider: str) -> None:
    print(
        "secure rules on CrypTen shares vs plaintext gather + rule, same processes "
        f"(triples: {provider})"
    )
    print(
        f"{'rule':<7} {'N':>3} {'f':>2} {'params':>7} {'secure s':>9} {'plain s':>8} "
        f"{'ratio':>7} {'bytes':>10} {'plain B':>8} {'ratio':>6} {'rounds':>6} {'plain':>5} "
        f"{'err':>8}"
    )
    for s in secure:
        print(
            f"{s['rule']:<7} {s['holders']:>3} {s['f']:>2} {s['params']:>7} "
            f"{s['secure_s']:>9.3f} {s['plain_s']:>8.4f} {s['time_ratio']:>7.0f} "
            f"{s['bytes']:>10} {s['plain_bytes']:>8} {s['bytes_ratio']:>6.0f} "
            f"{s['rounds']:>6} {s['plain_rounds']:>5} {s['max_abs_error']:>8.1e}"
        )


def main() -> None:
    """Parse arguments, run every (attack, rule), print the tables, save the figure."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--holders", type=int, default=7)
    p.add_argument("--byzantine", type=int, default=1)
    p.add_argument("--worlds", type=int, default=8)
    p.add_argument("--local-steps", type=int, default=1500)
    p.add_argument("--rounds", type=int, default=12)
    p.add_argument("--eval-every", type=int, default=2)
    p.add_argument("--flip-scale", type=float, default=10.0)
    p.add_argument("--noise-std", type=float, default=20.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--secure-holders", type=int, nargs="+", default=[3, 5])
    p.add_argument("--secure-params", type=int, nargs="+", default=[1000])
    p.add_argument("--secure-rules", nargs="+", default=["median", "krum"], choices=SECURE_RULES)
    p.add_argument("--no-secure", action="store_true")
    p.add_argument(
        "--secure-only", action="store_true", help="only the secure-cost table (no learning runs)"
    )
    p.add_argument(
        "--provider",
        type=resolve_provider,
        default=DEFAULT_PROVIDER,
        help=f"Beaver-triple provider, one of {PROVIDERS} (default {DEFAULT_PROVIDER})",
    )
    p.add_argument("--out", default="docs/img/robust.png")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(1)

    if args.secure_only:
        secure = secure_cost(
            args.secure_holders, args.secure_params, args.secure_rules, args.provider
        )
        if args.json:
            print(json.dumps({"provider": args.provider, "config": vars(args), "secure": secure}))
        else:
            _print_secure(secure, args.provider)
        return

    rand_rng = np.random.default_rng(1)
    w = VectorWorlds(ENV, 16, 777)
    tot, cnt = 0.0, 0
    for _ in range(150):
        tr = w.step(rand_rng.integers(0, int(w.env.single_action_space.n), 16))
        tot, cnt = tot + float(tr.rewards.sum()), cnt + len(tr)
    w.close()
    random_r = tot / cnt

    results: dict[str, dict] = {}
    for attack, rule in [("none", "mean")] + [(a, r) for a in ATTACKS for r in RULES]:
        curve = run(args, attack, rule, args.seed)
        final = float(np.mean([c[1] for c in curve[-2:]]))
        results[f"{attack}/{rule}"] = {"curve": curve, "final_reward_per_step": final}
    clean = results["none/mean"]["final_reward_per_step"]
    for v in results.values():
        v["vs_clean_mean"] = (v["final_reward_per_step"] - random_r) / (clean - random_r)
    plot(results, random_r, Path(args.out))
    secure = (
        []
        if args.no_secure
        else secure_cost(args.secure_holders, args.secure_params, args.secure_rules, args.provider)
    )
    out = {
        "provider": args.provider,
        "config": vars(args),
        "random_reward_per_step": random_r,
        "runs": results,
        "secure": secure,
    }
    if args.json:
        print(json.dumps(out))
        return
    print(
        f"final reward/step of the global policy (random policy: {random_r:.2f}; "
        f"plain mean without attacker: {clean:.2f}); in brackets (r - random)/(clean - random)"
    )
    print(f"{'attack':<10}" + "".join(f"{r:>20}" for r in RULES))
    for a in ATTACKS:
        cells = [results[f"{a}/{r}"] for r in RULES]
        print(
            f"{a:<10}"
            + "".join(
                f"{c['final_reward_per_step']:>12.2f} ({c['vs_clean_mean']:>4.2f})" for c in cells
            )
        )
    if secure:
        print()
        _print_secure(secure, args.provider)
    print(f"figure: {args.out}")


if __name__ == "__main__":
    main()
