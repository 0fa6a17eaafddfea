"""Compare runs: choose some, watch their curves side by side, see what differs and who won.

    st.Page("pages/compare.py", title="Compare")      # registered by navigation.py

Inputs (which runs, x axis, log scale, seeds grouped), guard, then everything drawn from the run
folders: curves, the test accuracies with the winner named, the verdicts against the baseline (is
a difference larger than what the seed alone changes?), the class's guess, the table. The page is
drawn again only when the runs folder changed (dashboard/watch.py): curves grow as epochs end, a
sweep's new runs join, and an idle tab still notices runs started elsewhere.

A run has one colour and one place in every chart and on every page (figures.run_colors and
tables.run_order, by its sweep and its variant's position there).
"""
from __future__ import annotations

from dashboard.shell import run_through_app

run_through_app()      # first, before the engine's imports (see dashboard/shell.py)

import functools
import hashlib
import json

import streamlit as st
from streamlit.errors import StreamlitPageNotFoundError

from dashboard import charts, figures, tables, watch
from dashboard.state import SELECTED_RUN, get_runner
from dashboard.text import plain
from trainlib import repeats
from trainlib.data import task_of
from trainlib.predictions import read_predictions
from trainlib.store import ACTIVE_STATES, STATES


X_CHOICES = {"epoch": "Epoch", "wall": "Wall time"}
MODES = ("Sweep", "Tag", "State", "Pick by hand")
COMPARE_SWEEP = "compare_sweep"      # set by the Runs page with the sweep to open

store = get_runner().store
drawn = watch.drawn_version(store)         # before reading: a change while drawing is seen at the next poll
runs = store.list_runs()

st.title("Compare runs")

if runs.empty:
    st.info("No runs yet. Start some on the **New experiment** page, or from a terminal with "
            "`python -m trainlib sweep ...`; they appear here.")
    watch.rerun_on_change(functools.partial(watch.runs_version, store), drawn, watch.IDLE_EVERY, key="compare")
    st.stop()

# ----------------------------------------------------------------------------- inputs
all_sweeps = tables.sweeps(runs)
by_id = runs.set_index("run_id", drop=False)


labels = {run_id: f"{name} · {state} · {run_id}" for run_id, name, state in zip(runs["run_id"], runs["name"], runs["state"])}


def describe(run_id: str) -> str:
    return labels.get(run_id, run_id)


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
# What the class chose, rather than the runs it gives: a sweep that gains runs stays the same choice.
choice = {"Sweep": state["compare_sweeps"], "Tag": state["compare_tags"], "State": state["compare_states"]}.get(
    mode, sorted(chosen_ids))

x_col, log_col, seeds_col = st.columns([2, 2, 3], vertical_alignment="bottom")
x_axis = x_col.segmented_control("x axis", list(X_CHOICES), format_func=X_CHOICES.get, key="compare_x",
                                 required=True) or "epoch"

# ----------------------------------------------------------------------------- guard
if not chosen_ids:
    st.info("No runs chosen. Pick a sweep, a tag or a state above, or choose runs by hand.")
    watch.rerun_on_change(functools.partial(watch.runs_version, store), drawn, watch.IDLE_EVERY, key="compare")
    st.stop()

chosen = tables.in_run_order(tables.select(runs, chosen_ids))
any_classes = any(task_of(str(d)) != "regression" for d in chosen["dataset"])
names = tables.unique_names(chosen)
colors = figures.run_colors(chosen)
raw_metrics = store.load_metrics(list(chosen["run_id"]))
metrics = tables.with_names(raw_metrics, names)
# Runs that differ only by their seed share a variant (one sweep's, never across sweeps): the
# figures group and the table names by it.
named_runs = tables.with_names(chosen.assign(variant=repeats.group_labels(chosen)), names)
variant_rows = repeats.variant_table(chosen)
has_repeats = bool(len(variant_rows)) and int(variant_rows["runs"].max()) > 1
# The results charts count what the verdicts count: an older run of a seed run again is left out.
superseded = repeats.superseded_run_ids(chosen, variant_rows)
result_runs = named_runs[~named_runs["run_id"].isin(superseded)] if superseded else named_runs

