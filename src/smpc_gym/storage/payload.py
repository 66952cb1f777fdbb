"""The saved-algorithm format (``model.pt``, checkpoints) and verified torch files.

A saved algorithm is a verified file (:mod:`smpc_gym.storage.files`) whose data is one
``torch.save`` of a plain dict::

    {"format": "smpc_gym.algorithm/1", "name": "<--algo name>", "config": {field: value},
     "env_kwargs": {...}, "seed": int, "env_steps": int, "state": algo.state_dict(),
     "versions": {"smpc_gym": ..., "torch": ..., "numpy": ...}}

The hash is checked before anything is deserialised, and deserialising uses
``torch.load(weights_only=True)``: no arbitrary pickle is ever executed. ``weights_only``
accepts tensors and plain Python containers/scalars but not numpy objects, so numpy
arrays in a state dict are stored as tagged dicts (``{"__ndarray__": tensor-or-bytes,
"dtype": str, "shape": [...]}``) and numpy scalars as tagged 0-d arrays;
:func:`read_payload` turns them back, so algorithms see exactly the numpy objects they
saved.

Building the dict from an algorithm and rebuilding the algorithm from it need the
algorithm registry, so they live with it in :mod:`smpc_gym.agents.base`; this module only
knows the bytes. Ground layer: imports numpy and torch, nothing from smpc_gym's layers.
"""

from __future__ import annotations

import dataclasses
import io
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from smpc_gym.storage.files import DamagedFileError, read_verified, write_verified

__all__ = [
    "FORMAT",
    "decode",
    "encode",
    "load_torch",
    "read_payload",
    "save_torch",
    "versions",
    "write_payload",
]

FORMAT = "smpc_gym.algorithm/1"

_ND = "__ndarray__"
_NP_SCALAR = "__npscalar__"

# numpy dtypes that round-trip through torch tensors without loss.
_TORCH_DTYPES = {
    np.dtype(np.bool_),
    np.dtype(np.uint8),
    np.dtype(np.int8),
    np.dtype(np.int16),
    np.dtype(np.int32),
    np.dtype(np.int64),
    np.dtype(np.float16),
    np.dtype(np.float32),
    np.dtype(np.float64),
    np.dtype(np.complex64),
    np.dtype(np.complex128),
}


def encode(obj: Any) -> Any:
    """Make ``obj`` loadable with ``weights_only=True`` (numpy → tagged dicts)."""
    if isinstance(obj, np.ndarray):
        arr = np.array(obj, copy=True, order="C")  # (ascontiguousarray would make 0-d 1-d)
        data: Any
        if arr.dtype in _TORCH_DTYPES:
            data = torch.from_numpy(arr)
        elif arr.dtype.kind in "biufc":
            data = arr.tobytes()
        else:
            raise TypeError(
                f"cannot save a numpy array of dtype {arr.dtype} (object/str arrays are not "
                "allowed in a state dict; use numeric arrays)"
            )
        return {_ND: data, "dtype": arr.dtype.str, "shape": list(arr.shape)}
    if isinstance(obj, np.generic):
        return {_NP_SCALAR: encode(np.asarray(obj))}
    if isinstance(obj, Mapping):
        return {k: encode(v) for k, v in obj.items()}
    if isinstance(obj, tuple):
        return tuple(encode(v) for v in obj)
    if isinstance(obj, list):
        return [encode(v) for v in obj]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return encode(dataclasses.asdict(obj))
    return obj


def decode(obj: Any) -> Any:
    """Inverse of :func:`encode`."""
    if isinstance(obj, dict):
        if _ND in obj and "dtype" in obj and "shape" in obj:
            dtype = np.dtype(obj["dtype"])
            data = obj[_ND]
            if isinstance(data, torch.Tensor):
                arr = data.numpy().astype(dtype, copy=False)
            else:
                arr = np.frombuffer(data, dtype=dtype).copy()
            return arr.reshape(obj["shape"])
        if _NP_SCALAR in obj and len(obj) == 1:
            return decode(obj[_NP_SCALAR])[()]
        return {k: decode(v) for k, v in obj.items()}
    if isinstance(obj, tuple):
        return tuple(decode(v) for v in obj)
    if isinstance(obj, list):
        return [decode(v) for v in obj]
    return obj


def versions() -> dict[str, str]:
    """Versions of the packages that determine a run's results."""
    import smpc_gym

    return {
        "smpc_gym": str(smpc_gym.__version__),
        "torch": str(torch.__version__),
        "numpy": str(np.__version__),
    }


def save_torch(path: str | os.PathLike[str], obj: Any) -> Path:
    """``torch.save`` ``obj`` into a verified file at ``path`` (atomically)."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    return write_verified(path, buf.getvalue())


def load_torch(path: str | os.PathLike[str]) -> Any:
    """Load a file written by :func:`save_torch`: hash first, then ``weights_only=True``.

    Raises:
        smpc_gym.storage.files.IntegrityError: (a subclass of it) naming the file when
            it is not the file that was written.
        pickle.UnpicklingError: the verified data holds objects ``weights_only`` refuses.
    """
    data = read_verified(path)
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def write_payload(path: str | os.PathLike[str], payload: Mapping[str, Any]) -> Path:
    """Save a saved-algorithm dict (``payload["format"] == FORMAT``) atomically, verified."""
    if payload.get("format") != FORMAT:
        raise ValueError(f"payload format must be {FORMAT!r}, got {payload.get('format')!r}")
    return save_torch(path, encode(dict(payload)))


def read_payload(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and verify a file written by :func:`write_payload`; numpy objects restored.

    Raises:
        FileNotFoundError: no file at ``path``.
        smpc_gym.storage.files.IntegrityError: the file is damaged, unverified, or holds
            another kind of data.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no saved algorithm at {path}")
    payload = load_torch(path)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise DamagedFileError(
            f"{path} is a verified file but not a smpc_gym algorithm file "
            f"(expected format {FORMAT!r})"
        )
    return decode(payload)
