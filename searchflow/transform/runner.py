"""Stage 3: run the dbt project (``dbt/``) against the warehouse.

The dbt project holds the logic; this module decides how it is invoked:

- in-process through ``dbtRunner`` (``searchflow transform``, ``searchflow run``), or through
  prefect-dbt's ``PrefectDbtRunner`` in the ``transform`` flow so every node is a Prefect task; both
  share :func:`build_args` and :func:`dbt_env`, which are pure and tested;
- parsing happens once per environment: dbt's partial-parse file lives in a per-home target folder
  (``$SEARCHFLOW_HOME/dbt/target``), and within one process the parsed manifest is reused as long as
  the project files, target and connection are unchanged (:func:`project_fingerprint`); the project
  has no packages, so ``dbt deps`` is never needed;
- a failing model or test raises one-line :class:`SearchflowError` carrying dbt's own message;
- after every invocation the DuckDB file is free again (dbt-duckdb closes its connection; checked
  in the tests), so the next stage's process can open it.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from searchflow.config import Settings
from searchflow.errors import SearchflowError, UsageError

PROJECT_DIR = Path(__file__).resolve().parent.parent / "dbt"
TARGETS = ("dev", "postgres")

# dbt statuses, grouped the way the summary reports them.
PASSED = {"success", "pass"}
WARNED = {"warn"}
FAILED = {"error", "fail", "runtime error"}
SKIPPED = {"skipped", "no-op"}


def project_dir() -> Path:
    """The dbt project folder; a missing one means a broken checkout."""
    if not (PROJECT_DIR / "dbt_project.yml").exists():
        raise SearchflowError(
            f"the dbt project is missing at {PROJECT_DIR}; reinstall SearchFlow from a full checkout"
        )
    return PROJECT_DIR


def target_dir(settings: Settings, target: str = "dev") -> Path:
    """Per-environment dbt artifacts (manifest, partial parse, run results, docs).

    Kept under $SEARCHFLOW_HOME rather than in the project so two environments (or two tests)
    never share a partial-parse file or overwrite each other's run results.
    """
    return settings.home_path / "dbt" / ("target" if target == "dev" else f"target-{target}")


def log_dir(settings: Settings) -> Path:
    return settings.home_path / "dbt" / "logs"


def postgres_parts(url: str) -> dict[str, str]:
    """The SEARCHFLOW_DBT_PG_* variables profiles.yml reads, from a PostgreSQL URL."""
    parts = urlsplit(url)
    if parts.scheme not in {"postgresql", "postgres", "postgresql+psycopg2"}:
        raise UsageError(f"not a PostgreSQL URL: {parts.scheme}://...; set SEARCHFLOW_POSTGRES_URL")
    return {
        "SEARCHFLOW_DBT_PG_HOST": parts.hostname or "127.0.0.1",
        "SEARCHFLOW_DBT_PG_PORT": str(parts.port or 5432),
        "SEARCHFLOW_DBT_PG_USER": unquote(parts.username or "postgres"),
        "SEARCHFLOW_DBT_PG_PASSWORD": unquote(parts.password or ""),
        "SEARCHFLOW_DBT_PG_DBNAME": unquote(parts.path.lstrip("/")) or "postgres",
    }


def dbt_env(
    settings: Settings, target: str = "dev", postgres_url: str | None = None
) -> dict[str, str]:
    """The environment profiles.yml needs for ``target`` (dbt only reads env_var)."""
    if target not in TARGETS:
        raise UsageError(f"unknown dbt target {target!r}; use one of {', '.join(TARGETS)}")
    env = {
        "SEARCHFLOW_WAREHOUSE": str(settings.warehouse_path),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    if target == "postgres":
        if postgres_url is None:
            from searchflow.services import postgres_url as resolve

            postgres_url = resolve(settings)
        env.update(postgres_parts(postgres_url))
    return env


def build_args(
    command: str = "build",
    *,
    settings: Settings,
    target: str = "dev",
    full_refresh: bool = False,
    select: str | None = None,
    extra: Sequence[str] = (),
) -> list[str]:
    """The dbt CLI arguments for one invocation, shared by the CLI path and the Prefect flow."""
    args = [
        *command.split(),  # "docs generate" is two words
        "--project-dir",
        str(project_dir()),
        "--profiles-dir",
        str(project_dir()),
        "--target",
        target,
        "--target-path",
        str(target_dir(settings, target)),
    ]
    if command not in {"parse", "deps", "docs generate"}:
        args.append("--no-use-colors")
    if full_refresh:
        if command not in {"build", "run", "seed"}:
            raise UsageError(f"--full-refresh does not apply to dbt {command}")
        args.append("--full-refresh")
    if select:
        # cautious: a partial build runs only the tests whose every parent is selected, so a
        # test joining an unselected (maybe not yet built) model does not fail the run.
        args += ["--select", *select.split(), "--indirect-selection", "cautious"]
    args += list(extra)
    return args


def project_fingerprint(root: Path | None = None) -> str:
    """A hash of every project file dbt parses; a change means the manifest must be rebuilt."""
    root = root or project_dir()
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if relative.parts[0] in {"target", "logs", "dbt_packages"} or not path.is_file():
            continue
        if path.suffix not in {".sql", ".yml", ".yaml", ".md", ".csv"}:
            continue
        digest.update(str(relative).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


@contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set variables for the duration of an in-process dbt invocation, then restore them."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def release_warehouse() -> None:
    """Close the DuckDB database dbt-duckdb keeps open in this process after an invocation.

    dbt-duckdb caches its database instance in a class attribute and only closes it at interpreter
    exit; until then the file stays locked for other processes, and this process cannot reopen it
    with other settings (read-only). Closing it here frees the file as soon as dbt returns.
    """
    try:
        from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    except ImportError:  # dbt-duckdb not installed: nothing was opened
        return
    with DuckDBConnectionManager._LOCK:
        env = DuckDBConnectionManager._ENV
        DuckDBConnectionManager._ENV = None
        if env is not None:
            env.close()


# (project fingerprint, target, database name) -> parsed Manifest, for this process.
_MANIFESTS: dict[tuple[str, ...], Any] = {}


def _manifest(settings: Settings, target: str, env: Mapping[str, str]) -> Any:
    """Parse once per project version and environment; later invocations reuse the manifest."""
    from dbt.cli.main import dbtRunner

    # The manifest depends on the project files, the target and the database name the relations
    # carry (DuckDB: the file's stem; Postgres: the dbname), not on paths or credentials, so one
    # parse serves every run of this process with the same project version.
    database = (
        Path(env["SEARCHFLOW_WAREHOUSE"]).stem
        if target == "dev"
        else env.get("SEARCHFLOW_DBT_PG_DBNAME", "")
    )
    key = (project_fingerprint(), target, database)
    if key not in _MANIFESTS:
        log_dir(settings).mkdir(parents=True, exist_ok=True)
        result = dbtRunner().invoke(
            [
                *build_args("parse", settings=settings, target=target),
                "--log-path",
                str(log_dir(settings)),
                "--quiet",
            ]
        )
        if not result.success:
            raise SearchflowError(
                f"dbt could not parse the project: {_one_line(result.exception)}; "
                f"fix the files under {project_dir()} and retry"
            )
        _MANIFESTS[key] = result.result
    return _MANIFESTS[key]


def _one_line(value: object, limit: int = 400) -> str:
    text = " ".join(str(value or "").split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def summarize(results: Sequence[Any], seconds: float) -> dict[str, Any]:
    """Counts per outcome and per node type from dbt's node results (pure; tested)."""
    by_type: dict[str, dict[str, int]] = {}
    totals = {"passed": 0, "warned": 0, "failed": 0, "skipped": 0}
    for result in results:
        status = str(getattr(result.status, "value", result.status)).lower()
        kind = str(getattr(result.node.resource_type, "value", result.node.resource_type))
        outcome = (
            "passed"
            if status in PASSED
            else "warned"
            if status in WARNED
            else "failed"
            if status in FAILED
            else "skipped"
        )
        totals[outcome] += 1
        counts = by_type.setdefault(kind, {"run": 0, "passed": 0, "failed": 0, "skipped": 0})
        counts["run"] += 1
        if outcome in counts:
            counts[outcome] += 1
        elif outcome == "warned":
            counts["passed"] += 1
    return {"nodes": len(results), **totals, "by_type": by_type, "seconds": round(seconds, 3)}


