"""The Run detail page (pages/run_detail.py) through streamlit's AppTest, on tiny runs really trained:
a finished image run, a finished 2-D run, a diverged run and a run that failed to start."""
from __future__ import annotations

import base64
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

import apphelpers
from apphelpers import current_runner, fresh_app_cache
from dashboard.state import PREFILL_SPEC, SELECTED_RUN
from trainlib import Runner, RunStore, ScenarioSpec, create_scenario, train
from trainlib.analysis import load_trained
from trainlib.models import count_parameters
from dashboard.text import plain
from trainlib.store import CHECKPOINT, read_json, update_status, write_json

PAGE = str(Path(__file__).resolve().parents[1] / "pages" / "run_detail.py")


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("detail") / "runs"
    store = RunStore(root)
    ids = {}
    for spec in (ScenarioSpec(name="shapes-mlp", dataset="shapes", train_subset=300, hidden_sizes=(32,), epochs=2,
                              device="cpu"),
                 ScenarioSpec(name="moons-mlp", dataset="moons", hidden_sizes=(8,), epochs=2, device="cpu"),
                 ScenarioSpec(name="too-fast", dataset="sine", hidden_sizes=(8,), epochs=2, optimizer="sgd",
                              lr=1e6, device="cpu")):
        folder = store.new_run(spec)
        train(create_scenario(spec, log_folder=folder))
        ids[spec.name] = folder.name
    # A run whose scenario cannot be built (no such image folder): the runner records it as failed.
    runner = Runner(root, workers=1)
    ids["no-data"] = runner.submit(ScenarioSpec(name="no-data", dataset="imagefolder", data_dir=str(root / "nowhere"),
                                                model="cnn", epochs=1, device="cpu"))
    assert runner.wait(timeout=60)
    runner.shutdown()
    return {"root": root, "ids": ids, "store": store}


@pytest.fixture
def page(trained, monkeypatch):
    """Opens the page on a run (by ?run=) with the module's runs folder and empty caches."""
    monkeypatch.setenv("TRAINLIB_RUNS_DIR", str(trained["root"]))
    st.cache_data.clear()
    fresh_app_cache()

    def open_run(name: str | None = None, root: Path | None = None) -> AppTest:
        if root is not None:
            monkeypatch.setenv("TRAINLIB_RUNS_DIR", str(root))
        at = AppTest.from_file(PAGE, default_timeout=60)
        if name is not None:
            at.query_params["run"] = trained["ids"][name]
        return at.run()

    yield open_run
    fresh_app_cache()


def array(value) -> np.ndarray:
    """Plotly JSON writes numpy arrays as typed base64 ({'dtype', 'bdata', 'shape'}); lists stay lists."""
    if isinstance(value, dict) and "bdata" in value:
        flat = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        shape = [int(n) for n in str(value.get("shape", len(flat))).split(",")]
        return flat.reshape(shape)
    return np.asarray(value)


def chart_specs(at: AppTest) -> dict[str, dict]:
    return {spec["layout"]["title"]["text"]: spec for spec in apphelpers.chart_specs(at)}


def test_finished_image_run_shows_confusion_matrix_images_and_model(trained, page):
    at = page("shapes-mlp")
    assert not at.exception
    assert at.selectbox(key="detail_run").value == trained["ids"]["shapes-mlp"]
    specs = chart_specs(at)
    assert {"Confusion matrix", "Accuracy per class"} <= set(specs)
    assert any(title.startswith("Loss (") for title in specs) and any(title.startswith("Accuracy (") for title in specs)
    confusion = specs["Confusion matrix"]["data"][0]
    assert confusion["x"] == ["circle", "square", "triangle"]
    counts = array(confusion["z"])
    assert counts.shape == (3, 3) and counts.sum() == 1000             # the whole built-in test split
    assert not at.error
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["State"] == "finished" and metrics["Epochs"] == "2 / 2"
    summary = trained["store"].read_run(trained["ids"]["shapes-mlp"])["summary"]
    assert metrics["Test accuracy"] == f"{100 * summary['test_acc']:.2f} %"
    S = load_trained(trained["store"].folder(trained["ids"]["shapes-mlp"]))
    assert metrics["Parameters"] == f"{count_parameters(S.model):,}"
    layers = [df.value for df in at.dataframe if "layer" in df.value.columns][0]
    assert list(layers["type"]) == ["Flatten", "Linear", "ReLU", "Linear"]
    wrong = 1000 - int(np.trace(counts))
    assert len(at.get("image")) == min(32, wrong)                    # the misclassified grid
    labels = {b.proto.label for b in at.get("download_button")}
    assert any("checkpoint_best.pth" in label for label in labels) and "Download metrics.csv" in labels


