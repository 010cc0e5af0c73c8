"""A real uvicorn server process on a free loopback port, stopped by PID."""

from __future__ import annotations

import os
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

from gql_api.web.http_protocol import PROTOCOL
from tests.conftest import BCRYPT_TEST_ROUNDS, TEST_JWT_SECRET, TEST_MFA_KEY

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RunningServer:
    process: subprocess.Popen[str]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def errors(self, limit: int = 6000) -> str:
        """The server's own error reports (an exception that reached the ASGI server, or an
        unexpected error masked in a response), each with the traceback that follows it: what a
        failure message needs, where the log's tail is often the pool's closing noise."""
        return error_reports(self.log(), limit)


_ERROR_MARKERS = ("Exception in ASGI application", "unexpected error")


def error_reports(log: str, limit: int = 6000) -> str:
    lines = log.splitlines()
    picked: list[str] = []
    for number, line in enumerate(lines):
        if any(marker in line for marker in _ERROR_MARKERS):
            picked.extend(lines[number : number + 40])
            picked.append("---")
    return "\n".join(picked)[:limit] or "(no error report in the server log)"


def clean_environ() -> dict[str, str]:
    """This process's environment without any database or service setting of the test run."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("USER_SERVICE_") and k not in {"DATABASE_URL", "TEST_DATABASE_URL"}
    }


def embedded_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """For ``gql-api`` commands with nothing configured: the embedded server in ``data_dir``."""
    env = clean_environ()
    env.update(
        USER_SERVICE_DATABASE_DATA_DIR=str(data_dir),
        USER_SERVICE_AUTH_BCRYPTROUNDS=str(BCRYPT_TEST_ROUNDS),
        USER_SERVICE_CONFIG_DIR=str(REPO / "configs"),
    )
    env.update(extra)
    return env


def server_env(database_url: str, **extra: str) -> dict[str, str]:
    env = clean_environ()
    env.update(
        USER_SERVICE_ENV="test",
        USER_SERVICE_DATABASE_URL=database_url,
        USER_SERVICE_AUTH_JWT_SECRET=TEST_JWT_SECRET,
        USER_SERVICE_AUTH_MFA_ENCRYPTION_KEY=TEST_MFA_KEY,
        USER_SERVICE_AUTH_BCRYPTROUNDS=str(BCRYPT_TEST_ROUNDS),
        USER_SERVICE_CONFIG_DIR=str(REPO / "configs"),
    )
    env.update(extra)
    return env


@contextmanager
def uvicorn_server(
    env: dict[str, str], log_path: Path, *, workers: int = 1, timeout: float = 60
) -> Iterator[RunningServer]:
    """Start ``uvicorn gql_api.web.app:app_factory`` and wait for /readyz; always stop it."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "gql_api.web.app:app_factory",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--log-level",
        "warning",
        "--http",  # what ``gql-api serve`` runs
        PROTOCOL,
    ]
    with log_path.open("w", encoding="utf-8") as log_file:
        process = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=log_file, stderr=subprocess.STDOUT, text=True
        )
    server = RunningServer(process, port, log_path)
    try:
        deadline = time.monotonic() + timeout
        last = "no answer"
        while True:
            if process.poll() is not None:
                raise AssertionError(f"server exited early:\n{server.log()}")
            try:
                ready = httpx.get(f"{server.url}/readyz", timeout=2)
                if ready.status_code == 200:
                    break
                last = ready.text
            except httpx.TransportError as exc:
                last = repr(exc)
            if time.monotonic() > deadline:
                raise AssertionError(f"server not ready in {timeout}s ({last}):\n{server.log()}")
            time.sleep(0.1)
        yield server
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
