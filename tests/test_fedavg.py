"""FedAvg and state-dict flattening (the interface the DQN engineers call)."""

import pytest
import torch

from smpc_gym.federated.fedavg import fedavg, flatten_state, unflatten_state


def _net(seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    return net.state_dict()


def test_fedavg_is_the_sample_weighted_mean() -> None:
    sds = [_net(s) for s in range(3)]
    out = fedavg(sds, [1, 2, 7])
    for k in ("0.weight", "2.bias"):
        expected = (1 * sds[0][k] + 2 * sds[1][k] + 7 * sds[2][k]) / 10
        torch.testing.assert_close(out[k], expected)
    assert out["1.num_batches_tracked"].dtype == torch.long
    # equal weights = arithmetic mean; one non-zero weight = that model
    torch.testing.assert_close(out["0.weight"], fedavg(sds, [0.1, 0.2, 0.7])["0.weight"])
    torch.testing.assert_close(fedavg(sds, [0, 5, 0])["0.bias"], sds[1]["0.bias"])


def test_fedavg_errors_name_the_problem() -> None:
    sds = [_net(0), _net(1)]
    with pytest.raises(ValueError, match="empty"):
        fedavg([], [])
    with pytest.raises(ValueError, match="2 state_dicts but 3 weights"):
        fedavg(sds, [1, 1, 1])
    with pytest.raises(ValueError, match=">= 0"):
        fedavg(sds, [1, -1])
    with pytest.raises(ValueError, match="all be zero"):
        fedavg(sds, [0, 0])
    bad = dict(sds[1])
    bad["0.weight"] = torch.zeros(5, 3)
    with pytest.raises(ValueError, match=r"0\.weight.*shape"):
        fedavg([sds[0], bad], [1, 1])
    del bad["0.weight"]
    with pytest.raises(ValueError, match="missing"):
        fedavg([sds[0], bad], [1, 1])


def test_flatten_roundtrip() -> None:
    sd = _net(4)
    v = flatten_state(sd)
    n = sum(t.numel() for t in sd.values() if t.is_floating_point())
    assert v.shape == (n,)
    back = unflatten_state(v * 2, sd)
    assert back.keys() == sd.keys()
    for k, t in sd.items():
        if t.is_floating_point():
            torch.testing.assert_close(back[k], t * 2)
        else:
            assert torch.equal(back[k], t)
    with pytest.raises(ValueError, match="elements"):
        unflatten_state(v[:-1], sd)
