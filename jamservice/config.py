"""Server settings: every limit is a flag and an environment variable."""

from __future__ import annotations

import argparse
import math
import os
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
MIN_OUTBOX = 8


def _setting(default: Any, help: str, env: str) -> Any:
    return field(default=default, metadata={"help": help, "env": env})


@dataclass(frozen=True)
class Settings:
    """jam-server's configuration."""

    listen: str = _setting("127.0.0.1:50051", "address to listen on, HOST:PORT (port 0 picks a free one)", "JAM_LISTEN")
    backend: str = _setting("memory://", "where jam state lives: memory://", "JAM_BACKEND")
    loops: str = _setting("", "loop catalog file, one name a line (default: the seven original loops)", "JAM_LOOPS")
    grace_seconds: float = _setting(5.0, "on SIGTERM/SIGINT, seconds to finish before exiting", "JAM_GRACE_SECONDS")
    outbox_size: int = _setting(256, "messages queued per stream before it is ended as a slow consumer", "JAM_OUTBOX_SIZE")
    max_message_bytes: int = _setting(16384, "largest request message accepted", "JAM_MAX_MESSAGE_BYTES")
    loop_event_rate: float = _setting(20.0, "loop events a second allowed per stream, on average", "JAM_LOOP_EVENT_RATE")
    loop_event_burst: float = _setting(40.0, "loop events a stream may send in a burst", "JAM_LOOP_EVENT_BURST")
    ping_rate: float = _setting(20.0, "pings a second allowed per stream, on average", "JAM_PING_RATE")
    ping_burst: float = _setting(100.0, "pings a stream may send in a burst", "JAM_PING_BURST")
    max_streams: int = _setting(20000, "concurrent Jam streams per process", "JAM_MAX_STREAMS")
    max_streams_per_connection: int = _setting(
        1000, "concurrent streams per HTTP/2 connection; more wait in the client", "JAM_MAX_STREAMS_PER_CONNECTION"
    )
    join_timeout_seconds: float = _setting(
        10.0, "seconds a new stream has to take its first seat", "JAM_JOIN_TIMEOUT_SECONDS"
    )
    keepalive_seconds: float = _setting(10.0, "idle seconds before the server pings a client", "JAM_KEEPALIVE_SECONDS")
    keepalive_timeout_seconds: float = _setting(
        10.0, "seconds to wait for a ping's answer before dropping the client", "JAM_KEEPALIVE_TIMEOUT_SECONDS"
    )
    auth_secret: str = _setting("", "HS256 secret; when set, streams need a bearer JWT", "JAM_AUTH_SECRET")
    tls_cert: str = _setting("", "PEM certificate chain; with --tls-key, serve TLS", "JAM_TLS_CERT")
    tls_key: str = _setting("", "PEM private key for --tls-cert", "JAM_TLS_KEY")
    log_level: str = _setting("INFO", "logging level", "JAM_LOG_LEVEL")

    @classmethod
    def from_args(cls, argv: list[str] | None = None, environ: dict[str, str] | None = None) -> Settings:
        """Read settings from flags, then environment variables, then defaults."""
        env = os.environ if environ is None else environ
        parser = argparse.ArgumentParser(prog="jam-server", description="Serve jams over gRPC.")
        for f in fields(cls):
            assert f.default is not MISSING
            kind = type(f.default)
            default = f.default
            raw = env.get(f.metadata["env"])
            if raw is not None:
                try:
                    default = kind(raw)
                except ValueError:
                    parser.error(f"environment variable {f.metadata['env']}: invalid {kind.__name__} value {raw!r}")
            parser.add_argument(
                "--" + f.name.replace("_", "-"),
                type=kind,
                default=default,
                help=f"{f.metadata['help']} (env {f.metadata['env']}, default {f.default!r})",
            )
        settings = cls(**vars(parser.parse_args(argv)))
        problem = settings.problem()
        if problem:
            parser.error(problem)
        return settings

    def problem(self) -> str | None:
        """What is wrong with these settings, if anything."""
        positive = ("grace_seconds", "outbox_size", "max_message_bytes", "loop_event_rate", "loop_event_burst",
                    "ping_rate", "ping_burst", "max_streams", "max_streams_per_connection", "join_timeout_seconds",
                    "keepalive_seconds", "keepalive_timeout_seconds")
        for name in positive:
            value = getattr(self, name)
            if not math.isfinite(value) or value <= 0:
                return f"--{name.replace('_', '-')} must be a positive, finite number"
        host, _, port = self.listen.rpartition(":")
        if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            return f"--listen must be HOST:PORT with a port from 0 to 65535, not {self.listen!r}"
        if self.outbox_size < MIN_OUTBOX:
            return f"--outbox-size must be at least {MIN_OUTBOX}: a join alone queues two messages"
        if self.log_level.upper() not in LOG_LEVELS:
            return f"--log-level must be one of {', '.join(LOG_LEVELS)}"
        if bool(self.tls_cert) != bool(self.tls_key):
            return "--tls-cert and --tls-key go together"
        return None
