"""syncbind's benchmarks: the same model served by each contender, measured side by side.

``python -m bench.run`` (``make bench``) runs every scenario and writes
``bench/results/latest.json``, ``BENCHMARKS.md`` and the charts.
"""
