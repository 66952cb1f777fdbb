"""Optimisers on secret shares: Adam and SGD with momentum, matching ``torch.optim``.

CrypTen ships only SGD; MADDPG's paper setting is Adam. Both optimisers here take a list
of parameter shares and the matching gradient shares, flatten everything into **one**
vector per step (so each secure multiplication of the step is one round for all
parameters of both players' networks) and never reveal anything.

Fixed point (16 fractional bits) shapes three choices, all documented here:

**Loss scaling.** A gradient of 1e-5 is 0.65 units of 2⁻¹⁶, and its square is 0. The
secure update therefore back-propagates ``c·∂L`` for a public power of two ``c``
(``grad_scale``; the caller multiplies the loss gradient by it) and the optimisers work on
``g' = c·g``. Adam is invariant to this (``m' = c·m``, ``v' = c²·v``, and the step
``m̂'/√v̂'`` equals ``m̂/√v̂``), with ε scaled to ``c·ε``; SGD divides the step by ``c``.

**Public constants without quantisation loss.** Multiplying a share by a public float
``s`` the CrypTen way encodes ``s`` with 16 bits: ``lr = 1e-4`` would become 6/65536,
a 8% error. :func:`mul_public` multiplies by ``round(s·2^k)`` with ``k`` chosen so that
``s·2^k ≈ 2^16`` and then truncates by ``2^k`` (exactly), so every learning rate, β,
bias correction and τ is applied with ~1e-5 relative error.

**Adam's ``1/(√v̂ + ε)``.** Computed as ``y ≈ 1/√(v̂' + ε'²)`` with ``ε' = c·ε_fp`` by
Newton–Raphson iterations ``y ← y·(A − B·(x·y)·y)/2`` (3 multiplication rounds each;
``(x·y)·y`` rather than ``x·y²`` because ``y²`` underflows the grid when ``y`` is small;
their triples share each operand's mask, so ``x`` is opened once and each step's ``y``
once for its three products: ``SecureAdam._newton``). Plain Newton has ``A = 3``,
``B = 1``; after a range reduction each step's ``A``, ``B`` are instead the minimax ones
for the interval the start is known to lie in (:meth:`SecureAdam.newton_schedule`), which
reaches in 4 steps what plain Newton reaches in 6.
Newton for ``x^(-1/2)`` converges (quadratically) only from ``0 < y₀ < √(3/x)``, and
``v̂'`` spans many orders of magnitude across parameters, so one fixed initial guess
(CrypTen's ``inv_sqrt`` uses ``2.2·e^(−x/2−0.2)+0.2``, valid for x ∈ [0.1, 300]) does
not work. Instead:

* the initial guess comes from a *range reduction* at every step: where ``x`` lies among
  the public thresholds ``16^j`` (j = ``−1 … 9``) gives ``y₀ = 0.35·4^(−J)`` for ``x ∈
  [16^J, 16^(J+1))``, within ``[0.35, 1.4)`` of the answer (``[0.3498, 1.4007)``: a
  comparison may answer either way less than 2^-10 below its threshold); ``init_iters``
  (4) scaled Newton steps then reach ``1e-5`` relative error
  (:meth:`SecureAdam.newton_schedule`: the bound is computed, 9.8e-6 for 4 steps,
  1.4e-10 for 5). Robust for any ``x`` in ``[2^-8, 2^39)`` (the ε floor below keeps ``x
  ≥ 2^-8``); costs 5 comparisons per coordinate (in range for ``x < 2^41``:
  ``COMPARE_BITS``) in two levels (which group of four thresholds, over 43 bits, then
  which threshold within it, over 25 bits on ``x`` in the group's units; the same ``J``
  as comparing against all 11 except within 2^-10 below a threshold: see
  ``SecureAdam._initial_guess``, :mod:`smpc_gym.secure.compare`). ``y`` is held as
  ``y·2^10`` (``Y_SHIFT``) so that the small ``y`` of large ``x`` stays on the grid.
* a cheaper start was tried and removed: warm-starting Newton from the previous step's
  ``y`` (a range reduction only every ``k`` steps, a guard ``[x·y² > 2.5]`` shrinking
  ``y`` 8× in between, then plain Newton). ``v̂`` can jump by any factor between steps
  (a unit whose gradient was 0 for many steps and wakes up), and then Newton diverges
  with nothing to notice it: in MADDPG a run stopped with ``FixedPointOverflow``, and on
  synthetic gradients spanning three orders of magnitude (15 steps, 500 parameters) one
  seed of six ended 106 away from ``torch.optim.Adam``.

**Long runs: where the grid's rounding would add up.** A step is ``lr·m̂'·y``; at the ε
floor ``y`` is large, so the rounding of every stored quantity is magnified there, and
the running averages keep their rounding noise for ``1/(1 − β)`` steps (1,000 for
``v̂``). All truncations round stochastically (unbiased), and:

* ``v̂`` is stored as ``v̂'·2^16`` (``V_SHIFT``; the Beaver square of ``g'`` is not
  truncated at all, :func:`square_shifted`): with the ε floor ``ε' = 2^-12``,
  ``x = (v̂' + ε'²)·2^16 ≥ 2^-8``, so a second moment at the floor spans 2^8 grid units
  (it spanned one when ``v̂'`` was kept as ``v̂'·2^8``). A higher floor would hold ``y``
  tighter there but damp more small-gradient coordinates than ``torch.optim.Adam``
  does: tried, ``ε' = 2^-8`` made a 50-update paper-network run differ from it by a
  first-layer critic MAE of 1.3e-3 (limit 1e-3).
  State is kept bias-corrected (``m̂``, ``v̂`` directly), never as raw
  ``v = (1 − β₂)·g²`` (1000× smaller).
* ``m̂`` is stored as ``m̂'·2^8`` (``M_SHIFT``).
* the parameters keep their remainder below the 2^-16 grid between steps at
  ``2^-(16+8)`` (``P_SHIFT``): rounded after every step, a parameter's error would
  random-walk (at the largest of ~10^5 weights, ~1e-3 after 2,000 steps).

The shifts are undone in the public learning rate. ``ε``: PyTorch's default ``1e-8`` is
far below fixed-point resolution. We use ``ε_fp = max(ε, 2^(−12)/c)``
(:meth:`SecureAdam.effective_eps`, which a plaintext twin must use too) and put it under
the square root: the step is ``lr·m̂/√(v̂ + ε_fp²)``. Coordinates whose gradient RMS is
well above ``ε_fp`` follow Adam closely; smaller ones take a step damped by
``√v̂/√(v̂ + ε_fp²)`` instead of PyTorch's ``√v̂/(√v̂ + ε)``. The range: ``x < 2^39``,
i.e. ``|g'| < 2^11``; choose ``c`` so the largest gradients stay below ``2^11/c``
(Adam's step does not depend on ``c``, only ``ε_fp`` does).

**Truncation.** Every truncation here is exact (:mod:`smpc_gym.secure.trunc`), so the
loss scales only have to keep values inside the ranges each function states (see
``docs/security/fixed-point.md``), not make a random wrap-around unlikely.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, overload

import torch

from smpc_gym.secure._crypten import crypten_module
from smpc_gym.secure.comm import phase
from smpc_gym.secure.trunc import mul_public, trunc_many

__all__ = [
    "FloorEpsAdam",
    "SecureAdam",
    "SecureSGD",
    "flatten_cat",
    "mul_public",
    "unflatten_like",
]


def square_shifted(x: Any, shift: int) -> Any:
    """``x² · 2^shift`` as a fixed-point share (``shift`` even, ``0 <= shift <= 16``), one Beaver square.

    The raw square of ``x·2^16`` is ``x²·2^32``; reading ``x²·2^shift`` at scale ``2^16``
    needs ``x²·2^(16 + shift)``. For ``shift >= 8`` ``x`` is first truncated by
    ``2^(8 − shift/2)`` (not at all for ``shift = 16``) and the square is not truncated;
    for ``shift < 8`` ``x`` is truncated by ``2^(shift/2)`` and the square by
    ``2^(16 − 2·shift)``. Small squares keep ``shift`` more fractional bits than
    ``x.square()``; every truncation is exact (:func:`smpc_gym.secure.trunc.trunc_many`).
    Correct while the raw square stays below 2^62: ``|x| < 2^(23 − shift/2)`` for
    ``shift >= 8`` (``2^15`` for Adam's ``shift = 16``).
    """
    if shift % 2 or not 0 <= shift <= 16:
        raise ValueError(f"shift must be even and in [0, 16], got {shift}")
    from smpc_gym.secure.mpc_nn import square_raw, wrap_shares

    xs = x._tensor.clone()
    scale = int(xs.encoder.scale)
    pre = 8 - shift // 2 if shift >= 8 else shift // 2
    if pre:
        (xs.share,) = trunc_many([(xs.share, 1 << pre)])
    raw = square_raw(wrap_shares(xs.share, xs.encoder))  # x²·2^(32 − 2·pre), not truncated
    if shift < 8:
        (raw,) = trunc_many([(raw, scale >> (2 * shift))])
    return wrap_shares(raw, x._tensor.encoder)


def flatten_cat(tensors: Sequence[Any]) -> Any:
    """One flat share vector from several shares (local: the raw shares are concatenated)."""
    from smpc_gym.secure.mpc_nn import wrap_shares

    if len(tensors) == 1:
        return tensors[0].reshape(-1)
    enc = tensors[0]._tensor.encoder
    if any(t._tensor.encoder.scale != enc.scale for t in tensors):
        raise ValueError("flatten_cat needs shares of one fixed-point scale")
    return wrap_shares(torch.cat([t.share.reshape(-1) for t in tensors]), enc)


def unflatten_like(flat: Any, like: Sequence[Any]) -> list[Any]:
    """Split a flat share vector back into tensors shaped like ``like`` (local)."""
    from smpc_gym.secure.mpc_nn import wrap_shares

    out, start = [], 0
    share, enc = flat.share, flat._tensor.encoder
    for t in like:
        n = int(t.nelement())
        out.append(wrap_shares(share[start : start + n].reshape(t.size()), enc))
        start += n
    return out


@dataclass
class _AdamState:
    m: Any  # m̂'·2^M_SHIFT
    v: Any  # v̂'·2^V_SHIFT
    y: Any  # the last step's 2^Y_SHIFT/√x, x = (v̂' + ε'²)·2^V_SHIFT (kept in checkpoints)
    r: Any  # raw shares of the parameters' sub-grid remainder, scale 2^(16 + P_SHIFT)
    t: int


class SecureAdam:
    """Adam on shares, equal to ``torch.optim.Adam`` up to fixed-point error (see module doc).

    Args:
        lr, betas, eps: as in ``torch.optim.Adam``.
        grad_scale: the public loss scale ``c`` the gradients passed to :meth:`step` carry.
        init_iters: Newton iterations after the range-reduced initial guess of every step
            (scaled: :meth:`newton_schedule`; 4 reach 1e-5 relative error, 5 reach 1.4e-10).

    Raises:
        ValueError: naming the bad value, for ``lr <= 0``, betas outside ``[0, 1)``,
            ``grad_scale <= 0`` or ``init_iters < 1``.
    """

    THRESHOLD_LOG2 = 4  # x compared with 16^j = 2^(4j) ...
    THRESHOLD_EXPONENTS = tuple(range(-1, 10))  # ... for j = -1 … 9 (x in [2^-8, 2^40))
    GUESS_C = 0.35  # y₀ = GUESS_C·2^(−2J) for x in [16^J, 16^(J+1)): y₀·√x in [0.35, 1.4)
    GUESS_GROUP = 4  # J's 12 buckets in 3 groups of 4: 2 + 3 comparisons, two levels
    #: the range reduction holds for ``x < 2^57`` raw (x < 2^41 at 16 fractional bits,
    #: four times the documented range x < 2^39): its comparisons run over this many bits
    #: less the truncation of their operands (:meth:`_initial_guess`: 43 bits for the
    #: group, 25 within it; each party sends 122 and 69 bits per comparison, where the
    #: untruncated 57 took 164)
    COMPARE_BITS = 57
    #: the range reduction compares ``x`` truncated to units of at most 2^-10 of each
    #: threshold (:meth:`_initial_guess`), over fewer bits than ``COMPARE_BITS``; a
    #: comparison may then answer either way less than 2^-10 (relative) below its threshold, which
    #: widens the start's interval by ``√(1 ± 2^-10)`` (:meth:`newton_schedule` allows for it)
    START_FUZZ_BITS = 10
    #: v̂' is kept as v̂'·2^16 and ε is floored at ε' = 2^-12 (as torch-like as fixed
    #: point allows), so x = (v̂' + ε'²)·2^16 >= 2^-8: a second moment at the floor spans
    #: 2^8 grid units (it was one unit when v̂' was kept as v̂'·2^8)
    V_SHIFT = 16
    EPS_FLOOR_LOG2 = -12  # ε' = grad_scale·ε >= 2^-12
    #: y ≈ 1/√x is kept as y·2^10: near the top of the range (2^39) y is 2^-19.5, which the
    #: plain 16-bit grid cannot hold; 2^10 more keeps 6 significant bits there (9 at
    #: 2^34). The binding product is Newton's first, x·y₀ = ρ₀·√x·2^10 with ρ₀ = y₀·√x
    #: < 1.4 (the top bucket's ρ₀ = 0.35·√(x/2^36)): below 2^30 (raw 2^62, the exact
    #: truncation's bound) for x < 2^39.5, so the range is x < 2^39. Measured past it, at
    #: x = 2^39.8, one Newton run in four returned y with the wrong sign.
    Y_SHIFT = 10
    #: Newton's ``u = x·y²`` and ``w = A − B·u`` are kept with 8 more fractional bits than
    #: the grid (2^-24): at 2^-16 the rounding of ``u`` alone moved a step's result by up
    #: to 7.6e-6 relative. The binding product, ``y·w`` (raw ``y·2^26 · w·2^24`` with ``y
    #: < 22.4`` and ``w < 4.3``), stays below 2^57
    W_SHIFT = 8
    #: a step's ``B`` is applied as the integer ``round(B·2^7)`` in ``u``'s truncation:
    #: ``u``'s raw value before it is below ``1.96·2^52`` (``ρ < 1.4``), times ``B·2^7 <
    #: 2^8``, below 2^61
    NEWTON_B_BITS = 7
    #: m̂' is kept as m̂'·2^8: at the floor y is up to 2^8, so m̂'s 2^-16 grid would move
    #: a step by lr/2^8, and its rounding noise lasts ~1/(1 − β₁) steps
    M_SHIFT = 8
    #: the parameters keep their sub-grid remainder at 2^-(16 + 8) between steps: rounded
    #: to 2^-16 after every step, their error would random-walk (~1e-3 after 2,000 steps
    #: at the largest of 10^5 weights); with the remainder it stays below one grid unit
    P_SHIFT = 8
    #: written with the state and checked on loading: a state stored under other shifts
    #: would be read at the wrong scales
    STATE_FORMAT = "adam-v16-m8-p8"

    def __init__(
        self,
        lr: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        grad_scale: float = 2.0**10,
        init_iters: int = 4,
    ) -> None:
        if lr <= 0 or not 0 <= betas[0] < 1 or not 0 <= betas[1] < 1:
            raise ValueError(f"need lr > 0 and betas in [0, 1), got lr={lr}, betas={betas}")
        if grad_scale <= 0 or init_iters < 1:
            raise ValueError(
                f"need grad_scale > 0 and init_iters >= 1; got {grad_scale}, {init_iters}"
            )
        self.lr = float(lr)
        self.betas = (float(betas[0]), float(betas[1]))
        self.grad_scale = float(grad_scale)
        self.eps_fp = self.effective_eps(eps, grad_scale)
        self.init_iters = int(init_iters)
        self.state: _AdamState | None = None

    @classmethod
    def effective_eps(cls, eps: float, grad_scale: float) -> float:
        """The ε this optimiser uses: ``max(eps, 2^-12 / grad_scale)``.

        The floor puts ``x = (v̂' + ε'²)·2^V_SHIFT`` at or above ``2^-8`` (``ε' =
        grad_scale·ε``), 2^8 units of the grid. A plaintext twin of this optimiser
        (``θ −= lr·m̂/√(v̂ + ε²)``) must use the same value.
        """
        return max(float(eps), 2.0**cls.EPS_FLOOR_LOG2 / float(grad_scale))

    @classmethod
    def newton_schedule(cls, iters: int) -> tuple[tuple[tuple[float, int], ...], float]:
        """The scaled Newton steps after the range reduction, and their error bound.

        A step ``y ← y·(A − B·x·y²)/2`` maps ``ρ = y·√x`` to ``g(ρ) = ρ·(a − b·ρ²)`` with
        ``a = A/2``, ``b = B/2``; plain Newton (``A = 3``, ``B = 1``) is the best step near
        ``ρ = 1`` but from the start's ``ρ₀ ∈ [0.35, 1.4)`` (:meth:`_initial_guess`; widened
        by ``√(1 ± 2^-START_FUZZ_BITS)`` for its comparisons' fuzz) it needs
        6 steps to reach 1e-6. Here each step takes the ``a``, ``b`` that map the interval
        ``[lo, hi]`` known to hold ``ρ`` closest to 1 (equal error at ``lo``, ``hi`` and
        the peak ``√(a/3b)``: ``b = 2/((2/3)·S·√(S/3) + lo·hi·(lo + hi))`` with ``S = lo² +
        lo·hi + hi²``), with ``B`` rounded to ``NEWTON_B_BITS`` bits and then ``a`` (any
        precision: a public constant) re-centred for that ``B``. The next interval is the
        image of ``[lo, hi]``, computed exactly. As the interval shrinks the steps become
        plain Newton's.

        Returns:
            ``((A, B_int), …)`` per step, ``B = B_int/2^NEWTON_B_BITS`` and ``A`` a multiple
            of 2^-(16 + W_SHIFT); and ``max |ρ − 1|`` after the last step: the relative
            error of ``y`` before fixed-point rounding (9.8e-6 after 4 steps, 1.4e-10 after 5).
        """
        if iters < 1:
            raise ValueError(f"iters must be >= 1, got {iters}")
        fuzz = 2.0**-cls.START_FUZZ_BITS
        return _newton_schedule(
            cls.GUESS_C * math.sqrt(1 - fuzz),
            cls.GUESS_C * 2.0 ** (cls.THRESHOLD_LOG2 / 2) * math.sqrt(1 + fuzz),
            iters,
            cls.NEWTON_B_BITS,
            16 + cls.W_SHIFT,
        )

    def _initial_guess(self, x: Any) -> Any:
        """``y₀ ≈ 1/√x`` within ``[0.35, 1.4)`` of it (widened by ``START_FUZZ_BITS``:
        ``[0.3498, 1.4007)``), for any ``x ∈ [2^-8, 2^40)`` (Newton from it is exact for
        ``x < 2^39``: see ``Y_SHIFT``).

        ``y₀ = 0.35·4^(−J)`` for ``x ∈ [16^J, 16^(J+1))``; ``init_iters`` (4) scaled Newton
        steps bring any start in that interval within 1e-5 of ``1/√x``
        (:meth:`newton_schedule`). ``J`` is ``J₀ + #{j : x ≥ 16^j}`` over the thresholds
        ``j = −1 … 9`` (``J₀ = −2``), found in two levels of batched sign tests
        (:func:`smpc_gym.secure.compare.sign_bits`), each over as few bits as the level's
        range needs:

        1. **The group.** ``c_k = [x ≥ 16^2]``, ``[x ≥ 16^6]`` (2 comparisons) say which of
           three groups of four consecutive buckets ``x`` falls in (``q = c₁ + c₂``). Each
           compares ``x`` truncated to ``2^-START_FUZZ_BITS`` of its threshold (one
           truncation round for all, :func:`smpc_gym.secure.trunc.trunc_many`), so over
           ``COMPARE_BITS − 14 = 43`` bits instead of 57.
        2. **Within the group.** ``x`` in its group's units, ``x_q = x·2^(−16q)``, is
           ``x₀ + c₁·(x₁ − x₀) + c₂·(x₂ − x₁)`` (the truncations ``x₁``, ``x₂`` come from
           the same round; the products are bit injections of the XOR-shared ``c_k``,
           :func:`smpc_gym.secure.mpc_nn.inject_bits`, one round). In those units every
           group's three inner thresholds are group 0's, ``16^-1, 16^0, 16^1``, and
           ``x_q < 2^25`` raw, so the 3 comparisons run over 25 bits.

        ``y₀`` is then each group's candidate (the level-2 bits times public constants,
        local) picked by the ``c_k`` (bit injections again, one round; with a dealer the
        ``c_k``'s masked bits from level 1's injection are reused,
        :func:`~smpc_gym.secure.mpc_nn.inject_again`, so only the candidates are opened):
        15 rounds, as many as with untruncated comparisons, and about a fifth fewer bytes.

        **Fuzz.** A truncation rounds stochastically, so a comparison may answer either
        way for ``x`` less than ``2^-START_FUZZ_BITS`` (relative) below its threshold (group 0's
        inner thresholds are compared exactly, the others within ``2^-12``); ``y₀`` is then
        the neighbouring bucket's, whose ``y₀·√x`` is off the interval's end by that
        factor's square root at most. :meth:`newton_schedule` starts from that widened
        interval (9.8e-6 after 4 steps instead of 9.7e-6). Away from the thresholds,
        ``y₀`` is exactly the one-level reference's (the tests check both).
        """
        from smpc_gym.secure.compare import sign_bits
        from smpc_gym.secure.mpc_nn import (
            correlation_source,
            inject_again,
            inject_bits,
            ltz,
            wrap_shares,
        )

        crypten = crypten_module()
        exps, ell, c0 = self.THRESHOLD_EXPONENTS, self.THRESHOLD_LOG2, self.GUESS_C
        size, groups = self.GUESS_GROUP, (len(exps) + 1) // self.GUESS_GROUP
        assert size * groups == len(exps) + 1, "the buckets must split into whole groups"
        assert list(exps) == list(range(exps[0], exps[0] + len(exps))), "consecutive j"
        xs = x.share.reshape(-1)
        n = int(xs.numel())
        log_scale = int(x.encoder.scale).bit_length() - 1
        rank = crypten.communicator.get().get_rank()
        fuzz = self.START_FUZZ_BITS
        # level 1's thresholds 16^j (j = exps[size·k − 1]) are 2^t raw; x is compared in
        # units of 2^(t − fuzz); group q's units are 2^(ell·size·q) raw
        lvl1_shift = [log_scale + ell * exps[size * k - 1] - fuzz for k in range(1, groups)]
        group_shift = [ell * size * q for q in range(1, groups)]
        cut = trunc_many([(xs, 1 << f) for f in lvl1_shift + group_shift])
        lvl1, scaled = cut[: groups - 1], [xs, *cut[groups - 1 :]]
        one = (1 << fuzz) if rank == 0 else 0
        c = sign_bits(torch.cat([v - one for v in lvl1]), rank, self.COMPARE_BITS - min(lvl1_shift))
        if rank == 0:
            c = c ^ 1  # XOR shares of c_k = [x ≥ 16^j], k = 1 … groups − 1 (flat, k-major)
        # the c_k are injected twice (here and into the candidates below): with a dealer,
        # both from one bit_mul_back correlation, so e = c ⊕ r is opened once and rᴬ dealt once
        first = again = None
        if correlation_source() == "TTP":
            from smpc_gym.secure.dealer import pools

            r, a, a2, r_a, rc, rc2 = pools().bit_mul_back(int(c.numel()))
            first, again = (r, a, r_a, rc), (r_a, a2, rc2)
        steps, e = inject_bits(
            torch.cat([scaled[k] - scaled[k - 1] for k in range(1, groups)]), c, rank, first
        )
        x_q = scaled[0] + steps.view(groups - 1, n).sum(0)  # x·2^(−16q) raw
        # level 2: group 0's first size − 1 thresholds, every group's in its units
        thr = [1 << (log_scale + ell * exps[i]) for i in range(size - 1)]
        low = torch.stack([x_q - (t if rank == 0 else 0) for t in thr])
        bits2 = self.COMPARE_BITS - group_shift[-1]
        d = 1 - ltz(wrap_shares(low, x.encoder), bits2)  # cumulative: d_0 >= d_1 …
        # passing threshold j moves the guess from c0·2^(-(j-1)·ell/2) to c0·2^(-j·ell/2):
        # coef[j] raw, at y's scale (y₀·2^Y_SHIFT, see Y_SHIFT); the guess after passing
        # the first p thresholds is base + Σ_{i<p} coef[i]
        half = ell / 2
        coef = [
            round(
                c0
                * (2.0 ** (-j * half) - 2.0 ** (-(j - 1) * half))
                * 2.0 ** (log_scale + self.Y_SHIFT)
            )
            for j in exps
        ]
        # group q's candidate (without base):
        # Σ_{i < size·q} coef[i] + Σ_i d_i·coef[size·q + i]
        cand = []
        for q in range(groups):
            share = sum(d.share[i] * coef[size * q + i] for i in range(size - 1))
            cand.append(share + (sum(coef[: size * q]) if rank == 0 else 0))
        # y₀ = cand_0 + Σ_k c_k·(cand_k − cand_(k−1)): bit injections, one round
        diffs = torch.cat([cand[k] - cand[k - 1] for k in range(1, groups)])
        picked = inject_again(diffs, e, *again) if again else inject_bits(diffs, c, rank)[0]
        y = wrap_shares(cand[0] + picked.view(groups - 1, n).sum(0), x.encoder)
        return y.reshape(x.size()) + c0 * 2.0 ** (-(exps[0] - 1) * half + self.Y_SHIFT)

    def _newton(self, x: Any, y: Any, steps: Sequence[tuple[float, int]]) -> Any:
        """Newton steps ``y ← y·(A − B·(x·y)·y)/2``, one per ``(A, B_int)`` of ``steps``
        (:meth:`newton_schedule`; ``(3.0, 2^NEWTON_B_BITS)`` is plain Newton), 3 exactly
        truncated products each.

        ``y`` is held as ``y·2^Y_SHIFT``; ``u = B·x·y²`` and ``w = A − u`` at scale
        ``2^(16 + W_SHIFT)``: the ``2^(−2·Y_SHIFT)`` of ``x·y²``, ``B``'s ``2^−NEWTON_B_BITS``
        and the ``2^W_SHIFT`` are folded into ``u``'s truncation, the ``/2`` and
        ``2^−W_SHIFT`` into that of ``y·w``.

        **Masks opened once.** With a dealer (``TTP``) or ``TFP`` the products' triples
        come as one bundle in which every operand has one mask for all its products
        (:func:`smpc_gym.secure.dealer.newton_triples`): ``x − A`` is opened once for
        all steps and each step's ``y − B_k`` once for its three products, so a step
        opens 3 masked vectors (``y``, ``x·y``, ``w``) instead of 6, in the same 6
        rounds. Each mask still hides exactly one secret value: what is opened is as
        uniform as with separate triples. Another provider gets separate triples; both
        compute the same values.
        """
        from smpc_gym.secure.mpc_nn import beaver_many, open_many, wrap_shares

        rank = crypten_module().communicator.get().get_rank()
        scale = int(x.encoder.scale)
        wide = scale << self.W_SHIFT
        u_shift = 2 * self.Y_SHIFT + self.NEWTON_B_BITS - self.W_SHIFT  # u's truncation / 2^16

        def minus(a: float, u: torch.Tensor) -> torch.Tensor:  # A − u, raw at 2^(16 + W)
            return (round(a * wide) if rank == 0 else 0) - u

        with phase("optimiser.adam_newton"):
            bundle = _newton_triples(int(x.nelement()), len(steps))
            if bundle is None:
                for a, b in steps:
                    (xy,) = beaver_many([("mul", x, y)])
                    # not x·y²: y² underflows for small y
                    by = wrap_shares(y.share * b, y.encoder)
                    (u,) = beaver_many([("mul", xy, by, u_shift)])
                    w = wrap_shares(minus(a, u.share), y.encoder)
                    (y,) = beaver_many([("mul", y, w, 1 + self.W_SHIFT)])
                return y
            masks, c = bundle
            xs, ys, mx = x.share.reshape(-1), y.share.reshape(-1), masks[0]
            eps_x = None
            for k, (a, b) in enumerate(steps):
                my, mxy, mw = masks[1 + 3 * k], masks[2 + 3 * k], masks[3 + 3 * k]
                # a Beaver share of p·q with p − m_p, q − m_q opened as e_p, e_q:
                # c + e_p·(m_q + e_q) + m_p·e_q, party 0 carrying the public e_p·e_q
                if eps_x is None:
                    eps_x, dy = open_many([xs - mx, ys - my])
                else:
                    (dy,) = open_many([ys - my])
                my_dy = my + dy if rank == 0 else my
                (xy,) = trunc_many([(c[k, 0] + eps_x * my_dy + mx * dy, scale)])
                (e_xy,) = open_many([xy - mxy])
                raw_u = c[k, 1] + e_xy * my_dy + mxy * dy  # (x·y)·y, not yet truncated
                (u,) = trunc_many([(raw_u * b, scale << u_shift)])
                w = minus(a, u)
                (e_w,) = open_many([w - mw])
                mw_ew = mw + e_w if rank == 0 else mw
                (ys,) = trunc_many([(c[k, 2] + dy * mw_ew + my * e_w, scale << (1 + self.W_SHIFT))])
            return wrap_shares(ys.reshape(y.share.shape), y.encoder)

    def warm_start(self, like: Any, m_hat: torch.Tensor, v_hat: torch.Tensor, t: int) -> None:
        """Continue from a *public* Adam state instead of zero moments.

        ``m_hat``, ``v_hat``: bias-corrected first and second moments, in plaintext
        gradient units (without ``grad_scale``), flat in the order :meth:`step` flattens
        its parameters; ``t``: the steps they have seen (bias correction goes on from
        there); ``like``: any share of this run's encoder. Both parties call this with
        the same values (party 0's are encoded, so they must be public: e.g. moments of a
        pre-training on public data). Nothing is revealed.

        Why: from zero moments Adam's first step is ``lr·g/√(g² + ε²)``, a full ``lr``
        step in the gradient's sign, so fixed-point error in a gradient near ``ε`` moves
        a weight by up to ``2·lr`` against a plaintext twin; from an established ``v̂`` a
        gradient error moves it by ``(1 − β₁)·lr·δg/√v̂``.
        """
        if m_hat.shape != v_hat.shape or m_hat.dim() != 1 or t < 1:
            raise ValueError(
                f"need flat m_hat and v_hat of one shape and t >= 1, got {tuple(m_hat.shape)}, "
                f"{tuple(v_hat.shape)}, t={t}"
            )
        if bool((v_hat < 0).any()) or not bool(
            torch.isfinite(m_hat).all() & torch.isfinite(v_hat).all()
        ):
            raise ValueError("warm_start needs finite moments and v_hat >= 0")
        c = self.grad_scale
        zeros = like.reshape(-1)[:1].expand(m_hat.numel()) * 0
        res = zeros.encoder.scale

        def public(x: torch.Tensor) -> Any:  # rounded to the grid (encoding truncates)
            return zeros + torch.round(x.double() * res) / res

        self.state = _AdamState(
            m=public(m_hat * (c * 2.0**self.M_SHIFT)),
            v=public(v_hat * (c * c * 2.0**self.V_SHIFT)),
            y=None,
            r=torch.zeros_like(zeros.share),
            t=int(t),
        )

    def step(self, params: Sequence[Any], grads: Sequence[Any]) -> list[Any]:
        """One Adam step; returns the new parameter shares (same shapes as ``params``)."""
        from smpc_gym.secure.mpc_nn import beaver_many, wrap_shares

        b1, b2 = self.betas
        g = flatten_cat(grads)
        theta = flatten_cat(params)
        if self.state is None:
            zeros = g * 0
            self.state = _AdamState(
                m=zeros, v=zeros.clone(), y=None, r=torch.zeros_like(zeros.share), t=0
            )
        st = self.state
        st.t += 1
        # The state is kept bias-corrected (m̂, v̂), not raw (m, v): v = (1 − β₂)·g'² is
        # ~1000× smaller than g'² early on and would fall off the fixed-point grid.
        # m̂_t = [β₁(1 − β₁^(t−1))·m̂_(t−1) + (1 − β₁)·g'] / (1 − β₁^t), same for v̂ with g'².
        t = st.t
        c1, c2 = 1 - b1**t, 1 - b2**t
        # As increments m̂ += a₁·(g'·2^M − m̂), v̂ += a₂·(g'²·2^V − v̂), a = (1 − β)/(1 − β^t):
        # the stored averages then converge to the averages whatever the rounding of a
        # (as a·v̂ + b·g'² they would be off by (a + b − 1)/(1 − a): 0.8% for β₂ at 16 bits).
        # The rounding noise of a dead coordinate (±1 unit, unbiased) stays far below the
        # ε floor's 2^8 units, so x never approaches 0.
        a1, a2 = (1 - b1) / c1, (1 - b2) / c2
        g_m = wrap_shares(g.share << self.M_SHIFT, g._tensor.encoder)  # g'·2^M, exact
        st.m = st.m + mul_public(g_m - st.m, a1)
        # v̂' is stored times 2^V_SHIFT (square_shifted: an untruncated Beaver square)
        st.v = st.v + mul_public(square_shifted(g, self.V_SHIFT) - st.v, a2, wide=True)
        x = st.v + (self.grad_scale * self.eps_fp) ** 2 * 2.0**self.V_SHIFT  # >= 2^-8
        with phase("optimiser.adam_rsqrt_start"):  # Newton's own time: adam_newton
            steps, _ = self.newton_schedule(self.init_iters)
            st.y = self._newton(x, self._initial_guess(x), steps)
        # m·y = m̂'·2^M · 2^(Y − V/2)/√(v̂' + ε'²): undo the shifts in the public lr, and
        # keep P_SHIFT more bits of the step for the parameters' remainder
        (my,) = beaver_many([("mul", st.m, st.y)])
        shift = self.V_SHIFT / 2 - self.Y_SHIFT - self.M_SHIFT + self.P_SHIFT
        upd = mul_public(my, self.lr * 2.0**shift)  # the step, at scale 2^(16 + P_SHIFT)
        fine = (theta.share << self.P_SHIFT) + st.r - upd.share
        (coarse,) = trunc_many([(fine, 1 << self.P_SHIFT)]) if self.P_SHIFT else (fine,)
        st.r = fine - (coarse << self.P_SHIFT)  # what the 2^-16 grid does not hold
        return unflatten_like(wrap_shares(coarse, theta._tensor.encoder), params)

    def state_shares(self) -> dict[str, Any]:
        """This party's shares of the optimiser state (for checkpoints)."""
        if self.state is None:
            return {"t": 0}
        s = self.state
        return {
            "format": self.STATE_FORMAT,
            "t": s.t,
            "m": s.m.share.clone(),
            "v": s.v.share.clone(),
            "y": None if s.y is None else s.y.share.clone(),  # None: warm-started, no step yet
            "r": s.r.clone(),
        }

    def load_state_shares(self, state: dict[str, Any], like: Any) -> None:
        """Restore :meth:`state_shares` (``like``: any share tensor to copy the encoder from)."""
        if int(state["t"]) == 0:
            self.state = None
            return
        if state.get("format") != self.STATE_FORMAT:
            raise ValueError(
                f"SecureAdam state format {state.get('format')!r}, this version reads "
                f"{self.STATE_FORMAT!r}: the moments were stored at other fixed-point "
                "scales (a checkpoint from an older smpc_gym cannot be resumed by this one)"
            )
        mk = _from_share_like(like)
        self.state = _AdamState(
            m=mk(state["m"]),
            v=mk(state["v"]),
            y=None if state["y"] is None else mk(state["y"]),
            r=state["r"].clone(),
            t=int(state["t"]),
        )


