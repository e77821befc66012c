"""`searchflow serve`: registered, and a busy port is one line naming it and the way out."""

from __future__ import annotations

import socket
import subprocess
import sys


def test_busy_port_is_one_line(home) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "searchflow.cli", "serve", "--port", str(port)],
            env={"SEARCHFLOW_HOME": str(home), "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and f"127.0.0.1:{port}" in lines[0] and "--port" in lines[0]


def test_serve_is_a_command() -> None:
    from searchflow.cli import COMMANDS

    assert COMMANDS["serve"][0] == "searchflow.cli.serve"
