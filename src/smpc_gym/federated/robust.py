"""Byzantine-robust aggregation rules over an ``(N, D)`` tensor of holder updates.

Every rule takes ``updates`` (one row per holder) and ``f``, the number of holders that
may be Byzantine, and returns one ``(D,)`` aggregate (float64):

* :func:`coordinate_median` — per coordinate, the median of the N values (the mean of the
  two middle values when N is even). Tolerates ``f < N/2``.
* :func:`trimmed_mean` — per coordinate, drop the ``f`` largest and ``f`` smallest values
  and average the rest (Yin et al. 2018). Needs ``N > 2f``.
* :func:`krum` / :func:`multi_krum` — score each update by the sum of squared distances
  to its ``N - f - 2`` nearest other updates; Krum returns the update with the lowest
  score, multi-Krum the mean of the ``m`` lowest-scoring ones (Blanchard, El Mhamdi,
  Guerraoui & Stainer 2017). Needs ``N > 2f + 2``.
* :func:`bulyan` — El Mhamdi, Guerraoui & Rouault 2018: (1) *selection*: apply Krum
  ``θ = N - 2f`` times, each time moving the winner from the remaining set to the selected
  set; (2) *aggregation*: per coordinate, average the ``β = θ - 2f`` selected values closest
  to the coordinate's median. Needs ``N ≥ 4f + 3``.
* :func:`mean` — the plain (non-robust) mean, the baseline.

:func:`aggregate` dispatches by name (``RULES``). All rules raise ``ValueError`` naming
the bad N or f and the smallest N the rule accepts.

Which rules can run on secret shares
------------------------------------
Under additive secret sharing (CrypTen, semi-honest), additions and multiplications by
public constants are free (local), a multiplication of two shared values costs one round
of Beaver-triple openings, and every *comparison* costs a conversion from arithmetic to
binary shares and a log-depth adder circuit: with 64-bit rings that is about
``log2(64) + 1 = 7`` communication rounds and O(64) bits of traffic per compared element
per party (with P > 2 parties, CrypTen adds the P binary shares with a tree of such
adders: ≈ 20 rounds for P = 6) — far more than the one ``reduce`` of secure summation.
So the number of *comparison layers* (sequential batches of comparisons) is what a
protocol on shares must minimise; the number of compared elements matters much less.

* **Mean / FedAvg**: only additions → the secure sum of :mod:`smpc_gym.federated.secure_agg`.
* **Coordinate median and trimmed mean**: need per-coordinate sorting of N values. An
  oblivious sorting network (odd-even transposition: N rounds of ``N/2``
  compare-exchanges; Batcher: ``O(log² N)`` layers) runs all D coordinates in parallel,
  so the cost is ``O(N² D)`` comparisons (odd-even) in ``O(N)`` comparison layers; the
  result reveals only the median (or the trimmed mean) — **implemented**:
  :func:`~smpc_gym.federated.secure_robust.secure_coordinate_median`,
  :func:`~smpc_gym.federated.secure_robust.secure_trimmed_mean`.
* **Krum**: **implemented** on shares
  (:func:`~smpc_gym.federated.secure_robust.secure_krum`). Pairwise squared distances are
  local differences plus *one* batched Beaver squaring of ``N(N-1)/2 × D`` values (no
  comparison at all, and no truncation: distances stay exact on the ring, so ties stay
  ties). Selection needs only a *constant* number of comparison layers, independent of N
  and D: the ranks of each holder's ``N - 1`` distances from one batched comparison of all
  pairs, ``[rank < N - f - 2]`` from a second, the scores by one exact multiplication, and
  the argmin from a third (all pairs of scores) plus a ``log2 N``-deep AND tree; the winner
  is picked obliviously (one-hot × updates). ``O(N² D)`` multiplications,
  ``O(N³)`` compared elements. Only the selected update is revealed — not the distances,
  scores or the winner's index (:mod:`~smpc_gym.federated.secure_robust` argues why);
  :func:`~smpc_gym.federated.secure_robust.secure_krum_shares` reveals nothing.
* **Multi-Krum**: the same scores, then the one-hot of the ``m`` lowest (``[rank < m]``
  over the scores: one more comparison layer) times the updates — straightforward from the
  Krum pieces, not implemented.
* **Bulyan**: ``N - 2f`` iterated Krum rounds on shares (each removing the winner
  obliviously) plus a per-coordinate sort and a "closest to the median" selection: possible
  in principle, ``O(N³ D)`` work and ``O(N)`` sequential Krum selections of comparison
  layers; in this package it needs plaintext updates.

The plaintext rules in this module therefore require the coordinator to *see* each holder's
update — exactly what secure aggregation hides; the gradient-inversion attack
(:mod:`smpc_gym.studies.attacks`) measures what that costs in privacy.
"""

