"""Training runs lab: build training scenarios, run them in the background, compare their curves.

    streamlit run app.py          # runs folder: $TRAINLIB_RUNS_DIR or ./runs (the CLI's too)

The entry point: page navigation and the sidebar every page shares. Pages live in pages/.
"""
from __future__ import annotations

import streamlit as st

from dashboard import progress
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

runner = get_runner()
device = st.cache_resource(show_spinner=False)(describe_device)()
rows = progress.progress_rows(runner.store.list_runs(), live_ids=runner.live_ids())
active = runner.busy() or progress.any_active(rows)
still_interrupted = set(rows.loc[rows["state"] == "interrupted", "run_id"]) if not rows.empty else set()
interrupted = [run_id for run_id in runner.interrupted_at_start if run_id in still_interrupted]


@st.fragment(run_every="1s" if active else "3s")
def training_now() -> None:
    """The sidebar's live count. It polls even when nothing runs (a few stats every 3 s), so a tab
    left open learns of runs another tab or a terminal starts; it redraws only itself."""
    now = progress.progress_rows(runner.store.list_runs(), live_ids=runner.live_ids())
    counts = progress.count_states(now)
    st.markdown(f"**Training now**  \n{counts.get('running', 0)} running · {counts.get('queued', 0)} queued")


with st.sidebar:
    st.markdown(f"**Device**  \n{device}")
    st.markdown(f"**Runs folder**  \n`{runner.store.root.resolve()}`")
    st.markdown(f"**Workers**  \n{runner.workers} run{'s' if runner.workers != 1 else ''} at a time: "
                f"{plain(runner.describe_executor())}")
    training_now()
    if interrupted:
        n = len(interrupted)
        st.warning(f"{n} run{'s were' if n != 1 else ' was'} found interrupted when the dashboard started "
                   f"(its process had stopped). Resume {'them' if n != 1 else 'it'} on the Runs page.",
                   icon=":material/restart_alt:")
        st.page_link("pages/live.py", label="Go to Runs", icon=":material/monitoring:")

navigation.run()
