"""``python -m searchflow.cli``: the same entry point as the ``searchflow`` console script."""

from searchflow.cli import main

main()
