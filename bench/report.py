"""The benchmark's table, the targets it is judged against and ``RESULTS.md``."""

from __future__ import annotations

import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import asdict
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
import orjson

from bench import load, procs, queries
from bench import postgraphile_app as pgl
from bench.load import LoadResult, StormResult

if TYPE_CHECKING:
    from bench.run import Outcome, Phase

OPS = ("Q1", "Q2", "Q3")
STATEMENT_CASES = ("Q1", "Q2", "Q2 first: 1", "Q2 first: 100")
PACKAGES = (
    "strawberry-graphql",
    "graphql-core",
    "fastapi",
    "starlette",
    "uvicorn",
    "uvloop",
    "httptools",
    "sqlalchemy",
    "asyncpg",
    "aiodataloader",
    "orjson",
    "bcrypt",
)


def load_line(r: LoadResult) -> str:
    failed = f", {r.failed} FAILED" if r.failed else ""
    return f"{r.rps:8.1f} req/s  p50 {r.p50_ms:7.1f} ms  p99 {r.p99_ms:7.1f} ms{failed}"


def storm_line(s: StormResult) -> str:
    return f"login storm: {s.logins} logins ({s.failed} failed), median {s.median_ms:.0f} ms"


def describe_url(url: str) -> str:
    parts = urlsplit(url)
    host = parse_qs(parts.query).get("host", [parts.hostname or "?"])[0]
    return f"{parts.path.lstrip('/')} on {host}"


async def postgres_version(url: str) -> str:
    conn = await asyncpg.connect(url)
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


# --- figures -----------------------------------------------------------------------------------


def _phases(outcome: Outcome, app: str) -> dict[int, Phase]:
    return {p.round: p for p in outcome.phases if p.app == app}


def ratios(outcome: Outcome) -> dict[str, list[float]]:
    """Per round: ours/reference requests/s per op, Q3/Q2 p50 and Q4's p99 ratio (server)."""
    ours, theirs = _phases(outcome, "server"), _phases(outcome, "reference")
    result: dict[str, list[float]] = {op: [] for op in OPS}
    result["Q3/Q2 p50"] = []
    result["Q4 p99 storm/alone"] = []
    for round_no in sorted(ours):
        a, b = ours[round_no], theirs.get(round_no)
        if b is not None:
            for op in OPS:
                result[op].append(a.loads[op].rps / b.loads[op].rps)
        result["Q3/Q2 p50"].append(a.loads["Q3"].p50_ms / a.loads["Q2"].p50_ms)
        result["Q4 p99 storm/alone"].append(a.loads["Q4"].p99_ms / a.loads["Q1"].p99_ms)
    return result


def targets(outcome: Outcome) -> list[tuple[str, str, bool | None]]:
    """(target, measured, met) — met is None where nothing was measured."""
    r = ratios(outcome)
    rows: list[tuple[str, str, bool | None]] = []
    q2, q1 = median(r["Q2"]), median(r["Q1"])
    rows.append(("Q2 >= 0.5x the reference's req/s", f"{q2:.3f}x", q2 >= 0.5))
    rows.append(("Q1 >= 0.6x the reference's req/s", f"{q1:.3f}x", q1 >= 0.6))
    q3 = median(r["Q3/Q2 p50"])
    rows.append(("Q3 p50 <= 1.5x Q2 p50", f"{q3:.2f}x", q3 <= 1.5))
    q4 = median(r["Q4 p99 storm/alone"])
    rows.append(("Q4: Q1 p99 under login storm <= 3x alone", f"{q4:.2f}x", q4 <= 3))
    server = outcome.statements.get("server", {})
    if "Q2 first: 1" in server and "Q2 first: 100" in server:
        one, hundred = server["Q2 first: 1"].per_request, server["Q2 first: 100"].per_request
        rows.append(
            (
                "Q2 statements/request equal at page sizes 1 and 100",
                f"{one:g} vs {hundred:g}",
                one == hundred,
            )
        )
    else:
        rows.append(("Q2 statements/request equal at page sizes 1 and 100", "n/a", None))
    peaks = [p.memory_end.hwm_mb for p in _phases(outcome, "server").values() if p.memory_end]
    growth = [
        p.memory_end.rss_mb - p.memory_warm.rss_mb
        for p in _phases(outcome, "server").values()
        if p.memory_end and p.memory_warm
    ]
    peak = max(peaks, default=float("nan"))
    rows.append(("peak RSS per worker < 250 MB", f"{peak:.0f} MiB", peak < 250))
    most = max(growth, default=float("nan"))
    rows.append(
        (
            "RSS flat after warm-up (growth during the runs)",
            f"{most:+.1f} MiB",
            most <= max(10.0, 0.05 * peak),
        )
    )
    if outcome.startup_seconds:
        worst = max(outcome.startup_seconds)
        rows.append(("/readyz 200 within 3 s of serve", f"{worst:.2f} s (worst)", worst <= 3))
    else:
        rows.append(("/readyz 200 within 3 s of serve", "not measured", None))
    return rows


