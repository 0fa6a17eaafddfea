"""Loading the charts' code ahead (dashboard/preload.py): it must name the module Streamlit's own
frontend imports, or it loads 4.7 MB for nothing; and where it cannot, it must do nothing.
The browser test checks that New experiment has the browser load it."""
from __future__ import annotations

import re

from dashboard import preload


def test_the_module_loaded_ahead_is_the_one_the_frontend_imports_for_a_chart():
    module = preload.chart_module()
    assert module and re.fullmatch(r"PlotlyChart\.[\w-]+\.js", module), (
        f"no single chart module in {preload.FRONTEND_MODULES}: did Streamlit change its layout?")
    main_bundles = list(preload.FRONTEND_MODULES.glob("index.*.js"))
    # The frontend imports it relative to its main bundle, by that exact name: the same URL.
    assert any(f"./{module}" in bundle.read_text(errors="replace") for bundle in main_bundles)


def test_without_a_known_chart_module_nothing_is_mounted(tmp_path, monkeypatch):
    mounted = []
    monkeypatch.setattr(preload, "_preloader", lambda **kwargs: mounted.append(kwargs))
    monkeypatch.setattr(preload, "FRONTEND_MODULES", tmp_path)
    preload.chart_module.cache_clear()
    try:
        preload.charts_ahead()
        assert mounted == []
        for name in ("PlotlyChart.aaa.js", "PlotlyChart.bbb.js"):    # two versions side by side: unsure
            (tmp_path / name).write_text("")
        preload.chart_module.cache_clear()
        preload.charts_ahead()
        assert mounted == []
        (tmp_path / "PlotlyChart.bbb.js").unlink()
        preload.chart_module.cache_clear()
        preload.charts_ahead()
        assert mounted == [{"key": "trainlib_chart_preload", "data": {"module": "PlotlyChart.aaa.js"}}]
    finally:
        preload.chart_module.cache_clear()
