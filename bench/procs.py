"""The apps under test as child processes: started on a free loopback port, stopped by PID.

Each app is one uvicorn worker in one process (``gql-api serve --workers 1`` runs uvicorn in
process), so the PID we start is the worker whose memory we read.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
# Q2's selection at first: 100 costs 5501 (sessions count at their cap of 10 each), over the
# default limit of 5000: the one setting the benchmark raises, so that it can count statements.
SERVER_MAX_COST = 10_000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def gql_api_command() -> list[str]:
    """``gql-api`` from this interpreter's environment (the console script when installed)."""
    script = shutil.which("gql-api", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "gql_api.cli"]


def server_command(port: int) -> list[str]:
    return [
        *gql_api_command(),
        "serve",
        "--host",
        HOST,
        "--port",
        str(port),
        "--workers",
        "1",
    ]


def reference_command(port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "bench.reference_app:app_factory",
        "--factory",
        "--host",
        HOST,
        "--port",
        str(port),
        "--workers",
        "1",
        "--log-level",
        "warning",
        "--no-access-log",
    ]


@dataclass(frozen=True)
class Memory:
    rss_mb: float  # VmRSS: resident now
    hwm_mb: float  # VmHWM: the peak resident size so far


def memory(pid: int) -> Memory:
    """Resident and peak resident memory of a process, from /proc/<pid>/status."""
    values: dict[str, float] = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                values[name] = int(rest.split()[0]) / 1024  # kB -> MiB
    return Memory(rss_mb=values["VmRSS"], hwm_mb=values["VmHWM"])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used, from /proc/<pid>/stat."""
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def parent_pid(pid: int) -> int:
    return int(_stat(pid)[1])


def _stat(pid: int) -> list[str]:
    """The fields of /proc/<pid>/stat after the command (state, ppid, ...); OSError when the
    process is gone or not visible."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        return stat.read().rsplit(")", 1)[1].split()


@dataclass
class App:
    name: str
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    ready_seconds: float = 0.0

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


class StartError(RuntimeError):
    """An app exited or did not answer /readyz in time."""


def wait_ready(app: App, timeout: float, poll: float = 0.02) -> float:
    """Seconds until ``GET /readyz`` answers 200, polling every ``poll`` seconds."""
    started = time.perf_counter()
    deadline = started + timeout
    with httpx.Client(timeout=2.0) as client:
        while True:
            if app.process.poll() is not None:
                raise StartError(
                    f"{app.name} exited with {app.process.returncode}:\n{app.log_tail()}"
                )
            try:
                if client.get(f"{app.url}/readyz").status_code == 200:
                    return time.perf_counter() - started
            except httpx.TransportError:
                pass
            if time.perf_counter() > deadline:
                raise StartError(f"{app.name} not ready within {timeout}s:\n{app.log_tail()}")
            time.sleep(poll)


def stop(app: App, timeout: float = 30) -> None:
    """SIGTERM to the PID we started, then SIGKILL if it does not exit in time."""
    if app.process.poll() is not None:
        return
    os.kill(app.pid, signal.SIGTERM)
    try:
        app.process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.kill(app.pid, signal.SIGKILL)
        app.process.wait(timeout=10)


@contextmanager
def running(
    name: str,
    command: list[str],
    env: dict[str, str],
    log_path: Path,
    *,
    port: int,
    timeout: float = 120,
) -> Iterator[App]:
    """Start ``command`` and wait for /readyz; always stop it by its PID."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=log_file, stderr=subprocess.STDOUT
        )
    app = App(name, process, port, log_path)
    try:
        app.ready_seconds = wait_ready(app, timeout)
        yield app
    finally:
        stop(app)


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without any service setting, plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("USER_SERVICE_", "BENCH_"))
        and k not in {"DATABASE_URL", "TEST_DATABASE_URL"}
    }
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p
    )
    env.update(extra)
    return env
