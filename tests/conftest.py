"""Shared fixtures: every test runs offline, on the CPU, with its own runs folder.

    def test_x(tiny_spec, runs_dir): spec = tiny_spec(epochs=3); ...
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:          # `pytest` as well as `python -m pytest` from anywhere
    sys.path.insert(0, str(ROOT))


@pytest.fixture(autouse=True)
def _offline_with_tmp_runs(tmp_path, monkeypatch):
    """No test may reach the network or write into the repository's runs/ folder."""
    monkeypatch.setenv("TRAINLIB_OFFLINE", "1")
    monkeypatch.setenv("TRAINLIB_RUNS_DIR", str(tmp_path / "runs"))


@pytest.fixture(scope="session")
def bench():
    """bench/live_demo.py as a module (a script outside the package): its pure parts and its Server."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("trainlib_live_demo", ROOT / "bench" / "live_demo.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def runs_dir(tmp_path) -> Path:
    """The folder TRAINLIB_RUNS_DIR points at in this test."""
    return tmp_path / "runs"


@pytest.fixture
def no_download(monkeypatch):
    """torchvision's MNIST download fails at once (a closed local port) instead of trying the internet."""
    from torchvision import datasets
    monkeypatch.setattr(datasets.MNIST, "mirrors", ["http://127.0.0.1:9/"])


@pytest.fixture
def tiny_spec():
    """A factory of specs that train in a fraction of a second on a CPU (moons, 256 samples, 16 units)."""
    from trainlib import ScenarioSpec

    def make(**changes):
        fields = dict(name="tiny", dataset="moons", train_subset=256, hidden_sizes=(16,), epochs=2,
                      batch_size=32, lr=1e-2, device="cpu")
        fields.update(changes)
        return ScenarioSpec(**fields)

    return make


@pytest.fixture
def polling(monkeypatch) -> list:
    """How the app polls, in order: the `every` of each watch.rerun_on_change that a page, a fragment
    or navigation.py makes (its browser asks the server that often) and the run_every of any
    st.fragment that reruns by itself. (Imports streamlit only for the tests that ask for it: the
    engine tests run without the UI.)"""
    import streamlit as st
    from dashboard import watch
    calls = []
    real_fragment, real_watch = st.fragment, watch.rerun_on_change

    def fragment_spy(func=None, *, run_every=None, **kwargs):
        if run_every is not None:
            calls.append(run_every)
        return real_fragment(func, run_every=run_every, **kwargs)

    def watch_spy(version_now, drawn, every, *args, **kwargs):
        calls.append(every)
        return real_watch(version_now, drawn, every, *args, **kwargs)

    monkeypatch.setattr(st, "fragment", fragment_spy)
    monkeypatch.setattr(watch, "rerun_on_change", watch_spy)
    return calls
