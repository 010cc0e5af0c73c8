"""Duplicated ``Content-Type`` / ``Accept`` headers get one answer, whichever executor would
have run the document: the one GraphQL entry (gql_api.web.graphql_http) decides them the same
way for planned and generic documents."""

from __future__ import annotations

import httpx
import pytest

from gql_api.db import Database
from tests.conftest import insert_user, make_settings, session_token
from tests.hardening_support import app_client

PLANNED = "{ me { id email } }"  # the planned executor has a plan for this one
NOT_PLANNED = "{ me { ...F } } fragment F on User { id email }"  # fragments go to the full app

DUPLICATES = {
    "content-type twice": [
        ("content-type", "application/json"),
        ("content-type", "application/json"),
    ],
    "content-type twice, different": [
        ("content-type", "text/plain"),
        ("content-type", "application/json"),
    ],
    "content-type twice, json first": [
        ("content-type", "application/json"),
        ("content-type", "text/plain"),
    ],
    "accept twice": [
        ("content-type", "application/json"),
        ("accept", "application/json"),
        ("accept", "application/json"),
    ],
    "accept twice, different": [
        ("content-type", "application/json"),
        ("accept", "text/html"),
        ("accept", "application/json"),
    ],
}


def _shape(response: httpx.Response) -> tuple[int, str, object]:
    """What a client sees: status, media type and, for JSON, whether data or errors came."""
    media_type = response.headers.get("content-type", "")
    if "json" in media_type:
        body = response.json()
        outline: object = sorted(body) if isinstance(body, dict) else type(body).__name__
    else:
        outline = "not json"
    return response.status_code, media_type, outline


@pytest.mark.parametrize("headers", list(DUPLICATES.values()), ids=list(DUPLICATES))
async def test_duplicated_media_type_headers_get_the_same_answer_in_both_lanes(
    db: Database, headers: list[tuple[str, str]]
) -> None:
    user = await insert_user(db, email="dup@example.com")
    token = await session_token(db, make_settings(db.url), user)
    answers = {}
    async with app_client(db) as http:
        for name, query in (("planned", PLANNED), ("not planned", NOT_PLANNED)):
            response = await http.post(
                "/graphql",
                content=httpx.Request("POST", "/", json={"query": query}).read(),
                headers=[*headers, ("authorization", f"Bearer {token}")],
            )
            answers[name] = _shape(response)
    assert answers["planned"] == answers["not planned"], answers