class FloorEpsAdam(torch.optim.Optimizer):
    """Plaintext Adam with :class:`SecureAdam`'s formula: ``θ −= lr·m̂/√(v̂ + ε²)``.

    ``SecureAdam`` floors ε at :meth:`SecureAdam.effective_eps` (fixed-point resolution)
    and puts it under the square root; ``torch.optim.Adam`` (ε = 1e-8) takes full ``lr``
    steps on coordinates whose gradient is ~0, which the secure one damps by design. This
    is the secure algorithm in floating point — give it
    ``eps=SecureAdam.effective_eps(eps, grad_scale)`` — so a comparison with it measures
    only what MPC adds (fixed-point rounding), not the floor. Its state per parameter:
    ``t`` and the raw (not bias-corrected) moments ``m``, ``v``.
    """

    def __init__(self, params: Any, lr: float, betas=(0.9, 0.999), eps: float = 1e-8):
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps})

    @overload
    def step(self, closure: None = None) -> None: ...

    @overload
    def step(self, closure: Callable[[], float]) -> float: ...

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        """One step on every parameter with a gradient; as in ``torch.optim``, a
        ``closure`` is called first (with gradients enabled) and its loss returned."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                st = self.state[p]
                if not st:
                    st["t"], st["m"], st["v"] = 0, torch.zeros_like(p), torch.zeros_like(p)
                st["t"] += 1
                st["m"].mul_(b1).add_(p.grad, alpha=1 - b1)
                st["v"].mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
                m_hat = st["m"] / (1 - b1 ** st["t"])
                v_hat = st["v"] / (1 - b2 ** st["t"])
                p.add_(-group["lr"] * m_hat / torch.sqrt(v_hat + group["eps"] ** 2))
        return loss


class SecureSGD:
    """SGD with momentum on shares, equal to ``torch.optim.SGD(lr, momentum)``.

    ``buf ← μ·buf + g'``, ``θ ← θ − (lr/c)·buf`` with ``g' = c·g`` (see module doc).
    """

    def __init__(self, lr: float, momentum: float = 0.9, grad_scale: float = 2.0**10) -> None:
        if lr <= 0 or not 0 <= momentum < 1 or grad_scale <= 0:
            raise ValueError(
                f"need lr > 0, momentum in [0, 1), grad_scale > 0; got {lr}, {momentum}, "
                f"{grad_scale}"
            )
        self.lr = float(lr)
        self.momentum = float(momentum)
        self.grad_scale = float(grad_scale)
        self.buf: Any = None
        self.t = 0

    def step(self, params: Sequence[Any], grads: Sequence[Any]) -> list[Any]:
        """One step; returns the new parameter shares."""
        g = flatten_cat(grads)
        theta = flatten_cat(params)
        self.t += 1
        # torch: the first step initialises the buffer with the gradient itself
        self.buf = g if self.buf is None else mul_public(self.buf, self.momentum) + g
        return unflatten_like(theta - mul_public(self.buf, self.lr / self.grad_scale), params)

    def state_shares(self) -> dict[str, Any]:
        """This party's shares of the momentum buffer."""
        return {"t": self.t, "buf": None if self.buf is None else self.buf.share.clone()}

    def load_state_shares(self, state: dict[str, Any], like: Any) -> None:
        """Restore :meth:`state_shares`."""
        self.t = int(state["t"])
        self.buf = None if state["buf"] is None else _from_share_like(like)(state["buf"])


