"""The one place that imports CrypTen.

CrypTen 0.4.1 imports ``torch.onnx._internal.registration``, a module that current
torch moved to ``torch.onnx._internal.torchscript_exporter.registration``. We alias the
old name to the new one in ``sys.modules`` before importing CrypTen. Nothing else in the
package may ``import crypten`` directly: call :func:`crypten_module` instead, which also
keeps the (slow) import lazy so ``import smpc_gym`` stays light.

It also replaces one CrypTen function that gives wrong answers: CrypTen 0.4.1's
``FixedPointEncoder.decode`` (every ``get_plain_text`` goes through it) floor-divides a
negative raw value by ``scale − 1`` instead of ``scale``, so a value in ``(−k, −k + 1)``
whose raw remainder ``x mod scale`` is below ``k`` decodes 1.0 too low: at 16 bits,
``−1.99998`` (raw ``−131071``) reads back as ``−2.99998`` and ``−299.99974`` as
``−300.99974``, about once in ``65536/k`` for values near ``−k``. :func:`decode_fixed`
decodes by floor division by ``scale``: the integer part and the remainder are exact,
and the result is (to within a float64 rounding) the float32 nearest to ``raw/scale``.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
from types import ModuleType
from typing import Any

import torch

_OLD = "torch.onnx._internal.registration"
_NEW = "torch.onnx._internal.torchscript_exporter.registration"


def crypten_module() -> ModuleType:
    """Import and return the ``crypten`` module, applying the torch-compatibility alias.

    Raises:
        ImportError: if CrypTen is not installed (``make setup`` installs it with
            ``pip install --no-deps crypten==0.4.1``).
    """
    if "crypten" in sys.modules:
        if UPSTREAM_DECODE is None:  # imported before this module saw it: patch once
            _patch_decode(sys.modules["crypten"])
        return sys.modules["crypten"]
    if _OLD not in sys.modules:
        try:
            importlib.import_module(_OLD)
        except ImportError:
            with contextlib.suppress(ImportError):  # depends on the torch build
                sys.modules[_OLD] = importlib.import_module(_NEW)
    try:
        module = importlib.import_module("crypten")
    except ImportError as exc:
        raise ImportError(
            "CrypTen is required for secure computation but could not be imported "
            f"({exc}). Install it with `pip install --no-deps crypten==0.4.1` "
            "(or run `make setup`)."
        ) from exc
    _patch_decode(module)
    return module


def decode_fixed(raw: torch.Tensor, scale: int) -> torch.Tensor:
    """Fixed-point raw integers to float32: ``raw / scale``, negative values included.

    ``⌊raw / scale⌋`` and the remainder in ``[0, scale)`` are exact integers; ``q +
    r/scale`` is formed in float64 (exact while ``|q| < 2^37`` at 16 bits) and rounded
    once to float32, so the result is the float32 nearest to ``raw / scale`` (beyond
    ``2^37``, up to a float64 rounding of 2^-53 relative before that). ``scale == 1``
    returns ``raw`` as float32.

    Raises:
        TypeError: if ``raw`` is not an integer tensor.
    """
    if raw.dtype.is_floating_point or raw.dtype == torch.bool:
        raise TypeError(f"decode_fixed needs an integer tensor, got {raw.dtype}")
    if scale == 1:
        return raw.float()
    q = torch.div(raw, scale, rounding_mode="floor")
    return (q.double() + (raw - q * scale).double() / scale).float()


def _patch_decode(module: ModuleType) -> None:
    """Route CrypTen's ``FixedPointEncoder.decode`` through :func:`decode_fixed` (once)."""
    enc = module.encoder.FixedPointEncoder
    if getattr(enc.decode, "_smpc_gym_fixed", False):
        return

    def decode(self: Any, tensor: torch.Tensor | None) -> torch.Tensor | None:
        """Decode from the scaled integer ``tensor`` (:func:`decode_fixed`); ``None`` stays."""
        if tensor is None:
            return None
        if self._scale > 1:
            return decode_fixed(tensor, self._scale).data
        return UPSTREAM_DECODE(self, tensor)  # scale 1: CrypTen's own rounding division

    decode._smpc_gym_fixed = True  # type: ignore[attr-defined]
    global UPSTREAM_DECODE
    UPSTREAM_DECODE = enc.decode
    enc.decode = decode


#: CrypTen's own ``FixedPointEncoder.decode``, kept for ``scale == 1`` and for the test
#: that shows why it is replaced (set on the first :func:`crypten_module` call).
UPSTREAM_DECODE: Any = None
