"""The HTTP API (``searchflow serve``): health, stats, the ledger, users, dead letters, runs and
Prometheus metrics over the published data. See docs/api.md.

It sits on the top floor beside the command line and the dashboards: it reads the core's published
snapshot, the ledger export, Postgres and Redis, and starts served runs through Prefect.
"""

from searchflow.api.main import create_app

__all__ = ["create_app"]
