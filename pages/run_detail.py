"""One run in detail: its scenario, status, curves, what the trained model gets wrong, its files.

    st.Page("pages/run_detail.py", title="Run detail")    # registered by navigation.py; ?run=<run_id> opens one

The run shown is, in order: the one another page handed over in st.session_state[SELECTED_RUN],
the `run` query parameter, the newest run. The evaluation (confusion matrix, misclassified images,
decision boundary) uses the best epoch's checkpoint and is cached per run and checkpoint time.
Looking at a run reads only: data and weights only from inside the server's data root (see
trainlib/dataroot.py), nothing downloaded, nothing created. Names, tags and error texts are
shown as text (dashboard.text.plain), never as Markdown.
"""
from __future__ import annotations

from dashboard.shell import run_through_app

run_through_app()      # first, before the engine's imports (see dashboard/shell.py)

import functools
import json
import math
import numbers

import pandas as pd
import streamlit as st
from streamlit.errors import StreamlitPageNotFoundError

from dashboard import charts, figures, forms, tables, watch
from dashboard.state import PREFILL_SPEC, SELECTED_RUN, get_runner
from dashboard.text import plain
from trainlib.analysis import analyze_run, model_summary
from trainlib.data import task_of
from trainlib.dataroot import data_root_errors
from trainlib.spec import ScenarioSpec, SpecError
from trainlib.store import ACTIVE_STATES, CHECKPOINT
from trainlib.sweep import describe_changes


POLL_EVERY = "1s"
RUN_KEY = "detail_run"          # the run picker's widget state
CONFIRM_DELETE = "detail_confirm_delete"    # run_id whose deletion waits for a yes
IMAGES_PER_ROW = 8
PROBLEM_STATES = ("failed", "diverged")
KNOB_PROBLEM, KNOB_DONE = "detail_knob_problem", "detail_knob_done"     # what the last knob click did


@st.cache_data(show_spinner="Evaluating the best checkpoint…", max_entries=32)
def cached_analysis(run_id: str, checkpoint_mtime: float, folder: str) -> dict:
    # run_id and the checkpoint's mtime are the key: a run that improves gets evaluated again.
    return analyze_run(folder)


@st.cache_data(show_spinner=False, max_entries=64)
def cached_model_summary(spec_json: str) -> tuple[list[dict], int]:
    return model_summary(json.loads(spec_json))


