"""jam-cli: join a jam from the terminal (live screen or JSON lines) and show a server's stats."""

from __future__ import annotations

import argparse
import asyncio
import codecs
import os
import sys
import threading
from collections.abc import Sequence

import grpc
from google.protobuf import json_format

from jamservice.client.session import DEFAULT_SERVER, JamSession, SessionError, Target, connect, describe, fetch_stats
from jamservice.v1 import jam_pb2 as pb

COMMANDS = ("play", "stop", "ping", "quit")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser: `join` and `stats` subcommands sharing the connection flags."""
    connection = argparse.ArgumentParser(add_help=False)
    group = connection.add_argument_group("connection")
    group.add_argument("--server", default=DEFAULT_SERVER, metavar="HOST:PORT", help=f"server (default {DEFAULT_SERVER})")
    group.add_argument(
        "--token",
        default=os.environ.get("JAM_TOKEN", ""),
        metavar="JWT",
        help="bearer token sent as 'authorization: Bearer <JWT>' (env JAM_TOKEN)",
    )
    group.add_argument("--tls-ca", default="", metavar="PEM_FILE", help="use TLS, trusting this CA certificate")
    group.add_argument(
        "--connect-timeout", type=float, default=5.0, metavar="SECONDS", help="give up connecting after this long (default 5)"
    )

    parser = argparse.ArgumentParser(
        prog="jam-cli",
        description="Play in a jam from the terminal, or look at a jam server.",
        epilog="Run 'jam-cli join --help' or 'jam-cli stats --help' for each command's flags.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    join = commands.add_parser(
        "join",
        parents=[connection],
        help="join a jam",
        description=(
            "Join a jam. By default a live screen shows every member, their loop and whether it plays; "
            "keys: p play, s stop, space toggle, q quit. With --json, commands are read one a line from stdin "
            f"({', '.join(COMMANDS)}) and every server message is written as one JSON object a line on stdout."
        ),
        epilog=(
            "A full jam answers with a redirect, which is followed by itself. Exit status: 0 after q, quit or end "
            "of input once the server has ended the stream; 1 when the server cannot be reached or the stream fails "
            "(the reason goes to stderr)."
        ),
    )
    join.add_argument("--jam", default="", metavar="ID", help="jam to join (default: let the server choose)")
    join.add_argument("--name", default="", help="display name shown to the other players")
    join.add_argument("--json", action="store_true", help="scripting mode: commands on stdin, JSON lines on stdout")
    stats = commands.add_parser(
        "stats", parents=[connection], help="show a server's jams and players", description="Show a server's jams and players."
    )
    stats.add_argument("--json", action="store_true", help="print the GetStats response as one JSON line")
    return parser


def _fail(message: str) -> int:
    print(f"jam-cli: {message}", file=sys.stderr, flush=True)
    return 1


def _start_line_reader(fd: int, queue: asyncio.Queue[str | None]) -> None:
    """Feed the lines of a file descriptor into the queue from a daemon thread, ending with None.

    A thread because stdin may be a file, a pipe or a terminal and only a pipe can be awaited; raw os.read
    because a daemon thread blocked inside sys.stdin's buffer would hold its lock at interpreter exit.
    """
    loop = asyncio.get_running_loop()

    def read() -> None:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        pending = ""
        try:
            while chunk := os.read(fd, 65536):
                pending += decoder.decode(chunk)
                *lines, pending = pending.split("\n")
                for line in lines:
                    loop.call_soon_threadsafe(queue.put_nowait, line)
            pending += decoder.decode(b"", final=True)
            if pending:
                loop.call_soon_threadsafe(queue.put_nowait, pending)
            loop.call_soon_threadsafe(queue.put_nowait, None)
        except (RuntimeError, OSError):
            # The loop closed or stdin went away while we were exiting; nobody is listening any more.
            pass

    threading.Thread(target=read, name="jam-cli-stdin", daemon=True).start()


async def _run_commands(session: JamSession, lines: asyncio.Queue[str | None]) -> None:
    """Send stdin's commands until quit or end of input, then half-close."""
    try:
        while (line := await lines.get()) is not None:
            command = line.strip()
            if not command:
                continue
            if command == "quit":
                break
            if command not in COMMANDS:
                _fail(f"unknown command {command!r}; expected one of {', '.join(COMMANDS)}")
                continue
            # Loop events before the seat (say, while following a redirect) would end the stream.
            await session.joined.wait()
            if command == "play":
                await session.play()
            elif command == "stop":
                await session.stop()
            else:
                await session.ping()
        await session.half_close()
    except (grpc.RpcError, asyncio.InvalidStateError):
        # The stream has ended; reading it reports why.
        pass


