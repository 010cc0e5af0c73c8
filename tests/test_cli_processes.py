"""Commands as separate processes on one embedded data directory: ``alembic`` from the
repository root, and two ``gql-api`` commands at once (they share the server and never migrate
one database twice)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.server_support import REPO, embedded_env


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.slow
def test_alembic_from_the_repository_root_on_the_embedded_server(tmp_path: Path) -> None:
    env = embedded_env(tmp_path / "pgdata")
    for args in (["upgrade", "head"], ["downgrade", "-1"], ["upgrade", "head"], ["current"]):
        result = _run([sys.executable, "-m", "alembic", *args], env)
        assert result.returncode == 0, result.stderr
    assert "(head)" in result.stdout
    assert not (tmp_path / "pgdata" / "postmaster.pid").exists(), "stopped when alembic exits"


@pytest.mark.slow
def test_two_commands_at_once_on_one_data_directory(tmp_path: Path) -> None:
    env = embedded_env(tmp_path / "pgdata")
    command = [sys.executable, "-m", "gql_api.cli"]
    processes = [
        subprocess.Popen(
            [*command, *args],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for args in (["migrate", "up"], ["seed", "--admin-password", "two at once 123"])
    ]
    outputs = [p.communicate(timeout=120) for p in processes]
    for process, (out, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, out + err
    status = _run([*command, "migrate", "status"], env)
    assert status.returncode == 0 and "(at head)" in status.stdout, status.stderr
    seed = _run([*command, "seed"], env)
    assert seed.stdout.count("exists:") == 1, seed.stdout + seed.stderr  # the admin
    assert not (tmp_path / "pgdata" / "postmaster.pid").exists(), "the last one out stopped it"
