"""Scale-out: Q1 and Q2 requests/s with 1, 2 and 4 server workers on one primary, and with 2
workers and one streaming replica taking the admin reads, in one run (``python -m bench.scale``).

Everything runs on this machine: an embedded primary of the run's own (``--data-dir``), its
replica made with ``pg_basebackup -R`` (tests/replica_support.py builds it, as in the tests),
``gql-api serve --workers N`` and the load generator (wrk when installed, else the Python
client). Besides requests/s and p99, each run reports where the CPU went: the server's
processes, the primary's, the replica's and the client's, in cores busy on average (CPU seconds
per second of load). The figures and the core count go to the "Scale-out" section of
``bench/RESULTS.md``; the other sections there are kept.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psutil

from bench import dataset, load, procs
from bench import run as bench_run
from bench.queries import Operation, operations
from gql_api.db.embedded import EmbeddedServer, start_embedded
from tests.replica_support import StreamingReplica, caught_up

BENCH_DIR = Path(__file__).resolve().parent
HEADING = "## Scale-out: server workers and a read replica (`python -m bench.scale`)"
# (label, workers, with a replica)
CONFIGS = (("1 worker", 1, False), ("2 workers", 2, False), ("4 workers", 4, False))
REPLICA_CONFIG = ("2 workers + 1 replica", 2, True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__)
    parser.add_argument("--users", type=int, default=10_000, help="bulk users to seed")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per load run")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds per op before a run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--tool", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--bcrypt-rounds", type=int, default=10)
    parser.add_argument("--data-dir", type=Path, default=Path(".bench/scale"))
    parser.add_argument("--results", type=Path, default=BENCH_DIR / "RESULTS.md")
    return parser.parse_args(argv)


@dataclass
class Primary:
    server: EmbeddedServer


@dataclass(frozen=True)
class Figure:
    config: str
    operation: str
    rps: float
    p99_ms: float
    failed: int
    cores: dict[str, float]  # CPU seconds per second of load, by process group


def tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its children, the ones that already exited included (a
    parent that waits for its children is charged their time: postmaster, uvicorn)."""
    try:
        root = psutil.Process(pid)
        times = root.cpu_times()
        total = times.user + times.system + times.children_user + times.children_system
        children = root.children(recursive=True)
    except psutil.NoSuchProcess:
        return 0.0
    for child in children:
        try:
            child_times = child.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += child_times.user + child_times.system
    return total


def postmaster_pid(data_dir: Path) -> int:
    return int((data_dir / "postmaster.pid").read_text().splitlines()[0])


def server_env(url: str, options: argparse.Namespace, replica_url: str | None) -> dict[str, str]:
    """bench.run's server configuration (its pool kept open as the reference's is: with fewer
    idle connections, overflow ones are closed and re-opened under load, which the primary
    pays for), plus the replica when there is one."""
    env = bench_run.server_env(options, url)
    env["USER_SERVICE_DATABASE_CLEANUP_INTERVAL"] = "0"
    if replica_url is not None:
        env["USER_SERVICE_DATABASE_READ_REPLICA_URLS"] = replica_url
    return env


def wait_in_rotation(url: str, timeout: float = 60) -> None:
    """Until /readyz shows the replica in rotation (the checks run every second)."""
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2) as client:
        while True:
            replicas = client.get(f"{url}/readyz").json().get("replicas") or []
            if replicas and all(r["inRotation"] for r in replicas):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"replica not in rotation after {timeout}s: {replicas}")
            time.sleep(0.1)


def measure(
    config: str,
    app: procs.App,
    op: Operation,
    options: argparse.Namespace,
    groups: dict[str, int],
) -> Figure:
    if options.warmup > 0:
        load.drive(
            app.url, op, connections=options.connections, seconds=options.warmup, tool=options.tool
        )
    before = {name: tree_cpu(pid) for name, pid in groups.items()}
    before["client"] = tree_cpu(os.getpid())
    result = load.drive(
        app.url, op, connections=options.connections, seconds=options.duration, tool=options.tool
    )
    after = {name: tree_cpu(pid) for name, pid in groups.items()}
    after["client"] = tree_cpu(os.getpid())
    seconds = max(result.seconds, 1e-9)
    cores = {name: (after[name] - before[name]) / seconds for name in after}
    # The server runs as a child of this process: its time is in this process's tree too.
    cores["client"] -= cores["server"]
    return Figure(config, op.name, result.rps, result.p99_ms, result.failed, cores)


