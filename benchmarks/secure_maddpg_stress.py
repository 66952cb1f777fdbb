"""Stress test of secure MADDPG training: many secure updates beside a plaintext twin.

Two real party processes run secure MADDPG updates (:class:`secure_maddpg.Party`, the
code training uses) while party 0 runs the plaintext EDE update
(:func:`maddpg.maddpg_update`) on three twins that get the same minibatch indices (drawn
from the shared, seeded sampler, as in training; a MADDPG update has no other randomness
— exploration noise only enters acting, which is checked separately below). After
**every** update every parameter of every network (actors, critics and both targets) and
both optimiser states are revealed to party 0 (a benchmark-only reveal), and:

* ``max_abs_weight_error``: the **step** twin is set to the revealed secure state (networks
  and optimiser moments) before each update and makes the same update in floating point;
  the largest difference after any update is what one secure update adds. A wrap
  anywhere (weights, targets, optimiser state) shows here at once;
* ``max_abs_noise_twin_error``: a second step twin whose every linear layer adds uniform
  noise of ±1 unit of the secure code's grid to its output (``2^-24`` for a hidden
  layer, :data:`~smpc_gym.secure.mpc_nn.ACT_FRAC_BITS`; ``2^-16`` for an output layer:
  what that fixed point does to a layer at best); its largest per-update distance from
  the step twin, and
  ``noise_twin_updates_over_1e-3``, the updates where it exceeds 1e-3, are the yardstick
  for ``max_abs_weight_error``: a ReLU whose input is within a unit of 0 may flip, and
  Adam's normalised step magnifies the gradient difference that makes;
* ``max_abs_trajectory_error``: the **free** twin runs from the same start on its own.
  MADDPG's training dynamics amplify any difference (a ReLU flipping on one sample, a
  coordinate near Adam's ε): ``max_abs_grid_twin_error`` is the same distance for a
  plaintext twin that differs only by starting from the weights rounded to the 2^-16
  grid — what the fixed-point encoding alone leads to; ``trajectory`` lists both every
  10 updates;
* both secure actors act on the same 32 states as the step twin's actors loaded with the
  revealed weights, after every ``--act-every`` updates and after the last (the acting
  path, ``forward_stacked`` under exact truncation);
  ``max_abs_action_error`` is the largest difference in units of the action caps
  (actions are ``cap · σ(·)``);
* an update counts as ``undetected`` when its per-update weight error exceeds 1e-3 and
  no redo (the revealed-loss check) fired during it.

``wraps_prevented_or_caught``: truncations that CrypTen's local truncation would have got
wrong on the very same shares (the parties exchange their shares to count them, uncounted
in the communication figures; benchmark only), plus redos by the loss check.

``--pretrained`` starts, as the headline preset does (``python train.py --algo
secure_maddpg --env supply_chain``: its ``pretrain_steps`` of plaintext MADDPG on the
simulated market ``pretrain_env``, the preset's loss scales), from pre-trained networks,
with targets equal to the online networks, and replays the pre-training buffer. The
secure Adams (and the twins') continue the pre-training's Adam moments, as the pipeline
does (``adam_warm_start``; ``--set adam_warm_start=false`` starts them from zero).
Pre-training takes long, so ``--cache FILE`` keeps its result (with a SHA-256 check on
reading it back).

The cost of the protection is measured in the same run: ``--cost-updates`` extra updates
alternate between exact truncation and CrypTen's local truncation (``trunc.set_mode``),
each from its own copy of the start state, timed interleaved.

Usage::

    python benchmarks/secure_maddpg_stress.py --updates 20 --optimizer adam
    python benchmarks/secure_maddpg_stress.py --updates 2000 --pretrained --json
    python benchmarks/secure_maddpg_stress.py --updates 50 --truncation local   # old path

``--json`` prints one object with the keys ``config``, ``updates``,
``max_abs_weight_error``, ``max_abs_trajectory_error``, ``max_abs_grid_twin_error``,
``trajectory``, ``max_abs_action_error``, ``wraps_prevented_or_caught``,
``would_wrap``, ``redos``, ``undetected``, ``max_abs_noise_twin_error``,
``noise_twin_updates_over_1e-3``, ``noise_twin_bits`` (``hidden``, ``output``: the
fractional bits of the noise twin's units), ``seconds_per_update`` (secure update only,
without the checks), ``check_seconds_per_update`` (the twins, the reveal and the action
check), ``worst_update`` (the update with the largest per-update weight
error, the network it was in, and at the worst coordinate of an online network the secure
and the twin's gradient, the twin's ``v̂``, ε and lr: Adam moves a step by about
``(1 − β₁)·lr·δg/√(v̂ + ε²)`` for a gradient difference ``δg``; and ``relu_flip``: the
update replayed in plaintext with each of the 16 ReLU decisions nearest 0 flipped alone,
what each does to that coordinate's gradient, to hold against ``grad_secure −
grad_twin``) and
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
from smpc_gym.secure.mpc_nn import ACT_FRAC_BITS
from smpc_gym.secure.optim import FloorEpsAdam
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
        [
            cfg.pretrain_steps,
            cfg.pretrain_config,
            cfg.pretrain_env,
            cfg.pretrain_select_every,
            cfg.pretrain_select_episodes,
            cfg.hidden,
            "with-opts",
        ],
        sort_keys=True,
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
        "actor_opts": [o.state_dict() for o in sim.opts.actors],
        "critic_opts": [o.state_dict() for o in sim.opts.critics],
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


def _pretrain_opts(cfg: sm.Config, actors, critics, pre: dict[str, Any] | None):
    """The pre-training's optimisers (its own config) over ``actors``/``critics``, with
    their saved state: what the secure Adams warm-start from (``adam_warm_start``)."""
    if pre is None:
        return None
    pc = maddpg.pretrain_config(cfg.plain(), cfg.pretrain_config)
    opts = maddpg.Optimisers(
        actors=[maddpg.make_optimiser(a.parameters(), pc.actor_lr, pc) for a in actors],
        critics=[maddpg.make_optimiser(c.parameters(), pc.critic_lr, pc) for c in critics],
    )
    for kind in ("actors", "critics"):
        for o, sd in zip(getattr(opts, kind), pre[kind[:-1] + "_opts"], strict=True):
            o.load_state_dict(sd)
    return opts


def _warm_start_twin(opts: maddpg.Optimisers, pre_opts: maddpg.Optimisers | None) -> None:
    """Give a twin's optimisers the pre-training's Adam moments, as the secure Adams get."""
    if pre_opts is None:
        return
    for kind in ("actors", "critics"):
        for opt, pre in zip(getattr(opts, kind), getattr(pre_opts, kind), strict=True):
            if not isinstance(pre, torch.optim.Adam):
                continue
            if isinstance(opt, torch.optim.Adam):  # --twin torch
                lrs = [g["lr"] for g in opt.param_groups]
                opt.load_state_dict(pre.state_dict())  # (its lr too: put the twin's back)
                for g, lr in zip(opt.param_groups, lrs, strict=True):
                    g["lr"] = lr
                continue
            if not isinstance(opt, FloorEpsAdam):
                continue
            for prm, pp in zip(
                opt.param_groups[0]["params"], pre.param_groups[0]["params"], strict=True
            ):
                st = pre.state[pp]
                opt.state[prm] = {
                    "t": int(st["step"]),
                    "m": st["exp_avg"].clone(),
                    "v": st["exp_avg_sq"].clone(),
                }


def _fill(replay: maddpg.PlayerReplay, d: dict[str, torch.Tensor]) -> None:
    replay.add(d["obs"], d["next_obs"], d["action"], d["reward"], d["done"])


def _twin(cfg: sm.Config, actors, critics, high, twin: str = "secure-eps"):
    """A plaintext twin: networks with targets, and the optimisers the secure update
    equals (``"secure-eps"``) or, with ``twin="torch"``, plaintext MADDPG's own."""
    nets = maddpg.Nets(
        actors=actors,
        critics=critics,
        target_actors=[copy.deepcopy(a) for a in actors],
        target_critics=[copy.deepcopy(c) for c in critics],
        action_high=high,
    )
    if twin == "secure-eps":
        return nets, sm.plaintext_optimisers(cfg, actors, critics)
    pc = cfg.plain()
    opts = maddpg.Optimisers(
        actors=[maddpg.make_optimiser(a.parameters(), pc.actor_lr, pc) for a in actors],
        critics=[maddpg.make_optimiser(c.parameters(), pc.critic_lr, pc) for c in critics],
    )
    return nets, opts