# A log scale by default when the losses span more than two decades (one diverging lr flattens the
# rest), switched on once when they first do and never switched by the page again (the class's own
# choice stays); kept per choice of runs (a sweep, a tag... not its runs, which grow while it trains).
selection = json.dumps([mode, sorted(map(str, choice))]).encode("utf-8", "surrogatepass")
log_key = f"compare_log_{hashlib.sha256(selection).hexdigest()[:12]}"
wide = figures.loss_span_decades(metrics) > figures.LOG_DECADES
st.session_state.setdefault(log_key, wide)
if wide and not st.session_state.get(f"{log_key}_auto"):
    st.session_state[log_key] = st.session_state[f"{log_key}_auto"] = True
log_y = log_col.toggle("Loss on a log scale", key=log_key, help="on by default when the losses span more "
                       "than two decades; curves that diverge are clipped either way, and marked")
grouped = False
if has_repeats:
    grouped = seeds_col.toggle("One line per variant (mean of its seeds, band: min to max)", value=True,
                               key="compare_grouped", help="runs that differ only by their seed form a variant")


def plot(fig, name: str) -> None:
    # In place (dashboard/charts.py): a new epoch updates the plot; the PNG export is the figure as built.
    charts.show(fig, config=figures.chart_config(name), key=f"compare_chart_{name}")


def open_run_detail(run_id: str) -> None:
    st.session_state[SELECTED_RUN] = run_id
    try:
        st.switch_page("pages/run_detail.py")
    except StreamlitPageNotFoundError:      # this page runs on its own, without navigation.py's navigation
        st.info(f"Run {plain(run_id)} selected: open the Run detail page to see it.")


# ----------------------------------------------------------------------------- render
still_live = chosen[chosen["state"].isin(ACTIVE_STATES)]
if not still_live.empty:
    moving = ", ".join(f"{names[r.run_id]} {r.state} {r.epoch}/{r.epochs}" for r in still_live.itertuples())
    st.caption(f"Updating as epochs end: {plain(moving)}")

st.subheader("Training curves")
if grouped:
    plot(figures.curves_grouped(metrics, result_runs, "loss", x_axis, colors, log_y=log_y), "loss")
    if any_classes:
        plot(figures.curves_grouped(metrics, result_runs, "acc", x_axis, colors), "accuracy")
else:
    # Only the open tab's charts are built and sent: 50 panels cost more than all the other charts.
    overlay_tab, panels_tab = st.tabs(["All runs in one chart", "One panel per run"], key="compare_curves_tab",
                                      on_change="rerun")
    if overlay_tab.open:
        with overlay_tab:
            plot(figures.curves_overlay(metrics, "loss", x_axis, colors, log_y=log_y), "loss")
            if any_classes:
                plot(figures.curves_overlay(metrics, "acc", x_axis, colors), "accuracy")
    if panels_tab.open:
        with panels_tab:
            plot(figures.curves_small_multiples(metrics, "loss", x_axis, colors, log_y=log_y), "loss_per_run")
            if any_classes:
                plot(figures.curves_small_multiples(metrics, "acc", x_axis, colors), "accuracy_per_run")

st.subheader("Results")
left, right = st.columns(2)
with left:
    plot(figures.accuracy_dots(result_runs, colors), "test_accuracy")
with right:
    plot(figures.overfitting_gap(metrics, x_axis, colors), "overfitting_gap")

# Noise as noise: is each variant's difference from the baseline larger than what the seed alone does?
if has_repeats:
    for verdict in repeats.verdicts(chosen):
        st.markdown(f"**{plain(verdict.text)}**", help=verdict.test_name)
elif len(variant_rows) > 1:
    st.caption("One seed per variant: a difference may be what a seed changes alone. Repeat the sweep with "
               "2 or more seeds per scenario (New experiment) to tell.")

