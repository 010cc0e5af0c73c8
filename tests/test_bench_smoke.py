"""The benchmark runs end to end on a tiny dataset, and the reference answers exactly as the server.

No timing is asserted: only that every step ran, that the two apps' JSON for Q1-Q3 is identical
and that the reference issues the server's SQL statements. Results go to a temporary directory,
never over bench/RESULTS.md.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.procs import REPO, clean_env

pytestmark = pytest.mark.slow


def test_benchmark_runs_end_to_end_on_a_tiny_dataset(tmp_path: Path) -> None:
    committed = REPO / "bench" / "RESULTS.md"
    before = committed.read_bytes() if committed.exists() else None
    results, figures = tmp_path / "RESULTS.md", tmp_path / "results.json"
    command = [
        sys.executable, "-m", "bench.run",
        "--users", "50", "--duration", "1", "--warmup", "0.3", "--rounds", "1",
        "--connections", "4", "--tool", "python", "--bcrypt-rounds", "4",
        "--statement-requests", "3", "--startup-runs", "1",
        "--data-dir", str(tmp_path / "pgdata"), "--logs-dir", str(tmp_path / "logs"),
        "--results", str(results), "--json", str(figures),
    ]  # fmt: skip
    done = subprocess.run(
        command, cwd=REPO, env=clean_env(), capture_output=True, text=True, timeout=170
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    data = json.loads(figures.read_text(encoding="utf-8"))
    assert data["users"] >= 50
    assert data["json_check"] == {"Q1": "identical", "Q2": "identical", "Q3": "identical"}
    assert data["sql_parity"] == {
        case: "same statements" for case in ("Q1", "Q2", "Q2 first: 1", "Q2 first: 100")
    }
    phases = {(p["app"], p["round"]): p for p in data["phases"]}
    assert set(phases) == {("server", 1), ("reference", 1)}
    assert set(phases["server", 1]["loads"]) == {"Q1", "Q2", "Q3", "Q4"}
    assert set(phases["reference", 1]["loads"]) == {"Q1", "Q2", "Q3"}
    for phase in phases.values():
        for name, run in phase["loads"].items():
            assert run["requests"] > 0 and run["failed"] == 0, (phase["app"], name, run)
        assert phase["memory_end"]["hwm_mb"] > 0
    assert phases["server", 1]["storm"]["logins"] > 0
    server_statements = data["statements"]["server"]
    assert server_statements["Q2 first: 1"] > 0 and server_statements["Q2 first: 100"] > 0
    assert len(data["startup_seconds"]) == 1

    text = results.read_text(encoding="utf-8")
    for heading in ("## Machine", "## Commands", "## Figures", "Targets"):
        assert heading in text
    after = committed.read_bytes() if committed.exists() else None
    assert after == before, "the smoke test must not overwrite bench/RESULTS.md"
