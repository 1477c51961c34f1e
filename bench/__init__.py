"""Entry point for ``make bench``; the suites are in ``src/abasto/benchmarks``."""
