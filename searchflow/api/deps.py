"""Typed dependencies of the routes: the settings, the clients opened in the lifespan, and the
bearer-token guard. Tests swap any of them through ``app.dependency_overrides``."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from searchflow.api.clients import Postgres, Redis
from searchflow.api.published import PublishedData
from searchflow.config import Settings
from searchflow.errors import UsageError

# Tokens that are examples, not secrets: refused at start-up.
PLACEHOLDER_TOKENS = frozenset({"changeme", "change_me", "change-me", "secret", "token", "test"})
MIN_TOKEN_CHARS = 16


def checked_token(settings: Settings) -> str | None:
    """The configured API token, or None; a placeholder or a short token is a one-line error."""
    if settings.api_token is None:
        return None
    token = settings.api_token.get_secret_value().strip()
    if token.lower() in PLACEHOLDER_TOKENS or len(token) < MIN_TOKEN_CHARS:
        raise UsageError(
            f"SEARCHFLOW_API_TOKEN is a placeholder or shorter than {MIN_TOKEN_CHARS} characters; "
            "set a long random value (openssl rand -hex 32) or unset it"
        )
    return token


@dataclass
class AppState:
    """What the lifespan opens once per process."""

    settings: Settings
    token: str | None
    published: PublishedData
    postgres: Postgres
    redis: Redis
    prefect_api_url: str | None


# The getters are ``async``: FastAPI runs a plain ``def`` dependency in its thread pool, a thread
# hop per dependency per request for what is an attribute read.
async def get_state(request: Request) -> AppState:
    return request.app.state.searchflow


StateDep = Annotated[AppState, Depends(get_state)]


async def get_published(state: StateDep) -> PublishedData:
    return state.published


async def get_postgres(state: StateDep) -> Postgres:
    return state.postgres


async def get_redis(state: StateDep) -> Redis:
    return state.redis


MartsDep = Annotated[PublishedData, Depends(get_published)]
PgDep = Annotated[Postgres, Depends(get_postgres)]
RedisDep = Annotated[Redis, Depends(get_redis)]

_bearer = HTTPBearer(auto_error=False, description="SEARCHFLOW_API_TOKEN")
CredentialsDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]

UNAUTHORIZED = {"WWW-Authenticate": "Bearer"}


def authorized(state: AppState, credentials: HTTPAuthorizationCredentials | None) -> bool:
    """True when the request carries the configured bearer token; a wrong token is a 401."""
    if credentials is None:
        return False
    if state.token is None or not hmac.compare_digest(
        credentials.credentials.encode(), state.token.encode()
    ):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="invalid bearer token",
            headers=UNAUTHORIZED,
        )
    return True


async def require_token(state: StateDep, credentials: CredentialsDep) -> None:
    """Guard of the endpoints that act or reveal personal data."""
    if state.token is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="this endpoint needs a bearer token and SEARCHFLOW_API_TOKEN is not set "
            "on the server; set it and restart searchflow serve",
            headers=UNAUTHORIZED,
        )
    if not authorized(state, credentials):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="missing bearer token: send Authorization: Bearer <SEARCHFLOW_API_TOKEN>",
            headers=UNAUTHORIZED,
        )


async def is_authorized(state: StateDep, credentials: CredentialsDep) -> bool:
    """For endpoints open to all that show more with the token."""
    return authorized(state, credentials)


AuthorizedDep = Annotated[bool, Depends(is_authorized)]
