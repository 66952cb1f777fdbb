"""Fixed-point decoding: CrypTen 0.4.1's is wrong for some negative values; ours is not.

Every ``get_plain_text`` decodes through ``FixedPointEncoder.decode``, which
:func:`smpc_gym.secure._crypten.crypten_module` replaces with
:func:`~smpc_gym.secure._crypten.decode_fixed`. These tests show the upstream error (a
value in ``(−k, −k + 1)`` with a raw remainder below ``k`` read 1.0 too low) and that
the replacement is within one float32 rounding of ``raw / scale`` everywhere.
"""

from __future__ import annotations

import torch

from smpc_gym.secure import _crypten
from smpc_gym.secure._crypten import crypten_module, decode_fixed

SCALE = 1 << 16
#: raw values of the form −k·2^16 + r with 0 < r < k (upstream reads them 1.0 too low),
#: their neighbours with r ≥ k (read right), and a few positive and exact ones
EDGES = torch.tensor(
    [-2 * SCALE + 1, -5 * SCALE + 3, -300 * SCALE + 17, -40000 * SCALE + 39999]
    + [-5 * SCALE + 5, -300 * SCALE + 300, -2 * SCALE, -SCALE + 1, -1, 0, 1, 7 * SCALE + 3],
    dtype=torch.int64,
)


def _err(decoded: torch.Tensor, raw: torch.Tensor) -> torch.Tensor:
    return (decoded.double() - raw.double() / SCALE).abs()


def test_upstream_decode_reads_some_negative_values_one_too_low() -> None:
    crypten = crypten_module()
    assert _crypten.UPSTREAM_DECODE is not None
    enc = crypten.encoder.FixedPointEncoder(precision_bits=16)
    err = _err(_crypten.UPSTREAM_DECODE(enc, EDGES), EDGES)
    assert ((err[:4] - 1.0).abs() < 1e-3).all(), err  # the four with 0 < r < k
    assert float(err[4:5].max()) < 1e-3  # its neighbour with r = k


def test_decode_is_within_one_float32_rounding_of_raw_over_scale() -> None:
    crypten = crypten_module()
    enc = crypten.encoder.FixedPointEncoder(precision_bits=16)
    gen = torch.Generator().manual_seed(0)
    raws = [EDGES]
    for bits in (17, 24, 32, 40, 47, 52):  # magnitudes up to 2^36 after decoding
        raws.append(torch.randint(-(2**bits), 2**bits, (20_000,), generator=gen))
    k = torch.randint(2, 2**20, (20_000,), generator=gen)  # the upstream error's own cases
    raws.append(-k * SCALE + torch.remainder(torch.randint(1, 2**20, (20_000,)), k))
    raw = torch.cat(raws)
    for decoded in (enc.decode(raw), decode_fixed(raw, SCALE)):
        assert decoded.dtype == torch.float32
        exact = raw.double() / SCALE
        # the nearest float32: at most half an ulp away (float32 keeps 24 significant bits)
        assert bool((_err(decoded, raw) <= exact.abs() * 2.0**-24).all())


def test_decode_keeps_crypten_contract_for_none_and_scale_one() -> None:
    crypten = crypten_module()
    assert crypten.encoder.FixedPointEncoder(precision_bits=16).decode(None) is None
    ints = crypten.encoder.FixedPointEncoder(precision_bits=0)
    assert ints.decode(torch.tensor([-3, 4])).tolist() == [-3, 4]
    assert crypten_module() is crypten  # patched once, whatever the number of calls
    assert crypten.encoder.FixedPointEncoder.decode._smpc_gym_fixed
