"""save -> load gives identical actions for every registered algorithm; the checkpoint
format is weights_only-safe, verified and written atomically."""

from __future__ import annotations

import importlib
import io
import os
import pickle

import numpy as np
import pytest
import torch

from smpc_gym.agents.base import (
    _REGISTRY,
    NullHooks,
    algorithm_names,
    get_algorithm,
    load_algorithm,
)
from smpc_gym.storage import IntegrityError, UnverifiedFileError, files, payload
from smpc_gym.training.config import build_algorithm, resolve

# Short, cheap settings per algorithm (fields that exist in their Config).
TINY_STEPS = 200


def _module_exists(name: str) -> bool:
    module = _REGISTRY[name].split(":")[0]
    return importlib.util.find_spec(module) is not None


def _cases() -> list[tuple[str, str]]:
    cases = []
    for name in algorithm_names():
        if not _module_exists(name):
            # Only algorithms whose module is not in the tree are skipped.
            cases.append(pytest.param(name, "?", marks=pytest.mark.skip(f"{name}: no module")))
            continue
        try:
            envs = get_algorithm(name).envs
        except Exception:  # the module exists but is broken: fail in the test, not here
            envs = ("import-error",)
        for env in envs:
            cases.append((name, env))
    return cases


def _observations(algo, env: str) -> list:
    """A few observations of the algorithm's own env."""
    out = []
    if env == "greedy_mouse":
        import gymnasium as gym

        import smpc_gym  # noqa: F401

        e = gym.make("GreedyMouse-v0", **algo.env_kwargs)
        rng = np.random.default_rng(0)
        for seed in range(4):
            obs, _ = e.reset(seed=seed)
            out.append(obs)
            for _ in range(3):
                obs, *_ = e.step(int(rng.integers(e.action_space.n)))
                out.append(obs)
        e.close()
    else:
        from smpc_gym import supply_chain_v0

        e = supply_chain_v0.parallel_env(**algo.env_kwargs)
        for seed in range(4):
            obs, _ = e.reset(seed=seed)
            out.append(obs)
            obs, *_ = e.step({a: e.action_space(a).sample() for a in e.agents})
            out.append(obs)
        e.close()
    return out


def _assert_same_action(a, b) -> None:
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_array_equal(np.asarray(a[k]), np.asarray(b[k]))
    else:
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def _assert_same_state(a, b, where: str = "state") -> None:
    """Recursive equality of two state dicts (tensors, arrays, containers, scalars)."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b), where
    elif isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.dtype == b.dtype, where
        np.testing.assert_array_equal(a, b, err_msg=where)
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for k in a:
            _assert_same_state(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same_state(x, y, f"{where}[{i}]")
    else:
        assert a == b or (a != a and b != b), f"{where}: {a!r} != {b!r}"  # NaN == NaN


def _round_trip(algo, tmp_path):
    path = tmp_path / "model.pt"
    algo.save(path)
    loaded = type(algo).load(path)
    assert type(loaded) is type(algo)
    assert loaded.env_steps == algo.env_steps
    assert loaded.config == algo.config
    assert loaded.env_kwargs == algo.env_kwargs
    _assert_same_state(algo.state_dict(), loaded.state_dict())
    return loaded


@pytest.mark.parametrize(("name", "env"), _cases())
def test_save_load_identical_actions(name: str, env: str, tmp_path) -> None:
    torch.set_num_threads(1)
    if env == "import-error":
        get_algorithm(name)  # raises the module's import error
    run = resolve(name, env, seed=3, steps=TINY_STEPS)
    algo = build_algorithm(run)
    if name.startswith("secure_"):
        # Training needs the party processes (slow test below); here: the untrained
        # state (weights, optimisers, generators) must round-trip exactly.
        _round_trip(algo, tmp_path)
        return
    algo.train(TINY_STEPS, NullHooks())
    assert algo.env_steps >= TINY_STEPS
    loaded = _round_trip(algo, tmp_path)
    # Greedy actions must match. (Exploratory actions are not compared: SB3 draws them
    # from numpy's global RNG, which is not part of any algorithm's state.)
    for obs in _observations(algo, env):
        _assert_same_action(algo.act(obs), loaded.act(obs))


SECURE_TINY = {"secure_maddpg": ["hidden=8", "batch_size=16", "buffer_size=1000"]}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "env"),
    [c for c in _cases() if (c.values[0] if hasattr(c, "values") else c[0]).startswith("secure_")],
)
def test_secure_save_load_identical_actions_after_training(name: str, env: str, tmp_path) -> None:
    torch.set_num_threads(1)
    run = resolve(name, env, seed=3, steps=40, sets=SECURE_TINY.get(name, []))
    algo = build_algorithm(run)
    algo.train(40, NullHooks())  # spawns the parties (two processes, CrypTen)
    loaded = _round_trip(algo, tmp_path)
    for obs in _observations(algo, env):
        _assert_same_action(algo.act(obs), loaded.act(obs))


def test_numpy_state_round_trips_with_weights_only(tmp_path) -> None:
    state = {
        "f32": np.arange(6, dtype=np.float32).reshape(2, 3),
        "u16": np.array([1, 65535], dtype=np.uint16),  # not a torch dtype: stored as bytes
        "bool": np.array([True, False]),
        "scalar": np.float64(2.5),
        "int_scalar": np.int64(7),
        "gen": np.random.default_rng(5).bit_generator.state,
        "torch_gen": torch.Generator().manual_seed(1).get_state(),
        "nested": [np.zeros(2, np.int8), (np.ones(1), "text")],
    }
    path = tmp_path / "s.pt"
    payload.save_torch(path, payload.encode(state))
    back = payload.decode(payload.load_torch(path))
    for key in ("f32", "u16", "bool"):
        assert back[key].dtype == state[key].dtype
        np.testing.assert_array_equal(back[key], state[key])
    assert back["scalar"] == 2.5 and isinstance(back["scalar"], np.float64)
    assert back["int_scalar"] == 7 and isinstance(back["int_scalar"], np.int64)
    g = np.random.default_rng()
    g.bit_generator.state = back["gen"]
    assert g.random() == np.random.default_rng(5).random()
    assert torch.equal(back["torch_gen"], state["torch_gen"])
    assert back["nested"][1][1] == "text"
    assert back["nested"][0].dtype == np.int8


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_load_refuses_arbitrary_pickle(tmp_path) -> None:
    """Even inside a correctly hashed file (an attacker who can write the hash too),
    weights_only loading refuses non-tensor objects."""
    path = tmp_path / "evil.pt"
    buf = io.BytesIO()
    torch.save({"format": payload.FORMAT, "state": _Evil()}, buf)
    files.write_verified(path, buf.getvalue())
    with pytest.raises(pickle.UnpicklingError):
        load_algorithm(path)


def test_load_rejects_foreign_file(tmp_path) -> None:
    path = tmp_path / "weights.pt"
    torch.save({"weight": torch.zeros(2)}, path)  # a plain torch file: no hash header
    with pytest.raises(UnverifiedFileError, match=r"weights\.pt is not a verified smpc_gym file"):
        load_algorithm(path)
    payload.save_torch(path, {"weight": torch.zeros(2)})  # verified, but not an algorithm
    with pytest.raises(IntegrityError, match="not a smpc_gym algorithm file"):
        load_algorithm(path)


def test_atomic_write_keeps_old_file_on_failure(tmp_path, monkeypatch) -> None:
    path = tmp_path / "ckpt.pt"
    files.atomic_write_bytes(path, b"old")

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(files.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        files.atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]  # no temp file left
