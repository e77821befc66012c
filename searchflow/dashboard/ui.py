"""What every page shares: the served version, the date-range filter, period comparisons and
number formats. Pages stay thin: SQL at the top, then these calls."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import streamlit as st

from searchflow.dashboard import data


def require_version() -> str:
    """The served mart version; without one the page says what to run and stops."""
    version = data.version()
    if version is None:
        st.info(
            "Nothing is published yet. Run `searchflow run` (or the served chain) and the "
            "dashboards fill in as soon as the first transformation passes its gate."
        )
        st.stop()
    return version


def rows(version: str | None, sql: str, params: tuple = (), *, ops: bool = False) -> pd.DataFrame:
    """The result of one page query (cached per version, see :func:`data.query`)."""
    return data.query(version, data.ops_stamp() if ops else "", sql, tuple(params))


def date_range(first: date | None, last: date | None, key: str) -> tuple[date, date] | None:
    """The page's date-range filter, defaulting to the whole history [first, last].

    While a user has picked only the start of a new range, the whole history stays selected.
    Returns None when there is no history at all."""
    if first is None or last is None or pd.isna(first) or pd.isna(last):
        st.sidebar.caption("No dates to filter yet.")
        return None
    first, last = pd.Timestamp(first).date(), pd.Timestamp(last).date()
    picked = st.sidebar.date_input(
        "Date range",
        value=(first, last),
        min_value=first,
        max_value=last,
        key=key,
        help="Defaults to the whole history. Comparisons are against the period of the same "
        "length just before it.",
    )
    if isinstance(picked, tuple | list) and len(picked) == 2:
        return picked[0], picked[1]
    return first, last


def period(
    version: str, bounds_sql: str, key: str, empty: str, *, ops: bool = False
) -> tuple[date, date]:
    """The date range a page shows: its filter over the first and last day of ``bounds_sql``
    (a query returning ``first_day`` and ``last_day``). With no days at all the page says
    ``empty`` and stops, so what follows always has a range."""
    bounds = rows(version, bounds_sql, ops=ops).iloc[0]
    picked = date_range(bounds.first_day, bounds.last_day, key)
    if picked is None:
        st.info(empty)
        st.stop()
    return picked


def previous_period(start: date, end: date) -> tuple[date, date]:
    """The period of the same length that ends the day before ``start``."""
    length = (end - start).days + 1
    return start - timedelta(days=length), start - timedelta(days=1)


def year_before(start: date, end: date) -> tuple[date, date]:
    """The same dates one year earlier (29 February falls back to the 28th)."""

    def back(day: date) -> date:
        try:
            return day.replace(year=day.year - 1)
        except ValueError:
            return day.replace(year=day.year - 1, day=28)

    return back(start), back(end)


def number(value: object) -> str:
    """A count, comma-grouped."""
    return "–" if value is None or pd.isna(value) else f"{int(value):,}"


def money(value: object) -> str:
    """An amount with cents, comma-grouped."""
    return "–" if value is None or pd.isna(value) else f"{float(value):,.2f}"


def rate(value: object) -> str:
    """A share as a percentage."""
    return "–" if value is None or pd.isna(value) else f"{float(value):.2%}"


def ratio(value: object) -> str:
    """A multiple such as ROAS."""
    return "–" if value is None or pd.isna(value) else f"{float(value):,.2f}x"


def change(current: object, previous: object) -> str | None:
    """The relative change as a metric delta, or None when there is nothing to compare with."""
    if current is None or previous is None or pd.isna(current) or pd.isna(previous):
        return None
    if float(previous) == 0:
        return None
    return f"{(float(current) - float(previous)) / abs(float(previous)):+.1%}"
