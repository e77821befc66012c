"""Pipeline health: batches by state, gate outcomes, dead letters by reason, sync runs with their
latency and errors, and the freshness of each source. Reads the ledger export and crm.sync_runs."""

from datetime import datetime, time

import altair as alt
import pandas as pd
import streamlit as st

from searchflow.contract import STAGES
from searchflow.dashboard import data, ui

# --- SQL: everything this page shows, over the ledger export (published/ops) --------------------

BOUNDS = "SELECT cast(min(created_at) AS date) AS first_day, cast(max(created_at) AS date) AS last_day FROM ops.batches"

# Batches per stage and state, created in the range.
BATCHES_BY_STATE = """
SELECT stage, state, count(*) AS batches
FROM ops.batches
WHERE cast(created_at AS date) BETWEEN ? AND ?
GROUP BY ALL
ORDER BY stage, state
"""

# Gate outcomes per stage ('not gated' while a batch waits for its gate).
GATE_OUTCOMES = """
SELECT stage, coalesce(gate_outcome, 'not gated') AS outcome, count(*) AS batches
FROM ops.batches
WHERE cast(created_at AS date) BETWEEN ? AND ?
GROUP BY ALL
ORDER BY stage, outcome
"""

# Batches a gate held back, newest first, with the gate's reasons.
HELD = """
SELECT batch_id, stage, source, created_at, gate_outcome, gate_reasons
FROM ops.batches
WHERE state = 'held' AND cast(created_at AS date) BETWEEN ? AND ?
ORDER BY created_at DESC
LIMIT 50
"""

# Dead letters by reason and source, landed in the range.
DEAD_LETTERS = """
SELECT reason, source, sum(dead_letters) AS dead_letters
FROM ops.dead_letters
WHERE ingested_date BETWEEN ? AND ?
GROUP BY ALL
ORDER BY dead_letters DESC
"""

# The latest event and landing per source and event type.
FRESHNESS = """
SELECT source, event_type, events, latest_event_time, latest_ingested_at
FROM ops.freshness
ORDER BY source, event_type
"""

# Mart publications in the range.
PUBLICATIONS = """
SELECT version, published_at, forced
FROM ops.publish_log
WHERE cast(published_at AS date) BETWEEN ? AND ?
ORDER BY published_at DESC
"""

# --- page --------------------------------------------------------------------------------------

STATES = ("published", "held", "landed", "discarded")
STATE_COLOURS = alt.Scale(domain=list(STATES), range=["#2e7d32", "#c62828", "#f9a825", "#757575"])
OUTCOME_COLOURS = alt.Scale(
    domain=["passed", "forced", "failed", "errored", "not gated"],
    range=["#2e7d32", "#6a1b9a", "#c62828", "#ef6c00", "#9e9e9e"],
)


def batches_by_stage(frame: pd.DataFrame, split: str, colours: alt.Scale) -> alt.Chart:
    """Bars of batches per stage, stacked by ``split`` (the state or the gate outcome)."""
    return (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            x=alt.X("stage:N", sort=list(STAGES), axis=alt.Axis(labelAngle=0)),
            y=alt.Y("batches:Q"),
            color=alt.Color(f"{split}:N", scale=colours),
            tooltip=["stage", split, "batches"],
        )
        .properties(height=240)
    )


st.title("Pipeline health")
version = data.version()
st.caption(f"Serving mart version {version or '(none yet)'}.")
if not data.available(version, "ops.batches"):
    st.info(
        "No ledger export yet (published/ops/batches.parquet): it is written after the first "
        "stage run. Run `searchflow run` or the served chain."
    )
    st.stop()

start, end = ui.period(version, BOUNDS, "health_range", "The ledger has no batches yet.", ops=True)
window = (start, end)

states = ui.rows(version, BATCHES_BY_STATE, window, ops=True)
totals = states.groupby("state")["batches"].sum()
columns = st.columns(4)
for column, state in zip(columns, STATES, strict=True):
    column.metric(f"Batches {state}", ui.number(totals.get(state, 0)))

left, right = st.columns(2)
with left:
    st.subheader("Batches by state")
    st.altair_chart(batches_by_stage(states, "state", STATE_COLOURS), width="stretch")
with right:
    st.subheader("Gate outcomes")
    outcomes = ui.rows(version, GATE_OUTCOMES, window, ops=True)
    st.altair_chart(batches_by_stage(outcomes, "outcome", OUTCOME_COLOURS), width="stretch")

held = ui.rows(version, HELD, window, ops=True)
if not held.empty:
    st.subheader("Held batches")
    st.dataframe(held, hide_index=True)

st.subheader("Dead letters by reason")
if data.available(version, "ops.dead_letters"):
    dead = ui.rows(version, DEAD_LETTERS, window, ops=True)
    if dead.empty:
        st.success("No dead letters in this range.")
    else:
        st.altair_chart(
            alt.Chart(dead)
            .mark_bar()
            .encode(
                y=alt.Y("reason:N", sort="-x"),
                x=alt.X("dead_letters:Q"),
                color="source:N",
                tooltip=["reason", "source", alt.Tooltip("dead_letters:Q", format=",")],
            )
            .properties(height=220),
            width="stretch",
        )
else:
    st.info("No dead-letter export yet.")

st.subheader("Freshness of each source")
if data.available(version, "ops.freshness"):
    fresh = ui.rows(version, FRESHNESS, ops=True)
    now = data.now()
    fresh["landed_ago"] = (now - fresh["latest_ingested_at"]).astype(str).str.split(".").str[0]
    st.table(fresh)
else:
    st.info("No freshness export yet.")

st.subheader("Sync runs")
url = data.postgres_url()
runs, problem = data.sync_runs(url, datetime.combine(start, time.min))
if problem:
    st.warning(
        f"Sync history unavailable: {problem}. Set SEARCHFLOW_POSTGRES_URL to the sync destination."
    )
elif runs.empty:
    st.info("No sync run in this range.")
else:
    runs = runs[runs["started_at"].dt.date <= end]
    failed = runs[runs["error"].notna() | (runs["status"] == "failed")]
    columns = st.columns(3)
    columns[0].metric("Sync runs", ui.number(len(runs)))
    columns[1].metric("Failed sync runs", ui.number(len(failed)))
    columns[2].metric(
        "Median latency (s)",
        f"{runs['seconds'].median():.2f}" if runs["seconds"].notna().any() else "–",
    )
    st.altair_chart(
        alt.Chart(runs)
        .mark_circle(size=60)
        .encode(
            x=alt.X("started_at:T", title="started (UTC)", axis=alt.Axis(format="%m-%d %H:%M")),
            y=alt.Y("seconds:Q", title="latency (s)"),
            color="sync:N",
            shape="status:N",
            tooltip=["sync", "status", "started_at:T", "seconds:Q", "read:Q", "error:N"],
        )
        .properties(height=240),
        width="stretch",
    )
    st.dataframe(runs, hide_index=True)

publications = (
    ui.rows(version, PUBLICATIONS, window, ops=True)
    if data.available(version, "ops.publish_log")
    else None
)
if publications is not None and not publications.empty:
    st.subheader("Mart publications")
    st.dataframe(publications, hide_index=True)
