"""What the server does when it starts (app.py, dashboard/startup.py): the runner is made then, in a
thread, so the server answers meanwhile; a runner that cannot be made does not stop the server.
The browser test's server shows it for real (its log says the runner started before any page)."""
from __future__ import annotations

import ast
import asyncio
import signal
import threading
import time
from pathlib import Path

import pytest

from dashboard import startup

REPO = Path(__file__).resolve().parents[1]


def test_the_server_answers_while_the_runner_is_made_and_its_stop_waits_for_it(monkeypatch):
    release, made, events = threading.Event(), threading.Event(), []

    class SlowRunner:                       # importing torch and spawning workers takes seconds
        def describe_executor(self) -> str:
            return "test executor"

    def get_runner():
        release.wait(10)
        made.set()
        events.append("made")
        return SlowRunner()

    monkeypatch.setattr("dashboard.state.get_runner", get_runner)
    monkeypatch.setattr(startup, "leave_runners", lambda: events.append("left"))

    async def serve() -> None:
        async with startup.lifespan(None):
            assert not made.is_set()        # serving (this body) while the runner is still being made
            release.set()
    asyncio.run(serve())
    assert events == ["made", "left"]       # the stop waited for the runner, then it left


def test_a_runner_that_cannot_be_made_is_logged_and_the_server_goes_on(monkeypatch):
    def get_runner():
        raise ValueError("TRAINLIB_WORKERS: must be a whole number >= 1, not 'many'")

    said = []
    monkeypatch.setattr("dashboard.state.get_runner", get_runner)
    monkeypatch.setattr(startup._LOGGER, "warning", lambda message, *args: said.append(message % args))
    startup.start_runner()                  # what the thread runs: no exception escapes it
    assert len(said) == 1 and "TRAINLIB_WORKERS" in said[0]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads the process table from /proc")
def test_a_server_stopped_by_sigterm_leaves_no_worker_process_behind(tmp_path, bench):
    """uvicorn ends the process with the signal after its shutdown: no exit hook runs, so the
    server's shutdown must end the runner's workers itself (Runner.leave)."""
    server = bench.Server(tmp_path, tmp_path / "runs", workers=2)        # `streamlit run app.py`, answering
    try:
        deadline = time.monotonic() + 90
        while "runner started with the server" not in server.log_path.read_text():
            assert server.process.poll() is None and time.monotonic() < deadline, server.log_path.read_text()[-2000:]
            time.sleep(0.2)
        workers = bench.process_tree(server.pid)[1:]
        assert len(workers) >= 2                # two worker processes (and multiprocessing's tracker)
        server.process.send_signal(signal.SIGTERM)
        server.process.wait(timeout=60)
        deadline = time.monotonic() + 30
        while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = [pid for pid in workers if _alive(pid)]
        log = server.log_path.read_text()
    finally:
        server.stop()                           # its process group: nothing is left to the next test
    assert not left, f"processes left behind by the server: {left}\n{log[-2000:]}"
    assert "leaked" not in log                  # no semaphores left to the resource tracker


def test_app_py_is_the_server_of_the_navigation_script_with_that_lifespan():
    """`streamlit run app.py` finds an st.App named `app` in it (streamlit's app discovery), serving
    navigation.py with the lifespan and the poll route."""
    from streamlit.web.server.app_discovery import discover_asgi_app

    found = discover_asgi_app(REPO / "app.py")
    assert found.is_asgi_app and found.app_name == "app"
    tree = ast.parse((REPO / "app.py").read_text())
    call = next(node for node in ast.walk(tree) if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "App")
    assert call.args[0].value == "navigation.py" and (REPO / "navigation.py").is_file()
    assert [keyword.arg for keyword in call.keywords] == ["lifespan", "routes"]
    source = (REPO / "app.py").read_text()
    assert "watch.CHANGED_ROUTE, watch.changed_endpoint" in source     # the route the browsers poll
    assert "charts.PLOTLY_JS_ROUTE, charts.plotly_js_endpoint" in source   # plotly.js for the charts
