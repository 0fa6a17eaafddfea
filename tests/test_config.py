"""The server settings a classroom relies on (.streamlit/config.toml, read by `streamlit run app.py`)."""
from __future__ import annotations

import tomllib
from pathlib import Path

CONFIG = Path(__file__).resolve().parents[1] / ".streamlit" / "config.toml"


def test_server_settings_for_a_classroom():
    config = tomllib.loads(CONFIG.read_text())
    assert config["server"]["address"] == "127.0.0.1"          # opened to a network only on purpose
    assert config["server"]["fileWatcherType"] == "none"       # run data never makes the server watch
    assert config["client"]["showErrorDetails"] == "type"      # no tracebacks with server paths to browsers
    assert config["client"]["toolbarMode"] == "minimal"
