"""A fresh clone, README's serve command: a short, plain banner with the admin's one-time
password, then a sign-in with it over HTTP (issue 16). A real ``gql-api serve`` process in an
empty working directory, on a free loopback port, stopped by PID."""

from __future__ import annotations

import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.conftest import BCRYPT_TEST_ROUNDS
from tests.server_support import clean_environ, free_port

BANNER_TIMEOUT = 120.0
ANSI = re.compile("\x1b\\[")
PASSWORD_LINE = re.compile(r"^\|\s+password:\s+(\S+)\s+\|$")
EMAIL_LINE = re.compile(r"^\|\s+e-mail:\s+(\S+)\s+\|$")
LOGIN = """
mutation($input: LoginInput!) { login(input: $input) { accessToken user { email role } } }
"""


@dataclass
class Serve:
    process: subprocess.Popen[str]
    port: int
    lines: queue.Queue[str | None] = field(default_factory=queue.Queue)
    seen: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def read_until(self, predicate: object, deadline: float) -> list[str]:
        """Lines up to and including the first that satisfies ``predicate``."""
        start = len(self.seen)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no such line in time; output so far:\n" + self.output())
            try:
                line = self.lines.get(timeout=min(left, 1.0))
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError("serve ended early:\n" + self.output())
            self.seen.append(line)
            if predicate(line):  # type: ignore[operator]
                return self.seen[start:]

    def rest(self, timeout: float) -> list[str]:
        """Every remaining line, once the process has closed its output."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=1.0)
            except queue.Empty:
                continue
            if line is None:
                return self.seen
            self.seen.append(line)
        raise AssertionError("serve did not close its output in time:\n" + self.output())

    def output(self) -> str:
        return "\n".join(self.seen)


@pytest.fixture
def workdir() -> Iterator[Path]:
    """An empty folder outside pytest's own temporary root: every pytest session that starts
    (other runs on this machine included) resets that root to mode 0700, which would lock the
    embedded server's system user out of its data directory halfway through this test."""
    folder = Path(tempfile.mkdtemp(prefix="gql_api-first-start-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def serve(workdir: Path) -> Iterator[Serve]:
    port = free_port()
    env = clean_environ()
    env["USER_SERVICE_AUTH_BCRYPTROUNDS"] = str(BCRYPT_TEST_ROUNDS)
    env.pop("USER_SERVICE_CONFIG_DIR", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "gql_api.cli", "serve", "--port", str(port)],
        cwd=workdir,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    running = Serve(process, port)

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            running.lines.put(line.rstrip("\n"))
        running.lines.put(None)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        yield running
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        reader.join(timeout=30)
        if process.stdout is not None:
            process.stdout.close()


def _wait_ready(server: Serve, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert server.process.poll() is None, server.output()
        try:
            if httpx.get(f"{server.url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("not ready in time:\n" + server.output())


@pytest.mark.slow
def test_first_start_prints_a_short_banner_and_the_password_signs_in(workdir: Path) -> None:
    started = time.monotonic()
    with serve(workdir) as server:
        deadline = started + BANNER_TIMEOUT
        before = server.read_until(lambda line: line.startswith("+-"), deadline)
        box = server.read_until(lambda line: line.startswith("+-"), deadline)
        banner_seconds = time.monotonic() - started
        preamble = before[:-1]

        data_dir = (workdir / ".gql_api" / "pgdata").resolve()
        assert len(preamble) < 15, f"{len(preamble)} lines before the banner:\n{server.output()}"
        assert any(f"data directory {data_dir}" in line for line in preamble), server.output()
        assert any(f"http://127.0.0.1:{server.port}/graphql" in line for line in preamble)
        emails = [m.group(1) for line in box if (m := EMAIL_LINE.match(line))]
        passwords = [m.group(1) for line in box if (m := PASSWORD_LINE.match(line))]
        assert emails == ["admin@api-server.com"], box
        assert len(passwords) == 1 and len(passwords[0]) >= 16, box
        # initdb's and pg_ctl's output went to a file next to the data directory.
        assert "initdb" not in server.output() and "pg_ctl" not in server.output()
        setup_log = workdir / ".gql_api" / "embedded-postgres.log"
        assert "initdb" in setup_log.read_text(encoding="utf-8")

        _wait_ready(server)
        for _ in range(3):
            assert httpx.get(f"{server.url}/readyz", timeout=10).status_code == 200
        answer = httpx.post(
            f"{server.url}/graphql",
            json={
                "query": LOGIN,
                "variables": {"input": {"email": emails[0], "password": passwords[0]}},
            },
            timeout=30,
        ).json()
        assert "errors" not in answer, answer
        assert answer["data"]["login"]["user"] == {"email": emails[0], "role": "ADMIN"}
        assert answer["data"]["login"]["accessToken"]

        server.process.send_signal(signal.SIGTERM)
        server.process.wait(timeout=60)
        output = server.rest(timeout=30)
    assert server.process.returncode == 0, server.output()
    assert not [line for line in output if ANSI.search(line)], server.output()
    # Probes log nothing at info (a dozen were sent): no alembic lines, no access lines.
    assert not [line for line in output if "alembic" in line or "/readyz" in line], server.output()
    assert banner_seconds < BANNER_TIMEOUT
    print(f"banner after {banner_seconds:.1f}s, {len(preamble)} lines before it")
