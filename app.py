"""Training runs lab: build training scenarios, run them in the background, compare their curves.

    streamlit run app.py          # runs folder: $TRAINLIB_RUNS_DIR or ./runs (the CLI's too)

The server: Streamlit's app (st.App) serving navigation.py, the script every page runs through,
with what must happen once when the server starts (dashboard/startup.py): the runner and its worker
processes are made then, not at the first page load, so they are warm when Run is first pressed.
"""
from __future__ import annotations

import streamlit as st

from dashboard.startup import lifespan

app = st.App("navigation.py", lifespan=lifespan)
