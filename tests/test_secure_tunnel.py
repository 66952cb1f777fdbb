"""The tested recipe for running parties on different machines: an encrypted,
mutually authenticated TUN tunnel made with ``socat`` (TLS with certificates from one
small CA), carrying every port gloo uses.

Two network namespaces joined by a veth link (``benchmarks/netns.py``'s
:class:`Testbed`, private 10.78.0.0/24 addresses, nothing leaves this machine) stand
for two hosts. ``socat`` brings up a TLS tunnel between them with a TUN interface on each
side (10.79.0.1 and 10.79.0.2); both sides present a certificate signed by the CA and
verify the other's. Two separately started parties and the dealer then run a secure
multiplication over the tunnel addresses only, and the result must be right. A peer whose
certificate is not signed by the CA must fail to bring the tunnel up.

The commands are those of ``docs/security/transport.md``. Needs root, ``ip``, ``tc``,
``/dev/net/tun``, ``socat`` and ``openssl``; skipped with the reason otherwise.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import netns  # noqa: E402

TUN = "smpctun0"
TUN_IP = ("10.79.0.1", "10.79.0.2")
TLS_PORT = 4443
SERVER_CN = "smpc-party0"


def _skip_reason() -> str | None:
    reason = netns.unavailable()
    if reason is not None:
        return reason
    for tool in ("socat", "openssl"):
        if shutil.which(tool) is None:
            return f"the '{tool}' command is not installed (Debian: apt-get install {tool})"
    return None


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(_skip_reason() is not None, reason=str(_skip_reason())),
]


def _openssl(*args: str, cwd: Path) -> None:
    res = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, f"openssl {' '.join(args)}: {res.stderr[-1000:]}"


def _make_pki(d: Path) -> None:
    """A CA, two certificates it signs (party0, party1) and a self-signed rogue one.

    Each ``<name>.pem`` holds the key and the certificate, as socat's ``cert=`` wants.
    """
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
             "/CN=smpc-ca", "-keyout", "ca.key", "-out", "ca.crt", cwd=d)  # fmt: skip
    for name in ("party0", "party1"):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN=smpc-{name}",
                 "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=d)  # fmt: skip
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                 "-CAcreateserial", "-days", "2", "-out", f"{name}.crt", cwd=d)  # fmt: skip
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
             "/CN=smpc-party1", "-keyout", "rogue.key", "-out", "rogue.crt", cwd=d)  # fmt: skip
    for name in ("party0", "party1", "rogue"):
        (d / f"{name}.pem").write_text(
            (d / f"{name}.key").read_text() + (d / f"{name}.crt").read_text()
        )
        os.chmod(d / f"{name}.pem", 0o600)


def _server(tb: netns.Testbed, d: Path) -> subprocess.Popen:
    """Node 0: accept one TLS connection from a CA-signed peer, then bring up the TUN."""
    return subprocess.Popen(
        tb.exec_prefix(0)
        + [
            "socat",
            f"OPENSSL-LISTEN:{TLS_PORT},bind={tb.ip(0)},reuseaddr,cert={d}/party0.pem,"
            f"cafile={d}/ca.crt,verify=1",
            f"TUN:{TUN_IP[0]}/24,tun-name={TUN},iff-up",
        ],  # fmt: skip
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _client(tb: netns.Testbed, d: Path, cert: str) -> subprocess.Popen:
    """Node 1: connect to node 0 with ``cert``, check node 0's certificate, TUN up."""
    return subprocess.Popen(
        tb.exec_prefix(1)
        + [
            "socat",
            f"OPENSSL:{tb.ip(0)}:{TLS_PORT},cert={d}/{cert}.pem,cafile={d}/ca.crt,verify=1,"
            f"commonname={SERVER_CN}",
            f"TUN:{TUN_IP[1]}/24,tun-name={TUN},iff-up",
        ],  # fmt: skip
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _has_tun(tb: netns.Testbed, k: int) -> bool:
    res = subprocess.run(tb.exec_prefix(k) + ["ip", "link", "show", TUN], capture_output=True,
                         timeout=20)  # fmt: skip
    return res.returncode == 0


def _stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=10)


