"""Training runs lab: build training scenarios, run them in the background, compare their curves.

    streamlit run app.py          # app.py serves this script; runs folder: $TRAINLIB_RUNS_DIR or ./runs

The script every page runs through: page navigation and the sidebar every page shares. Pages live
in pages/; what the server does once, at start, is in app.py.
"""
from __future__ import annotations

import functools

import streamlit as st

from dashboard import charts, watch
from dashboard.shell import SHELL_RAN
from dashboard.state import get_runner
from dashboard.text import plain
from trainlib.device import describe_device

st.set_page_config(page_title="Training runs lab", layout="wide")
st.session_state[SHELL_RAN] = True

navigation = st.navigation([
    st.Page("pages/new_experiment.py", title="New experiment", icon=":material/science:", default=True),
    st.Page("pages/live.py", title="Runs", icon=":material/monitoring:"),
    st.Page("pages/compare.py", title="Compare", icon=":material/compare_arrows:"),
    st.Page("pages/run_detail.py", title="Run detail", icon=":material/description:"),
    st.Page("pages/lr_finder.py", title="LR finder", icon=":material/trending_down:"),
])

# These pages watch the runs folder themselves (dashboard/watch.py) and redraw the whole app, this
# sidebar included, when a run's state changes: a second poller there would only cost CPU.
SELF_WATCHING = ("live", "compare")          # url paths of pages/live.py and pages/compare.py

runner = get_runner()
device = st.cache_resource(show_spinner=False)(describe_device)()
runs = runner.store.list_runs()
still_interrupted = set(runs.loc[runs["state"] == "interrupted", "run_id"]) if not runs.empty else set()
interrupted = [run_id for run_id in runner.interrupted_at_start if run_id in still_interrupted]


def training_now(counts: tuple[int, int] | None = None) -> None:
    """The sidebar's live count."""
    running, queued = counts or watch.training_counts(runner.store)
    st.markdown(f"**Training now**  \n{running} running · {queued} queued")


@st.fragment
def training_now_watched() -> None:
    """The count, redrawn alone when it changes: the browser asks every second while runs move,
    every three seconds otherwise (a tab left open learns of runs another tab or a terminal starts)."""
    counts = watch.training_counts(runner.store)
    training_now(counts)
    moving = runner.busy() or any(counts)
    watch.rerun_on_change(functools.partial(watch.training_counts, runner.store), counts,
                          watch.ACTIVE_EVERY if moving else watch.IDLE_EVERY, key="sidebar")


with st.sidebar:
    st.markdown(f"**Device**  \n{device}")
    st.markdown(f"**Runs folder**  \n`{runner.store.root.resolve()}`")
    st.markdown(f"**Workers**  \n{runner.workers} run{'s' if runner.workers != 1 else ''} at a time: "
                f"{plain(runner.describe_executor())}")
    if navigation.url_path in SELF_WATCHING:
        # The page will redraw when the folder moved since this version, taken before the count is
        # read: a state that changes between the two is in the count, or seen by the page's next poll.
        watch.remember_version(runner.store)
        training_now()
    else:
        # Elsewhere the count watches on its own, and redraws only itself.
        training_now_watched()
    if interrupted:
        n = len(interrupted)
        st.warning(f"{n} run{'s were' if n != 1 else ' was'} found interrupted when the dashboard started "
                   f"(its process had stopped). Resume {'them' if n != 1 else 'it'} on the Runs page.",
                   icon=":material/restart_alt:")
        st.page_link("pages/live.py", label="Go to Runs", icon=":material/monitoring:")
    # Every page but New experiment shows charts, and Run leads from there to one: the browser loads
    # plotly.js once per tab while idle, not at a tab's first chart, which in class comes while runs
    # train (~1 s of a core on a 2-core laptop).
    charts.load_ahead()

navigation.run()
