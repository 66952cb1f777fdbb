"""Learning curves of secure_fed_dqn under local DP at ε ∈ {1, 4, 8, ∞}, in one PNG.

For each target ε the noise multiplier σ is calibrated with dp-accounting so that every
holder's (ε, δ = 1e-5) after all rounds is the target (σ = 0 for ε = ∞, clipping still
on so only the noise differs). Each run trains secure_fed_dqn (holders as party processes,
secure aggregation) with the same seed and logs the securely aggregated training reward
per step; the curves go to ``--out`` (default docs/img/secure_fed_dqn_dp.png).

JSON keys (``--json``): ``{"eps": {"<eps>": {"sigma", "epsilon_reported", "steps",
"reward_per_step"}}}``.

Usage: ``python benchmarks/secure_fed_dqn_dp_curves.py [--steps 20000] [--holders 4]``.
"""

from __future__ import annotations

import argparse
import json
import math

import torch

from smpc_gym.agents.base import NullHooks
from smpc_gym.agents.secure_fed_dqn import Config, SecureFedDQN
from smpc_gym.federated.dp import noise_multiplier_for


class _Rows(NullHooks):
    def __init__(self) -> None:
        self.rows: list[tuple[int, dict]] = []

    def log(self, step, metrics) -> None:  # noqa: ANN001
        self.rows.append((step, dict(metrics)))


def main() -> None:
    """Run the four settings, write the PNG, print a summary."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=20000)
    p.add_argument("--holders", type=int, default=4)
    p.add_argument("--clip", type=float, default=1.0)
    p.add_argument("--out", default="docs/img/secure_fed_dqn_dp.png")
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    torch.set_num_threads(1)
    sync = 250
    rounds = a.steps // (a.holders * sync)
    kw = dict(
        holders=a.holders,
        num_envs=2,
        sync_every=sync,
        hidden=[64, 64],
        batch_size=64,
        learning_starts=500,
        buffer_size=20000,
        target_update_every=1000,
        eps_decay_steps=a.steps // 2,
        log_every=a.holders * sync,
        dp_mode="local",
        clip_norm=a.clip,
        segment_steps=a.steps,
        timeout_s=120,
    )
    out = {}
    for eps in (1.0, 4.0, 8.0, math.inf):
        sigma = noise_multiplier_for(eps, rounds, 1e-5)
        algo = SecureFedDQN(Config(**kw, noise_multiplier=sigma), {"obs_mode": "features"}, 0)
        hooks = _Rows()
        algo.train(a.steps, hooks)
        out[str(eps)] = {
            "sigma": sigma,
            "epsilon_reported": hooks.rows[-1][1]["dp_epsilon"],
            "steps": [s for s, _ in hooks.rows],
            "reward_per_step": [r["train/reward_per_step"] for _, r in hooks.rows],
        }
        if not a.json:
            print(
                f"eps={eps}: sigma={sigma:.3f} reported eps={out[str(eps)]['epsilon_reported']:.3f}"
                f" final reward/step={out[str(eps)]['reward_per_step'][-1]:.3f}",
                flush=True,
            )
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for k, v in out.items():
        label = "ε = ∞ (clip only)" if k == "inf" else f"ε = {float(k):g} (σ = {v['sigma']:.2f})"
        ax.plot(v["steps"], v["reward_per_step"], label=label)
    ax.set_xlabel("total env steps")
    ax.set_ylabel("training reward per step (mean over holders)")
    ax.set_title(f"secure_fed_dqn, {a.holders} holders, local DP, δ = 1e-5, C = {a.clip}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(a.out, dpi=120)
    if a.json:
        print(json.dumps({"eps": out}))
    else:
        print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
