"""Executive overview: the business at a glance, against the previous period and the year before."""

import altair as alt
import streamlit as st

from searchflow.dashboard import ui

# --- SQL: everything this page shows, over analytics.fct_search_funnel -------------------------

BOUNDS = "SELECT min(event_date) AS first_day, max(event_date) AS last_day FROM analytics.fct_search_funnel"

# The KPIs of a set of days (rates of sums, so they weigh every search equally): one definition
# for the range's totals and for each period of the chart.
KPI_COLUMNS = """
    sum(searches)                               AS searches,
    sum(clicks)                                 AS clicks,
    sum(conversions)                            AS bookings,
    sum(revenue)                                AS revenue,
    sum(clicks) / nullif(sum(searches), 0)      AS click_through_rate,
    sum(conversions) / nullif(sum(searches), 0) AS conversion_rate,
    sum(revenue) / nullif(sum(conversions), 0)  AS average_booking_value"""

# The KPIs over one date range.
TOTALS = f"""
SELECT {KPI_COLUMNS},
    count(DISTINCT event_date)                  AS days
FROM analytics.fct_search_funnel
WHERE event_date BETWEEN ? AND ?
"""

# The KPIs per day, week or month, each with its change against the period before.
BY_PERIOD = f"""
WITH periods AS (
    SELECT
        date_trunc(?, event_date) AS period, {KPI_COLUMNS}
    FROM analytics.fct_search_funnel
    WHERE event_date BETWEEN ? AND ?
    GROUP BY 1
)
SELECT
    *,
    searches / nullif(lag(searches) OVER (ORDER BY period), 0) - 1 AS searches_change,
    bookings / nullif(lag(bookings) OVER (ORDER BY period), 0) - 1 AS bookings_change,
    revenue / nullif(lag(revenue) OVER (ORDER BY period), 0) - 1   AS revenue_change
FROM periods
ORDER BY period
"""

# --- page --------------------------------------------------------------------------------------

KPIS = (
    ("Searches", "searches", ui.number),
    ("Clicks", "clicks", ui.number),
    ("Bookings", "bookings", ui.number),
    ("Revenue", "revenue", ui.money),
    ("Click-through rate", "click_through_rate", ui.rate),
    ("Conversion rate", "conversion_rate", ui.rate),
    ("Average booking value", "average_booking_value", ui.money),
)
GRAINS = {"Day": "day", "Week": "week", "Month": "month"}

st.title("Executive overview")
version = ui.require_version()
start, end = ui.period(version, BOUNDS, "overview_range", "The published funnel has no days yet.")
current = ui.rows(version, TOTALS, (start, end)).iloc[0]
before = ui.rows(version, TOTALS, ui.previous_period(start, end)).iloc[0]
year_ago = ui.rows(version, TOTALS, ui.year_before(start, end)).iloc[0]

st.caption(
    f"{start} to {end}, mart version {version}. Change against the {(end - start).days + 1} days before."
)
for group in (KPIS[:4], KPIS[4:]):
    for column, (label, key, fmt) in zip(st.columns(4), group, strict=False):
        column.metric(label, fmt(current[key]), ui.change(current[key], before[key]))
if year_ago["days"]:
    st.caption("Year over year: the same dates one year earlier.")
    for group in (KPIS[:4], KPIS[4:]):
        for column, (label, key, fmt) in zip(st.columns(4), group, strict=False):
            column.metric(
                f"{label}, a year before",
                fmt(year_ago[key]),
                ui.change(current[key], year_ago[key]),
            )
else:
    st.caption("Year over year: the history does not cover the same dates a year earlier yet.")

grain = st.radio("Grain", list(GRAINS), horizontal=True, key="overview_grain")
metric_label = st.selectbox("Metric", [label for label, _, _ in KPIS], key="overview_metric")
metric = dict((label, key) for label, key, _ in KPIS)[metric_label]
series = ui.rows(version, BY_PERIOD, (GRAINS[grain], start, end))
chart = (
    alt.Chart(series)
    .mark_line(point=grain != "Day")
    .encode(
        x=alt.X("period:T", title=grain),
        y=alt.Y(f"{metric}:Q", title=metric_label),
        tooltip=[
            alt.Tooltip("period:T", title=grain),
            alt.Tooltip(f"{metric}:Q", title=metric_label),
        ],
    )
    .properties(height=320)
)
st.altair_chart(chart, width="stretch")

table = series[
    [
        "period",
        "searches",
        "bookings",
        "revenue",
        "searches_change",
        "bookings_change",
        "revenue_change",
    ]
]
st.dataframe(
    table,
    hide_index=True,
    column_config={
        "period": st.column_config.DateColumn(grain),
        "searches_change": st.column_config.NumberColumn("searches vs previous", format="percent"),
        "bookings_change": st.column_config.NumberColumn("bookings vs previous", format="percent"),
        "revenue_change": st.column_config.NumberColumn("revenue vs previous", format="percent"),
        "revenue": st.column_config.NumberColumn("revenue", format="%.2f"),
    },
)