def run(options: argparse.Namespace) -> list[Figure]:
    data_dir = options.data_dir.expanduser().resolve()
    primary = start_embedded(data_dir / "primary", dataset.DATABASE_NAME, cleanup_mode="stop")
    url = primary.url(dataset.DATABASE_NAME)
    replica: StreamingReplica | None = None
    figures: list[Figure] = []
    try:
        data = asyncio.run(
            dataset.prepare(url, users=options.users, bcrypt_rounds=options.bcrypt_rounds)
        )
        ops = [
            op
            for op in operations(
                user_token=data.user_token,
                admin_token=data.admin_token,
                deep_cursor=data.deep_cursor,
            )
            if op.name in ("Q1", "Q2")
        ]
        for config, workers, with_replica in (*CONFIGS, REPLICA_CONFIG):
            groups = {"primary": postmaster_pid(data_dir / "primary")}
            if with_replica and replica is None:
                shutil.rmtree(data_dir / "replica", ignore_errors=True)
                replica = StreamingReplica(
                    Primary(primary), data_dir / "replica", dataset.DATABASE_NAME
                )
                asyncio.run(caught_up(url, replica.url))
            if with_replica and replica is not None:
                groups["replica"] = postmaster_pid(replica.data_dir)
            env = server_env(url, options, replica.url if with_replica and replica else None)
            port = procs.free_port()
            command = [*procs.server_command(port)[:-1], str(workers)]  # --workers N
            log_path = (
                data_dir / "logs" / f"server-{workers}{'-replica' if with_replica else ''}.log"
            )
            with procs.running(config, command, env, log_path, port=port) as app:
                if with_replica:
                    wait_in_rotation(app.url)
                groups["server"] = app.pid
                for op in ops:
                    figure = measure(config, app, op, options, groups)
                    figures.append(figure)
                    print(
                        f"{config:24} {op.name} {figure.rps:8.1f} req/s"
                        f"  p99 {figure.p99_ms:7.1f} ms  failed {figure.failed}"
                        f"  cores {_cores(figure)}",
                        flush=True,
                    )
    finally:
        if replica is not None:
            replica.destroy()
        primary.stop()
    return figures


def _cores(figure: Figure) -> str:
    return ", ".join(f"{name} {value:.2f}" for name, value in figure.cores.items())


def section(figures: list[Figure], options: argparse.Namespace) -> str:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    tool = (
        "wrk"
        if options.tool == "wrk" or (options.tool == "auto" and load.have_wrk())
        else ("the Python client")
    )
    lines = [
        HEADING,
        "",
        f"{when}, {os.cpu_count()} cores, {options.users} users, {options.connections} "
        f"connections, {options.duration:g} s per run after {options.warmup:g} s of warm-up, "
        f"load from {tool}. Q1 = `me`, Q2 = the admin's page of 20 users with profile and "
        "sessions. CPU is in cores busy on average during the run (CPU seconds per second), per "
        "process group: the server's processes, the primary's, the replica's, the load client.",
        "",
        "| configuration | request | req/s | p99 ms | failed "
        "| server | primary | replica | client |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for f in figures:
        cores = f.cores
        replica = f"{cores['replica']:.2f}" if "replica" in cores else "-"
        lines.append(
            f"| {f.config} | {f.operation} | {f.rps:.0f} | {f.p99_ms:.1f} | {f.failed} | "
            f"{cores.get('server', 0):.2f} | {cores.get('primary', 0):.2f} | {replica} | "
            f"{cores.get('client', 0):.2f} |"
        )
    lines += [
        "",
        "What these figures can show on a machine this size: whether the work is CPU-bound "
        "(the columns add up to the core count), how the CPU splits between Python and "
        "PostgreSQL, and what routing costs (the replica configuration adds one primary look-up "
        "of the caller's read fence per request and the replica's own replay work). What they "
        "cannot show: scale-out. Every worker, both PostgreSQL servers and the load client share "
        "the same cores, so more workers than cores only add contention, and a replica on the "
        "same machine moves the admin reads' PostgreSQL work to another process on the same "
        "CPUs rather than to new hardware. Run it where the servers, the databases and the "
        "client each have cores of their own to measure scaling.",
        "",
    ]
    return "\n".join(lines)


def write_results(path: Path, text: str) -> None:
    """Replace this module's section of ``path`` (or append it), keeping every other one."""
    previous = path.read_text(encoding="utf-8") if path.exists() else ""
    kept: list[str] = []
    skipping = False
    for line in previous.splitlines():
        if line.startswith("## "):
            skipping = line.strip() == HEADING
        if not skipping:
            kept.append(line)
    body = "\n".join(kept).rstrip()
    path.write_text((body + "\n\n" if body else "") + text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    figures = run(options)
    write_results(options.results, section(figures, options))
    print(f"written to {options.results}")
    return 0 if all(f.failed == 0 for f in figures) else 1


if __name__ == "__main__":
    sys.exit(main())
