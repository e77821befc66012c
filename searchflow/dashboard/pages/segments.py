"""User segments: the distribution today, the distribution over time (SCD2 snapshot), who moved
from which segment to which per period, and the top users by lifetime value."""

import altair as alt
import pandas as pd
import streamlit as st

from searchflow.dashboard import data, ui

# --- SQL: everything this page shows, over the segment marts ------------------------------------

SEGMENTS = ("power", "regular", "engaged", "casual", "dormant")

# The whole history: from the first user's first event to the snapshot's latest build.
BOUNDS = """
SELECT
    least(
        (SELECT cast(min(first_seen_at) AS date) FROM marketing.mart_user_segments),
        (SELECT min(as_of_date) FROM marketing.mart_segment_history)
    )                                                           AS first_day,
    (SELECT max(as_of_date) FROM marketing.mart_segment_history) AS last_day
"""
# Before the snapshot's first build: the days the users were seen.
SEEN = """
SELECT cast(min(first_seen_at) AS date) AS first_day, cast(max(last_seen_at) AS date) AS last_day
FROM marketing.mart_user_segments
"""

# Today's distribution: users per segment in the served mart, as of its build.
TODAY = """
SELECT segment, count(*) AS users, sum(lifetime_value) AS lifetime_value, max(as_of) AS as_of
FROM marketing.mart_user_segments
GROUP BY segment
"""

# The distribution at the first snapshot build on or after a day (the start of the range).
AS_OF = """
SELECT as_of, segment, users
FROM marketing.mart_segment_history
WHERE as_of = (SELECT min(as_of) FROM marketing.mart_segment_history WHERE as_of_date >= ?)
"""

# The distribution at each snapshot build in the range.
HISTORY = """
SELECT as_of, segment, users
FROM marketing.mart_segment_history
WHERE as_of_date BETWEEN ? AND ?
ORDER BY as_of, segment
"""

# Moves between segments recorded in the range, per period ({grain}: week or month); a user's
# first version comes from '(new)'.
TRANSITIONS = """
SELECT
    date_trunc('{grain}', transition_date) AS period,
    from_segment,
    to_segment,
    count(*)                               AS users
FROM marketing.mart_segment_transitions
WHERE transition_date BETWEEN ? AND ?
GROUP BY ALL
ORDER BY period, from_segment, to_segment
"""

# The users with the highest lifetime value.
TOP_USERS = """
SELECT user_id, segment, lifetime_value, total_conversions AS bookings, total_searches AS searches,
       first_seen_at, last_seen_at
FROM marketing.mart_user_segments
ORDER BY lifetime_value DESC, user_id
LIMIT ?
"""

# --- page --------------------------------------------------------------------------------------

st.title("User segments")
version = ui.require_version()
today = ui.rows(version, TODAY).set_index("segment").reindex(list(SEGMENTS))
as_of = today["as_of"].dropna().max()
as_of_text = "–" if pd.isna(as_of) else f"{pd.Timestamp(as_of):%Y-%m-%d %H:%M}"
st.caption(
    f"Today's distribution as of the latest event time {as_of_text}, mart version {version}."
)

has_history = data.available(version, "marketing.mart_segment_history") and data.available(
    version, "marketing.mart_segment_transitions"
)
bounds = ui.rows(version, BOUNDS if has_history else SEEN).iloc[0]
picked = ui.date_range(bounds.first_day, bounds.last_day, key="segments_range")
if not has_history:
    picked = None
start_users = None
if picked is not None:
    start, end = picked
    at_start = ui.rows(version, AS_OF, (start,))
    if not at_start.empty and at_start["as_of"].max() < as_of:
        start_users = at_start.set_index("segment")["users"]
        st.caption(
            f"Change against the distribution recorded on {at_start['as_of'].max():%Y-%m-%d}, "
            "the first snapshot build in the range."
        )
for column, segment in zip(st.columns(len(SEGMENTS)), SEGMENTS, strict=True):
    users = today.loc[segment, "users"]
    users = 0 if users != users else users  # a segment nobody is in
    before = None if start_users is None else start_users.get(segment, 0)
    column.metric(segment, ui.number(users), ui.change(users, before) if before else None)

st.altair_chart(
    alt.Chart(today.reset_index().fillna({"users": 0}))
    .mark_bar()
    .encode(
        x=alt.X("segment:N", sort=list(SEGMENTS), axis=alt.Axis(labelAngle=0)),
        y=alt.Y("users:Q"),
        color=alt.Color("segment:N", sort=list(SEGMENTS), legend=None),
        tooltip=["segment", alt.Tooltip("users:Q", format=",")],
    )
    .properties(height=240),
    width="stretch",
)

st.subheader("Distribution over time")
if picked is None:
    st.info("The segment snapshot has not recorded any build yet.")
else:
    history = ui.rows(version, HISTORY, (start, end))
    builds = history["as_of"].nunique()
    over_time = alt.Chart(history).encode(
        x=alt.X("as_of:T", title="as of", axis=alt.Axis(format="%Y-%m-%d")),
        y=alt.Y("users:Q", stack="normalize", title="share of users"),
        color=alt.Color("segment:N", sort=list(SEGMENTS)),
        tooltip=[alt.Tooltip("as_of:T"), "segment", alt.Tooltip("users:Q", format=",")],
    )
    st.altair_chart(
        (over_time.mark_area() if builds > 1 else over_time.mark_bar(size=60)).properties(
            height=260
        ),
        width="stretch",
    )
    if builds < 2:
        st.caption("One snapshot build so far: the history grows with every published transform.")

    st.subheader("Transitions")
    grain = st.radio("Period", ["week", "month"], horizontal=True, key="segments_grain")
    moves = ui.rows(version, TRANSITIONS.format(grain=grain), (start, end))
    periods = sorted(moves["period"].dropna().unique())
    choice = st.selectbox(
        "Transitions in",
        ["the whole range", *[str(p)[:10] for p in periods]],
        key="segments_period",
    )
    if choice != "the whole range":
        moves = moves[moves["period"].astype(str).str[:10] == choice]
    include_new = st.checkbox("Include new users", value=False, key="segments_new")
    if not include_new:
        moves = moves[moves["from_segment"] != "(new)"]
    matrix = moves.groupby(["from_segment", "to_segment"], as_index=False)["users"].sum()
    if matrix.empty:
        st.info("No user changed segment in this period.")
    else:
        order = ["(new)", *SEGMENTS]
        base = alt.Chart(matrix).encode(
            x=alt.X("to_segment:N", sort=order, title="to", axis=alt.Axis(labelAngle=0)),
            y=alt.Y("from_segment:N", sort=order, title="from"),
        )
        st.altair_chart(
            (
                base.mark_rect().encode(
                    color=alt.Color("users:Q"), tooltip=["from_segment", "to_segment", "users"]
                )
                + base.mark_text().encode(
                    text=alt.Text("users:Q", format=","),
                    # dark cells get light text
                    color=alt.condition(
                        alt.datum.users > matrix["users"].max() / 2,
                        alt.value("white"),
                        alt.value("black"),
                    ),
                )
            ).properties(height=280),
            width="stretch",
        )

st.subheader("Top users by lifetime value")
top = ui.rows(version, TOP_USERS, (20,))
st.dataframe(
    top,
    hide_index=True,
    column_config={"lifetime_value": st.column_config.NumberColumn(format="%.2f")},
)
