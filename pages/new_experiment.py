"""New experiment: one run, a grid of runs or named variants, from the form, a preset or a clone.

Top to bottom: what the app does (one line) -> presets -> Run, seeds per scenario and the class's
guess of the winner (drawn at the top, filled in last: they depend on the whole form) -> inputs
(data, model, training, what to vary; the rarely changed ones folded) -> the table of scenarios
that will run, with every bad value marked under its field. At 1280x720 (a projector) a preset and
Run are on the first screen. Run queues them and opens Runs.
"""
from __future__ import annotations

from dashboard.shell import run_through_app

run_through_app()      # first, before the engine's imports (see dashboard/shell.py)

import streamlit as st

from dashboard import forms
from dashboard.presets import PRESETS
from dashboard.state import PREFILL_SPEC, get_runner, online
from dashboard.text import plain
from trainlib.data import TORCHVISION_LAYOUT, dataset_status, missing_files_message
from trainlib.dataroot import data_root_errors
from trainlib.predictions import save_prediction
from trainlib.spec import field_names


P = forms.NEW_PREFIX
FLASH = "runs_flash"            # message the Runs page shows once after a Run
LOADED = f"{P}loaded_from"      # what filled the form last (preset note, clone), shown above it
REPEATS = f"{P}repeats"         # 'Repeat each scenario with k seeds'
PREDICTION = f"{P}prediction"   # the class's guess of the winner
NO_GUESS = "(no guess)"
VERSION = f"{P}variants_version"
runner = get_runner()


def key(name: str) -> str:
    return forms.field_key(name, P)


def load_into_form(state: dict, note: str) -> None:
    st.session_state.update(state)
    st.session_state[VERSION] = st.session_state.get(VERSION, 0) + 1   # a fresh variants editor
    st.session_state[LOADED] = note


def apply_preset(title: str) -> None:
    preset = PRESETS[title]
    load_into_form(forms.form_state(preset.base, P, axes=preset.axes, named=preset.variants,
                                    mode=preset.mode, sweep=preset.sweep), f"**{title}**: {preset.note}")


# Hand-offs (clone and edit from Run detail, the LR finder's lr): applied once, then consumed.
prefill = st.session_state.pop(PREFILL_SPEC, None)
if prefill:
    load_into_form(forms.form_state(prefill, P, mode="grid"),
                   f"Filled from **{plain(prefill.get('name', 'a run'))}**: edit what you want to change, then Run.")
for state_key, value in forms.form_state({}, P).items():
    st.session_state.setdefault(state_key, value)
st.session_state.setdefault(VERSION, 0)

slots: dict[str, st.delta_generator.DeltaGenerator] = {}   # where each field's error goes


def text_field(name: str, label: str, help: str | None = None, placeholder: str | None = None) -> None:
    st.text_input(label, key=key(name), help=help, placeholder=placeholder, persist_state="session")
    slots[name] = st.empty()


def select_field(name: str, label: str, help: str | None = None) -> None:
    # Options are shown as they are, never through a label that changes with other fields: the browser
    # sends back the label, and a label that changed since (a dataset's status after the data folder
    # was typed) matches no option, so Streamlit silently reset the choice to the first one.
    st.selectbox(label, forms.CHOICES[name], key=key(name), help=help, persist_state="session")
    slots[name] = st.empty()


def int_field(name: str, label: str, help: str | None = None) -> None:
    # Text, parsed and checked like every other field: a number input turned 'abc' and '1e9' into 1.
    text_field(name, label, help=help)


def bool_field(name: str, label: str, help: str | None = None) -> None:
    st.checkbox(label, key=key(name), help=help, persist_state="session")
    slots[name] = st.empty()


# ----------------------------------------------------------------------------- inputs
st.title("New experiment")
st.markdown("Train a few versions of one model side by side and see which learns best: "
            "**pick a preset and press Run**; the curves grow on the Runs and Compare pages.")
for column, preset in zip(st.columns(len(PRESETS)), PRESETS.values()):
    column.button(preset.short, on_click=apply_preset, args=(preset.title,), help=f"{preset.title}. {preset.note}",
                  width="stretch", key=f"{P}preset_{preset.sweep}")
if st.session_state.get(LOADED):
    st.info(st.session_state[LOADED], icon=":material/info:")
