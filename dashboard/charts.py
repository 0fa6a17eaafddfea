"""A Plotly chart that stays on the page and takes new points in place.

    charts.show(fig, key="curves_sweep_lr", config=figures.chart_config("loss"))

Why not st.plotly_chart: its element's identity hashes the figure, so a chart with one more epoch
is a new element. On each redraw of a live page the browser threw the old chart away, built a new
one from scratch and laid it out twice, for every chart that gained a point, while the class's
runs trained on the same cores. Here the element keeps its key and its plot: new data reach the
same <div>, where `Plotly.react` changes only what differs. It also gives the exported PNG, the
modebar and the figure exactly what the figure says (theme=None before), with the plotly.js that
ships with the installed plotly package, the version the figures are written for.

plotly.js (4.8 MB) is served by app.py at PLOTLY_JS_ROUTE, from the plotly package, and loaded once
per browser tab with a <script> tag: by the first chart, or earlier by `load_ahead()`. The URL
carries plotly's version, so the browser may keep it.

    charts.load_ahead()     # navigation.py, on every page: once per tab, when the browser is idle

Why load ahead: a tab's first chart comes in class while runs train (Run switches to the Runs page;
a Runs tab left open gets its first chart when a sweep starts); loading plotly.js then (fetch, parse,
run 4.8 MB: ~1 s of a core on a 2-core laptop) competed with the training, and the first point came
~1 s later than it had to (the shapes preset: 2.1-2.4 s after Run, 1.0-1.6 s with it loaded ahead;
`bench/live_demo.py --first-point-only`). Loaded while the teacher picks a preset or talks, it
costs nothing anyone waits for.
"""
from __future__ import annotations

import json
from pathlib import Path

import plotly
import plotly.graph_objects as go
import plotly.io as pio
import streamlit as st
from starlette.requests import Request
from starlette.responses import FileResponse, Response

PLOTLY_JS_FILE = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
PLOTLY_JS_ROUTE = f"/_trainlib/plotly-{plotly.__version__}.min.js"

# One loader per tab, whoever asks first (a chart, or the preload while idle): a promise of
# window.Plotly kept on window, dropped on failure so that a later call tries again.
LOADER_JS = """
function loadPlotly(url) {
  if (window.Plotly) return Promise.resolve(window.Plotly);
  if (!window.__trainlibPlotly) {
    window.__trainlibPlotly = new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = url;
      script.async = true;
      script.onload = () => {
        if (!window.Plotly) { window.__trainlibPlotly = null; script.remove(); reject(new Error("plotly.js ran without defining Plotly: " + url)); return; }
        window.__trainlibChartsLoaded = true;
        resolve(window.Plotly);
      };
      script.onerror = () => { window.__trainlibPlotly = null; script.remove(); reject(new Error("plotly.js did not load: " + url)); };
      document.head.appendChild(script);
    });
  }
  return window.__trainlibPlotly;
}
"""