# What the server sends for the session check it remembers (auth.session_cache_ttl) and the
# reference sends on every request.
SESSION_CHECK = "from users join user_sessions on user_sessions.user_id = users.id"
SESSION_REMEMBERED = "same statements, less the session check the server remembered"


def _is_session_check(text: str | None) -> bool:
    return text is not None and SESSION_CHECK in " ".join(text.lower().split())


def sql_parity(outcome: Outcome) -> dict[str, str]:
    """Per statement case: does the reference issue exactly the server's data statements?
    (The server may leave out its session check: it remembers a recent one.)"""
    ours, theirs = outcome.statements.get("server", {}), outcome.statements.get("reference", {})
    verdicts: dict[str, str] = {}
    for case in STATEMENT_CASES:
        if case not in ours or case not in theirs:
            continue
        a, b = ours[case], theirs[case]
        a_data = {q: a.calls[q] / a.requests for q in a.data_ids()}
        b_all = {q: b.calls[q] / b.requests for q in b.calls}
        checks = {q for q in (*a_data, *b_all) if _is_session_check(a.texts.get(q, b.texts.get(q)))}
        a_rest = {q: n for q, n in a_data.items() if q not in checks}
        b_rest = {q: n for q, n in b_all.items() if q not in checks}
        if a_data == b_all:
            verdicts[case] = "same statements"
        elif a_rest == b_rest and sum(a_data.get(q, 0) for q in checks) < sum(
            b_all.get(q, 0) for q in checks
        ):
            verdicts[case] = SESSION_REMEMBERED
        else:
            missing = [a.texts[q][:80] for q in a_data if q not in b_all]
            extra = [b.texts[q][:80] for q in b_all if q not in a_data]
            verdicts[case] = f"DIFFERENT (reference lacks {missing}, has extra {extra})"
    return verdicts


# --- text --------------------------------------------------------------------------------------


