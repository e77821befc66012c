"""The dashboards: a Streamlit app over the published Parquet snapshot (``searchflow dashboard``).

``app.py`` is the entrypoint (navigation only), ``pages/`` holds one module per page with its SQL
at the top, ``data.py`` is the one place that reads data, and ``ui.py`` the widgets pages share.
The app never opens the warehouse file, so it can never block ingestion or transformation.
"""

from pathlib import Path

APP = Path(__file__).resolve().parent / "app.py"
