"""How dbt is invoked: arguments, environment, the in-process runner, and reading its results.

The dbt project holds the logic; this module decides how it is invoked:

- in-process through ``dbtRunner`` (:func:`invoke`), or through prefect-dbt in the ``transform``
  flow (``flows/transform.py``) so every node is a Prefect task; both share :func:`build_args`,
  :func:`dbt_env`, :func:`summarize` and :func:`failure_message`, which are pure and tested;
- parsing happens once per environment: dbt's partial-parse file lives in a per-home target folder
  (``$SEARCHFLOW_HOME/dbt/target``), and within one process the parsed manifest is reused as long as
  the project files, target and connection are unchanged (:func:`project_fingerprint`); the project
  has no packages, so ``dbt deps`` is never needed;
- a failing model or test raises one-line :class:`SearchflowError` carrying dbt's own message;
- the marts' schemas carry the build's version (``analytics__<version>``): :func:`build_args`
  passes it as the ``mart_version`` var, and the reused manifest is pointed at it
  (:func:`searchflow.compat.dbt_duckdb.retarget_manifest`) instead of parsing again;
- after every invocation the DuckDB file is free again (checked in the tests), so the next stage's
  process can open it.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from searchflow.compat.dbt_duckdb import release_warehouse, retarget_manifest
from searchflow.config import Settings
from searchflow.contract import MARTS
from searchflow.errors import SearchflowError, UsageError
from searchflow.output import progress_reporter
from searchflow.warehouse import is_lock_conflict, lock_error

PROJECT_DIR = Path(__file__).resolve().parents[2] / "dbt"
TARGETS = ("dev", "postgres")

# dbt statuses, grouped the way the summary reports them.
PASSED = {"success", "pass"}
WARNED = {"warn"}
FAILED = {"error", "fail", "runtime error"}
SKIPPED = {"skipped", "no-op"}

# The schemas built as candidates (dbt_project.yml's var mart_schemas), from the contract's marts.
MART_SCHEMAS: tuple[str, ...] = tuple(sorted({name.split(".")[0] for name in MARTS}))
# The version a plain `dbt build` builds (dbt_project.yml's var mart_version); the manifest this
# module parses carries it until it is retargeted.
PARSED_VERSION = "dev"
# The segment snapshot and the views over it: built after a publication, never in a candidate.
AFTER_PUBLICATION = "user_segments_snapshot+"


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
    target = resolve_target(settings, target)[0]
    return settings.home_path / "dbt" / ("target" if target == "dev" else f"target-{target}")


def log_dir(settings: Settings) -> Path:
    return settings.home_path / "dbt" / "logs"


def resolve_target(
    settings: Settings, target: str = "dev", postgres_url: str | None = None
) -> tuple[str, str | None]:
    """The target and PostgreSQL URL dbt really builds on.

    With the warehouse in PostgreSQL (``SEARCHFLOW_WAREHOUSE_URL``) the default target is the
    ``postgres`` one, on that database: the stages ask for "the warehouse", not for an adapter.
    """
    if target == "dev" and settings.warehouse_url is not None:
        return "postgres", settings.warehouse_url
    return target, postgres_url


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
    target, postgres_url = resolve_target(settings, target, postgres_url)
    if target not in TARGETS:
        raise UsageError(f"unknown dbt target {target!r}; use one of {', '.join(TARGETS)}")
    env = {
        "SEARCHFLOW_WAREHOUSE": str(settings.warehouse_path),
        # the PII key's home, for the pseudonyms (searchflow/restricted_plugin.py)
        "SEARCHFLOW_HOME": str(settings.home_path),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        **{k: v for k, v in settings.as_env().items() if k.startswith("SEARCHFLOW_DUCKDB_")},
    }
    if settings.pii_key is not None and settings.pii_key.get_secret_value():
        env["SEARCHFLOW_PII_KEY"] = settings.pii_key.get_secret_value()
    settings.duckdb_config()  # creates the spill folder dbt-duckdb's temp_directory names
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
    exclude: str | None = None,
    version: str | None = None,
    extra: Sequence[str] = (),
) -> list[str]:
    """The dbt CLI arguments for one invocation, shared by the in-process path and the Prefect flow.

    ``version``: the mart version the candidate schemas carry (var ``mart_version``).
    """
    target, _ = resolve_target(settings, target)
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
    if exclude:
        args += ["--exclude", *exclude.split()]
    if version:
        args += ["--vars", json.dumps({"mart_version": version})]
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


# (project fingerprint, target, database name) -> [parsed Manifest, the version its marts carry].
_MANIFESTS: dict[tuple[str, ...], list[Any]] = {}


def _manifest(
    settings: Settings, target: str, env: Mapping[str, str], version: str | None = None
) -> Any:
    """Parse once per project version and environment; later invocations reuse the manifest,
    pointed at ``version``'s candidate schemas."""
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
        _MANIFESTS[key] = [result.result, PARSED_VERSION]
    manifest, current = _MANIFESTS[key]
    wanted = version or PARSED_VERSION
    if wanted != current:
        retarget_manifest(manifest, {f"{s}__{current}": f"{s}__{wanted}" for s in MART_SCHEMAS})
        _MANIFESTS[key][1] = wanted
    return manifest


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


def _node_progress() -> Any:
    """A dbt event callback reporting each finished node (see searchflow.output.report_progress)."""
    done = 0
    report = progress_reporter()  # dbt calls back from its worker threads

    def on_event(event: Any) -> None:
        nonlocal done
        if event.info.name == "NodeFinished":
            done += 1
            node = getattr(getattr(event.data, "node_info", None), "node_name", "")
            report(f"dbt {node}".strip(), done, None)

    return on_event


def _results(result: Any) -> list[Any]:
    return list(getattr(result.result, "results", None) or [])


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


def invoke(
    settings: Settings,
    command: str = "build",
    *,
    target: str = "dev",
    full_refresh: bool = False,
    select: str | None = None,
    postgres_url: str | None = None,
    exclude: str | None = None,
    version: str | None = None,
    extra: Sequence[str] = (),
) -> tuple[Any, float]:
    """Run one dbt command in-process; returns (dbtRunnerResult, seconds). Raises on failure."""
    from dbt.cli.main import dbtRunner

    target, postgres_url = resolve_target(settings, target, postgres_url)
    env = dbt_env(settings, target, postgres_url)
    args = [
        *build_args(
            command,
            settings=settings,
            target=target,
            full_refresh=full_refresh,
            select=select,
            exclude=exclude,
            version=version,
            extra=extra,
        ),
        "--log-path",
        str(log_dir(settings)),
        "--quiet",
    ]
    started = time.perf_counter()
    with environment(env):
        manifest = _manifest(settings, target, env, version)
        try:
            result = dbtRunner(manifest=manifest, callbacks=[_node_progress()]).invoke(args)
        finally:
            release_warehouse()
    seconds = time.perf_counter() - started
    if is_lock_conflict(result.exception) or (
        not result.success
        and any(is_lock_conflict(getattr(r, "message", "")) for r in _results(result))
    ):
        # another process took the warehouse between our release and dbt's connect
        raise lock_error(settings.warehouse_path)
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
