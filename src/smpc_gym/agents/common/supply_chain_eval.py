"""Evaluate SupplyChain policies on the batched game, over a fixed evaluation seed.

A *batched policy* maps the game's private features ``(B, 2, 5)`` (float32, row b =
episode b, index 1 = player) to actions ``(B, 2, 2)`` = ``(price, quantity)`` per player;
:meth:`smpc_gym.agents.maddpg.MADDPG.policy` is one. All policies evaluated with the same
``seed`` and ``episodes`` face the same initial stocks and the same demand noise (the
game draws both from its generator independently of the actions), so comparisons are on
common random numbers.

Metric names follow ``eval.json`` (agents.md): per player ``reward``, ``wastage_units``,
``wastage_cost``, ``ncr``; NCR_i = Σ_t r_i − Σ_t waste cost_i (the game's definition).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from smpc_gym.envs.supply_chain.game import SupplyChainConfig, SupplyChainGame

AGENTS = ("player_0", "player_1")
PLAYER_METRICS = ("reward", "wastage_units", "wastage_cost", "ncr")

BatchedPolicy = Callable[[np.ndarray], np.ndarray]


def run_episodes(
    policy: BatchedPolicy,
    env_kwargs: Mapping[str, Any],
    episodes: int,
    seed: int,
    rng: np.random.Generator | None = None,
) -> dict[str, np.ndarray]:
    """Play ``episodes`` episodes at once; per-episode arrays ``{"<metric>_<i>": (E,)}``.

    The game draws from ``np.random.default_rng(seed)``, or from ``rng`` when given.
    """
    fields = SupplyChainConfig.field_names()
    cfg = SupplyChainConfig.from_mapping({k: v for k, v in env_kwargs.items() if k in fields})
    rng = np.random.default_rng(int(seed)) if rng is None else rng
    result = SupplyChainGame(cfg, int(episodes)).play(policy, rng)
    out: dict[str, np.ndarray] = {}
    for i in range(2):
        out[f"reward_{i}"] = result.cum_reward[:, i].copy()
        out[f"wastage_units_{i}"] = result.cum_waste[:, i].copy()
        out[f"wastage_cost_{i}"] = result.cum_waste_cost[:, i].copy()
        out[f"ncr_{i}"] = result.ncr[:, i].copy()
    return out


def summarize(per_episode: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Means in the ``eval.json`` layout, totals, and 95% half-widths of the totals.

    Returns ``{"episodes", "mean_return", "std_return", "players": {agent: {reward,
    wastage_units, wastage_cost, ncr}}, "total_reward", "total_ncr",
    "total_wastage_units", "total_wastage_cost", "ci95": {"total_<metric>": ...}}``;
    the return of an episode is both players' summed reward.
    """
    total = {m: per_episode[f"{m}_0"] + per_episode[f"{m}_1"] for m in PLAYER_METRICS}
    n = len(total["reward"])

    def ci(x: np.ndarray) -> float:
        return float(1.96 * x.std(ddof=1) / np.sqrt(len(x))) if len(x) > 1 else 0.0

    return {
        "episodes": n,
        "mean_return": float(total["reward"].mean()),
        "std_return": float(total["reward"].std()),
        "players": {
            a: {m: float(per_episode[f"{m}_{i}"].mean()) for m in PLAYER_METRICS}
            for i, a in enumerate(AGENTS)
        },
        "total_reward": float(total["reward"].mean()),
        "total_ncr": float(total["ncr"].mean()),
        "total_wastage_units": float(total["wastage_units"].mean()),
        "total_wastage_cost": float(total["wastage_cost"].mean()),
        "ci95": {f"total_{m}": ci(total[m]) for m in PLAYER_METRICS},
    }


def evaluate(
    policy: BatchedPolicy, env_kwargs: Mapping[str, Any], episodes: int = 100, seed: int = 12345
) -> dict[str, Any]:
    """:func:`run_episodes` then :func:`summarize`."""
    return summarize(run_episodes(policy, env_kwargs, episodes, seed))


def per_player(policies: tuple[Callable[[np.ndarray], np.ndarray], ...]) -> BatchedPolicy:
    """A batched policy from one ``(B, 5) -> (B, 2)`` policy per player."""

    def policy(obs: np.ndarray) -> np.ndarray:
        return np.stack([np.asarray(policies[i](obs[:, i])) for i in range(2)], axis=1)

    return policy


def random_policy(env_kwargs: Mapping[str, Any], seed: int) -> BatchedPolicy:
    """The env's uniform random baseline for both players (one seeded generator)."""
    from smpc_gym.envs.supply_chain.policies import UniformRandomPolicy

    fields = SupplyChainConfig.field_names()
    cfg = SupplyChainConfig.from_mapping({k: v for k, v in env_kwargs.items() if k in fields})
    rng = np.random.default_rng(int(seed))
    return per_player(tuple(UniformRandomPolicy(i, rng, cfg) for i in range(2)))


