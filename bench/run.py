"""``python -m bench.run``: gql_api against the raw reference, side by side (see README.md).

Seeds the dataset once. A check phase starts each app on its own, compares their JSON for
Q1-Q3 (and every client shape's data with the database's) and counts SQL statements per request
while they are idle. Then each round starts the server, the reference and PostGraphile (when npm
can install it) side by side, warms each up, and drives each operation on one app after the
other (A B C, A B C, ...; the first app alternates by round), then the login storm (Q4) on the
server, and stops them. Last, the start-up time of ``gql-api serve`` on an existing embedded
data directory. Prints the table and writes the results file.
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson

from bench import dataset, load, procs, queries, report, shapes, statements
from bench import postgraphile_app as pgl
from bench.load import LoadResult, StormResult
from bench.procs import Memory
from bench.queries import Operation

BENCH_DIR = Path(__file__).resolve().parent
SERVER, REFERENCE, POSTGRAPHILE = "server", "reference", "postgraphile"


@dataclass
class Phase:
    """One app started once: its loads, memory and (for the server) the login storm."""

    app: str
    round: int
    ready_seconds: float
    loads: dict[str, LoadResult] = field(default_factory=dict)
    cpu_ms: dict[str, float] = field(default_factory=dict)  # the app's CPU per request, by op
    storm: StormResult | None = None
    memory_warm: Memory | None = None
    memory_end: Memory | None = None


@dataclass
class Outcome:
    """Everything a run measured, for the report."""

    argv: list[str]
    options: argparse.Namespace
    data: dataset.Dataset
    tool: str
    phases: list[Phase] = field(default_factory=list)
    json_check: dict[str, str] = field(default_factory=dict)  # op -> "identical" or a diff
    statements: dict[str, dict[str, statements.StatementCount]] = field(default_factory=dict)
    statements_note: str | None = None
    shapes: list[str] = field(default_factory=list)  # the extra client shapes of this run
    shape_check: dict[str, dict[str, str]] = field(default_factory=dict)  # app -> shape -> verdict
    shape_statements: dict[str, dict[int, float]] = field(default_factory=dict)  # page -> stmts
    postgraphile: str | None = None  # its version when it ran
    postgraphile_note: str | None = None  # why it did not
    startup_seconds: list[float] = field(default_factory=list)
    startup_note: str | None = None
    commands: dict[str, str] = field(default_factory=dict)
    postgres: str = ""
    started_at: float = field(default_factory=time.time)
    finished_at: float = 0.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--users", type=int, default=10_000, help="bulk users to seed")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per load run")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds per op before runs")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (at least 1)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--database-url", help="postgresql:// URL (default: embedded)")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=BENCH_DIR / ".data" / "pgdata",
        help="the embedded PostgreSQL's data directory",
    )
    parser.add_argument("--results", type=Path, default=BENCH_DIR / "RESULTS.md")
    parser.add_argument("--json", type=Path, help="also write the raw figures as JSON here")
    parser.add_argument("--logs-dir", type=Path, help="app logs (default: beside the data)")
    parser.add_argument("--tool", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument(
        "--bcrypt-rounds",
        type=int,
        default=12,
        help="the server's bcrypt cost, and the login users' (product default 12)",
    )
    parser.add_argument(
        "--shapes",
        default="all",
        help="client shapes besides Q1 and Q2, comma-separated, 'all' or 'none': "
        + ", ".join(queries.EXTRA_SHAPES),
    )
    parser.add_argument(
        "--shape-duration",
        type=float,
        default=5.0,
        help="seconds per load run of each client shape and of every PostGraphile run",
    )
    parser.add_argument(
        "--postgraphile",
        choices=("auto", "on", "off"),
        default="auto",
        help="PostGraphile v5 as a peer: auto runs it when npm can install it, on insists",
    )
    parser.add_argument(
        "--postgraphile-dir",
        type=Path,
        default=pgl.CACHE_DIR,
        help="where npm installs PostGraphile and Node 22 (reused by later runs)",
    )
    parser.add_argument("--statement-requests", type=int, default=20)
    parser.add_argument("--startup-runs", type=int, default=2)
    options = parser.parse_args(argv)
    if options.rounds < 1 or options.duration <= 0 or options.connections < 1:
        parser.error("--rounds, --duration and --connections must be positive")
    if options.shape_duration <= 0:
        parser.error("--shape-duration must be positive")
    try:
        options.shapes = shapes.parse(options.shapes)
    except ValueError as exc:
        parser.error(str(exc))
    options.logs_dir = options.logs_dir or options.data_dir.parent / "logs"
    return options


# Production refuses to start without one (second factor); nobody enrols in the benchmark.
MFA_KEY = "bench-only-mfa-key-" + "m" * 32


def server_env(options: argparse.Namespace, url: str) -> dict[str, str]:
    """The production configuration, on the benchmark's database, one worker."""
    return procs.clean_env(
        USER_SERVICE_ENV="production",
        USER_SERVICE_DATABASE_URL=url,
        USER_SERVICE_AUTH_JWT_SECRET=dataset.JWT_SECRET,
        USER_SERVICE_AUTH_MFA_ENCRYPTION_KEY=MFA_KEY,
        USER_SERVICE_AUTH_BCRYPTROUNDS=str(options.bcrypt_rounds),
        USER_SERVICE_GRAPHQL_MAXCOST=str(procs.SERVER_MAX_COST),
        # The reference keeps up to 25 connections open (asyncpg pool, max_size=25); so does
        # the server here. With fewer kept idle, overflow connections are closed on return and
        # re-opened (and their statements re-prepared) under load.
        USER_SERVICE_DATABASE_MAXOPENCONNS="25",
        USER_SERVICE_DATABASE_MAXIDLECONNS="25",
    )