def number(value) -> float | None:
    """A finite number from a run's files, else None: a hand-edited file may hold anything there."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    try:
        value = float(value)
    except OverflowError:        # an integer beyond float range
        return None
    return value if math.isfinite(value) else None


def percent(value) -> str:
    value = number(value)
    return "—" if value is None else f"{100 * value:.2f} %"


def whole(value) -> int | None:
    """A count (an epoch) as int, else None."""
    value = number(value)
    return int(value) if value is not None and value >= 0 and value.is_integer() else None


store = get_runner().store
runs = store.list_runs()

st.title("Run detail")

if runs.empty:
    st.info("No runs yet. Start one on the **New experiment** page; it appears here.")
    st.stop()

# ----------------------------------------------------------------------------- input: which run
newest_first = list(runs.sort_values("run_id", ascending=False)["run_id"])
by_id = runs.set_index("run_id", drop=False)
handed_over = st.session_state.get(SELECTED_RUN)
asked = handed_over or st.query_params.get("run")
if asked and asked not in by_id.index:
    st.warning(plain(f"There is no run {asked!r} in {store.root} (deleted?): showing the newest run instead."))
    st.session_state.pop(SELECTED_RUN, None)
    asked = None
current = st.session_state.get(RUN_KEY)
if current not in by_id.index or (handed_over in by_id.index and handed_over != current):
    st.session_state[RUN_KEY] = asked or newest_first[0]


def remember_choice() -> None:
    st.session_state[SELECTED_RUN] = st.session_state[RUN_KEY]


run_id = st.selectbox("Run (newest first)", newest_first, key=RUN_KEY, on_change=remember_choice,
                      format_func=lambda r: f"{by_id.loc[r, 'name']} · {by_id.loc[r, 'state']} · {r}")
st.session_state[SELECTED_RUN] = run_id
st.query_params["run"] = run_id          # the address bar now names this run: shareable, reloadable

# ----------------------------------------------------------------------------- guard
try:
    run = store.read_run(run_id)
except Exception as exc:
    st.error(plain(f"Run folder {run_id} cannot be read: {exc.args[0] if isinstance(exc, KeyError) else exc}"))
    st.stop()

folder = store.folder(run_id)
spec_dict, status, summary = run["spec"], run["status"], run["summary"]
row = by_id.loc[run_id]          # the same values as text and numbers of one type each (list_runs)
state = status.get("state")
live = state in ACTIVE_STATES
name = row["name"]
is_regression = task_of(str(spec_dict.get("dataset"))) == "regression"

# ----------------------------------------------------------------------------- header and problems
st.header(plain(name))
st.caption(" · ".join(plain(part) for part in (
    f"run {run_id}", f"sweep {row['sweep']}" if isinstance(row["sweep"], str) else "",
    f"tags {row['tags'].replace(',', ', ')}" if isinstance(row["tags"], str) and row["tags"] else "",
    f"dataset {row['dataset']}", f"model {row['model']}") if part))
error = row["error"] if isinstance(row["error"], str) and row["error"] else None
if state in PROBLEM_STATES:
    st.error(f"**This run {state}.**  \n{plain(error or 'No error message was recorded.')}", icon=":material/error:")
elif state in ("stopped", "interrupted"):
    st.warning(f"**This run was {state}** after epoch {row['epoch']} of {whole(row['epochs']) or '?'}."
               + (f"  \n{plain(error)}" if error else ""), icon=":material/pause_circle:")
for problem in run["problems"]:
    st.warning(plain(f"Part of this run's folder cannot be read: {problem}"), icon=":material/warning:")

# ----------------------------------------------------------------------------- actions
try:
    spec_for_clone = ScenarioSpec.from_dict(spec_dict).to_dict()
except Exception:            # an older or hand-edited scenario.json: hand over what is there
    spec_for_clone = dict(spec_dict)


def ask_delete(run_id: str) -> None:
    st.session_state[CONFIRM_DELETE] = run_id


def forget_delete() -> None:
    st.session_state.pop(CONFIRM_DELETE, None)


# The dialog stays open for as long as CONFIRM_DELETE names this run (closing it clears that),
# so its buttons work whether the dialog reruns alone (browser) or with the page (AppTest).
@st.dialog("Delete this run?", on_dismiss=forget_delete)
def confirm_delete(run_id: str, name: str) -> None:
    st.write(f"**{plain(name)}** ({plain(run_id)}) and its whole folder go: metrics, checkpoint, TensorBoard "
             "logs. This cannot be undone.")
    yes, no = st.columns(2)
    if yes.button("Delete it", type="primary", key="detail_delete_yes", width="stretch"):
        store.delete(run_id)
        forget_delete()
        st.session_state.pop(SELECTED_RUN, None)
        st.query_params.pop("run", None)
        st.session_state["detail_deleted"] = name
        st.rerun()
    if no.button("Keep it", key="detail_delete_no", width="stretch"):
        forget_delete()
        st.rerun()


deleted = st.session_state.pop("detail_deleted", None)
if deleted:
    st.toast(plain(f"Deleted {deleted}"))

clone_col, delete_col, _ = st.columns([1, 1, 3])
if clone_col.button("Clone and edit", icon=":material/edit:", key="detail_clone", width="stretch",
                    help="Open New experiment with this scenario filled in"):
    st.session_state[PREFILL_SPEC] = spec_for_clone
    try:
        st.switch_page("pages/new_experiment.py")
    except StreamlitPageNotFoundError:      # this page runs on its own, without navigation.py's navigation
        st.success("The New experiment form is filled with this scenario: open that page to edit it.")
delete_col.button("Delete", icon=":material/delete:", key="detail_delete", width="stretch", disabled=live,
                  help="Stop the run first" if live else "Delete this run's folder",
                  on_click=ask_delete, args=(run_id,))
if st.session_state.get(CONFIRM_DELETE) == run_id and not live:
    confirm_delete(run_id, name)


def run_one_knob(run_id: str) -> None:
    """Queue this run's scenario with one field changed, in its sweep, as a variant of its own."""
    field_name, text = st.session_state["detail_knob_field"], st.session_state["detail_knob_value"]
    try:
        spec = forms.one_knob(spec_for_clone, field_name, text)
    except SpecError as exc:
        st.session_state[KNOB_PROBLEM] = str(exc)
        return
    outside = data_root_errors(spec.to_dict())
    if outside:
        st.session_state[KNOB_PROBLEM] = "not run here: " + "; ".join(outside.values())
        return
    sweep = row["sweep"] if isinstance(row["sweep"], str) else None
    now = store.list_runs()      # as the folder is now: another tab or a terminal may have added runs
    in_sweep = now[now["sweep"] == sweep] if sweep else now.iloc[:0]
    own_variant = row["variant"] if isinstance(row.get("variant"), str) and row["variant"] else str(row["name"])
    if field_name == "seed":
        # Another seed of the same scenario is a repeat of its variant (same variant and colour), not
        # a new variant: Compare then groups it with the others and the verdicts count it.
        variant, position = own_variant, (None if pd.isna(row.get("position")) else int(row["position"]))
        taken = in_sweep[(in_sweep["variant"] == variant) & (pd.to_numeric(in_sweep["seed"], errors="coerce") == spec.seed)]
        if len(taken):
            st.session_state[KNOB_PROBLEM] = (f"seed: {own_variant} has a run with seed {spec.seed} in this sweep "
                                              "already; give another seed")
            return
    else:
        variant = f"{own_variant} · {describe_changes({field_name: getattr(spec, field_name)})}"
        if (in_sweep["variant"] == variant).any():
            st.session_state[KNOB_PROBLEM] = (f"{field_name}: the sweep has a variant {variant} already; open one of "
                                              "its runs to change it further, or give another value")
            return
        positions = in_sweep["position"].dropna() if "position" in in_sweep else []
        position = int(max(positions)) + 1 if len(positions) else None
    new_id = get_runner().submit(spec, sweep=sweep, variant=variant if sweep else None, position=position if sweep else None)
    st.session_state[KNOB_DONE] = f"Queued {spec.name} ({new_id})" + (f" in sweep {sweep}." if sweep else ".")


