"""A client in another language, loaded from the proto, jams with a Python member."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

from support import PLAYED, TIMEOUT, Harness

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "clients" / "node" / "jam-client.js"


async def read_json(stream: asyncio.StreamReader) -> dict[str, object]:
    line = await asyncio.wait_for(stream.readline(), TIMEOUT)
    assert line, "node client ended early"
    return json.loads(line)  # type: ignore[no-any-return]


async def test_node_client_joins_plays_and_leaves_with_a_python_member(jam: Harness) -> None:
    node = shutil.which("node")
    assert node, "node is required for the cross-language client test"
    assert (ROOT / "node_modules" / "@grpc" / "grpc-js").is_dir(), "run `make install` to fetch the Node.js client packages"
    python_member = await jam.joined("polyglot", "py")
    process = await asyncio.create_subprocess_exec(
        node, str(SCRIPT), "--server", jam.address, "--jam", "polyglot", "--name", "js",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdin and process.stdout
    try:
        joined = (await read_json(process.stdout))["joined"]
        assert isinstance(joined, dict) and joined["loopName"] == "Amsterdam_Layers"
        state = (await read_json(process.stdout))["presenceState"]
        assert isinstance(state, dict) and set(state["presences"]) == {python_member.user_id, joined["userId"]}
        assert list((await python_member.diff()).joins) == [joined["userId"]]

        process.stdin.write(b"play\n")
        await process.stdin.drain()
        assert (await python_member.diff()).joins[joined["userId"]].metas[0].loop_event == PLAYED
        event = (await python_member.next("loop_event")).loop_event
        assert event.user_id == joined["userId"] and event.type == PLAYED

        process.stdin.write(b"quit\n")
        await process.stdin.drain()
        assert list((await python_member.diff()).leaves) == [joined["userId"]]
        assert await asyncio.wait_for(process.wait(), TIMEOUT) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_node_client_follows_a_redirect_and_runs_piped_commands_once_seated(jam: Harness) -> None:
    node = shutil.which("node")
    assert node, "node is required for the cross-language client test"
    for _ in range(7):
        await jam.joined("full")
    process = await asyncio.create_subprocess_exec(
        node, str(SCRIPT), "--server", jam.address, "--jam", "full",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(b"play\nquit\n"), TIMEOUT)
    assert process.returncode == 0, err.decode()
    kinds = [next(iter(json.loads(line))) for line in out.decode().splitlines()]
    assert kinds == ["joinRedirect", "joined", "presenceState", "presenceDiff"]
