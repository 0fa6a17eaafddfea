"""Runs: every run in the runs folder, newest first, grouped by sweep, with progress and controls.

Top to bottom: what to show -> guard (no runs yet) -> the runs panel, which polls every second
while anything is queued or running and not at all otherwise. Buttons: Stop (a running run, wherever it
trains), Cancel (a queued one), Resume (interrupted or stopped), Compare (a finished sweep), Details.
"""
from __future__ import annotations

from dashboard.shell import run_through_app

run_through_app()      # first, before the engine's imports (see dashboard/shell.py)

import streamlit as st

from dashboard import progress
from dashboard.live_figures import live_loss_figure
from dashboard.state import SELECTED_RUN, get_runner
from dashboard.text import plain
from trainlib.dataroot import data_root_errors


FLASH = "runs_flash"               # set by New experiment after queueing
PROBLEM = "runs_problem"           # why the last button could not act (a double click, a run gone)
COMPARE_SWEEP = "compare_sweep"    # the sweep the Compare page opens with (pages/compare.py reads it)
RECENT_GROUPS = 8                  # groups shown unless "Show all" is on (active ones always are)
runner = get_runner()

st.title("Runs")
if FLASH in st.session_state:
    st.success(st.session_state.pop(FLASH), icon=":material/check_circle:")
show_all = st.toggle("Show all runs", key="runs_show_all", help=f"otherwise the {RECENT_GROUPS} newest groups "
                     "and every group with a queued or running run", persist_state="session")

first_rows = progress.progress_rows(runner.store.list_runs(), live_ids=runner.live_ids())
if first_rows.empty:
    st.info("No runs yet. Build some on the New experiment page; runs started from a terminal "
            "(`python -m trainlib ...`) into the same runs folder show up here too.")
    st.page_link("pages/new_experiment.py", label="New experiment", icon=":material/science:")
    st.stop()
active = runner.busy() or progress.any_active(first_rows)


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
    name_col, bar_col, action_col, detail_col = st.columns([2.5, 6, 1.6, 1.6], vertical_alignment="center")
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


def render_group(title: str, sweep: str | None, group, metrics) -> None:
    with st.container(border=True):
        head, compare_col = st.columns([5, 1], vertical_alignment="center")
        head.markdown(f"### {plain(title)}\n{progress.summary_text(group)}")
        if sweep and progress.sweep_finished(group):
            if compare_col.button("Compare", key=f"compare_{sweep}", type="primary", icon=":material/compare_arrows:",
                             width="stretch"):
                open_compare(sweep)
        for row in group.to_dict("records"):
            render_run(row)
        curves = metrics[metrics["run_id"].isin(group["run_id"])] if not metrics.empty else metrics
        if progress.any_active(group) and not curves.empty:
            # theme=None: the figure's own projector layout (large fonts), as on the Compare page.
            st.plotly_chart(live_loss_figure(curves), key=f"curves_{sweep or title}", theme=None,
                            config={"displayModeBar": False})


@st.fragment(run_every="1s" if active else None)
def runs_panel() -> None:
    if PROBLEM in st.session_state:      # set by a button's callback just before this (fragment) rerun
        st.warning(st.session_state.pop(PROBLEM), icon=":material/warning:")
    runs, snapshot, live_ids = runner.store.list_runs(), runner.snapshot(), runner.live_ids()
    rows = progress.progress_rows(runs, snapshot, live_ids=live_ids)
    groups = progress.group_runs(rows)
    # Curves and ETAs come from metrics.csv: of every run of a sweep that is still moving (its finished
    # runs give the running ones context), and of the single runs that are themselves moving.
    moving_ids = [run["run_id"] for _, sweep, group in groups if progress.any_active(group)
                  for run in group.to_dict("records") if sweep or run["state"] in ("queued", "running")]
    metrics = runner.store.load_metrics(moving_ids)
    if moving_ids:
        per_run = {run_id: frame for run_id, frame in metrics.groupby("run_id")}
        rows = progress.progress_rows(runs, snapshot, per_run, live_ids=live_ids)
        groups = progress.group_runs(rows)
    # Polling follows activity: start it when a run was queued or resumed here, stop it when all
    # ended. Decide before drawing: a button drawn by this fragment run would be replaced by the full
    # rerun a moment later, and a click that lands in between is lost (the sweep's Compare button
    # appears exactly when the activity ends).
    if (runner.busy() or progress.any_active(rows)) != active:
        st.rerun()
    shown = groups if show_all else [g for i, g in enumerate(groups) if i < RECENT_GROUPS or progress.any_active(g[2])]
    for title, sweep, group in shown:
        render_group(title, sweep, group, metrics)
    if len(shown) < len(groups):
        st.caption(f"{len(groups) - len(shown)} older groups hidden; turn on 'Show all runs' to see them.")


runs_panel()
