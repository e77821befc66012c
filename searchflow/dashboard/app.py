"""Entrypoint of ``searchflow dashboard``: the page list, nothing else.

Each page is its own module under ``pages/`` and its own URL (``/funnel``, ``/attribution``, ...).
"""

from pathlib import Path

import streamlit as st

PAGES = Path(__file__).resolve().parent / "pages"

st.set_page_config(page_title="SearchFlow", layout="wide")
page = st.navigation(
    [
        st.Page(
            PAGES / "overview.py", title="Executive overview", url_path="overview", default=True
        ),
        st.Page(PAGES / "funnel.py", title="Search funnel", url_path="funnel"),
        st.Page(PAGES / "attribution.py", title="Marketing attribution", url_path="attribution"),
        st.Page(PAGES / "segments.py", title="User segments", url_path="segments"),
        st.Page(PAGES / "health.py", title="Pipeline health", url_path="health"),
    ]
)
page.run()
