"""Compare runs: choose some, watch their curves side by side, see what differs and how they ended.

    st.Page("pages/compare.py", title="Compare")      # registered by app.py

Inputs (which runs, x axis), guard, then a fragment that draws everything from the run folders.
The fragment polls every second while a chosen run is queued or running, so curves grow live,
and stops polling (one full rerun) when the last of them ends.
"""
from __future__ import annotations

from dashboard.shell import run_through_app

run_through_app()      # first, before the engine's imports (see dashboard/shell.py)

import streamlit as st
from streamlit.errors import StreamlitPageNotFoundError

from dashboard import figures, tables
from dashboard.state import SELECTED_RUN, get_runner
from dashboard.text import plain
from trainlib.data import task_of
from trainlib.store import ACTIVE_STATES, STATES


POLL_EVERY = "1s"
X_CHOICES = {"epoch": "Epoch", "wall": "Wall time"}
MODES = ("Sweep", "Tag", "State", "Pick by hand")
COMPARE_SWEEP = "compare_sweep"      # set by the Runs page with the sweep to open

store = get_runner().store
runs = store.list_runs()

st.title("Compare runs")

if runs.empty:
    st.info("No runs yet. Start some on the **New experiment** page, or from a terminal with "
            "`python -m trainlib sweep ...`; they appear here.")
    st.stop()

# ----------------------------------------------------------------------------- inputs
all_sweeps = tables.sweeps(runs)
by_id = runs.set_index("run_id", drop=False)


def describe(run_id: str) -> str:
    row = by_id.loc[run_id]
    return f"{row['name']} · {row['state']} · {run_id}"


# Widget values live in session state (set here before the widgets, never as their default), so a
# hand-off can set them and runs that were deleted meanwhile drop out of a kept choice.
newest_first = list(runs.sort_values("run_id", ascending=False)["run_id"])
state = st.session_state
state.setdefault("compare_mode", "Sweep" if all_sweeps else "Pick by hand")
state.setdefault("compare_sweeps", all_sweeps[:1])
state.setdefault("compare_tags", [])
state.setdefault("compare_states", ["finished"])
state.setdefault("compare_runs", tables.default_run_ids(runs))
state.setdefault("compare_x", "epoch")
state["compare_sweeps"] = [s for s in state["compare_sweeps"] if s in all_sweeps]
state["compare_runs"] = [r for r in state["compare_runs"] if r in by_id.index]
# A hand-off from the Runs page ("Compare" on a sweep): a session key, or ?sweep= in the address.
handed_sweep = state.pop(COMPARE_SWEEP, None)
asked_sweep = st.query_params.get("sweep")
if not handed_sweep and asked_sweep and state.get("compare_sweep_applied") != asked_sweep:
    handed_sweep = asked_sweep
if handed_sweep in all_sweeps:
    state["compare_mode"], state["compare_sweeps"] = "Sweep", [handed_sweep]
    state["compare_sweep_applied"] = handed_sweep

mode = st.segmented_control("Choose runs by", MODES, key="compare_mode", required=True) or "Pick by hand"
if mode == "Sweep":
    chosen_sweeps = st.multiselect("Sweeps (newest first)", all_sweeps, key="compare_sweeps",
                                   placeholder="Choose one or more sweeps" if all_sweeps else "No sweep yet")
    chosen_ids = list(tables.filter_runs(runs, sweeps=chosen_sweeps)["run_id"])
elif mode == "Tag":
    chosen_tags = st.multiselect("Tags", tables.tags(runs), key="compare_tags", placeholder="Choose one or more tags")
    chosen_ids = list(tables.filter_runs(runs, tags=chosen_tags)["run_id"])
elif mode == "State":
    chosen_states = st.multiselect("States", STATES, key="compare_states")
    chosen_ids = list(tables.filter_runs(runs, states=chosen_states)["run_id"])
else:
    chosen_ids = st.multiselect("Runs (newest first)", newest_first, format_func=describe, key="compare_runs",
                                placeholder="Choose runs")

x_axis = st.segmented_control("x axis", list(X_CHOICES), format_func=X_CHOICES.get, key="compare_x",
                              required=True) or "epoch"

# ----------------------------------------------------------------------------- guard
if not chosen_ids:
    st.info("No runs chosen. Pick a sweep, a tag or a state above, or choose runs by hand.")
    st.stop()

if len(chosen_ids) > len(figures.PALETTE):
    st.warning(f"{len(chosen_ids)} runs: colours repeat after {len(figures.PALETTE)}. "
               "The panels per run stay unambiguous.")

chosen = tables.select(runs, chosen_ids)
live = bool(chosen["state"].isin(ACTIVE_STATES).any())
any_classes = any(task_of(str(d)) != "regression" for d in chosen["dataset"])


