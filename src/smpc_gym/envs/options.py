"""Checks shared by the envs: names that must be one of a known set, ``reset(options=...)``.

Every error names the bad value and lists what is allowed, with a close-match suggestion
for a misspelt name (``'initial_stok' (did you mean 'initial_stock'?)``).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["check_reset_options", "describe_unknown"]


def describe_unknown(keys: Iterable[Any], valid: Iterable[str]) -> str:
    """``"'a' (did you mean 'b'?), 'c'"``: the unknown ``keys``, each with its closest
    valid name when there is a close one."""
    valid = list(valid)
    parts = []
    for key in keys:
        close = difflib.get_close_matches(key, valid, n=1) if isinstance(key, str) else []
        parts.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    return ", ".join(parts)


def check_reset_options(
    owner: str,
    options: Any,
    valid: Iterable[str],
    *,
    ignored: Iterable[str] = (),
) -> dict[str, Any]:
    """Validate ``reset(options=...)`` of env ``owner``; return the recognised options.

    Args:
        owner: the env's name, for the message.
        options: what the caller passed: ``None`` or a mapping.
        valid: the option names the env understands.
        ignored: names accepted and dropped without effect (the PettingZoo envs list
            ``"options"``, which PettingZoo's own API tests pass to probe the signature).

    Raises:
        TypeError: ``options`` is neither ``None`` nor a mapping (``options="junk"``).
        ValueError: a key is not in ``valid``; the message lists the valid keys and
            suggests the closest one.
    """
    valid = sorted(valid)
    allowed = ", ".join(repr(v) for v in valid) if valid else "none"
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise TypeError(
            f"{owner}: reset options must be a dict or None, got {type(options).__name__} "
            f"{options!r}; allowed keys: {allowed}"
        )
    skip = set(ignored)
    unknown = [k for k in options if k not in valid and k not in skip]
    if unknown:
        raise ValueError(
            f"{owner}: unknown reset option(s) {describe_unknown(unknown, valid)}; "
            f"allowed keys: {allowed}"
        )
    return {k: v for k, v in options.items() if k in valid}
