"""The one place that decides configuration.

Everything else receives a :class:`Settings`; no module reads ``os.environ`` for SearchFlow settings.
Values come from ``SEARCHFLOW_*`` environment variables and an optional ``.env`` file in the
working directory (``.env.example`` lists them all).
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from searchflow.contract import RECO_KEY_PREFIX
from searchflow.errors import UsageError


class Settings(BaseSettings):
    """SearchFlow settings. Paths are resolved against the working directory."""

    model_config = SettingsConfigDict(
        env_prefix="SEARCHFLOW_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    home: Path = Field(default=Path("./data"), description="Data folder for everything local.")
    warehouse: Path | None = Field(
        default=None, description="DuckDB file; defaults to $SEARCHFLOW_HOME/warehouse.duckdb."
    )
    warehouse_url: str | None = Field(
        default=None,
        description="PostgreSQL URL of a warehouse in PostgreSQL instead of the DuckDB file; wins "
        "over SEARCHFLOW_WAREHOUSE (docs/architecture.md, the warehouse in PostgreSQL).",
    )
    duckdb_memory_limit: str = Field(
        default="1GB",
        description="DuckDB's memory_limit for every warehouse connection and dbt; beyond it DuckDB "
        "spills to duckdb_temp_directory, so a stage's memory stays bounded at any volume.",
    )
    duckdb_threads: int | None = Field(
        default=None, ge=1, description="DuckDB's threads; unset means one per core."
    )
    duckdb_temp_directory: Path | None = Field(
        default=None,
        description="Where DuckDB spills what exceeds its memory limit; defaults to "
        "$SEARCHFLOW_HOME/tmp/duckdb.",
    )
    postgres_url: str | None = Field(
        default=None, description="PostgreSQL URL; unset means localhost, then embedded."
    )
    redis_url: str | None = Field(
        default=None, description="Redis URL; unset means localhost, then embedded."
    )
    source_url: str | None = Field(
        default=None,
        description="The application database (app.users, app.bookings) that `ingest --source app`"
        " and `source reconcile` read, always read-only; unset means the PostgreSQL URL.",
    )
    probe_localhost: bool = Field(
        default=True,
        description="Try Postgres/Redis on localhost's default ports before starting embedded ones.",
    )
    embedded_services: bool = Field(
        default=True,
        description="Start embedded Postgres/Redis when none is configured or on localhost.",
    )

    sync_keep_removed: bool = Field(
        default=False,
        description="Keep crm.user_segments rows of users who left the mart (default: mirror deletes).",
    )
    reco_prefix: str = Field(
        default=RECO_KEY_PREFIX,
        min_length=1,
        description="Redis key prefix of the recommendations sync: keys are <prefix><user_id>.",
    )

    # Quality gate thresholds (the committed suites read them as $PARAMETERs; see docs/quality.md).
    dq_max_dead_letter_share: float = Field(
        default=0.05, ge=0, le=1, description="Ingestion gate: most dead letters per batch read."
    )
    dq_max_orphan_share: float = Field(
        default=0.05, ge=0, le=1, description="Clicks/conversions whose parent is missing, at most."
    )
    dq_rate_tolerance: float = Field(
        default=0.5, ge=0, description="Generation gate: relative band around the configured rates."
    )
    dq_min_source_accuracy: float = Field(
        default=0.999,
        ge=0,
        le=1,
        description="Ingestion gate of an app batch: least share of source rows the raw layer "
        "matches (source reconcile's accuracy).",
    )
    dq_future_seconds: int = Field(
        default=300, ge=0, description="Ingestion gate: clock skew allowed for event times."
    )
    dq_redis_sample: int = Field(
        default=1000, ge=1, description="Recommendations gate: reco:* keys sampled."
    )

    # Retention (`searchflow retention apply`): ages against the latest event time, not the clock.
    retention_raw_days: int = Field(
        default=400, ge=1, description="Raw events older than this many days are deleted."
    )
    retention_dead_letter_days: int = Field(
        default=90, ge=1, description="Dead letters older than this many days are deleted."
    )
    retention_quality_days: int = Field(
        default=180, ge=1, description="Quarantined rows older than this many days are deleted."
    )
    pii_key: SecretStr | None = Field(
        default=None,
        description="HMAC key for forgotten users' hashes (unset: generated in the data folder).",
    )

    retry_delay_seconds: float = Field(
        default=2.0,
        ge=0,
        description="Served flows: seconds between retries of a stage that failed transiently.",
    )

    # The HTTP API (searchflow serve) and its alerts; see docs/api.md.
    api_token: SecretStr | None = Field(
        default=None,
        description="Bearer token for POST /runs and raw dead-letter text; unset closes them.",
    )
    api_cors_origins: str = Field(
        default="",
        description="Origins allowed to call the API from a browser, comma-separated ('*' for any).",
    )
    alert_webhook_url: str | None = Field(
        default=None,
        description="Slack-compatible webhook the Prefect alerts post to; unset creates no alerts.",
    )

    @field_validator(
        "postgres_url",
        "redis_url",
        "source_url",
        "alert_webhook_url",
        "warehouse_url",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("api_token", mode="before")
    @classmethod
    def _blank_token_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @property
    def cors_origins(self) -> list[str]:
        """``api_cors_origins`` as a list (empty: no cross-origin browser calls)."""
        return [o.strip() for o in self.api_cors_origins.split(",") if o.strip()]

    @field_validator("warehouse_url")
    @classmethod
    def _postgres_warehouse(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("postgresql://", "postgres://")):
            raise ValueError(
                "SEARCHFLOW_WAREHOUSE_URL must be a postgresql:// URL (unset it for the DuckDB file)"
            )
        return value

    @property
    def warehouse_on_postgres(self) -> bool:
        """Whether the warehouse lives in PostgreSQL (``warehouse_url``) rather than a DuckDB file."""
        return self.warehouse_url is not None

    @property
    def warehouse_exists(self) -> bool:
        """Whether there is a warehouse to read yet: the DuckDB file exists. A PostgreSQL one is
        the configured database (connecting says so in one line when it is not there)."""
        return self.warehouse_url is not None or self.warehouse_path.exists()

    @property
    def warehouse_name(self) -> str:
        """The warehouse as messages name it: the file, or the database without its password."""
        if self.warehouse_url is None:
            return str(self.warehouse_path)
        from urllib.parse import urlsplit

        parts = urlsplit(self.warehouse_url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
        return f"postgresql://{host}{port}{parts.path}"

    @property
    def warehouse_path(self) -> Path:
        """The DuckDB file, absolute."""
        path = self.warehouse if self.warehouse is not None else self.home / "warehouse.duckdb"
        return path.expanduser().resolve()

    @property
    def duckdb_spill_path(self) -> Path:
        """Where DuckDB spills, absolute."""
        path = self.duckdb_temp_directory or self.home / "tmp" / "duckdb"
        return path.expanduser().resolve()

    def duckdb_config(self) -> dict[str, str | int]:
        """The bounded-memory settings every DuckDB connection to the warehouse opens with.

        Creates the spill folder: DuckDB makes only its last level and fails a query that spills
        when the parent is missing.
        """
        self.duckdb_spill_path.mkdir(parents=True, exist_ok=True)
        config: dict[str, str | int] = {
            "memory_limit": self.duckdb_memory_limit,
            "temp_directory": str(self.duckdb_spill_path),
        }
        if self.duckdb_threads is not None:
            config["threads"] = self.duckdb_threads
        return config

    @property
    def home_path(self) -> Path:
        return self.home.expanduser().resolve()

    def ensure_home(self) -> Path:
        """Create the data folder, or fail with one line if it cannot be written."""
        home = self.home_path
        try:
            home.mkdir(parents=True, exist_ok=True)
            probe = home / ".write-probe"
            probe.write_text("ok")
            probe.unlink()
        except OSError as exc:
            raise UsageError(
                f"SEARCHFLOW_HOME {home} is not writable ({exc.strerror or exc}); "
                "point SEARCHFLOW_HOME at a folder you can write"
            ) from None
        return home

    def as_env(self) -> dict[str, str]:
        """The settings as environment variables, for child processes (workers, dbt)."""
        env = {
            "SEARCHFLOW_HOME": str(self.home_path),
            "SEARCHFLOW_WAREHOUSE": str(self.warehouse_path),
            "SEARCHFLOW_DUCKDB_MEMORY_LIMIT": self.duckdb_memory_limit,
            "SEARCHFLOW_DUCKDB_TEMP_DIRECTORY": str(self.duckdb_spill_path),
            "SEARCHFLOW_DUCKDB_THREADS": str(self.duckdb_threads or os.cpu_count() or 1),
        }
        if self.postgres_url:
            env["SEARCHFLOW_POSTGRES_URL"] = self.postgres_url
        if self.warehouse_url:
            env["SEARCHFLOW_WAREHOUSE_URL"] = self.warehouse_url
        if self.redis_url:
            env["SEARCHFLOW_REDIS_URL"] = self.redis_url
        return env


def get_settings(**overrides: object) -> Settings:
    """Read the settings from the environment (and ``.env``), with explicit overrides on top."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})


def export_to_environ(settings: Settings) -> None:
    """Make resolved settings visible to libraries that only read the environment (dbt's env_var)."""
    os.environ.update(settings.as_env())
