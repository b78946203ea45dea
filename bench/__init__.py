"""Throughput and latency benchmark of the service (issue 2): ``python -m bench.run_bench``.

See ``docs/performance.md`` for the method, the scenarios and the figures.
"""
