"""The one place that imports CrypTen.

CrypTen 0.4.1 imports ``torch.onnx._internal.registration``, a module that current
torch moved to ``torch.onnx._internal.torchscript_exporter.registration``. We alias the
old name to the new one in ``sys.modules`` before importing CrypTen. Nothing else in the
package may ``import crypten`` directly: call :func:`crypten_module` instead, which also
keeps the (slow) import lazy so ``import smpc_gym`` stays light.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
from types import ModuleType

_OLD = "torch.onnx._internal.registration"
_NEW = "torch.onnx._internal.torchscript_exporter.registration"


def crypten_module() -> ModuleType:
    """Import and return the ``crypten`` module, applying the torch-compatibility alias.

    Raises:
        ImportError: if CrypTen is not installed (``make setup`` installs it with
            ``pip install --no-deps crypten==0.4.1``).
    """
    if "crypten" in sys.modules:
        return sys.modules["crypten"]
    if _OLD not in sys.modules:
        try:
            importlib.import_module(_OLD)
        except ImportError:
            with contextlib.suppress(ImportError):  # depends on the torch build
                sys.modules[_OLD] = importlib.import_module(_NEW)
    try:
        return importlib.import_module("crypten")
    except ImportError as exc:
        raise ImportError(
            "CrypTen is required for secure computation but could not be imported "
            f"({exc}). Install it with `pip install --no-deps crypten==0.4.1` "
            "(or run `make setup`)."
        ) from exc
