"""GraphiQL in a real headless Chromium, driven over the Chrome DevTools protocol, against a real
uvicorn server on a loopback port: the page works with no network beyond this server, runs a
query through its editor, and sends the header editor's token with the schema's introspection.

Every request the page makes is recorded from CDP Network events; a screenshot of each test is
kept under the test's tmp dir (its path is printed). Chromium comes from Debian (.ci/run installs
it); where it is missing the tests skip and say so.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import ClientConnection, connect

from tests.server_support import RunningServer, server_env, uvicorn_server

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="no chromium on PATH (Debian's `apt-get install chromium`; .ci/run installs it)",
    ),
]

TIMEOUT_S = 60  # for any one state the page must reach; generous for a 2-core machine
# Launch flags that keep Chromium off the network apart from the page's own requests.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--window-size=1400,900",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)
# Runs before the page's scripts: collects Content-Security-Policy violations.
RECORD_CSP_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(e.violatedDirective + " " + e.blockedURI);
});
"""
QUERY_EDITOR = "document.querySelector('.graphiql-query-editor .CodeMirror')"
RESPONSE_EDITOR = "document.querySelector('.graphiql-response .CodeMirror')"
HEADER_EDITOR = (
    "document.querySelector('.graphiql-editor-tool .graphiql-editor:not(.hidden) .CodeMirror')"
)
SCHEMA_IN_DOCS = (
    "(() => { const d = document.querySelector('.graphiql-doc-explorer');"
    " return d && d.innerText.includes('Root Types') ? d.innerText : '' })()"
)
SHOW_DOCS = '[aria-label="Show Documentation Explorer"]'
REFETCH_SCHEMA = '[aria-label="Re-fetch GraphQL schema"]'


class Page:
    """One Chromium tab over CDP: commands answered in order, events kept for the assertions."""

    def __init__(self, socket: ClientConnection) -> None:
        self.socket = socket
        self.ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        ident = next(self.ids)
        self.socket.send(json.dumps({"id": ident, "method": method, "params": params}))
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            message = json.loads(self.socket.recv(timeout=max(0.1, deadline - time.monotonic())))
            if message.get("id") == ident:
                if "error" in message:
                    raise AssertionError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result
            self.events.append(message)

    def evaluate(self, expression: str) -> Any:
        answer = self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in answer:
            raise AssertionError(f"{expression}: {answer['exceptionDetails']}")
        return answer["result"].get("value")

    def wait_for(self, expression: str, what: str) -> Any:
        """Polls ``expression`` until it is truthy and returns its value."""
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                text = self.evaluate("document.body ? document.body.innerText : ''")
                raise AssertionError(f"no {what} within {TIMEOUT_S}s; page shows: {text[:500]}")
            time.sleep(0.1)  # polling interval, not a synchronisation

    def open(self, url: str) -> None:
        self.evaluate("window.__leaving = true")  # the new document will not have it
        self.send("Page.navigate", url=url)
        self.wait_for("!window.__leaving && document.readyState === 'complete'", "loaded page")

    def click(self, selector: str) -> None:
        """Clicks the element once it is there (React renders after the load event)."""
        self.wait_for(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " if (e) e.click(); return Boolean(e) })()",
            selector,
        )

    def requests(self) -> list[dict[str, Any]]:
        return [
            event["params"]["request"]
            for event in self.events
            if event.get("method") == "Network.requestWillBeSent"
        ]

    def screenshot(self, path: Path) -> None:
        shot = self.send("Page.captureScreenshot", format="png")
        path.write_bytes(base64.b64decode(shot["data"]))
        print(f"screenshot: {path}")