from __future__ import annotations

import torch

__all__ = [
    "RULES",
    "aggregate",
    "bulyan",
    "coordinate_median",
    "krum",
    "krum_scores",
    "mean",
    "min_holders",
    "multi_krum",
    "trimmed_mean",
]

#: Names accepted by :func:`aggregate`.
RULES = ("mean", "median", "trimmed_mean", "krum", "multi_krum", "bulyan")


def min_holders(rule: str, f: int) -> int:
    """The smallest number of holders ``N`` for which ``rule`` tolerates ``f`` Byzantine."""
    if rule not in RULES:
        raise ValueError(f"unknown aggregation rule {rule!r}; choose one of {RULES}")
    if f < 0:
        raise ValueError(f"f (Byzantine holders) must be >= 0, got {f}")
    return {
        "mean": 1,
        "median": 2 * f + 1,
        "trimmed_mean": 2 * f + 1,
        "krum": 2 * f + 3,
        "multi_krum": 2 * f + 3,
        "bulyan": 4 * f + 3,
    }[rule]


def _check(updates: torch.Tensor, f: int, rule: str) -> torch.Tensor:
    if not torch.is_tensor(updates) or updates.dim() != 2:
        raise ValueError(
            f"{rule}: updates must be a 2-D (N holders, D parameters) tensor, got "
            f"{type(updates).__name__} of shape {tuple(getattr(updates, 'shape', ()))}"
        )
    if not isinstance(f, int) or f < 0:
        raise ValueError(f"{rule}: f (Byzantine holders) must be an integer >= 0, got {f!r}")
    n = updates.shape[0]
    need = min_holders(rule, f)
    if n < need:
        raise ValueError(
            f"{rule} with f={f} Byzantine holders needs N >= {need} updates, got N={n}"
        )
    x = updates.detach().to(torch.float64)
    if not torch.isfinite(x).all():
        raise ValueError(f"{rule}: updates contain NaN or inf")
    return x


def mean(updates: torch.Tensor, f: int = 0) -> torch.Tensor:
    """Plain coordinate-wise mean (not robust: one holder can move it arbitrarily)."""
    return _check(updates, f, "mean").mean(0)


