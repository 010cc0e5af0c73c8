"""Variants of the server side by side under the benchmark's load: the harness of
``bench.collector`` and ``bench.response_writes``.

Each variant is a server process of its own on the benchmark's database (seeded as
``bench.run`` seeds it), started with the benchmark's settings. After a warm-up of each, every
round drives the operation on one variant after the other, the order alternating by round (on
this noisy machine only ratios measured seconds apart are worth comparing), and records per
run the requests/s, the worker's CPU per request and what the variant measures of itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import dataset, load, procs, queries, run


@dataclass
class Variant:
    """One server: its command (given its port), its environment besides the benchmark's, the
    fields that name it in every run's figures, and what it measures of itself around a run
    (``snapshot`` before and after; ``measured(before, after, requests)``: more figures)."""

    command: Callable[[int], list[str]]
    labels: dict[str, Any]
    env: dict[str, str] = field(default_factory=dict)
    snapshot: Callable[[], Any] = lambda: None
    measured: Callable[[Any, Any, int], dict[str, Any]] = lambda *_: {}


def add_arguments(parser: argparse.ArgumentParser, *, rounds: int, seconds: float) -> None:
    parser.add_argument("--op", default="Q2", choices=("Q1", "Q2", "Q3"))
    parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument("--seconds", type=float, default=seconds)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--tool", default="auto", choices=("auto", "wrk", "python"))
    parser.add_argument("--json", type=Path, help="write every run's figures here")
    parser.add_argument("--bcrypt-rounds", type=int, default=12)
    parser.add_argument("--data-dir", type=Path, default=run.BENCH_DIR / ".data" / "pgdata")
    parser.add_argument("--database-url")


def compare(
    options: argparse.Namespace,
    variants: Callable[[Path], Sequence[Variant]],
    line: Callable[[dict[str, Any]], str],
) -> list[dict[str, Any]]:
    """Every run's figures (also written to ``--json``), each printed with ``line``.
    ``variants`` gets a folder that lasts as long as the servers."""
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
            started: list[tuple[Variant, procs.App]] = []
            for n, variant in enumerate(variants(folder)):
                port = procs.free_port()
                env = {**run.server_env(bench_options, url), **variant.env}
                log = folder / f"server-{n}.log"
                name = f"server-{n}"
                app = stack.enter_context(
                    procs.running(name, variant.command(port), env, log, port=port)
                )
                started.append((variant, app))
                load.drive(  # warm-up
                    app.url, op, connections=options.connections, seconds=2,
                    tool=options.tool,
                )  # fmt: skip
            for round_no in range(1, options.rounds + 1):
                for variant, app in started if round_no % 2 else started[::-1]:
                    before, cpu = variant.snapshot(), procs.cpu_seconds(app.pid)
                    result = load.drive(
                        app.url, op, connections=options.connections,
                        seconds=options.seconds, tool=options.tool,
                    )  # fmt: skip
                    cpu, after = procs.cpu_seconds(app.pid) - cpu, variant.snapshot()
                    done = max(result.requests, 1)
                    figures = {
                        "round": round_no,
                        **variant.labels,
                        "rps": result.rps,
                        "cpu_ms": 1000 * cpu / done,
                        **variant.measured(before, after, done),
                    }
                    runs.append(figures)
                    print(line(figures), flush=True)
    finally:
        if embedded is not None:
            embedded.stop()
    if options.json is not None:
        options.json.write_text(json.dumps(runs, indent=2), encoding="utf-8")
    return runs
