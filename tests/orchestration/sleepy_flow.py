"""A flow that only sleeps: something to cancel while it runs (tests/orchestration/test_forkworker.py)."""

import time

from prefect import flow, get_run_logger


@flow(name="sleepy")
def sleepy(seconds: float = 600.0) -> None:
    get_run_logger().info("sleeping %s s", seconds)
    time.sleep(seconds)
