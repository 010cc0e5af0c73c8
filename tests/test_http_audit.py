"""graphql-http's auditServer (the GraphQL-over-HTTP specification's own audit) against a live
server: no error and no warning allowed."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.server_support import REPO, server_env, uvicorn_server

AUDIT_DIR = REPO / ".ci" / "audit"


def _install_audit() -> bool:
    """graphql-http from npm, installed on first use (pinned in .ci/audit/package.json), so
    the README's test command runs the audit wherever npm is."""
    if (AUDIT_DIR / "node_modules" / "graphql-http").is_dir():
        return True
    npm = shutil.which("npm")
    if npm is not None:
        subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--silent"],
            cwd=AUDIT_DIR,
            capture_output=True,
            timeout=300,
            check=False,
        )
    return (AUDIT_DIR / "node_modules" / "graphql-http").is_dir()


@pytest.mark.slow
def test_graphql_over_http_audit(database_url: str, db: object, tmp_path: Path) -> None:
    node = shutil.which("node")
    installed = _install_audit()
    if node is None or not installed:
        reason = (
            "node is not installed"
            if node is None
            else ("graphql-http is not installed: npm install --prefix .ci/audit")
        )
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the GraphQL-over-HTTP audit: {reason}")
        pytest.skip(reason)
    with uvicorn_server(server_env(database_url), tmp_path / "server.log") as server:
        result = subprocess.run(
            [node, str(AUDIT_DIR / "audit.mjs"), f"{server.url}/graphql"],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=AUDIT_DIR,
            check=False,
        )
    assert result.returncode == 0, result.stdout + result.stderr
    assert ", 0 not ok" in result.stdout, result.stdout