def render(outcome: Outcome) -> str:
    o, data = outcome.options, outcome.data
    lines = [
        f"gql_api vs reference: {outcome.tool}, {o.connections} connections, {o.duration:g}s "
        f"per run ({o.warmup:g}s warm-up per op), {o.rounds} round(s), apps side by side, "
        "each op on one app after the other (A B C, then C B A)",
        f"dataset: {data.users} users; Q3 after row {data.deep_position} of "
        f"{data.users} (created_at DESC)",
        "",
        "| round | op | server req/s | p50 ms | p99 ms | CPU ms/req | reference req/s | p50 ms "
        "| p99 ms | CPU ms/req | ours/ref req/s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    ours, theirs = _phases(outcome, "server"), _phases(outcome, "reference")
    for round_no in sorted(ours):
        a, b = ours[round_no], theirs.get(round_no)
        for op in (*OPS, "Q4"):
            x = a.loads[op]
            row = (
                f"| {round_no} | {op} | {x.rps:.1f} | {x.p50_ms:.1f} | {x.p99_ms:.1f} "
                f"| {_cpu(a, op)} |"
            )
            if b is not None and op in b.loads:
                y = b.loads[op]
                row += (
                    f" {y.rps:.1f} | {y.p50_ms:.1f} | {y.p99_ms:.1f} | {_cpu(b, op)} "
                    f"| {x.rps / y.rps:.3f} |"
                )
            else:
                row += " - | - | - | - | - |"
            if x.failed or (b is not None and op in b.loads and b.loads[op].failed):
                row += " (failed requests!)"
            lines.append(row)
    r = ratios(outcome)
    lines += ["", "Per-round ratios and their medians:"]
    for name, values in r.items():
        shown = ", ".join(f"{v:.3f}" for v in values)
        label = f"{name} ours/ref req/s" if name in OPS else f"{name} (server)"
        lines.append(f"- {label}: [{shown}] median {median(values):.3f}")
    storms = [p.storm for p in ours.values() if p.storm is not None]
    if storms:
        lines.append(
            "- Q4 login storm (8 clients, bcrypt cost "
            f"{o.bcrypt_rounds}): " + "; ".join(storm_line(s) for s in storms)
        )
    lines += ["", *_statements_text(outcome), "", *_memory_text(outcome), ""]
    if outcome.startup_seconds:
        shown = ", ".join(f"{s:.2f}s" for s in outcome.startup_seconds)
        lines.append(f"Start-up, `gql-api serve` to /readyz 200 (embedded, existing data): {shown}")
        if outcome.startup_note:
            lines.append(f"  ({outcome.startup_note})")
    lines.append(
        "JSON of both apps: " + ", ".join(f"{k} {v}" for k, v in outcome.json_check.items())
    )
    lines += ["", "Targets (medians of per-round ratios):"]
    for target, measured, met in targets(outcome):
        verdict = {True: "met", False: "NOT MET", None: "-"}[met]
        lines.append(f"- {target}: {measured} -> {verdict}")
    lines += ["", *_shapes_text(outcome)]
    return "\n".join(lines)


# --- client shapes -----------------------------------------------------------------------------

SAME_AS = {"apq": "apollo"}  # PostGraphile's op for a shape it has no own form of (APQ)


def shape_names(outcome: Outcome) -> list[str]:
    return [s.name for s in queries.SHAPES if s.name in ("Q1", "Q2") or s.name in outcome.shapes]


def shape_ratios(outcome: Outcome) -> dict[str, dict[str, list[float]]]:
    """Per shape, per round: our req/s over the reference's plain document (Q1 or Q2), over
    PostGraphile's equivalent, and over our own plain document."""
    ours, ref = _phases(outcome, "server"), _phases(outcome, "reference")
    peer = _phases(outcome, "postgraphile")
    found: dict[str, dict[str, list[float]]] = {}
    for name in shape_names(outcome):
        plain = queries.shape(name).plain
        r: dict[str, list[float]] = {"reference": [], "postgraphile": [], "plain": []}
        for round_no, a in sorted(ours.items()):
            if name not in a.loads:
                continue
            rps = a.loads[name].rps
            r["plain"].append(rps / a.loads[plain].rps)
            if round_no in ref and plain in ref[round_no].loads:
                r["reference"].append(rps / ref[round_no].loads[plain].rps)
            theirs = peer.get(round_no)
            if theirs is not None and SAME_AS.get(name, name) in theirs.loads:
                r["postgraphile"].append(rps / theirs.loads[SAME_AS.get(name, name)].rps)
        found[name] = r
    return found


def shape_targets(outcome: Outcome) -> list[tuple[str, str, bool | None]]:
    """The client shapes' targets: (target, measured, met), met None where not measured."""
    r = shape_ratios(outcome)
    rows: list[tuple[str, str, bool | None]] = []

    def ratio_row(label: str, values: list[float], floor: float) -> None:
        if not values:
            rows.append((label, "not measured", None))
        else:
            rows.append((label, f"{median(values):.3f}x", median(values) >= floor))

    for name, ratios_ in r.items():
        s = queries.shape(name)
        if s.kind == "users":
            note = " (its Apollo text: no APQ there)" if name in SAME_AS else ""
            ratio_row(f"{name} >= 1.0x PostGraphile{note}", ratios_["postgraphile"], 1.0)
        if name != s.plain:
            ratio_row(f"{name} within 10% of plain {s.plain} (>= 0.9x)", ratios_["plain"], 0.9)
        if s.kind == "me":
            ratio_row(f"{name} >= 0.9x the reference's me", ratios_["reference"], 0.9)
    for name, pages in outcome.shape_statements.items():
        counts = [pages[p] for p in sorted(pages)]
        shown = " / ".join(f"{c:g}" for c in counts)
        sizes = "/".join(str(p) for p in sorted(pages))
        label = f"{name} <= 5 statements/request" + (
            f", constant in page size ({sizes})" if len(pages) > 1 else ""
        )
        rows.append((label, shown, max(counts) <= 5 and len(set(counts)) == 1))
    if not outcome.shape_statements:
        rows.append(("<= 5 statements/request per shape", "not measured", None))
    return rows


def _shapes_text(outcome: Outcome) -> list[str]:
    ours, peer = _phases(outcome, "server"), _phases(outcome, "postgraphile")
    who = outcome.postgraphile or f"not run ({outcome.postgraphile_note})"
    lines = [
        f"Client shapes ({outcome.options.shape_duration:g}s per run for the shapes and for "
        f"PostGraphile; Q1 and Q2 as above). PostGraphile: {who}; amber preset, no auth (it "
        "answers anyone; `me` is its user by primary key), same database.",
        "",
        "| shape | server req/s | p99 ms | CPU ms/req | PostGraphile req/s | vs reference "
        "| vs PostGraphile | vs plain | statements/request (page 1/20/100) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    r = shape_ratios(outcome)

    def med(values: list[float]) -> str:
        return f"{median(values):.3f}x" if values else "-"

    for name in shape_names(outcome):
        runs = [p.loads[name] for p in ours.values() if name in p.loads]
        cpu = [p.cpu_ms[name] for p in ours.values() if name in p.cpu_ms]
        theirs = [
            p.loads[SAME_AS.get(name, name)]
            for p in peer.values()
            if SAME_AS.get(name, name) in p.loads
        ]
        stmts = outcome.shape_statements.get(name, {})
        lines.append(
            f"| {name} | {median([x.rps for x in runs]):.1f} "
            f"| {median([x.p99_ms for x in runs]):.1f} | {median(cpu):.2f} "
            f"| {f'{median([x.rps for x in theirs]):.1f}' if theirs else '-'} "
            f"| {med(r[name]['reference'])} "
            f"| {med(r[name]['postgraphile'])} | {med(r[name]['plain'])} "
            f"| {' / '.join(f'{stmts[k]:g}' for k in sorted(stmts)) or '-'} |"
        )
    lines += [
        "",
        "Medians of per-round ratios (server req/s over: the reference's plain Q1 or Q2; "
        "PostGraphile's equivalent; our plain Q1 or Q2), per round:",
    ]
    for name, ratios_ in r.items():
        shown = "; ".join(
            f"{k} [{', '.join(f'{v:.3f}' for v in vs)}]" for k, vs in ratios_.items() if vs
        )
        lines.append(f"- {name}: {shown}")
    for app, verdicts in outcome.shape_check.items():
        lines.append(
            f"JSON of the shapes, {app}: " + ", ".join(f"{k} {v}" for k, v in verdicts.items())
        )
    if "postgraphile" in outcome.statements:
        count = outcome.statements["postgraphile"]["Q2"]
        lines.append(f"PostGraphile's statements per Q2 request: {count.per_request:g}")
    lines += ["", "Client-shape targets (medians of per-round ratios):"]
    for target, measured, met in shape_targets(outcome):
        verdict = {True: "MET", False: "NOT MET", None: "-"}[met]
        lines.append(f"- {target}: {measured} -> {verdict}")
    return lines


def _cpu(phase: Phase, op: str) -> str:
    return f"{phase.cpu_ms[op]:.2f}" if op in phase.cpu_ms else "-"


def _statements_text(outcome: Outcome) -> list[str]:
    if outcome.statements_note is not None:
        return [f"SQL statements per request: not measured ({outcome.statements_note})"]
    ours, theirs = outcome.statements.get("server", {}), outcome.statements.get("reference", {})
    lines = [
        "SQL statements per request (pg_stat_statements, "
        f"{outcome.options.statement_requests} sequential requests each):",
        "",
        "| request | server, all | server, reads of tables | reference | same statements |",
        "|---|---:|---:|---:|---|",
    ]
    parity = sql_parity(outcome)
    for case in STATEMENT_CASES:
        if case not in ours:
            continue
        a = ours[case]
        ref = f"{theirs[case].per_request:g}" if case in theirs else "-"
        lines.append(
            f"| {case} | {a.per_request:g} | {a.per_request_where(data=True):g} | {ref} "
            f"| {parity.get(case, '-')} |"
        )
    if "Q2" in ours:
        lines += ["", "What the server sends for one Q2 (calls per request):"]
        for calls, text in ours["Q2"].breakdown():
            lines.append(f"- {calls:g} x `{text[:110]}{'...' if len(text) > 110 else ''}`")
    return lines


def _memory_text(outcome: Outcome) -> list[str]:
    lines = [
        "Memory per worker (MiB, /proc/<pid>/status):",
        "",
        "| app | round | RSS after warm-up | RSS after runs | peak (VmHWM) |",
        "|---|---|---:|---:|---:|",
    ]
    for p in outcome.phases:
        if p.memory_warm and p.memory_end:
            lines.append(
                f"| {p.app} | {p.round} | {p.memory_warm.rss_mb:.1f} | {p.memory_end.rss_mb:.1f} "
                f"| {p.memory_end.hwm_mb:.1f} |"
            )
    return lines


# --- RESULTS.md --------------------------------------------------------------------------------


def _code(command: str) -> str:
    return f"`{command}`"


def commands(outcome: Outcome) -> dict[str, str]:
    """What ran, as Markdown: each command in backticks, with what it needs in words."""
    o = outcome.options
    server_env = (
        "USER_SERVICE_ENV=production USER_SERVICE_DATABASE_URL=<bench database> "
        "USER_SERVICE_AUTH_JWT_SECRET=<bench secret> "
        f"USER_SERVICE_AUTH_BCRYPTROUNDS={o.bcrypt_rounds} "
        f"USER_SERVICE_GRAPHQL_MAXCOST={procs.SERVER_MAX_COST}"
    )
    server = shlex.join(procs.server_command(0)).replace(" 0 ", " <port> ")
    reference = shlex.join(procs.reference_command(0)).replace(" 0 ", " <port> ")
    found = {
        "benchmark": _code(shlex.join(outcome.argv)) + " (from the repository root)",
        "server": _code(f"{server_env} {server}"),
        "reference": _code(
            f"BENCH_DATABASE_URL=<bench database> BENCH_JWT_SECRET=<bench secret> {reference}"
        ),
    }
    if outcome.tool == "wrk":
        wrk = load.wrk_command(
            "http://127.0.0.1:<port>", Path("<op>.lua"), connections=o.connections,
            seconds=o.duration,
        )  # fmt: skip
        found["load"] = (
            _code(shlex.join(wrk)) + ", the Lua script setting method, body and bearer token "
            "(written per op by bench/load.py)"
        )
    else:
        found["load"] = (
            f"bench/load.py's asyncio httpx client: {o.connections} connections for {o.duration:g}s"
        )
    found["load"] += (
        f"; the client shapes and PostGraphile's runs for {o.shape_duration:g}s each "
        "(bodies from bench/queries.py `SHAPES`, no bearer token for PostGraphile)"
    )
    if outcome.postgraphile:
        found["PostGraphile"] = (
            _code(
                "BENCH_DATABASE_URL=<bench database> BENCH_PORT=<port> NODE_ENV=production "
                + shlex.join(pgl.command(o.postgraphile_dir))
            )
            + f" ({outcome.postgraphile}; installed by `npm ci` from bench/postgraphile/)"
        )
    found["login storm (Q4)"] = (
        f"{len(outcome.data.login_emails)} asyncio httpx clients in the benchmark process "
        "posting the `login` mutation back to back (bench/load.py `LoginStorm`) while the Q1 "
        "load runs"
    )
    found["start-up"] = (
        _code(
            "USER_SERVICE_ENV=production USER_SERVICE_DATABASE_HOST= "
            "USER_SERVICE_DATABASE_DATADIR=<data dir> "
            f"USER_SERVICE_DATABASE_DATABASE=gql_api_bench {server}"
        )
        + " with PostgreSQL stopped, polling `/readyz` every 20 ms"
    )
    return found


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_total() -> str:
    try:
        with open("/proc/meminfo", encoding="utf-8") as info:
            kb = int(info.readline().split()[1])
        return f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError, IndexError):
        return "unknown"


def _git() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=procs.REPO,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"],
            capture_output=True,
            text=True,
            cwd=procs.REPO,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head}{' + uncommitted changes' if dirty else ''}"


