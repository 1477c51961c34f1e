"""``python -m bench [SUITE ...] [--json] [--quick]`` — the benchmarks live in ``abasto.benchmarks``."""

import sys

from abasto.benchmarks.runner import main

main(sys.argv[1:])
