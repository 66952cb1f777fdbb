"""Load a script that is not part of the package (a benchmark, an example, the docs
generator) as a module, for tests that call its functions directly."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def load_script(path: Path, name: str | None = None, *, siblings: bool = False) -> ModuleType:
    """Execute the Python file ``path`` as a fresh module named ``name`` (its stem).

    ``siblings=True`` puts the file's directory on ``sys.path`` first (and leaves it
    there), for scripts that import their neighbours, such as the benchmarks.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
    """
    if not path.is_file():
        raise FileNotFoundError(f"no script at {path}")
    if siblings and str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(name or path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
