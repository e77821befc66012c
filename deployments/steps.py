"""The pull steps of every SearchFlow deployment (see ``pull:`` in ``prefect.yaml``).

A process worker starts each flow run in a fresh process; before loading ``flows/<stage>.py`` it must
stand in the project folder. Prefect's own ``set_working_directory`` needs an absolute path written
into the deployment, which would tie ``prefect.yaml`` to one machine. This step finds the folder where
the flow runs instead: ``SEARCHFLOW_PROJECT_DIR`` when set (the Docker image sets it), else the folder
this package was installed from (an editable install, the local case), else the working directory.

A second step writes the flow run's logs to a file under the data folder, beside the Prefect API:
the deployments do not stream a run's output through its worker (``stream_output: false``), so a
run never writes into the pipes of a worker that died, and its story stays on disk when the API is
away.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from deployments import PROJECT_DIR


def project_directory(environ: dict[str, str] | None = None) -> Path:
    """The folder holding ``prefect.yaml`` and ``flows/`` for this flow run."""
    env = os.environ if environ is None else environ
    candidates = [Path(env["SEARCHFLOW_PROJECT_DIR"])] if env.get("SEARCHFLOW_PROJECT_DIR") else []
    candidates += [PROJECT_DIR, Path.cwd()]
    for candidate in candidates:
        if (candidate / "prefect.yaml").is_file() and (candidate / "flows").is_dir():
            return candidate.resolve()
    raise FileNotFoundError(
        "cannot find the SearchFlow project (a folder with prefect.yaml and flows/); "
        "set SEARCHFLOW_PROJECT_DIR to it in the worker's environment"
    )


def set_project_directory() -> dict[str, str]:
    """Pull step: change into the project folder; returns ``{"directory": ...}`` like Prefect's."""
    directory = project_directory()
    os.chdir(directory)
    return {"directory": str(directory)}


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Loggers that do not pass their records on to the root logger.
NON_PROPAGATING = ("prefect.extra",)


def run_log_path(environ: dict[str, str] | None = None) -> Path:
    """``$SEARCHFLOW_HOME/logs/flow-runs/<flow run id>.log`` (the process id outside a flow run)."""
    from searchflow.config import get_settings

    env = os.environ if environ is None else environ
    run = env.get("PREFECT__FLOW_RUN_ID") or f"pid-{os.getpid()}"
    return get_settings().home_path / "logs" / "flow-runs" / f"{run}.log"


def log_to_file() -> dict[str, str]:
    """Pull step: the flow run's logs (flow, tasks, prints, dbt) also go to :func:`run_log_path`."""
    path = run_log_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    for name in ("", *NON_PROPAGATING):
        logging.getLogger(name).addHandler(handler)
    return {"log_file": str(path)}
