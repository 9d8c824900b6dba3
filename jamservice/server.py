"""jam-server: builds the gRPC server, serves until SIGINT or SIGTERM, then stops gracefully."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from jamservice import wire
from jamservice.backends import backend_from_url
from jamservice.config import Settings
from jamservice.hub import JamHub
from jamservice.loops import LoopCycler
from jamservice.servicer import SERVICE_NAME, JamServicer
from jamservice.v1 import jam_pb2

log = logging.getLogger("jamservice")

# Clients may ping this often (with the README's recommended client options they ping every 20 s).
MIN_CLIENT_PING_INTERVAL_MS = 5000
# HS256 secrets shorter than the hash are weak (RFC 7518, section 3.2).
MIN_SECRET_BYTES = 32
# Python's defaults are (700, 10, 10).
GC_THRESHOLDS = (20000, 50, 100)
# Of the shutdown grace period, the time kept for cancelling what is left and exiting.
STOP_MARGIN_SECONDS = 0.3
# grpc core's own hard limit of calls waiting to be picked up.
MIN_PENDING_CALLS = 3000


def server_options(settings: Settings) -> list[tuple[str, int]]:
    """gRPC channel arguments: message size limit and keepalive policy."""
    return [
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.keepalive_time_ms", int(settings.keepalive_seconds * 1000)),
        ("grpc.keepalive_timeout_ms", int(settings.keepalive_timeout_seconds * 1000)),
        # Core waits this long for any ping's ack, keepalive or not; its default of one minute would
        # otherwise keep a silent peer for a minute whatever keepalive_timeout_ms says.
        ("grpc.http2.ping_timeout_ms", int(settings.keepalive_timeout_seconds * 1000)),
        ("grpc.keepalive_permit_without_calls", 1),
        # The shortest interval between a client's pings that is not abuse (the server's own pings are
        # not throttled by it). Faster pingers get GOAWAY too_many_pings on the third strike.
        ("grpc.http2.min_ping_interval_without_data_ms", MIN_CLIENT_PING_INTERVAL_MS),
        ("grpc.http2.max_pings_without_data", 0),
        # Calls waiting for the application to pick them up; past these, core cancels new calls
        # before the servicer sees them. A reconnect herd opens thousands of streams at once, so
        # allow at least as many as --max-streams, which then refuses the extra ones with a status.
        ("grpc.server.max_pending_requests", max(settings.max_streams, MIN_PENDING_CALLS)),
        ("grpc.server.max_pending_requests_hard_limit", max(settings.max_streams, MIN_PENDING_CALLS)),
        ("grpc.max_concurrent_streams", settings.max_streams_per_connection),
        ("grpc.so_reuseport", 0),
    ]


@dataclass
class JamServer:
    """A running server: the grpc.aio server and what it serves."""

    server: grpc.aio.Server
    servicer: JamServicer
    health: health.aio.HealthServicer
    port: int

    async def stop(self, grace: float) -> None:
        """Turn health to NOT_SERVING, refuse new streams, process every leave, end the streams, stop."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        await self.health.enter_graceful_shutdown()
        await self.servicer.hub.close()
        # Streams whose status waits behind unread messages are cancelled when the grace runs out;
        # keep a margin so the process is gone within the grace period.
        await self.server.stop(max(0.0, deadline - loop.time() - STOP_MARGIN_SECONDS))
        await self.servicer.close()
        await self.servicer.hub.backend.disconnect()


async def start(settings: Settings) -> JamServer:
    """Build and start a server; the bound port is in the result."""
    cycler = LoopCycler.from_file(settings.loops) if settings.loops else LoopCycler()
    backend = backend_from_url(settings.backend, cycler)
    await backend.connect()
    hub = JamHub(backend, wire.encode, settings.max_streams)
    servicer = JamServicer(hub, settings)
    server = grpc.aio.server(options=server_options(settings))
    server.add_generic_rpc_handlers([servicer.method_handlers()])
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = (
        jam_pb2.DESCRIPTOR.services_by_name["JamService"].full_name,
        health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
        reflection.SERVICE_NAME,
    )
    reflection.enable_server_reflection(names, server)
    if settings.tls_cert:
        credentials = grpc.ssl_server_credentials(
            [(Path(settings.tls_key).read_bytes(), Path(settings.tls_cert).read_bytes())]
        )
        port = server.add_secure_port(settings.listen, credentials)
    else:
        port = server.add_insecure_port(settings.listen)
    await server.start()
    for service in ("", SERVICE_NAME):
        await health_servicer.set(service, health_pb2.HealthCheckResponse.SERVING)
    return JamServer(server, servicer, health_servicer, port)


async def serve(settings: Settings) -> None:
    """Serve until SIGINT or SIGTERM, then stop within the grace period."""
    running = await start(settings)
    # Everything built so far lives as long as the process: keep it out of every collection, and
    # collect the young generation less often, which trims the latency tail under fan-out load.
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    host = settings.listen.rsplit(":", 1)[0]
    scheme = "tls" if settings.tls_cert else "insecure"
    auth = "bearer tokens" if settings.auth_secret else "no auth"
    log.info("jam-server listening on %s:%d (%s, %s, backend %s)", host, running.port, scheme, auth, settings.backend)
    if settings.auth_secret and len(settings.auth_secret.encode()) < MIN_SECRET_BYTES:
        log.warning("the auth secret is shorter than %d bytes: tokens signed with it are easy to forge", MIN_SECRET_BYTES)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    await stopping.wait()
    log.info("jam-server shutting down (grace %.1f s)", settings.grace_seconds)
    await running.stop(settings.grace_seconds)
    log.info("jam-server stopped")


def main(argv: list[str] | None = None) -> None:
    """Console entry point of jam-server."""
    settings = Settings.from_args(argv)
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(serve(settings))
    except (OSError, ValueError, RuntimeError) as error:
        log.error("jam-server failed: %s", error)
        sys.exit(1)


if __name__ == "__main__":
    main()
