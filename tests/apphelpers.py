"""Helpers for the page tests: the app under AppTest, with a fresh runner per test.

    def test_x(app_runs):                 # app_runs: the runs folder of this test (TRAINLIB_RUNS_DIR)
        at = open_app("pages/live.py")    # navigation.py, then switch to that page
        runner = current_runner()         # the very Runner the pages use (st.cache_resource)

The conftest's autouse fixture already sets TRAINLIB_OFFLINE=1 and a tmp TRAINLIB_RUNS_DIR.
AppTest runs a page reached by switch_page on its own, without navigation.py: look at the shared sidebar
on the first page of an open_app() (a real server runs navigation.py around every page).
"""
from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from dashboard.charts import COMPONENT_NAME as CHART_COMPONENT

APP = Path(__file__).resolve().parents[1] / "navigation.py"
TIMEOUT = 60


@pytest.fixture
def app_runs(monkeypatch, runs_dir):
    """One worker, a fresh Runner for this test, and every run ended before the tmp folder goes."""
    monkeypatch.setenv("TRAINLIB_WORKERS", "1")
    fresh_app_cache()
    yield runs_dir
    fresh_app_cache()


def fresh_app_cache() -> None:
    """st.cache_resource.clear(), after shutting down the runners this process still has (the cached
    one's worker processes would otherwise live on, idle, until pytest exits)."""
    from trainlib.runner import live_runners
    for runner in live_runners():
        runner.shutdown(wait=True)
    st.cache_resource.clear()


def current_runner():
    from dashboard.state import get_runner
    return get_runner()


def open_app(page: str | None = None) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    assert not at.exception, [e.value for e in at.exception]
    if page:
        at.switch_page(page).run()
        assert not at.exception, [e.value for e in at.exception]
    return at


def button(at: AppTest, label_start: str):
    matches = [b for b in at.button if b.label.startswith(label_start)]
    assert matches, f"no button starting {label_start!r}; buttons: {[b.label for b in at.button]}"
    return matches[0]


def texts(elements) -> list[str]:
    """What a reader sees: the elements' Markdown with its backslash escapes (dashboard.text.plain) undone."""
    return [re.sub(r"\\(.)", r"\1", str(e.value)) for e in elements]


def charts(at: AppTest) -> list[dict]:
    """Every chart the page drew (dashboard/charts.py), in page order: {"key", "figure", "config"}."""
    out = []
    for element in at.get("bidi_component"):
        if element.proto.component_name == CHART_COMPONENT:
            data = json.loads(element.proto.bytes)          # dashboard.charts.payload()
            out.append({"key": element.key, "figure": data["figure"], "config": data["config"]})
    return out


def chart_specs(at: AppTest) -> list[dict]:
    return [chart["figure"] for chart in charts(at)]


def wait_until(condition, timeout: float = 30.0, every: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(every)