def coordinate_median(updates: torch.Tensor, f: int = 0) -> torch.Tensor:
    """Per-coordinate median (average of the two middle values for even N)."""
    x = _check(updates, f, "median")
    s, _ = torch.sort(x, dim=0)
    n = x.shape[0]
    if n % 2 == 1:
        return s[n // 2].clone()
    return 0.5 * (s[n // 2 - 1] + s[n // 2])


def trimmed_mean(updates: torch.Tensor, f: int) -> torch.Tensor:
    """Per coordinate, drop the ``f`` smallest and ``f`` largest values, average the rest."""
    x = _check(updates, f, "trimmed_mean")
    s, _ = torch.sort(x, dim=0)
    return s[f : x.shape[0] - f].mean(0)


def _sq_distances(x: torch.Tensor) -> torch.Tensor:
    # exact pairwise squared L2 distances (no Gram-matrix cancellation), one row at a time
    # so memory stays O(N·D) rather than O(N²·D)
    return torch.stack([((x - x[i]) ** 2).sum(1) for i in range(x.shape[0])])


def krum_scores(updates: torch.Tensor, f: int, neighbours: int | None = None) -> torch.Tensor:
    """Krum score of each update: the sum of squared distances to its ``N - f - 2``
    nearest other updates (or ``neighbours`` if given, at least 1)."""
    x = updates.detach().to(torch.float64)
    n = x.shape[0]
    k = n - f - 2 if neighbours is None else neighbours
    k = max(1, min(k, n - 1))
    d = _sq_distances(x)
    d.fill_diagonal_(float("inf"))
    nearest, _ = torch.topk(d, k, dim=1, largest=False)
    return nearest.sum(1)


def krum(updates: torch.Tensor, f: int, return_index: bool = False) -> torch.Tensor | tuple:
    """Krum: the single update with the lowest :func:`krum_scores` (ties: lowest index).

    With ``return_index=True`` returns ``(aggregate, index)``.
    """
    x = _check(updates, f, "krum")
    scores = krum_scores(x, f)
    i = int(torch.argmin(scores))
    return (x[i].clone(), i) if return_index else x[i].clone()


def multi_krum(updates: torch.Tensor, f: int, m: int | None = None) -> torch.Tensor:
    """Multi-Krum: mean of the ``m`` updates with the lowest Krum scores (default
    ``m = N - f``; ``m = 1`` is Krum)."""
    x = _check(updates, f, "multi_krum")
    n = x.shape[0]
    m = n - f if m is None else m
    if not 1 <= m <= n:
        raise ValueError(f"multi_krum: m must be in [1, N={n}], got {m}")
    order = torch.argsort(krum_scores(x, f), stable=True)
    return x[order[:m]].mean(0)


def bulyan_select(updates: torch.Tensor, f: int) -> list[int]:
    """Bulyan's selection phase: indices of the ``θ = N - 2f`` updates picked by
    iterated Krum (in the order picked).

    Each iteration runs Krum on the *remaining* updates; once fewer than ``2f + 3`` remain,
    the neighbour count ``|R| - f - 2`` is floored at 1 (the last picks compare each
    candidate with its nearest remaining neighbour).
    """
    x = _check(updates, f, "bulyan")
    n = x.shape[0]
    remaining = list(range(n))
    selected: list[int] = []
    for _ in range(n - 2 * f):
        sub = x[remaining]
        scores = krum_scores(sub, f, neighbours=max(1, len(remaining) - f - 2))
        j = int(torch.argmin(scores))
        selected.append(remaining.pop(j))
    return selected


def bulyan(updates: torch.Tensor, f: int) -> torch.Tensor:
    """Bulyan (El Mhamdi, Guerraoui & Rouault 2018): iterated-Krum selection of
    ``θ = N - 2f`` updates, then per coordinate the mean of the ``β = θ - 2f`` selected
    values closest to that coordinate's median. Needs ``N ≥ 4f + 3``."""
    x = _check(updates, f, "bulyan")
    sel = x[bulyan_select(x, f)]
    theta = sel.shape[0]
    beta = theta - 2 * f
    s, _ = torch.sort(sel, dim=0)
    med = s[theta // 2] if theta % 2 == 1 else 0.5 * (s[theta // 2 - 1] + s[theta // 2])
    dist = (sel - med).abs()
    # stable tie-break: among equal distances prefer lower row index
    idx = torch.argsort(dist, dim=0, stable=True)[:beta]
    return torch.gather(sel, 0, idx).mean(0)


def aggregate(rule: str, updates: torch.Tensor, f: int) -> torch.Tensor:
    """Apply the rule named ``rule`` (one of :data:`RULES`) with ``f`` Byzantine holders."""
    if rule == "mean":
        return mean(updates, f)
    if rule == "median":
        return coordinate_median(updates, f)
    if rule == "trimmed_mean":
        return trimmed_mean(updates, f)
    if rule == "krum":
        out = krum(updates, f)
        assert isinstance(out, torch.Tensor)
        return out
    if rule == "multi_krum":
        return multi_krum(updates, f)
    if rule == "bulyan":
        return bulyan(updates, f)
    raise ValueError(f"unknown aggregation rule {rule!r}; choose one of {RULES}")
