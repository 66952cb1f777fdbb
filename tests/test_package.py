"""Package-level behaviour: registration and a light import."""

import subprocess
import sys


def test_import_is_light_and_registers():
    code = (
        "import sys, smpc_gym, gymnasium as gym, pettingzoo\n"
        "assert 'GreedyMouse-v0' in gym.registry\n"
        "assert 'smpc/SupplyChain-v0' in pettingzoo.parallel_registry\n"
        "assert 'smpc/GreedyMouse-v0' in pettingzoo.aec_registry\n"
        "heavy = [m for m in ('torch', 'crypten', 'pygame') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_unknown_attribute_is_an_error():
    import pytest

    import smpc_gym

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        smpc_gym.nope  # noqa: B018


def test_wheel_ships_maps_and_presets(tmp_path):
    """A non-editable install gets the maps and the agents/envs presets as package data."""
    import zipfile
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
        + ["-w", str(tmp_path), str(root)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("smpc_gym-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for kind, directory in (("agents", root / "agents"), ("envs", root / "envs")):
        shipped = sorted(p.name for p in directory.glob("*.yaml"))
        assert shipped, directory
        for name in shipped:
            assert f"smpc_gym/presets/{kind}/{name}" in names
    assert "smpc_gym/envs/greedy_mouse/maps/classic.txt" in names


def test_presets_found_outside_the_checkout(tmp_path, monkeypatch):
    """From any directory the shipped presets apply; a local agents/ file overrides."""
    from smpc_gym.training.config import PACKAGE_PRESETS, preset_file, resolve

    monkeypatch.chdir(tmp_path)
    assert preset_file("agents", "dqn") == PACKAGE_PRESETS / "agents" / "dqn.yaml"
    run = resolve("fed_dqn", "greedy_mouse")
    assert run.config["train_every"] == 1 and run.steps == 300_000  # the preset, not defaults
    (tmp_path / "agents").mkdir()
    (tmp_path / "agents" / "fed_dqn.yaml").write_text(
        "greedy_mouse:\n  steps: 123\n  config: {train_every: 3}\n"
    )
    assert preset_file("agents", "fed_dqn") == tmp_path / "agents" / "fed_dqn.yaml"
    run = resolve("fed_dqn", "greedy_mouse")
    assert run.config["train_every"] == 3 and run.steps == 123
