"""Secure MADDPG's networks and update: :class:`SecureNets`, the optimisers on shares
(:func:`make_optimisers`), :func:`share_batch` (each party inputs its own minibatch
columns) and :func:`secure_update`, the line-by-line twin of :func:`maddpg.maddpg_update`.

Nothing here reveals anything: every function takes and returns shares.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from smpc_gym.agents import maddpg
from smpc_gym.agents.secure_maddpg.config import ACTION_DIM, N_FEATURES, N_PLAYERS, Config


def _shapes(in_dim: int, hidden: int, out_dim: int) -> list[tuple[int, int]]:
    return [(in_dim, hidden), (hidden, hidden), (hidden, out_dim)]


@dataclass
class SecureNets:
    """Both players' actors, critics and targets as stacked :class:`SharedMLP` (P = 2)."""

    actors: Any
    critics: Any
    target_actors: Any
    target_critics: Any

    @classmethod
    def share(
        cls, actors: Sequence[Any], critics: Sequence[Any], hidden: int, rank: int
    ) -> SecureNets:
        """Secret-share plaintext networks; network i is read only in party i."""
        from smpc_gym.secure.mpc_nn import SharedMLP

        sh = maddpg.DataSharing("ede")
        owners = list(range(N_PLAYERS))
        a = SharedMLP.from_plain(
            actors, owners, _shapes(sh.actor_in_dim, hidden, ACTION_DIM), "sigmoid", rank
        )
        c = SharedMLP.from_plain(critics, owners, _shapes(sh.critic_in_dim, hidden, 1), rank=rank)
        return cls(actors=a, critics=c, target_actors=a.clone(), target_critics=c.clone())

    def modules(self) -> dict[str, Any]:
        """Name → :class:`SharedMLP`."""
        return {
            "actors": self.actors,
            "critics": self.critics,
            "target_actors": self.target_actors,
            "target_critics": self.target_critics,
        }


def make_optimisers(cfg: Config) -> tuple[Any, Any]:
    """(actor optimiser, critic optimiser) on shares, each stepping both players at once."""
    from smpc_gym.secure.optim import SecureAdam, SecureSGD

    def make(lr: float, scale: float) -> Any:
        if cfg.optimizer == "adam":
            return SecureAdam(
                lr,
                eps=cfg.adam_eps,
                grad_scale=scale,
                init_iters=cfg.adam_init_iters,
            )
        return SecureSGD(lr, momentum=cfg.momentum, grad_scale=scale)

    return make(cfg.actor_lr, cfg.actor_grad_scale), make(cfg.critic_lr, cfg.critic_grad_scale)


def plaintext_optimisers(
    cfg: Config, actors: Sequence[torch.nn.Module], critics: Sequence[torch.nn.Module]
) -> maddpg.Optimisers:
    """The plaintext optimisers whose steps :func:`make_optimisers`' secure ones equal.

    SGD: ``torch.optim.SGD`` as plaintext MADDPG makes it. Adam: SecureAdam's own formula
    in floating point (:class:`smpc_gym.secure.optim.FloorEpsAdam` with the ε of
    :meth:`SecureAdam.effective_eps` at each loss scale), not ``torch.optim.Adam``, which
    differs from it by design where gradients are near the ε floor. Plaintext twins
    built with these measure what MPC adds and nothing else.
    """
    from smpc_gym.secure.optim import FloorEpsAdam, SecureAdam

    pc = cfg.plain()

    def make(net: torch.nn.Module, lr: float, scale: float) -> torch.optim.Optimizer:
        if cfg.optimizer == "adam":
            eps = SecureAdam.effective_eps(cfg.adam_eps, scale)
            return FloorEpsAdam(net.parameters(), lr, eps=eps)
        return maddpg.make_optimiser(net.parameters(), lr, pc)

    return maddpg.Optimisers(
        actors=[make(a, pc.actor_lr, cfg.actor_grad_scale) for a in actors],
        critics=[make(c, pc.critic_lr, cfg.critic_grad_scale) for c in critics],
    )


def stack_players(per_player: Sequence[Sequence[torch.Tensor]]) -> torch.Tensor:
    """Both players' per-parameter tensors (``nn.Linear`` layout: ``[W_1, b_1, …]``,
    ``W`` as ``(out, in)``) as one flat vector in the order the secure optimisers flatten
    a stacked :class:`SharedMLP` (``W`` as ``(P, in, out)``, ``b`` as ``(P, 1, out)``).
    :func:`split_players` is the inverse."""
    parts = []
    for k in range(len(per_player[0])):
        ts = [p[k] for p in per_player]
        parts.append(torch.stack([t.t() if t.dim() == 2 else t.reshape(1, -1) for t in ts]))
    return torch.cat([p.reshape(-1) for p in parts])


