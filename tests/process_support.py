"""Helpers for tests that need real processes or a broken network: a jam-server subprocess, and a TCP proxy."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STARTUP_TIMEOUT = 20.0
_LISTENING = re.compile(r"jam-server listening on (\S+):(\d+) \(")


def clean_environ() -> dict[str, str]:
    """This process's environment without JAM_* variables, so a server sees only the flags a test gives it."""
    return {key: value for key, value in os.environ.items() if not key.startswith("JAM_")}


class ServerProcess:
    """A jam-server running as a child process; its log lines are collected as they come."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.port = 0
        self.lines: list[str] = []
        self._listening: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._reader = asyncio.create_task(self._collect())

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log(self) -> str:
        return "".join(self.lines)

    async def _collect(self) -> None:
        assert self.process.stderr is not None
        while line := (await self.process.stderr.readline()).decode(errors="replace"):
            self.lines.append(line)
            match = _LISTENING.search(line)
            if match and not self._listening.done():
                self._listening.set_result(int(match.group(2)))
        if not self._listening.done():
            self._listening.set_exception(AssertionError(f"jam-server exited before listening:\n{self.log}"))

    async def wait_listening(self, timeout: float = STARTUP_TIMEOUT) -> int:
        """The port from the server's "listening on" log line."""
        self.port = await asyncio.wait_for(asyncio.shield(self._listening), timeout)
        return self.port

    def send_signal(self, sig: signal.Signals) -> None:
        self.process.send_signal(sig)

    async def wait(self, timeout: float) -> int:
        """The exit code, once the process has exited and its log is read to the end."""
        code = await asyncio.wait_for(self.process.wait(), timeout)
        await asyncio.wait_for(self._reader, timeout)
        return code

    async def kill(self) -> None:
        """Kill the process if it still runs, and reap it."""
        if self.process.returncode is None:
            self.process.kill()
        await self.process.wait()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


@contextlib.asynccontextmanager
async def jam_server_process(*args: str) -> AsyncIterator[ServerProcess]:
    """Run `python -m jamservice.server --listen 127.0.0.1:0 ARGS` until the block ends; killed if still running."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "jamservice.server", "--listen", "127.0.0.1:0", *args,
        cwd=ROOT, env=clean_environ(), stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    server = ServerProcess(process)
    try:
        await server.wait_listening()
        yield server
    finally:
        await server.kill()


# A member in its own process: joins a jam, prints its user id, then holds the stream open and does nothing.
SILENT_MEMBER = """
import sys, threading
import grpc
from jamservice.v1 import jam_pb2 as pb, jam_pb2_grpc

address, jam_id = sys.argv[1], sys.argv[2]
forever = threading.Event()

def requests():
    yield pb.JamRequest(join=pb.Join(jam_id=jam_id, name="silent"))
    forever.wait()

channel = grpc.insecure_channel(address)
for response in jam_pb2_grpc.JamServiceStub(channel).Jam(requests()):
    if response.HasField("joined"):
        print(response.joined.user_id, flush=True)
"""


@contextlib.asynccontextmanager
async def member_process(address: str, jam_id: str) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    """A joined member in a child process, with the user id it got; SIGKILLed when the block ends."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", SILENT_MEMBER, address, jam_id,
        cwd=ROOT, env=clean_environ(), stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), STARTUP_TIMEOUT)
        user_id = line.decode().strip()
        assert user_id, "the member process ended before it joined"
        yield process, user_id
    finally:
        if process.returncode is None:
            # SIGKILL also ends a process that is stopped with SIGSTOP.
            process.send_signal(signal.SIGKILL)
        await process.wait()


class FreezingProxy:
    """A TCP proxy that can stop forwarding in both directions while keeping every socket open.

    Frozen, it reads nothing and writes nothing, as when the network between two hosts is gone
    without either side seeing a reset.
    """

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def freeze(self) -> None:
        """Stop forwarding; bytes in flight are held, never delivered."""
        self._flowing.clear()

    async def close(self) -> None:
        """Stop listening, end the pumps, and close every socket."""
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await task
        for writer in self._writers:
            writer.close()
        if self._server is not None:
            await self._server.wait_closed()

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(*self.upstream)
        self._writers += [client_writer, upstream_writer]
        for reader, writer in ((client_reader, upstream_writer), (upstream_reader, client_writer)):
            task = asyncio.create_task(self._pump(reader, writer))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await self._flowing.wait()
            data = await reader.read(65536)
            if not data:
                writer.close()
                return
            await self._flowing.wait()
            writer.write(data)
            await writer.drain()


@contextlib.asynccontextmanager
async def freezing_proxy(upstream: str) -> AsyncIterator[FreezingProxy]:
    """A FreezingProxy in front of HOST:PORT for the duration of the block."""
    host, port = upstream.rsplit(":", 1)
    proxy = FreezingProxy(host, int(port))
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.close()