with st.container(border=True):
    st.markdown("**Clone and change one knob**: the same scenario with one field changed, queued in this "
                "run's sweep and named by the difference.")
    knob_field, knob_value, knob_go = st.columns([2, 2, 2], vertical_alignment="bottom")
    knob_field.selectbox("Knob", forms.AXIS_FIELDS, key="detail_knob_field")
    knob_value.text_input("New value", key="detail_knob_value", placeholder="e.g. 1e-2")
    knob_go.button("Run with this change", key="detail_knob_run", icon=":material/play_arrow:", width="stretch",
                   on_click=run_one_knob, args=(run_id,))
    if KNOB_PROBLEM in st.session_state:
        st.error(plain(st.session_state.pop(KNOB_PROBLEM)), icon=":material/error:")
    if KNOB_DONE in st.session_state:
        st.success(plain(st.session_state.pop(KNOB_DONE)), icon=":material/check_circle:")


# ----------------------------------------------------------------------------- status and curves
@st.fragment
def show_progress(run_id: str, was_live: bool) -> None:
    """The status and curves, redrawn alone (the evaluation below is not redone) when the run's
    folder moved: the browser asks every second while the run trains (dashboard/watch.py)."""
    drawn = watch.runs_version(store, [run_id])          # before reading: a change meanwhile is seen
    draw_progress(run_id, was_live)
    if was_live:
        watch.rerun_on_change(functools.partial(watch.runs_version, store, (run_id,)), drawn, POLL_EVERY,
                              watched=[run_id], key="detail")


