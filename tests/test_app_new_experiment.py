"""The New experiment page under AppTest: presets, grids and clones queue exactly the right runs;
bad values queue nothing and say which field is wrong, right under it."""
from __future__ import annotations

import json

from apphelpers import app_runs, button, current_runner, open_app, texts  # noqa: F401 (app_runs: fixture)
from dashboard.state import PREFILL_SPEC
from trainlib.store import RunStore

REGULARIZATION = "Regularization"


def make_tiny(at) -> None:
    """Shrink whatever the form holds to a run of a second or so."""
    at.text_input(key="ne_train_subset").set_value("200")
    at.text_input(key="ne_hidden_sizes").set_value("16,16")
    at.text_input(key="ne_epochs").set_value("1")


def test_regularization_preset_queues_the_four_course_runs(app_runs):
    at = open_app()
    assert at.title[0].value == "New experiment"
    button(at, REGULARIZATION).click().run()
    make_tiny(at)
    at.run()
    preview = at.dataframe[-1].value
    assert list(preview["name"]) == ["baseline", "l2", "dropout", "batchnorm"]
    button(at, "Run 4 scenarios").click().run()
    assert not at.exception

    # The click queued the runs and opened the Runs page.
    assert at.title[0].value == "Runs"
    assert "Queued 4 runs of sweep regularization." in texts(at.success)
    names = [m for m in texts(at.markdown) if m.startswith("**")]
    assert names == ["**baseline**", "**l2**", "**dropout**", "**batchnorm**"]     # in the order queued
    runs = RunStore(app_runs).list_runs().set_index("name")
    assert sorted(runs.index) == ["baseline", "batchnorm", "dropout", "l2"]
    assert set(runs["sweep"]) == {"regularization"}
    assert runs.loc["l2", "weight_decay"] == 1e-5 and runs.loc["baseline", "weight_decay"] == 0
    assert runs.loc["dropout", "dropout"] == 0.2 and runs.loc["l2", "dropout"] == 0
    assert bool(runs.loc["batchnorm", "batchnorm"]) and not bool(runs.loc["dropout", "batchnorm"])
    for column, value in {"dataset": "shapes", "model": "mlp", "optimizer": "adam", "lr": 1e-3,
                          "batch_size": 64, "epochs": 1, "train_subset": 200, "hidden_sizes": "16,16"}.items():
        assert set(runs[column]) == {value}, column

    # They train to the end in the background; polling the page shows them finished.
    runner = current_runner()
    assert runner.wait(timeout=60)
    at.run()
    finished = RunStore(app_runs).list_runs()
    assert set(finished["state"]) == {"finished"}
    assert finished["test_acc"].between(0, 1).all()
    button(at, "Compare").click().run()        # a finished sweep opens on the Compare page
    assert not at.exception
    assert at.query_params.get("sweep") == "regularization"
    assert at.multiselect(key="compare_sweeps").value == ["regularization"]


def test_axis_grid_queues_the_product(app_runs):
    at = open_app()
    make_tiny(at)
    at.selectbox(key="ne_axis_field_1").set_value("lr")
    at.text_input(key="ne_axis_values_1").set_value("1e-2, 1e-3")
    at.selectbox(key="ne_axis_field_2").set_value("batchnorm")
    at.text_input(key="ne_axis_values_2").set_value("false, true")
    at.text_input(key="ne_sweep").set_value("grid-test")
    at.run()
    assert len(at.dataframe[-1].value) == 4
    button(at, "Run 4 scenarios").click().run()
    runs = RunStore(app_runs).list_runs()
    assert len(runs) == 4 and set(runs["sweep"]) == {"grid-test"}
    assert sorted(zip(runs["lr"], runs["batchnorm"])) == [(1e-3, False), (1e-3, True), (1e-2, False), (1e-2, True)]


