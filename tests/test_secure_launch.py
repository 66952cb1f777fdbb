"""The one launch helper: local launch, or this process as one party."""

from __future__ import annotations

import pytest

from smpc_gym.secure.launch import party_config_for


def test_no_rank_means_a_local_launch() -> None:
    assert party_config_for({}, 3, timeout_s=5.0, provider="TTP", algo="x") is None


def test_rank_options_and_environment_build_this_party(monkeypatch) -> None:
    monkeypatch.setenv("SMPC_RENDEZVOUS", "tcp://10.0.0.1:2000")
    opts = {"rank": 1, "world_size": 3}
    pc = party_config_for(opts, 3, timeout_s=5.0, provider="TTP", algo="x")
    assert pc is not None
    assert (pc.rank, pc.world_size, pc.rendezvous) == (1, 3, "tcp://10.0.0.1:2000")
    assert (pc.timeout_s, pc.provider) == (5.0, "TTP")
    opts["rendezvous"] = "tcp://127.0.0.1:29500"  # an explicit option wins
    pc = party_config_for(opts, 3, timeout_s=5.0, provider="TTP", algo="x")
    assert pc is not None and pc.rendezvous == "tcp://127.0.0.1:29500"


def test_a_group_of_the_wrong_size_is_refused() -> None:
    with pytest.raises(ValueError, match=r"secure_thing runs 3 parties; got --world-size 2"):
        party_config_for(
            {"rank": 0, "world_size": 2}, 3, timeout_s=5.0, provider="TTP", algo="secure_thing"
        )