NET_KINDS = ("actors", "critics", "target_actors", "target_critics")


def _linears(net: torch.nn.Module) -> list[torch.nn.Linear]:
    return [m for m in net.modules() if isinstance(m, torch.nn.Linear)]


def _reveal(party: sm.Party, rank: int) -> dict[str, Any] | None:
    """Party 0 learns every network and both optimiser states (benchmark-only reveal).

    Returns, in party 0, ``nets`` (kind → per player → ``[(weight, bias), …]`` in
    ``nn.Linear`` layout) and ``opts`` (``actors``/``critics`` → the optimiser state in
    plaintext gradient units, per player and parameter, or ``None`` before the first step).
    """
    nets = {k: [m.reveal_net(p, dst=0) for p in range(2)] for k, m in party.nets.modules().items()}
    opts = {}
    mlps = (party.nets.actors, party.nets.critics)
    for kind, opt, mlp in zip(("actors", "critics"), party.opts, mlps, strict=True):
        opts[kind] = _reveal_opt(opt, mlp, rank)
    return {"nets": nets, "opts": opts} if rank == 0 else None


def _reveal_opt(opt: Any, mlp: Any, rank: int) -> dict[str, Any] | None:
    """An optimiser's state revealed to party 0, split per player and parameter."""
    from smpc_gym.secure.optim import SecureAdam

    c = opt.grad_scale
    if isinstance(opt, SecureAdam):
        if opt.state is None:
            return None
        st = opt.state
        flat = {
            "m": st.m.get_plain_text(dst=0),
            "v": st.v.get_plain_text(dst=0),
        }
        scale = {"m": c * 2.0**opt.M_SHIFT, "v": c * c * 2.0**opt.V_SHIFT}
        t = st.t
    else:
        if opt.buf is None:
            return None
        flat, scale, t = {"buf": opt.buf.get_plain_text(dst=0)}, {"buf": c}, opt.t
    if rank != 0:
        return None
    out: dict[str, Any] = {"t": t}
    for key, vec in flat.items():
        out[key] = sm.split_players(vec.double() / scale[key], mlp)
    return out


