"""Stage 3: the dbt project (``dbt/``) builds the marts as a candidate; publication serves it.

- :mod:`~searchflow.transform.runner`: how dbt is invoked (arguments, environment, in-process
  runner with one parse per process, reading results); pure helpers shared with the Prefect flow;
- :mod:`~searchflow.transform.candidate`: candidate schemas (``analytics__<version>``, ...),
  seeding incremental marts from the published version, completing partial builds;
- :mod:`~searchflow.transform.publish`: :func:`publish` (one transaction repointing the published
  views, then the segment snapshot and the Parquet export; rolled back whole on error) and
  :func:`reject`;
- :mod:`~searchflow.transform.stage`: :func:`build_candidate`, :func:`run_transform` (build and
  publish without a gate), :func:`generate_docs`, :func:`discard_from_models`.
"""

from searchflow.transform.candidate import new_version, schemas
from searchflow.transform.publish import Invoker, in_process, publish, reject
from searchflow.transform.runner import (
    AFTER_PUBLICATION,
    MART_SCHEMAS,
    TARGETS,
    build_args,
    dbt_env,
    environment,
    failure_message,
    invoke,
    log_dir,
    postgres_parts,
    project_dir,
    project_fingerprint,
    summarize,
    target_dir,
)
from searchflow.transform.stage import (
    build_candidate,
    check_raw,
    describe,
    discard_from_models,
    generate_docs,
    merge_counts,
    prepare,
    run_transform,
)

__all__ = [
    "AFTER_PUBLICATION",
    "MART_SCHEMAS",
    "TARGETS",
    "Invoker",
    "build_args",
    "build_candidate",
    "check_raw",
    "dbt_env",
    "describe",
    "discard_from_models",
    "environment",
    "failure_message",
    "generate_docs",
    "in_process",
    "invoke",
    "log_dir",
    "merge_counts",
    "new_version",
    "postgres_parts",
    "prepare",
    "project_dir",
    "project_fingerprint",
    "publish",
    "reject",
    "run_transform",
    "schemas",
    "summarize",
    "target_dir",
]
