"""Benchmarks: each bench_*.py exposes ``run(quick: bool) -> dict``; `make bench` runs them."""
