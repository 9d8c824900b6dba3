"""The processes of a benchmark: the server under test and the load processes that drive it."""

from __future__ import annotations

import multiprocessing
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from bench.load import worker_main

ROOT = Path(__file__).resolve().parent.parent
LISTENING = re.compile(r"listening on (\S+):(\d+)")

# Limits raised on our server so the fan-out measures throughput, not the per-stream policies:
# the loop-event rate limit (default 20/s, burst 40) and the slow-consumer outbox (default 256).
OURS_FLAGS = ["--loop-event-rate", "1000000", "--loop-event-burst", "1000000", "--outbox-size", "100000"]

COMMANDS = {
    "ours": [sys.executable, "-m", "jamservice.server", "--listen", "127.0.0.1:0", "--grace-seconds", "1", *OURS_FLAGS],
    "baseline": [sys.executable, "-m", "bench.baseline", "--listen", "127.0.0.1:0"],
    "floor": [sys.executable, "-m", "bench.floor", "--listen", "127.0.0.1:0"],
}


class ServerProcess:
    """A server under test, started as its own process; its port comes from its log line."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.command = COMMANDS[kind]
        self._log = tempfile.NamedTemporaryFile(prefix=f"bench-{kind}-", suffix=".log", delete=False)  # noqa: SIM115
        self.popen = subprocess.Popen(self.command, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT)
        self.process = psutil.Process(self.popen.pid)
        self.address = self._wait_for_address(timeout=30.0)

    @property
    def pid(self) -> int:
        """The server's process id."""
        return self.popen.pid

    def log_text(self) -> str:
        """Everything the server logged so far."""
        return Path(self._log.name).read_text(errors="replace")

    def cpu_seconds(self) -> float:
        """User plus system CPU time of the server process, all threads."""
        times = self.process.cpu_times()
        return times.user + times.system

    def system_cpu_seconds(self) -> float:
        """System (kernel) CPU time of the server process: mostly its socket writes and reads."""
        return float(self.process.cpu_times().system)

    def rss_bytes(self) -> int:
        """The server's resident set size."""
        return int(self.process.memory_info().rss)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not exit in time."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self._log.close()
        Path(self._log.name).unlink(missing_ok=True)

    def _wait_for_address(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = LISTENING.search(self.log_text())
            if match:
                return f"{match.group(1)}:{match.group(2)}"
            if self.popen.poll() is not None:
                break
            time.sleep(0.05)
        log = self.log_text()
        self.stop()
        raise RuntimeError(f"{self.kind} server did not start: {' '.join(self.command)}\n{log}")


class LoadPool:
    """Load processes, each an asyncio event loop, commanded in lockstep over pipes."""

    def __init__(self, workers: int) -> None:
        context = multiprocessing.get_context("spawn")
        self._conns = []
        self._processes = []
        for index in range(workers):
            parent, child = context.Pipe()
            process = context.Process(target=worker_main, args=(child, index), daemon=True, name=f"bench-load-{index}")
            process.start()
            child.close()
            self._conns.append(parent)
            self._processes.append(process)
        self._ps = [psutil.Process(p.pid) for p in self._processes]

    @property
    def size(self) -> int:
        """Number of load processes."""
        return len(self._conns)

    def send(self, command: str, per_worker: list[dict[str, Any]] | None = None, **kwargs: Any) -> None:
        """Send a command to every worker: the same kwargs, or one dict each."""
        for index, conn in enumerate(self._conns):
            conn.send((command, {**kwargs, **(per_worker[index] if per_worker else {})}))

    def receive(self, timeout: float = 300.0) -> list[Any]:
        """Every worker's answer to the last command."""
        results = []
        for conn in self._conns:
            if not conn.poll(timeout):
                raise TimeoutError("a load process did not answer in time")
            status, value = conn.recv()
            if status != "ok":
                raise RuntimeError(f"load process failed:\n{value}")
            results.append(value)
        return results

    def call(self, command: str, per_worker: list[dict[str, Any]] | None = None, **kwargs: Any) -> list[Any]:
        """Send a command and wait for every answer."""
        self.send(command, per_worker, **kwargs)
        return self.receive()

    def cpu_seconds(self) -> float:
        """User plus system CPU time of all load processes together."""
        total = 0.0
        for process in self._ps:
            times = process.cpu_times()
            total += times.user + times.system
        return total

    def close(self) -> None:
        """Ask each worker to close its streams and exit; kill stragglers."""
        for conn in self._conns:
            try:
                conn.send(None)
            except OSError:
                pass
        for process in self._processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
                process.join()
        for conn in self._conns:
            conn.close()


def split(total: int, parts: int) -> list[int]:
    """total divided into parts as evenly as possible."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]