def reference_env(url: str) -> dict[str, str]:
    return procs.clean_env(BENCH_DATABASE_URL=url, BENCH_JWT_SECRET=dataset.JWT_SECRET)


@contextmanager
def start(name: str, options: argparse.Namespace, url: str, round_no: int) -> Iterator[procs.App]:
    port = procs.free_port()
    if name == SERVER:
        command, env = procs.server_command(port), server_env(options, url)
    elif name == POSTGRAPHILE:
        command = pgl.command(options.postgraphile_dir)
        env = pgl.env(procs.clean_env(), url=url, port=port)
    else:
        command, env = procs.reference_command(port), reference_env(url)
    log_path = options.logs_dir / f"{name}-{f'round{round_no}' if round_no else 'check'}.log"
    with procs.running(name, command, env, log_path, port=port) as app:
        yield app


def fetch_json(app_url: str, ops: list[Operation]) -> dict[str, bytes]:
    with httpx.Client(base_url=app_url, timeout=30.0) as client:
        return {
            op.name: client.post("/graphql", content=op.body, headers=op.headers).content
            for op in ops
        }


def compare_json(ours: bytes, theirs: bytes) -> str:
    """ "identical" or where the two documents first differ."""
    if ours == theirs:
        return "identical"
    a, b = orjson.loads(ours), orjson.loads(theirs)
    if a == b:
        return "identical"  # same document, different bytes (key order or spacing)
    return f"differs: server {ours[:200]!r} vs reference {theirs[:200]!r}"


def check_response(app: procs.App, op: Operation) -> None:
    """A load run measures nothing if the answer is an error: fail early and loudly."""
    with httpx.Client(base_url=app.url, timeout=30.0) as client:
        shapes.setup(client, op)  # APQ: store the document before its hash is sent alone
    body = fetch_json(app.url, [op])[op.name]
    parsed = orjson.loads(body)
    if parsed.get("errors") or not parsed.get("data"):
        raise RuntimeError(f"{app.name} answers {op.name} with {body[:300]!r}")