def test_point_run_shows_its_decision_boundary(page):
    at = page("moons-mlp")
    assert not at.exception
    boundary = chart_specs(at)["Decision boundary"]
    assert [t["type"] for t in boundary["data"]] == ["contour", "contour", "scatter", "scatter"]
    assert not at.get("image")


def test_diverged_run_shows_its_error_prominently(page):
    at = page("too-fast")
    assert not at.exception
    (error,) = at.error
    assert "diverged" in error.value and "loss became nan" in error.value
    assert any("No checkpoint yet" in info.value for info in at.info)


def test_run_that_failed_to_start_shows_its_error(page):
    at = page("no-data")
    assert not at.exception
    errors = [e.value for e in at.error]
    assert any("This run failed" in e and "DatasetUnavailable" in e for e in errors)


def test_clone_and_edit_hands_the_spec_to_new_experiment(trained, page):
    at = page("moons-mlp")
    at.button(key="detail_clone").click().run()
    assert not at.exception
    spec = trained["store"].read_spec(trained["ids"]["moons-mlp"])
    assert at.session_state[PREFILL_SPEC] == spec.to_dict()
    assert ScenarioSpec.from_dict(at.session_state[PREFILL_SPEC]) == spec


def test_selected_run_from_another_page_wins_and_names_the_address(trained, page):
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.session_state[SELECTED_RUN] = trained["ids"]["moons-mlp"]
    at.run()
    assert at.selectbox(key="detail_run").value == trained["ids"]["moons-mlp"]
    assert at.query_params["run"] == trained["ids"]["moons-mlp"]
    at.selectbox(key="detail_run").set_value(trained["ids"]["shapes-mlp"]).run()
    assert at.session_state[SELECTED_RUN] == trained["ids"]["shapes-mlp"]
    assert "Confusion matrix" in chart_specs(at)


def test_without_a_choice_the_newest_run_shows(trained, page):
    at = page()
    newest = max(trained["ids"].values())
    assert at.selectbox(key="detail_run").value == newest


def test_delete_asks_first_then_removes_the_folder(trained, page, tmp_path):
    root = tmp_path / "runs"
    source = trained["store"].folder(trained["ids"]["moons-mlp"])
    shutil.copytree(source, root / source.name)
    at = page(root=root)
    at.button(key="detail_delete").click().run()
    assert (root / source.name).is_dir()                  # only asked so far
    at.button(key="detail_delete_no").click().run()
    assert (root / source.name).is_dir()
    at.button(key="detail_delete").click().run()
    at.button(key="detail_delete_yes").click().run()
    assert not at.exception
    assert not (root / source.name).exists()
    assert any("No runs yet" in info.value for info in at.info)


def test_a_training_run_polls_and_cannot_be_deleted(page, tmp_path, monkeypatch, polling):
    calls = polling
    store = RunStore(tmp_path / "runs")
    folder = store.new_run(ScenarioSpec(name="busy", dataset="moons", hidden_sizes=(8,), epochs=3))
    update_status(folder, state="running", pid=os.getppid(), epoch=0)     # a living process that is not this one
    at = page(root=tmp_path / "runs")
    assert not at.exception
    assert calls == ["1s"]
    assert at.button(key="detail_delete").disabled
    assert any("No finished epochs yet" in info.value for info in at.info)
    update_status(folder, state="stopped", epoch=0)
    at.run()
    assert calls == ["1s"] and not at.button(key="detail_delete").disabled     # it watches no more
    assert any("stopped" in warning.value for warning in at.warning)


