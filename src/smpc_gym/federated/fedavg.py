"""Plaintext FedAvg and state-dict <-> vector flattening.

:func:`fedavg` is the baseline aggregation of McMahan et al.: the sample-weighted mean of
the holders' ``state_dict`` s. :func:`flatten_state` / :func:`unflatten_state` turn a
state dict into one float vector and back, so that secure aggregation
(:mod:`smpc_gym.federated.secure_agg`) and DP clipping (:mod:`smpc_gym.federated.dp`)
work on a single tensor.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

__all__ = ["check_compatible", "fedavg", "flatten_state", "unflatten_state"]


def check_compatible(state_dicts: Sequence[Mapping[str, torch.Tensor]]) -> None:
    """Raise ``ValueError`` unless every state dict has the first one's keys and shapes."""
    if len(state_dicts) == 0:
        raise ValueError("need at least one state_dict, got an empty sequence")
    ref = state_dicts[0]
    for i, sd in enumerate(state_dicts[1:], start=1):
        if set(sd.keys()) != set(ref.keys()):
            missing = sorted(set(ref) - set(sd))
            extra = sorted(set(sd) - set(ref))
            raise ValueError(
                f"state_dict {i} has different keys from state_dict 0: "
                f"missing {missing}, unexpected {extra}"
            )
        for k, v in ref.items():
            if tuple(sd[k].shape) != tuple(v.shape):
                raise ValueError(
                    f"state_dict {i}[{k!r}] has shape {tuple(sd[k].shape)}, "
                    f"state_dict 0 has {tuple(v.shape)}"
                )


def fedavg(
    state_dicts: Sequence[Mapping[str, torch.Tensor]], weights: Sequence[float]
) -> dict[str, torch.Tensor]:
    """Weighted mean of state dicts (FedAvg); weights are e.g. the holders' sample counts.

    Weights must be finite, >= 0 and not all zero; they are normalised to sum to one.
    Floating tensors are averaged (in float64, cast back to their dtype); integer tensors
    (e.g. BatchNorm's ``num_batches_tracked``) are taken from the first state dict.

    Raises:
        ValueError: on empty input, a weights/state-dict count mismatch, negative or
            all-zero weights, or state dicts whose keys or shapes differ.
    """
    check_compatible(state_dicts)
    if len(weights) != len(state_dicts):
        raise ValueError(
            f"got {len(state_dicts)} state_dicts but {len(weights)} weights; need one each"
        )
    w = torch.as_tensor([float(x) for x in weights], dtype=torch.float64)
    if not torch.isfinite(w).all() or (w < 0).any():
        raise ValueError(f"weights must be finite and >= 0, got {list(weights)}")
    total = float(w.sum())
    if total <= 0:
        raise ValueError(f"weights must not all be zero, got {list(weights)}")
    w = w / total
    out: dict[str, torch.Tensor] = {}
    for k, v0 in state_dicts[0].items():
        if not torch.is_floating_point(v0):
            out[k] = v0.detach().clone()
            continue
        acc = torch.zeros(v0.shape, dtype=torch.float64)
        for wi, sd in zip(w.tolist(), state_dicts, strict=True):
            acc += wi * sd[k].detach().to(torch.float64)
        out[k] = acc.to(v0.dtype)
    return out


def flatten_state(state_dict: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Concatenate the floating tensors of a state dict (in key order) into one 1-D vector.

    The vector has the dtype of ``torch.result_type`` over the entries (float32 for a
    usual network). Non-floating entries are skipped (they are not averaged).
    """
    parts = [v.detach().reshape(-1) for v in state_dict.values() if torch.is_floating_point(v)]
    if not parts:
        return torch.zeros(0)
    dtype = parts[0].dtype
    for p in parts[1:]:
        dtype = torch.promote_types(dtype, p.dtype)
    return torch.cat([p.to(dtype) for p in parts])


def unflatten_state(
    vector: torch.Tensor, like_state_dict: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Inverse of :func:`flatten_state`: split ``vector`` into tensors shaped like the template.

    Floating entries take their values from ``vector`` (cast to the template's dtype);
    non-floating entries are copied from the template.

    Raises:
        ValueError: if ``vector`` is not 1-D or its length differs from the template's
            number of floating-point elements.
    """
    if vector.dim() != 1:
        raise ValueError(f"vector must be 1-D, got shape {tuple(vector.shape)}")
    n = sum(v.numel() for v in like_state_dict.values() if torch.is_floating_point(v))
    if vector.numel() != n:
        raise ValueError(
            f"vector has {vector.numel()} elements but the template state_dict has {n} "
            "floating-point elements"
        )
    out: dict[str, torch.Tensor] = {}
    i = 0
    for k, v in like_state_dict.items():
        if torch.is_floating_point(v):
            out[k] = vector[i : i + v.numel()].reshape(v.shape).to(v.dtype).clone()
            i += v.numel()
        else:
            out[k] = v.detach().clone()
    return out
