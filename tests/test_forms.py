"""Form logic: widget values -> specs, every bad value reported under its own place, nothing raised."""
from __future__ import annotations

import math
from datetime import datetime

import pytest
import torch

from dashboard import forms
from trainlib.spec import DEFAULTS, ScenarioSpec, field_names


def raw(**changes):
    """The New experiment form's widget values for the default spec, plus changes (as widget values)."""
    state = forms.form_state({}, "t_")
    values = {name: state[f"t_{name}"] for name in field_names()}
    values.update(changes)
    return values


def test_default_form_is_the_default_spec():
    spec, errors = forms.read_fields(raw())
    assert errors == {} and spec == ScenarioSpec()


def test_widget_values_are_text_for_text_inputs():
    state = forms.form_state({"hidden_sizes": [128, 64], "weight_decay": 1e-5, "train_subset": None,
                              "epochs": 3, "batchnorm": True, "unknown_key": 1}, "t_")
    assert state["t_hidden_sizes"] == "128,64"
    assert state["t_weight_decay"] == "1e-05"
    assert state["t_train_subset"] == "all"
    assert state["t_epochs"] == "3" and state["t_batchnorm"] is True
    assert "t_unknown_key" not in state
    spec, errors = forms.read_fields({n: state[f"t_{n}"] for n in field_names()})
    assert errors == {} and spec.hidden_sizes == (128, 64) and spec.weight_decay == 1e-5


def test_a_hand_edited_scenario_fills_what_its_widgets_can_hold():
    state = forms.form_state({"dataset": "foo", "epochs": 0, "batchnorm": "yes", "seed": 1.5, "lr": "abc"}, "t_")
    assert (state["t_dataset"], state["t_batchnorm"]) == (DEFAULTS["dataset"], DEFAULTS["batchnorm"])
    # text keeps what it was given: the form then says what is wrong
    assert (state["t_lr"], state["t_epochs"], state["t_seed"]) == ("abc", "0", "1.5")
    spec, errors = forms.read_fields({n: state[f"t_{n}"] for n in field_names()})
    assert spec is None and sorted(errors) == ["epochs", "lr", "seed"]


def test_every_bad_field_is_reported_at_once_and_names_itself():
    spec, errors = forms.read_fields(raw(lr="-1", dropout="1.5", hidden_sizes="a,b", train_subset="0",
                                         name=" "))
    assert spec is None
    assert set(errors) == {"lr", "dropout", "hidden_sizes", "train_subset", "name"}
    for place, message in errors.items():
        assert message.startswith(f"{place}:"), message
    assert "-1" in errors["lr"]


def test_combinations_a_run_would_fail_on_are_caught_in_the_form(tmp_path):
    assert "model" in forms.read_fields(raw(dataset="moons", model="cnn"))[1]
    assert "loss" in forms.read_fields(raw(dataset="shapes", loss="bce"))[1]
    assert "data_dir" in forms.read_fields(raw(dataset="imagefolder", data_dir=str(tmp_path / "nope")))[1]
    assert "weights" in forms.read_fields(raw(weights="w.pth"))[1]          # only resnet18 loads weights
    cuda = forms.read_fields(raw(device="cuda"))[1]
    assert ("device" in cuda) == (not torch.cuda.is_available())


def test_grid_is_the_product_in_axis_order():
    base = ScenarioSpec(epochs=1)
    specs, errors = forms.build_grid(base, [("lr", "1e-2, 1e-3"), ("batchnorm", "false true"), ("", "")])
    assert errors == {}
    assert [(s.lr, s.batchnorm) for s in specs] == [(1e-2, False), (1e-2, True), (1e-3, False), (1e-3, True)]
    assert specs[0].name == "lr=0.01 bn=off" and all(s.epochs == 1 for s in specs)


def test_no_axis_is_one_run_of_the_base():
    base = ScenarioSpec(name="solo")
    assert forms.build_grid(base, [("", ""), ("", "")]) == ([base], {})


@pytest.mark.parametrize("axes, place, words", [
    ([("lr", "abc")], "axis_1", ["lr", "abc"]),
    ([("lr", "1e-2, -1")], "axis_1", ["lr", "> 0"]),
    ([("seed", "")], "axis_1", ["seed", "one or more values"]),
    ([("", "1, 2")], "axis_1", ["pick the field"]),
    ([("lr", "1e-2"), ("lr", "1e-3")], "axis_2", ["lr", "already"]),
    ([("dropout", "0.1, 0.1")], "axis_1", ["dropout", "twice"]),
    ([("optimizer", "adam, rmsprop")], "axis_1", ["optimizer", "rmsprop"]),
    ([("name", "a, b")], "axis_1", ["cannot be an axis"]),
])
def test_bad_axes_are_reported_under_their_axis(axes, place, words):
    specs, errors = forms.build_grid(ScenarioSpec(), axes)
    assert specs == []
    assert place in errors
    for word in words:
        assert word in errors[place]


