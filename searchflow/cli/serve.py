"""``searchflow serve``: the HTTP API (FastAPI on uvicorn) over the published data."""

from __future__ import annotations

import click

from searchflow.cli.serving import check_port, host_option, port_option, shown_url
from searchflow.config import get_settings
from searchflow.output import to_json


@click.command()
@port_option(8000)
@host_option
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
    check_port(host, port, "the API")
    app = create_app(settings)
    url = shown_url(host, port)
    if as_json:
        click.echo(to_json({"url": url, "home": str(settings.home_path)}))
    else:
        click.echo(f"api: {url}/docs  (data: {settings.home_path}; Ctrl+C stops)")
    # One process: the metrics collector reads at scrape time, so it needs no multiprocess mode.
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=log_level == "info")
