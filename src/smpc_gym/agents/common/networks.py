"""Small network builders with explicit, generator-driven initialisation.

``torch.nn.Linear`` initialises its weights from torch's *global* RNG; the project rule
is that seeds go through passed-in generators, so :func:`mlp` re-initialises every layer
from the given ``torch.Generator`` with the same distribution as PyTorch's default
(Kaiming-uniform weights, uniform biases in ``±1/sqrt(fan_in)``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
}


def init_linear_(layer: nn.Linear, generator: torch.Generator) -> None:
    """Re-initialise ``layer`` in place like PyTorch's default, drawing from ``generator``."""
    nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
    if layer.bias is not None:
        bound = 1.0 / math.sqrt(layer.in_features) if layer.in_features > 0 else 0.0
        with torch.no_grad():
            layer.bias.uniform_(-bound, bound, generator=generator)


def mlp(
    in_dim: int,
    hidden: Sequence[int],
    out_dim: int,
    generator: torch.Generator,
    activation: str = "relu",
) -> nn.Sequential:
    """A fully connected network ``in_dim → hidden... → out_dim`` (no output activation).

    Args:
        in_dim: input features.
        hidden: sizes of the hidden layers (may be empty: a linear model).
        out_dim: output features.
        generator: seeds the initial weights (no global RNG is touched).
        activation: one of ``relu``, ``tanh``, ``elu``, ``leaky_relu``.
    """
    if activation not in _ACTIVATIONS:
        raise ValueError(
            f"unknown activation {activation!r}; choose one of: {', '.join(_ACTIVATIONS)}"
        )
    sizes = [int(in_dim), *(int(h) for h in hidden), int(out_dim)]
    if any(s <= 0 for s in sizes):
        raise ValueError(f"layer sizes must be positive, got {sizes}")
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        lin = nn.Linear(sizes[i], sizes[i + 1])
        init_linear_(lin, generator)
        layers.append(lin)
        if i < len(sizes) - 2:
            layers.append(_ACTIVATIONS[activation]())
    return nn.Sequential(*layers)
