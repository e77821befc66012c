"""``GET /dead-letters``: the lines ingestion refused, newest first, with a short redacted excerpt.

A raw line may hold personal data (emails, phone or card numbers, addresses), so the open answer
shows only its masked start; the full text comes with the bearer token and ``include_raw=true``.
The list is the ledger export's newest dead letters (``published/ops/dead_letter_log.parquet``).
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status

from searchflow.api.deps import UNAUTHORIZED, AuthorizedDep, MartsDep
from searchflow.api.models import DeadLetter, DeadLetterList, Problem

router = APIRouter(prefix="/dead-letters", tags=["dead letters"])

EXCERPT_CHARS = 120
_MASKS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+"), "<email>"),
    (re.compile(r"\b\d{1,3}(\.\d{1,3}){3}\b"), "<ip>"),
    (re.compile(r"\+?\d[\d ()-]{7,}\d"), "<number>"),
)


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """The start of ``text`` with emails, IP addresses and long digit runs (phones, cards)
    masked, and control characters shown as escapes."""
    head = text[: limit * 2]
    for pattern, mask in _MASKS:
        head = pattern.sub(mask, head)
    head = "".join(c if c.isprintable() else repr(c)[1:-1] for c in head)
    return head[:limit] + ("..." if len(head) > limit or len(text) > limit * 2 else "")


@router.get(
    "",
    response_model=DeadLetterList,
    responses={401: {"model": Problem, "description": "include_raw without a valid token."}},
    summary="Dead letters, newest first",
)
def dead_letters(
    marts: MartsDep,
    authorized: AuthorizedDep,
    reason: Annotated[str | None, Query(max_length=100, description="e.g. unparsable")] = None,
    batch_id: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    include_raw: Annotated[
        bool, Query(description="Add the raw text; needs the bearer token.")
    ] = False,
) -> DeadLetterList:
    if include_raw and not authorized:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="include_raw=true needs Authorization: Bearer <SEARCHFLOW_API_TOKEN> "
            "(raw lines may hold personal data)",
            headers=UNAUTHORIZED,
        )
    con = marts.ledger()
    try:
        cursor = con.execute(
            """
            SELECT dead_letter_id, reason, detail, event_type, source, source_ref, batch_id,
                   ingested_at, raw_text, raw_chars
            FROM ops.dead_letter_log
            WHERE (?::VARCHAR IS NULL OR reason = ?) AND (?::VARCHAR IS NULL OR batch_id = ?)
            ORDER BY ingested_at DESC, dead_letter_id
            LIMIT ?
            """,
            [reason, reason, batch_id, batch_id, limit],
        )
        names = [d[0] for d in cursor.description]
        rows = [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]
    finally:
        con.close()
    data = [
        DeadLetter(
            **{k: v for k, v in row.items() if k != "raw_text"},
            excerpt=excerpt(row["raw_text"] or ""),
            raw_text=row["raw_text"] if include_raw else None,
        )
        for row in rows
    ]
    return DeadLetterList(data=data, count=len(data))