def myopic_policy() -> BatchedPolicy:
    """The env's myopic benchmark: price_0 = 10, price_1 = 15, both order 5 per step."""
    from smpc_gym.envs.supply_chain.policies import MyopicPolicy

    return per_player(tuple(MyopicPolicy(i) for i in range(2)))


# ---------------------------------------------------------------------------------------
# The paper's Table 5: named policies on the same evaluation seeds, plus a cost block
# ---------------------------------------------------------------------------------------
def run_seeds(
    policy: BatchedPolicy, env_kwargs: Mapping[str, Any], seeds: Sequence[int]
) -> dict[str, np.ndarray]:
    """One episode per seed, seeded as the runner's evaluation seeds them.

    Episode ``k`` plays a one-world game reset from ``np.random.default_rng(seeds[k])``,
    which is how ``supply_chain_v0.parallel_env().reset(seed=seeds[k])`` draws its
    stocks and demand noise, so a policy scores here what the runner's ``eval.json``
    gives it on the same seeds (a test checks this). Returns per-episode arrays
    ``{"<metric>_<i>": (len(seeds),)}`` as :func:`run_episodes` does.
    """
    rows = [
        run_episodes(policy, env_kwargs, 1, 0, rng=np.random.default_rng(int(s))) for s in seeds
    ]
    return {k: np.concatenate([r[k] for r in rows]) for k in rows[0]}


def ede_actors_policy(actors: Sequence[Any]) -> BatchedPolicy:
    """A batched policy from two EDE actors (``torch`` modules on both players' 10 features).

    What a finished secure run's owners hold after ``reveal_final_weights: owner``
    (``SecureMADDPG.actors``), or a plaintext MADDPG's ``nets.actors``.
    """
    import torch

    def policy(obs: np.ndarray) -> np.ndarray:
        x = torch.as_tensor(np.asarray(obs), dtype=torch.float32)
        joint = x.reshape(x.shape[0], -1)
        with torch.no_grad():
            acts = [actors[i](joint) for i in range(2)]
        return torch.stack(acts, dim=1).numpy()

    return policy


TABLE5_KEYS = (
    "reward_per_step_0",
    "reward_per_step_1",
    "total_reward",
    "wastage_units",
    "total_ncr",
)


def table5_row(per_episode: Mapping[str, np.ndarray], max_cycles: int) -> dict[str, float]:
    """One Table-5 row from :func:`run_seeds` output: means over episodes, with 95% CIs.

    Keys (:data:`TABLE5_KEYS`, each also as ``<key>_ci95``, a normal-approximation
    half-width over the episodes): ``reward_per_step_i`` (player i's average reward per
    step), ``total_reward`` (both players' reward per episode), ``wastage_units`` (both
    players' wasted units per episode) and ``total_ncr`` (both players' NCR per episode).
    """
    per_ep = {
        "reward_per_step_0": per_episode["reward_0"] / max_cycles,
        "reward_per_step_1": per_episode["reward_1"] / max_cycles,
        "total_reward": per_episode["reward_0"] + per_episode["reward_1"],
        "wastage_units": per_episode["wastage_units_0"] + per_episode["wastage_units_1"],
        "total_ncr": per_episode["ncr_0"] + per_episode["ncr_1"],
    }
    row: dict[str, float] = {"episodes": float(len(per_ep["total_ncr"]))}
    for k, v in per_ep.items():
        row[k] = float(np.mean(v))
        row[f"{k}_ci95"] = (
            float(1.96 * np.std(v, ddof=1) / math.sqrt(len(v))) if len(v) > 1 else 0.0
        )
    return row


def format_table5(
    rows: Mapping[str, Mapping[str, float]], cost: Mapping[str, float] | None = None
) -> str:
    """The paper's Table-5 layout as text: one line per named policy, then the cost block.

    ``rows``: name → :func:`table5_row` (``<key>_ci95`` entries are printed as ``± x``
    when present). ``cost`` (optional, see :func:`secure_cost`): ``secure_update_s``,
    ``plain_update_s``, ``ratio_to_plain``, ``mb_per_update``, ``rounds_per_update``.
    """
    heads = ("reward/step p0", "reward/step p1", "total reward", "wastage", "NCR")
    width = max([len(n) for n in rows] + [8])
    lines = [f"{'':<{width}}" + "".join(f"{h:>20}" for h in heads)]
    for name, r in rows.items():
        cells = []
        for k in TABLE5_KEYS:
            ci = r.get(f"{k}_ci95")
            cell = f"{r[k]:.2f}" if ci is None else f"{r[k]:.2f} ± {ci:.2f}"
            cells.append(f"{cell:>20}")
        lines.append(f"{name:<{width}}" + "".join(cells))
    if cost:
        lines.append(
            f"cost: secure {cost['secure_update_s']:.3f} s/update, plaintext "
            f"{cost['plain_update_s'] * 1e3:.2f} ms/update ({cost['ratio_to_plain']:.0f}x), "
            f"{cost['mb_per_update']:.1f} MB and {cost['rounds_per_update']:.0f} rounds "
            "per update"
        )
    return "\n".join(lines)


