"""What the server does once, when it starts, before any browser connects: start the runner.

    app = st.App("navigation.py", lifespan=lifespan)       # app.py

Why: the runner's worker processes import torch and generate the built-in datasets when they
start, ~5 s on a 2-core laptop. Made at the first page load, as before, they began only once a
browser had asked for a page; a Run pressed soon after waited for them (the first point 3-5 s after
Run instead of 1.1-1.5 s warm: `bench/live_demo.py --first-point-only`). Made with the server, they
warm while the browser opens and loads the first page. A restarted server also takes up the runs it
left queued at once (Runner.adopt_orphans), not when someone opens a page. (The server process
itself imports torch before it listens: app.py's imports reach trainlib.)

The runner is made in a thread: the server answers its first page meanwhile, and that page's
get_runner() waits for the same runner (st.cache_resource computes a value once). A runner that
cannot be made (a bad TRAINLIB_WORKERS) is logged here and reported by the page, as before.

When the server stops, the runner leaves (Runner.leave): running runs stop, resumable, queued ones
stay queued for the next start, the worker processes end. This must happen here: uvicorn ends the
process with the signal that stopped it, after this shutdown, so no exit hook of the runner runs.
"""
from __future__ import annotations

import asyncio
import threading
from contextlib import asynccontextmanager

from streamlit.logger import get_logger

_LOGGER = get_logger(__name__)
LEAVE_TIMEOUT_S = 20.0         # for running runs to stop between two batches when the server stops
_stopping = threading.Event()   # the server is stopping: a runner made after its shutdown leaves at once


def start_runner() -> None:
    from dashboard.state import get_runner        # spawns the workers: in the thread, the server answers meanwhile
    try:
        runner = get_runner()
    except Exception as exc:                      # the first page shows it, with the page around it
        _LOGGER.warning("the runner could not be started with the server: %s", exc)
        return
    _LOGGER.info("runner started with the server: %s", runner.describe_executor())
    if _stopping.is_set():                        # made after the shutdown gave up waiting for it
        leave_runners()


def leave_runners() -> None:
    """The server's runners leave: the ones made (by the start thread or by a page), none made here."""
    from dashboard.state import made_runners
    for runner in made_runners():
        if not runner.leave(LEAVE_TIMEOUT_S):
            _LOGGER.warning("a run did not stop within %.0f s of the server stopping", LEAVE_TIMEOUT_S)


@asynccontextmanager
async def lifespan(app):
    _stopping.clear()
    starting = threading.Thread(target=start_runner, name="trainlib-start-runner", daemon=True)
    starting.start()
    try:
        yield
    finally:
        await asyncio.to_thread(starting.join, LEAVE_TIMEOUT_S)   # a runner being made, then leaves
        _stopping.set()                           # still being made (a slow Ray cluster): it leaves when made
        await asyncio.to_thread(leave_runners)
