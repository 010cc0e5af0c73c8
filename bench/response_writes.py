"""``python -m bench.response_writes``: the server with uvicorn's own httptools protocol against
the same server sending each response in one write (``gql_api.web.http_protocol``, what
``gql-api serve`` runs), side by side under the benchmark's load.

Both run ``uvicorn gql_api.web.app:app_factory`` on the benchmark's database (seeded as
``bench.run`` seeds it) with the benchmark's settings; only ``--http`` differs. The operation
is driven on one server after the other, the order alternating by round; per run it prints the
requests/s and the worker's CPU per request, then the medians of the per-round ratios.

    python -m bench.response_writes [--op Q2] [--rounds 10] [--seconds 4] [--connections 32]
        [--users 10000] [--tool auto|wrk|python] [--json PATH] [--data-dir DIR]
        [--database-url URL] [--bcrypt-rounds 12]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench import procs
from bench.side_by_side import Variant, add_arguments, compare
from gql_api.web.http_protocol import PROTOCOL

VARIANTS = {"uvicorn": "httptools", "one write": PROTOCOL}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.response_writes", description=__doc__)
    add_arguments(parser, rounds=10, seconds=4)
    return parser.parse_args(argv)


def command(http: str) -> Callable[[int], list[str]]:
    """The server's command at a port, with uvicorn's ``--http`` set to ``http``."""

    def at(port: int) -> list[str]:
        return [
            sys.executable, "-m", "uvicorn", "gql_api.web.app:app_factory", "--factory",
            "--host", procs.HOST, "--port", str(port), "--workers", "1", "--http", http,
            "--log-level", "warning", "--no-access-log",
        ]  # fmt: skip

    return at


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    options = parse_args(argv)

    def variants(_: Path) -> Sequence[Variant]:
        return [
            Variant(command=command(http), labels={"variant": name})
            for name, http in VARIANTS.items()
        ]

    runs = compare(options, variants, _line)
    print(summary(runs, options.op))
    return runs


def _line(figures: dict[str, Any]) -> str:
    return (
        f"round {figures['round']} {figures['variant']}: {figures['rps']:.0f} req/s, "
        f"{figures['cpu_ms']:.3f} ms CPU/request"
    )


def summary(runs: list[dict[str, Any]], op: str) -> str:
    """The medians of the per-round ratios, one write over uvicorn's."""
    old, new = VARIANTS
    by_round: dict[int, dict[str, dict[str, Any]]] = {}
    for figures in runs:
        by_round.setdefault(figures["round"], {})[figures["variant"]] = figures
    rps = [r[new]["rps"] / r[old]["rps"] for r in by_round.values()]
    cpu = [r[new]["cpu_ms"] / r[old]["cpu_ms"] for r in by_round.values()]
    return (
        f"{op}, one write over uvicorn's two: req/s median {statistics.median(rps):.3f}x "
        f"(rounds {sorted(round(x, 3) for x in rps)}); CPU per request median "
        f"{statistics.median(cpu):.3f}x (rounds {sorted(round(x, 3) for x in cpu)})"
    )


if __name__ == "__main__":
    main()