run_col, repeats_col, guess_col = st.columns([2, 2, 3], vertical_alignment="bottom")
summary_line = st.empty()          # 'N scenarios as sweep S, k at a time', filled once the form is read
st.session_state.setdefault(REPEATS, "1")
with repeats_col:
    st.text_input("Seeds per scenario", key=REPEATS, persist_state="session",
                  help="k > 1 repeats every scenario with seeds seed, seed+1, ...: Compare then shows each "
                       "variant's mean with a band, and says whether a difference is larger than seed noise")
    slots["repeats"] = st.empty()

data_col, model_col, train_col = st.columns(3, gap="large")
with data_col:
    st.subheader("Data")
    data_dir = str(st.session_state.get(key("data_dir")) or "data")
    is_online = online()
    select_field("dataset", "Dataset", help="built-in sets are generated here and need no network; torchvision "
                                            "sets download once into the data folder")
    dataset = st.session_state[key("dataset")]
    # Outside the server's data root nothing is looked at (the field's error says so): what exists
    # there is none of a classroom network's business.
    outside_root = bool(data_root_errors({"dataset": dataset, "data_dir": data_dir}))
    status = "outside the data root" if outside_root else dataset_status(dataset, data_dir, is_online)
    st.caption(f"{dataset}: {status}")
    if dataset in TORCHVISION_LAYOUT or dataset == "imagefolder":
        text_field("data_dir", "Data folder" if dataset != "imagefolder" else "Image folder (one sub-folder per class)")
    if status == "cannot download" and dataset in TORCHVISION_LAYOUT:
        st.warning(plain(missing_files_message(dataset, data_dir)), icon=":material/cloud_off:")
    elif status == "will download":
        st.caption(f"{dataset} will be downloaded into {plain(data_dir)} by the first run.")
    text_field("train_subset", "Training samples", help="'all', or a number to train on a subset (quick runs)")
    text_field("val_fraction", "Validation share", help="share of the training pool held out for validation")
    int_field("seed", "Seed", help="drives the split, the initial weights and the batch order")

with model_col:
    st.subheader("Model")
    select_field("model", "Model")
    model = st.session_state[key("model")]
    if model == "mlp":
        text_field("hidden_sizes", "Hidden layer widths", help="comma separated, e.g. 256,256")
    elif model == "cnn":
        text_field("channels", "Conv block widths", help="comma separated, e.g. 32,64,128")
    else:
        text_field("weights", "Weights file (optional)", help="a resnet18 state_dict saved on this machine")
    select_field("activation", "Activation")
    text_field("dropout", "Dropout", help="probability in [0, 1) after each hidden layer; 0 = off")
    bool_field("batchnorm", "BatchNorm", help="one BatchNorm per hidden layer / conv block")

with train_col:
    st.subheader("Training")
    select_field("optimizer", "Optimizer")
    text_field("lr", "Learning rate", help="e.g. 1e-3; the LR finder page suggests one")
    text_field("weight_decay", "Weight decay (L2)", help="0 = off; the course's L2 run uses 1e-5")
    int_field("epochs", "Epochs")
    int_field("batch_size", "Batch size")
    select_field("scheduler", "Learning-rate schedule")

with st.expander("More settings"):
    a, b, c = st.columns(3, gap="large")
    with a:
        text_field("momentum", "SGD momentum", help="used by sgd only")
        text_field("lr_end", "Final lr (linear / cosine schedules)")
        int_field("early_stopping_patience", "Early-stopping patience", help="epochs without improvement; 0 = off")
        select_field("loss", "Loss", help="auto follows the task: cross-entropy for classes, MSE for regression")
    with b:
        select_field("device", "Device")
        select_field("precision", "Precision")
        int_field("image_size", "Image size (imagefolder)")
        text_field("tags", "Tags", help="comma separated labels")
    with c:
        bool_field("resident_data", "Keep data on the device")
        bool_field("cuda_graph", "CUDA graph for the train step")
        bool_field("channels_last", "channels_last (conv models)")
        bool_field("drop_last", "Drop the last partial batch")

st.subheader("What to run")
mode = st.segmented_control("What to run", list(forms.MODES), format_func=forms.MODES.get, key=key("mode"),
                            required=True, label_visibility="collapsed", persist_state="session") or "grid"
variant_rows: list[dict] = []
if mode == "grid":
    text_field("name", "Run name", help="for a single run; a grid names each run by what it changes")
    st.caption("Vary up to three fields: every combination runs. A seed axis repeats the same scenario.")
    for i in range(1, forms.MAX_AXES + 1):
        field_col, values_col = st.columns([1, 3])
        field_col.selectbox(f"Axis {i}", ["", *forms.AXIS_FIELDS], key=f"{P}axis_field_{i}",
                            format_func=lambda f: f or "(none)", persist_state="session")
        values_col.text_input(f"Values for axis {i}", key=f"{P}axis_values_{i}", placeholder="e.g. 1e-2, 1e-3",
                              persist_state="session")
        slots[f"axis_{i}"] = st.empty()