def _load_twin(twin: maddpg.Nets, opts: maddpg.Optimisers, state: dict[str, Any]) -> None:
    """Set a plaintext twin to the revealed secure state (networks and optimisers)."""
    with torch.no_grad():
        for kind in NET_KINDS:
            for pl, net in enumerate(getattr(twin, kind)):
                for (w, b), lin in zip(state["nets"][kind][pl], _linears(net), strict=True):
                    lin.weight.copy_(w)
                    lin.bias.copy_(b)
    for kind in ("actors", "critics"):
        sec = state["opts"][kind]
        for pl, (opt, net) in enumerate(zip(getattr(opts, kind), getattr(twin, kind), strict=True)):
            opt.state.clear()
            if sec is None:
                continue
            t = sec["t"]
            for k, prm in enumerate(net.parameters()):
                if "buf" in sec:
                    opt.state[prm] = {"momentum_buffer": sec["buf"][pl][k].float()}
                    continue
                # both Adam twins keep raw (not bias-corrected) moments
                b1, b2 = opt.param_groups[0]["betas"]
                m = (sec["m"][pl][k] * (1 - b1**t)).float()
                v = (sec["v"][pl][k] * (1 - b2**t)).float()
                if isinstance(opt, FloorEpsAdam):
                    opt.state[prm] = {"t": t, "m": m, "v": v}
                else:  # torch.optim.Adam (--twin torch)
                    opt.state[prm] = {"step": torch.tensor(float(t)), "exp_avg": m, "exp_avg_sq": v}


def _max_error(revealed: dict[str, Any], twin: maddpg.Nets) -> tuple[float, str]:
    """Largest |secure − twin| over every parameter of every network, and where."""
    worst, where = 0.0, ""
    for kind in NET_KINDS:
        for pl, net in enumerate(getattr(twin, kind)):
            for k, ((w, b), lin) in enumerate(zip(revealed[kind][pl], _linears(net), strict=True)):
                for name, sec, plain in (("weight", w, lin.weight), ("bias", b, lin.bias)):
                    err = float((sec - plain.detach()).abs().max())
                    if err > worst:
                        worst, where = err, f"{kind}[{pl}] layer {k} {name}"
    return worst, where


