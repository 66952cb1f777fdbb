"""How an algorithm's parties are launched: all on this machine, or this process as one.

A secure algorithm runs ``world_size`` party processes. ``train.py`` starts them in one
of two ways, and this module is the one place that tells them apart:

* **local** (no ``--rank``): :func:`smpc_gym.secure.runtime.launch_local` spawns every
  party on this machine, on a fresh loopback rendezvous;
* **one party per process** (``--rank R --world-size N --rendezvous tcp://HOST:PORT``,
  or the ``SMPC_*`` environment variables): this process becomes party ``R`` through
  :func:`smpc_gym.secure.runtime.run_party`, and the other parties run elsewhere.

:func:`party_config_for` turns an algorithm's ``launch_options`` (what ``train.py``'s
launch flags put in the run config) into this process's
:class:`~smpc_gym.secure.runtime.PartyConfig`, or None for a local launch;
:func:`run_parties` runs a party function either way and returns the results this
process sees, by rank. Nothing here reveals anything: it only decides which process runs
which party.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from smpc_gym.secure.runtime import PartyConfig, launch_local, run_party

__all__ = ["party_config_for", "run_parties"]

T = TypeVar("T")


def party_config_for(
    launch_options: Mapping[str, Any],
    world_size: int,
    *,
    timeout_s: float,
    provider: str,
    algo: str,
) -> PartyConfig | None:
    """This process's party config when it runs one party, else None (local launch).

    ``launch_options`` with a ``rank`` mean one party per process; ``world_size`` and
    ``rendezvous`` come from the options, else from ``SMPC_WORLD_SIZE`` /
    ``SMPC_RENDEZVOUS``, else ``world_size`` and none. ``algo`` names the algorithm in
    the error raised when the group's size is not the ``world_size`` it needs.
    """
    if "rank" not in launch_options:
        return None
    config = PartyConfig.from_env(
        world_size=int(launch_options.get("world_size", world_size)),
        rank=int(launch_options["rank"]),
        rendezvous=launch_options.get("rendezvous"),
        timeout_s=timeout_s,
        provider=provider,
    )
    if config.world_size != world_size:
        raise ValueError(
            f"{algo} runs {world_size} parties; got --world-size {config.world_size} "
            f"(use --world-size {world_size})"
        )
    return config


def run_parties(
    fn: Callable[..., T],
    world_size: int,
    args: tuple,
    launch_options: Mapping[str, Any],
    *,
    timeout_s: float,
    provider: str,
    algo: str,
) -> dict[int, T]:
    """Run ``fn(ctx, *args)`` in every party locally, or in this process's one party.

    Returns ``{rank: result}``: every rank for a local launch, this process's rank only
    otherwise. Failures raise :class:`~smpc_gym.secure.runtime.PartyError` naming the rank.
    """
    config = party_config_for(
        launch_options, world_size, timeout_s=timeout_s, provider=provider, algo=algo
    )
    if config is not None:
        return {int(config.rank or 0): run_party(fn, config, args)}
    local = PartyConfig(world_size, timeout_s=timeout_s, provider=provider)
    return dict(enumerate(launch_local(fn, world_size, args, config=local)))