def test_bad_values_queue_nothing_and_show_the_error_under_the_field(app_runs):
    at = open_app()
    at.text_input(key="ne_lr").set_value("-1").run()
    errors = [m for m in texts(at.error) if m.startswith("lr:")]
    assert errors and "-1" in errors[0]
    # st.error sits right under the field: in the same column, just after the lr input.
    column = next(c for c in at.columns if any(t.key == "ne_lr" for t in c.text_input))
    assert any(m.startswith("lr:") for m in texts(column.error))
    assert button(at, "Run").disabled            # nothing can be queued
    assert any("Nothing can run yet" in m for m in texts(at.error))

    at.text_input(key="ne_lr").set_value("1e-3")
    at.selectbox(key="ne_axis_field_1").set_value("lr")
    at.text_input(key="ne_axis_values_1").set_value("1e-2, abc")
    at.run()
    messages = texts(at.error)
    assert any("axis 1" in m and "lr" in m and "abc" in m for m in messages), messages
    assert not any(m.startswith("lr:") for m in messages)
    assert button(at, "Run").disabled
    assert RunStore(app_runs).list_runs().empty


def test_variants_table_edits_are_checked(app_runs):
    at = open_app()
    button(at, REGULARIZATION).click().run()
    editor_key = next(k for k in at.session_state if str(k).startswith("ne_variants_editor_"))
    at.session_state[editor_key] = {"edited_rows": {1: {"changes": "weight_decay=-1"}},
                                    "added_rows": [{"name": "wide", "changes": "hidden_sizes=512,512"}],
                                    "deleted_rows": [3]}
    at.run()
    assert any("row 2 (l2): weight_decay" in m for m in texts(at.error))
    at.session_state[editor_key] = {"edited_rows": {1: {"changes": "weight_decay=1e-4"}},
                                    "added_rows": [{"name": "wide", "changes": "hidden_sizes=512,512"}],
                                    "deleted_rows": [3]}
    at.run()
    assert not at.error
    assert list(at.dataframe[-1].value["name"]) == ["baseline", "l2", "dropout", "wide"]


def test_prefill_from_another_page_fills_the_form_once(app_runs):
    at = open_app()
    at.session_state[PREFILL_SPEC] = {"name": "clone", "dataset": "moons", "hidden_sizes": [32], "lr": 0.003,
                                      "dropout": 0.1, "epochs": 2, "train_subset": 300, "tags": []}
    at.run()
    assert at.text_input(key="ne_lr").value == "0.003"
    assert at.selectbox(key="ne_dataset").value == "moons"
    assert at.text_input(key="ne_hidden_sizes").value == "32"
    assert at.text_input(key="ne_name").value == "clone"
    assert PREFILL_SPEC not in at.session_state            # consumed: later edits are not overwritten
    at.text_input(key="ne_epochs").set_value("1").run()
    button(at, "Run 1 scenario").click().run()
    runs = RunStore(app_runs).list_runs()
    assert len(runs) == 1
    row = runs.iloc[0]
    assert (row["name"], row["dataset"], row["hidden_sizes"], row["lr"], row["dropout"], row["epochs"]) == (
        "clone", "moons", "32", 0.003, 0.1, 1)
    assert row["sweep"] is None


def test_dataset_picker_says_what_is_missing_offline(app_runs):
    at = open_app()
    assert "shapes: built-in" in texts(at.caption)
    at.selectbox(key="ne_dataset").set_value("mnist").run()
    assert "mnist: cannot download" in texts(at.caption)                           # TRAINLIB_OFFLINE=1
    (warning,) = texts(at.warning)
    assert "Put these files in" in warning and "train-images-idx3-ubyte.gz" in warning
    assert at.text_input(key="ne_data_dir").value == "data"