def secure_cost(results: Sequence[Mapping[str, Any]], plain_update_s: float) -> dict[str, float]:
    """The cost block from ``SecureMADDPG.last_results`` (both parties' ``timing``).

    Seconds per update: the slower party's; MB and rounds per update: party 0's CrypTen
    counters (as ``benchmarks/secure_maddpg.py`` reports them). ``plain_update_s``: a
    plaintext update's time measured in the same process (:func:`plain_update_seconds`).
    """
    timings = [dict(r["timing"]) for r in results if r.get("timing", {}).get("updates")]
    if not timings:
        raise ValueError("no secure updates in these results: nothing to cost")
    per = max(t["update_s"] / t["updates"] for t in timings)
    rank0 = next((dict(r["timing"]) for r in results if int(r.get("rank", -1)) == 0), timings[0])
    return {
        "secure_update_s": per,
        "plain_update_s": float(plain_update_s),
        "ratio_to_plain": per / plain_update_s if plain_update_s > 0 else float("nan"),
        "mb_per_update": rank0["bytes"] / rank0["updates"] / 1e6,
        "rounds_per_update": rank0["rounds"] / rank0["updates"],
        "updates": float(rank0["updates"]),
    }


def plain_update_seconds(algo: Any, n: int = 100) -> float:
    """Seconds per plaintext MADDPG update (``maddpg_update``) of ``algo``, over ``n`` updates
    after one untimed one (a few milliseconds each: 100 of them make the baseline of a
    ratio less sensitive to a moment's load on a shared machine).

    ``algo`` is a plaintext :class:`smpc_gym.agents.maddpg.MADDPG` with a filled replay;
    its networks are copied first, so timing does not change it.
    """
    import copy

    from smpc_gym.agents import maddpg

    work = copy.deepcopy(algo)
    size = work.replay[0].size
    if size < work.config.batch_size:
        raise ValueError(f"replay holds {size} rows, fewer than a batch ({work.config.batch_size})")

    def update() -> None:
        idx = maddpg.sample_indices(size, work.config.batch_size, work.sampler)
        maddpg.maddpg_update(
            work.nets, work.opts, [r.get(idx) for r in work.replay], work.config, work.sharing
        )

    update()  # warm-up, not timed
    t0 = time.perf_counter()
    for _ in range(int(n)):
        update()
    return (time.perf_counter() - t0) / int(n)


def evaluate_secure_run(
    secure_actors: Sequence[Any],
    cfg: Any,
    env_kwargs: Mapping[str, Any],
    seed: int,
    seeds: Sequence[int],
    results: Sequence[Mapping[str, Any]] | None = None,
    pretrained: Sequence[Any] | None = None,
) -> dict[str, Any]:
    """Table 5 for a finished secure MADDPG run, on the evaluation ``seeds``.

    Evaluates, on the private game ``env_kwargs`` and the same seeds: the secure policy
    (``secure_actors``, the owners' revealed actors), the pre-trained policy it started
    from (``pretrained``: its two actors, as party 0 returns them; without them it is
    re-computed: pre-training is public and deterministic, but that costs one more
    pre-training run), the myopic benchmark and random play. With ``results``
    (``SecureMADDPG.last_results``) it adds the cost block. Returns ``{"rows": {name:
    table5_row}, "cost": ... or None, "text": format_table5(...)}``.
    """
    import torch

    from smpc_gym.agents import maddpg
    from smpc_gym.agents.base import NullHooks

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the parties pre-trained with one thread: same networks
    pre_policy: BatchedPolicy | None = None
    plain_s = None
    try:
        if pretrained is not None:
            pre_policy = ede_actors_policy(pretrained)
            if results:  # a plaintext update's time does not depend on the weights
                plain = maddpg.MADDPG(cfg.plain(), dict(env_kwargs), seed)
                plain.train(max(cfg.batch_size, cfg.learning_starts), NullHooks())
                plain_s = plain_update_seconds(plain)
        elif cfg.pretrain_steps > 0:
            pre = maddpg.pretrain_for(cfg, env_kwargs, seed)
            pre_policy = pre.policy
            plain_s = plain_update_seconds(pre) if results else None
    finally:
        torch.set_num_threads(threads)
    max_cycles = maddpg.game_config(env_kwargs).max_cycles
    policies: dict[str, BatchedPolicy] = {"secure 2PC": ede_actors_policy(secure_actors)}
    if pre_policy is not None:
        policies["pre-trained"] = pre_policy
    policies["myopic"] = myopic_policy()
    policies["random"] = random_policy(env_kwargs, seed)
    rows = {n: table5_row(run_seeds(p, env_kwargs, seeds), max_cycles) for n, p in policies.items()}
    cost = None
    if results:
        if plain_s is None:
            plain_s = float("nan")
        cost = secure_cost(results, plain_s)
    return {"rows": rows, "cost": cost, "text": format_table5(rows, cost)}