def split_players(vec: torch.Tensor, mlp: Any) -> list[list[torch.Tensor]]:
    """A flat vector in ``mlp``'s optimiser order, back to per player and parameter in
    ``nn.Linear`` layout (the inverse of :func:`stack_players`)."""
    per: list[list[torch.Tensor]] = [[] for _ in range(N_PLAYERS)]
    start = 0
    for k, prm in enumerate(mlp.parameters()):  # [W (P, in, out), b (P, 1, out), …]
        n = int(prm.nelement())
        chunk = vec[start : start + n].reshape(prm.size())
        start += n
        for pl in range(N_PLAYERS):
            x = chunk[pl]
            per[pl].append(x.t().contiguous() if k % 2 == 0 else x.reshape(-1))
    return per


def warm_start_optimisers(
    opts: tuple[Any, Any], nets: SecureNets, pretrain_opts: maddpg.Optimisers
) -> bool:
    """Start the secure Adams from the pre-training's ``torch.optim.Adam`` state.

    The pre-training runs on public, simulated data in both parties, so its moments are
    public; continuing them (as a plaintext fine-tune would) keeps the secure phase's
    first steps from being Adam's sign-like full-``lr`` steps from zero moments (see
    :meth:`smpc_gym.secure.optim.SecureAdam.warm_start`). Returns False, changing
    nothing, unless both the secure optimisers and the pre-training's are Adam.
    """
    from smpc_gym.secure.optim import SecureAdam

    kinds = (("actors", nets.actors, opts[0]), ("critics", nets.critics, opts[1]))
    plain = [getattr(pretrain_opts, kind) for kind, _, _ in kinds]
    if not all(isinstance(o, SecureAdam) for o in opts) or not all(
        isinstance(o, torch.optim.Adam) for ps in plain for o in ps
    ):
        return False
    for (_, mlp, opt), per_player in zip(kinds, plain, strict=True):
        moments: dict[str, list[list[torch.Tensor]]] = {"m": [], "v": []}
        steps = set()
        for popt in per_player:
            b1, b2 = popt.param_groups[0]["betas"]
            ms, vs = [], []
            for prm in popt.param_groups[0]["params"]:
                st = popt.state[prm]
                t = int(st["step"])
                steps.add(t)
                ms.append(st["exp_avg"].double() / (1 - b1**t))
                vs.append(st["exp_avg_sq"].double() / (1 - b2**t))
            moments["m"].append(ms)
            moments["v"].append(vs)
        if len(steps) != 1:
            raise ValueError(f"the pre-training's Adam states have different step counts {steps}")
        like = mlp.parameters()[0]
        opt.warm_start(like, stack_players(moments["m"]), stack_players(moments["v"]), steps.pop())
    return True


def share_batch(
    crypten: Any, rank: int, own: maddpg.PlayerBatch, inv_high: torch.Tensor, batch_size: int
) -> dict[str, Any]:
    """Secret-share both players' columns of a minibatch (each party inputs its own).

    Player i packs ``[obs, next_obs, action / high_i]`` (12 columns, the networks'
    inputs) into one tensor shared at :data:`~smpc_gym.secure.mpc_nn.ACT_FRAC_BITS`
    fractional bits and ``[reward, done]`` into one at 16, and shares them with
    ``src=i``; the other party contributes placeholders of the same shapes (their values
    are never used: ``cryptensor(src=i)`` ignores non-owners' input), rounded to the
    nearest grid point (:func:`smpc_gym.secure.mpc_nn.share_rounded`).
    """
    from smpc_gym.secure.mpc_nn import ACT_FRAC_BITS, share_rounded

    inputs, scalars = [], []
    for i in range(N_PLAYERS):
        if i == rank:
            x = torch.cat([own.obs, own.next_obs, own.action * inv_high], dim=1)
            y = torch.cat([own.reward, own.done], dim=1)
        else:
            x = torch.zeros(batch_size, 2 * N_FEATURES + ACTION_DIM)
            y = torch.zeros(batch_size, 2)
        inputs.append(share_rounded(x, i, ACT_FRAC_BITS))
        scalars.append(share_rounded(y, i))
    f = N_FEATURES
    s = crypten.cat([p[:, 0:f] for p in inputs], dim=1)
    s2 = crypten.cat([p[:, f : 2 * f] for p in inputs], dim=1)
    a = crypten.cat([p[:, 2 * f : 2 * f + ACTION_DIM] for p in inputs], dim=1)
    r = crypten.stack([p[:, 0:1] for p in scalars])
    d = crypten.stack([p[:, 1:2] for p in scalars])
    return {"obs": s, "next_obs": s2, "action": a, "reward": r, "done": d}


def _soft_update(pairs: Sequence[tuple[Any, Any]], tau: float) -> None:
    """``θ' ← θ' + τ·(θ − θ')`` for every ``(target, online)`` network pair, in one
    truncation round for all of them: the value of ``(1 − τ)·θ' + τ·θ`` with one
    stochastic rounding per parameter instead of two, and one round instead of two per pair."""
    from smpc_gym.secure.optim import flatten_cat, mul_public, unflatten_like

    tps = [t.parameters() for t, _ in pairs]
    like = [p for tp in tps for p in tp]
    target = flatten_cat(like)
    online = flatten_cat([p for _, net in pairs for p in net.parameters()])
    new = unflatten_like(target + mul_public(online - target, tau), like)
    for (net, _), tp in zip(pairs, tps, strict=True):
        net.set_parameters(new[: len(tp)])
        new = new[len(tp) :]