def test_parse_changes_reads_tuples_and_rejects_unknown_fields():
    assert forms.parse_changes("weight_decay=1e-5, hidden_sizes=128,64\nbatchnorm=on") == {
        "weight_decay": 1e-5, "hidden_sizes": (128, 64), "batchnorm": True}
    assert forms.parse_changes("") == {}
    for text, word in [("lerning_rate=1", "lerning_rate"), ("dropout", "FIELD=VALUE"), ("name=x", "name"),
                       ("lr=1, lr=2", "twice"), ("epochs=two", "epochs")]:
        with pytest.raises(forms.SpecError) as info:
            forms.parse_changes(text)
        assert word in str(info.value)
    assert forms.parse_changes(forms.changes_text({"dropout": 0.2, "channels": (8, 16), "batchnorm": False})) == {
        "dropout": 0.2, "channels": (8, 16), "batchnorm": False}


def test_variants_skip_blank_rows_and_report_bad_ones_with_their_row():
    base = ScenarioSpec()
    rows = [{"name": "baseline", "changes": ""}, {"name": None, "changes": math.nan},
            {"name": "l2", "changes": "weight_decay=1e-5"}, {"name": "", "changes": "dropout=0.2"}]
    specs, errors = forms.build_variants(base, rows)
    assert errors == {}
    assert [s.name for s in specs] == ["baseline", "l2", "dropout=0.2"]
    specs, errors = forms.build_variants(base, [{"name": "a", "changes": "weight_decay=-1"},
                                                {"name": "b", "changes": ""}, {"name": "b", "changes": "lr=1"}])
    assert specs == []
    assert "row 1 (a): weight_decay" in errors["variants"] and "'b' is used twice" in errors["variants"]
    assert "at least one" in forms.build_variants(base, [{"name": "", "changes": ""}])[1]["variants"]


def test_read_form_collects_base_and_axis_errors_together():
    result = forms.read_form(raw(lr="-1"), "grid", [("dropout", "abc")])
    assert result.specs == [] and set(result.errors) == {"lr", "axis_1"}
    result = forms.read_form(raw(epochs=0), "variants", variant_rows=[{"name": "x", "changes": "lr=zero"}])
    assert set(result.errors) == {"epochs", "variants"}


def test_read_form_names_and_tags_the_sweep():
    now = datetime(2025, 1, 2, 3, 4, 5)
    result = forms.read_form(raw(), "grid", [("seed", "0, 1, 2")], sweep="", now=now)
    assert result.sweep == "sweep-20250102-030405"
    assert [s.seed for s in result.specs] == [0, 1, 2]
    assert all(s.tags == ("sweep-20250102-030405",) for s in result.specs)
    single = forms.read_form(raw(name="solo"), "grid", [])
    assert single.sweep is None and [s.name for s in single.specs] == ["solo"] and single.specs[0].tags == ()
    again = forms.read_form(raw(), "grid", [("lr", "1e-2 1e-3")], sweep="lr", existing_sweeps=["lr", "lr-2"])
    assert again.sweep == "lr-3"


def test_seeds_per_scenario_repeat_each_variant_next_to_itself():
    rows = [{"name": "baseline", "changes": ""}, {"name": "dropout", "changes": "dropout=0.2"}]
    result = forms.read_form(raw(seed="7"), "variants", variant_rows=rows, sweep="reg", repeats="3")
    assert result.ok and result.repeats == 3
    assert result.variants == ["baseline"] * 3 + ["dropout"] * 3
    assert [s.seed for s in result.specs] == [7, 8, 9, 7, 8, 9]
    assert [s.name for s in result.specs][:2] == ["baseline · seed 7", "baseline · seed 8"]
    assert all(s.tags == ("reg",) for s in result.specs)
    one = forms.read_form(raw(), "variants", variant_rows=rows, sweep="reg", repeats="")
    assert one.repeats == 1 and one.variants == ["baseline", "dropout"] and [s.seed for s in one.specs] == [0, 0]


@pytest.mark.parametrize("text, words", [("abc", "whole number"), ("0", "from 1 to"), ("11", "from 1 to"),
                                         ("2.5", "whole number")])
def test_bad_seed_counts_are_named(text, words):
    result = forms.read_form(raw(), "grid", [("lr", "1e-2, 1e-3")], repeats=text)
    assert result.specs == [] and words in result.errors["repeats"]


def test_seeds_per_scenario_and_a_seed_axis_conflict():
    result = forms.read_form(raw(), "grid", [("seed", "0, 1")], repeats="2")
    assert result.specs == [] and "repeats" in result.errors and "seed" in result.errors["repeats"]


def test_one_knob_changes_one_field_and_names_the_run_by_it():
    run = ScenarioSpec(name="dropout", dropout=0.2, lr=1e-3).to_dict()
    spec = forms.one_knob(run, "lr", "1e-2")
    assert (spec.name, spec.lr, spec.dropout) == ("dropout · lr=0.01", 1e-2, 0.2)
    with pytest.raises(ValueError, match="lr: is already 0.001"):
        forms.one_knob(run, "lr", "0.001")
    with pytest.raises(ValueError, match="^lr: "):
        forms.one_knob(run, "lr", "fast")
    with pytest.raises(ValueError, match="^name: is not a knob"):
        forms.one_knob(run, "name", "x")


