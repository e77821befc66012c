"""Marketing attribution: by utm_source and utm_campaign, first touch against last touch, with
spend, ROAS and cost per booking, and the change against the previous period."""

import altair as alt
import streamlit as st

from searchflow.dashboard import ui

# --- SQL: everything this page shows, over marketing.mart_campaign_performance -----------------

BOUNDS = "SELECT min(event_date) AS first_day, max(event_date) AS last_day FROM marketing.mart_campaign_performance"

# Totals over one date range. ROAS = revenue / spend and cost per booking = spend / bookings, both
# on paid campaigns only (is_paid), by the attribution model picked ({model}: first_touch
# or last_touch).
TOTALS = """
SELECT
    sum(spend)                                                                    AS spend,
    sum({model}_conversions)                                                      AS bookings,
    sum({model}_revenue)                                                          AS revenue,
    sum({model}_revenue) FILTER (WHERE is_paid) / nullif(sum(spend), 0)         AS roas,
    sum(spend) / nullif(sum({model}_conversions) FILTER (WHERE is_paid), 0)     AS cost_per_booking
FROM marketing.mart_campaign_performance
WHERE event_date BETWEEN ? AND ?
"""

# Per campaign over one date range: both models side by side.
BY_CAMPAIGN = """
SELECT
    utm_source,
    utm_campaign,
    bool_or(is_paid)                                              AS is_paid,
    sum(first_touch_conversions)                                  AS first_touch_bookings,
    sum(last_touch_conversions)                                   AS last_touch_bookings,
    sum(first_touch_revenue)                                      AS first_touch_revenue,
    sum(last_touch_revenue)                                       AS last_touch_revenue,
    sum(spend)                                                    AS spend,
    sum(first_touch_revenue) / nullif(sum(spend), 0)              AS first_touch_roas,
    sum(last_touch_revenue) / nullif(sum(spend), 0)               AS last_touch_roas,
    sum(spend) / nullif(sum(first_touch_conversions), 0)          AS first_touch_cost_per_booking,
    sum(spend) / nullif(sum(last_touch_conversions), 0)           AS last_touch_cost_per_booking
FROM marketing.mart_campaign_performance
WHERE event_date BETWEEN ? AND ?
GROUP BY 1, 2
ORDER BY last_touch_revenue DESC, utm_source, utm_campaign
"""

# Per source over one date range, for the first/last-touch comparison chart.
BY_SOURCE = """
SELECT utm_source, 'first touch' AS model, sum(first_touch_conversions) AS bookings, sum(first_touch_revenue) AS revenue
FROM marketing.mart_campaign_performance WHERE event_date BETWEEN ? AND ? GROUP BY 1
UNION ALL
SELECT utm_source, 'last touch', sum(last_touch_conversions), sum(last_touch_revenue)
FROM marketing.mart_campaign_performance WHERE event_date BETWEEN ? AND ? GROUP BY 1
"""

# --- page --------------------------------------------------------------------------------------

MODELS = {"Last touch": "last_touch", "First touch": "first_touch"}

st.title("Marketing attribution")
version = ui.require_version()
start, end = ui.period(
    version, BOUNDS, "attribution_range", "The published campaign performance has no days yet."
)
model_label = st.radio(
    "Attribution model for the totals", list(MODELS), horizontal=True, key="attribution_model"
)
model = MODELS[model_label]
current = ui.rows(version, TOTALS.format(model=model), (start, end)).iloc[0]
before = ui.rows(version, TOTALS.format(model=model), ui.previous_period(start, end)).iloc[0]

st.caption(
    f"{start} to {end}, mart version {version}. Change against the {(end - start).days + 1} days before."
)
kpis = (
    ("Spend", "spend", ui.money, "inverse"),
    (f"Bookings ({model_label.lower()})", "bookings", ui.number, "normal"),
    (f"Revenue ({model_label.lower()})", "revenue", ui.money, "normal"),
    ("ROAS (paid campaigns)", "roas", ui.ratio, "normal"),
    ("Cost per booking (paid campaigns)", "cost_per_booking", ui.money, "inverse"),
)
for group in (kpis[:3], kpis[3:]):
    for column, (label, key, fmt, colour) in zip(st.columns(3), group, strict=False):
        column.metric(
            label, fmt(current[key]), ui.change(current[key], before[key]), delta_color=colour
        )

by_source = ui.rows(version, BY_SOURCE, (start, end, start, end))
st.subheader("First touch against last touch, by source")
st.altair_chart(
    alt.Chart(by_source)
    .mark_bar()
    .encode(
        x=alt.X("utm_source:N", sort="-y", title="utm_source", axis=alt.Axis(labelAngle=0)),
        y=alt.Y("revenue:Q"),
        color=alt.Color("model:N"),
        xOffset="model:N",
        tooltip=[
            "utm_source",
            "model",
            alt.Tooltip("bookings:Q", format=","),
            alt.Tooltip("revenue:Q", format=",.2f"),
        ],
    )
    .properties(height=280),
    width="stretch",
)

campaigns = ui.rows(version, BY_CAMPAIGN, (start, end))
paid = campaigns[campaigns["is_paid"]]
st.subheader("ROAS by campaign")
st.altair_chart(
    alt.Chart(paid.assign(campaign=paid["utm_source"] + " / " + paid["utm_campaign"]))
    .mark_bar()
    .encode(
        y=alt.Y("campaign:N", sort="-x", title=None),
        x=alt.X(f"{model}_roas:Q", title=f"ROAS ({model_label.lower()})"),
        tooltip=[
            "campaign",
            alt.Tooltip("spend:Q", format=",.2f"),
            alt.Tooltip(f"{model}_roas:Q", format=".2f"),
        ],
    )
    .properties(height=260),
    width="stretch",
)
st.subheader("By campaign")
st.dataframe(
    campaigns,
    hide_index=True,
    column_config={
        name: st.column_config.NumberColumn(name.replace("_", " "), format="%.2f")
        for name in campaigns.columns
        if name.endswith(("revenue", "spend", "roas", "per_booking"))
    },
)