def test_the_dataset_shown_is_the_dataset_trained(app_runs, tmp_path, monkeypatch):
    """Regularization preset -> dataset mnist -> type a data folder -> Run: the four runs train mnist
    from that folder. The picker's labels used to carry each dataset's status ('mnist · cannot
    download'); typing a folder changed the label, the label the browser sent back matched no option,
    and Streamlit reset the choice to 'shapes' while the box still showed mnist."""
    from test_data import write_idx_mnist
    monkeypatch.setenv("TRAINLIB_DATA_ROOT", str(tmp_path))
    write_idx_mnist(tmp_path / "digits")
    at = open_app()
    button(at, REGULARIZATION).click().run()
    picker = at.selectbox(key="ne_dataset")
    assert picker.options == ["shapes", "moons", "circles", "spirals", "sine", "mnist", "fashion_mnist",
                              "cifar10", "imagefolder"]       # plain names: a label never changes under the user
    picker.set_value("mnist").run()
    assert "mnist: cannot download" in texts(at.caption)
    # The browser sends the label it shows, together with the new folder.
    at.selectbox(key="ne_dataset").set_value("mnist")
    at.text_input(key="ne_data_dir").set_value(str(tmp_path / "digits"))
    at.run()
    assert at.selectbox(key="ne_dataset").value == "mnist"
    assert "mnist: downloaded" in texts(at.caption)
    shared = next(c for c in texts(at.caption) if c.startswith("All 4 runs:"))
    assert f"dataset mnist (data folder {tmp_path / 'digits'})" in shared
    assert set(at.dataframe[-1].value["dataset"]) == {"mnist"}
    at.text_input(key="ne_epochs").set_value("1")
    at.run()
    button(at, "Run 4 scenarios").click().run()
    assert not at.exception
    folders = [p for p in app_runs.iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert len(folders) == 4
    for folder in folders:
        spec = json.loads((folder / "scenario.json").read_text())
        assert (spec["dataset"], spec["data_dir"]) == ("mnist", str(tmp_path / "digits"))
    assert current_runner().wait(timeout=60)
    assert set(RunStore(app_runs).list_runs()["state"]) == {"finished"}


def test_bad_integers_are_named_not_turned_into_1(app_runs):
    at = open_app()
    for typed in ("abc", "1e9"):
        at.text_input(key="ne_epochs").set_value(typed).run()
        assert any(m.startswith("epochs: expected an integer") and typed in m for m in texts(at.error)), typed
        assert button(at, "Run").disabled
    at.text_input(key="ne_epochs").set_value("3").run()
    assert not [m for m in texts(at.error) if m.startswith("epochs")]


def test_seeds_per_scenario_and_the_class_guess_are_kept_with_the_sweep(app_runs):
    from trainlib.predictions import read_predictions

    at = open_app()
    button(at, REGULARIZATION).click().run()
    make_tiny(at)
    at.text_input(key="ne_repeats").set_value("2").run()
    assert "**8 scenarios** (4 × 2 seeds) as sweep **regularization**" in " ".join(texts(at.markdown))
    at.selectbox(key="ne_prediction").set_value("dropout").run()
    button(at, "Run 8 scenarios").click().run()
    assert not at.exception and at.title[0].value == "Runs"
    runs = RunStore(app_runs).list_runs().set_index("name")
    assert sorted(runs.index)[:2] == ["baseline · seed 0", "baseline · seed 1"]
    assert runs.loc["dropout · seed 1", "variant"] == "dropout" and runs.loc["dropout · seed 1", "seed"] == 1
    assert {v: int(p) for v, p in zip(runs["variant"], runs["position"])} == {
        "baseline": 0, "l2": 1, "dropout": 2, "batchnorm": 3}           # repeats share their variant's place
    assert read_predictions(app_runs, "regularization") == ["dropout"]
    current_runner().stop_all()
    # Another preset: the guess's options change with it, nothing breaks.
    at = open_app()
    button(at, REGULARIZATION).click().run()
    at.selectbox(key="ne_prediction").set_value("l2").run()
    button(at, "Learning rate").click().run()
    assert not at.exception
    assert at.selectbox(key="ne_prediction").options == ["(no guess)", "lr=0.1", "lr=0.01", "lr=0.001", "lr=0.0001"]


def test_a_seed_axis_and_seeds_per_scenario_are_refused_together(app_runs):
    at = open_app()
    at.selectbox(key="ne_axis_field_1").set_value("seed")
    at.text_input(key="ne_axis_values_1").set_value("0, 1")
    at.text_input(key="ne_repeats").set_value("3").run()
    assert any("seed" in e.value and "repeats" in e.value for e in at.error)
    assert button(at, "Run").disabled
