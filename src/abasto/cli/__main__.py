"""``python -m abasto.cli``."""

from abasto.cli import main

main()
