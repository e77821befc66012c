"""The ``searchflow`` command: one entry point for everything a person runs by hand.

Subcommands live beside this module (``searchflow/cli/<name>.py``), one module each, and are imported only when invoked
(Prefect, dbt and Great Expectations take seconds to import). Errors the user can fix print as one
line on stderr with a non-zero exit; anything unexpected does too, with the traceback available by
setting ``SEARCHFLOW_DEBUG=1``.
"""

from __future__ import annotations

import importlib
import os
import sys

import click

from searchflow.errors import SearchflowError

# name -> (module, attribute, one-line help)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "generate": (
        "searchflow.cli.generate",
        "generate",
        "Simulate search, click and conversion events.",
    ),
    "ingest": (
        "searchflow.cli.ingest",
        "ingest",
        "Land events in the DuckDB raw layer, exactly once.",
    ),
    "transform": (
        "searchflow.cli.transform",
        "transform",
        "Build the dbt models (staging to marts).",
    ),
    "sync": ("searchflow.cli.sync", "sync", "Reverse ETL: push marts to Postgres and Redis."),
    "reconcile": (
        "searchflow.cli.sync",
        "reconcile",
        "Report drift between a mart and its destination.",
    ),
    "source": (
        "searchflow.cli.source",
        "source",
        "The application database: reconcile it with the warehouse.",
    ),
    "retention": (
        "searchflow.cli.retention",
        "retention",
        "Enforce the retention policy (ages against the latest event).",
    ),
    "forget": (
        "searchflow.cli.forget",
        "forget",
        "Erase one user everywhere SearchFlow keeps data.",
    ),
    "batches": (
        "searchflow.cli.batches",
        "batches",
        "The batch ledger: list, show, release or discard a batch.",
    ),
    "run": ("searchflow.cli.run", "run", "The whole chain in one process, no Prefect server."),
    "dq": ("searchflow.cli.dq", "dq", "Data-quality reports of the gates."),
    "deploy": (
        "searchflow.cli.deploy",
        "deploy",
        "Prepare a Prefect server: pool, limit, deployments.",
    ),
    "demo": (
        "searchflow.cli.demo",
        "demo",
        "Run the served chain end to end and show where to look.",
    ),
    "stop": (
        "searchflow.cli.stop",
        "stop",
        "Stop the server, worker and dashboards the demo left running.",
    ),
    "dashboard": (
        "searchflow.cli.dashboard",
        "dashboard",
        "Serve the dashboards over the published marts.",
    ),
    "serve": (
        "searchflow.cli.serve",
        "serve",
        "Serve the HTTP API: health, stats, ledger, users, metrics, runs.",
    ),
    "services": (
        "searchflow.cli.services",
        "services",
        "Show which Postgres and Redis are used.",
    ),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name in COMMANDS if _available(name)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS or not _available(cmd_name):
            return None
        module_name, attr, _ = COMMANDS[cmd_name]
        return getattr(importlib.import_module(module_name), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _available(name: str) -> bool:
    return importlib.util.find_spec(COMMANDS[name][0]) is not None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="searchflow")
def cli() -> None:
    """SearchFlow: simulate, ingest, model, gate and sync travel-search events.

    Settings come from SEARCHFLOW_* environment variables or a .env file (see .env.example).
    """


def usage_message(exc: click.UsageError) -> str:
    """Click's usage error as the project says bad input: one line, lower case, where to look."""
    text = " ".join(exc.format_message().split()).rstrip(".")
    text = text[:1].lower() + text[1:]
    ctx = exc.ctx
    return f"{text} (see '{ctx.command_path} --help')" if ctx is not None else text


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the group, turning every failure into one line."""
    debug = os.environ.get("SEARCHFLOW_DEBUG", "").lower() in {"1", "true", "yes"}
    try:
        cli.main(args=argv, prog_name="searchflow", standalone_mode=False)
    except SearchflowError as exc:
        if debug:
            raise
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except click.UsageError as exc:  # click's own: the same one line as the project's UsageError
        click.echo(f"error: {usage_message(exc)}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # the last line of defence: still one line, never a traceback
        if debug:
            raise
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        click.echo(
            f"error: unexpected {type(exc).__name__}: {message} "
            "(set SEARCHFLOW_DEBUG=1 to see the traceback)",
            err=True,
        )
        sys.exit(1)
