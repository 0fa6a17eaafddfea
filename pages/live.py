"""Runs: every run in the runs folder, newest first, grouped by sweep, with progress and controls.

Top to bottom: what to show -> guard (no runs yet) -> one box per group (a sweep, or the single
runs): its runs' progress and buttons, and the train and validation curves of the groups that move
and of the newest ones, which stay after the runs end. Buttons: Stop (a running run, wherever it
trains), Cancel (a queued one), Resume (interrupted or stopped), Compare (a sweep with a finished
epoch: its curves grow there live), Details.

The page is drawn again only when the runs folder changed (dashboard/watch.py): a new epoch, a new
run, a state. A tab polls a cheap version of the folder: four times a second while the first point
after Run is due, every second while runs move, every three seconds otherwise, so an idle tab also
learns of runs started elsewhere; a tab the browser hides is redrawn only once shown again.
"""
from __future__ import annotations

from dashboard.shell import run_through_app

run_through_app()      # first, before the engine's imports (see dashboard/shell.py)

import functools
import time

import streamlit as st

from dashboard import charts, figures, progress, watch
from dashboard.live_figures import live_figure
from dashboard.state import SELECTED_RUN, get_runner
from dashboard.text import plain
from trainlib.dataroot import data_root_errors


FLASH = "runs_flash"               # set by New experiment after queueing
FLASH_SHOWN = "runs_flash_shown"   # (text, when it was first shown)
FLASH_SECONDS = 20
PROBLEM = "runs_problem"           # why the last button could not act (a double click, a run gone)
COMPARE_SWEEP = "compare_sweep"    # the sweep the Compare page opens with (pages/compare.py reads it)
RECENT_GROUPS = 8                  # groups shown unless "Show all" is on (active ones always are)
CHARTED_GROUPS = 3                 # the newest groups keep their curves after their runs end
runner = get_runner()
store = runner.store

st.title("Runs")
# The flash stays through the redraws of its first seconds (a new epoch redraws the page at once).
if FLASH in st.session_state:
    st.session_state[FLASH_SHOWN] = (st.session_state.pop(FLASH), time.monotonic())
flash, flash_since = st.session_state.get(FLASH_SHOWN, (None, 0.0))
if flash and time.monotonic() - flash_since < FLASH_SECONDS:
    st.success(flash, icon=":material/check_circle:")
show_all = st.toggle("Show all runs", key="runs_show_all", help=f"otherwise the {RECENT_GROUPS} newest groups "
                     "and every group with a queued or running run", persist_state="session")

def act(control, run_id: str) -> None:
    """A button's callback: runner.stop / cancel / resume, which a double click may send twice."""
    try:
        control(run_id)
    except (KeyError, ValueError) as exc:
        st.session_state[PROBLEM] = f"{run_id}: {exc}"


def resume_checked(run_id: str) -> None:
    """runner.resume, for a run whose data lie inside the server's data root (a scenario.json put in
    the runs folder could point anywhere; the dashboard reads data only inside the root)."""
    try:
        spec_fields = runner.store.read_run(run_id)["spec"]
    except (KeyError, ValueError) as exc:
        raise ValueError(f"it cannot be read: {exc}") from None
    outside = data_root_errors(spec_fields)
    if outside:
        raise ValueError("not resumed here: " + "; ".join(outside.values()))
    runner.resume(run_id)


def open_compare(sweep: str) -> None:
    # Also in the address (?sweep=NAME): a reload or a shared link opens the same sweep.
    st.session_state[COMPARE_SWEEP] = sweep
    st.switch_page("pages/compare.py", query_params={"sweep": sweep})


def open_details(run_id: str) -> None:
    st.session_state[SELECTED_RUN] = run_id
    st.switch_page("pages/run_detail.py", query_params={"run": run_id})


def render_run(row) -> None:
    name_col, bar_col, action_col, detail_col = st.columns([2.4, 4.6, 2, 2], vertical_alignment="center")
    with name_col:
        st.markdown(f"**{plain(row['name'])}**")
        st.badge(row["state"], color=progress.STATE_COLORS.get(row["state"], "gray"))
    with bar_col:
        st.progress(float(row["fraction"]), text=progress.progress_text(row))
        if row["error"] and row["state"] in ("failed", "diverged", "interrupted"):
            st.caption(plain(row["error"][:300]))
    run_id, action = row["run_id"], row["action"]
    if action == "stop":
        action_col.button("Stop", key=f"stop_{run_id}", on_click=act, args=(runner.stop, run_id),
                          icon=":material/stop:", width="stretch")
    elif action == "cancel":
        action_col.button("Cancel", key=f"cancel_{run_id}", on_click=act, args=(runner.cancel, run_id),
                          icon=":material/close:", width="stretch")
    elif action == "resume":
        action_col.button("Resume", key=f"resume_{run_id}", on_click=act, args=(resume_checked, run_id),
                          icon=":material/play_arrow:", width="stretch",
                          help="queue it again; it continues after its last finished epoch")
    if row["state"] != "queued" and detail_col.button("Details", key=f"details_{run_id}", width="stretch"):
        open_details(run_id)


