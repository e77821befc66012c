"""A flow run's logs land in a file under the data folder through Prefect's own logging
configuration (a copy of its default plus one handler), also after Prefect configures logging
again; a process that runs no flow writes no file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from deployments.logs import HANDLER, logging_config, write_logging_config

SCRIPT = (
    "import logging\n"
    "from prefect.logging.configuration import setup_logging\n"
    "setup_logging()\n"
    "logging.getLogger('prefect.flow_runs').info('first line')\n"
    "setup_logging(incremental=False)\n"
    "logging.getLogger('prefect.flow_runs').info('after reconfiguring')\n"
    "logging.getLogger('prefect.extra').warning('from an extra logger')\n"
)


def _run(tmp_path: Path, **env: str) -> None:
    config = write_logging_config(tmp_path / "prefect")
    environ = dict(
        os.environ,
        PREFECT_LOGGING_SETTINGS_PATH=str(config),
        PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW="ignore",
        SEARCHFLOW_HOME=str(tmp_path / "home"),
        **env,
    )
    if "PREFECT__FLOW_RUN_ID" not in env:
        environ.pop("PREFECT__FLOW_RUN_ID", None)
    subprocess.run([sys.executable, "-c", SCRIPT], env=environ, check=True, timeout=120)


def test_config_is_prefects_default_plus_the_run_file() -> None:
    import yaml
    from prefect.logging.configuration import DEFAULT_LOGGING_SETTINGS_PATH

    default = yaml.safe_load(Path(DEFAULT_LOGGING_SETTINGS_PATH).read_text())
    config = logging_config()
    assert set(config["loggers"]) == set(default["loggers"])
    assert config["root"]["handlers"] == [*default["root"]["handlers"], HANDLER]
    assert HANDLER in config["loggers"]["prefect.extra"]["handlers"]


def test_flow_run_logs_go_to_its_file(tmp_path: Path) -> None:
    _run(tmp_path, PREFECT__FLOW_RUN_ID="run-1")
    text = (tmp_path / "home" / "logs" / "flow-runs" / "run-1.log").read_text()
    assert "first line" in text
    assert "after reconfiguring" in text
    assert "from an extra logger" in text


def test_no_file_outside_a_flow_run(tmp_path: Path) -> None:
    _run(tmp_path)
    assert not (tmp_path / "home" / "logs").exists()


def test_a_handler_made_before_the_run_follows_the_run(tmp_path: Path, monkeypatch) -> None:
    """As in a process forked from the worker's fork server: the handler exists (configured
    with no run) before the process becomes a flow run and takes the run's environment."""
    import logging

    from deployments.logs import RunFileHandler

    monkeypatch.delenv("PREFECT__FLOW_RUN_ID", raising=False)
    monkeypatch.setenv("SEARCHFLOW_HOME", str(tmp_path / "home"))
    handler = RunFileHandler()
    logger = logging.getLogger("searchflow.test.run_file")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        logger.info("before the run")
        monkeypatch.setenv("PREFECT__FLOW_RUN_ID", "run-2")
        logger.info("in the run")
    finally:
        logger.removeHandler(handler)
        handler.close()
    text = (tmp_path / "home" / "logs" / "flow-runs" / "run-2.log").read_text()
    assert "in the run" in text and "before the run" not in text