# Streamlit calls the function again with new `data` (the same element, the same parentElement)
# without running the previous call's cleanup; it runs the cleanup the last call returned when the
# element goes. So the module keeps each element's plot and its latest figure: draws go one after
# another, and a draw skips to the newest figure when several came while plotly.js was busy.
# - What the viewer changed (a zoom, a run hidden from the legend) stays as points arrive, and only
#   then: the figure's uirevision is its structure (the traces' names, the axes' types and titles),
#   so other runs, another x axis or a log scale start afresh.
# - Width follows the element (a sidebar opened, a window resized); the height is the figure's,
#   the whole screen in full screen (the modebar's button, for the projector).
# - plotly.js not loaded (the server gone, a proxy): the element says so and tries again.
_CHART_JS = LOADER_JS + """
const charts = new Map();   // parentElement -> chart state
const RETRY_MS = [2000, 5000, 15000, 30000];
const FULL_SCREEN_ICON = { width: 24, height: 24,
  path: "M3 3h7v2H5v5H3zm11 0h7v7h-2V5h-5zM3 14h2v5h5v2H3zm16 0h2v7h-7v-2h5z" };

function structure(figure) {
  const layout = figure.layout || {};
  const axes = Object.keys(layout).filter(k => /^[xy]axis\\d*$/.test(k)).sort()
    .map(k => [k, layout[k].type || "", JSON.stringify((layout[k].title || {}).text || layout[k].title || "")]);
  return JSON.stringify([(figure.data || []).map(t => [t.type || "", t.name || ""]), axes]);
}

function fullScreenSize(chart) {
  return document.fullscreenElement === chart.gd ? { width: window.innerWidth, height: window.innerHeight } : {};
}

function configOf(chart, data) {
  // The same object while the page's config is the same: Plotly.react redraws the whole plot for a
  // config that differs (a new button's click function would).
  const key = JSON.stringify(data.config || {});
  if (chart.configKey === key) return chart.config;
  // plotly.js 4 offers "Share chart..." (an upload to Plotly Cloud) unless told not to: a class's
  // runs stay on the laptop.
  const config = { showSendToCloud: false, displaylogo: false, ...(data.config || {}) };
  if (config.displayModeBar !== false && chart.gd.requestFullscreen) {
    config.modeBarButtonsToAdd = [...(config.modeBarButtonsToAdd || []), {
      name: "fullscreen", title: "Full screen", icon: FULL_SCREEN_ICON,
      click: () => (document.fullscreenElement ? document.exitFullscreen() : chart.gd.requestFullscreen()),
    }];
  }
  chart.configKey = key;
  chart.config = config;
  return config;
}

async function drawLatest(chart) {
  if (chart.drawing || !chart.latest) return;
  chart.drawing = true;
  let Plotly;
  try {
    Plotly = await loadPlotly(chart.latest.plotly_url);
  } catch (error) {
    chart.drawing = false;
    chart.notice.textContent = "This chart's code (plotly.js) did not load; trying again. " + error.message;
    const delay = RETRY_MS[Math.min(chart.retries++, RETRY_MS.length - 1)];
    clearTimeout(chart.retry);
    chart.retry = setTimeout(() => drawLatest(chart), delay);
    return;
  }
  chart.notice.textContent = "";
  chart.retries = 0;
  while (chart.latest && chart.drawn !== chart.latest) {
    const data = chart.latest;
    try {
      const figure = data.figure;
      chart.figureSize = { width: (figure.layout || {}).width, height: (figure.layout || {}).height };
      const layout = { uirevision: structure(figure), ...(figure.layout || {}), ...fullScreenSize(chart) };
      await Plotly.react(chart.gd, figure.data || [], layout, configOf(chart, data));
    } catch (error) {
      console.error("trainlib chart", error);     // this figure only: the next one is drawn
    }
    chart.drawn = data;
  }
  chart.drawing = false;
  resizeIfNeeded(chart);
}

function resizeIfNeeded(chart) {
  // A width change during a draw is applied after it; a hidden element (width 0) waits to be shown.
  const width = Math.round(chart.box.getBoundingClientRect().width);
  if (chart.drawing || !chart.drawn || !window.Plotly || width === 0 || width === chart.width) return;
  chart.width = width;
  window.Plotly.Plots.resize(chart.gd).catch(() => {});
}

export default function ({ data, parentElement }) {
  let chart = charts.get(parentElement);
  if (!chart) {
    const box = document.createElement("div");
    const notice = document.createElement("div");
    notice.setAttribute("role", "status");
    const gd = document.createElement("div");
    gd.className = "trainlib-chart";
    box.append(notice, gd);
    parentElement.appendChild(box);
    chart = { box, notice, gd, latest: null, drawn: null, drawing: false, retries: 0, retry: null,
              width: Math.round(box.getBoundingClientRect().width) };
    chart.observer = new ResizeObserver(() => resizeIfNeeded(chart));
    chart.observer.observe(box);
    chart.onFullScreen = () => {
      // Only the chart that goes full screen, or comes back from it.
      const full = document.fullscreenElement === gd;
      if (full === Boolean(chart.full)) return;
      chart.full = full;
      if (!chart.drawn || !window.Plotly) return;
      const size = full ? fullScreenSize(chart)
        : { width: chart.figureSize.width ?? null, height: chart.figureSize.height ?? null };
      window.Plotly.relayout(gd, size).catch(() => {});
    };
    document.addEventListener("fullscreenchange", chart.onFullScreen);
    chart.cleanup = cleanupOf(chart, parentElement);
    charts.set(parentElement, chart);
  }
  const cleanup = chart.cleanup;
  try {
    chart.latest = JSON.parse(new TextDecoder().decode(data));   // show()'s bytes: {figure, config, plotly_url}
  } catch (error) {
    console.error("trainlib chart: not a figure", error);
    return cleanup;
  }
  drawLatest(chart);
  return cleanup;
}

function cleanupOf(chart, parentElement) {
  return () => {
    chart.latest = null;
    clearTimeout(chart.retry);
    chart.observer.disconnect();
    document.removeEventListener("fullscreenchange", chart.onFullScreen);
    charts.delete(parentElement);
    if (window.Plotly) window.Plotly.purge(chart.gd);
    chart.box.remove();
  };
}
"""
# isolate_styles=False: plotly.js puts its modebar and hover styles in the document's <head>, which
# a shadow root would keep out.
COMPONENT_NAME = "trainlib_chart"
_chart = st.components.v2.component(COMPONENT_NAME, js=_CHART_JS, isolate_styles=False)


