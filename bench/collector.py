"""``python -m bench.collector``: what the cyclic garbage collector costs the server under load,
at two thresholds of its young generation side by side.

Starts one server per threshold on the benchmark's database (seeded as ``bench.run`` seeds
it), each with ``bench/collector_site`` on its PYTHONPATH: that sets the threshold the server
tunes at start-up (``gql_api.web.lifespan.YOUNG_GENERATION``) and times every collection
(``gc.callbacks``). Then drives the operation on one server after the other, the order
alternating by round, and prints per run the requests/s, the worker's CPU per request, and
the collections of each generation with their time per request.

    python -m bench.collector [--op Q2] [--young 2000,20000] [--rounds 3] [--seconds 5]
        [--connections 32] [--users 10000] [--tool auto|wrk|python] [--json PATH]
        [--data-dir DIR] [--database-url URL] [--bcrypt-rounds 12]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench import dataset, load, procs, queries, run

SITE = Path(__file__).resolve().parent / "collector_site"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.collector", description=__doc__)
    parser.add_argument("--op", default="Q2", choices=("Q1", "Q2", "Q3"))
    parser.add_argument("--young", default="2000,20000", help="thresholds, comma-separated")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--tool", default="auto", choices=("auto", "wrk", "python"))
    parser.add_argument("--json", type=Path, help="write every run's figures here")
    parser.add_argument("--bcrypt-rounds", type=int, default=12)
    parser.add_argument("--data-dir", type=Path, default=run.BENCH_DIR / ".data" / "pgdata")
    parser.add_argument("--database-url")
    return parser.parse_args(argv)


def _stats(path: Path) -> dict[str, list[float]]:
    time.sleep(0.6)  # the server writes its figures every quarter of a second
    figures: dict[str, list[float]] = json.loads(path.read_text(encoding="utf-8"))
    return figures


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    options = parse_args(argv)
    young = [int(value) for value in options.young.split(",")]
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
            apps: dict[int, tuple[procs.App, Path]] = {}
            for threshold in young:
                port = procs.free_port()
                stats = folder / f"gc-{threshold}.json"
                env = run.server_env(bench_options, url)
                env.update(
                    PYTHONPATH=str(SITE),
                    GQL_BENCH_GC_YOUNG=str(threshold),
                    GQL_BENCH_GC_STATS=str(stats),
                )
                app = stack.enter_context(
                    procs.running(
                        f"server-{threshold}",
                        procs.server_command(port),
                        env,
                        folder / f"server-{threshold}.log",
                        port=port,
                    )
                )
                apps[threshold] = (app, stats)
                load.drive(  # warm-up
                    app.url, op, connections=options.connections, seconds=2, tool=options.tool
                )
            for round_no in range(1, options.rounds + 1):
                order = young if round_no % 2 else young[::-1]
                for threshold in order:
                    app, stats = apps[threshold]
                    before, cpu = _stats(stats), procs.cpu_seconds(app.pid)
                    result = load.drive(
                        app.url,
                        op,
                        connections=options.connections,
                        seconds=options.seconds,
                        tool=options.tool,
                    )
                    cpu, after = procs.cpu_seconds(app.pid) - cpu, _stats(stats)
                    done = max(result.requests, 1)
                    figures = {
                        "round": round_no,
                        "young": threshold,
                        "rps": result.rps,
                        "cpu_ms": 1000 * cpu / done,
                        "collections": [
                            int(a - b)
                            for a, b in zip(
                                after["collections"], before["collections"], strict=True
                            )
                        ],
                        "gc_us": 1e6 * (sum(after["seconds"]) - sum(before["seconds"])) / done,
                    }
                    runs.append(figures)
                    print(_line(figures), flush=True)
    finally:
        if embedded is not None:
            embedded.stop()
    if options.json is not None:
        options.json.write_text(json.dumps(runs, indent=2), encoding="utf-8")
    print()
    for threshold in young:
        mine = [r for r in runs if r["young"] == threshold]
        print(
            f"young {threshold}: median {statistics.median(r['gc_us'] for r in mine):.1f} µs of"
            f" collection per request, {statistics.median(r['cpu_ms'] for r in mine):.3f} ms CPU"
            f" per request, {statistics.median(r['rps'] for r in mine):.0f} req/s"
        )
    return runs


def _line(figures: dict[str, Any]) -> str:
    generations = ", ".join(f"gen{i} {n}" for i, n in enumerate(figures["collections"]))
    return (
        f"round {figures['round']} young {figures['young']}: {figures['rps']:.0f} req/s,"
        f" {figures['cpu_ms']:.3f} ms CPU/request; collections {generations};"
        f" {figures['gc_us']:.1f} µs of collection per request"
    )


if __name__ == "__main__":
    main()