def _versions() -> str:
    found = []
    for name in PACKAGES:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return ", ".join(found)


def machine() -> list[str]:
    load1, load5, _ = os.getloadavg()
    return [
        f"- CPU: {_cpu_model()}, {os.cpu_count()} cores; memory {_memory_total()}; "
        f"load average at the end {load1:.2f} (1 min), {load5:.2f} (5 min)",
        f"- {platform.platform()}; Python {sys.version.split()[0]}",
        f"- {_versions()}",
    ]


OWN_SECTIONS = ("## Machine", "## Commands", "## Figures")


def foreign_sections(previous: str) -> list[str]:
    """The ``## `` sections of an earlier results file that ``bench.run`` does not write (other
    measurements keep theirs in the same file): kept, in order, after ours."""
    kept: list[list[str]] = []
    keeping = False
    for line in previous.splitlines():
        if line.startswith(("# ", "## ")):
            keeping = line.startswith("## ") and line.strip() not in OWN_SECTIONS
            if keeping:
                kept.append([])
        if keeping:
            kept[-1].append(line)
    return ["\n".join(section).rstrip() + "\n" for section in kept]


def markdown(outcome: Outcome, text: str, previous: str = "") -> str:
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(outcome.started_at))
    minutes = (outcome.finished_at - outcome.started_at) / 60
    lines = [
        "# Benchmark: gql_api against the raw Starlette + asyncpg reference"
        + (" and PostGraphile v5" if outcome.postgraphile else ""),
        "",
        f"Run {started} ({minutes:.1f} min), code at {_git()}, PostgreSQL {outcome.postgres}.",
        "Written by `python -m bench.run`; see bench/README.md for what each figure means.",
        "",
        "## Machine",
        *machine(),
        "",
        "## Commands",
        *(f"- {name}: {command}" for name, command in outcome.commands.items()),
        "",
        "## Figures",
        "",
        text,
        "",
    ]
    lines += foreign_sections(previous)
    return "\n".join(lines)


