"""TLS: a server with tls_cert and tls_key serves clients that trust its CA, and nobody else."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
import pytest
import trustme
from process_support import ROOT, clean_environ
from support import TIMEOUT, Harness, JamClient

from jamservice.v1 import jam_pb2 as pb
from jamservice.v1 import jam_pb2_grpc

StartHarness = Callable[..., Awaitable[Harness]]


@dataclasses.dataclass(frozen=True)
class Pems:
    """PEM files: the CA, and the server's certificate chain and key signed by it."""

    ca: Path
    cert: Path
    key: Path


def write_pems(directory: Path, ca: trustme.CA) -> Pems:
    server = ca.issue_cert("127.0.0.1", "localhost")
    pems = Pems(directory / "ca.pem", directory / "cert.pem", directory / "key.pem")
    ca.cert_pem.write_to_path(str(pems.ca))
    server.private_key_pem.write_to_path(str(pems.key))
    for i, pem in enumerate(server.cert_chain_pems):
        pem.write_to_path(str(pems.cert), append=i > 0)
    return pems


@pytest.fixture
def pems(tmp_path: Path) -> Pems:
    return write_pems(tmp_path, trustme.CA())


@pytest.fixture
async def tls_jam(make_harness: StartHarness, pems: Pems) -> Harness:
    return await make_harness(tls_cert=str(pems.cert), tls_key=str(pems.key))


def secure_channel(jam: Harness, ca_pem: bytes) -> grpc.aio.Channel:
    channel = grpc.aio.secure_channel(jam.address, grpc.ssl_channel_credentials(root_certificates=ca_pem))
    jam.channels.append(channel)
    return channel


async def stats_over(channel: grpc.aio.Channel) -> pb.GetStatsResponse:
    return await jam_pb2_grpc.JamServiceStub(channel).GetStats(pb.GetStatsRequest(), timeout=TIMEOUT)


async def test_client_trusting_the_ca_jams_over_tls(tls_jam: Harness, pems: Pems) -> None:
    ann = JamClient(secure_channel(tls_jam, pems.ca.read_bytes()))
    bob = JamClient(secure_channel(tls_jam, pems.ca.read_bytes()))
    tls_jam.clients += [ann, bob]
    await ann.join("sealed", "ann")
    state = await bob.join("sealed", "bob")
    assert set(state.presences) == {ann.user_id, bob.user_id}
    assert list((await ann.diff()).joins) == [bob.user_id]
    stats = await stats_over(ann.channel)
    assert stats.jams["sealed"].user_count == 2


async def test_plaintext_client_cannot_reach_a_tls_server(tls_jam: Harness) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stats_over(tls_jam.channel())
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_client_trusting_another_ca_cannot_reach_a_tls_server(tls_jam: Harness) -> None:
    stranger = trustme.CA()
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stats_over(secure_channel(tls_jam, stranger.cert_pem.bytes()))
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


async def jam_cli(*args: str) -> tuple[int, str, str]:
    """Run jam-cli to the end: exit code, stdout, stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "jamservice.cli", *args,
        cwd=ROOT, env=clean_environ(), stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), 3 * TIMEOUT)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_jam_cli_stats_over_tls_with_the_ca_and_not_without(tls_jam: Harness, pems: Pems) -> None:
    member = JamClient(secure_channel(tls_jam, pems.ca.read_bytes()))
    tls_jam.clients.append(member)
    await member.join("sealed")
    code, out, err = await jam_cli("stats", "--json", "--server", tls_jam.address, "--tls-ca", str(pems.ca))
    assert code == 0, err
    assert json.loads(out)["jams"]["sealed"]["userCount"] == 1

    code, out, err = await jam_cli("stats", "--server", tls_jam.address, "--connect-timeout", "2")
    assert code != 0 and not out
    assert tls_jam.address in err
