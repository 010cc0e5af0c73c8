"""Load generation: wrk with a Lua body when installed, else a bounded asyncio httpx client.

Both keep a fixed number of connections busy for a fixed time against 127.0.0.1 only, and give
requests/s, p50 and p99. The login storm (Q4) runs in a thread beside either.
"""

from __future__ import annotations

import asyncio
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson

from bench.queries import Operation

LOGIN = "mutation Login($input: LoginInput!) { login(input: $input) { accessToken refreshToken } }"


@dataclass(frozen=True)
class LoadResult:
    tool: str
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    failed: int  # non-2xx answers and socket errors

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def _check_local(url: str) -> None:
    if not url.startswith("http://127.0.0.1:"):
        raise ValueError(f"load is only ever sent to 127.0.0.1, not {url}")


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


def drive(
    url: str, op: Operation, *, connections: int, seconds: float, tool: str = "auto"
) -> LoadResult:
    """``connections`` clients sending ``op`` back to back for ``seconds``."""
    _check_local(url)
    if tool == "wrk" or (tool == "auto" and have_wrk()):
        return _wrk(url, op, connections=connections, seconds=seconds)
    return asyncio.run(_python(url, op, connections=connections, seconds=seconds))


# --- wrk ---------------------------------------------------------------------------------------

_LUA = """-- written by bench/load.py for one run
wrk.method = "POST"
wrk.body = [==[{body}]==]
wrk.headers["Content-Type"] = "application/json"
{authorization}

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH %d %d %d %d %d\\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99),
    e.status + e.connect + e.read + e.write + e.timeout))
end
"""


def wrk_command(url: str, script: Path, *, connections: int, seconds: float) -> list[str]:
    return [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        f"{url}/graphql",
    ]


def _wrk(url: str, op: Operation, *, connections: int, seconds: float) -> LoadResult:
    body = op.body.decode()
    if "]==]" in body:
        raise ValueError("the body cannot be quoted in Lua")
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as tmp:
        script = Path(tmp) / f"{op.name}.lua"
        authorization = f'wrk.headers["Authorization"] = "Bearer {op.token}"' if op.token else ""
        script.write_text(_LUA.format(body=body, authorization=authorization), encoding="utf-8")
        out = subprocess.run(
            wrk_command(url, script, connections=connections, seconds=seconds),
            capture_output=True,
            text=True,
            timeout=seconds + 60,
            check=True,
        ).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("BENCH "))
    requests, duration_us, p50_us, p99_us, failed = (int(x) for x in line.split()[1:])
    return LoadResult("wrk", requests, duration_us / 1e6, p50_us / 1000, p99_us / 1000, failed)


# --- the Python client -------------------------------------------------------------------------


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(q / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


async def _python(url: str, op: Operation, *, connections: int, seconds: float) -> LoadResult:
    latencies: list[float] = []
    failed = 0
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=10.0) as client:
        started = time.perf_counter()
        deadline = started + seconds

        async def worker() -> None:
            nonlocal failed
            while time.perf_counter() < deadline:
                sent = time.perf_counter()
                try:
                    response = await client.post("/graphql", content=op.body, headers=op.headers)
                    ok = response.status_code == 200
                except httpx.HTTPError:
                    ok = False
                latencies.append(time.perf_counter() - sent)
                failed += not ok

        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return LoadResult(
        "python",
        len(latencies),
        elapsed,
        percentile(latencies, 50) * 1000,
        percentile(latencies, 99) * 1000,
        failed,
    )


# --- Q4: the login storm -----------------------------------------------------------------------


@dataclass
class StormResult:
    logins: int = 0
    failed: int = 0
    median_ms: float = 0.0


class LoginStorm:
    """``len(emails)`` clients logging in back to back, in a thread, until stopped (or
    ``max_seconds`` pass)."""

    def __init__(self, url: str, emails: tuple[str, ...], password: str, max_seconds: float):
        _check_local(url)
        self.url = url
        self.emails = emails
        self.password = password
        self.max_seconds = max_seconds
        self.result = StormResult()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="login-storm", daemon=True)

    def __enter__(self) -> LoginStorm:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def _run(self) -> None:
        asyncio.run(self._storm())

    async def _storm(self) -> None:
        times: list[float] = []
        deadline = time.perf_counter() + self.max_seconds
        async with httpx.AsyncClient(base_url=self.url, timeout=30.0) as client:

            async def one(email: str) -> None:
                body = orjson.dumps(
                    {
                        "query": LOGIN,
                        "variables": {"input": {"email": email, "password": self.password}},
                    }
                )
                while not self._stop.is_set() and time.perf_counter() < deadline:
                    sent = time.perf_counter()
                    try:
                        response = await client.post(
                            "/graphql", content=body, headers={"content-type": "application/json"}
                        )
                        data = response.json()
                        ok = response.status_code == 200 and not data.get("errors")
                    except (httpx.HTTPError, ValueError):
                        ok = False
                    if ok:
                        self.result.logins += 1
                        times.append(time.perf_counter() - sent)
                    else:
                        self.result.failed += 1
                        await asyncio.sleep(0.1)

            await asyncio.gather(*(one(email) for email in self.emails))
        self.result.median_ms = statistics.median(times) * 1000 if times else 0.0
