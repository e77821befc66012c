"""Every flow run's logs in a file under the data folder, beside the Prefect API.

The deployments do not stream a run's output through its worker (``stream_output: false``), so a
run never writes into the pipes of a worker that died; its story stays on disk when the API is
away, in ``$SEARCHFLOW_HOME/logs/flow-runs/<flow run id>.log``.

Prefect configures logging in every process it starts from one YAML file, and a flow run's process
configures it more than once (a handler added by hand is dropped). So the worker started here points
``PREFECT_LOGGING_SETTINGS_PATH`` at a copy of Prefect's own default configuration with one more
handler, :class:`RunFileHandler`, on the root logger (which the flow and task run loggers reach)
and on ``prefect.extra`` (which does not pass records on). The copy is written from the installed
Prefect each time a worker starts, so it follows Prefect's defaults.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import yaml

HANDLER = "searchflow_run_file"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def run_log_path(environ: dict[str, str] | None = None) -> Path | None:
    """``$SEARCHFLOW_HOME/logs/flow-runs/<flow run id>.log``; None outside a flow run."""
    env = os.environ if environ is None else environ
    run_id = env.get("PREFECT__FLOW_RUN_ID")
    if not run_id:
        return None
    from searchflow.config import get_settings

    return get_settings().home_path / "logs" / "flow-runs" / f"{run_id}.log"


class RunFileHandler(logging.Handler):
    """Appends records to :func:`run_log_path`; does nothing in a process that runs no flow (the
    worker, the CLI). The file is opened at the first record.

    The run is read from the environment at each record, not once: a process forked from one
    that had already configured logging (the worker's fork server) inherits this handler and
    becomes a flow run afterwards, with the run's environment."""

    def __init__(self, level: int = logging.INFO) -> None:
        super().__init__(level)
        self._stream: Any = None
        self._run_id: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        run_id = os.environ.get("PREFECT__FLOW_RUN_ID")
        if not run_id:
            return
        try:
            if self._stream is None or run_id != self._run_id:
                if self._stream is not None:
                    self._stream.close()
                path = run_log_path()
                path.parent.mkdir(parents=True, exist_ok=True)
                self._stream, self._run_id = path.open("a", encoding="utf-8"), run_id
            self._stream.write(self.format(record) + "\n")
            self._stream.flush()
        except Exception:
            self.handleError(record)

    def close(self) -> None:
        try:
            if self._stream is not None:
                self._stream.close()
                self._stream = None
        finally:
            super().close()


def logging_config() -> dict[str, Any]:
    """Prefect's default logging configuration plus :class:`RunFileHandler` (placeholders such as
    ``${PREFECT_LOGGING_LEVEL}`` kept for Prefect to fill in)."""
    from prefect.logging.configuration import DEFAULT_LOGGING_SETTINGS_PATH

    config = yaml.safe_load(Path(DEFAULT_LOGGING_SETTINGS_PATH).read_text())
    config.setdefault("formatters", {})[HANDLER] = {"format": LOG_FORMAT}
    config.setdefault("handlers", {})[HANDLER] = {
        "()": f"{__name__}.RunFileHandler",
        "level": "INFO",
        "formatter": HANDLER,
    }
    for logger in (
        config.setdefault("root", {}),
        config["loggers"].setdefault("prefect.extra", {}),
    ):
        logger["handlers"] = [*logger.get("handlers", []), HANDLER]
    return config


def write_logging_config(folder: Path) -> Path:
    """Write :func:`logging_config` to ``folder/logging.yml``; returns its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "logging.yml"
    path.write_text(yaml.safe_dump(logging_config(), sort_keys=False))
    return path