@contextmanager
def chromium(tmp_path: Path) -> Iterator[Page]:
    """A fresh headless Chromium (empty profile) and its first tab; killed by PID at the end."""
    assert CHROMIUM is not None
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    log = (tmp_path / "chromium.log").open("w")
    process = subprocess.Popen(
        [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: the renderers go with it
    )
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + TIMEOUT_S
        while not (port_file.exists() and port_file.read_text().strip()):
            assert process.poll() is None, (tmp_path / "chromium.log").read_text()
            assert time.monotonic() < deadline, "Chromium opened no DevTools port"
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json()
        tab = next(t for t in targets if t["type"] == "page")
        with connect(tab["webSocketDebuggerUrl"], max_size=None, open_timeout=10) as socket:
            page = Page(socket)
            page.send("Network.enable")
            page.send("Page.enable")
            page.send("Runtime.enable")
            page.send("Page.addScriptToEvaluateOnNewDocument", source=RECORD_CSP_VIOLATIONS)
            yield page
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        log.close()


def assert_stayed_on(page: Page, server: RunningServer) -> None:
    """Nothing but the server's own origin (and inline data: URLs) was asked for, no script
    failed and the CSP blocked nothing."""
    # First, as it also takes in every event Chromium sent until now.
    assert page.evaluate("window.__cspViolations") == []
    urls = [request["url"] for request in page.requests()]
    assert urls, "the page made no request at all"
    elsewhere = [u for u in urls if not (u.startswith(server.url + "/") or u.startswith("data:"))]
    assert elsewhere == [], elsewhere
    exceptions = [
        e["params"]["exceptionDetails"]
        for e in page.events
        if e.get("method") == "Runtime.exceptionThrown"
    ]
    assert exceptions == [], exceptions


def run_in_editor(page: Page, query: str) -> dict[str, Any]:
    """Types ``query`` into GraphiQL's editor, presses its run button and reads the result."""
    page.wait_for(f"{QUERY_EDITOR} !== null", "query editor")
    page.evaluate(f"{QUERY_EDITOR}.CodeMirror.setValue({json.dumps(query)})")
    page.click(".graphiql-execute-button")
    text = page.wait_for(
        f"(() => {{ const r = {RESPONSE_EDITOR}; return r ? r.CodeMirror.getValue() : '' }})()",
        "result",
    )
    result: dict[str, Any] = json.loads(text)
    return result


@pytest.fixture
def development(database_url: str, db: object, tmp_path: Path) -> Iterator[RunningServer]:
    # ``db`` migrates the database the server uses.
    with uvicorn_server(server_env(database_url), tmp_path / "server.log") as running:
        yield running


def test_graphiql_runs_a_query_with_no_request_leaving_the_machine(
    development: RunningServer, tmp_path: Path
) -> None:
    with chromium(tmp_path) as page:
        page.open(f"{development.url}/graphql")
        result = run_in_editor(page, "{ health { status } }")
        assert result == {"data": {"health": {"status": "ok"}}}
        # The header editor starts with the login example; left as it is, it is not sent.
        headers = page.evaluate(f"{HEADER_EDITOR}.CodeMirror.getValue()")
        assert json.loads(headers) == {
            "Authorization": "Bearer <accessToken from the login mutation>"
        }
        page.screenshot(tmp_path / "graphiql.png")
        assert_stayed_on(page, development)
        posts = [r for r in page.requests() if r["method"] == "POST"]
        assert posts and all("Authorization" not in r["headers"] for r in posts)
        # Scripts and styles came from the versioned asset paths.
        assets = [r["url"] for r in page.requests() if "/graphiql/" in r["url"]]
        assert len(assets) == 8, assets


def test_admin_token_in_header_editor_shows_the_schema_in_production(
    database_url: str, db: object, admin_token: str, tmp_path: Path
) -> None:
    env = server_env(
        database_url, USER_SERVICE_ENV="production", USER_SERVICE_SERVER_GRAPHIQL="true"
    )
    with uvicorn_server(env, tmp_path / "server.log") as server, chromium(tmp_path) as page:
        page.open(f"{server.url}/graphql")
        page.click(SHOW_DOCS)
        # Anonymous in production: the schema is refused, so the docs have nothing to show.
        page.wait_for(
            "(() => { const d = document.querySelector('.graphiql-doc-explorer');"
            " return d && d.innerText.includes('Error fetching schema') })()",
            "refused schema",
        )
        assert page.evaluate(SCHEMA_IN_DOCS) == ""
        # What a person does: paste the token into the header editor, re-fetch the schema.
        header = json.dumps({"Authorization": f"Bearer {admin_token}"})
        assert_stayed_on(page, server)
        page.events.clear()
        page.evaluate(f"{HEADER_EDITOR}.CodeMirror.setValue({json.dumps(header)})")
        # GraphiQL takes an edit in after a debounce; once in, it is persisted.
        page.wait_for(
            f"(localStorage.getItem('graphiql:headers') || '').includes({json.dumps(admin_token)})",
            "headers taken in",
        )
        page.click(REFETCH_SCHEMA)
        docs = page.wait_for(SCHEMA_IN_DOCS, "schema in the documentation explorer")
        assert "query: Query" in docs and "mutation: Mutation" in docs, docs
        introspections = [
            r for r in page.requests() if "IntrospectionQuery" in r.get("postData", "")
        ]
        assert introspections, "the page did not ask for the schema again"
        assert all(
            r["headers"].get("Authorization") == f"Bearer {admin_token}" for r in introspections
        )
        # shouldPersistHeaders: a new visit starts with the token, and with the schema.
        page.open(f"{server.url}/graphql")
        page.click(SHOW_DOCS)
        page.wait_for(SCHEMA_IN_DOCS, "schema after a reload")
        page.screenshot(tmp_path / "graphiql-docs.png")
        assert_stayed_on(page, server)
