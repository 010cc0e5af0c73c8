"""``python -m bench.profile Q2``: where the server's CPU goes under the benchmark's load.

Starts the server on the benchmark's database (seeded as ``bench.run`` seeds it), drives one
operation with the same load, records it with py-spy (``pip install py-spy``) and prints self
time by package and the hottest functions. The raw collapsed stacks are kept for flame graphs.

    python -m bench.profile Q2 [--seconds 12] [--users 10000] [--rate 200] [--output DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

from bench import dataset, load, procs, queries, run

# Self time is charged to the first of these that the sampled leaf frame's file starts with.
PACKAGES = (
    ("graphql/", "graphql-core executor"),
    ("strawberry/", "strawberry"),
    ("aiodataloader", "aiodataloader"),
    ("sqlalchemy/orm", "SQLAlchemy ORM"),
    ("sqlmodel", "SQLAlchemy ORM"),
    ("sqlalchemy/ext/asyncio", "SQLAlchemy asyncio/greenlet"),
    ("sqlalchemy/util/concurrency", "SQLAlchemy asyncio/greenlet"),
    ("sqlalchemy/", "SQLAlchemy core, engine, pool, dialect"),
    ("asyncpg", "asyncpg"),
    ("asyncio/", "event loop (asyncio/uvloop)"),
    ("uvicorn", "HTTP: uvicorn/starlette/fastapi"),
    ("starlette", "HTTP: uvicorn/starlette/fastapi"),
    ("fastapi", "HTTP: uvicorn/starlette/fastapi"),
    ("gql_api/", "gql_api"),
    ("logging/", "logging"),
    ("jwt/", "JWT"),
    ("json/", "json"),
    ("prometheus_client", "prometheus"),
)
_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>.*?):\d+\)$")


def _file(frame: str) -> str:
    match = _FRAME.match(frame)
    path = match.group("file") if match else frame
    return path.split("site-packages/")[-1].replace(str(procs.REPO) + "/", "")


def _package(frame: str) -> str:
    path = _file(frame)
    return next((name for prefix, name in PACKAGES if path.startswith(prefix)), "other")


def summarise(collapsed: Path, top: int = 25) -> str:
    """Self time by package and the hottest leaf functions of py-spy's raw output."""
    total = 0
    packages: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    for line in collapsed.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit() or not stack:
            continue
        samples = int(count)
        total += samples
        leaf = stack.split(";")[-1]
        packages[_package(leaf)] += samples
        match = _FRAME.match(leaf)
        name = match.group("function") if match else leaf
        leaves[f"{name} ({_file(leaf)})"] += samples
    if not total:
        return "no samples"
    lines = [f"{total} samples", "", "self time by package:"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in packages.most_common()]
    lines += ["", f"hottest {top} functions (self time):"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in leaves.most_common(top)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("op", choices=("Q1", "Q2", "Q3"))
    parser.add_argument("--seconds", type=int, default=12)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    parser.add_argument("--data-dir", type=Path, default=run.BENCH_DIR / ".data" / "pgdata")
    parser.add_argument("--database-url")
    parser.add_argument("--output", type=Path, default=run.BENCH_DIR / ".data" / "profiles")
    options = parser.parse_args(argv)
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if spy is None:
        raise SystemExit("py-spy is not installed: pip install py-spy")
    bench_options = run.parse_args(["--data-dir", str(options.data_dir)])
    url, embedded = dataset.open_database(options.database_url, options.data_dir)
    try:
        data = asyncio.run(dataset.prepare(url, users=options.users, bcrypt_rounds=12))
        op = queries.operation_named(options.op, data)
        options.output.mkdir(parents=True, exist_ok=True)
        collapsed = options.output / f"{options.op}.collapsed.txt"
        port = procs.free_port()
        env = run.server_env(bench_options, url)
        log_path = options.output / f"{options.op}.server.log"
        with procs.running("server", procs.server_command(port), env, log_path, port=port) as app:
            load.drive(app.url, op, connections=options.connections, seconds=3)  # warm-up
            recorder = subprocess.Popen(
                [
                    spy, "record", "--pid", str(app.pid), "--duration", str(options.seconds),
                    "--rate", str(options.rate), "--format", "raw", "--nonblocking",
                    "--output", str(collapsed),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
            result = load.drive(
                app.url, op, connections=options.connections, seconds=options.seconds
            )
            recorder.wait(timeout=options.seconds + 60)
    finally:
        if embedded is not None:
            embedded.stop()
    print(f"{options.op}: {result.rps:.1f} req/s, p50 {result.p50_ms:.1f} ms under py-spy")
    print(f"raw stacks: {collapsed}\n")
    print(summarise(collapsed))


if __name__ == "__main__":
    main()
