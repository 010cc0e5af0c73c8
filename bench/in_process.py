"""``python -m bench.in_process``: the server's and the reference's CPU per request, both ASGI
apps driven in this one process.

Under wrk this shared 2-core machine moves one app's figure by a fifth between runs a minute
apart. Here the two apps answer alternating batches of a few hundred requests, seconds apart
(the app going first alternates by round), and a batch's figure is this process's CPU: no HTTP
server, no load generator, PostgreSQL apart. What is compared is the median of the per-round
ratios. The "in process" sections of bench/RESULTS.md were measured this way. PostgreSQL's CPU
per request (its backends' user and system time, from /proc) is shown when it runs on this
machine, as the embedded one does.

Both apps share the process's garbage collector settings, which the server's start-up tunes
(``gql_api.web.lifespan.tune_collector``): the reference gains from them too. The server runs
its production configuration, its JSON log lines going to a file under ``--logs-dir``.

    python -m bench.in_process [--ops Q1,Q2,Q3,relay] [--rounds 8] [--batch 300]
        [--concurrency 8] [--users 10000] [--database-url URL] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import uvloop

from bench import dataset, procs, queries, reference_app, run
from bench.queries import Operation
from gql_api.config import load_settings
from gql_api.observability.logs import SERVICE_HANDLER, configure_logging
from gql_api.web.app import create_app

SERVER, REFERENCE = "server", "reference"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.in_process",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--ops",
        default="Q1,Q2,Q3",
        help="comma-separated: Q1, Q2, Q3 and client shapes: " + ", ".join(queries.EXTRA_SHAPES),
    )
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--batch", type=int, default=300, help="requests per app and round")
    parser.add_argument("--warmup", type=int, default=200, help="requests per app before")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight")
    parser.add_argument("--users", type=int, default=10_000, help="bulk users to seed")
    parser.add_argument("--database-url", help="postgresql:// URL (default: embedded)")
    parser.add_argument("--data-dir", type=Path, default=run.BENCH_DIR / ".data" / "pgdata")
    parser.add_argument("--logs-dir", type=Path, help="the server's log (default: beside the data)")
    parser.add_argument("--bcrypt-rounds", type=int, default=12, help="as bench.run's")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    options = parser.parse_args(argv)
    if min(options.rounds, options.batch, options.concurrency) < 1:
        parser.error("--rounds, --batch and --concurrency must be positive")
    options.ops = [name.strip() for name in options.ops.split(",") if name.strip()]
    known = ["Q1", "Q2", "Q3", *queries.EXTRA_SHAPES]
    for name in options.ops:
        if name not in known:
            parser.error(f"unknown op {name!r}: choose from {', '.join(known)}")
    return options


def operations(names: list[str], data: dataset.Dataset) -> dict[str, tuple[Operation, Operation]]:
    """Per name, our operation and the reference's it is compared with: the same one, or the
    plain Q1 or Q2 for a client shape (as bench.run compares them)."""
    base = {
        op.name: op
        for op in queries.operations(
            user_token=data.user_token, admin_token=data.admin_token, deep_cursor=data.deep_cursor
        )
    }
    chosen: dict[str, tuple[Operation, Operation]] = {}
    for name in names:
        if name in base:
            chosen[name] = (base[name], base[name])
            continue
        shape = queries.shape(name)
        me = shape.kind == "me"
        op = queries.shape_operation(shape, token=data.user_token if me else data.admin_token)
        chosen[name] = (op, base["Q1" if me else "Q2"])
    return chosen


async def post(app: Any, op: Operation, body: bytes) -> bytes:
    """One ``POST /graphql`` straight to the ASGI callable: its response body. A minimal
    driver on purpose: a client's own CPU (httpx's ASGI transport costs more than a ``me``)
    would count in both apps' figures and pull their ratio towards 1."""
    headers = [(b"host", b"127.0.0.1"), (b"content-length", str(len(body)).encode())]
    headers += [(k.encode(), v.encode()) for k, v in op.headers.items()]
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/graphql", "raw_path": b"/graphql", "query_string": b"",
        "root_path": "", "headers": headers, "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }  # fmt: skip
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    chunks: list[bytes] = []
    status = 0

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop()
        await asyncio.Event().wait()  # the client never disconnects mid-request
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    answer = b"".join(chunks)
    if status != 200:
        raise RuntimeError(f"{op.name}: HTTP {status}: {answer[:300]!r}")
    return answer


class PostgresCpu:
    """CPU seconds used so far by the children of the database's postmaster (None when that
    server does not run on this machine)."""

    def __init__(self, postmaster: int | None) -> None:
        self.postmaster = postmaster

    @classmethod
    async def of(cls, url: str) -> PostgresCpu:
        conn = await asyncpg.connect(url)
        try:  # while the backend lives: it exits with the connection
            return cls(procs.parent_pid(int(await conn.fetchval("SELECT pg_backend_pid()"))))
        except OSError:  # another machine's (or another container's) server
            return cls(None)
        finally:
            await conn.close()

    def seconds(self) -> float | None:
        if self.postmaster is None:
            return None
        used = 0.0
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                if procs.parent_pid(int(pid)) == self.postmaster:
                    used += procs.cpu_seconds(int(pid))
            except OSError:
                continue  # exited meanwhile
        return used


