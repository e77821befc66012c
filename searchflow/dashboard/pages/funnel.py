"""Search funnel: search -> click -> booking, by platform, device and country, with the drop-off
at each step and the change against the previous period."""

import altair as alt
import pandas as pd
import streamlit as st

from searchflow.dashboard import ui

# --- SQL: everything this page shows, over analytics.fct_search_funnel -------------------------

BOUNDS = "SELECT min(event_date) AS first_day, max(event_date) AS last_day FROM analytics.fct_search_funnel"

# The three steps over one date range.
STEPS = """
SELECT
    sum(searches)    AS searches,
    sum(clicks)      AS clicks,
    sum(conversions) AS bookings
FROM analytics.fct_search_funnel
WHERE event_date BETWEEN ? AND ?
"""

# The steps per value of one dimension ({dimension} is platform, device_type or country), with the
# drop-off between steps: the share of searches without a click, of clicks without a booking.
BY_DIMENSION = """
SELECT
    {dimension}                                       AS value,
    sum(searches)                                     AS searches,
    sum(clicks)                                       AS clicks,
    sum(conversions)                                  AS bookings,
    1 - sum(clicks) / nullif(sum(searches), 0)        AS search_to_click_drop_off,
    1 - sum(conversions) / nullif(sum(clicks), 0)     AS click_to_booking_drop_off,
    sum(conversions) / nullif(sum(searches), 0)       AS conversion_rate
FROM analytics.fct_search_funnel
WHERE event_date BETWEEN ? AND ?
GROUP BY 1
ORDER BY searches DESC
"""

# --- page --------------------------------------------------------------------------------------

DIMENSIONS = {"Platform": "platform", "Device": "device_type", "Country": "country"}
STEP_NAMES = (("Searches", "searches"), ("Clicks", "clicks"), ("Bookings", "bookings"))

st.title("Search funnel")
version = ui.require_version()
start, end = ui.period(version, BOUNDS, "funnel_range", "The published funnel has no days yet.")
steps = ui.rows(version, STEPS, (start, end)).iloc[0]
before = ui.rows(version, STEPS, ui.previous_period(start, end)).iloc[0]

st.caption(
    f"{start} to {end}, mart version {version}. Change against the {(end - start).days + 1} days before."
)
columns = st.columns(5)
for column, (label, key) in zip(columns, STEP_NAMES, strict=False):
    column.metric(label, ui.number(steps[key]), ui.change(steps[key], before[key]))


def drop(a: object, b: object) -> float | None:
    return None if not a else 1 - float(b) / float(a)


columns[3].metric(
    "Drop-off search → click",
    ui.rate(drop(steps.searches, steps.clicks)),
    ui.change(drop(steps.searches, steps.clicks), drop(before.searches, before.clicks)),
    delta_color="inverse",
)
columns[4].metric(
    "Drop-off click → booking",
    ui.rate(drop(steps.clicks, steps.bookings)),
    ui.change(drop(steps.clicks, steps.bookings), drop(before.clicks, before.bookings)),
    delta_color="inverse",
)

funnel = pd.DataFrame(
    {"step": [label for label, _ in STEP_NAMES], "events": [steps[key] for _, key in STEP_NAMES]}
)
st.altair_chart(
    alt.Chart(funnel)
    .mark_bar()
    .encode(
        y=alt.Y("step:N", sort=None, title=None),
        x=alt.X("events:Q", title="events"),
        tooltip=["step", alt.Tooltip("events:Q", format=",")],
    )
    .properties(height=160),
    width="stretch",
)

for label, dimension in DIMENSIONS.items():
    st.subheader(f"By {label.lower()}")
    table = ui.rows(version, BY_DIMENSION.format(dimension=dimension), (start, end))
    long = table.melt(
        id_vars="value",
        value_vars=["searches", "clicks", "bookings"],
        var_name="step",
        value_name="events",
    )
    st.altair_chart(
        alt.Chart(long)
        .mark_bar()
        .encode(
            x=alt.X("value:N", sort="-y", title=label, axis=alt.Axis(labelAngle=0)),
            y=alt.Y("events:Q"),
            color=alt.Color("step:N", sort=["searches", "clicks", "bookings"]),
            xOffset=alt.XOffset("step:N", sort=["searches", "clicks", "bookings"]),
            tooltip=["value", "step", alt.Tooltip("events:Q", format=",")],
        )
        .properties(height=260),
        width="stretch",
    )
    st.dataframe(
        table,
        hide_index=True,
        column_config={
            "value": label,
            "search_to_click_drop_off": st.column_config.NumberColumn(
                "drop-off search → click", format="percent"
            ),
            "click_to_booking_drop_off": st.column_config.NumberColumn(
                "drop-off click → booking", format="percent"
            ),
            "conversion_rate": st.column_config.NumberColumn("conversion rate", format="percent"),
        },
    )