def failure_message(results: Sequence[Any]) -> str:
    """One line naming the failing nodes and dbt's first message."""
    failing = [r for r in results if str(getattr(r.status, "value", r.status)).lower() in FAILED]
    if not failing:
        return "dbt reported a failure without a failing node"
    first = failing[0]
    names = ", ".join(r.node.name for r in failing[:5]) + (
        f" and {len(failing) - 5} more" if len(failing) > 5 else ""
    )
    message = f"{len(failing)} dbt node(s) failed ({names}): {_one_line(first.message)}"
    if "out of sync" in message:  # an incremental model whose columns changed
        message += "; rebuild it with `searchflow transform --full-refresh`"
    return message


def _latest_batch(settings: Settings) -> tuple[str, str | None]:
    """The raw layer's most recent batch id and the marts' as-of time, for the gate and the report."""
    from searchflow.warehouse import session, table_exists

    with session(settings, read_only=True) as con:
        batch = ""
        if table_exists(con, "raw.search_events"):
            row = con.execute(
                "SELECT batch_id FROM (SELECT batch_id, ingested_at FROM raw.search_events "
                "UNION ALL SELECT batch_id, ingested_at FROM raw.click_events "
                "UNION ALL SELECT batch_id, ingested_at FROM raw.conversion_events) "
                "ORDER BY ingested_at DESC, batch_id DESC LIMIT 1"
            ).fetchone()
            batch = row[0] if row else ""
        as_of = None
        if table_exists(con, "intermediate.int_as_of"):
            row = con.execute("SELECT as_of FROM intermediate.int_as_of").fetchone()
            as_of = row[0].isoformat() if row and row[0] else None
    return batch, as_of