def check_phase(outcome: Outcome, name: str, ops: list[Operation]) -> dict[str, bytes]:
    """Before any load: the app's JSON for each op, each client shape's data against the
    database and its SQL statements per request."""
    data, extra = outcome.data, outcome.shapes
    if name == SERVER:
        checked = [(s, queries.shape_operation(s, token=shapes.token_for(s, data)))
                   for s in shapes.selected(extra)]  # fmt: skip
    elif name == POSTGRAPHILE:
        checked = [(s, queries.postgraphile_operation(s, viewer_id=data.user_id))
                   for s in shapes.selected(extra)]  # fmt: skip
    else:
        checked = []
    with start(name, outcome.options, data.url, 0) as app:
        print(f"  {name}: pid {app.pid}, ready in {app.ready_seconds:.2f}s", flush=True)
        for op in ops:
            check_response(app, op)
        answers = fetch_json(app.url, ops)
        if checked:
            outcome.shape_check[name] = shapes.check(app.url, data.url, checked, data)
            print("  shapes: " + ", ".join(
                f"{k} {v}" for k, v in outcome.shape_check[name].items()), flush=True)  # fmt: skip
        if outcome.statements_note is None and name != POSTGRAPHILE:
            outcome.statements[name] = asyncio.run(count_statements(outcome, app))
        if outcome.statements_note is None and name == SERVER:
            outcome.shape_statements = asyncio.run(
                shapes.count_statements(
                    app.url, data.url, extra, data, outcome.options.statement_requests
                )
            )
        if outcome.statements_note is None and name == POSTGRAPHILE:
            op = queries.postgraphile_operation(queries.shape("Q2"), viewer_id=data.user_id)
            outcome.statements[name] = {"Q2": asyncio.run(count_one(outcome, app, op))}
    return answers


async def count_one(outcome: Outcome, app: procs.App, op: Operation) -> statements.StatementCount:
    await statements.warm(app.url, op)
    return await statements.count(outcome.data.url, app.url, op, outcome.options.statement_requests)


def prepare_postgraphile(options: argparse.Namespace) -> tuple[str | None, str | None]:
    """(its version, None) once installed, or (None, why it will not run)."""
    if options.postgraphile == "off":
        return None, "--postgraphile off"
    try:
        print(f"postgraphile: npm ci into {options.postgraphile_dir} unless there", flush=True)
        installed = pgl.install(options.postgraphile_dir)
    except (pgl.Unavailable, OSError, subprocess.SubprocessError) as exc:
        if options.postgraphile == "on":
            raise SystemExit(f"PostGraphile cannot run: {exc}") from exc
        return None, str(exc)
    return pgl.version(installed), None


def drive(outcome: Outcome, app: procs.App, op: Operation, seconds: float) -> LoadResult:
    return load.drive(
        app.url, op, connections=outcome.options.connections, seconds=seconds, tool=outcome.tool
    )


def run_round(
    outcome: Outcome,
    round_no: int,
    ops: dict[str, list[Operation]],
    shape_ops: dict[str, Sequence[Operation]],
) -> list[Phase]:
    """One round: every app started at once and warmed up, then each operation driven on one
    app after the other (``ops`` for --duration, ``shape_ops`` for --shape-duration), so that
    the runs compared stand seconds apart, not minutes: this machine's speed drifts. The app
    that goes first alternates from round to round."""
    options = outcome.options
    names = [name for name in (SERVER, REFERENCE, POSTGRAPHILE) if name in ops or name in shape_ops]
    with ExitStack() as stack:
        apps: dict[str, procs.App] = {}
        phases: dict[str, Phase] = {}
        by_name: dict[str, dict[str, Operation]] = {}
        seconds: dict[tuple[str, str], float] = {}
        for name in names:
            app = apps[name] = stack.enter_context(start(name, options, outcome.data.url, round_no))
            phases[name] = Phase(name, round_no, app.ready_seconds)
            print(f"  {name}: pid {app.pid}, ready in {app.ready_seconds:.2f}s", flush=True)
            by_name[name] = {}
            for group, duration in ((ops, options.duration), (shape_ops, options.shape_duration)):
                for op in group.get(name, ()):
                    by_name[name][op.name] = op
                    seconds[name, op.name] = duration
        for name in names:
            for op in by_name[name].values():
                check_response(apps[name], op)
                drive(outcome, apps[name], op, min(options.warmup, seconds[name, op.name]))
            phases[name].memory_warm = procs.memory(apps[name].pid)
        order = names if round_no % 2 else names[::-1]
        op_names = next_to_plain(list(dict.fromkeys(n for name in names for n in by_name[name])))
        for op_name in op_names:
            for name in order:
                if op_name in by_name[name]:
                    _measure(outcome, apps[name], phases[name], by_name[name][op_name],
                             seconds[name, op_name])  # fmt: skip
        server = phases.get(SERVER)
        if server is not None:
            q1 = ops[SERVER][0]
            server.loads["Q4"], server.storm = login_storm(outcome, apps[SERVER], q1)
            print(f"    server Q4: {report.load_line(server.loads['Q4'])}; "
                  f"{report.storm_line(server.storm)}", flush=True)  # fmt: skip
        for name in names:
            phases[name].memory_end = procs.memory(apps[name].pid)
    return [phases[name] for name in names]


