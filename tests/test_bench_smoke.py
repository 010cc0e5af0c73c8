"""The benchmark runs end to end on a tiny dataset, and the reference answers exactly as the server.

No timing is asserted: only that every step ran, that the two apps' JSON for Q1-Q3 is identical,
that the reference issues the server's SQL statements and that every client shape (Apollo, APQ,
Relay, filter variable, @include, me with a fragment) gets the database's data from our server.
PostGraphile's smoke needs npm (it is installed on demand) and skips, saying so, without it.
Results go to a temporary directory, never over bench/RESULTS.md.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.procs import REPO, clean_env
from bench.queries import SHAPE_NAMES, SHAPES
from bench.report import SESSION_REMEMBERED

pytestmark = pytest.mark.slow
SAME = "same data as the database"


@pytest.fixture(autouse=True)
def no_server_left(tmp_path: Path) -> Iterator[None]:
    """A benchmark stops its embedded PostgreSQL itself; one killed at the timeout cannot, so
    the server it left is stopped here, by the PID in its data directory."""
    yield
    for pid_file in tmp_path.glob("**/postmaster.pid"):
        try:
            pid = int(pid_file.read_text().splitlines()[0])
            if Path(f"/proc/{pid}/comm").read_text().strip() == "postgres":  # not a reused PID
                os.kill(pid, signal.SIGINT)  # PostgreSQL's fast shutdown
        except (OSError, ValueError, IndexError):
            pass  # gone already, or a stale or half-written file


def run_bench(tmp_path: Path, *extra: str, timeout: float = 240) -> dict[str, Any]:
    """``python -m bench.run`` on 50 users with the shortest runs; its JSON figures."""
    results, figures = tmp_path / "RESULTS.md", tmp_path / "results.json"
    command = [
        sys.executable, "-m", "bench.run",
        "--users", "50", "--duration", "1", "--warmup", "0.3", "--rounds", "1",
        "--connections", "4", "--tool", "python", "--bcrypt-rounds", "4",
        "--statement-requests", "3", "--shape-duration", "0.5",
        "--data-dir", str(tmp_path / "pgdata"), "--logs-dir", str(tmp_path / "logs"),
        "--results", str(results), "--json", str(figures), *extra,
    ]  # fmt: skip
    done = subprocess.run(
        command, cwd=REPO, env=clean_env(), capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    data: dict[str, Any] = json.loads(figures.read_text(encoding="utf-8"))
    return data


def test_benchmark_runs_end_to_end_on_a_tiny_dataset(tmp_path: Path) -> None:
    committed = REPO / "bench" / "RESULTS.md"
    before = committed.read_bytes() if committed.exists() else None
    results = tmp_path / "RESULTS.md"
    # Another measurement's section in the results file survives a run of bench.run.
    results.write_text("# old\n\n## Figures\nold figures\n\n## Scale\nkept 42\n", encoding="utf-8")
    data = run_bench(tmp_path, "--startup-runs", "1", "--postgraphile", "off")
    assert data["users"] >= 50
    assert data["json_check"] == {"Q1": "identical", "Q2": "identical", "Q3": "identical"}
    # The reference reads the bearer's session on every request; the server remembers its
    # check (auth.session_cache_ttl) and otherwise sends exactly the reference's statements.
    assert data["sql_parity"] == {
        case: SESSION_REMEMBERED for case in ("Q1", "Q2", "Q2 first: 1", "Q2 first: 100")
    }
    phases = {(p["app"], p["round"]): p for p in data["phases"]}
    assert set(phases) == {("server", 1), ("reference", 1)}
    assert set(phases["server", 1]["loads"]) == {"Q1", "Q2", "Q3", "Q4", *SHAPE_NAMES}
    assert set(phases["reference", 1]["loads"]) == {"Q1", "Q2", "Q3"}
    for phase in phases.values():
        for name, run in phase["loads"].items():
            assert run["requests"] > 0 and run["failed"] == 0, (phase["app"], name, run)
        assert phase["memory_end"]["hwm_mb"] > 0
    assert phases["server", 1]["storm"]["logins"] > 0
    server_statements = data["statements"]["server"]
    assert server_statements["Q2 first: 1"] > 0 and server_statements["Q2 first: 100"] > 0
    assert len(data["startup_seconds"]) == 1

    # Every client shape: the database's users, sessions and viewer, through our server.
    assert data["shapes"] == list(SHAPE_NAMES)
    assert data["shape_check"] == {"server": dict.fromkeys(SHAPE_NAMES, SAME)}
    kinds = {shape.name: shape.kind for shape in SHAPES}
    for name, pages in data["shape_statements"].items():
        counts = set(pages.values())
        # ``me`` reads nothing once the session check is remembered (the viewer is its answer).
        least = 0 if kinds[name] == "me" else 1
        assert len(counts) == 1 and least <= counts.pop() <= 5, (name, pages)
    assert set(data["shape_statements"]["relay"]) == {"1", "20", "100"}
    assert data["postgraphile"] is None and "--postgraphile off" in data["postgraphile_note"]
    assert {t[0].split()[0] for t in data["shape_targets"]} >= set(SHAPE_NAMES)

    text = results.read_text(encoding="utf-8")
    for heading in ("## Machine", "## Commands", "## Figures", "Targets", "Client shapes"):
        assert heading in text
    assert "old figures" not in text and text.rstrip().endswith("## Scale\nkept 42")
    after = committed.read_bytes() if committed.exists() else None
    assert after == before, "the smoke test must not overwrite bench/RESULTS.md"


def test_postgraphile_answers_every_shape_with_the_databases_data(tmp_path: Path) -> None:
    if shutil.which("npm") is None:
        pytest.skip("npm is not installed: the benchmark installs PostGraphile with npm")
    data = run_bench(tmp_path, "--startup-runs", "0", "--postgraphile", "on", timeout=600)

    version = data["postgraphile"]
    assert version.startswith("postgraphile 5.") and "node v22." in version, version
    assert data["shape_check"]["postgraphile"] == dict.fromkeys(SHAPE_NAMES, SAME)
    assert data["shape_check"]["server"] == dict.fromkeys(SHAPE_NAMES, SAME)
    peer = next(p for p in data["phases"] if p["app"] == "postgraphile")
    # No APQ in PostGraphile v5: the apq shape is compared with its Apollo text.
    assert set(peer["loads"]) == set(SHAPE_NAMES) - {"apq"}
    for name, run in peer["loads"].items():
        assert run["requests"] > 0 and run["failed"] == 0, (name, run)
    for name in SHAPE_NAMES:
        assert len(data["shape_ratios"][name]["postgraphile"]) == 1, name


def test_the_shape_check_catches_other_users_missing_sessions_and_errors() -> None:
    from bench.shapes import verdict

    want = {"totalCount": 2, "users": [("a", 1), ("b", 0)]}

    def users(*nodes: dict[str, Any], total: int = 2) -> bytes:
        edges = [{"node": n} for n in nodes]
        return json.dumps({"data": {"users": {"totalCount": total, "edges": edges}}}).encode()

    ours = users({"id": "a", "sessions": [{"id": "s"}]}, {"id": "b", "sessions": []})
    theirs = json.dumps(
        {"data": {"allUsers": {"totalCount": 2, "edges": [
            {"node": {"rowId": "a", "userSessionsByUserId": {"nodes": [{"rowId": "s"}]}}},
            {"node": {"rowId": "b", "userSessionsByUserId": {"nodes": []}}},
        ]}}}
    ).encode()  # fmt: skip
    assert verdict(ours, want) == verdict(theirs, want) == SAME
    assert verdict(
        users({"id": "a", "sessions": []}, {"id": "b", "sessions": []}), want
    ).startswith("DIFFERS")
    assert verdict(users({"id": "b", "sessions": []}, {"id": "a", "sessions": [1]}), want) != SAME
    assert (
        verdict(users({"id": "a", "sessions": [1]}, {"id": "b", "sessions": []}, total=3), want)
        != SAME
    )
    error = json.dumps({"data": None, "errors": [{"message": "no"}]}).encode()
    assert verdict(error, want).startswith("BAD ANSWER")


def test_each_client_shape_runs_right_after_its_plain_document() -> None:
    from bench.run import next_to_plain

    ran = ["Q1", "Q2", "Q3", "apollo", "apq", "relay", "filter", "include", "me-fragment"]
    assert next_to_plain(ran) == [
        "Q1", "me-fragment", "Q2", "Q3", "apollo", "apq", "relay", "filter", "include",
    ]  # fmt: skip
    assert next_to_plain(["apollo", "Q1"]) == ["Q1", "apollo"]  # no Q2: kept, last


def test_the_in_process_comparison_measures_both_apps_on_every_kind_of_op(tmp_path: Path) -> None:
    figures_path, logs = tmp_path / "in_process.json", tmp_path / "logs"
    ops = ["Q1", "Q2", "Q3", "relay", "apq", "me-fragment"]
    command = [
        sys.executable, "-m", "bench.in_process", "--users", "50", "--bcrypt-rounds", "4",
        "--rounds", "2", "--batch", "8", "--warmup", "4", "--concurrency", "2",
        "--ops", ",".join(ops), "--data-dir", str(tmp_path / "pgdata"),
        "--logs-dir", str(logs), "--json", str(figures_path),
    ]  # fmt: skip
    done = subprocess.run(
        command, cwd=REPO, env=clean_env(), capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    figures = json.loads(figures_path.read_text(encoding="utf-8"))
    assert list(figures) == ops
    compared = {name: f["compared_with"] for name, f in figures.items()}
    assert compared == {
        "Q1": "Q1", "Q2": "Q2", "Q3": "Q3", "relay": "Q2", "apq": "Q2", "me-fragment": "Q1"
    }  # fmt: skip
    for name, f in figures.items():
        assert f["server_us"] > 0 and f["reference_us"] > 0, name
        assert len(f["rounds"]) == 2 and f["speed_vs_reference"] > 0, name
        # The embedded PostgreSQL runs here: its backends' CPU is readable.
        assert f["postgres_server_us"] is not None, name
    for name in ops:
        assert f"| {name} |" in done.stdout
    # The server ran as in production: one JSON access line per request, all answered.
    lines = [json.loads(line) for line in (logs / "server.log").read_text().splitlines()]
    access = [line for line in lines if line["logger"] == "gql_api.access"]
    assert len(access) >= len(ops) * (1 + 4 + 2 * 8)
    assert {line["status"] for line in access} == {200}

    unknown = subprocess.run(
        [*command[:3], "--ops", "Q9"], cwd=REPO, env=clean_env(), capture_output=True, text=True
    )
    assert unknown.returncode != 0 and "unknown op 'Q9'" in unknown.stderr


def side_by_side(module: str, tmp_path: Path, *args: str) -> tuple[str, list[dict[str, Any]]]:
    """Run ``python -m <module>`` (a bench.side_by_side comparison) small and fast: its output
    and every run's figures."""
    figures_path = tmp_path / "runs.json"
    command = [
        sys.executable, "-m", module, "--users", "50", "--bcrypt-rounds", "4", "--rounds", "2",
        "--seconds", "1", "--connections", "4", "--tool", "python",
        "--data-dir", str(tmp_path / "pgdata"), "--json", str(figures_path), *args,
    ]  # fmt: skip
    done = subprocess.run(
        command, cwd=REPO, env=clean_env(), capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    runs: list[dict[str, Any]] = json.loads(figures_path.read_text(encoding="utf-8"))
    for figures in runs:
        assert figures["rps"] > 0 and figures["cpu_ms"] > 0, figures
    return done.stdout, runs


def test_the_collector_comparison_times_each_thresholds_collections(tmp_path: Path) -> None:
    stdout, runs = side_by_side("bench.collector", tmp_path, "--young", "100,1000000")
    assert [(r["round"], r["young"]) for r in runs] == [
        (1, 100), (1, 1000000), (2, 1000000), (2, 100)
    ]  # fmt: skip
    # Each server took the threshold it was given: a young generation of 100 objects is
    # scanned many times a second under load, one of a million never in a second.
    low = [r for r in runs if r["young"] == 100]
    high = [r for r in runs if r["young"] == 1000000]
    assert all(r["collections"][0] > 10 and r["gc_us"] > 0 for r in low), low
    assert all(r["collections"][0] == 0 for r in high), high
    assert "young 100: median" in stdout


def test_the_response_writes_comparison_runs_both_protocols_in_turn(tmp_path: Path) -> None:
    stdout, runs = side_by_side("bench.response_writes", tmp_path, "--op", "Q1")
    assert [(r["round"], r["variant"]) for r in runs] == [
        (1, "uvicorn"), (1, "one write"), (2, "one write"), (2, "uvicorn")
    ]  # fmt: skip
    assert "Q1, one write over uvicorn's two: req/s median" in stdout