def secure_update(
    crypten: Any, nets: SecureNets, opts: tuple[Any, Any], b: Mapping[str, Any], cfg: Config
) -> dict[str, Any]:
    """One MADDPG update of both players under MPC, in :func:`maddpg.maddpg_update`'s order.

    ``b`` is :func:`share_batch`'s output. Both players' work is stacked (P = 2):

    A. actors(s) and target actors(s') in one stacked forward pass (the actors' outputs
       and cache are reused by the actor update: the actors have not changed yet);
    B. critics([s, a]) and target critics([s', a'₀, a'₁]) in one stacked pass;
       ``y = r + γ(1 − d)Q'``; backward of ``MSE`` (loss-scaled) and the critic step;
    C. the updated critics on ``[s, a with player i's action replaced by actor_i(s)]``,
       backward of ``−mean Q`` to each player's own action columns only, through the
       cached actor pass, and the actor step;
    D. soft target updates (local linear operations on shares).

    Returns:
        Shares of the per-player losses ``critic_loss`` ``[P]`` and ``actor_loss`` ``[P]``
        (computed only if ``cfg.reveal_losses``; else an empty dict). Nothing is revealed.
    """
    from smpc_gym.secure.comm import phase
    from smpc_gym.secure.mpc_nn import (
        ACT_FRAC_BITS,
        BackwardPlan,
        backward_stacked,
        beaver_many,
        forward_stacked,
        lift,
        square,
    )
    from smpc_gym.secure.optim import mul_public

    actor_opt, critic_opt = opts
    P, B = N_PLAYERS, int(b["obs"].size(0))
    s, s2, a = b["obs"], b["next_obs"], b["action"]
    rep = [crypten.stack([t] * P) for t in (s, s2)]

    # A. actors(s) and target actors(s')
    with phase("forward"):
        # the actors (not their targets) are back-propagated in C: their correlations
        # carry the masks that backward pass reuses
        (a_cur, a_next), (actor_cache, _) = forward_stacked(
            [nets.actors, nets.target_actors], rep, BackwardPlan(mlps=1)
        )

    # B. critic update (the actors' outputs are at 16 fractional bits, the batch's
    # inputs at ACT_FRAC_BITS: lifted, exactly, before they are joined)
    x = crypten.cat([s, a], dim=1)
    a_next = lift(a_next, ACT_FRAC_BITS)
    x2 = crypten.cat([s2, a_next[0], a_next[1]], dim=1)
    with phase("forward"):
        (q, q2), (critic_cache, _) = forward_stacked(
            [nets.critics, nets.target_critics],
            [crypten.stack([x] * P), crypten.stack([x2] * P)],
            BackwardPlan(mlps=1),
        )
        (not_done_q2,) = beaver_many([("mul", 1 - b["done"], q2)])
        y = b["reward"] + mul_public(not_done_q2, cfg.gamma)  # one truncation round
    diff = q - y
    out: dict[str, Any] = {}
    if cfg.reveal_losses:
        with phase("loss"):
            out["critic_loss"] = mul_public(square(diff).sum(dim=(1)).reshape(P), 1.0 / B)
    with phase("backward"):
        dq = mul_public(diff, 2.0 * cfg.critic_grad_scale / B)
        grads, _ = backward_stacked([nets.critics], [critic_cache], [dq])
    assert grads is not None  # weight_grads=True
    with phase("optimiser"):
        nets.critics.set_parameters(critic_opt.step(nets.critics.parameters(), grads[0]))

    # C. actor update through the updated critics
    cur = lift(a_cur, ACT_FRAC_BITS)
    own = [
        crypten.cat([s, cur[0], a[:, 2:4]], dim=1),
        crypten.cat([s, a[:, 0:2], cur[1]], dim=1),
    ]
    with phase("forward"):
        (qa,), (qa_cache,) = forward_stacked(
            [nets.critics],
            [crypten.stack(own)],
            BackwardPlan(mlps=1, weight_grads=False, input_grad=True),
        )
    if cfg.reveal_losses:
        with phase("loss"):
            out["actor_loss"] = mul_public(qa.sum(dim=1).reshape(P), -1.0 / B)
    dqa = crypten.cryptensor(torch.full((P, B, 1), -cfg.actor_grad_scale / B), src=0)
    f2 = 2 * N_FEATURES
    with phase("backward"):
        _, d_act = backward_stacked(
            [nets.critics],
            [qa_cache],
            [dqa],
            weight_grads=False,
            input_cols=[slice(f2, f2 + ACTION_DIM), slice(f2 + ACTION_DIM, f2 + 2 * ACTION_DIM)],
        )
        agrads, _ = backward_stacked([nets.actors], [actor_cache], [d_act])
    assert agrads is not None  # weight_grads=True
    with phase("optimiser"):
        nets.actors.set_parameters(actor_opt.step(nets.actors.parameters(), agrads[0]))

    # D. targets
    with phase("targets"):
        _soft_update(
            [(nets.target_actors, nets.actors), (nets.target_critics, nets.critics)], cfg.tau
        )
    return out
