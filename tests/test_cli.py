"""jam-cli against a real server: the JSON scripting mode and stats in a subprocess, the live screen through a pilot."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import trustme
from google.protobuf import json_format
from support import PLAYED, TIMEOUT, Harness, JamClient

from jamservice.auth import make_token
from jamservice.client.session import CLIENT_CHANNEL_OPTIONS, Target
from jamservice.tui import JamApp
from jamservice.v1 import jam_pb2 as pb

SECRET = "a-test-secret-long-enough-for-hs256-keys"
StartHarness = Callable[..., Awaitable[Harness]]


class Cli:
    """A jam-cli subprocess; its stdout is read without blocking the event loop the test server runs in."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    async def message(self, kind: str | None = None) -> pb.JamResponse:
        """The next JSON line on stdout, parsed back into a JamResponse."""
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), TIMEOUT)
        assert line, f"stdout ended; stderr: {await self.stderr()}"
        response = json_format.Parse(line, pb.JamResponse())
        if kind is not None:
            assert response.WhichOneof("kind") == kind, f"expected {kind}, got {line!r}"
        return response

    async def joined(self) -> pb.Joined:
        """Read Joined and the PresenceState after it."""
        joined = (await self.message("joined")).joined
        await self.message("presence_state")
        return joined

    async def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line.encode() + b"\n")
        await self.process.stdin.drain()

    def close_stdin(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()

    async def stderr(self) -> str:
        assert self.process.stderr is not None
        return (await asyncio.wait_for(self.process.stderr.read(), TIMEOUT)).decode()

    async def exit_code(self) -> int:
        return await asyncio.wait_for(self.process.wait(), TIMEOUT)


StartCli = Callable[..., Awaitable[Cli]]


async def next_loop_event(member: JamClient) -> pb.LoopEvent:
    """The member's next LoopEvent, past the presence update that comes with it."""
    while (response := await member.next()).WhichOneof("kind") != "loop_event":
        assert response.WhichOneof("kind") == "presence_diff", response
    return response.loop_event


@pytest.fixture
async def cli() -> AsyncIterator[StartCli]:
    """Start `python -m jamservice.cli ARGS`; every process is killed at the end of the test."""
    processes: list[asyncio.subprocess.Process] = []

    async def start(*args: str) -> Cli:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "jamservice.cli",
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        processes.append(process)
        return Cli(process)

    yield start
    for process in processes:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_json_join_plays_to_other_members_and_quit_leaves_cleanly(jam: Harness, cli: StartCli) -> None:
    player = await cli("join", "--json", "--server", jam.address, "--jam", "room", "--name", "cli")
    joined = await player.joined()
    assert joined.jam_id == "room" and joined.loop_name

    other = jam.client()
    state = await other.join("room", "bob")
    assert set(state.presences) == {joined.user_id, other.user_id}
    diff = (await player.message("presence_diff")).presence_diff
    assert list(diff.joins) == [other.user_id]
    assert diff.joins[other.user_id].metas[0].name == "bob"

    await player.send("play")
    event = await next_loop_event(other)
    assert event.user_id == joined.user_id and event.type == PLAYED
    update = (await player.message("presence_diff")).presence_diff
    assert update.joins[joined.user_id].metas[0].loop_event == PLAYED

    await player.send("ping")
    pong = (await player.message("pong")).pong
    assert pong.server_time_unix_nanos >= pong.client_time_unix_nanos > 0

    await player.send("quit")
    assert await player.exit_code() == 0
    leave = await other.diff()
    while joined.user_id not in leave.leaves:  # the play's update may come first
        leave = await other.diff()
    assert joined.user_id not in leave.joins
    assert await player.stderr() == ""


async def test_json_join_reports_unknown_commands_and_keeps_going(jam: Harness, cli: StartCli) -> None:
    player = await cli("join", "--json", "--server", jam.address)
    await player.joined()
    await player.send("dance")
    await player.send("ping")
    await player.message("pong")
    player.close_stdin()
    assert await player.exit_code() == 0
    lines = (await player.stderr()).splitlines()
    assert len(lines) == 1 and "dance" in lines[0]


async def test_json_join_follows_a_redirect_from_a_full_jam(jam: Harness, cli: StartCli) -> None:
    for _ in range(7):
        await jam.joined("full")
    player = await cli("join", "--json", "--server", jam.address, "--jam", "full")
    redirect = (await player.message("join_redirect")).join_redirect
    assert redirect.requested_jam_id == "full" and redirect.jam_id != "full"
    joined = await player.joined()
    assert joined.jam_id == redirect.jam_id
    await player.send("quit")
    assert await player.exit_code() == 0


async def test_json_join_to_an_unreachable_server_fails_with_one_line(cli: StartCli) -> None:
    player = await cli("join", "--json", "--server", "127.0.0.1:1", "--connect-timeout", "1")
    assert await player.exit_code() != 0
    lines = (await player.stderr()).splitlines()
    assert len(lines) == 1 and "127.0.0.1:1" in lines[0]


async def test_json_join_sends_the_token_and_fails_without_it(make_harness: StartHarness, cli: StartCli) -> None:
    jam = await make_harness(auth_secret=SECRET)
    token = make_token(SECRET, "carol")
    player = await cli("join", "--json", "--server", jam.address, "--token", token)
    assert (await player.joined()).user_id == "carol"
    player.close_stdin()
    assert await player.exit_code() == 0

    anonymous = await cli("join", "--json", "--server", jam.address)
    assert await anonymous.exit_code() != 0
    lines = (await anonymous.stderr()).splitlines()
    assert len(lines) == 1 and "UNAUTHENTICATED" in lines[0]


async def test_json_join_over_tls_trusts_the_given_ca(make_harness: StartHarness, cli: StartCli, tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    ca_file, cert_file, key_file = tmp_path / "ca.pem", tmp_path / "cert.pem", tmp_path / "key.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    cert.private_key_pem.write_to_path(str(key_file))
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    for pem in cert.cert_chain_pems[1:]:
        pem.write_to_path(str(cert_file), append=True)
    jam = await make_harness(tls_cert=str(cert_file), tls_key=str(key_file))

    player = await cli("join", "--json", "--server", jam.address, "--tls-ca", str(ca_file), "--jam", "secure")
    assert (await player.joined()).jam_id == "secure"
    player.close_stdin()
    assert await player.exit_code() == 0


async def test_stats_prints_each_jam_and_the_totals(jam: Harness, cli: StartCli) -> None:
    await jam.joined("alpha")
    await jam.joined("alpha")
    await jam.joined("beta")
    table = await cli("stats", "--server", jam.address)
    assert await table.exit_code() == 0
    assert table.process.stdout is not None
    text = (await table.process.stdout.read()).decode()
    rows = {line.split("│")[1].strip(): line.split("│")[2].strip() for line in text.splitlines() if line.count("│") == 3}
    assert rows["alpha"] == "2" and rows["beta"] == "1" and rows["2 jams"] == "3"

    as_json = await cli("stats", "--server", jam.address, "--json")
    assert await as_json.exit_code() == 0
    assert as_json.process.stdout is not None
    stats = json.loads(await as_json.process.stdout.read())
    assert stats["jamCount"] == 2 and stats["userCount"] == 3 and stats["jams"]["alpha"]["userCount"] == 2


def test_client_channel_options_keep_idle_streams_alive() -> None:
    options = dict(CLIENT_CHANNEL_OPTIONS)
    assert options["grpc.keepalive_time_ms"] == 20000 and options["grpc.keepalive_permit_without_calls"] == 1


async def until(app: JamApp, predicate: Callable[[], bool]) -> None:
    """Wait until the app's state satisfies the predicate; the app notifies after every change."""
    async with app.updated:
        await asyncio.wait_for(app.updated.wait_for(predicate), TIMEOUT)


def table_rows(app: JamApp) -> list[list[str]]:
    table = app.query_one("#members")
    return [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]  # type: ignore[attr-defined]


async def test_screen_shows_members_live_and_p_plays_to_the_others(jam: Harness) -> None:
    app = JamApp(Target(server=jam.address), jam_id="room", name="ann")
    async with app.run_test(size=(100, 30)) as pilot:
        await until(app, lambda: app.session is not None and app.session.joined.is_set())
        assert app.session is not None
        # Joined comes before the PresenceState that fills the table.
        await until(app, lambda: len(table_rows(app)) == 1)
        assert table_rows(app) == [["▶", "ann", app.session.loop_name, "-"]]

        bob = jam.client()
        await bob.join("room", "bob")
        await until(app, lambda: len(table_rows(app)) == 2)
        assert table_rows(app)[1] == ["", "bob", bob.loop_name, "-"]
        assert "bob joined with " + bob.loop_name in app.history

        await pilot.press("p")
        event = await next_loop_event(bob)
        assert event.user_id == app.session.user_id and event.type == PLAYED
        await until(app, lambda: table_rows(app)[0][3] == "♪ playing")
        assert "you play" in app.history

        await bob.play()
        await until(app, lambda: "bob plays" in app.history)
        await until(app, lambda: table_rows(app)[1][3] == "♪ playing")

        await pilot.press("space")
        await until(app, lambda: table_rows(app)[0][3] == "-")

        await bob.half_close()
        await until(app, lambda: len(table_rows(app)) == 1)
        assert "bob left (" + bob.loop_name + ")" in app.history

        await pilot.press("q")
        await until(app, lambda: app.return_code is not None)
    assert app.return_code == 0


async def test_screen_follows_a_redirect_and_says_so(jam: Harness) -> None:
    for _ in range(7):
        await jam.joined("full")
    app = JamApp(Target(server=jam.address), jam_id="full")
    async with app.run_test():
        await until(app, lambda: app.session is not None and app.session.joined.is_set())
        assert app.session is not None and app.session.jam_id != "full"
        assert f"jam full is full; joining {app.session.jam_id} instead" in app.history


async def test_screen_shows_a_failed_stream_and_exits_non_zero(make_harness: StartHarness) -> None:
    jam = await make_harness(auth_secret=SECRET)
    app = JamApp(Target(server=jam.address))
    async with app.run_test():
        await until(app, lambda: app.error is not None)
        assert app.error is not None and "UNAUTHENTICATED" in app.error
    assert app.return_code == 1
