"""Training runs lab: build training scenarios, run them in the background, compare their curves.

    streamlit run app.py          # runs folder: $TRAINLIB_RUNS_DIR or ./runs (the CLI's too)

The server: Streamlit's app (st.App) serving navigation.py, the script every page runs through, with
- what must happen once when the server starts and stops (dashboard/startup.py): the runner and its
  worker processes are made at start, not at the first page load, so they are warm when Run is
  first pressed, and end with the server;
- the route a page's browser polls to learn whether the runs folder moved (dashboard/watch.py): a
  few stats, where a Streamlit script run would make the browser re-render the whole page;
- plotly.js, for the charts that take new points in place (dashboard/charts.py).
"""
from __future__ import annotations

import streamlit as st
from starlette.routing import Route

from dashboard import charts, watch
from dashboard.startup import lifespan

app = st.App("navigation.py", lifespan=lifespan,
             routes=[Route(watch.CHANGED_ROUTE, watch.changed_endpoint, methods=["GET"]),
                     Route(charts.PLOTLY_JS_ROUTE, charts.plotly_js_endpoint, methods=["GET"])])
