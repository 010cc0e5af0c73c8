"""CORS: Starlette's middleware, with refusals that say what was refused and how to allow it.

A browser shows only "blocked by CORS policy"; the preflight's body is where a developer looking
at the network tab learns which origin was refused and which setting allows it.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import PlainTextResponse, Response

CORS_HEADERS = ("Authorization", "Content-Type", "X-Request-ID", "Apollo-Require-Preflight")


class ExplainedCORSMiddleware(CORSMiddleware):
    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code != 400:
            return response
        refused = bytes(response.body).decode().removeprefix("Disallowed CORS ")
        origin = request_headers["origin"]
        text = (
            f"CORS preflight refused ({refused}) for origin {origin}: allow the origin with "
            "server.cors_origins (USER_SERVICE_SERVER_CORS_ORIGINS, comma-separated)"
        )
        # The CORS headers of the refusal, but the length and type of the new body.
        kept = {
            name: value
            for name, value in response.headers.items()
            if name.lower() not in {"content-length", "content-type"}
        }
        return PlainTextResponse(text, status_code=400, headers=kept)