def draw_progress(run_id: str, was_live: bool) -> None:
    try:
        now = store.read_run(run_id)
    except Exception:
        st.warning("This run's folder is gone.")
        return
    status_now, summary_now = now["status"], now["summary"]
    if was_live and status_now.get("state") not in ACTIVE_STATES:
        st.rerun()          # it ended: a full rerun turns polling off and evaluates the checkpoint
    metrics = store.load_metrics([run_id])
    unreadable = [reason for _, reason in metrics.attrs.get("skipped", [])]    # 'metrics.csv cannot be read: ...'
    results = tables.run_results(metrics, run_id)
    epoch, epochs = whole(status_now.get("epoch")) or 0, whole(status_now.get("epochs")) or whole(row["epochs"])
    cells = st.columns(5)
    cells[0].metric("State", status_now.get("state"))
    cells[1].metric("Epochs", f"{epoch} / {epochs}")
    cells[2].metric("Test accuracy", percent(summary_now.get("test_acc")))
    best_epoch = results["best_epoch"]
    # The value alone: '5 (0.0213)' was cut to '5 (0.02...' in a fifth of a 1280 px screen.
    cells[3].metric("Best epoch", "—" if best_epoch is None else str(best_epoch),
                    help=None if best_epoch is None else f"lowest validation loss: {results['best_val_loss']:.4f}")
    cells[4].metric("Training time", "—" if results["seconds"] is None else f"{results['seconds']:.1f} s")
    if status_now.get("state") in ACTIVE_STATES and epochs:
        st.progress(min(epoch / epochs, 1.0), text=f"{status_now.get('state')}: epoch {epoch} of {epochs}")
    for reason in unreadable:
        st.error(plain(reason), icon=":material/error:")
    if unreadable:
        return
    if metrics.empty:
        st.info("No finished epochs yet: the curves appear after the first one.")
        return
    # Its colour among its sweep's runs, or among the runs outside a sweep (the Runs page's 'Single
    # runs' chart, where no two take one colour): the same as on the Runs page.
    in_a_sweep = runs["sweep"].apply(lambda sweep: isinstance(sweep, str) and sweep != "")
    same_sweep = runs[runs["sweep"] == row["sweep"]] if in_a_sweep[runs["run_id"] == run_id].any() else runs[~in_a_sweep]
    colors = figures.run_colors(tables.in_run_order(same_sweep))
    left, right = st.columns(2)
    with left:
        charts.show(figures.curves_overlay(metrics, "loss", "epoch", colors),
                    config=figures.chart_config(f"{name}_loss"), key="detail_loss")
    with right:
        if is_regression:     # no accuracy: show how far validation drifts from training instead
            charts.show(figures.overfitting_gap(metrics, "epoch", colors),
                        config=figures.chart_config(f"{name}_gap"), key="detail_gap")
        else:
            charts.show(figures.curves_overlay(metrics, "acc", "epoch", colors),
                        config=figures.chart_config(f"{name}_accuracy"), key="detail_acc")


show_progress(run_id, live)

# ----------------------------------------------------------------------------- the trained model
evaluation_tab, model_tab, scenario_tab, files_tab = st.tabs(["Evaluation", "Model", "Scenario", "Files"])
checkpoint = folder / CHECKPOINT
# Data and weights outside the data root are never read here (the server may be open to a network).
outside_root = "; ".join(data_root_errors(spec_dict).values())
report, report_error = None, None
if checkpoint.is_file() and not outside_root:
    try:
        report = cached_analysis(run_id, checkpoint.stat().st_mtime, str(folder))
    except Exception as exc:
        report_error = f"{type(exc).__name__}: {exc}"