# Q3 (the deep page) stays right after Q2: the Q3/Q2 latency target compares the two.
_FOLLOWS = {"Q3": "Q2"}


def next_to_plain(op_names: list[str]) -> list[str]:
    """The operations in order, each client shape moved right after its plain document (Q1 or
    Q2): a shape's ratio to our plain document compares runs a minute apart at most (the
    machine's speed drifts over minutes; ``me-fragment`` ran two minutes after Q1)."""
    plain_of = {s.name: s.plain for s in queries.SHAPES if s.name != s.plain}
    ordered: list[str] = []
    for name in op_names:
        if name not in plain_of and name not in _FOLLOWS:
            ordered.append(name)
            ordered.extend(n for n in op_names if _FOLLOWS.get(n) == name)
            ordered.extend(n for n in op_names if plain_of.get(n) == name)
    ordered.extend(n for n in op_names if n not in ordered)  # a shape whose plain did not run
    return ordered


def _measure(outcome: Outcome, app: procs.App, phase: Phase, op: Operation, seconds: float) -> None:
    used = procs.cpu_seconds(app.pid)
    result = drive(outcome, app, op, seconds)
    used = procs.cpu_seconds(app.pid) - used
    phase.loads[op.name] = result
    phase.cpu_ms[op.name] = 1000 * used / max(result.requests, 1)
    print(f"    {phase.app} {op.name}: {report.load_line(result)}, "
          f"{phase.cpu_ms[op.name]:.2f} ms CPU/request", flush=True)  # fmt: skip


def login_storm(outcome: Outcome, app: procs.App, q1: Operation) -> tuple[LoadResult, StormResult]:
    """Q1 driven as before while the login users sign in back to back."""
    options = outcome.options
    storm = load.LoginStorm(
        app.url,
        outcome.data.login_emails,
        dataset.LOGIN_PASSWORD,
        max_seconds=options.duration + 30,
    )
    with storm:
        time.sleep(min(1.0, options.duration / 4))  # let the hashing pool fill up first
        result = drive(outcome, app, q1, options.duration)
    if storm.result.logins == 0:
        raise RuntimeError(f"the login storm made no login ({storm.result.failed} failed)")
    return result, storm.result


async def count_statements(
    outcome: Outcome, app: procs.App
) -> dict[str, statements.StatementCount]:
    data, n = outcome.data, outcome.options.statement_requests
    cases = {
        "Q1": Operation("Q1", "me", queries.body(queries.ME), data.user_token),
        "Q2": Operation("Q2", "users 20", queries.body(queries.USERS), data.admin_token),
        "Q2 first: 1": Operation(
            "Q2/1", "users 1", queries.body(queries.users_page(1)), data.admin_token
        ),
        "Q2 first: 100": Operation(
            "Q2/100", "users 100", queries.body(queries.users_page(100)), data.admin_token
        ),
    }
    counted = {}
    for label, op in cases.items():
        await statements.warm(app.url, op)  # connections open, types introspected
        counted[label] = await statements.count(data.url, app.url, op, n)
    return counted


def time_startup(options: argparse.Namespace, data_dir: Path, runs: int) -> list[float]:
    """Seconds from starting ``gql-api serve`` to a 200 from /readyz, on ``data_dir`` with no
    PostgreSQL running (serve starts the embedded one). One untimed run first if the directory
    holds no database yet."""
    env = procs.clean_env(
        USER_SERVICE_ENV="production",
        USER_SERVICE_DATABASE_HOST="",  # no host and no URL: the embedded server
        USER_SERVICE_DATABASE_DATADIR=str(data_dir),
        USER_SERVICE_DATABASE_DATABASE=dataset.DATABASE_NAME,
        USER_SERVICE_AUTH_JWT_SECRET=dataset.JWT_SECRET,
        USER_SERVICE_AUTH_MFA_ENCRYPTION_KEY=MFA_KEY,
        USER_SERVICE_AUTH_BCRYPTROUNDS=str(options.bcrypt_rounds),
    )
    timings: list[float] = []
    untimed = 0 if (data_dir / "PG_VERSION").is_file() else 1
    for attempt in range(untimed + runs):
        port = procs.free_port()
        log_path = options.logs_dir / f"startup-{attempt + 1}.log"
        started = time.perf_counter()
        with procs.running(SERVER, procs.server_command(port), env, log_path, port=port):
            elapsed = time.perf_counter() - started
        if attempt >= untimed:
            timings.append(elapsed)
            print(f"  serve -> /readyz 200: {elapsed:.2f}s", flush=True)
    return timings


