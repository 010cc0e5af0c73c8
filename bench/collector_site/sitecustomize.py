"""Loaded by the servers ``bench.collector`` starts (it puts this directory on PYTHONPATH):
sets the young generation's threshold the server tunes at start-up to ``GQL_BENCH_GC_YOUNG``
and writes, every quarter of a second, how many collections of each generation ran and how
long they took to ``GQL_BENCH_GC_STATS`` (JSON). Not part of the service."""

from __future__ import annotations

import gc
import json
import os
import threading
import time

_STATS = os.environ.get("GQL_BENCH_GC_STATS")
_YOUNG = os.environ.get("GQL_BENCH_GC_YOUNG")

if _STATS and _YOUNG:
    import gql_api.web.lifespan as lifespan

    lifespan.YOUNG_GENERATION = int(_YOUNG)
    counts = [0, 0, 0]
    seconds = [0.0, 0.0, 0.0]
    started = [0.0]

    def _timed(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            generation = info["generation"]
            counts[generation] += 1
            seconds[generation] += time.perf_counter() - started[0]

    def _write(path: str) -> None:
        while True:
            time.sleep(0.25)
            text = json.dumps({"collections": counts, "seconds": seconds})
            with open(path + ".tmp", "w", encoding="utf-8") as out:
                out.write(text)
            os.replace(path + ".tmp", path)

    gc.callbacks.append(_timed)
    threading.Thread(target=_write, args=(_STATS,), name="gc-stats", daemon=True).start()
