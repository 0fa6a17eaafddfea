"""Process-wide objects shared by every page and every browser tab.

    runner = get_runner()        # one Runner per server process (st.cache_resource)
    store = runner.store

The runs folder comes from $TRAINLIB_RUNS_DIR (default ./runs), the same one the CLI uses.
"""
from __future__ import annotations

import os
import weakref

import streamlit as st

from trainlib.data import mirrors_reachable
from trainlib.executors import default_executor
from trainlib.runner import Runner
from trainlib.store import default_runs_dir

WORKERS_ENV = "TRAINLIB_WORKERS"
# Keys of st.session_state that carry a hand-off from one page to another.
PREFILL_SPEC = "prefill_spec"          # dict of ScenarioSpec fields: "clone and edit", lr finder result
SELECTED_RUN = "selected_run"          # run_id shown by the run detail page


_MADE: "weakref.WeakSet[Runner]" = weakref.WeakSet()   # the runners made in this process and still held


@st.cache_resource(show_spinner=False)
def _runner_for(runs_dir: str, workers: int | None, executor: str, ray_address: str | None) -> Runner:
    # Created once per server process, with its warm worker processes. Runs a stopped server left
    # queued are its to run now (adopt_orphans); a terminal's live queue is left to the terminal.
    runner = Runner(runs_dir, workers=workers, executor=executor, ray_address=ray_address)
    _MADE.add(runner)
    runner.adopt_orphans()
    return runner


def get_runner() -> Runner:
    workers = os.environ.get(WORKERS_ENV)
    return _runner_for(str(default_runs_dir().resolve()), int(workers) if workers else None,
                       default_executor(), os.environ.get("RAY_ADDRESS") or None)


def made_runners() -> list[Runner]:
    """The runners get_runner() made in this process (none before the first call), without making one."""
    return list(_MADE)


@st.cache_data(ttl=300, show_spinner=False)
def online() -> bool:
    """Whether the dataset mirrors answer (cached five minutes)."""
    return mirrors_reachable()
