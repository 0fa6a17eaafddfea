"""Have the browser load the charting code before the first chart needs it.

    preload.charts_ahead()        # on a page without charts, from which Run leads to one

Why: Streamlit's frontend loads plotly.js (one 4.7 MB module) only when a page first shows a chart.
In class the first chart is the one Run switches to: the browser then fetched, parsed and ran that
module while the runs trained on the same cores, and the first point came ~1 s later than it had to
(the shapes preset, 2-core laptop: 2.1-2.4 s after Run, 1.0-1.6 s with the module loaded ahead;
`bench/live_demo.py --first-point-only`). New experiment asks for it while the teacher picks a
preset, when the browser has nothing else to do.

How: the frontend imports its chart element lazily, from a module file beside its main bundle;
importing that same URL earlier puts the module in the page's module map, where the frontend's own
import finds it. The file's name carries a hash that changes with each Streamlit release, so it is
looked up in the installed package. Not found (another layout): nothing is loaded ahead, and the
first chart loads plotly.js itself, as before.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import streamlit as st

# Where the installed frontend keeps its modules, and the name of its chart element's module.
FRONTEND_MODULES = Path(st.__file__).parent / "static" / "static" / "js"
CHART_MODULE_GLOB = "PlotlyChart.*.js"

# The main bundle's <script> gives the base URL: the chart module is imported relative to it, so
# this import and the frontend's resolve to one URL, i.e. one module. Once per page load (the
# module map lasts as long as the document), when the browser is idle, and never an error;
# `__trainlibChartsLoaded` then tells a test or the benchmark that the module is there.
_PRELOAD_JS = """
export default function ({ data }) {
  const module = data && data.module;
  const main = document.querySelector('script[type="module"][src*="/static/js/index."]');
  if (!module || !main || window.__trainlibChartsLoading) return;
  window.__trainlibChartsLoading = true;
  const load = () => import(new URL(module, main.src).href)
    .then(() => { window.__trainlibChartsLoaded = true; }, () => {});
  if (window.requestIdleCallback) window.requestIdleCallback(load, { timeout: 2000 });
  else setTimeout(load, 0);
}
"""
_preloader = st.components.v2.component("trainlib_chart_preload", js=_PRELOAD_JS)


@lru_cache(maxsize=1)
def chart_module() -> str | None:
    """The file name of the frontend's chart module ('PlotlyChart.<hash>.js'), None if not exactly one."""
    found = sorted(FRONTEND_MODULES.glob(CHART_MODULE_GLOB))
    return found[0].name if len(found) == 1 else None


def charts_ahead() -> None:
    """Mount the loader (an element with no content); it does nothing when the module is not known."""
    module = chart_module()
    if module:
        _preloader(key="trainlib_chart_preload", data={"module": module})