def _step_image(a: float, b: float, lo: float, hi: float) -> tuple[float, float]:
    """The image of ``[lo, hi]`` under ``g(ρ) = ρ·(a − b·ρ²)``, which rises up to its peak
    at ``√(a/3b)`` and then falls."""
    peak = math.sqrt(a / (3 * b))
    vals = [r * (a - b * r * r) for r in (lo, hi) + ((peak,) if lo <= peak <= hi else ())]
    return min(vals), max(vals)


@functools.lru_cache(maxsize=16)
def _newton_schedule(
    lo: float, hi: float, iters: int, b_bits: int, a_bits: int
) -> tuple[tuple[tuple[float, int], ...], float]:
    """:meth:`SecureAdam.newton_schedule` for a start ``ρ₀ ∈ [lo, hi]``."""
    steps = []
    for _ in range(iters):
        s = lo * lo + lo * hi + hi * hi
        b_opt = 2 / (2 / 3 * s * math.sqrt(s / 3) + lo * hi * (lo + hi))
        b_int = round(2 * b_opt * 2**b_bits)
        if b_int < 1:
            raise ValueError(f"a start in [{lo}, {hi}] is too wide for {b_bits}-bit B")
        b = b_int / 2 ** (b_bits + 1)
        # re-centre a for the rounded b: min + max of the image = 2 (both rise with a)
        a_lo, a_hi = 0.0, 4 * b * s
        for _ in range(100):
            mid = (a_lo + a_hi) / 2
            a_lo, a_hi = (a_lo, mid) if sum(_step_image(mid, b, lo, hi)) > 2 else (mid, a_hi)
        a = round(a_lo * 2 ** (a_bits + 1)) / 2 ** (a_bits + 1)  # A = 2a on the 2^-a_bits grid
        lo, hi = _step_image(a, b, lo, hi)
        steps.append((2 * a, b_int))
    return tuple(steps), max(1 - lo, hi - 1)