def plot(fig, name: str) -> None:
    # theme=None: the figure's own projector layout (fonts, palette) is what the PNG export shows too.
    st.plotly_chart(fig, theme=None, config=figures.chart_config(name), key=f"compare_chart_{name}")


def open_run_detail(run_id: str) -> None:
    st.session_state[SELECTED_RUN] = run_id
    try:
        st.switch_page("pages/run_detail.py")
    except StreamlitPageNotFoundError:      # this page runs on its own, without app.py's navigation
        st.info(f"Run {plain(run_id)} selected: open the Run detail page to see it.")


# ----------------------------------------------------------------------------- render
@st.fragment(run_every=POLL_EVERY if live else None)
def show_comparison(run_ids: list[str], x: str, was_live: bool) -> None:
    fresh = tables.select(store.list_runs(), run_ids)
    if fresh.empty:
        st.warning("The chosen runs are gone from the runs folder.")
        return
    still_live = fresh[fresh["state"].isin(ACTIVE_STATES)]
    if was_live and still_live.empty:
        st.rerun()          # the last live run ended: a full rerun turns polling off
    names = tables.unique_names(fresh)
    colors = figures.run_colors(fresh["run_id"])
    raw_metrics = store.load_metrics(list(fresh["run_id"]))
    metrics = tables.with_names(raw_metrics, names)
    named_runs = tables.with_names(fresh, names)

    if not still_live.empty:
        progress = ", ".join(f"{names[r.run_id]} {r.state} {r.epoch}/{r.epochs}" for r in still_live.itertuples())
        st.caption(f"Updating every second while runs train: {plain(progress)}")

    st.subheader("Training curves")
    overlay_tab, panels_tab = st.tabs(["All runs in one chart", "One panel per run"])
    with overlay_tab:
        plot(figures.curves_overlay(metrics, "loss", x, colors), "loss")
        if any_classes:
            plot(figures.curves_overlay(metrics, "acc", x, colors), "accuracy")
    with panels_tab:
        plot(figures.curves_small_multiples(metrics, "loss", x, colors), "loss_per_run")
        if any_classes:
            plot(figures.curves_small_multiples(metrics, "acc", x, colors), "accuracy_per_run")

    st.subheader("Results")
    left, right = st.columns(2)
    with left:
        plot(figures.test_accuracy_bars(named_runs, colors), "test_accuracy")
    with right:
        plot(figures.overfitting_gap(metrics, x, colors), "overfitting_gap")

    table = tables.comparison_table(named_runs, raw_metrics)
    params = tables.differing_params(fresh)
    st.markdown("**Side by side** — click a column header to sort, a row to open that run"
                + (f"; differing: {', '.join(params)}" if params else ""))
    percent = {"format": "percent"}
    event = st.dataframe(
        table, hide_index=True, width="stretch", on_select="rerun", selection_mode="single-row",
        key="compare_table",
        column_config={
            "run_id": st.column_config.TextColumn("run id"),
            "name": st.column_config.TextColumn("run", pinned=True),
            "final_train_loss": st.column_config.NumberColumn("train loss", format="%.4f"),
            "final_val_loss": st.column_config.NumberColumn("val loss", format="%.4f"),
            "final_train_acc": st.column_config.NumberColumn("train acc", **percent),
            "final_val_acc": st.column_config.NumberColumn("val acc", **percent),
            "best_val_loss": st.column_config.NumberColumn("best val loss", format="%.4f"),
            "best_epoch": st.column_config.NumberColumn("best epoch"),
            "test_acc": st.column_config.NumberColumn("test acc", **percent),
            "epochs_done": st.column_config.NumberColumn("epochs"),
            "seconds": st.column_config.NumberColumn("seconds", format="%.1f"),
        },
        column_order=["name", "state", *params, "test_acc", "final_train_loss", "final_val_loss",
                      "final_train_acc", "final_val_acc", "best_val_loss", "best_epoch", "epochs_done",
                      "seconds", "run_id"])
    rows = event.selection.rows if event is not None else []
    if rows:
        picked = table.iloc[rows[0]]
        if st.button(f"Open “{picked['name']}” in Run detail", key="compare_open_detail"):
            open_run_detail(picked["run_id"])

    if params and fresh["test_acc"].notna().sum() >= 2:
        plot(figures.parallel_coordinates(named_runs, params), "parallel_coordinates")
    else:
        st.caption("Parallel coordinates appear when two or more finished runs differ in some parameter.")

    st.download_button("Download these runs' metrics (CSV)", data=raw_metrics.to_csv(index=False),
                       file_name="metrics.csv", mime="text/csv", on_click="ignore", key="compare_csv")


show_comparison(list(chosen["run_id"]), x_axis, live)