def show(fig: go.Figure | dict, *, key: str, config: dict | None = None) -> None:
    """Draw `fig` in the element `key`; the next script run's figure under the same key updates it in
    place. `config`: plotly.js's (the modebar, the PNG export: figures.chart_config)."""
    _chart(key=key, data=payload(fig, config))


def payload(fig: go.Figure | dict, config: dict | None = None) -> bytes:
    """What the browser gets: the JSON object {"config", "plotly_url", "figure"} as bytes, the figure's
    JSON (plotly's, validate=False as st.plotly_chart: the figures are built unvalidated on purpose)
    put in as it is. Bytes, because a dict would have Streamlit serialise the figure's JSON again,
    as an escaped string, and hash a sorted copy of it, at every redraw (~50 ms on Compare's 50 runs)."""
    head = json.dumps({"config": config or {}, "plotly_url": PLOTLY_JS_ROUTE})
    return (head[:-1] + ', "figure": ' + pio.to_json(fig, validate=False) + "}").encode()


# Once per tab, when the browser is idle, never an error (a failed load is retried by the first chart);
# `__trainlibChartsLoaded` then tells a test or the benchmark that plotly.js is there.
_LOAD_AHEAD_JS = LOADER_JS + """
export default function ({ data }) {
  if (window.Plotly || window.__trainlibPlotly) return;
  const load = () => loadPlotly(data.plotly_url).catch(() => {});
  if (window.requestIdleCallback) window.requestIdleCallback(load, { timeout: 2000 });
  else setTimeout(load, 0);
}
"""
_loader = st.components.v2.component("trainlib_chart_preload", js=_LOAD_AHEAD_JS)


def load_ahead() -> None:
    """Have the browser load plotly.js now, while idle (an element with no content)."""
    _loader(key="trainlib_chart_preload", data={"plotly_url": PLOTLY_JS_ROUTE})


async def plotly_js_endpoint(request: Request) -> Response:
    """GET PLOTLY_JS_ROUTE: the installed plotly package's plotly.min.js; the version is in the URL, so
    the browser may keep it for good."""
    # Content-Encoding identity: Streamlit's middleware would gzip the 4.8 MB file at level 9 for each
    # new browser, on the laptop that trains; it serves its own /static files uncompressed too.
    return FileResponse(PLOTLY_JS_FILE, media_type="text/javascript",
                        headers={"Cache-Control": "public, max-age=31536000, immutable",
                                 "Content-Encoding": "identity"})