def _diagnose(
    before: dict[str, Any],
    after: dict[str, Any],
    nets: maddpg.Nets,
    opts: Any,
    batch: list[maddpg.PlayerBatch],
    cfg: maddpg.Config,
    sharing: maddpg.DataSharing,
) -> dict[str, Any]:
    """Why an update's error is what it is, at its worst online-network coordinate.

    Both gradients follow from ``m̂`` before (the revealed state both started from) and
    after the update (``m̂ += a₁·(g − m̂)``): the revealed secure one and the step twin's;
    both ``v̂`` after it are reported. With Adam, a gradient difference ``δ`` moves a step by
    about ``(1 − β₁)·lr·δ/√(v̂ + ε²)``: most where ``v̂`` is near the ε floor.
    :func:`_relu_flip`'s account of the gradient difference, replayed on the update's
    ``batch`` with the plaintext ``cfg`` and ``sharing``, is added (key ``relu_flip``).
    """
    best: tuple[float, str, int, int, int, str] | None = None
    for kind in ("actors", "critics"):
        for pl, net in enumerate(getattr(nets, kind)):
            for k, lin in enumerate(_linears(net)):
                for j, name in enumerate(("weight", "bias")):
                    sec = after["nets"][kind][pl][k][j]
                    diff = (sec - getattr(lin, name).detach()).abs().reshape(-1)
                    i = int(diff.argmax())
                    if best is None or float(diff[i]) > best[0]:
                        best = (float(diff[i]), kind, pl, k, i, name)
    assert best is not None
    err, kind, pl, k, i, name = best
    out: dict[str, Any] = {
        "online_error": err,
        "online_where": f"{kind}[{pl}] layer {k} {name} [{i}]",
    }
    param = getattr(_linears(getattr(nets, kind)[pl])[k], name)
    opt = getattr(opts, kind)[pl]
    if before["opts"][kind] is None or after["opts"][kind] is None:
        return out
    st = opt.state[param]
    if "m" not in st:  # --twin torch: its state has other keys
        return out
    b1, b2 = opt.param_groups[0]["betas"]
    t = after["opts"][kind]["t"]
    slot = 2 * k + (name == "bias")
    a1 = (1 - b1) / (1 - b1**t)
    m0 = float(before["opts"][kind]["m"][pl][slot].reshape(-1)[i])
    m1 = {
        "secure": float(after["opts"][kind]["m"][pl][slot].reshape(-1)[i]),
        "twin": float(st["m"].reshape(-1)[i]) / (1 - b1 ** st["t"]),
    }
    # the gradients from m̂ += a₁·(g − m̂) (a critic's .grad also holds the actor loss's
    # backward through it by now)
    grads = {k2: (v - (1 - a1) * m0) / a1 for k2, v in m1.items()}
    out.update(
        {
            "grad_secure": grads["secure"],
            "grad_twin": grads["twin"],
            "v_hat_secure": float(after["opts"][kind]["v"][pl][slot].reshape(-1)[i]),
            "v_hat_twin": float(st["v"].reshape(-1)[i]) / (1 - b2 ** st["t"]),
            "eps": opt.param_groups[0]["eps"],
            "lr": opt.param_groups[0]["lr"],
        }
    )
    gap = grads["secure"] - grads["twin"]
    out["relu_flip"] = _relu_flip(
        before, (nets, opts), batch, cfg, sharing, (kind, pl, k, i, name), gap
    )
    return out


