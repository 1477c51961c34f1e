"""``python -m bench [SUITE ...] [--json] [--quick]`` — the benchmarks live in ``abasto.benchmarks``."""

import sys

from abasto.benchmarks.runner import main

# guarded: benchmarks start helper processes with the "spawn" method, which imports this module
# again in each child (as ``__mp_main__``); the children must not run the suites themselves
if __name__ == "__main__":
    main(sys.argv[1:])