# The class's guess, made before Run, revealed once all the sweep's runs (chosen or not) have ended,
# with the winner of the whole sweep.
chosen_sweeps = [s for s in dict.fromkeys(chosen["sweep"]) if isinstance(s, str)]
guesses = read_predictions(store.root, chosen_sweeps[0]) if len(chosen_sweeps) == 1 else []
if guesses:
    whole_sweep = runs[runs["sweep"] == chosen_sweeps[0]]
    sweep_live = bool(whole_sweep["state"].isin(ACTIVE_STATES).any())
    finished = repeats.variant_table(whole_sweep)
    finished = finished[finished["n"] > 0]
    if sweep_live or finished.empty:
        st.info("The class's prediction is kept: it is revealed here when the sweep has ended.",
                icon=":material/lock:")
    else:
        winner = finished.loc[finished["mean_test_acc"].astype(float).idxmax()]
        guessed = ", ".join(dict.fromkeys(guesses))
        right_guess = winner["variant"] in guesses
        st.info(f"The class predicted **{plain(guessed)}**; the winner is **{plain(winner['variant'])}** "
                f"({float(winner['mean_test_acc']):.1%})" + (": well guessed!" if right_guess else "."),
                icon=":material/emoji_events:")

table = tables.comparison_table(named_runs, raw_metrics)
params = tables.differing_params(chosen)
st.markdown("**Side by side**, best test accuracy first: click a column header to sort, a row to open that run"
            + (f"; differing: {', '.join(params)}" if params else ""))
percent = {"format": "percent"}
# Keyed by the table's rows: a selection is a row number, and a live re-sort (a run finished and
# moved up) must not carry it to another run.
rows_key = hashlib.sha256("|".join(table["run_id"]).encode("utf-8", "surrogatepass")).hexdigest()[:12]
event = st.dataframe(
    table, hide_index=True, width="stretch", on_select="rerun", selection_mode="single-row",
    key=f"compare_table_{rows_key}",
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
    column_order=["name", "test_acc", *(["variant"] if has_repeats else []), "state", *params, "final_train_loss", "final_val_loss",
                  "final_train_acc", "final_val_acc", "best_val_loss", "best_epoch", "epochs_done",
                  "seconds", "run_id"])
rows = [row for row in (event.selection.rows if event is not None else []) if 0 <= row < len(table)]
if rows:
    picked = table.iloc[rows[0]]
    if st.button(f"Open “{picked['name']}” in Run detail", key="compare_open_detail"):
        open_run_detail(picked["run_id"])

if params and chosen["test_acc"].notna().sum() >= 2:
    # Built only while open: plotly draws parallel coordinates with WebGL, and on a laptop whose
    # browser has no GPU to use each draw cost ~1 s of CPU, again at every run that finished.
    coords = st.expander("Parallel coordinates: the differing parameters against test accuracy",
                         key="compare_parallel", on_change="rerun", icon=":material/timeline:")
    if coords.open:
        with coords:
            plot(figures.parallel_coordinates(named_runs, params), "parallel_coordinates")
else:
    st.caption("Parallel coordinates appear when two or more finished runs differ in some parameter.")

# Written when clicked, not on every redraw (50 runs' metrics as CSV cost ~50 ms): what was drawn.
st.download_button("Download these runs' metrics (CSV)", data=functools.partial(raw_metrics.to_csv, index=False),
                   file_name="metrics.csv", mime="text/csv", on_click="ignore", key="compare_csv")

# Polled for the chosen runs' epochs and states, and for runs joining or leaving the choices.
watched = list(chosen["run_id"])
# Every second while they move, also before a first epoch: the first point is the Runs page's to
# show fast, and a Compare redraw (three curve charts and the table) costs a 2-core laptop's
# browser ~0.6 s of CPU the training needs.
watch.rerun_on_change(functools.partial(watch.runs_version, store, tuple(watched)), drawn,
                      watch.poll_every(chosen, first_point=False), watched=watched, key="compare")