else:
    st.caption("One row per run: a name, and its changes to the form above as FIELD=VALUE pairs "
               "separated by commas (empty = the form as is). E.g. `weight_decay=1e-5` or `dropout=0.2, epochs=3`.")
    edited = st.data_editor(
        st.session_state[f"{P}variants_table"], key=f"{P}variants_editor_{st.session_state[VERSION]}",
        num_rows="dynamic", hide_index=True, width="stretch",
        column_config={"name": st.column_config.TextColumn("Name", width="small"),
                       "changes": st.column_config.TextColumn("Changes", width="large")})
    variant_rows = edited.to_dict("records")
    slots["variants"] = st.empty()
st.text_input("Sweep name", key=key("sweep"), persist_state="session",
              help="groups the runs on the Runs and Compare pages; empty = an automatic name",
              placeholder="automatic: sweep-<date>-<time>")
slots["sweep"] = st.empty()

# ----------------------------------------------------------------------------- check
raw_fields = {name: st.session_state[key(name)] for name in field_names()}
axes = [(st.session_state[f"{P}axis_field_{i}"], st.session_state[f"{P}axis_values_{i}"])
        for i in range(1, forms.MAX_AXES + 1)]
runs = runner.store.list_runs()
existing_sweeps = runs["sweep"].dropna().unique() if "sweep" in runs else []
result = forms.read_form(raw_fields, mode, axes, variant_rows, st.session_state[key("sweep")], existing_sweeps,
                         repeats=st.session_state[REPEATS])

unplaced = []
for place, message in result.errors.items():
    if place in slots:
        slots[place].error(plain(message), icon=":material/error:")
    else:
        unplaced.append(message)

st.subheader("Scenarios that will run")
if result.errors:
    for message in unplaced:
        st.error(plain(message), icon=":material/error:")
    problem = (f"Nothing can run yet: fix the {len(result.errors)} value{'s' if len(result.errors) != 1 else ''} "
               f"marked in red.")
    st.error(problem, icon=":material/block:")
    summary_line.error(problem, icon=":material/block:")
else:
    count = len(result.specs)
    where = f" as sweep **{plain(result.sweep)}**" if result.sweep else ""
    seeds = f" ({count // result.repeats} × {result.repeats} seeds)" if result.repeats > 1 else ""
    st.markdown(f"**{count} scenario{'s' if count != 1 else ''}**{seeds}{where}, "
                f"{runner.workers} at a time on this machine.")
    st.caption(plain(forms.shared_settings(result.specs)))
    st.dataframe(forms.preview_frame(result.specs), hide_index=True, width="stretch")
    summary_line.caption(plain(f"{count} scenario{'s' if count != 1 else ''}{seeds}"
                               + (f" as sweep {result.sweep}" if result.sweep else "")
                               + f" · {forms.shared_settings(result.specs)}"))

# ----------------------------------------------------------------------------- action (drawn at the top)
variant_names = list(dict.fromkeys(result.variants))
with guess_col:
    # Predict before you look: the guess is kept with the sweep and shown beside its result on Compare.
    guess = st.selectbox("Predict the winner (optional)", [NO_GUESS, *variant_names], key=PREDICTION,
                         disabled=len(variant_names) < 2 or not result.sweep,
                         help="the class's guess of the best test accuracy; revealed on Compare with the result")
label = f"Run {len(result.specs)} scenario{'s' if len(result.specs) != 1 else ''}" if result.ok else "Run"
if run_col.button(label, type="primary", disabled=not result.ok, icon=":material/play_arrow:", key="ne_run_button",
                  width="stretch"):
    if result.ok:      # the button is disabled otherwise; never queue a spec the form did not accept
        if guess and guess != NO_GUESS and result.sweep:
            save_prediction(runner.store.root, result.sweep, guess)
        ids = runner.submit_many(result.specs, sweep=result.sweep, variants=result.variants)
        st.session_state.pop(LOADED, None)
        st.session_state[FLASH] = (f"Queued {len(ids)} run{'s' if len(ids) != 1 else ''}"
                                   + (f" of sweep {result.sweep}." if result.sweep else "."))
        st.switch_page("pages/live.py")
