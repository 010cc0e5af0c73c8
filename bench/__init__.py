"""The side-by-side benchmark: gql_api against a raw Starlette + asyncpg reference.

``python -m bench.run`` seeds a dataset once, starts each app in turn and drives both with the
same load; see ``bench/README.md``.
"""