def _check_raw(settings: Settings) -> None:
    """Fail early, in one line, when there is nothing to transform."""
    from searchflow.warehouse import session, table_exists

    if not settings.warehouse_path.exists():
        raise SearchflowError(
            f"the warehouse {settings.warehouse_path} does not exist yet; "
            "run `searchflow ingest` first"
        )
    with session(settings, read_only=True) as con:
        if not table_exists(con, "raw.search_events"):
            raise SearchflowError(
                f"the warehouse {settings.warehouse_path} has no raw tables; "
                "run `searchflow ingest` first"
            )


def invoke(
    settings: Settings,
    command: str = "build",
    *,
    target: str = "dev",
    full_refresh: bool = False,
    select: str | None = None,
    postgres_url: str | None = None,
    extra: Sequence[str] = (),
) -> tuple[Any, float]:
    """Run one dbt command in-process; returns (dbtRunnerResult, seconds). Raises on failure."""
    from dbt.cli.main import dbtRunner

    env = dbt_env(settings, target, postgres_url)
    args = [
        *build_args(
            command,
            settings=settings,
            target=target,
            full_refresh=full_refresh,
            select=select,
            extra=extra,
        ),
        "--log-path",
        str(log_dir(settings)),
        "--quiet",
    ]
    started = time.perf_counter()
    with environment(env):
        manifest = _manifest(settings, target, env)
        try:
            result = dbtRunner(manifest=manifest).invoke(args)
        finally:
            release_warehouse()
    seconds = time.perf_counter() - started
    if result.exception is not None:
        raise SearchflowError(
            f"dbt {command} could not run: {_one_line(result.exception)}; "
            "check the warehouse and the dbt project, then retry"
        )
    if not result.success:
        nodes = getattr(result.result, "results", None) or []
        raise SearchflowError(
            f"dbt {command} failed: {failure_message(nodes)}; "
            f"details in {log_dir(settings) / 'dbt.log'}"
        )
    return result, seconds


def run_transform(
    settings: Settings,
    full_refresh: bool = False,
    select: str | None = None,
    target: str = "dev",
    postgres_url: str | None = None,
) -> dict[str, Any]:
    """``dbt build`` the project (models, snapshot, tests); returns the stage summary.

    The summary has the node counts (run, passed, warned, failed, skipped, per node type), the
    seconds, the as-of time of the marts and the latest raw batch id (what the gate validates).
    """
    if target == "dev":
        _check_raw(settings)
    result, seconds = invoke(
        settings,
        "build",
        target=target,
        full_refresh=full_refresh,
        select=select,
        postgres_url=postgres_url,
    )
    summary = summarize(getattr(result.result, "results", None) or [], seconds)
    batch_id, as_of = _latest_batch(settings) if target == "dev" else ("", None)
    return {
        "stage": "transformation",
        "target": target,
        "full_refresh": full_refresh,
        "select": select or "",
        "batch_id": batch_id,
        "as_of": as_of or "",
        **summary,
    }


def generate_docs(settings: Settings, target: str = "dev") -> Path:
    """``dbt docs generate``; returns the index.html to open."""
    if target == "dev":
        _check_raw(settings)
    invoke(settings, "docs generate", target=target)
    index = target_dir(settings, target) / "index.html"
    if not index.exists():
        raise SearchflowError(f"dbt docs generate wrote no {index}; see {log_dir(settings)}")
    return index


def prefect_build(
    settings: Settings, full_refresh: bool = False, select: str | None = None
) -> dict[str, Any]:
    """``dbt build`` through prefect-dbt, so each dbt node runs as a Prefect task.

    Used by the ``transform`` flow. The arguments are the same as :func:`run_transform`'s.
    """
    from prefect_dbt import PrefectDbtRunner, PrefectDbtSettings

    _check_raw(settings)
    env = dbt_env(settings, "dev")
    args = build_args(
        "build", settings=settings, target="dev", full_refresh=full_refresh, select=select
    )
    started = time.perf_counter()
    with environment(env):
        runner = PrefectDbtRunner(
            settings=PrefectDbtSettings(
                project_dir=project_dir(),
                profiles_dir=project_dir(),
                target_path=target_dir(settings, "dev"),
            ),
            raise_on_failure=False,
        )
        try:
            result = runner.invoke(args)
        except ValueError as exc:  # prefect-dbt raises ValueError when dbt itself cannot run
            raise SearchflowError(
                f"dbt build could not run: {_one_line(exc)}; check the warehouse and the project"
            ) from None
        finally:
            release_warehouse()
    seconds = time.perf_counter() - started
    nodes = getattr(result.result, "results", None) or []
    if not result.success:
        raise SearchflowError(f"dbt build failed: {failure_message(nodes)}")
    batch_id, as_of = _latest_batch(settings)
    return {
        "stage": "transformation",
        "target": "dev",
        "full_refresh": full_refresh,
        "select": select or "",
        "batch_id": batch_id,
        "as_of": as_of or "",
        **summarize(nodes, seconds),
    }
