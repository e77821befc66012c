"""``searchflow services``: which Postgres and Redis the platform uses, and where they came from."""

from __future__ import annotations

import click

from searchflow.config import get_settings
from searchflow.output import report
from searchflow.services import mask_url, resolve_all


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object as the last line.")
def services(as_json: bool) -> None:
    """Resolve Postgres and Redis (configured URL, localhost, or embedded) and show them."""
    urls = resolve_all(get_settings())
    report(
        {
            "postgres": mask_url(urls.postgres_url),
            "postgres_origin": urls.postgres_origin,
            "redis": mask_url(urls.redis_url),
            "redis_origin": urls.redis_origin,
        },
        as_json,
    )
