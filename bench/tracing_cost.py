"""``python -m bench.tracing_cost``: what OpenTelemetry tracing costs the server (issue 19).

The same server, production configuration, one worker, on the benchmark's dataset (``bench.run``
seeds it; the helpers are bench.run's), started alternately with tracing off and with tracing on
(``OTEL_EXPORTER_OTLP_ENDPOINT`` pointing at a local OTLP/HTTP sink this script runs on
127.0.0.1, which counts what it receives and throws it away): off on off on ... for ``--rounds``
rounds. Each start runs Q1 (``me``) and Q2 (a users page) for ``--duration`` seconds after a
warm-up, and reports requests per second, p50/p99 and server CPU per request; then the medians
of each side and the on/off ratio, and how many export requests and bytes the sink received.

Off must cost nothing measurable: no instrumentation is installed, and the code that opens a
span reads one context variable. ``--micro`` also times that check in this process.

Load goes to 127.0.0.1 only (bench.load refuses anything else). Every server is stopped by its
PID. Nothing is written but the logs (``--logs-dir``) and, with ``--json``, the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import http.server
import statistics
import threading
import timeit
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from bench import dataset, load, procs, queries
from bench.run import BENCH_DIR, server_env


@dataclass
class Sink:
    """An OTLP/HTTP receiver that counts and discards."""

    url: str
    requests: int = 0
    bytes: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


@contextmanager
def otlp_sink() -> Iterator[Sink]:
    sink = Sink(url="")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            size = int(self.headers.get("content-length", "0"))
            self.rfile.read(size)
            with sink.lock:
                sink.requests += 1
                sink.bytes += size
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    sink.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield sink
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.tracing_cost", description=__doc__)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per load run")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3, help="off/on rounds (at least 1)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--database-url", help="postgresql:// URL (default: embedded)")
    parser.add_argument("--data-dir", type=Path, default=BENCH_DIR / ".data" / "pgdata")
    parser.add_argument("--logs-dir", type=Path, help="server logs (default: beside the data)")
    parser.add_argument("--tool", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--bcrypt-rounds", type=int, default=12)
    parser.add_argument(
        "--sampler-ratio",
        type=float,
        default=1.0,
        help="OTEL_TRACES_SAMPLER_ARG for parentbased_traceidratio (1.0: every request)",
    )
    parser.add_argument("--micro", action="store_true", help="also time the off-path check")
    parser.add_argument("--json", type=Path, help="write the figures as JSON here")
    options = parser.parse_args(argv)
    if options.rounds < 1 or options.duration <= 0 or options.connections < 1:
        parser.error("--rounds, --duration and --connections must be positive")
    options.logs_dir = options.logs_dir or options.data_dir.parent / "logs"
    return options


@dataclass
class Run:
    tracing: bool
    op: str
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_ms: float
    failed: int


def run_server(
    options: argparse.Namespace,
    url: str,
    ops: list[queries.Operation],
    sink: Sink | None,
    round_no: int,
) -> list[Run]:
    env = server_env(options, url)
    if sink is not None:
        env.update(
            OTEL_EXPORTER_OTLP_ENDPOINT=sink.url,
            OTEL_SERVICE_NAME="gql_api-bench",
            OTEL_TRACES_SAMPLER="parentbased_traceidratio",
            OTEL_TRACES_SAMPLER_ARG=str(options.sampler_ratio),
        )
    name = f"tracing-{'on' if sink else 'off'}-round{round_no}"
    port = procs.free_port()
    command = procs.server_command(port)
    runs = []
    with procs.running(name, command, env, options.logs_dir / f"{name}.log", port=port) as app:
        for op in ops:
            load.drive(app.url, op, connections=options.connections,
                       seconds=options.warmup, tool=options.tool)  # fmt: skip
        for op in ops:
            used = procs.cpu_seconds(app.pid)
            result = load.drive(app.url, op, connections=options.connections,
                                seconds=options.duration, tool=options.tool)  # fmt: skip
            used = procs.cpu_seconds(app.pid) - used
            run = Run(
                tracing=sink is not None,
                op=op.name,
                rps=result.rps,
                p50_ms=result.p50_ms,
                p99_ms=result.p99_ms,
                cpu_ms=1000 * used / max(result.requests, 1),
                failed=result.failed,
            )
            runs.append(run)
            print(f"  {name} {op.name}: {run.rps:.0f} req/s, p50 {run.p50_ms:.1f} ms, "
                  f"p99 {run.p99_ms:.1f} ms, {run.cpu_ms:.2f} ms CPU/request, "
                  f"{run.failed} failed", flush=True)  # fmt: skip
    return runs


def micro() -> dict[str, float]:
    """Nanoseconds per call of what the off path does per span site (this process, no app)."""
    from gql_api.observability import tracing

    count = 200_000
    spent = timeit.timeit(
        "with span('x', None): pass", globals={"span": tracing.span}, number=count
    )
    check = timeit.timeit("get() is None", globals={"get": tracing.CURRENT.get}, number=count)
    return {"span_off_ns": spent / count * 1e9, "check_ns": check / count * 1e9}


def summary(runs: list[Run]) -> dict[str, dict[str, float]]:
    table: dict[str, dict[str, float]] = {}
    for op in sorted({r.op for r in runs}):
        off = [r for r in runs if r.op == op and not r.tracing]
        on = [r for r in runs if r.op == op and r.tracing]
        row = {
            "off_rps": statistics.median(r.rps for r in off),
            "on_rps": statistics.median(r.rps for r in on),
            "off_cpu_ms": statistics.median(r.cpu_ms for r in off),
            "on_cpu_ms": statistics.median(r.cpu_ms for r in on),
            "off_p99_ms": statistics.median(r.p99_ms for r in off),
            "on_p99_ms": statistics.median(r.p99_ms for r in on),
        }
        row["rps_ratio"] = row["on_rps"] / row["off_rps"] if row["off_rps"] else 0.0
        table[op] = row
    return table


def main(argv: list[str] | None = None) -> dict[str, object]:
    options = parse_args(argv)
    url, embedded = dataset.open_database(options.database_url, options.data_dir)
    runs: list[Run] = []
    try:
        data = asyncio.run(
            dataset.prepare(url, users=options.users, bcrypt_rounds=options.bcrypt_rounds)
        )
        all_ops = queries.operations(
            user_token=data.user_token, admin_token=data.admin_token, deep_cursor=data.deep_cursor
        )
        ops = [op for op in all_ops if op.name in ("Q1", "Q2")]
        with otlp_sink() as sink:
            for round_no in range(1, options.rounds + 1):
                print(f"round {round_no}/{options.rounds}", flush=True)
                runs += run_server(options, url, ops, None, round_no)
                runs += run_server(options, url, ops, sink, round_no)
            received = {"export_requests": sink.requests, "bytes": sink.bytes}
    finally:
        if embedded is not None:
            embedded.stop()
    result: dict[str, object] = {"summary": summary(runs), "sink": received}
    if options.micro:
        result["micro"] = micro()
    print("medians (off -> on):")
    for op, row in summary(runs).items():
        print(f"  {op}: {row['off_rps']:.0f} -> {row['on_rps']:.0f} req/s "
              f"({row['rps_ratio']:.2f}x), CPU {row['off_cpu_ms']:.2f} -> "
              f"{row['on_cpu_ms']:.2f} ms/request, p99 {row['off_p99_ms']:.1f} -> "
              f"{row['on_p99_ms']:.1f} ms")  # fmt: skip
    print(f"  sink: {received['export_requests']} export requests, {received['bytes']} bytes")
    if "micro" in result:
        print(f"  off path: {result['micro']}")
    if options.json:
        options.json.write_bytes(orjson.dumps({**result, "runs": [vars(r) for r in runs]}))
    return result


if __name__ == "__main__":
    main()
