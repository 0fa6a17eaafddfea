"""The chart element that updates in place (dashboard/charts.py): what it hands the browser, the
plotly.js it serves, and that a new point keeps the element (its key), not a new one.
The browser test checks that New experiment has the browser load plotly.js ahead."""
from __future__ import annotations

import asyncio
import json

import plotly
import plotly.graph_objects as go
from starlette.requests import Request
from streamlit.testing.v1 import AppTest

import apphelpers
from dashboard import charts


def test_the_route_serves_the_plotly_js_of_the_installed_plotly_package():
    assert plotly.__version__ in charts.PLOTLY_JS_ROUTE     # a new plotly: a new URL, no stale cache
    request = Request({"type": "http", "method": "GET", "path": charts.PLOTLY_JS_ROUTE, "headers": []})
    answer = asyncio.run(charts.plotly_js_endpoint(request))
    assert answer.status_code == 200 and answer.path == charts.PLOTLY_JS_FILE
    assert answer.headers["content-type"].startswith("text/javascript")
    assert "immutable" in answer.headers["cache-control"]
    assert b"plotly.js v" in charts.PLOTLY_JS_FILE.read_bytes()[:200]    # plotly.js itself


def _page() -> None:
    # A page with one chart, as the pages draw theirs; the second script run has one point more.
    import plotly.graph_objects as go
    import streamlit as st
    from dashboard import charts
    points = st.session_state.get("points", 3)
    charts.show(go.Figure(go.Scatter(x=list(range(points)), y=[1.0 / (i + 1) for i in range(points)])),
                key="curves", config={"displayModeBar": False})
    st.session_state["points"] = points + 1


def test_a_chart_with_a_new_point_is_the_same_element_with_new_data():
    at = AppTest.from_function(_page).run()
    (first,) = apphelpers.charts(at)
    element_id = at.get("bidi_component")[0].proto.id
    assert first["key"] == "curves" and first["config"] == {"displayModeBar": False}
    assert len(first["figure"]["data"][0]["x"]) == 3
    at.run()
    (second,) = apphelpers.charts(at)
    # Same identity, new points: Streamlit keys a component by its key alone (key_as_main_identity),
    # which is what lets the browser keep the element and its plot; that the plot itself stays, with
    # the new point, is checked in a real browser (test_browser.py, the background-tab test).
    assert at.get("bidi_component")[0].proto.id == element_id
    assert len(second["figure"]["data"][0]["x"]) == 4


def test_a_figure_reaches_the_browser_as_plotly_json_with_the_plotly_js_url(monkeypatch):
    sent = []
    fig = go.Figure(go.Bar(x=["a", "b"], y=[1, 2]), layout={"title": {"text": "t"}, "height": 300})
    monkeypatch.setattr(charts, "_chart", lambda **kwargs: sent.append(kwargs))
    charts.show(fig, key="k")
    charts.show(fig.to_plotly_json(), key="k2", config={"displaylogo": False})   # a dict works too
    assert [s["key"] for s in sent] == ["k", "k2"]
    messages = [json.loads(call["data"]) for call in sent]       # bytes of one JSON object
    for message in messages:
        figure = message["figure"]
        assert figure["layout"]["title"]["text"] == "t" and figure["layout"]["height"] == 300
        assert list(figure["data"][0]["x"]) == ["a", "b"]
        assert message["plotly_url"] == charts.PLOTLY_JS_ROUTE
    assert messages[0]["config"] == {} and messages[1]["config"] == {"displaylogo": False}


def test_load_ahead_mounts_the_loader_with_the_plotly_js_url(monkeypatch):
    mounted = []
    monkeypatch.setattr(charts, "_loader", lambda **kwargs: mounted.append(kwargs))
    charts.load_ahead()
    assert mounted == [{"key": "trainlib_chart_preload", "data": {"plotly_url": charts.PLOTLY_JS_ROUTE}}]