def test_clone_and_edit_through_the_app_opens_new_experiment(trained, page):
    """Through navigation.py's navigation the button really switches page (New experiment consumes the spec)."""
    at = AppTest.from_file(str(Path(PAGE).parents[1] / "navigation.py"), default_timeout=60).run()
    at.switch_page("pages/run_detail.py").run()
    at.selectbox(key="detail_run").set_value(trained["ids"]["moons-mlp"]).run()
    at.button(key="detail_clone").click().run()
    assert not at.exception
    assert [t.value for t in at.title] == ["New experiment"]


# ----------------------------------------------------------------------------- odd names, broken files, data
def shown(markdown: str) -> str:
    """Markdown source as the reader sees it: backslash escapes removed."""
    return re.sub(r"\\(.)", r"\1", markdown)


def copied_run(trained, tmp_path, name: str = "moons-mlp") -> Path:
    """A copy of one of the module's trained runs in a runs folder of this test's own."""
    source = trained["store"].folder(trained["ids"][name])
    target = tmp_path / "runs" / source.name
    shutil.copytree(source, target)
    return target


def test_a_name_with_markdown_is_shown_as_text(trained, page, tmp_path):
    """A name is text: '![x](http://host/p.png)' must not make every viewer's browser fetch that address."""
    folder = copied_run(trained, tmp_path)
    name = "![x](http://host/p.png) **bold** [link](http://host)"
    spec = read_json(folder / "scenario.json")
    write_json(folder / "scenario.json", {**spec, "name": name, "tags": ["![t](http://host/t.png)"]})
    update_status(folder, sweep="[s](http://host/s)", state="failed", error="![e](http://host/e.png)")
    at = page(root=tmp_path / "runs")
    assert not at.exception
    (header,) = at.header
    assert header.value == plain(name) and shown(header.value) == name
    every_text = [e.value for kind in ("header", "caption", "error", "warning", "info", "markdown")
                  for e in at.get(kind)]
    assert not [text for text in every_text if "](http" in text]        # no link or image syntax left as such
    assert any(shown(text).startswith(f"run {folder.name} · sweep [s](http://host/s) · tags ![t]")
               for text in every_text)
    errors = [shown(e.value) for e in at.error]
    assert any(e.startswith("**This run failed.**") and e.endswith("![e](http://host/e.png)") for e in errors)


