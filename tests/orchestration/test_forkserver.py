"""The fork server and its client: a run forked from the server gets the client's environment,
folder, arguments and stdout; its exit code or signal comes back through the client; a signal to
the client reaches the run; a client killed outright takes its run with it; with no server the
client starts the engine cold. The server forks into a small test module here (the real one runs
``prefect.engine``, exercised by the chain tests through the worker)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from deployments import PROJECT_DIR
from deployments.background import pid_alive as _alive
from deployments.forkclient import SOCKET_ENV
from deployments.forkserver import READY_LINE
from deployments.forkworker import CLIENT
from tests.orchestration.waiting import wait_for as _wait_for

TARGET = "tests.orchestration.forkserver_target"
RUN_ID = "00000000-0000-4000-8000-00000000f0f0"


@pytest.fixture
def socket_path(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "fork.sock"
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "deployments.forkserver",
            "--socket",
            str(path),
            "--module",
            TARGET,
            "--no-preload",
        ],
        cwd=PROJECT_DIR,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        assert server.stdout.readline().startswith(READY_LINE)
        yield path
    finally:
        server.terminate()
        server.wait(30)
    assert not path.exists()  # the server removes its socket when it stops


def _client(socket: Path | None, cwd: Path, **env: str) -> subprocess.Popen:
    environ = {k: v for k, v in os.environ.items() if k != SOCKET_ENV}
    environ.update({"PREFECT__FLOW_RUN_ID": RUN_ID, **env})
    if socket is not None:
        environ[SOCKET_ENV] = str(socket)
    return subprocess.Popen(
        [sys.executable, "-S", str(CLIENT), "an-arg"],
        cwd=cwd,
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _run_pid(client: subprocess.Popen) -> int:
    assert client.stdout is not None
    first = client.stdout.readline()
    assert first.startswith(f"run {RUN_ID} in "), first
    return int(first.rsplit(" ", 1)[1])


def test_the_run_gets_the_clients_environment_folder_and_output(
    socket_path: Path, tmp_path: Path
) -> None:
    client = _client(socket_path, tmp_path, TARGET_EXIT="3")
    out, err = client.communicate(timeout=60)
    assert client.returncode == 3, err
    assert f"run {RUN_ID} in {tmp_path} pid" in out
    assert "args ['an-arg']" in out


def test_a_signal_to_the_client_reaches_the_run(socket_path: Path, tmp_path: Path) -> None:
    client = _client(socket_path, tmp_path, TARGET_SLEEP="300")
    try:
        run_pid = _run_pid(client)
        assert run_pid != client.pid
        assert os.getsid(run_pid) == run_pid  # a session of its own, as Prefect starts runs
        client.send_signal(signal.SIGTERM)
        client.wait(60)
    finally:
        client.kill()
        client.wait()
    assert client.returncode == -signal.SIGTERM  # exits as the run did: killed by SIGTERM
    assert _wait_for(lambda: not _alive(run_pid), 30)


def test_a_client_killed_outright_takes_its_run_along(socket_path: Path, tmp_path: Path) -> None:
    client = _client(socket_path, tmp_path, TARGET_SLEEP="300")
    try:
        run_pid = _run_pid(client)
        client.kill()
        client.wait(30)
        assert _wait_for(lambda: not _alive(run_pid), 30)
    finally:
        client.kill()
        client.wait()


def test_without_a_server_the_client_starts_the_engine_cold(tmp_path: Path) -> None:
    # the engine itself rejects the id: proof that the client became `python -m prefect.engine`
    client = _client(tmp_path / "absent.sock", tmp_path, PREFECT__FLOW_RUN_ID="not-a-uuid")
    client.wait(300)
    _out, err = client.communicate()
    assert client.returncode == 1
    assert "Invalid flow run id" in err


def test_the_server_ends_with_the_worker_that_started_it(tmp_path: Path) -> None:
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess, sys\n"
            "server = subprocess.Popen([sys.executable, '-m', 'deployments.forkserver', "
            f"'--socket', {str(tmp_path / 'fork.sock')!r}, '--no-preload'], "
            "stdout=subprocess.PIPE, text=True)\n"
            "print(server.pid, server.stdout.readline(), flush=True)\n",
        ],
        cwd=PROJECT_DIR,
        stdout=subprocess.PIPE,
        text=True,
    )
    out, _ = parent.communicate(timeout=120)
    server_pid = int(out.split()[0])
    assert READY_LINE in out
    assert _wait_for(lambda: not _alive(server_pid), 60)  # no fork server outlives its worker


def test_a_changed_source_file_makes_the_preloaded_code_stale(tmp_path: Path) -> None:
    from deployments.forkserver import project_sources, sources_changed

    module = tmp_path / "flow_module.py"
    module.write_text("X = 1\n")
    sources = {str(module): module.stat().st_mtime}
    assert not sources_changed(sources)
    os.utime(module, (1, 1))
    assert sources_changed(sources)  # edited after the server imported it: fork no more
    module.unlink()
    assert sources_changed(sources)
    assert any(p.endswith("deployments/forkserver.py") for p in project_sources())


def test_a_stale_server_frees_its_socket_and_ends_after_its_runs(tmp_path: Path) -> None:
    """The preloaded code changes on disk: the server stops listening at once (the worker starts a
    fresh one on the same path), still reports its running run's end, then exits."""
    code = tmp_path / "code"
    code.mkdir()
    (code / "preloaded_mod.py").write_text("VALUE = 1\n")
    path = tmp_path / "fork.sock"
    env = dict(os.environ, PYTHONPATH=f"{code}{os.pathsep}{PROJECT_DIR}")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "deployments.forkserver",
            "--socket",
            str(path),
            "--module",
            TARGET,
            "--no-preload",
            "--preload",
            "preloaded_mod",
            "--watch",
            str(code),
        ],
        cwd=PROJECT_DIR,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    client = None
    try:
        assert server.stdout is not None
        assert server.stdout.readline().startswith(READY_LINE)
        client = _client(path, tmp_path, TARGET_SLEEP="3", TARGET_EXIT="5")
        _run_pid(client)
        os.utime(code / "preloaded_mod.py", (1, 1))
        assert _wait_for(lambda: not path.exists(), 30)
        assert server.poll() is None  # still serving the run it forked
        client.wait(60)
        assert client.returncode == 5
        server.wait(30)
        assert server.returncode == 0
    finally:
        for process in (server, client):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