async def run_join_json(target: Target, jam_id: str, name: str, connect_timeout: float, stdin_fd: int) -> int:
    """Scripting mode: stdin commands in, one JSON object per server message out."""
    try:
        channel = await connect(target, connect_timeout)
    except SessionError as error:
        return _fail(str(error))
    try:
        session = JamSession(channel, target.metadata())
        lines: asyncio.Queue[str | None] = asyncio.Queue()
        commands: asyncio.Task[None] | None = None
        try:
            await session.join(jam_id, name)
            _start_line_reader(stdin_fd, lines)
            commands = asyncio.create_task(_run_commands(session, lines))
            async for message in session.messages():
                print(json_format.MessageToJson(message, indent=None), flush=True)
        except grpc.aio.AioRpcError as error:
            return _fail(f"stream failed: {describe(error)}")
        except SessionError as error:
            return _fail(str(error))
        finally:
            if commands is not None:
                commands.cancel()
                await asyncio.gather(commands, return_exceptions=True)
        return 0
    finally:
        await channel.close()


async def run_stats(target: Target, connect_timeout: float, as_json: bool) -> int:
    """Print the server's jams with their player counts, and the totals."""
    try:
        channel = await connect(target, connect_timeout)
    except SessionError as error:
        return _fail(str(error))
    try:
        stats = await fetch_stats(channel, target, connect_timeout)
    except grpc.aio.AioRpcError as error:
        return _fail(f"stats failed: {describe(error)}")
    finally:
        await channel.close()
    if as_json:
        print(json_format.MessageToJson(stats, indent=None, always_print_fields_with_no_presence=True), flush=True)
    else:
        print_stats(stats)
    return 0


def print_stats(stats: pb.GetStatsResponse) -> None:
    """A table of jams and player counts, with the totals as its footer."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title="jams on this server", show_footer=True)
    table.add_column("Jam", footer=f"{stats.jam_count} jam{'s' if stats.jam_count != 1 else ''}")
    table.add_column("Players", justify="right", footer=str(stats.user_count))
    for jam_id in sorted(stats.jams):
        table.add_row(jam_id, str(stats.jams[jam_id].user_count))
    Console().print(table)


def run(argv: Sequence[str] | None = None) -> int:
    """Run jam-cli and return its exit code."""
    args = build_parser().parse_args(argv)
    target = Target(server=args.server, token=args.token, tls_ca=args.tls_ca)
    if args.tls_ca and not os.path.isfile(args.tls_ca):
        return _fail(f"--tls-ca {args.tls_ca}: no such file")
    if args.connect_timeout <= 0:
        return _fail("--connect-timeout must be positive")
    try:
        if args.command == "stats":
            return asyncio.run(run_stats(target, args.connect_timeout, args.json))
        if args.json:
            return asyncio.run(run_join_json(target, args.jam, args.name, args.connect_timeout, sys.stdin.fileno()))
        from jamservice.tui import JamApp

        app = JamApp(target, jam_id=args.jam, name=args.name, connect_timeout=args.connect_timeout)
        app.run()
        return app.return_code or 0
    except KeyboardInterrupt:
        return 130


def main() -> None:
    """Console entry point of jam-cli."""
    try:
        code = run()
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader of our output went away (`jam-cli join --json | head -1`): that is an ending, not an error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 0
    sys.exit(code)


if __name__ == "__main__":
    main()
