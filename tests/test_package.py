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
