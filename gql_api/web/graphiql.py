"""GraphiQL served from this package: no CDN, subresource integrity and a strict CSP.

The page loads React, GraphiQL 3 and its explorer plugin (npm's browser builds, copied into
``graphiql_assets/`` by ``tools/refresh_graphiql.sh``; versions and licences in its VERSIONS and
LICENSES) and its own ``page.js``/``page.css`` from ``/graphiql/<digest>/<name>``: the digest
covers every file, so the assets can be cached for a year and a new release changes the paths.
Each tag carries the sha384 of its file (SRI), computed once per process from the files, and the
page's Content-Security-Policy admits this origin only: nothing the page does leaves the machine.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import html
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI
from starlette.responses import FileResponse, HTMLResponse, Response

ASSETS_DIR = Path(__file__).with_name("graphiql_assets")
ASSETS_PATH = "/graphiql"
# In load order: each script relies on the globals of those before it.
SCRIPTS = (
    "react.production.min.js",
    "react-dom.production.min.js",
    "graphiql.min.js",
    "plugin-explorer.umd.js",
    "page.js",
)
STYLES = ("graphiql.min.css", "plugin-explorer.css", "page.css")
MEDIA_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}

# GraphiQL's stylesheet embeds its fonts and icons as data: URLs. No 'unsafe-inline' and no
# 'unsafe-eval': the bootstrap is a file (page.js), and the bundles need neither.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Cache-Control": "no-cache",  # the page names the assets' digest: always revalidate it
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}
ASSET_HEADERS = {
    "Cache-Control": "public, max-age=31536000, immutable",
    "X-Content-Type-Options": "nosniff",
}


@dataclass(frozen=True)
class Asset:
    path: Path
    integrity: str  # "sha384-<base64>", as in the tag's integrity attribute
    media_type: str


@dataclass(frozen=True)
class Bundle:
    digest: str
    assets: dict[str, Asset]
    page: str


def _render_page(bundle_digest: str, assets: dict[str, Asset]) -> str:
    def attrs(name: str) -> str:
        url = f"{ASSETS_PATH}/{bundle_digest}/{name}"
        return f'"{html.escape(url)}" integrity="{assets[name].integrity}"'

    styles = "\n".join(f'    <link rel="stylesheet" href={attrs(name)}>' for name in STYLES)
    scripts = "\n".join(f"    <script src={attrs(name)}></script>" for name in SCRIPTS)
    # rel=icon with an empty data: URL: the browser asks for no /favicon.ico.
    return f"""<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <title>gql_api GraphiQL</title>
    <link rel="icon" href="data:,">
{styles}
  </head>
  <body>
    <div id="graphiql">Loading...</div>
{scripts}
  </body>
</html>
"""


@functools.cache
def bundle() -> Bundle:
    """The assets and the page, read and hashed once per process (about 4 MB, 26 ms)."""
    assets: dict[str, Asset] = {}
    whole = hashlib.sha256()
    for name in (*STYLES, *SCRIPTS):
        path = ASSETS_DIR / name
        content = path.read_bytes()
        whole.update(name.encode() + b"\0" + content)
        sha384 = base64.b64encode(hashlib.sha384(content).digest()).decode()
        assets[name] = Asset(path, f"sha384-{sha384}", MEDIA_TYPES[path.suffix])
    digest = whole.hexdigest()[:16]
    return Bundle(digest=digest, assets=assets, page=_render_page(digest, assets))


def page_response() -> HTMLResponse:
    return HTMLResponse(bundle().page, headers=PAGE_HEADERS)


async def asset_response(digest: str, name: str) -> Response:
    current = bundle()
    asset = current.assets.get(name)
    if asset is None or digest != current.digest:
        # Another release's path: a 404 rather than content that would fail its integrity check.
        return Response("Not Found", status_code=404, media_type="text/plain")
    return FileResponse(asset.path, media_type=asset.media_type, headers=ASSET_HEADERS)


def mount_assets(app: FastAPI) -> None:
    bundle()  # read and hashed now: a missing file stops start-up rather than a visit
    app.add_api_route(
        f"{ASSETS_PATH}/{{digest}}/{{name}}",
        asset_response,
        methods=["GET", "HEAD"],
        include_in_schema=False,
    )


__all__ = ["CONTENT_SECURITY_POLICY", "bundle", "mount_assets", "page_response"]