_PARTY = textwrap.dedent(
    """
    import torch
    from smpc_gym.secure.runtime import PartyConfig, run_party

    def fn(ctx):
        mine = torch.arange(1.0, 5.0) * (ctx.rank + 2)  # party 0: 2..8, party 1: 3..12
        a = ctx.crypten.cryptensor(mine if ctx.rank == 0 else torch.zeros(4), src=0)
        b = ctx.crypten.cryptensor(mine if ctx.rank == 1 else torch.zeros(4), src=1)
        return (a * b).get_plain_text().tolist()

    print("RESULT", run_party(fn, PartyConfig.from_env(timeout_s=300)))
    """
)
_DEALER = (
    "from smpc_gym.secure.runtime import PartyConfig, run_ttp_dealer; "
    "run_ttp_dealer(PartyConfig.from_env(timeout_s=300))"
)


@pytest.mark.timeout(900)
def test_parties_compute_across_an_authenticated_tls_tunnel(tmp_path: Path) -> None:
    _make_pki(tmp_path)
    procs: list[subprocess.Popen] = []
    with netns.Testbed(2, tag="tun") as tb:
        try:
            # a peer with a certificate the CA did not sign cannot bring the tunnel up
            rogue_srv, rogue = _server(tb, tmp_path), None
            procs.append(rogue_srv)
            time.sleep(1.0)
            rogue = _client(tb, tmp_path, "rogue")
            procs.append(rogue)
            rogue.wait(timeout=60)
            assert rogue.returncode != 0
            assert not _has_tun(tb, 1) and not _has_tun(tb, 0)
            _stop([rogue_srv])

            # the CA-signed peer does: a TUN on both sides once the TLS handshake passed
            procs.append(_server(tb, tmp_path))
            time.sleep(1.0)
            procs.append(_client(tb, tmp_path, "party1"))
            deadline = time.monotonic() + 60
            while not (_has_tun(tb, 0) and _has_tun(tb, 1)):
                for p in procs[-2:]:
                    assert p.poll() is None, f"socat exited: {p.stderr.read()[-2000:]}"
                assert time.monotonic() < deadline, "the tunnel did not come up in 60 s"
                time.sleep(0.2)

            # party 0 (rendezvous store) and the dealer on node 0, party 1 on node 1; every
            # address they use is a tunnel address, every gloo socket is on the TUN
            port = 29517
            roles = [(0, 0, _PARTY), (1, 1, _PARTY), (0, 2, _DEALER)]  # (node, rank, code)
            parties = []
            for node, rank, code in roles:
                env = dict(
                    os.environ,
                    PYTHONPATH=str(ROOT / "src"),
                    SMPC_RANK=str(rank),
                    SMPC_WORLD_SIZE="2",
                    SMPC_RENDEZVOUS=f"tcp://{TUN_IP[0]}:{port}",
                    GLOO_SOCKET_IFNAME=TUN,
                )
                parties.append(
                    subprocess.Popen(
                        tb.exec_prefix(node) + [sys.executable, "-c", code],
                        env=env,
                        stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE,
                        text=True,
                    )
                )
            procs += parties
            outs = [p.communicate(timeout=600) for p in parties]
            expected = (torch.arange(1.0, 5.0) * 2 * torch.arange(1.0, 5.0) * 3).tolist()
            for (_node, rank, _), p, (out, err) in zip(roles, parties, outs, strict=True):
                assert p.returncode == 0, f"rank {rank}: {err[-2000:]}"
                if rank < 2:
                    line = next(x for x in out.splitlines() if x.startswith("RESULT"))
                    got = torch.tensor(ast.literal_eval(line.split(" ", 1)[1]))
                    torch.testing.assert_close(got, torch.tensor(expected), atol=0.05, rtol=1e-3)
        finally:
            _stop(procs)
