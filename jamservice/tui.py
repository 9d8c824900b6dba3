"""The live jam screen of `jam-cli join`: who is in the jam, their loops, who plays; keys to play, stop and quit."""

from __future__ import annotations

import asyncio
import time
from typing import ClassVar

import grpc
from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Footer, Header, RichLog, Static

from jamservice.client.presence import arrivals_and_departures
from jamservice.client.session import PLAYED, JamSession, SessionError, Target, connect, describe
from jamservice.v1 import jam_pb2 as pb

# After q, how long the server gets to end the stream before the app gives up on a clean leave.
QUIT_TIMEOUT = 5.0
# Lines kept in the event log, on screen and in `history`.
LOG_LINES = 500


class JamApp(App[None]):
    """A live view of one jam; p plays, s stops, space toggles, q leaves."""

    TITLE = "jam-cli"
    CSS = """
    #status { height: auto; padding: 0 1; background: $boost; }
    #status.error { background: $error; color: $text; }
    #members { height: 1fr; }
    #log { height: 10; border-top: solid $primary; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("p", "play", "Play", priority=True),
        Binding("s", "stop", "Stop", priority=True),
        Binding("space", "toggle_loop", "Play/stop", priority=True),
        Binding("q", "leave", "Quit", priority=True),
    ]

    def __init__(self, target: Target, jam_id: str = "", name: str = "", connect_timeout: float = 5.0) -> None:
        super().__init__()
        self.target = target
        self.jam_id = jam_id
        self.player_name = name
        self.connect_timeout = connect_timeout
        self.session: JamSession | None = None
        self.error: str | None = None
        self.leaving = False
        self.history: list[str] = []
        # Notified after every change to the screen, so callers can wait for a state without polling.
        self.updated = asyncio.Condition()

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(f"connecting to {self.target.server} ...", id="status")
        yield DataTable(id="members", cursor_type="none", zebra_stripes=True)
        yield RichLog(id="log", max_lines=LOG_LINES, wrap=True)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#members", DataTable)
        table.add_column(" ", key="you", width=3)
        table.add_column("Player", key="player")
        table.add_column("Loop", key="loop")
        table.add_column("Playing", key="playing")
        self.run_worker(self._follow_stream(), name="jam-stream", exit_on_error=False)

    async def _follow_stream(self) -> None:
        try:
            channel = await connect(self.target, self.connect_timeout)
        except SessionError as error:
            await self._fail(str(error))
            return
        try:
            self.session = JamSession(channel, self.target.metadata())
            await self.session.join(self.jam_id, self.player_name)
            self._set_status(f"joining {self.jam_id or 'a jam'} on {self.target.server} ...")
            async for message in self.session.messages():
                self._show(message)
                await self._notify()
            if not self.leaving:
                self._add_log_line("the server ended the stream")
            self.exit(return_code=0)
        except grpc.aio.AioRpcError as error:
            await self._fail(f"stream failed: {describe(error)}")
        except (SessionError, asyncio.InvalidStateError) as error:
            await self._fail(str(error))
        finally:
            await channel.close()
            await self._notify()

    def _show(self, message: pb.JamResponse) -> None:
        session = self.session
        assert session is not None
        kind = message.WhichOneof("kind")
        if kind == "joined":
            self.sub_title = f"jam {session.jam_id}"
            self._add_log_line(f"joined jam {session.jam_id} with loop {session.loop_name}")
        elif kind == "join_redirect":
            redirect = message.join_redirect
            self._add_log_line(f"jam {redirect.requested_jam_id} is full; joining {redirect.jam_id} instead")
        elif kind == "presence_diff":
            joined, left = arrivals_and_departures(message.presence_diff)
            for meta in joined:
                self._add_log_line(f"{meta.name or meta.user_id} joined with {meta.loop_name}")
            for meta in left:
                self._add_log_line(f"{meta.name or meta.user_id} left ({meta.loop_name})")
            # The server sends no LoopEvent for the own loop; the own presence update confirms it instead.
            for meta in message.presence_diff.joins.get(session.user_id, pb.Presence()).metas:
                if meta.ref_prev and meta.loop_name == session.loop_name:
                    self._add_log_line("you play" if meta.loop_event == PLAYED else "you stopped")
        elif kind == "loop_event":
            event = message.loop_event
            verb = "plays" if event.type == PLAYED else "stopped"
            self._add_log_line(f"{session.display_name(event.user_id)} {verb}")
        elif kind == "pong":
            rtt_ms = (time.time_ns() - message.pong.client_time_unix_nanos) / 1e6
            self._add_log_line(f"pong: {rtt_ms:.1f} ms round trip")
        self._refresh_members()

    def _refresh_members(self) -> None:
        session = self.session
        if session is None or not session.joined.is_set():
            return
        table = self.query_one("#members", DataTable)
        table.clear()
        own = session.own_meta
        for meta in session.presence.metas():
            mine = own is not None and meta.ref == own.ref
            style = "bold" if mine else ""
            playing = meta.loop_event == PLAYED
            table.add_row(
                Text("▶" if mine else "", style="bold green"),
                Text(meta.name or meta.user_id, style=style),
                Text(meta.loop_name, style=style),
                Text("♪ playing" if playing else "-", style="green" if playing else "dim"),
                key=meta.ref,
            )
        state = "playing" if session.playing else "stopped"
        who = session.name or session.user_id
        self._set_status(
            f"You are {who} in jam {session.jam_id}, loop {session.loop_name}: {state}. "
            f"{len(session.presence.metas())} in the jam."
        )

    def _set_status(self, text: str) -> None:
        self.query_one("#status", Static).update(text)

    def _add_log_line(self, line: str) -> None:
        self.history.append(line)
        del self.history[:-LOG_LINES]
        self.query_one("#log", RichLog).write(line)

    async def _notify(self) -> None:
        async with self.updated:
            self.updated.notify_all()

    async def _fail(self, text: str) -> None:
        self.error = text
        self._add_log_line(text)
        status = self.query_one("#status", Static)
        status.update(text)
        status.add_class("error")
        await self._notify()
        # The screen goes away on exit; the error is printed on stderr after it, and the exit code says it failed.
        self.exit(return_code=1, message=f"jam-cli: {text}")

    async def _send(self, command: str) -> None:
        session = self.session
        if session is None or not session.joined.is_set() or self.leaving or self.error:
            self.bell()
            return
        try:
            if command == "play":
                await session.play()
            else:
                await session.stop()
        except (grpc.RpcError, asyncio.InvalidStateError):
            # The stream has ended; the stream worker reports why.
            pass

    async def action_play(self) -> None:
        """Start the own loop."""
        await self._send("play")

    async def action_stop(self) -> None:
        """Stop the own loop."""
        await self._send("stop")

    async def action_toggle_loop(self) -> None:
        """Play when stopped, stop when playing."""
        await self._send("stop" if self.session is not None and self.session.playing else "play")

    async def action_leave(self) -> None:
        """Leave the jam cleanly (half-close, wait for the server's OK); a second q exits at once."""
        session = self.session
        if session is None or self.error is not None or self.leaving:
            self.exit(return_code=1 if self.error else 0)
            return
        self.leaving = True
        self._add_log_line("leaving the jam ...")
        try:
            await session.half_close()
        except (grpc.RpcError, asyncio.InvalidStateError):
            self.exit(return_code=0)
            return
        self.set_timer(QUIT_TIMEOUT, self._leave_timed_out)

    def _leave_timed_out(self) -> None:
        self.exit(return_code=1, message=f"jam-cli: the server did not end the stream within {QUIT_TIMEOUT:g} s")
