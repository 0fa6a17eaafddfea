"""LR finder: train briefly while the learning rate grows, see where the loss falls fastest.

Top to bottom: the setup (dataset, model, batch size, optimizer) -> Find (a few hundred batches in
this page's thread, under a spinner) -> guard (no result yet) -> loss vs lr with the suggestion,
and a button that carries the setup and the suggested lr to New experiment.
"""
from __future__ import annotations

from dashboard.shell import run_through_app

run_through_app()      # first, before the engine's imports (see dashboard/shell.py)

import streamlit as st

from dashboard import charts, figures, forms
from dashboard.live_figures import lr_finder_figure
from dashboard.state import PREFILL_SPEC
from dashboard.text import plain
from trainlib.data import TORCHVISION_LAYOUT, DatasetUnavailable
from trainlib.lr_finder import find_lr
from trainlib.scenario import create_scenario
from trainlib.spec import SpecError


P = forms.FINDER_PREFIX
RESULT = f"{P}result"       # {'spec', 'frame', 'suggested_lr', 'stopped_early'} of the last search
MIN_STEPS, MAX_STEPS = 10, 2000   # batches of the search: fewer say nothing, more take minutes on a CPU
FIELDS = ("dataset", "data_dir", "model", "hidden_sizes", "channels", "batch_size", "optimizer", "train_subset")

for state_key, value in forms.form_state({}, P).items():
    st.session_state.setdefault(state_key, value)
st.session_state.setdefault(f"{P}steps", "200")
st.session_state.setdefault(f"{P}start_lr", "1e-7")
st.session_state.setdefault(f"{P}end_lr", "10")
slots = {}


def key(name: str) -> str:
    return forms.field_key(name, P)


st.title("Learning-rate finder")
st.caption("Trains for a few hundred batches while the learning rate grows from tiny to huge. "
           "A good lr sits where the loss falls fastest, well before it blows up.")

data_col, model_col, opt_col = st.columns(3, gap="large")
with data_col:
    st.selectbox("Dataset", forms.CHOICES["dataset"], key=key("dataset"), persist_state="session")
    slots["dataset"] = st.empty()
    if st.session_state[key("dataset")] in TORCHVISION_LAYOUT or st.session_state[key("dataset")] == "imagefolder":
        st.text_input("Data folder", key=key("data_dir"), persist_state="session")
        slots["data_dir"] = st.empty()
    st.text_input("Training samples", key=key("train_subset"), help="'all', or a number for a quicker search",
                  persist_state="session")
    slots["train_subset"] = st.empty()
with model_col:
    st.selectbox("Model", forms.CHOICES["model"], key=key("model"), persist_state="session")
    slots["model"] = st.empty()
    if st.session_state[key("model")] == "mlp":
        st.text_input("Hidden layer widths", key=key("hidden_sizes"), persist_state="session")
        slots["hidden_sizes"] = st.empty()
    elif st.session_state[key("model")] == "cnn":
        st.text_input("Conv block widths", key=key("channels"), persist_state="session")
        slots["channels"] = st.empty()
with opt_col:
    st.selectbox("Optimizer", forms.CHOICES["optimizer"], key=key("optimizer"), persist_state="session")
    st.text_input("Batch size", key=key("batch_size"), persist_state="session")
    slots["batch_size"] = st.empty()
with st.expander("Search range"):
    a, b, c = st.columns(3)
    a.text_input("Start lr", key=f"{P}start_lr", persist_state="session")
    b.text_input("End lr", key=f"{P}end_lr", persist_state="session")
    c.text_input("Steps", key=f"{P}steps", help=f"{MIN_STEPS} to {MAX_STEPS}", persist_state="session")
    slots["range"] = st.empty()

spec, errors = forms.read_fields({name: st.session_state[key(name)] for name in FIELDS})
try:
    start_lr, end_lr = float(st.session_state[f"{P}start_lr"]), float(st.session_state[f"{P}end_lr"])
    if not 0 < start_lr < end_lr:
        raise ValueError
except ValueError:
    errors["range"] = "range: need numbers with 0 < start lr < end lr, e.g. 1e-7 and 10"
steps_text = str(st.session_state[f"{P}steps"]).strip()
steps = int(steps_text) if steps_text.isdigit() else 0
if not MIN_STEPS <= steps <= MAX_STEPS:
    errors["range"] = f"steps: a whole number from {MIN_STEPS} to {MAX_STEPS}, got {steps_text!r}"
for place, message in errors.items():
    (slots[place] if place in slots else st).error(plain(message), icon=":material/error:")

if st.button("Find the learning rate", type="primary", disabled=bool(errors), icon=":material/search:") and not errors:
    with st.spinner("Training with a growing learning rate…"):
        try:
            S = create_scenario(spec)
            found = find_lr(S, start_lr=start_lr, end_lr=end_lr, num_steps=steps)
        except (DatasetUnavailable, SpecError) as exc:
            st.session_state.pop(RESULT, None)
            st.error(plain(exc), icon=":material/error:")
        else:
            st.session_state[RESULT] = {"spec": spec.to_dict(), "frame": found.frame,
                                        "suggested_lr": found.suggested_lr, "stopped_early": found.stopped_early}

result = st.session_state.get(RESULT)
if result is None:
    st.info("Pick a setup and press **Find the learning rate**; it takes a few seconds on the built-in data.")
    st.stop()

# ----------------------------------------------------------------------------- render
suggested = result["suggested_lr"]
setup = result["spec"]
st.subheader(f"Loss vs learning rate: {setup['dataset']}, {setup['model']}, {setup['optimizer']}, "
             f"batch {setup['batch_size']}")
charts.show(lr_finder_figure(result["frame"], suggested), key="lr_finder_chart", config=figures.chart_config("lr_finder"))
if result["stopped_early"]:
    st.caption("The loss blew up before the end of the range, so the search stopped there.")
if suggested is None:
    st.warning("No clear steepest descent: try more steps, a wider range or more training samples.")
    st.stop()

lr = forms.nice_lr(suggested)
st.metric("Suggested learning rate", f"{lr:g}")
if st.button("Use this lr in New experiment", icon=":material/arrow_forward:"):
    st.session_state[PREFILL_SPEC] = {**setup, "lr": lr, "name": f"lr={lr:g}"}
    st.switch_page("pages/new_experiment.py")