async def batch(
    app: Any, op: Operation, requests: int, concurrency: int, pg: PostgresCpu
) -> tuple[float, float | None]:
    """CPU µs per request of this process, and of PostgreSQL (None when not visible)."""
    each = max(1, requests // concurrency)

    async def client() -> None:
        for _ in range(each):
            await post(app, op, op.body)

    cpu, pg_before = time.process_time(), pg.seconds()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    cpu, pg_after = time.process_time() - cpu, pg.seconds()
    done = each * concurrency
    pg_us = None if pg_before is None or pg_after is None else (pg_after - pg_before) / done * 1e6
    return cpu / done * 1e6, pg_us


def server_app(options: argparse.Namespace, url: str, logs_dir: Path) -> Any:
    """The server in its production configuration, logging to ``logs_dir``/server.log."""
    settings = load_settings(environ=run.server_env(options, url))
    configure_logging(settings)
    handler = next(h for h in logging.getLogger().handlers if h.get_name() == SERVICE_HANDLER)
    logs_dir.mkdir(parents=True, exist_ok=True)
    assert isinstance(handler, logging.StreamHandler)
    # Open as long as the process: the handler writes to it until exit.
    handler.setStream(open(logs_dir / "server.log", "a", encoding="utf-8"))
    return create_app(settings)


async def measure(options: argparse.Namespace, data: dataset.Dataset) -> dict[str, Any]:
    logs_dir = options.logs_dir or options.data_dir.parent / "in-process-logs"
    apps = {
        SERVER: server_app(options, data.url, logs_dir),
        REFERENCE: reference_app.create_app(data.url, dataset.JWT_SECRET),
    }
    chosen = operations(options.ops, data)
    pg = await PostgresCpu.of(data.url)
    figures: dict[str, Any] = {}
    async with AsyncExitStack() as stack:
        for app in apps.values():
            await stack.enter_async_context(app.router.lifespan_context(app))
        for name, (op, base) in chosen.items():
            pair = {SERVER: op, REFERENCE: base}
            for app_name, app_op in pair.items():
                if app_op.setup is not None:  # APQ: the document registered once
                    await post(apps[app_name], app_op, app_op.setup)
                if "errors" in orjson.loads(await post(apps[app_name], app_op, app_op.body)):
                    raise RuntimeError(f"{name}: {app_name} answers with errors")
                await batch(apps[app_name], app_op, options.warmup, options.concurrency, pg)
            rounds: list[dict[str, Any]] = []
            for round_no in range(options.rounds):
                order = [SERVER, REFERENCE] if round_no % 2 == 0 else [REFERENCE, SERVER]
                cpu, pg_us = {}, {}
                for app_name in order:
                    cpu[app_name], pg_us[app_name] = await batch(
                        apps[app_name], pair[app_name], options.batch, options.concurrency, pg
                    )
                rounds.append({"cpu_us": cpu, "postgres_us": pg_us})
            figures[name] = summarise(rounds, base.name)
            print(line(name, figures[name]), flush=True)
    return figures


def summarise(rounds: list[dict[str, Any]], base: str) -> dict[str, Any]:
    def median(key: str, app: str) -> float | None:
        values = [r[key][app] for r in rounds if r[key][app] is not None]
        return statistics.median(values) if values else None

    ratios = [r["cpu_us"][REFERENCE] / r["cpu_us"][SERVER] for r in rounds]
    return {
        "compared_with": base,
        "server_us": median("cpu_us", SERVER),
        "reference_us": median("cpu_us", REFERENCE),
        "speed_vs_reference": statistics.median(ratios),  # reference CPU over ours: > 1 is faster
        "rounds": [round(r, 3) for r in ratios],
        "postgres_server_us": median("postgres_us", SERVER),
        "postgres_reference_us": median("postgres_us", REFERENCE),
    }


def line(name: str, f: dict[str, Any]) -> str:
    def us(value: float | None) -> str:
        return "-" if value is None else f"{value:,.0f}"

    return (
        f"| {name} | {us(f['server_us'])} | {us(f['reference_us'])} ({f['compared_with']}) | "
        f"{f['speed_vs_reference']:.3f}x | {us(f['postgres_server_us'])} / "
        f"{us(f['postgres_reference_us'])} | {f['rounds']} |"
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    options = parse_args(argv)
    url, embedded = dataset.open_database(options.database_url, options.data_dir)
    try:
        data = asyncio.run(
            dataset.prepare(url, users=options.users, bcrypt_rounds=options.bcrypt_rounds)
        )
        print(
            f"{data.users} users; {options.rounds} rounds of {options.batch} requests per app, "
            f"{options.concurrency} at a time; CPU µs per request of this process\n\n"
            "| op | server | reference | server vs reference (CPU) | PostgreSQL server / "
            "reference | per round |\n|---|---:|---:|---:|---:|---|",
            flush=True,
        )
        figures = uvloop.run(measure(options, data))  # the event loop uvicorn runs
    finally:
        if embedded is not None:
            embedded.stop()
    if options.json:
        options.json.write_text(json.dumps(figures, indent=2), encoding="utf-8")
    return figures


if __name__ == "__main__":
    main()