def as_json(outcome: Outcome) -> bytes:
    def phase(p: Phase) -> dict[str, Any]:
        return {
            "app": p.app,
            "round": p.round,
            "ready_seconds": p.ready_seconds,
            "loads": {k: {**asdict(v), "rps": v.rps} for k, v in p.loads.items()},
            "cpu_ms": p.cpu_ms,
            "storm": asdict(p.storm) if p.storm else None,
            "memory_warm": asdict(p.memory_warm) if p.memory_warm else None,
            "memory_end": asdict(p.memory_end) if p.memory_end else None,
        }

    return orjson.dumps(
        {
            "users": outcome.data.users,
            "tool": outcome.tool,
            "phases": [phase(p) for p in outcome.phases],
            "ratios": ratios(outcome),
            "json_check": outcome.json_check,
            "sql_parity": sql_parity(outcome),
            "statements": {
                app: {case: c.per_request for case, c in cases.items()}
                for app, cases in outcome.statements.items()
            },
            "statements_note": outcome.statements_note,
            "startup_seconds": outcome.startup_seconds,
            "targets": [list(t) for t in targets(outcome)],
            "shapes": shape_names(outcome),
            "shape_ratios": shape_ratios(outcome),
            "shape_check": outcome.shape_check,
            "shape_statements": {
                name: {str(page): n for page, n in pages.items()}
                for name, pages in outcome.shape_statements.items()
            },
            "shape_targets": [list(t) for t in shape_targets(outcome)],
            "postgraphile": outcome.postgraphile,
            "postgraphile_note": outcome.postgraphile_note,
        },
        option=orjson.OPT_INDENT_2,
    )