@pytest.mark.parametrize("content, why", [
    (b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe binary", "it is not UTF-8 text"),
    (b"loss,accuracy\n0.5,0.8\n", "it has no 'epoch' column (its columns: 'loss', 'accuracy')"),
])
def test_an_unreadable_metrics_csv_is_said_and_the_rest_of_the_page_works(trained, page, tmp_path, content, why):
    """A binary metrics.csv raised UnicodeDecodeError (download button); one without epoch, KeyError."""
    folder = copied_run(trained, tmp_path)
    (folder / "metrics.csv").write_bytes(content)
    at = page(root=tmp_path / "runs")
    assert not at.exception, [e.value for e in at.exception]
    errors = [shown(e.value) for e in at.error]
    assert any(e.startswith(f"metrics.csv cannot be read: {why}") for e in errors), errors
    assert "Decision boundary" in chart_specs(at)                     # the evaluation still shows
    assert {m.label: m.value for m in at.metric}["State"] == "finished"
    labels = {b.proto.label for b in at.get("download_button")}
    assert "Download metrics.csv" in labels and any(CHECKPOINT in label for label in labels)


def folders_under(path: Path) -> set[Path]:
    """Folders below path, but for the dashboard's own runner heartbeats (runs/.runners)."""
    return {p for p in path.rglob("*") if p.is_dir() and not any(part.startswith(".") for part in p.parts)}


def test_viewing_a_run_whose_dataset_is_absent_creates_nothing(page, tmp_path, monkeypatch, no_download):
    """torchvision's download=True made <data_dir>/MNIST/raw: viewing a run created folders anywhere."""
    from test_analysis import mnist_run_by_hand
    monkeypatch.setenv("TRAINLIB_DATA_ROOT", str(tmp_path))
    mnist_run_by_hand(RunStore(tmp_path / "runs"), tmp_path / "nowhere" / "deep")
    before = folders_under(tmp_path)
    at = page(root=tmp_path / "runs")
    assert not at.exception
    assert folders_under(tmp_path) == before
    expected = f"the dataset files are not in {tmp_path / 'nowhere' / 'deep' / 'MNIST' / 'raw'}"
    assert any(expected in shown(e.value) for e in at.error), [e.value for e in at.error]


def test_a_run_reading_outside_the_data_root_is_not_evaluated(page, tmp_path, monkeypatch, no_download):
    """Its files are there and readable: only the server's data root keeps the page from reading them."""
    from test_data import write_idx_mnist
    from test_analysis import mnist_run_by_hand
    write_idx_mnist(tmp_path / "elsewhere")
    monkeypatch.setenv("TRAINLIB_DATA_ROOT", str(tmp_path / "datasets"))
    mnist_run_by_hand(RunStore(tmp_path / "runs"), tmp_path / "elsewhere")
    at = page(root=tmp_path / "runs")
    assert not at.exception
    warnings = [shown(w.value) for w in at.warning]
    expected = (f"data_dir: must be inside the data root {(tmp_path / 'datasets').resolve()} (set by "
                f"TRAINLIB_DATA_ROOT when the server starts); got {str(tmp_path / 'elsewhere')!r}")
    assert f"Not evaluated: {expected}" in warnings and f"The model is not built: {expected}" in warnings
    assert "Confusion matrix" not in chart_specs(at) and not at.error


def test_an_mnist_run_inside_the_data_root_is_evaluated_through_torchvision(page, tmp_path, monkeypatch,
                                                                             no_download):
    from test_data import write_idx_mnist
    write_idx_mnist(tmp_path / "data", n_train=50, n_test=20)
    monkeypatch.setenv("TRAINLIB_DATA_ROOT", str(tmp_path / "data"))
    spec = ScenarioSpec(name="digits", dataset="mnist", data_dir=str(tmp_path / "data"), hidden_sizes=(8,),
                        epochs=1, device="cpu")
    folder = RunStore(tmp_path / "runs").new_run(spec)
    train(create_scenario(spec, log_folder=folder))
    at = page(root=tmp_path / "runs")
    assert not at.exception and not at.error and not at.warning
    confusion = chart_specs(at)["Confusion matrix"]["data"][0]
    assert len(confusion["x"]) == 10 and array(confusion["z"]).sum() == 20


def test_a_folder_whose_name_is_not_utf8_does_not_take_the_page_down(trained, page, tmp_path):
    folder = copied_run(trained, tmp_path)
    shutil.copytree(os.fsencode(folder), os.path.join(os.fsencode(tmp_path / "runs"), b"copy\xff"))
    at = page(root=tmp_path / "runs")
    assert not at.exception, [e.value for e in at.exception]
    picker = at.selectbox(key="detail_run")
    assert picker.value == folder.name and len(picker.options) == 1


def test_clone_and_change_one_knob_queues_a_run_named_by_the_difference(trained, page, tmp_path):
    root = tmp_path / "runs"
    source = trained["ids"]["moons-mlp"]
    shutil.copytree(trained["store"].folder(source), root / source)
    update_status(root / source, sweep="class", variant="moons-mlp", position=0)
    at = page("moons-mlp", root=root)
    at.selectbox(key="detail_knob_field").set_value("lr")
    at.text_input(key="detail_knob_value").set_value("fast")
    at.button(key="detail_knob_run").click().run()
    assert any(e.value.replace("\\", "").startswith("lr: ") for e in at.error)   # named (escaped text); nothing queued
    assert len(RunStore(root).list_runs()) == 1
    at.text_input(key="detail_knob_value").set_value("1e-2")
    at.button(key="detail_knob_run").click().run()
    assert not at.exception
    runs = RunStore(root).list_runs().set_index("name")
    new = runs.loc["moons-mlp · lr=0.01"]
    assert (new["lr"], new["sweep"], new["variant"], int(new["position"])) == (1e-2, "class", "moons-mlp · lr=0.01", 1)
    assert new["hidden_sizes"] == runs.loc["moons-mlp", "hidden_sizes"]   # everything else as the run had it

    at.button(key="detail_knob_run").click().run()          # the same change again: that variant exists
    assert any("variant moons-mlp · lr=0.01 already" in e.value.replace("\\", "") for e in at.error)
    assert len(RunStore(root).list_runs()) == 2

    # Another seed is a repeat of the run's variant: same variant and position, so Compare groups it.
    at.selectbox(key="detail_knob_field").set_value("seed")
    at.text_input(key="detail_knob_value").set_value("7")
    at.button(key="detail_knob_run").click().run()
    assert not at.exception and not at.error
    repeat = RunStore(root).list_runs().set_index("name").loc["moons-mlp · seed=7"]
    assert (repeat["seed"], repeat["variant"], int(repeat["position"])) == (7, "moons-mlp", 0)
    at.button(key="detail_knob_run").click().run()           # seed 7 of that variant exists now
    assert any(e.value.replace("\\", "").startswith("seed: moons-mlp has a run with seed 7") for e in at.error)
    assert len(RunStore(root).list_runs()) == 3
    current_runner().stop_all()



def test_a_single_run_has_the_colour_it_has_on_the_runs_page(page, tmp_path, monkeypatch):
    """Runs outside a sweep share the Runs page's 'Single runs' chart, where no two take one colour
    (nine runs, eight colours: some would collide alone): Run detail draws each in that colour."""
    import pandas as pd
    from trainlib.store import write_atomic

    root = tmp_path / "runs"
    store = RunStore(root)
    ids = []
    for i in range(9):
        folder = store.new_run(ScenarioSpec(name=f"single-{i}", epochs=1))
        write_atomic(folder / "metrics.csv", pd.DataFrame(
            [[1, 0.5 + i / 10, 0.8, 0.6 + i / 10, 0.8, 1e-3, 0.5, 100.0]],
            columns=["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds", "samples_per_s"],
        ).to_csv(index=False))
        update_status(folder, state="finished", epoch=1)
        ids.append(folder.name)

    def colours(spec: dict) -> dict[str, str]:
        found: dict[str, str] = {}
        for trace in spec["data"]:
            color = (trace.get("line") or {}).get("color")
            if trace.get("legendgroup") in ids and color:
                found.setdefault(trace["legendgroup"], color)
        return found

    monkeypatch.setenv("TRAINLIB_RUNS_DIR", str(root))
    runs_page = AppTest.from_file(str(Path(PAGE).parent / "live.py"), default_timeout=60).run()
    assert not runs_page.exception
    (curves,) = apphelpers.chart_specs(runs_page)
    on_runs = colours(curves)
    assert set(on_runs) == set(ids)
    for run_id in ids:
        at = AppTest.from_file(PAGE, default_timeout=60)
        at.query_params["run"] = run_id
        at.run()
        assert not at.exception
        (loss,) = [spec for title, spec in chart_specs(at).items() if title.startswith("Loss")]
        assert colours(loss) == {run_id: on_runs[run_id]}, run_id
