"""GraphiQL's page and assets over HTTP: served by the app itself, each asset with its integrity
hash and a year's cache on a versioned path, the page under a CSP that admits no other origin.
(The page working in a browser: tests/test_graphiql_browser.py.)"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import re
import tomllib
from html.parser import HTMLParser
from pathlib import Path

import httpx

from gql_api.db import Database
from tests.hardening_support import app_client

REPO = Path(__file__).resolve().parent.parent
ASSETS_DIR = REPO / "gql_api" / "web" / "graphiql_assets"
PAGE_HEADERS = {"Accept": "text/html"}


class Tags(HTMLParser):
    """The page's <script src> and <link href> tags, with their attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[dict[str, str | None]] = []
        self.links: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script":
            self.scripts.append(dict(attrs))
        elif tag == "link":
            self.links.append(dict(attrs))


def parse(page: str) -> Tags:
    tags = Tags()
    tags.feed(page)
    return tags


def sri(content: bytes) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(content).digest()).decode()


def directives(csp: str) -> dict[str, list[str]]:
    parts = (d.split() for d in csp.split(";") if d.strip())
    return {p[0]: p[1:] for p in parts}


async def test_page_admits_only_its_own_origin(client: httpx.AsyncClient) -> None:
    page = await client.get("/graphql", headers=PAGE_HEADERS)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    policy = directives(page.headers["content-security-policy"])
    assert policy["default-src"] == ["'none'"]
    assert policy["script-src"] == ["'self'"]  # no inline script, no eval, no CDN
    assert policy["style-src"] == ["'self'"]
    assert policy["connect-src"] == ["'self'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert page.headers["x-content-type-options"] == "nosniff"
    # Nothing in the page names another origin, and every script is a file (no inline code).
    assert re.search(r"https?://|//[a-z]", page.text) is None, page.text
    tags = parse(page.text)
    assert tags.scripts and all(script.get("src") for script in tags.scripts)
    assert "<script>" not in page.text and "<style" not in page.text


async def test_every_asset_matches_its_integrity_and_is_cached_for_a_year(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/graphql", headers=PAGE_HEADERS)
    tags = parse(page.text)
    stylesheets = [link for link in tags.links if link.get("rel") == "stylesheet"]
    urls = [(s["src"], s["integrity"], "javascript") for s in tags.scripts]
    urls += [(s["href"], s["integrity"], "css") for s in stylesheets]
    assert len(urls) == 8  # React, ReactDOM, GraphiQL, the explorer, page.js; three styles
    for url, integrity, kind in urls:
        assert url is not None and url.startswith("/graphiql/"), url
        asset = await client.get(url)
        assert asset.status_code == 200, url
        assert integrity == sri(asset.content), url
        assert kind in asset.headers["content-type"], url
        cache = asset.headers["cache-control"]
        assert "immutable" in cache and "max-age=31536000" in cache, cache
        assert asset.headers["x-content-type-options"] == "nosniff"


async def test_served_files_are_the_recorded_npm_builds(client: httpx.AsyncClient) -> None:
    """VERSIONS (written by tools/refresh_graphiql.sh) names each vendored file's sha384: what
    the service serves is what was fetched from npm, not an edited copy."""
    rows = [line.split("\t") for line in (ASSETS_DIR / "VERSIONS").read_text().splitlines()]
    recorded = {row[0]: row[1] for row in rows if len(row) == 2 and row[1].startswith("sha384-")}
    assert set(recorded) == {
        "react.production.min.js",
        "react-dom.production.min.js",
        "graphiql.min.js",
        "graphiql.min.css",
        "plugin-explorer.umd.js",
        "plugin-explorer.css",
    }
    tags = parse((await client.get("/graphql", headers=PAGE_HEADERS)).text)
    served = {s["src"] for s in tags.scripts} | {link["href"] for link in tags.links}
    for name, integrity in recorded.items():
        url = next(u for u in served if u and u.endswith("/" + name))
        assert sri((await client.get(url)).content) == integrity, name
    versions = (ASSETS_DIR / "VERSIONS").read_text()
    assert "graphiql\t3." in versions and "MIT" in versions


async def test_other_asset_paths_are_not_found(client: httpx.AsyncClient) -> None:
    tags = parse((await client.get("/graphql", headers=PAGE_HEADERS)).text)
    url = tags.scripts[0]["src"]
    assert url is not None
    _, _, digest, name = url.split("/")
    for other in (
        f"/graphiql/0000000000000000/{name}",  # another release's path
        f"/graphiql/{digest}/VERSIONS",  # in the directory, but not an asset
        f"/graphiql/{digest}/..%2F..%2Fconfig.py",
        f"/graphiql/{digest}/missing.js",
    ):
        assert (await client.get(other)).status_code == 404, other


async def test_no_assets_where_graphiql_is_off(db: Database) -> None:
    async with app_client(db) as http:
        url = parse((await http.get("/graphql", headers=PAGE_HEADERS)).text).scripts[0]["src"]
        assert url is not None and url.startswith("/graphiql/")
        assert (await http.get(url)).status_code == 200
    async with app_client(db, env="production") as http:
        assert (await http.get("/graphql", headers=PAGE_HEADERS)).status_code == 404
        assert (await http.get(url)).status_code == 404


def test_package_data_ships_every_asset() -> None:
    """A non-editable install (`pip install .`) carries the files the page loads."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["gql_api"]
    files = [p.relative_to(REPO / "gql_api").as_posix() for p in ASSETS_DIR.iterdir()]
    assert len(files) >= 10
    unshipped = [f for f in files if not any(fnmatch.fnmatch(f, pat) for pat in patterns)]
    assert unshipped == []