def machine_tool(options: argparse.Namespace) -> str:
    if options.tool == "auto":
        return "wrk" if load.have_wrk() else "python"
    if options.tool == "wrk" and not load.have_wrk():
        raise SystemExit("wrk is not installed (apt-get install wrk), use --tool python")
    return str(options.tool)


def main(argv: list[str] | None = None) -> Outcome:
    options = parse_args(argv)
    shown = ["python", "-m", "bench.run", *(sys.argv[1:] if argv is None else argv)]
    print(f"$ {shlex.join(shown)}", flush=True)
    url, embedded = dataset.open_database(options.database_url, options.data_dir)
    try:
        print(f"database: {report.describe_url(url)}; preparing {options.users} users", flush=True)
        data = asyncio.run(
            dataset.prepare(url, users=options.users, bcrypt_rounds=options.bcrypt_rounds)
        )
        print(
            f"  {data.users} users ({'seeded' if data.seeded_now else 'already present'}, "
            f"{data.seed_seconds:.1f}s)",
            flush=True,
        )
        outcome = Outcome(argv=shown, options=options, data=data, tool=machine_tool(options))
        outcome.shapes = options.shapes
        outcome.statements_note = asyncio.run(statements.available(url))
        outcome.postgraphile, outcome.postgraphile_note = prepare_postgraphile(options)
        outcome.commands = report.commands(outcome)
        ops = queries.operations(
            user_token=data.user_token, admin_token=data.admin_token, deep_cursor=data.deep_cursor
        )
        server_shapes = shapes.server_operations(outcome.shapes, data)
        peer_ops = shapes.postgraphile_operations(outcome.shapes, data)
        apps = (SERVER, REFERENCE, POSTGRAPHILE) if outcome.postgraphile else (SERVER, REFERENCE)
        print("check: JSON of the apps and SQL statements per request", flush=True)
        answers = {
            name: check_phase(outcome, name, [] if name == POSTGRAPHILE else ops) for name in apps
        }
        outcome.json_check = {
            op.name: compare_json(answers[SERVER][op.name], answers[REFERENCE][op.name])
            for op in ops
        }
        print("  " + ", ".join(f"{k}: {v}" for k, v in outcome.json_check.items()), flush=True)
        for round_no in range(1, options.rounds + 1):
            print(f"round {round_no}/{options.rounds}", flush=True)
            round_ops = {SERVER: ops, REFERENCE: ops}
            round_shapes: dict[str, Sequence[Operation]] = {SERVER: server_shapes}
            if outcome.postgraphile:
                round_shapes[POSTGRAPHILE] = peer_ops
            outcome.phases.extend(run_round(outcome, round_no, round_ops, round_shapes))
        outcome.postgres = asyncio.run(report.postgres_version(url))
    finally:
        if embedded is not None:
            embedded.stop()  # the last holder stops it: serve starts it afresh below
    if embedded is not None:
        startup_dir = options.data_dir
    else:
        startup_dir = options.data_dir.parent / "startup-pgdata"
        outcome.startup_note = f"--database-url given: measured on {startup_dir}"
    if options.startup_runs > 0:
        print("start-up of gql-api serve on an existing embedded data directory", flush=True)
        outcome.startup_seconds = time_startup(options, startup_dir, options.startup_runs)
    outcome.finished_at = time.time()
    text = report.render(outcome)
    print(text)
    options.results.parent.mkdir(parents=True, exist_ok=True)
    previous = options.results.read_text(encoding="utf-8") if options.results.exists() else ""
    options.results.write_text(report.markdown(outcome, text, previous), encoding="utf-8")
    if options.json:
        options.json.write_bytes(report.as_json(outcome))
    print(f"written: {options.results}")
    return outcome


if __name__ == "__main__":
    main()
