"""``gql-api export-schema`` and ``documents register`` (trusted documents)."""

from __future__ import annotations

import argparse
from pathlib import Path

from gql_api.cli.common import CommandError, migrate_if_development, run_with_db, settings_for
from gql_api.db import Database


def cmd_export_schema(args: argparse.Namespace) -> int:
    from gql_api.graphql.schema.root import export_sdl

    sdl = export_sdl()
    target = Path(args.output)
    if args.check:
        if not target.is_file() or target.read_text(encoding="utf-8") != sdl:
            raise CommandError(f"{target} is out of date: run `gql-api export-schema`")
        print(f"{target} is up to date")
        return 0
    target.write_text(sdl, encoding="utf-8")
    print(f"schema written to {target}")
    return 0


def cmd_documents(args: argparse.Namespace) -> int:
    """Register every ``*.graphql`` file below a folder as a trusted document."""
    from gql_api.graphql.engine.persisted import sha256_hex
    from gql_api.repositories import persisted_queries

    folder = Path(args.folder)
    files = sorted(folder.rglob("*.graphql")) if folder.is_dir() else []
    if not files:
        raise CommandError(f"no .graphql files found in {folder}")
    documents = [(path, path.read_text(encoding="utf-8")) for path in files]
    settings = settings_for(args)

    async def work(db: Database) -> None:
        await migrate_if_development(settings, db)
        async with db.transaction() as session:
            for _path, query in documents:
                await persisted_queries.save(
                    session, sha256=sha256_hex(query), query=query, trusted=True
                )
        for path, query in documents:
            print(f"{sha256_hex(query)}  {path}")

    run_with_db(settings, work)
    return 0