def test_preview_shows_name_and_what_differs():
    specs = forms.build_grid(ScenarioSpec(), [("lr", "1e-2, 1e-3"), ("dropout", "0, 0.2")])[0]
    frame = forms.preview_frame(specs)
    assert list(frame.columns) == ["name", "dataset", "dropout", "lr"]       # the dataset always shows
    assert len(frame) == 4 and list(frame["lr"]) == ["0.01", "0.01", "0.001", "0.001"]
    one = forms.preview_frame([ScenarioSpec(name="x", epochs=2, batchnorm=True)])
    assert list(one.columns) == ["name", "dataset", "batchnorm", "epochs"]
    assert one.iloc[0].tolist() == ["x", "shapes", "on", "2"]
    assert list(forms.preview_frame([]).columns) == ["name"]


def test_nice_lr_keeps_two_significant_digits():
    assert forms.nice_lr(0.0954548) == 0.095 and forms.nice_lr(3.14159e-4) == 0.00031
    assert DEFAULTS["lr"] == forms.nice_lr(DEFAULTS["lr"])


def test_shared_settings_name_the_dataset_and_its_folder():
    base = ScenarioSpec(dataset="mnist", data_dir="data/digits", epochs=5)
    specs = [base.replace(name="baseline"), base.replace(name="l2", weight_decay=1e-5)]
    line = forms.shared_settings(specs)
    assert line.startswith("All 2 runs: dataset mnist (data folder data/digits)")
    assert "model mlp 256x256" in line and "adam lr 0.001" in line and "batch 64" in line and "5 epochs" in line
    assert forms.shared_settings([ScenarioSpec()]) .startswith("The run: dataset shapes · model mlp")
    mixed = forms.shared_settings([ScenarioSpec(name="a"), ScenarioSpec(name="b", dataset="moons")])
    assert "dataset" not in mixed          # differs: the table's dataset column shows it per run
    assert forms.shared_settings([]) == ""


def test_integer_fields_are_text_so_bad_typing_is_named_not_swallowed():
    assert forms.widget_kind("epochs") == "text" and forms.to_widget("epochs", 5) == "5"
    for typed in ("abc", "1e9", "2.5", ""):
        spec, errors = forms.read_fields({"epochs": typed})
        assert spec is None and errors["epochs"].startswith("epochs: expected an integer"), typed
    spec, errors = forms.read_fields({"epochs": "0"})
    assert spec is None and errors["epochs"].startswith("epochs: must be")
    spec, errors = forms.read_fields({"epochs": " 12 "})
    assert errors == {} and spec.epochs == 12


def test_data_folders_and_weights_outside_the_data_root_are_refused_under_their_field(tmp_path, monkeypatch):
    """data_dir is free text anyone on the network can type: the form keeps it inside the server's root."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TRAINLIB_DATA_ROOT", raising=False)
    root = tmp_path.resolve() / "data"
    (tmp_path / "elsewhere" / "cats").mkdir(parents=True)
    for outside in ("/etc", "..", "data/../elsewhere", str(tmp_path / "elsewhere")):
        for dataset in ("mnist", "fashion_mnist", "cifar10"):
            spec, errors = forms.read_fields(raw(dataset=dataset, data_dir=outside))
            assert spec is None and errors["data_dir"].startswith(
                f"data_dir: must be inside the data root {root} (set by TRAINLIB_DATA_ROOT when the server starts)")
        # an image folder outside is refused as such: whether it exists is not looked at (nor told)
        spec, errors = forms.read_fields(raw(dataset="imagefolder", model="cnn", data_dir=outside))
        assert spec is None and "must be inside the data root" in errors["data_dir"]
    for inside in ("data", "data/mnist", str(root / "mnist")):
        spec, errors = forms.read_fields(raw(dataset="mnist", data_dir=inside))
        assert errors == {} and spec.data_dir == inside
    spec, errors = forms.read_fields(raw(dataset="imagefolder", model="cnn", data_dir="data/cats"))
    assert "is not a folder" in errors["data_dir"]                  # inside: checked as before
    spec, errors = forms.read_fields(raw(dataset="shapes", data_dir="/etc"))
    assert errors == {}                                             # generated data: data_dir is not read
    spec, errors = forms.read_fields(raw(dataset="cifar10", model="resnet18", weights="/etc/passwd"))
    assert spec is None and errors["weights"].startswith("weights: must be inside the data root")
    spec, errors = forms.read_fields(raw(dataset="cifar10", model="resnet18", weights="data/resnet18.pth"))
    assert errors == {}
    monkeypatch.setenv("TRAINLIB_DATA_ROOT", str(tmp_path / "elsewhere"))
    spec, errors = forms.read_fields(raw(dataset="imagefolder", model="cnn", data_dir=str(tmp_path / "elsewhere/cats")))
    assert errors == {}
    spec, errors = forms.read_fields(raw(dataset="mnist", data_dir="data"))
    assert f"got 'data' (= {root})" in errors["data_dir"]