def _relu_flip(
    before: dict[str, Any],
    twin: tuple[maddpg.Nets, Any],
    batch: list[maddpg.PlayerBatch],
    cfg: maddpg.Config,
    sharing: maddpg.DataSharing,
    where: tuple[str, int, int, int, str],
    gap: float | None = None,
    candidates: int = 16,
) -> dict[str, Any]:
    """Whether one ReLU decision taken the other way accounts for a gradient difference.

    A ReLU decision on a pre-activation ``z`` within the rounding of 0 may go either way,
    and taking it the other way moves a whole row of gradients by that sample's share
    (and, through the backward pass, rows of the layers below and of the actor whose
    loss runs through a critic). The update is replayed in plaintext on a copy of the
    twin loaded with ``before``, on the same ``batch``; every ReLU of the online networks
    in a pass with gradients is a decision. The ``candidates`` decisions whose ``|z|`` is
    smallest are each flipped alone in a replay, and what that does to the gradient the
    optimiser steps on at ``where`` = (kind, player, layer, flat index,
    ``"weight"``/``"bias"``) is measured.

    Returns:
        ``grad_replayed`` (the replayed twin's gradient at ``where``, which must equal the
        step twin's ``grad_twin``: a check of the replay), ``decisions`` (how many there
        were), ``nearest`` (the decision nearest 0) and, with the measured ``gap``
        (secure minus twin gradient), ``closest`` (the candidate whose flip comes
        closest to it): each with ``relu`` (network, ReLU index, pass), ``sample``,
        ``unit``, ``abs_preactivation``, ``rank`` (how many decisions have a smaller
        ``|z|``) and ``grad_change`` (the gradient at ``where`` with that decision
        flipped, minus ``grad_replayed``).
    """
    kind, pl, k, i, name = where
    base = copy.deepcopy(twin)
    _load_twin(*base, before)

    def replay(flip: tuple[str, int, int, int] | None) -> tuple[float, dict[tuple[str, int], Any]]:
        """The gradient at ``where`` (and, unflipped, every decision's z) of one replay."""
        nets, opts = copy.deepcopy(base)
        zs: dict[tuple[str, int], torch.Tensor] = {}
        calls: dict[str, int] = {}
        grad: list[float] = []

        def relu_hook(label: str) -> Any:
            def hook(mod: torch.nn.Module, inp: tuple[torch.Tensor, ...], h: torch.Tensor) -> Any:
                z = inp[0]
                if not z.requires_grad:
                    return None
                n = calls[label] = calls.get(label, -1) + 1
                zs[(label, n)] = z.detach()
                if flip is None or (flip[0], flip[1]) != (label, n):
                    return None
                keep = (z > 0).to(z.dtype)
                keep[flip[2], flip[3]] = 1 - keep[flip[2], flip[3]]
                return z * keep  # the flipped decision's gradient follows it

            return hook

        copies = {
            f"{kind2}[{p}] relu {j}": m
            for kind2 in ("actors", "critics")
            for p, net in enumerate(getattr(nets, kind2))
            for j, m in enumerate(x for x in net if isinstance(x, torch.nn.ReLU))
        }
        hooks = [m.register_forward_hook(relu_hook(label)) for label, m in copies.items()]
        param = getattr(_linears(getattr(nets, kind)[pl])[k], name)

        def at_step(opt: Any, args: Any, kwargs: Any) -> None:
            if param.grad is not None:
                grad.append(float(param.grad.reshape(-1)[i]))

        hooks.append(getattr(opts, kind)[pl].register_step_pre_hook(at_step))
        maddpg.maddpg_update(nets, opts, batch, cfg, sharing)
        for h in hooks:
            h.remove()
        return grad[0], zs

    g0, zs = replay(None)
    keys = list(zs)
    absz = torch.cat([zs[key].abs().reshape(-1) for key in keys])
    ends = torch.tensor([zs[key].numel() for key in keys]).cumsum(0)
    vals, order = torch.topk(absz, min(candidates, absz.numel()), largest=False)
    tried = []
    for rank, (v, flat) in enumerate(zip(vals.tolist(), order.tolist(), strict=True)):
        which = int(torch.searchsorted(ends, flat, right=True))
        label, n = keys[which]
        b, u = divmod(flat - (int(ends[which - 1]) if which else 0), zs[keys[which]].shape[1])
        g1, _ = replay((label, n, b, u))
        tried.append(
            {
                "relu": f"{label} (pass {n})",
                "sample": b,
                "unit": u,
                "abs_preactivation": v,
                "rank": rank,
                "grad_change": g1 - g0,
            }
        )
    out: dict[str, Any] = {"grad_replayed": g0, "decisions": int(absz.numel()), "nearest": tried[0]}
    if gap is not None:
        out["closest"] = min(tried, key=lambda t: abs(t["grad_change"] - gap))
    return out


def _plain_error(a: maddpg.Nets, b: maddpg.Nets) -> float:
    """Largest |a − b| over every parameter of every network (two plaintext twins)."""
    return max(
        float((x - y).detach().abs().max())
        for kind in NET_KINDS
        for na, nb in zip(getattr(a, kind), getattr(b, kind), strict=True)
        for x, y in zip(na.parameters(), nb.parameters(), strict=True)
    )


