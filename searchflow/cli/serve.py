"""``searchflow serve``: the HTTP API (FastAPI on uvicorn) over the published data."""

from __future__ import annotations

import socket

import click

from searchflow.config import get_settings
from searchflow.errors import UsageError
from searchflow.output import to_json


def _check_port(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise UsageError(
                f"cannot serve the API on {host}:{port} ({exc.strerror or exc}); "
                "pick another port with --port"
            ) from None


@click.command()
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on; 0.0.0.0 serves other machines too.",
)
@click.option(
    "--log-level",
    default="warning",
    show_default=True,
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
    help="uvicorn's log level (info logs every request).",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print the address as one JSON object, then serve."
)
def serve(port: int, host: str, log_level: str, as_json: bool) -> None:
    """Serve the HTTP API on http://HOST:PORT until interrupted (Ctrl+C).

    OpenAPI at /openapi.json, interactive docs at /docs, Prometheus metrics at /metrics. It reads
    the published snapshot and the ledger export ($SEARCHFLOW_HOME/published), Postgres and Redis,
    never the warehouse file. POST /runs needs SEARCHFLOW_API_TOKEN and a Prefect API.
    """
    import uvicorn

    from searchflow.api import create_app

    settings = get_settings()
    _check_port(host, port)
    app = create_app(settings)
    shown = "localhost" if host in {"127.0.0.1", "0.0.0.0"} else host
    if as_json:
        click.echo(to_json({"url": f"http://{shown}:{port}", "home": str(settings.home_path)}))
    else:
        click.echo(f"api: http://{shown}:{port}/docs  (data: {settings.home_path}; Ctrl+C stops)")
    # One process: the metrics collector reads at scrape time, so it needs no multiprocess mode.
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=log_level == "info")