def _newton_triples(n: int, iters: int) -> tuple[torch.Tensor, torch.Tensor] | None:
    """This party's shares ``(masks, c)`` of :meth:`SecureAdam._newton`'s shared-mask
    triples for ``n`` elements, or None if the provider cannot make them.

    ``TTP``: the dealer's pooled bundle (:meth:`smpc_gym.secure.dealer.Pools.newton_triples`).
    ``TFP`` (the opt-out): party 0 draws the masks, computes the products and shares
    both with ``src=0`` (no communication), as CrypTen's ``TrustedFirstParty`` does for
    any triple.
    """
    crypten = crypten_module()
    from crypten.common.rng import generate_random_ring_element
    from crypten.mpc.primitives.arithmetic import ArithmeticSharedTensor

    from smpc_gym.secure.mpc_nn import correlation_source

    source = correlation_source()
    if source == "TTP":
        from smpc_gym.secure.dealer import pools

        return pools().newton_triples(n, iters)
    if source is None:
        return None
    comm = crypten.communicator.get()
    rows = 1 + 3 * iters
    if comm.get_rank() == 0:
        masks = generate_random_ring_element((rows, n))
        a, b, cm, d = masks[0], masks[1::3], masks[2::3], masks[3::3]
        c = torch.stack([a * b, cm * b, b * d], dim=1)
        shared = [ArithmeticSharedTensor(t, precision=0, src=0) for t in (masks, c)]
    else:
        shared = [
            ArithmeticSharedTensor(None, size=size, precision=0, src=0)
            for size in ((rows, n), (iters, 3, n))
        ]
    return shared[0].share, shared[1].share


def _from_share_like(like: Any) -> Any:
    def make(share: torch.Tensor) -> Any:
        out = like.reshape(-1)[:1].clone()
        out.share = share.clone()
        return out

    return make
