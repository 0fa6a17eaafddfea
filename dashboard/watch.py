"""Redraw a page when the runs folder changed, and only then.

    version = watch.runs_version(store, run_ids)        # before the page reads anything
    ... draw the page from the store ...
    watch.rerun_on_change(lambda: watch.runs_version(store, run_ids), version, active)

Why: a page that redraws itself every second costs the server the whole page per open tab per
second (every chart rebuilt and sent again), and on a laptop that also trains, the class watches
training slow down. Here each tab polls a *version* of the runs folder: the cached run list (one
stat per file of each run; a file is parsed again only when it changed) plus the size and time of
each run's metrics.csv. The page is drawn again only when that version moved: a new run, a new
epoch, a state change. A tab with nothing running keeps polling, slowly, so it learns of runs that
another tab or a terminal started.
"""
from __future__ import annotations

import os
from typing import Callable, Hashable, Iterable

import streamlit as st

from trainlib.store import RunStore

ACTIVE_EVERY = "0.5s"     # while a run is queued or running: a new epoch shows within half a second
IDLE_EVERY = "2s"         # nothing moving: notice a run started elsewhere within two seconds
_SEEN = "watch_seen_version"


def _metrics_stamp(folder: str) -> tuple[int, int] | None:
    try:
        stat = os.stat(os.path.join(folder, "metrics.csv"))
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


def runs_version(store: RunStore, run_ids: Iterable[str] | None = None) -> Hashable:
    """What a page shows of the runs folder, as a comparable value: every run's id, state, epoch and
    test accuracy, and the stamp of metrics.csv of `run_ids` (None: of every run). Heartbeats are
    left out on purpose: they rewrite status.json every few seconds and change nothing on screen."""
    runs = store.list_runs()
    if runs.empty:
        return ()
    watched = set(runs["run_id"]) if run_ids is None else set(run_ids)
    root = str(store.root)
    return tuple(
        (run_id, state, epoch, None if test_acc != test_acc else test_acc,    # NaN != NaN
         _metrics_stamp(os.path.join(root, run_id)) if run_id in watched else None)
        for run_id, state, epoch, test_acc in zip(runs["run_id"], runs["state"], runs["epoch"], runs["test_acc"]))


def rerun_on_change(version_now: Callable[[], Hashable], drawn: Hashable, active: bool, key: str = "page") -> None:
    """Poll version_now() (every ACTIVE_EVERY while `active`, else IDLE_EVERY) and rerun the whole
    page when it differs from `drawn`, the version the page was drawn from. Call it once per page
    run, after drawing; it draws nothing itself."""
    st.session_state[f"{_SEEN}_{key}"] = drawn

    @st.fragment(run_every=ACTIVE_EVERY if active else IDLE_EVERY)
    def watcher() -> None:
        if version_now() != st.session_state.get(f"{_SEEN}_{key}"):
            st.rerun(scope="app")

    watcher()
