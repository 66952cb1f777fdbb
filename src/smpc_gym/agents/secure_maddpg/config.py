"""Secure MADDPG's configuration: :class:`Config` (every field of :class:`maddpg.Config`
plus the secure ones, checked on construction, including the triple provider through
:func:`smpc_gym.secure.runtime.resolve_provider`) and :class:`FixedPointOverflow`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from smpc_gym.agents import maddpg
from smpc_gym.envs.supply_chain.remote import episode_seed, parse_address

AGENTS = maddpg.AGENTS
N_FEATURES = maddpg.N_FEATURES
ACTION_DIM = maddpg.ACTION_DIM
N_PLAYERS = len(AGENTS)
_episode_seed = episode_seed  # the world's per-episode seed (benchmarks replay episodes)


@dataclass
class Config(maddpg.Config):
    """Secure MADDPG hyper-parameters: every field of :class:`maddpg.Config` plus:

    Attributes:
        reveal_losses: reveal the scalar critic/actor losses to both players for logging.
            Not a protection: every truncation is exact (:mod:`smpc_gym.secure.trunc`), so
            no fixed-point wrap-around can happen inside the stated ranges.
        overflow_redos: a guard for values *outside* the stated ranges (needs
            ``reveal_losses``): on a huge or NaN revealed loss, roll both parties back to
            their shares from before the previous update and redo the last two updates on
            the same minibatches, up to this many times in a row; then the run stops with
            :class:`FixedPointOverflow` (0: stop at once).
        reveal_final_weights: ``"owner"`` (each player learns its own actor and critic at
            the end; needed for evaluation) or ``"none"`` (weights stay shared forever).
        provider: Beaver-triple provider: ``"TTP"`` (default; a dealer process that holds
            no data) or ``"tfp_player0_sees_all"`` (player 0 generates the triples and can
            read every opened value: the other player's data, all weights and gradients).
        timeout_s: a party that dies or hangs makes the other fail within this time.
        critic_grad_scale: public loss scale ``c`` of the critic gradients (fixed point,
            see :mod:`smpc_gym.secure.optim`).
        actor_grad_scale: the same for the actor gradients (which are much smaller).
        adam_init_iters: scaled Newton iterations after the range reduction (4: within
            1e-5 of ``1/√v̂``; 5: 1.4e-10, one more step's bytes and rounds; see
            :meth:`smpc_gym.secure.optim.SecureAdam.newton_schedule`).
        adam_warm_start: with ``optimizer: adam`` after a pre-training by Adam, the secure
            Adams continue from the pre-training's moments and step count (public: both
            parties compute them from simulated data) instead of zero moments, whose
            first steps are sign-like full-``lr`` steps (``False``: start from zero).
        pretrain_steps: plaintext MADDPG steps on *simulated, public* data before the
            secure phase (the paper's pipeline; 0 = start secure from scratch). Both
            parties run the same deterministic pre-training and secret-share the result.
        pretrain_env: env parameter overrides for the simulated game (e.g. a different
            ``demand_intercept``); the private game uses the run's env parameters.
        pretrain_config: overrides of :class:`maddpg.Config` fields for pre-training only
            (e.g. its own ``optimizer``, learning rates, ``n_envs``); the secure phase
            uses the run's values. Unknown keys are an error.
        pretrain_select_every: every this many pre-training env steps, and at its end,
            score the greedy policy on ``pretrain_select_episodes`` fixed episodes of the
            simulated market and keep the best-scoring snapshot rather than the last
            (:func:`smpc_gym.agents.maddpg.pretrain`; public data only). 0: keep the last.
        pretrain_select_episodes: episodes per score (mean total NCR).
        checkpoint_every: env steps between per-party share checkpoints (0: whenever the
            runner asks, i.e. ``hooks.should_checkpoint``).
        share_dir: folder of the per-party share files ("" = ``<run folder>/party_shares``
            under the runner, else a temporary folder).
        world_address: ``HOST:PORT`` of the world simulator (``--world``). Local runs: ""
            starts it on 127.0.0.1 (a free port); a given address makes the launcher start
            it there. Multi-machine runs: required; start the simulator yourself on a host
            neither player controls (``python -m smpc_gym.envs.supply_chain.remote serve``).
        world_key_file: multi-machine runs: the 0600 file holding the world channel's key
            (``python -m smpc_gym.envs.supply_chain.remote keygen``); local runs draw a
            fresh key per run and ignore this.
    """

    reveal_losses: bool = True
    overflow_redos: int = 3
    reveal_final_weights: str = "owner"
    provider: str = "TTP"
    timeout_s: float = 120.0
    critic_grad_scale: float = 2.0**6
    actor_grad_scale: float = 2.0**10
    adam_init_iters: int = 4
    adam_warm_start: bool = True
    pretrain_steps: int = 0
    pretrain_env: dict[str, Any] = field(default_factory=dict)
    pretrain_config: dict[str, Any] = field(default_factory=dict)
    pretrain_select_every: int = 1000
    pretrain_select_episodes: int = 20
    checkpoint_every: int = 0
    share_dir: str = ""
    world_address: str = ""
    world_key_file: str = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.reveal_final_weights not in ("owner", "none"):
            raise ValueError(
                f"reveal_final_weights must be 'owner' or 'none', got {self.reveal_final_weights!r}"
            )
        from smpc_gym.secure.runtime import resolve_provider

        self.provider = resolve_provider(self.provider)
        if self.world_address:
            parse_address(self.world_address)  # raises naming the bad value
        if self.n_envs != 1:
            raise ValueError(f"secure_maddpg steps one world (n_envs=1), got n_envs={self.n_envs}")
        if self.timeout_s <= 0 or self.critic_grad_scale <= 0 or self.actor_grad_scale <= 0:
            raise ValueError(
                "timeout_s, critic_grad_scale and actor_grad_scale must be > 0, got "
                f"{self.timeout_s}, {self.critic_grad_scale}, {self.actor_grad_scale}"
            )
        if self.pretrain_steps < 0 or self.checkpoint_every < 0 or self.overflow_redos < 0:
            raise ValueError(
                "pretrain_steps, checkpoint_every and overflow_redos must be >= 0, got "
                f"{self.pretrain_steps}, {self.checkpoint_every}, {self.overflow_redos}"
            )

        for name, low in (
            ("pretrain_select_every", 0),
            ("pretrain_select_episodes", 1),
            ("adam_init_iters", 1),
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or value < low:
                raise ValueError(f"{name}: bad value {value!r}; expected an int >= {low}")
        maddpg.pretrain_config(self.plain(), self.pretrain_config)  # validates the keys

    def plain(self) -> maddpg.Config:
        """The plaintext :class:`maddpg.Config` with the same shared fields."""
        names = {f.name for f in dataclasses.fields(maddpg.Config)}
        return maddpg.Config(**{k: v for k, v in dataclasses.asdict(self).items() if k in names})


class FixedPointOverflow(RuntimeError):
    """A revealed loss was huge or NaN: the fixed-point ring wrapped around."""
