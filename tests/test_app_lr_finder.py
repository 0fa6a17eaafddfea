"""The LR finder page: a short search on a tiny scenario, its chart, and the hand-off to New experiment."""
from __future__ import annotations

import pandas as pd

from apphelpers import app_runs, button, chart_specs, open_app, texts  # noqa: F401 (app_runs: fixture)
from dashboard import forms
from dashboard.live_figures import lr_finder_figure


def test_lr_finder_figure_marks_the_suggestion_on_a_log_axis():
    frame = pd.DataFrame({"lr": [1e-4, 1e-3, 1e-2, 1e-1, 1.0], "loss": [1.0, 0.9, 0.5, 0.6, 5.0]})
    frame["smoothed_loss"] = [1.0, 0.95, 0.7, 0.65, 2.0]
    fig = lr_finder_figure(frame, 1e-2)
    assert fig.layout.xaxis.type == "log"
    assert [t.name for t in fig.data] == ["loss", "smoothed loss", "suggested lr 0.01"]
    assert list(fig.data[2].x) == [1e-2, 1e-2]
    assert fig.layout.yaxis.range[1] == 1.3           # the blow-up to 2.0 does not set the scale
    assert len(lr_finder_figure(frame, None).data) == 2


def test_find_lr_on_a_tiny_scenario_and_hand_it_to_new_experiment(app_runs):
    at = open_app("pages/lr_finder.py")
    assert at.title[0].value == "Learning-rate finder"
    assert texts(at.info)                                       # the guard: nothing found yet
    assert not chart_specs(at)

    at.selectbox(key="lf_dataset").set_value("moons")
    at.text_input(key="lf_train_subset").set_value("512")
    at.text_input(key="lf_hidden_sizes").set_value("16")
    at.text_input(key="lf_batch_size").set_value("32")
    at.text_input(key="lf_steps").set_value("60")
    at.text_input(key="lf_start_lr").set_value("1e-4")
    at.run()
    button(at, "Find the learning rate").click().run()
    assert not at.exception and not at.error

    result = at.session_state["lf_result"]
    assert len(result["frame"]) >= 10 and result["spec"]["dataset"] == "moons"
    (spec,) = chart_specs(at)
    assert spec["layout"]["xaxis"]["type"] == "log"
    names = [trace["name"] for trace in spec["data"]]
    assert names[:2] == ["loss", "smoothed loss"]
    suggested = result["suggested_lr"]
    assert suggested is not None and 1e-4 <= suggested <= 10
    assert names[2] == f"suggested lr {suggested:.2g}"

    button(at, "Use this lr in New experiment").click().run()
    assert not at.exception
    assert at.title[0].value == "New experiment"              # switched, and the form holds the setup
    lr = forms.nice_lr(suggested)
    assert at.text_input(key="ne_lr").value == f"{lr:g}"
    assert at.selectbox(key="ne_dataset").value == "moons"
    assert at.text_input(key="ne_hidden_sizes").value == "16"
    assert at.text_input(key="ne_batch_size").value == "32"
    assert at.text_input(key="ne_train_subset").value == "512"
    assert at.text_input(key="ne_name").value == f"lr={lr:g}"


def test_bad_search_range_is_reported_and_blocks_the_search(app_runs):
    at = open_app("pages/lr_finder.py")
    at.text_input(key="lf_start_lr").set_value("10")
    at.text_input(key="lf_hidden_sizes").set_value("16,a")
    at.run()
    messages = texts(at.error)
    assert any(m.startswith("range:") for m in messages) and any(m.startswith("hidden_sizes:") for m in messages)
    assert button(at, "Find the learning rate").disabled


def test_missing_dataset_is_an_error_with_the_files_to_provide(app_runs, no_download, tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINLIB_DATA_ROOT", str(tmp_path))
    at = open_app("pages/lr_finder.py")
    at.selectbox(key="lf_dataset").set_value("mnist").run()
    at.text_input(key="lf_data_dir").set_value(str(tmp_path / "data")).run()
    button(at, "Find the learning rate").click().run()
    assert not at.exception
    assert any("Put these files in" in m for m in texts(at.error))
    assert "lf_result" not in at.session_state and not chart_specs(at)
