"""The API's side of Prefect: is a Prefect API configured, does it answer, and start the served
chain there. Prefect is imported only when one is configured (it takes seconds to import), and
the run is created without waiting for it (``timeout=0``): the caller polls the run itself.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from typing import Any

from searchflow.contract import FLOWS

# The head of the served chain: a generated batch triggers ingestion, and so on down.
HEAD = FLOWS[0]
DEPLOYMENT = f"{HEAD.deployment}/{HEAD.deployment}"  # flow and deployment share the name


def configured_api_url() -> str | None:
    """``PREFECT_API_URL`` from the environment, else from the active Prefect profile."""
    if os.environ.get("PREFECT_API_URL", "").strip():
        return os.environ["PREFECT_API_URL"].strip()
    from prefect.settings import get_current_settings

    value = get_current_settings().api.url
    return str(value) if value else None


def ui_url(api_url: str, flow_run_id: str) -> str:
    """The flow run's page: ``PREFECT_UI_URL`` when set, else the API's host without ``/api``."""
    base = os.environ.get("PREFECT_UI_URL", "").strip() or api_url.rstrip("/").removesuffix("/api")
    return f"{base.rstrip('/')}/runs/flow-run/{flow_run_id}"


def check_api(api_url: str, timeout: float = 2.0) -> str:
    """GET ``<api>/health``; raises with one line unless it answers 200."""
    try:
        with urllib.request.urlopen(f"{api_url.rstrip('/')}/health", timeout=timeout) as resp:
            if resp.status != 200:
                raise RuntimeError(f"{api_url}/health answered {resp.status}")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise RuntimeError(f"{api_url} does not answer ({exc})") from None
    return api_url


class NoDeployment(LookupError):
    """The head deployment is not on the server (``searchflow deploy`` has not run there)."""


def start_chain(api_url: str, parameters: dict[str, Any], idempotency_key: str) -> str:
    """Create a run of the head deployment on ``api_url``; returns its id at once.

    The same ``idempotency_key`` returns the run created the first time, so a client that retries
    a timed-out request starts one run, not two."""
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: api_url}):
        try:
            run = run_deployment(
                DEPLOYMENT,
                parameters=parameters,
                timeout=0,
                idempotency_key=idempotency_key,
                tags=["searchflow-api"],
            )
        except ObjectNotFound:
            raise NoDeployment(DEPLOYMENT) from None
    return str(run.id)
