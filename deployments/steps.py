"""The pull step of every SearchFlow deployment (see ``pull:`` in ``prefect.yaml``).

A process worker starts each flow run in a fresh process; before loading ``flows/<stage>.py`` it must
stand in the project folder. Prefect's own ``set_working_directory`` needs an absolute path written
into the deployment, which would tie ``prefect.yaml`` to one machine. This step finds the folder where
the flow runs instead: ``SEARCHFLOW_PROJECT_DIR`` when set (the Docker image sets it), else the folder
this package was installed from (an editable install, the local case), else the working directory.
"""

from __future__ import annotations

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
