"""Redraw a page when what it shows of the runs folder changed, and only then.

    drawn = watch.runs_version(store)                  # first, before the page reads anything
    ... draw the page from the store ...
    watch.rerun_on_change(lambda: watch.runs_version(store), drawn, every, watched=run_ids)

Why: a page that redraws itself every second costs the server the whole page per open tab per
second (every chart rebuilt and sent again), and on a laptop that also trains, the class watches
training slow down. Here each tab polls a *version* of the runs folder: the cached run list (one
stat per file of each run; a file is parsed again only when it changed) plus the stamp of each
run's metrics.csv. The page is drawn again only when the part of that version it shows moved: its
runs' epochs, states and results, or the set of runs (a new run, another state to filter by). A tab
with nothing running keeps polling, slowly, so it learns of runs another tab or a terminal started.

A tab the browser does not show (another tab in front of it, a minimised window) is not redrawn:
on a laptop that trains, its browser would lay out charts nobody sees with the CPU the training
needs. It says so through a tiny component (the page's `visibilitychange`), and redraws as soon as
it is shown again if the folder moved meanwhile.
"""
from __future__ import annotations

from typing import Callable, Collection, Hashable

import pandas as pd
import streamlit as st

from trainlib.store import ACTIVE_STATES, RunStore

FIRST_POINT_EVERY = "0.25s"  # Run was clicked and its first epoch is due: show it within a quarter second
ACTIVE_EVERY = "1s"          # runs are moving: a new epoch shows within a second
IDLE_EVERY = "3s"            # nothing moves: notice a run started elsewhere within three seconds
_SEEN = "watch_seen_version"
_REMEMBERED = "watch_version_before_sidebar"

# Reports whether the browser shows this tab; a change reruns the fragment the component sits in.
# `data` is what the server last knew: at mount it reports only a difference, so a page drawn in a
# tab that is shown asks for no extra rerun while its own run is ending (Streamlit can drop elements
# of a run that a fragment's rerun interrupts: streamlit#9188).
_VISIBILITY_JS = """
export default function ({ data, setStateValue }) {
  const report = () => setStateValue("hidden", document.visibilityState === "hidden");
  if ((document.visibilityState === "hidden") !== Boolean(data && data.hidden)) report();
  document.addEventListener("visibilitychange", report);
  return () => document.removeEventListener("visibilitychange", report);
}
"""
_tab_visibility = st.components.v2.component("trainlib_tab_visibility", js=_VISIBILITY_JS)


def tab_hidden(key: str) -> bool:
    """Whether the browser hides this tab now (False until it has said, and under AppTest)."""
    known = st.session_state.get(key)
    hidden = bool(known.get("hidden")) if hasattr(known, "get") else False
    result = _tab_visibility(key=key, data={"hidden": hidden}, default={"hidden": False},
                             on_hidden_change=lambda: None)
    return bool(getattr(result, "hidden", False))


def runs_version(store: RunStore, watched: Collection[str] | None = None) -> tuple:
    """Every run's (id, sweep, state, epoch, test accuracy, metrics.csv stamp), as a comparable value;
    the stamp (one more stat per run) only of the `watched` runs (None: of all), as narrow() keeps
    them. Heartbeats are left out on purpose: they rewrite status.json every few seconds and change
    nothing on screen."""
    runs = store.list_runs()
    if runs.empty:
        return ()
    stamped = None if watched is None else set(watched)
    return tuple(
        (run_id, sweep if isinstance(sweep, str) else None, state, int(epoch),
         None if pd.isna(test_acc) else float(test_acc),
         store.metrics_stamp(run_id) if stamped is None or run_id in stamped else None)
        for run_id, sweep, state, epoch, test_acc
        in zip(runs["run_id"], runs["sweep"], runs["state"], runs["epoch"], runs["test_acc"]))


def remember_version(store: RunStore) -> None:
    """Take the version now, for the page this script run draws (drawn_version): navigation.py calls it
    before the sidebar reads its count, so the page redraws for any change after the count's read."""
    st.session_state[_REMEMBERED] = runs_version(store)


def drawn_version(store: RunStore) -> tuple:
    """The version a page is drawn from: the one navigation.py took earlier in this script run, else now.
    Call it first, before the page reads anything."""
    remembered = st.session_state.pop(_REMEMBERED, None)
    return remembered if remembered is not None else runs_version(store)


def narrow(version: tuple, watched: Collection[str] | None) -> tuple:
    """The part of a version a page shows: everything of the `watched` runs (None: of all), and of
    the others only that they exist, their sweep and their state (what the page's choices list)."""
    if watched is None:
        return version
    watched = set(watched)
    return tuple(entry if entry[0] in watched else entry[:3] for entry in version)


def poll_every(runs: pd.DataFrame, first_point: bool = True) -> str:
    """How often a page polls, from list_runs() rows: fast while the first point after Run is due
    (first_point: the page that shows it, Runs), every second while runs move, slowly otherwise.

    The first point after Run is the first epoch of a sweep none of whose runs has one yet, or of a
    run outside a sweep. A later run of a sweep starting is one more line on a chart that is there:
    polled as any epoch. (On a 2-core laptop each redraw costs the browser a third of a second of
    CPU the training needs; a short sweep started its later runs under fast polls and was redrawn
    ten to fourteen times per tab.)"""
    if runs.empty:
        return IDLE_EVERY
    moving = runs[runs["state"].isin(ACTIVE_STATES)]
    if moving.empty:
        return IDLE_EVERY
    if first_point:
        due = moving[(moving["state"] == "running") & (moving["epoch"] == 0)]
        if (due["sweep"].isna()).any():
            return FIRST_POINT_EVERY
        started = set(runs.loc[runs["epoch"] > 0, "sweep"].dropna())
        if any(sweep not in started for sweep in due["sweep"].dropna()):
            return FIRST_POINT_EVERY
    return ACTIVE_EVERY


def rerun_on_change(version_now: Callable[[], Hashable], drawn: Hashable, every: str,
                    watched: Collection[str] | None = None, key: str = "page") -> None:
    """Poll version_now() every `every` and rerun the whole page when its part for `watched` (see
    narrow) differs from `drawn`, the version the page was drawn from; not while the browser hides
    the tab, and at once when it shows it again. Call it once per page run, after drawing; it draws
    nothing visible itself."""
    seen_key = f"{_SEEN}_{key}"
    st.session_state[seen_key] = narrow(drawn, watched)

    @st.fragment(run_every=every)
    def watcher() -> None:
        if tab_hidden(f"watch_tab_hidden_{key}"):
            return
        if narrow(version_now(), watched) != st.session_state.get(seen_key):
            st.rerun(scope="app")

    watcher()