with evaluation_tab:
    if outside_root:
        st.warning(plain(f"Not evaluated: {outside_root}"), icon=":material/folder_off:")
    elif report_error:
        st.error(plain(f"The checkpoint could not be evaluated: {report_error}"))
    elif report is None:
        st.info("No checkpoint yet: the evaluation appears once the run has finished an epoch.")
    else:
        accuracy = "" if report["accuracy"] is None else f": accuracy {percent(report['accuracy'])}"
        st.caption(f"Best epoch's weights (epoch {report['checkpoint_epoch']}, lowest validation loss) on the "
                   f"{report['split']} split, {report['samples']} samples{accuracy}. The run's test accuracy "
                   "above comes from its last epoch's weights, so the two can differ.")
        if report["confusion"] is not None:
            # Beyond five classes the matrix takes the whole width: its counts stay readable at 1280x720.
            wide = len(report["confusion"].columns) > 5
            left, right = (st.container(), st.container()) if wide else st.columns(2)
            with left:
                charts.show(figures.confusion_matrix_figure(report["confusion"], plot_width_px=700 if wide else 320),
                            config=figures.chart_config(f"{name}_confusion"), key="detail_confusion")
            with right:
                charts.show(figures.per_class_accuracy_figure(report["per_class"]),
                            config=figures.chart_config(f"{name}_per_class"), key="detail_per_class")
        if report["grid"] is not None:
            charts.show(figures.decision_boundary_figure(report["grid"], report["points"], report["class_names"]),
                        config=figures.chart_config(f"{name}_boundary"), key="detail_boundary")
        if report["misclassified"] is not None:
            wrong = report["misclassified"]
            st.subheader(f"Misclassified {report['split']} images ({len(wrong)} shown)")
            st.caption("Under each image: its true class → the class the model predicted.")
            if not wrong:
                st.success("None: every image of the split is classified right.")
            for start in range(0, len(wrong), IMAGES_PER_ROW):
                cells = st.columns(IMAGES_PER_ROW)
                for cell, (image, true, predicted) in zip(cells, wrong[start:start + IMAGES_PER_ROW]):
                    # Whole-pixel upscaling to about 112 px: small digits stay crisp, big photos stay as they are.
                    factor = max(1, 112 // image.shape[1])
                    cell.image(figures.enlarge(image, factor), caption=plain(f"{true} → {predicted}"),
                               width="stretch")
        if report["task"] == "regression":
            st.info("A regression run: no classes, so no confusion matrix. Its curves above show the MSE loss.")

with model_tab:
    if report is not None:
        layers, parameters = report["layers"], report["parameters"]
    elif outside_root:
        layers, parameters = None, None
        st.warning(plain(f"The model is not built: {outside_root}"), icon=":material/folder_off:")
    else:
        try:
            layers, parameters = cached_model_summary(json.dumps(spec_dict, sort_keys=True))
        except Exception as exc:
            layers, parameters = None, None
            st.error(plain(f"The model cannot be built from this scenario: {type(exc).__name__}: {exc}"))
    if layers is not None:
        st.metric("Parameters", f"{parameters:,}")
        st.dataframe(pd.DataFrame(layers), hide_index=True, width="stretch",
                     column_config={"parameters": st.column_config.NumberColumn("parameters", format="localized")})
    st.caption(f"Engine: {summary.get('engine') or status.get('engine') or '—'}")

with scenario_tab:
    rows = [{"field": key, "value": ", ".join(map(str, value)) if isinstance(value, list) else str(value)}
            for key, value in spec_dict.items()]
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    with st.expander("scenario.json and status.json"):
        st.json(spec_dict)
        st.json(status)

with files_tab:
    st.caption(plain(f"Folder: {folder}"))
    if checkpoint.is_file():
        st.download_button(f"Download {CHECKPOINT} (best epoch's weights, optimizer, scenario)",
                           data=checkpoint.read_bytes,    # read only when clicked
                           file_name=f"{run_id}-{CHECKPOINT}", mime="application/octet-stream",
                           on_click="ignore", key="detail_download_checkpoint")
    else:
        st.caption(f"No {CHECKPOINT} yet.")
    metrics_path = folder / "metrics.csv"
    if metrics_path.is_file():
        st.download_button("Download metrics.csv", data=metrics_path.read_bytes,    # as it is, when clicked
                           file_name=f"{run_id}-metrics.csv", mime="text/csv", on_click="ignore",
                           key="detail_download_metrics")
    st.caption(f"TensorBoard: `tensorboard --logdir {store.root}`")