def _add_output_noise(
    nets: maddpg.Nets, gen: torch.Generator, bits: int = 16, hidden_bits: int | None = None
) -> None:
    """Add uniform noise of ±1 unit of the ``2^-bits`` grid to every linear layer's output
    (of ``2^-hidden_bits`` to the hidden layers', if given).

    What fixed point with those fractional bits does to a layer at best (one rounded
    truncation per output, exact otherwise), in floating point: the yardstick for the
    per-update error (the secure code keeps hidden activations at
    :data:`smpc_gym.secure.mpc_nn.ACT_FRAC_BITS` and the output layers at 16). A ReLU
    whose input is within a unit of 0 may flip, as it may in the secure run.
    """

    def hook(unit: float) -> Any:
        def add(mod: torch.nn.Module, inp: Any, out: torch.Tensor) -> torch.Tensor:
            noise = torch.rand(out.shape, generator=gen, dtype=out.dtype) - 0.5
            return out + noise * 2 * unit

        return add

    for kind in NET_KINDS:
        for net in getattr(nets, kind):
            lins = _linears(net)
            for k, lin in enumerate(lins):
                f = bits if hidden_bits is None or k == len(lins) - 1 else hidden_bits
                lin.register_forward_hook(hook(2.0**-f))


def _round_to_grid(nets: maddpg.Nets) -> None:
    """Round every parameter to the 2^-16 fixed-point grid (what sharing does to it)."""
    with torch.no_grad():
        for kind in NET_KINDS:
            for net in getattr(nets, kind):
                for prm in net.parameters():
                    prm.copy_(torch.round(prm * 2.0**16) / 2.0**16)


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
    act_every: int = 1,
):
    from smpc_gym.secure import trunc

    torch.set_num_threads(1)
    trunc.set_mode(mode)
    actors, critics = _nets(cfg, high, pre)
    pre_opts = _pretrain_opts(cfg, actors, critics, pre)

    def new_party(config: sm.Config) -> sm.Party:
        """A party from the start state, its buffer filled with its player's rows."""
        p = sm.Party(
            ctx.crypten,
            ctx.rank,
            config,
            {},
            SEED,
            init_nets=(actors, critics),
            action_high=high,
            init_opts=pre_opts,
        )
        _fill(p.replay, data[ctx.rank])
        return p

    party = new_party(cfg)
    # three plaintext twins on party 0, fed the same minibatches:
    # * "step": set to the revealed secure state before every update (what one secure
    #   update adds: the check that catches a wrap wherever it lands);
    # * "free": free-running from the same start (the trajectory, which the training
    #   dynamics amplify);
    # * "grid": free-running from the start rounded to the 2^-16 grid (the same
    #   amplification of nothing but the fixed-point encoding: the yardstick for "free").
    twins = (
        {
            k: _twin(cfg, *_nets(cfg, high, pre), high, twin_kind)
            for k in ("step", "noise", "free", "grid")
        }
        if ctx.rank == 0
        else {}
    )
    if twins:
        _round_to_grid(twins["grid"][0])
        _add_output_noise(
            twins["noise"][0], torch.Generator().manual_seed(SEED), hidden_bits=ACT_FRAC_BITS
        )
        for _, opts in twins.values():  # the step twin is overwritten before each update
            _warm_start_twin(opts, pre_opts if party.warm_started else None)
    states = torch.cat([data[0]["obs"][:N_ACT_STATES], data[1]["obs"][:N_ACT_STATES]], dim=1)
    sharing = maddpg.DataSharing("ede")
    plain_sampler = torch.Generator().manual_seed(int(sm._seeds(SEED)[4]))
    w_err = a_err = last_ae = traj_err = grid_err = noise_max = 0.0
    noise_over = 0
    undetected = 0
    worst = {"update": 0, "error": 0.0}
    trajectory: list[dict[str, float]] = []
    secs = check_secs = 0.0
    phases = {"twins": 0.0, "reveal": 0.0, "actions": 0.0}
    trunc.count_local_wraps(count)
    trunc.STATS["would_wrap"] = 0
    revealed = _reveal(party, ctx.rank)
    if ctx.rank == 0:  # the step twins start every update from the revealed secure state
        for k in ("step", "noise"):
            _load_twin(*twins[k], revealed)
    for u in range(n_updates):
        idx = maddpg.sample_indices(party.replay.size, cfg.batch_size, party.sampler)
        redos = party.overflow_redos
        ctx.barrier()
        t = time.perf_counter()
        party.update(idx)
        secs += time.perf_counter() - t
        caught = party.overflow_redos > redos
        t_check = time.perf_counter()
        if ctx.rank == 0:
            pidx = maddpg.sample_indices(party.replay.size, cfg.batch_size, plain_sampler)
            assert torch.equal(pidx, idx)
            batch = [maddpg.PlayerBatch(**{k: v[idx] for k, v in d.items()}) for d in data]
            for nets, opts in twins.values():
                maddpg.maddpg_update(nets, opts, batch, cfg.plain(), sharing)
        phases["twins"] += time.perf_counter() - t_check
        trunc.count_local_wraps(False)
        t = time.perf_counter()
        before, revealed = revealed, _reveal(party, ctx.rank)
        phases["reveal"] += time.perf_counter() - t
        if ctx.rank == 0:
            we, where = _max_error(revealed["nets"], twins["step"][0])
            if we > worst["error"]:  # why: before the step twin is reloaded
                worst = {
                    "update": u + 1,
                    "error": we,
                    "network": where,
                    **_diagnose(before, revealed, *twins["step"], batch, cfg.plain(), sharing),
                }
            traj_err = max(traj_err, _max_error(revealed["nets"], twins["free"][0])[0])
            grid_err = max(grid_err, _plain_error(twins["grid"][0], twins["free"][0]))
            noise_err = _plain_error(twins["noise"][0], twins["step"][0])
            noise_max = max(noise_max, noise_err)
            noise_over += noise_err > 1e-3
            for k in ("step", "noise"):  # for the actions and the next update
                _load_twin(*twins[k], revealed)
        t = time.perf_counter()
        ae = (
            _action_error(ctx, party, twins["step"][0] if twins else None, states, high)
            if u % act_every == 0 or u + 1 == n_updates
            else None
        )
        phases["actions"] += time.perf_counter() - t
        check_secs += time.perf_counter() - t_check
        trunc.count_local_wraps(count)
        if ctx.rank == 0:
            w_err = max(w_err, we)
            if ae is not None:
                a_err, last_ae = max(a_err, ae), ae
            if we > 1e-3 and not caught:
                undetected += 1
            if (u + 1) % 10 == 0 or u + 1 == n_updates:
                trajectory.append(
                    {"update": u + 1, "secure_vs_twin": traj_err, "grid_vs_twin": grid_err}
                )
                print(
                    f"update {u + 1}: per-update weight error {we:.2e} (max {w_err:.2e}; "
                    f"noise twin max {noise_max:.2e}); "
                    f"trajectory {traj_err:.2e} (grid-rounded twin {grid_err:.2e}); action "
                    f"error {last_ae:.2e} (last checked), would-wrap "
                    f"{trunc.STATS['would_wrap']}, redos {party.overflow_redos}, {secs / (u + 1):.2f} s/update (checks "
                    f"{check_secs / (u + 1):.2f} s: "
                    + ", ".join(f"{k} {v / (u + 1):.2f}" for k, v in phases.items())
                    + ")",
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
        "max_abs_noise_twin_error": noise_max,
        "noise_twin_bits": {"hidden": ACT_FRAC_BITS, "output": 16},
        "noise_twin_updates_over_1e-3": noise_over,
        "seconds_per_update": secs / max(n_updates, 1),
        "check_seconds_per_update": check_secs / max(n_updates, 1),
        "worst_update": worst,
        "max_abs_trajectory_error": traj_err,
        "max_abs_grid_twin_error": grid_err,
        "trajectory": trajectory,
    }
    # cost of the protection: exact vs local truncation, interleaved, same start state
    cost_cfg = dataclasses.replace(cfg, reveal_losses=False)
    runs = {}
    for m in ("exact", "local"):
        runs[m] = (new_party(cost_cfg), [])
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
    p.add_argument(
        "--act-every",
        type=int,
        default=1,
        help="compare the secure actions with the twin's after every this many updates "
        "(and after the last); the weights are compared after every update",
    )
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    if args.updates < 1 or args.act_every < 1:
        p.error(f"--updates and --act-every must be >= 1, got {args.updates}, {args.act_every}")
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
            args.act_every,
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
