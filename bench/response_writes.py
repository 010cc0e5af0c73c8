"""``python -m bench.response_writes``: the server with uvicorn's own httptools protocol against
the same server sending each response in one write (``gql_api.web.http_protocol``, what
``gql-api serve`` runs), side by side under the benchmark's load.

Both run ``uvicorn gql_api.web.app:app_factory`` on the benchmark's database (seeded as
``bench.run`` seeds it) with the benchmark's settings; only ``--http`` differs. The operation
is driven on one server after the other, the order alternating by round; per run it prints the
requests/s and the worker's CPU per request, then the medians of the per-round ratios.

    python -m bench.response_writes [--op Q2] [--rounds 10] [--seconds 4] [--connections 32]
        [--users 10000] [--tool auto|wrk|python] [--json PATH] [--data-dir DIR]
        [--database-url URL] [--bcrypt-rounds 12]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench import dataset, load, procs, queries, run
from gql_api.web.http_protocol import PROTOCOL

VARIANTS = {"uvicorn": "httptools", "one write": PROTOCOL}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.response_writes", description=__doc__)
    parser.add_argument("--op", default="Q2", choices=("Q1", "Q2", "Q3"))
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=4)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--tool", default="auto", choices=("auto", "wrk", "python"))
    parser.add_argument("--json", type=Path, help="write every run's figures here")
    parser.add_argument("--bcrypt-rounds", type=int, default=12)
    parser.add_argument("--data-dir", type=Path, default=run.BENCH_DIR / ".data" / "pgdata")
    parser.add_argument("--database-url")
    return parser.parse_args(argv)


def command(port: int, http: str) -> list[str]:
    return [
        sys.executable, "-m", "uvicorn", "gql_api.web.app:app_factory", "--factory",
        "--host", procs.HOST, "--port", str(port), "--workers", "1", "--http", http,
        "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    options = parse_args(argv)
    bench_options = run.parse_args(["--data-dir", str(options.data_dir)])
    url, embedded = dataset.open_database(options.database_url, options.data_dir)
    runs: list[dict[str, Any]] = []
    try:
        data = asyncio.run(
            dataset.prepare(url, users=options.users, bcrypt_rounds=options.bcrypt_rounds)
        )
        op = queries.operation_named(options.op, data)
        with ExitStack() as stack:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            apps: dict[str, procs.App] = {}
            for n, (name, http) in enumerate(VARIANTS.items()):
                port = procs.free_port()
                env = run.server_env(bench_options, url)
                log = folder / f"server-{n}.log"
                apps[name] = stack.enter_context(
                    procs.running(name, command(port, http), env, log, port=port)
                )
                load.drive(  # warm-up
                    apps[name].url, op, connections=options.connections, seconds=2,
                    tool=options.tool,
                )  # fmt: skip
            for round_no in range(1, options.rounds + 1):
                order = list(apps) if round_no % 2 else list(apps)[::-1]
                for name in order:
                    app = apps[name]
                    cpu = procs.cpu_seconds(app.pid)
                    result = load.drive(
                        app.url, op, connections=options.connections,
                        seconds=options.seconds, tool=options.tool,
                    )  # fmt: skip
                    cpu = procs.cpu_seconds(app.pid) - cpu
                    figures = {
                        "round": round_no,
                        "variant": name,
                        "rps": result.rps,
                        "cpu_ms": 1000 * cpu / max(result.requests, 1),
                    }
                    runs.append(figures)
                    print(
                        f"round {round_no} {name}: {figures['rps']:.0f} req/s, "
                        f"{figures['cpu_ms']:.3f} ms CPU/request",
                        flush=True,
                    )
    finally:
        if embedded is not None:
            embedded.stop()
    if options.json is not None:
        options.json.write_text(json.dumps(runs, indent=2), encoding="utf-8")
    print(summary(runs, options.op))
    return runs


def summary(runs: list[dict[str, Any]], op: str) -> str:
    """The medians of the per-round ratios, one write over uvicorn's."""
    old, new = VARIANTS
    by_round: dict[int, dict[str, dict[str, Any]]] = {}
    for figures in runs:
        by_round.setdefault(figures["round"], {})[figures["variant"]] = figures
    rps = [r[new]["rps"] / r[old]["rps"] for r in by_round.values()]
    cpu = [r[new]["cpu_ms"] / r[old]["cpu_ms"] for r in by_round.values()]
    return (
        f"{op}, one write over uvicorn's two: req/s median {statistics.median(rps):.3f}x "
        f"(rounds {sorted(round(x, 3) for x in rps)}); CPU per request median "
        f"{statistics.median(cpu):.3f}x (rounds {sorted(round(x, 3) for x in cpu)})"
    )


if __name__ == "__main__":
    main()
