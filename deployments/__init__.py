"""Preparing a Prefect server for SearchFlow, and running the served chain.

- :mod:`deployments.server`: find the configured Prefect API or start a local server, wait until healthy.
- :mod:`deployments.prepare`: the work pool, the warehouse concurrency limit and every deployment of
  ``prefect.yaml``, idempotently (``searchflow deploy``).
- :mod:`deployments.worker`: a process worker tuned for quick pick-up.
- :mod:`deployments.follow`: follow one chain's flow runs through the API and tabulate them.
- :mod:`deployments.steps`: the pull step every deployment runs before loading its flow.

Prefect is imported inside functions: ``searchflow --help`` must stay fast.
"""

from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
PREFECT_YAML = PROJECT_DIR / "prefect.yaml"
DEFAULT_POOL = "searchflow-local"
