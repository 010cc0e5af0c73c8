"""schema.graphql is the exported SDL of the code: regenerate with `gql-api export-schema`."""

from __future__ import annotations

from pathlib import Path

from gql_api.graphql.schema.root import export_sdl

SCHEMA_FILE = Path(__file__).resolve().parent.parent / "schema.graphql"


def test_schema_file_matches_the_code() -> None:
    assert SCHEMA_FILE.is_file(), "schema.graphql is missing: run `gql-api export-schema`"
    assert SCHEMA_FILE.read_text(encoding="utf-8") == export_sdl(), (
        "schema.graphql is out of date: run `gql-api export-schema`"
    )
