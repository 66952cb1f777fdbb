"""MADDPG with explicit data exchange (EDE) on the two-player SupplyChain game.

Reads top to bottom: :class:`Config` (the paper's settings), the networks
(:func:`make_actor`, :func:`make_critic`), the data views that decide who sees what
(:class:`DataSharing`), the replay buffer (:class:`PlayerReplay`, one per player, each
holding only its own columns), the update (:func:`maddpg_update`) and the loop
(:class:`MADDPG`).

EDE means each actor sees both players' 5 features (10 inputs) and each critic sees both
players' features and both actions (10 + 2 + 2 = 14 inputs): Mukherjee et al. (2023),
"Privacy Preserving Multi-Agent Reinforcement Learning in Supply Chains". The independent
learners of :mod:`smpc_gym.agents.nds` reuse every piece here with
``DataSharing("nds")`` (actor 5 inputs, critic 5 + 2 = 7), and
``smpc_gym.agents.secure_maddpg`` mirrors :func:`maddpg_update` line by line under CrypTen.

The update, in this exact order (the secure twin reproduces it):

1. for each player i: critic update —
   target actors on next features → target critic_i → ``y = r_i + γ·(1 − done_i)·Q'``
   → ``MSE(critic_i(s, a), y)`` → backward → critic optimiser step;
2. for each player i: actor update —
   ``a_i = actor_i(s)`` → ``critic_i(s, a with player i's action replaced by a_i)``
   → loss ``−mean(Q)`` → backward through the (updated) critic into the actor → actor
   optimiser step (critic gradients from this pass are discarded: the critic's optimiser
   zeroes them before its next step);
3. soft target updates ``θ' ← (1 − τ)·θ' + τ·θ`` for all actors and critics.

Critics take actions scaled by the action caps (``a / high`` ∈ [0, 1]), so all critic
inputs are in [0, 1]. Rewards are multiplied by ``reward_scale`` (1/100) before they reach
the critic; logged metrics are unscaled.

"Env step" (the unit of ``total_steps``, ``env_steps`` and the log): one transition of
one world. With ``n_envs`` parallel worlds, each loop iteration takes ``n_envs`` env steps
and then does ``updates_per_iter`` updates; the paper's setting is ``n_envs = 1,
updates_per_iter = 1`` (one update per env step).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from smpc_gym.agents.base import Algorithm, NullHooks, TrainHooks
from smpc_gym.agents.common.cadence import Cadence
from smpc_gym.agents.common.ou_noise import OUNoise
from smpc_gym.envs.supply_chain.game import StepResult, SupplyChainConfig, SupplyChainGame

AGENTS = ("player_0", "player_1")
N_FEATURES = 5  # private features per player (supply_chain.md)
ACTION_DIM = 2  # (price, quantity)


# ---------------------------------------------------------------------------------------
# Config
# ---------------------------------------------------------------------------------------
@dataclass
class Config:
    """MADDPG hyper-parameters; defaults are the paper's settings (agents.md).

    Attributes:
        hidden: width of both hidden layers of every actor and critic (paper: 128).
        batch_size: minibatch size (paper: 128).
        actor_lr: actor learning rate (paper: Adam 1e-4).
        critic_lr: critic learning rate (paper: Adam 1e-3).
        optimizer: ``"adam"`` (paper) or ``"sgd"`` (SGD with momentum; the secure twin
            implements both on shares).
        momentum: SGD momentum (only with ``optimizer="sgd"``).
        adam_eps: Adam's ε.
        gamma: discount γ (paper: 0.99).
        tau: soft target-update rate τ (paper: 0.01).
        buffer_size: replay capacity in transitions (paper: 1e6).
        learning_starts: env steps collected before the first update; never fewer than
            ``batch_size`` transitions are needed ("once the buffer holds a batch").
        ou_theta: Ornstein-Uhlenbeck θ (paper: 0.15).
        ou_sigma: Ornstein-Uhlenbeck σ, in fractions of each action cap (paper: 0.3).
        reward_scale: factor applied to rewards for training (paper: 1/100).
        train_reward: ``"ncr"`` trains on the per-step NCR increment (reward minus waste
            cost, so Σ over an episode is NCR, the paper's metric) or ``"reward"`` on the
            env's reward as returned.
        done_on_truncation: treat the end of an episode (``max_cycles``) as terminal for
            bootstrapping. True by default: the game really ends there (leftover stock is
            wasted at the final step) and the features carry no clock.
        n_envs: parallel worlds stepped per loop iteration (paper: 1).
        updates_per_iter: updates after each loop iteration (paper: 1).
        log_every: env steps between log rows.
    """

    hidden: int = 128
    batch_size: int = 128
    actor_lr: float = 1e-4
    critic_lr: float = 1e-3
    optimizer: str = "adam"
    momentum: float = 0.9
    adam_eps: float = 1e-8
    gamma: float = 0.99
    tau: float = 0.01
    buffer_size: int = 1_000_000
    learning_starts: int = 128
    ou_theta: float = 0.15
    ou_sigma: float = 0.3
    reward_scale: float = 0.01
    train_reward: str = "ncr"
    done_on_truncation: bool = True
    n_envs: int = 1
    updates_per_iter: int = 1
    log_every: int = 2000

    def __post_init__(self) -> None:
        if self.optimizer not in ("adam", "sgd"):
            raise ValueError(f"optimizer must be 'adam' or 'sgd', got {self.optimizer!r}")
        if self.train_reward not in ("ncr", "reward"):
            raise ValueError(f"train_reward must be 'ncr' or 'reward', got {self.train_reward!r}")
        for name in ("hidden", "batch_size", "buffer_size", "n_envs", "log_every"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if self.updates_per_iter < 0 or self.learning_starts < 0:
            raise ValueError(
                "updates_per_iter and learning_starts must be >= 0, got "
                f"{self.updates_per_iter!r}, {self.learning_starts!r}"
            )
        if not 0.0 <= self.gamma <= 1.0 or not 0.0 <= self.tau <= 1.0:
            raise ValueError(f"gamma and tau must be in [0, 1], got {self.gamma}, {self.tau}")
        if self.buffer_size < self.batch_size:
            raise ValueError(
                f"buffer_size ({self.buffer_size}) must be >= batch_size ({self.batch_size})"
            )


# ---------------------------------------------------------------------------------------
# Networks
# ---------------------------------------------------------------------------------------
class ScaleToCaps(nn.Module):
    """Multiplies a sigmoid output in [0, 1] by the action caps ``high``."""

    def __init__(self, high: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("high", torch.as_tensor(high, dtype=torch.float32).clone())

    high: torch.Tensor  # a registered buffer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x · high``."""
        return x * self.high


def _linear(in_dim: int, out_dim: int, generator: torch.Generator) -> nn.Linear:
    """``nn.Linear`` with PyTorch's default init U(±1/√fan_in), drawn from ``generator``."""
    layer = nn.utils.skip_init(nn.Linear, in_dim, out_dim)
    bound = 1.0 / math.sqrt(in_dim)
    with torch.no_grad():
        layer.weight.uniform_(-bound, bound, generator=generator)
        layer.bias.uniform_(-bound, bound, generator=generator)
    return layer


def make_actor(
    in_dim: int,
    hidden: int,
    action_high: Sequence[float] | torch.Tensor,
    generator: torch.Generator,
) -> nn.Sequential:
    """Actor ``in_dim → hidden → hidden → len(action_high)``: ReLU, ReLU, Sigmoid · caps.

    EDE: 10 → 128 → 128 → 2 (paper). NDS: 5 → 128 → 128 → 2.
    """
    high = torch.as_tensor(action_high, dtype=torch.float32)
    return nn.Sequential(
        _linear(in_dim, hidden, generator),
        nn.ReLU(),
        _linear(hidden, hidden, generator),
        nn.ReLU(),
        _linear(hidden, high.numel(), generator),
        nn.Sigmoid(),
        ScaleToCaps(high),
    )


def make_critic(in_dim: int, hidden: int, generator: torch.Generator) -> nn.Sequential:
    """Critic ``in_dim → hidden → hidden → 1``: ReLU, ReLU, identity.

    EDE: 14 → 128 → 128 → 1 (paper). NDS: 7 → 128 → 128 → 1.
    """
    return nn.Sequential(
        _linear(in_dim, hidden, generator),
        nn.ReLU(),
        _linear(hidden, hidden, generator),
        nn.ReLU(),
        _linear(hidden, 1, generator),
    )


# ---------------------------------------------------------------------------------------
# Who sees what
# ---------------------------------------------------------------------------------------
class DataSharing:
    """The inputs each player's networks see.

    ``"ede"`` (explicit data exchange): actor_i sees ``[x_0, x_1]``; critic_i sees
    ``[x_0, x_1, a_0/high_0, a_1/high_1]``. ``"nds"`` (no data sharing): actor_i sees
    ``x_i``; critic_i sees ``[x_i, a_i/high_i]``.
    """

    def __init__(self, mode: str, n_features: int = N_FEATURES, action_dim: int = ACTION_DIM):
        if mode not in ("ede", "nds"):
            raise ValueError(f"data sharing mode must be 'ede' or 'nds', got {mode!r}")
        self.mode = mode
        n_players = len(AGENTS)
        self.actor_in_dim = n_features * (n_players if mode == "ede" else 1)
        self.critic_in_dim = (n_features + action_dim) * (n_players if mode == "ede" else 1)

    def actor_input(self, i: int, features: Sequence[torch.Tensor]) -> torch.Tensor:
        """Actor i's input from the per-player feature tensors ``[B, 5]``."""
        return torch.cat(list(features), dim=1) if self.mode == "ede" else features[i]

    def critic_input(
        self,
        i: int,
        features: Sequence[torch.Tensor],
        actions: Sequence[torch.Tensor],
        inv_high: Sequence[torch.Tensor],
    ) -> torch.Tensor:
        """Critic i's input: features, then actions scaled by ``inv_high = 1/caps``."""
        if self.mode == "ede":
            scaled = [a * h for a, h in zip(actions, inv_high, strict=True)]
            return torch.cat([*features, *scaled], dim=1)
        return torch.cat([features[i], actions[i] * inv_high[i]], dim=1)


# ---------------------------------------------------------------------------------------
# Replay: one buffer per player, each with its own columns only
# ---------------------------------------------------------------------------------------
@dataclass
class PlayerBatch:
    """One player's columns of a minibatch (all float32, leading dimension B).

    The secure twin secret-shares each player's batch separately.
    """

    obs: torch.Tensor  # [B, 5] features at t
    next_obs: torch.Tensor  # [B, 5] features at t+1
    action: torch.Tensor  # [B, 2] action taken (env units)
    reward: torch.Tensor  # [B, 1] scaled training reward
    done: torch.Tensor  # [B, 1] 1.0 where t+1 is terminal


class PlayerReplay:
    """A circular replay buffer of one player's columns.

    Both players' buffers are filled in lockstep, so row k of each is the same
    transition; a minibatch is the same indices applied to each.
    """

    FIELDS: ClassVar[tuple[str, ...]] = ("obs", "next_obs", "action", "reward", "done")

    def __init__(self, capacity: int, n_features: int = N_FEATURES, action_dim: int = ACTION_DIM):
        self.capacity = int(capacity)
        self.dims = {"obs": n_features, "next_obs": n_features, "action": action_dim}
        self.data = {f: torch.zeros(0, self.dims.get(f, 1)) for f in self.FIELDS}
        self.pos = 0
        self.size = 0

    def _reserve(self, rows: int) -> None:
        """Grow the storage (doubling, up to ``capacity``) so it holds ``rows`` rows."""
        have = self.data["obs"].shape[0]
        if rows <= have:
            return
        new = min(self.capacity, max(rows, 2 * have, 1024))
        for f in self.FIELDS:
            grown = torch.zeros(new, self.dims.get(f, 1))
            grown[:have] = self.data[f]
            self.data[f] = grown

    def add(
        self,
        obs: torch.Tensor,
        next_obs: torch.Tensor,
        action: torch.Tensor,
        reward: torch.Tensor,
        done: torch.Tensor,
    ) -> None:
        """Append ``n`` rows (each argument has leading dimension ``n``)."""
        rows = {"obs": obs, "next_obs": next_obs, "action": action}
        rows["reward"] = reward.reshape(-1, 1)
        rows["done"] = done.reshape(-1, 1)
        n = obs.shape[0]
        self._reserve(min(self.capacity, self.size + n))
        idx = (self.pos + torch.arange(n)) % self.capacity
        for f in self.FIELDS:
            self.data[f][idx] = rows[f].to(torch.float32)
        self.pos = int((self.pos + n) % self.capacity)
        self.size = int(min(self.size + n, self.capacity))

    def get(self, indices: torch.Tensor) -> PlayerBatch:
        """The rows at ``indices`` as a :class:`PlayerBatch`."""
        return PlayerBatch(**{f: self.data[f][indices] for f in self.FIELDS})

    def state_dict(self) -> dict[str, Any]:
        """Filled rows only (a 1e6 buffer is not saved as 1e6 rows of zeros)."""
        return {
            "pos": self.pos,
            "size": self.size,
            **{f: self.data[f][: self.size].clone() for f in self.FIELDS},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        self.pos, self.size = int(state["pos"]), int(state["size"])
        self._reserve(self.size)
        for f in self.FIELDS:
            self.data[f][: self.size] = state[f]


def sample_indices(size: int, batch_size: int, generator: torch.Generator) -> torch.Tensor:
    """Minibatch indices, uniform with replacement, from the jointly seeded sampler.

    Only these indices would be exchanged in the clear in the secure version.
    """
    return torch.randint(0, size, (batch_size,), generator=generator)


# ---------------------------------------------------------------------------------------
# The update
# ---------------------------------------------------------------------------------------
@dataclass
class Nets:
    """Both players' online and target networks, and the action caps."""

    actors: list[nn.Module]
    critics: list[nn.Module]
    target_actors: list[nn.Module]
    target_critics: list[nn.Module]
    action_high: list[torch.Tensor]

    @property
    def inv_high(self) -> list[torch.Tensor]:
        """``1 / action_high`` per player (critic action scaling)."""
        return [1.0 / h for h in self.action_high]


@dataclass
class Optimisers:
    """One optimiser per network: ``actors[i]`` and ``critics[i]``."""

    actors: list[torch.optim.Optimizer]
    critics: list[torch.optim.Optimizer]


def make_optimiser(params: Any, lr: float, cfg: Config) -> torch.optim.Optimizer:
    """Adam (default) or SGD with momentum, as ``cfg.optimizer`` says."""
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, eps=cfg.adam_eps, foreach=True)
    return torch.optim.SGD(params, lr=lr, momentum=cfg.momentum, foreach=True)


def soft_update(target: nn.Module, online: nn.Module, tau: float) -> None:
    """``θ' ← (1 − τ)·θ' + τ·θ`` for every parameter (one fused op per list)."""
    with torch.no_grad():
        tps: list[torch.Tensor] = list(target.parameters())
        ps: list[torch.Tensor] = list(online.parameters())
        torch._foreach_mul_(tps, 1.0 - tau)
        torch._foreach_add_(tps, ps, alpha=tau)


def maddpg_update(
    nets: Nets,
    opts: Optimisers,
    batch: Sequence[PlayerBatch],
    cfg: Config,
    sharing: DataSharing,
) -> dict[str, float]:
    """One MADDPG update of both players, in the documented order (module docstring).

    Args:
        nets: online and target networks (updated in place).
        opts: their optimisers.
        batch: one :class:`PlayerBatch` per player, rows aligned (same indices).
        cfg: uses ``gamma`` and ``tau``.
        sharing: what each network sees (``"ede"`` or ``"nds"``).

    Returns:
        ``critic_loss_i``, ``actor_loss_i`` (= −mean Q) and ``q_mean_i`` per player i.
    """
    n = len(batch)
    obs = [b.obs for b in batch]
    next_obs = [b.next_obs for b in batch]
    actions = [b.action for b in batch]
    inv_high = nets.inv_high
    out: dict[str, float] = {}

    # 1. critics
    with torch.no_grad():
        next_actions = [nets.target_actors[j](sharing.actor_input(j, next_obs)) for j in range(n)]
    for i in range(n):
        with torch.no_grad():
            q_next = nets.target_critics[i](
                sharing.critic_input(i, next_obs, next_actions, inv_high)
            )
            y = batch[i].reward + cfg.gamma * (1.0 - batch[i].done) * q_next
        q = nets.critics[i](sharing.critic_input(i, obs, actions, inv_high))
        critic_loss = ((q - y) ** 2).mean()
        opts.critics[i].zero_grad()
        critic_loss.backward()
        opts.critics[i].step()
        out[f"critic_loss_{i}"] = float(critic_loss.detach())
        out[f"q_mean_{i}"] = float(q.detach().mean())

    # 2. actors
    for i in range(n):
        own = nets.actors[i](sharing.actor_input(i, obs))
        acts = [own if j == i else actions[j] for j in range(n)]
        actor_loss = -nets.critics[i](sharing.critic_input(i, obs, acts, inv_high)).mean()
        opts.actors[i].zero_grad()
        actor_loss.backward()
        opts.actors[i].step()
        out[f"actor_loss_{i}"] = float(actor_loss.detach())

    # 3. targets
    for i in range(n):
        soft_update(nets.target_actors[i], nets.actors[i], cfg.tau)
        soft_update(nets.target_critics[i], nets.critics[i], cfg.tau)
    return out


# ---------------------------------------------------------------------------------------
# The environment side: the pure batched game, n worlds at once, per-player tensors
# ---------------------------------------------------------------------------------------
def game_config(env_kwargs: Mapping[str, Any]) -> SupplyChainConfig:
    """The game parameters among ``env_kwargs`` (render options etc. are ignored)."""
    fields = SupplyChainConfig.field_names()
    return SupplyChainConfig.from_mapping({k: v for k, v in env_kwargs.items() if k in fields})


def action_caps(env_kwargs: Mapping[str, Any]) -> list[torch.Tensor]:
    """Per-player action caps ``[p_max_i, q_max]`` (the env's action-space highs)."""
    high = torch.as_tensor(game_config(env_kwargs).action_high, dtype=torch.float32)
    return [high[i].clone() for i in range(len(AGENTS))]


class SupplyChainWorlds:
    """``n`` SupplyChain episodes run by the batched game, as per-player tensors.

    This is the same dynamics as ``smpc_gym.supply_chain_v0.parallel_env`` without the
    per-world Python overhead. Every world has ``max_cycles`` steps, so all end together
    and are reset together from ``rng`` (the run is resumable from its state alone).
    """

    def __init__(self, env_kwargs: Mapping[str, Any], n: int, rng: np.random.Generator):
        self.game = SupplyChainGame(game_config(env_kwargs), n)
        self.rng = rng
        self.game.reset(rng)
        self.obs = self._features()

    def _features(self) -> list[torch.Tensor]:
        obs = torch.from_numpy(self.game.observations())
        return [obs[:, i].clone() for i in range(len(AGENTS))]

    def step(
        self, actions: Sequence[torch.Tensor]
    ) -> tuple[list[torch.Tensor], StepResult, list[dict[str, float]]]:
        """Step every world with per-player actions ``[n, 2]``.

        Returns ``(next_obs, result, finished)``: per-player ``[n, 5]`` features after the
        step, the game's :class:`StepResult`, and the metrics of every episode that ended
        (those worlds are then reset and ``self.obs`` holds their first features).
        """
        joint = torch.stack([a.detach() for a in actions], dim=1).double().numpy()
        result = self.game.step(joint, self.rng)
        next_obs = self._features()
        finished: list[dict[str, float]] = []
        if result.truncated.any():
            for k in np.flatnonzero(result.truncated):
                ep: dict[str, float] = {}
                for i in range(len(AGENTS)):
                    ep[f"reward_{i}"] = float(result.cum_reward[k, i])
                    ep[f"wastage_units_{i}"] = float(result.cum_waste[k, i])
                    ep[f"wastage_cost_{i}"] = float(result.cum_waste_cost[k, i])
                    ep[f"ncr_{i}"] = float(result.ncr[k, i])
                finished.append(ep)
            self.game.reset(self.rng, mask=result.truncated)
            self.obs = self._features()
        else:
            self.obs = [o.clone() for o in next_obs]
        return next_obs, result, finished

    def close(self) -> None:
        """Nothing to release (kept for symmetry with env wrappers)."""


# ---------------------------------------------------------------------------------------
# The algorithm
# ---------------------------------------------------------------------------------------
class MADDPG(Algorithm):
    """MADDPG with explicit data exchange (EDE) on SupplyChain.

    Two players, each with an actor and a centralised critic (plus targets) over both
    players' features and actions; trained with one update per env step (paper setting)
    from a per-player replay buffer sampled with a shared, jointly seeded index generator.
    Exploration: per-player Ornstein-Uhlenbeck noise in fractions of the action caps.
    ``act`` is greedy (no noise) unless ``deterministic=False``.

    Seeds: ``seed`` is split with ``np.random.SeedSequence`` into one generator per
    player (network init, OU noise), one for minibatch indices, and one for env resets.
    """

    name: ClassVar[str] = "maddpg"
    envs: ClassVar[tuple[str, ...]] = ("supply_chain",)
    Config: ClassVar[type] = Config
    sharing_mode: ClassVar[str] = "ede"

    def __init__(self, config: Any, env_kwargs: Mapping[str, Any], seed: int) -> None:
        super().__init__(config, env_kwargs, seed)
        cfg = self.config
        self.sharing = DataSharing(self.sharing_mode)
        seeds = np.random.SeedSequence(self.seed).generate_state(8)
        init_gens = [torch.Generator().manual_seed(int(seeds[i])) for i in range(2)]
        self.noise_gens = [torch.Generator().manual_seed(int(seeds[2 + i])) for i in range(2)]
        self.sampler = torch.Generator().manual_seed(int(seeds[4]))
        self.env_rng = np.random.default_rng(int(seeds[5]))
        high = action_caps(self.env_kwargs)

        actors: list[nn.Module] = []
        critics: list[nn.Module] = []
        for i in range(len(AGENTS)):
            actors.append(make_actor(self.sharing.actor_in_dim, cfg.hidden, high[i], init_gens[i]))
            critics.append(make_critic(self.sharing.critic_in_dim, cfg.hidden, init_gens[i]))
        self.nets = Nets(
            actors=actors,
            critics=critics,
            target_actors=[_copy(a) for a in actors],
            target_critics=[_copy(c) for c in critics],
            action_high=high,
        )
        self.opts = Optimisers(
            actors=[make_optimiser(a.parameters(), cfg.actor_lr, cfg) for a in actors],
            critics=[make_optimiser(c.parameters(), cfg.critic_lr, cfg) for c in critics],
        )
        self.replay = [PlayerReplay(cfg.buffer_size) for _ in AGENTS]
        self.noise = [
            OUNoise(ACTION_DIM, cfg.ou_theta, cfg.ou_sigma, g, n_envs=cfg.n_envs)
            for g in self.noise_gens
        ]
        self.episodes = 0
        self.updates = 0

    # -- acting -------------------------------------------------------------------------
    def _policy(self, features: Sequence[torch.Tensor], noise: bool) -> list[torch.Tensor]:
        """Per-player actions ``[n, 2]`` for stacked per-player features."""
        out = []
        with torch.no_grad():
            for i in range(len(AGENTS)):
                a = self.nets.actors[i](self.sharing.actor_input(i, features))
                if noise:
                    high = self.nets.action_high[i]
                    a = torch.clamp(a + self.noise[i].sample() * high, min=0.0)
                    a = torch.minimum(a, high)
                out.append(a)
        return out

    def policy(self, features: np.ndarray) -> np.ndarray:
        """Greedy batched policy: features ``(B, 2, 5)`` → actions ``(B, 2, 2)``.

        The form :func:`smpc_gym.agents.common.supply_chain_eval.evaluate` takes.
        """
        x = torch.as_tensor(np.asarray(features), dtype=torch.float32)
        acts = self._policy([x[:, i] for i in range(len(AGENTS))], noise=False)
        return torch.stack(acts, dim=1).numpy()

    def act(self, obs: Any, deterministic: bool = True) -> dict[str, np.ndarray]:
        """``{agent: action}`` for the parallel env's ``{agent: obs}`` dict.

        Greedy by default; ``deterministic=False`` adds a Gaussian perturbation of
        ``ou_sigma`` times the caps, from the player's noise generator (the OU process
        state belongs to training and is not touched).
        """
        feats = [torch.as_tensor(np.asarray(obs[a]), dtype=torch.float32)[None] for a in AGENTS]
        acts = self._policy(feats, noise=False)
        result = {}
        for i, a in enumerate(AGENTS):
            act = acts[i][0]
            if not deterministic:
                high = self.nets.action_high[i]
                eps = torch.randn(act.shape, generator=self.noise_gens[i])
                act = torch.minimum(
                    torch.clamp(act + self.config.ou_sigma * high * eps, min=0.0), high
                )
            result[a] = act.numpy().astype(np.float32)
        return result

    # -- training -----------------------------------------------------------------------
    def train(self, total_steps: int, hooks: TrainHooks) -> None:
        """Train until ``env_steps >= total_steps`` (see the module docstring for units)."""
        cfg = self.config
        worlds = SupplyChainWorlds(self.env_kwargs, cfg.n_envs, self.env_rng)
        for nz in self.noise:
            nz.reset()
        window: list[dict[str, float]] = []
        losses: dict[str, list[float]] = {}
        cadence = Cadence(hooks, cfg.log_every, self.env_steps, total_steps)

        def row() -> dict[str, float]:
            nonlocal window, losses
            out = self._log_row(window, losses)
            window, losses = [], {}
            return out

        try:
            while self.env_steps < total_steps:
                feats = [o.clone() for o in worlds.obs]
                actions = self._policy(feats, noise=True)
                next_obs, result, finished = worlds.step(actions)
                ended = torch.from_numpy(result.truncated)
                done = ended.float() if cfg.done_on_truncation else torch.zeros(len(ended))
                reward = result.reward
                if cfg.train_reward == "ncr":
                    reward = reward - result.waste_cost
                reward_t = torch.from_numpy(reward * cfg.reward_scale).float()
                for i in range(len(AGENTS)):
                    self.replay[i].add(feats[i], next_obs[i], actions[i], reward_t[:, i], done)
                if bool(ended.any()):
                    for nz in self.noise:
                        nz.reset(ended)
                self.env_steps += cfg.n_envs
                self.episodes += len(finished)
                window.extend(finished)

                size = self.replay[0].size
                if size >= max(cfg.batch_size, cfg.learning_starts):
                    for _ in range(cfg.updates_per_iter):
                        idx = sample_indices(size, cfg.batch_size, self.sampler)
                        batch = [r.get(idx) for r in self.replay]
                        stats = maddpg_update(self.nets, self.opts, batch, cfg, self.sharing)
                        self.updates += 1
                        for k, v in stats.items():
                            losses.setdefault(k, []).append(v)

                if cadence.after_step(self.env_steps, row):
                    break
        finally:
            worlds.close()

    def _log_row(
        self, episodes: list[dict[str, float]], losses: Mapping[str, list[float]]
    ) -> dict[str, float]:
        row: dict[str, float] = {"episodes": float(self.episodes), "updates": float(self.updates)}
        if episodes:
            for key in episodes[0]:
                row[key] = float(np.mean([ep[key] for ep in episodes]))
            row["total_reward"] = row["reward_0"] + row["reward_1"]
            row["total_ncr"] = row["ncr_0"] + row["ncr_1"]
        for k, v in losses.items():
            row[k] = float(np.mean(v))
        return row

    # -- state ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Weights, optimiser states, replay, OU states, generators and counters."""
        n = self.nets
        return {
            "env_steps": self.env_steps,
            "episodes": self.episodes,
            "updates": self.updates,
            "actors": [m.state_dict() for m in n.actors],
            "critics": [m.state_dict() for m in n.critics],
            "target_actors": [m.state_dict() for m in n.target_actors],
            "target_critics": [m.state_dict() for m in n.target_critics],
            "actor_opts": [o.state_dict() for o in self.opts.actors],
            "critic_opts": [o.state_dict() for o in self.opts.critics],
            "replay": [r.state_dict() for r in self.replay],
            "noise": [nz.state_dict() for nz in self.noise],
            "sampler": self.sampler.get_state(),
            "env_rng": _plain(self.env_rng.bit_generator.state),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        n = self.nets
        self.env_steps = int(state["env_steps"])
        self.episodes = int(state["episodes"])
        self.updates = int(state["updates"])
        pairs: tuple[tuple[Sequence[Any], str], ...] = (
            (n.actors, "actors"),
            (n.critics, "critics"),
            (n.target_actors, "target_actors"),
            (n.target_critics, "target_critics"),
            (self.opts.actors, "actor_opts"),
            (self.opts.critics, "critic_opts"),
            (self.replay, "replay"),
            (self.noise, "noise"),
        )
        for mods, key in pairs:
            for m, s in zip(mods, state[key], strict=True):
                m.load_state_dict(s)
        self.sampler.set_state(state["sampler"])
        self.env_rng.bit_generator.state = state["env_rng"]


def _copy(module: nn.Module) -> nn.Module:
    """A detached deep copy (target network)."""
    import copy

    target = copy.deepcopy(module)
    for p in target.parameters():
        p.requires_grad_(False)
    return target


def _plain(value: Any) -> Any:
    """numpy scalars inside a bit-generator state → plain Python values."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    return value


# ---------------------------------------------------------------------------------------
# Pre-training for the secure pipeline
# ---------------------------------------------------------------------------------------
def pretrain_config(base: Config, overrides: Mapping[str, Any]) -> Config:
    """``base`` with the pre-training ``overrides`` applied (unknown keys are an error).

    The secure pipeline (:mod:`smpc_gym.agents.secure_maddpg`) pre-trains with its own
    optimiser, learning rates and ``n_envs``/``updates_per_iter`` while the secure phase
    keeps the run's; this builds the pre-training config from the run's plaintext fields.
    """
    valid = {f.name for f in dataclasses.fields(Config)}
    unknown = sorted(set(overrides) - valid)
    if unknown:
        raise ValueError(
            f"unknown pre-training config key(s) {unknown}; valid: {', '.join(sorted(valid))}"
        )
    return dataclasses.replace(base, **dict(overrides))


#: Seed of the simulated-market episodes on which :func:`pretrain` scores its snapshots:
#: public, the same episodes at every check, apart from the runner's evaluation seeds.
SELECT_SEED = 20_261_202


class _KeepBest(NullHooks):
    """Pre-training hooks that keep the best snapshot; every other call goes to ``inner``.

    Every ``every`` env steps, and at the last step, the greedy policy plays ``episodes``
    episodes of the simulated market ``env_kwargs`` (from :data:`SELECT_SEED`, so every
    check faces the same episodes); the algorithm's whole state is copied whenever their
    mean total NCR beats every earlier check's. The checks draw from no generator of the
    algorithm, so training goes exactly as it would without them. Each score is added to
    the log row as ``select/total_ncr``.
    """

    def __init__(
        self,
        algo: MADDPG,
        env_kwargs: Mapping[str, Any],
        every: int,
        episodes: int,
        total: int,
        inner: TrainHooks,
    ) -> None:
        self.algo, self.inner = algo, inner
        self.config = game_config(env_kwargs)
        self.every, self.episodes, self.total = int(every), int(episodes), int(total)
        self.next = self.every
        self.best_score = -math.inf
        self.best_step = -1
        self.best_state: dict[str, Any] | None = None

    def should_evaluate(self, step: int) -> bool:
        return step >= self.next or step >= self.total

    def next_evaluation(self, step: int) -> int | None:
        return min(self.next, self.total)

    def evaluate(self, step: int) -> Mapping[str, float]:
        import copy

        self.next = (step // self.every + 1) * self.every
        game = SupplyChainGame(self.config, self.episodes)
        result = game.play(self.algo.policy, np.random.default_rng(SELECT_SEED))
        score = float(result.ncr.sum(axis=1).mean())
        if score > self.best_score:
            self.best_score, self.best_step = score, int(step)
            self.best_state = copy.deepcopy(self.algo.state_dict())
        return {"select/total_ncr": score}

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        self.inner.log(step, metrics)

    def should_checkpoint(self, step: int) -> bool:
        return bool(self.inner.should_checkpoint(step))

    def checkpoint(self, step: int) -> None:
        self.inner.checkpoint(step)

    def stop_requested(self) -> bool:
        return bool(self.inner.stop_requested())


def pretrain(
    cfg: Config,
    env_kwargs: Mapping[str, Any],
    seed: int,
    steps: int,
    cls: type[MADDPG] | None = None,
    hooks: TrainHooks | None = None,
    select_every: int = 0,
    select_episodes: int = 20,
) -> MADDPG:
    """Plaintext EDE MADDPG trained ``steps`` env steps on the game ``env_kwargs``.

    The first phase of the secure pipeline, run identically by both parties on the
    simulated (public) market: it is deterministic given its arguments with one torch
    thread, so both parties hold the same networks afterwards and neither learns anything
    private from them. ``cls``: :class:`MADDPG` (default) or a subclass such as
    :class:`smpc_gym.agents.nds.NDS` (for same-budget baselines). ``hooks`` receive the log
    rows (progress display; default: none).

    ``select_every > 0`` keeps the best snapshot: every ``select_every`` env steps and at
    the end, the greedy policy is scored on ``select_episodes`` fixed episodes of the same
    simulated market (mean total NCR), and the returned algorithm is restored to the
    whole state (networks, optimisers, replay, counters) of the best-scoring check, so its
    ``env_steps`` says which step was kept. MADDPG on this game can collapse and recover
    within a few thousand updates, and where a run ends depends on floating-point
    rounding; a collapse late in the run no longer decides the result (which snapshot is
    best still depends on the rounding). Everything the choice reads is public. ``0``
    returns the last step's state.
    """
    if int(select_every) < 0 or int(select_episodes) < 1:
        raise ValueError(
            f"select_every must be >= 0 and select_episodes >= 1, got {select_every!r} and "
            f"{select_episodes!r}"
        )
    sim = (cls or MADDPG)(cfg, dict(env_kwargs), int(seed))
    if steps <= 0:
        return sim
    inner = hooks or NullHooks()
    if not select_every:
        sim.train(int(steps), inner)
        return sim
    keep = _KeepBest(sim, env_kwargs, select_every, select_episodes, steps, inner)
    sim.train(int(steps), keep)
    if keep.best_state is not None and keep.best_step != sim.env_steps:
        sim.load_state_dict(keep.best_state)
    return sim


def pretrain_for(
    cfg: Any,
    env_kwargs: Mapping[str, Any],
    seed: int,
    cls: type[MADDPG] | None = None,
    hooks: TrainHooks | None = None,
) -> MADDPG:
    """The secure pipeline's pre-training for a secure run's config ``cfg``.

    ``cfg`` is a :class:`smpc_gym.agents.secure_maddpg.Config` (read: ``plain()``,
    ``pretrain_config``, ``pretrain_env``, ``pretrain_steps``, ``pretrain_select_every``,
    ``pretrain_select_episodes``); ``env_kwargs`` are the
    private game's parameters, to which ``pretrain_env`` is applied. Both parties call
    this, and so do the evaluation of a finished run and ``benchmarks/paper_table.py``.
    ``hooks``: as for :func:`pretrain`.
    """
    return pretrain(
        pretrain_config(cfg.plain(), cfg.pretrain_config),
        {**dict(env_kwargs), **dict(cfg.pretrain_env)},
        seed,
        cfg.pretrain_steps,
        cls,
        hooks,
        cfg.pretrain_select_every,
        cfg.pretrain_select_episodes,
    )