def render_group(title: str, sweep: str | None, group, metrics, runs, charted: bool) -> None:
    with st.container(border=True):
        head, compare_col = st.columns([5, 1], vertical_alignment="center")
        head.markdown(f"### {plain(title)}\n{progress.summary_text(group)}")
        # Compare as soon as a run has an epoch: its curves grow there live. Always the same kind of
        # button under the same key, so a click is never lost to a redraw that changed it.
        if sweep and progress.sweep_comparable(group):
            if compare_col.button("Compare", key=f"compare_{sweep}", type="primary", icon=":material/compare_arrows:",
                                  width="stretch"):
                open_compare(sweep)
        for row in group.to_dict("records"):
            render_run(row)
        curves = metrics[metrics["run_id"].isin(group["run_id"])] if not metrics.empty else metrics
        # A group that trains gets its chart before its first epoch ends ("No finished epochs yet"):
        # the browser loads and lays out plotly.js while the epoch runs, and the first point is
        # then only an update of a chart that is there (a second sooner on a 2-core laptop).
        if charted and (not curves.empty or progress.any_active(group)):
            in_group = runs[runs["run_id"].isin(group["run_id"])]
            in_group = in_group.set_index("run_id", drop=False).loc[list(group["run_id"])].reset_index(drop=True)
            chart = f"curves_sweep_{sweep}" if sweep else "curves_single_runs"
            # A log scale once the losses span more than two decades (a diverging lr), and from then on:
            # the next epoch must not flip it back under the class's eyes.
            log_key = f"runs_log_{chart}"
            if not st.session_state.get(log_key):
                st.session_state[log_key] = figures.loss_span_decades(curves) > figures.LOG_DECADES
            charts.show(live_figure(curves, in_group, figures.run_colors(in_group), log_y=st.session_state[log_key]),
                        key=chart, config={"displayModeBar": False})


def draw():
    """The whole panel, from the folder as it is now; returns the runs it was drawn from."""
    live_ids = runner.live_ids()
    runs, snapshot = store.list_runs(), runner.snapshot()
    rows = progress.progress_rows(runs, snapshot, live_ids=live_ids)
    if rows.empty:
        st.info("No runs yet. Build some on the New experiment page; runs started from a terminal "
                "(`python -m trainlib ...`) into the same runs folder show up here too.")
        st.page_link("pages/new_experiment.py", label="New experiment", icon=":material/science:")
        return runs
    groups = progress.group_runs(rows)
    shown = groups if show_all else [g for i, g in enumerate(groups) if i < RECENT_GROUPS or progress.any_active(g[2])]
    charted = {title for i, (title, _, group) in enumerate(shown) if i < CHARTED_GROUPS or progress.any_active(group)}
    # Curves and ETAs come from metrics.csv (read again only when it changed).
    chart_ids = [run_id for title, _, group in shown if title in charted for run_id in group["run_id"]]
    metrics = store.load_metrics(chart_ids)
    if chart_ids:
        per_run = {run_id: frame for run_id, frame in metrics.groupby("run_id")}
        rows = progress.progress_rows(runs, snapshot, per_run, live_ids=live_ids)
        groups = {title: group for title, _, group in progress.group_runs(rows)}
        shown = [(title, sweep, groups.get(title, group)) for title, sweep, group in shown]
    if PROBLEM in st.session_state:      # set by a button's callback just before this rerun
        st.warning(st.session_state.pop(PROBLEM), icon=":material/warning:")
    for title, sweep, group in shown:
        render_group(title, sweep, group, metrics, runs, title in charted)
    hidden = len(progress.group_runs(rows)) - len(shown)
    if hidden > 0:
        st.caption(f"{hidden} older groups hidden; turn on 'Show all runs' to see them.")
    return runs


# Taken before reading (navigation.py's, from before the sidebar's count): a change while drawing is seen
# at the next poll.
drawn = (watch.drawn_version(store), frozenset(runner.live_ids()))
shown_runs = draw()
# This server's runner may still hold a run whose folder says it ended: poll until it lets go.
every = watch.poll_every(shown_runs)
if runner.busy() and every == watch.IDLE_EVERY:
    every = watch.ACTIVE_EVERY
# What this page shows: the folder's runs and their epochs, and which runs this server's runner
# still holds (that decides Stop/Resume, and when a sweep is over).
watch.rerun_on_change(functools.partial(watch.runs_and_live_version, store, runner), drawn, every, key="runs")
