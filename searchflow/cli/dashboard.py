"""``searchflow dashboard``: serve the dashboards (Streamlit) over the published snapshot."""

from __future__ import annotations

import os
import sys

import click

from searchflow.cli.serving import check_port, host_option, port_option, shown_url
from searchflow.config import export_to_environ, get_settings
from searchflow.output import to_json

# Streamlit's options: no browser to open, no usage statistics sent, no file watcher (the app is
# installed code, and watching costs a core), and a viewer's toolbar.
STREAMLIT_OPTIONS: tuple[str, ...] = (
    "--server.headless=true",
    "--browser.gatherUsageStats=false",
    "--server.fileWatcherType=none",
    "--server.runOnSave=false",
    "--global.developmentMode=false",
    "--client.toolbarMode=viewer",
    "--theme.base=light",
)


def streamlit_command(host: str, port: int) -> list[str]:
    """The command line that serves the app on ``host:port``."""
    from searchflow.dashboard import APP

    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP),
        f"--server.address={host}",
        f"--server.port={port}",
        *STREAMLIT_OPTIONS,
    ]


@click.command()
@port_option(8501)
@host_option
@click.option(
    "--json", "as_json", is_flag=True, help="Print the address as one JSON object, then serve."
)
def dashboard(port: int, host: str, as_json: bool) -> None:
    """Serve the dashboards on http://HOST:PORT until interrupted (Ctrl+C).

    They read only the published Parquet snapshot ($SEARCHFLOW_HOME/published), never the
    warehouse file, so they never block ingestion or transformation.
    """
    settings = get_settings()
    check_port(host, port, "the dashboards")
    export_to_environ(settings)
    url = shown_url(host, port)
    if as_json:
        click.echo(to_json({"url": url, "home": str(settings.home_path)}))
    else:
        click.echo(f"dashboards: {url}  (data: {settings.home_path}; Ctrl+C stops)")
    sys.stdout.flush()
    command = streamlit_command(host, port)
    os.execv(command[0], command)
