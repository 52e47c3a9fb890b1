"""Concurrent clients for the throughput benchmarks (bench_answer, bench_batching,
bench_backends): one thread a client, all released at once by a barrier, so the wall time
measured is the clients' work together, not their start-up; and the nearest-rank
percentile their figures are read with."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


def run_together(clients: int, work: Callable[[int], None]) -> float:
    """``work(n)`` for each client ``n`` in its own thread, all released together; the wall
    seconds from the release until the last has returned."""
    gate = threading.Barrier(clients + 1)

    def client(n: int) -> None:
        gate.wait()
        work(n)

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(clients)]
    for thread in threads:
        thread.start()
    gate.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


def pct(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile at index ``int(q * n)``, to 0.1; None for no values."""
    if not values:
        return None
    values = sorted(values)
    return round(values[min(len(values) - 1, int(q * len(values)))], 1)


def spread(values: list[float]) -> dict[str, float | None]:
    """p50 and p95 of ``values`` (``pct``)."""
    return {"p50": pct(values, 0.5), "p95": pct(values, 0.95)}
