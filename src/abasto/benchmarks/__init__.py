"""Benchmarks: each figure reported beside its limit measured in the same run, as a ratio.

Suites are modules of this package exposing ``run(quick: bool) -> list[Figure]``; ``python -m bench``
(``make bench``) and ``abasto bench SUITE --json`` run them.
"""
