"""``python -m bench.collector``: what the cyclic garbage collector costs the server under load,
at two thresholds of its young generation side by side.

Starts one server per threshold on the benchmark's database (seeded as ``bench.run`` seeds
it), each with ``bench/collector_site`` on its PYTHONPATH: that sets the threshold the server
tunes at start-up (``gql_api.web.lifespan.YOUNG_GENERATION``) and times every collection
(``gc.callbacks``). Then drives the operation on one server after the other, the order
alternating by round, and prints per run the requests/s, the worker's CPU per request, and
the collections of each generation with their time per request.

    python -m bench.collector [--op Q2] [--young 2000,20000] [--rounds 3] [--seconds 5]
        [--connections 32] [--users 10000] [--tool auto|wrk|python] [--json PATH]
        [--data-dir DIR] [--database-url URL] [--bcrypt-rounds 12]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import procs
from bench.side_by_side import Variant, add_arguments, compare

SITE = Path(__file__).resolve().parent / "collector_site"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.collector", description=__doc__)
    parser.add_argument("--young", default="2000,20000", help="thresholds, comma-separated")
    add_arguments(parser, rounds=3, seconds=5)
    return parser.parse_args(argv)


def _stats(path: Path) -> dict[str, list[float]]:
    time.sleep(0.6)  # the server writes its figures every quarter of a second
    figures: dict[str, list[float]] = json.loads(path.read_text(encoding="utf-8"))
    return figures


def _variant(threshold: int, folder: Path) -> Variant:
    stats = folder / f"gc-{threshold}.json"

    def measured(before: Any, after: Any, requests: int) -> dict[str, Any]:
        return {
            "collections": [
                int(a - b) for a, b in zip(after["collections"], before["collections"], strict=True)
            ],
            "gc_us": 1e6 * (sum(after["seconds"]) - sum(before["seconds"])) / requests,
        }

    return Variant(
        command=procs.server_command,
        labels={"young": threshold},
        env={
            "PYTHONPATH": str(SITE),
            "GQL_BENCH_GC_YOUNG": str(threshold),
            "GQL_BENCH_GC_STATS": str(stats),
        },
        snapshot=lambda: _stats(stats),
        measured=measured,
    )


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    options = parse_args(argv)
    young = [int(value) for value in options.young.split(",")]

    def variants(folder: Path) -> Sequence[Variant]:
        return [_variant(threshold, folder) for threshold in young]

    runs = compare(options, variants, _line)
    print()
    for threshold in young:
        mine = [r for r in runs if r["young"] == threshold]
        print(
            f"young {threshold}: median {statistics.median(r['gc_us'] for r in mine):.1f} µs of"
            f" collection per request, {statistics.median(r['cpu_ms'] for r in mine):.3f} ms CPU"
            f" per request, {statistics.median(r['rps'] for r in mine):.0f} req/s"
        )
    return runs


def _line(figures: dict[str, Any]) -> str:
    generations = ", ".join(f"gen{i} {n}" for i, n in enumerate(figures["collections"]))
    return (
        f"round {figures['round']} young {figures['young']}: {figures['rps']:.0f} req/s,"
        f" {figures['cpu_ms']:.3f} ms CPU/request; collections {generations};"
        f" {figures['gc_us']:.1f} µs of collection per request"
    )


if __name__ == "__main__":
    main()
