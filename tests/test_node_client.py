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
        assert isinstance(joined, dict) and joined["loop_name"] == "Amsterdam_Layers"
        state = (await read_json(process.stdout))["presence_state"]
        assert isinstance(state, dict) and set(state["presences"]) == {python_member.user_id, joined["user_id"]}
        assert list((await python_member.diff()).joins) == [joined["user_id"]]

        process.stdin.write(b"play\n")
        await process.stdin.drain()
        assert (await python_member.diff()).joins[joined["user_id"]].metas[0].loop_event == PLAYED
        event = (await python_member.next("loop_event")).loop_event
        assert event.user_id == joined["user_id"] and event.type == PLAYED

        process.stdin.write(b"quit\n")
        await process.stdin.drain()
        assert list((await python_member.diff()).leaves) == [joined["user_id"]]
        assert await asyncio.wait_for(process.wait(), TIMEOUT) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
