"""Saving and loading algorithms: ``model.pt`` and the run folder's checkpoints.

A saved algorithm is one ``torch.save`` file holding a plain dict::

    {"format": "smpc_gym.algorithm/1", "name": "<--algo name>", "config": {field: value},
     "env_kwargs": {...}, "seed": int, "env_steps": int, "state": algo.state_dict(),
     "versions": {"smpc_gym": ..., "torch": ..., "numpy": ...}}

It is loaded with ``torch.load(weights_only=True)``: no arbitrary pickle is ever
executed. ``weights_only`` accepts tensors and plain Python containers/scalars but not
numpy objects, so numpy arrays in a state dict are stored as tagged dicts
(``{"__ndarray__": tensor-or-bytes, "dtype": str, "shape": [...]}``) and numpy scalars
as tagged 0-d arrays; :func:`load_algorithm` turns them back, so algorithms see exactly
the numpy objects they saved.

Writes are atomic (temp file in the same folder, ``fsync``, ``os.replace``): a crash or
Ctrl-C during a save leaves the previous file intact.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

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


def _encode(obj: Any) -> Any:
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
        return {_NP_SCALAR: _encode(np.asarray(obj))}
    if isinstance(obj, Mapping):
        return {k: _encode(v) for k, v in obj.items()}
    if isinstance(obj, tuple):
        return tuple(_encode(v) for v in obj)
    if isinstance(obj, list):
        return [_encode(v) for v in obj]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return _encode(dataclasses.asdict(obj))
    return obj


def _decode(obj: Any) -> Any:
    """Inverse of :func:`_encode`."""
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
            return _decode(obj[_NP_SCALAR])[()]
        return {k: _decode(v) for k, v in obj.items()}
    if isinstance(obj, tuple):
        return tuple(_decode(v) for v in obj)
    if isinstance(obj, list):
        return [_decode(v) for v in obj]
    return obj


def versions() -> dict[str, str]:
    """Versions of the packages that determine a run's results."""
    import smpc_gym

    return {
        "smpc_gym": str(smpc_gym.__version__),
        "torch": str(torch.__version__),
        "numpy": str(np.__version__),
    }


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: temp file, fsync, ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    # Make the rename itself durable (best effort; not every platform can fsync a dir).
    with contextlib.suppress(OSError):
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def algorithm_payload(algo: Any) -> dict[str, Any]:
    """The dict :func:`save_algorithm` writes (before numpy encoding)."""
    return {
        "format": FORMAT,
        "name": algo.name,
        "config": dataclasses.asdict(algo.config),
        "env_kwargs": dict(algo.env_kwargs),
        "seed": int(algo.seed),
        "env_steps": int(algo.env_steps),
        "state": algo.state_dict(),
        "versions": versions(),
    }


def save_algorithm(algo: Any, path: str | Path) -> None:
    """Save ``algo`` (an :class:`~smpc_gym.agents.base.Algorithm`) to ``path`` atomically."""
    buf = io.BytesIO()
    torch.save(_encode(algorithm_payload(algo)), buf)
    atomic_write_bytes(path, buf.getvalue())


def read_payload(path: str | Path) -> dict[str, Any]:
    """Read a file written by :func:`save_algorithm` (``weights_only=True``), decoded."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no saved algorithm at {path}")
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path} is not a smpc_gym algorithm file (format {FORMAT!r})")
    return _decode(payload)


def build_config(config_cls: type, values: Mapping[str, Any]) -> Any:
    """Rebuild a config dataclass from a dict (lists become tuples where the default is)."""
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValueError(
            f"unknown {config_cls.__name__} field(s) {unknown}; valid: {sorted(fields)}"
        )
    return config_cls(**dict(values))


def load_algorithm(path: str | Path) -> Any:
    """Load an algorithm saved with :func:`save_algorithm`, rebuilt via the registry."""
    from smpc_gym.agents.base import get_algorithm

    payload = read_payload(path)
    cls = get_algorithm(payload["name"])
    config = build_config(cls.Config, payload["config"])
    algo = cls(config, payload["env_kwargs"], payload["seed"])
    algo.load_state_dict(payload["state"])
    algo.env_steps = int(payload.get("env_steps", algo.env_steps))
    return algo
