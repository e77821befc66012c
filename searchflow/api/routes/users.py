"""``GET /users/{user_id}``: a user's segment and lifetime figures from the published marts, and
their recommendations as Redis holds them now (with the time left before they expire)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, HTTPException, Path, Response

from searchflow import pii
from searchflow.api.deps import MartsDep, RedisDep, StateDep
from searchflow.api.models import Problem, Recommendations, User
from searchflow.errors import ServiceUnavailable

router = APIRouter(prefix="/users", tags=["users"])

UserId = Annotated[
    str,
    Path(
        min_length=1,
        max_length=200,
        description="The application's user id, as in crm.user_segments and the reco keys.",
    ),
]


def _recommendations(key: str, value: str | None, ttl: int) -> Recommendations | None:
    if value is None:
        return None
    try:
        data: Any = json.loads(value)
    except ValueError:
        data = None
    if not isinstance(data, dict):  # not the sync's format: show the value as it is
        return Recommendations(key=key, destinations=[value], ttl_seconds=ttl if ttl >= 0 else None)
    return Recommendations(
        key=key,
        destinations=[str(d) for d in data.get("destinations") or []],
        score=data.get("score"),
        generated_at=data.get("generated_at"),
        ttl_seconds=ttl if ttl >= 0 else None,
    )


@router.get(
    "/{user_id}",
    response_model=User,
    responses={
        404: {"model": Problem, "description": "Neither the marts nor Redis know the user."},
        503: {"model": Problem, "description": "Redis does not answer."},
    },
    summary="A user's segment, figures and recommendations",
)
async def user(user_id: UserId, state: StateDep, marts: MartsDep, redis: RedisDep) -> Response:
    # On the event loop: the served version's index is a dictionary lookup; only loading it (after
    # a publish) reads Parquet, and that goes to a worker thread.
    # The marts key users by a pseudonym (docs/governance.md; marts built before pseudonyms by
    # the id itself); the answer names the id it was asked for.
    for lookup in (pii.served_user_key(state.settings, user_id), user_id):
        if marts.users_ready():
            version, row = marts.user(lookup)
        else:
            version, row = await anyio.to_thread.run_sync(marts.user, lookup)
        if row is not None:
            break
    key = f"{state.settings.reco_prefix}{user_id}"

    async def read(client: Any) -> tuple[str | None, int]:
        pipe = client.pipeline(transaction=False)
        pipe.get(key)
        pipe.ttl(key)
        value, ttl = await pipe.execute(raise_on_error=False)
        # WRONGTYPE: another application's key of another type under the prefix is not ours.
        return (None if isinstance(value, Exception) else value), ttl

    try:
        value, ttl = await redis.acall(read)
    except ServiceUnavailable as exc:
        raise HTTPException(503, detail=str(exc)) from None
    if row is None and value is None:
        raise HTTPException(
            404,
            detail=f"no user {user_id!r} in the published marts (version {version or 'none'}) "
            f"nor a {key!r} key in Redis",
        )
    figures = {
        k: float(v) if isinstance(v, Decimal) else v
        for k, v in (row or {}).items()
        if k in User.model_fields and k != "user_id"
    }
    answer = User(
        user_id=user_id,
        mart_version=version,
        **figures,
        recommendations=_recommendations(key, value, ttl),
    )
    # Built and validated above: sent as it is, not validated a second time against response_model
    # (which still documents it). This route is the hot one.
    return Response(answer.model_dump_json(), media_type="application/json")
