"""The dashboard's pure helpers: figures (dashboard/figures.py) and tables (dashboard/tables.py).

Small hand-made frames shaped like RunStore.list_runs() and RunStore.load_metrics(), so every
expected value is known.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dashboard import figures, tables
from trainlib.spec import ScenarioSpec


def metrics_frame(runs: dict[str, dict[str, list[float]]]) -> pd.DataFrame:
    """Long metrics: {run_id: {column: values per epoch}} -> RunStore.load_metrics layout."""
    frames = []
    for run_id, columns in runs.items():
        n = len(columns["train_loss"])
        frame = pd.DataFrame({"run_id": run_id, "name": f"name-{run_id}", "epoch": range(1, n + 1)})
        for column in ("train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds", "samples_per_s"):
            frame[column] = columns.get(column, [0.5] * n)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def runs_frame(specs: dict[str, ScenarioSpec], test_acc: dict[str, float | None] | None = None,
               sweep: dict[str, str | None] | None = None, state: dict[str, str] | None = None) -> pd.DataFrame:
    """Rows like RunStore.list_runs(): run facts plus every spec field, lists joined by ','."""
    rows = []
    for run_id, spec in specs.items():
        row = {"run_id": run_id, "state": (state or {}).get(run_id, "finished"), "sweep": (sweep or {}).get(run_id),
               "epoch": spec.epochs, "epochs": spec.epochs, "test_acc": (test_acc or {}).get(run_id)}
        for key, value in spec.to_dict().items():
            row[key] = ",".join(map(str, value)) if isinstance(value, list) else value
        rows.append(row)
    return pd.DataFrame(rows)


@pytest.fixture
def three_runs() -> pd.DataFrame:
    return metrics_frame({
        "r1": {"train_loss": [1.0, 0.6, 0.4], "val_loss": [1.1, 0.8, 0.9], "train_acc": [0.5, 0.7, 0.8],
               "val_acc": [0.45, 0.6, 0.62], "seconds": [2.0, 1.5, 1.0]},
        "r2": {"train_loss": [0.9, 0.7], "val_loss": [0.95, 0.75], "train_acc": [0.55, 0.65],
               "val_acc": [0.5, 0.6], "seconds": [3.0, 3.5]},
        "r3": {"train_loss": [1.2, 1.0, 0.9], "val_loss": [1.2, 1.05, 0.97], "train_acc": [0.4, 0.5, 0.55],
               "val_acc": [0.38, 0.48, 0.5], "seconds": [0.5, 0.25, 0.25]},
    })


def traces_of(fig, run_id_name: str):
    return [t for t in fig.data if t.name and t.name.startswith(run_id_name)]


# ----------------------------------------------------------------------------- curves
def test_overlay_has_train_and_dashed_val_per_run_in_one_colour(three_runs):
    colors = figures.run_colors(["r1", "r2", "r3"])
    fig = figures.curves_overlay(three_runs, "loss", "epoch", colors)
    assert len(fig.data) == 3 * 2 + 2          # train + val per run, two line-style keys
    for run_id in ("r1", "r2", "r3"):
        train, val = traces_of(fig, f"name-{run_id}")
        assert train.line.dash == "solid" and val.line.dash == "dash"
        assert train.line.color == val.line.color == colors[run_id]
        assert train.line.width == val.line.width == figures.LINE_WIDTH
        assert train.legendgroup == val.legendgroup == run_id     # one legend click hides both
    train, val = traces_of(fig, "name-r1")
    assert list(train.x) == [1, 2, 3]
    assert list(train.y) == [1.0, 0.6, 0.4] and list(val.y) == [1.1, 0.8, 0.9]
    assert len(set(colors.values())) == 3
    assert fig.layout.font.size == figures.FONT_SIZE


def test_overlay_accuracy_is_in_percent(three_runs):
    fig = figures.curves_overlay(three_runs, "acc", "epoch")
    train, val = traces_of(fig, "name-r2")
    assert list(train.y) == pytest.approx([55.0, 65.0])
    assert list(val.y) == pytest.approx([50.0, 60.0])
    assert "%" in fig.layout.yaxis.title.text


def test_wall_time_x_is_cumulative_seconds(three_runs):
    fig = figures.curves_overlay(three_runs, "loss", "wall")
    expected = {"r1": [2.0, 3.5, 4.5], "r2": [3.0, 6.5], "r3": [0.5, 0.75, 1.0]}
    for run_id, cumulative in expected.items():
        for trace in traces_of(fig, f"name-{run_id}"):
            assert list(trace.x) == pytest.approx(cumulative)
    assert "wall time" in fig.layout.xaxis.title.text


def test_wall_time_follows_epoch_order_even_when_rows_are_shuffled(three_runs):
    shuffled = three_runs.sample(frac=1.0, random_state=3)
    fig = figures.curves_overlay(shuffled, "loss", "wall", figures.run_colors(["r1", "r2", "r3"]))
    train, _ = traces_of(fig, "name-r1")
    assert list(train.x) == pytest.approx([2.0, 3.5, 4.5])
    assert list(train.y) == [1.0, 0.6, 0.4]


def test_colours_follow_the_mapping_in_every_chart(three_runs):
    colors = {"r1": "#111111", "r2": "#222222", "r3": "#333333"}
    overlay = figures.curves_overlay(three_runs, "loss", "epoch", colors)
    panels = figures.curves_small_multiples(three_runs, "acc", "epoch", colors)
    gap = figures.overfitting_gap(three_runs, "epoch", colors)
    runs = runs_frame({r: ScenarioSpec(name=f"name-{r}") for r in ("r1", "r2", "r3")},
                      test_acc={"r1": 0.9, "r2": 0.8, "r3": 0.7})
    bars = figures.test_accuracy_bars(runs, colors)
    for run_id, color in colors.items():
        for fig in (overlay, panels, gap):
            assert {t.line.color for t in traces_of(fig, f"name-{run_id}")} == {color}
    assert list(bars.data[0].marker.color) == ["#111111", "#222222", "#333333"]


def test_default_colours_are_the_palette_in_run_order(three_runs):
    fig = figures.curves_overlay(three_runs, "loss", "epoch")
    assert traces_of(fig, "name-r1")[0].line.color == figures.PALETTE[0]
    assert traces_of(fig, "name-r3")[0].line.color == figures.PALETTE[2]
    many = figures.run_colors([f"r{i}" for i in range(10)])
    assert many["r0"] == many["r8"] == figures.PALETTE[0]          # the palette repeats after 8


def test_small_multiples_one_panel_per_run_with_shared_axes(three_runs):
    fig = figures.curves_small_multiples(three_runs, "loss", "epoch", columns=2)
    titles = [a.text for a in fig.layout.annotations]
    assert titles == ["name-r1", "name-r2", "name-r3"]
    assert len(fig.data) == 3 * 2 + 2
    axes = {t.xaxis for t in fig.data if t.x is not None and t.x[0] is not None}
    assert axes == {"x", "x2", "x3"}
    for letter in ("x", "y"):       # every panel's axis matches one and the same axis
        axes = [(name, fig.layout[name]) for name in fig.layout if name.startswith(f"{letter}axis")]
        assert len(axes) == 4
        assert len({axis.matches or name.replace("axis", "") for name, axis in axes}) == 1
    r2_train, r2_val = traces_of(fig, "name-r2")
    assert r2_train.line.dash == "solid" and r2_val.line.dash == "dash"
    assert list(r2_val.y) == [0.95, 0.75]


def test_overfitting_gap_is_val_minus_train(three_runs):
    fig = figures.overfitting_gap(three_runs)
    assert len(fig.data) == 3
    (r1,) = traces_of(fig, "name-r1")
    assert list(r1.y) == pytest.approx([0.1, 0.2, 0.5])


def test_regression_runs_have_no_accuracy_curves():
    metrics = metrics_frame({"s": {"train_loss": [0.3, 0.2], "val_loss": [0.3, 0.25],
                                   "train_acc": [np.nan, np.nan], "val_acc": [np.nan, np.nan]}})
    fig = figures.curves_overlay(metrics, "acc", "epoch")
    assert len(fig.data) == 0
    assert "regression" in fig.layout.annotations[0].text


def test_empty_metrics_give_a_message_not_an_error():
    empty = pd.DataFrame(columns=["run_id", "name", "epoch", "train_loss", "train_acc", "val_loss", "val_acc",
                                  "lr", "seconds", "samples_per_s"])
    for fig in (figures.curves_overlay(empty), figures.curves_small_multiples(empty), figures.overfitting_gap(empty)):
        assert len(fig.data) == 0
        assert "No finished epochs" in fig.layout.annotations[0].text


def test_bad_metric_or_axis_is_named():
    with pytest.raises(ValueError, match="metric"):
        figures.curves_overlay(pd.DataFrame(), "f1")
    with pytest.raises(ValueError, match="x must be"):
        figures.curves_overlay(pd.DataFrame(), "loss", "step")


def test_chart_config_exports_png_at_twice_the_size():
    config = figures.chart_config("loss")
    assert config["toImageButtonOptions"] == {"format": "png", "scale": 2, "filename": "loss"}


# ----------------------------------------------------------------------------- results
def test_test_accuracy_bars_in_percent_labelled_and_only_finished_runs():
    runs = runs_frame({"a": ScenarioSpec(name="base"), "b": ScenarioSpec(name="l2"), "c": ScenarioSpec(name="wip")},
                      test_acc={"a": 0.9769, "b": 0.9773, "c": None}, state={"c": "running"})
    fig = figures.test_accuracy_bars(runs)
    (bars,) = fig.data
    assert list(bars.x) == ["base", "l2"]
    assert list(bars.y) == pytest.approx([97.69, 97.73])
    assert list(bars.text) == ["97.69 %", "97.73 %"]
    assert fig.layout.yaxis.range[0] == 0        # bars start at zero


def test_parallel_coordinates_encodes_numbers_categories_and_log_scales():
    base = ScenarioSpec(epochs=2)
    specs = {"a": base.replace(lr=1e-3, optimizer="adam", batchnorm=False),
             "b": base.replace(lr=1e-2, optimizer="sgd", batchnorm=True),
             "c": base.replace(lr=1e-1, optimizer="adam", batchnorm=True),
             "d": base.replace(lr=1e-1, optimizer="adam", batchnorm=True)}
    runs = runs_frame(specs, test_acc={"a": 0.9, "b": 0.8, "c": 0.7, "d": None})
    fig = figures.parallel_coordinates(runs, ["lr", "optimizer", "batchnorm"])
    (trace,) = fig.data
    dims = {d.label: d for d in trace.dimensions}
    assert list(dims) == ["lr (log)", "optimizer", "batchnorm", "test acc (%)"]
    assert list(dims["lr (log)"].values) == pytest.approx([-3, -2, -1])          # run d has no test accuracy
    assert list(dims["lr (log)"].ticktext) == ["0.001", "0.01", "0.1"]
    assert list(dims["optimizer"].ticktext) == ["adam", "sgd"] and list(dims["optimizer"].values) == [0, 1, 0]
    assert list(dims["batchnorm"].ticktext) == ["off", "on"] and list(dims["batchnorm"].values) == [0, 1, 1]
    assert list(trace.line.color) == pytest.approx([90, 80, 70])


def test_confusion_matrix_figure_shows_counts_true_down_predicted_across():
    matrix = pd.DataFrame([[5, 1], [2, 7]], index=["cat", "dog"], columns=["cat", "dog"])
    fig = figures.confusion_matrix_figure(matrix)
    (heat,) = fig.data
    assert np.asarray(heat.z).tolist() == [[5, 1], [2, 7]]
    assert list(heat.x) == ["cat", "dog"] and list(heat.y) == ["cat", "dog"]
    assert fig.layout.xaxis.title.text == "predicted class" and fig.layout.yaxis.autorange == "reversed"


def test_decision_boundary_figure_has_field_boundary_and_both_classes():
    xs, ys = np.linspace(-1, 1, 5), np.linspace(-1, 1, 4)
    prob = np.tile(np.linspace(0, 1, 5), (4, 1))
    points = (np.array([[0.0, 0.0], [0.5, 0.5], [-0.5, 0.2]]), np.array([0, 1, 1]))
    fig = figures.decision_boundary_figure((xs, ys, prob), points)
    kinds = [type(t).__name__ for t in fig.data]
    assert kinds == ["Contour", "Contour", "Scatter", "Scatter"]
    assert fig.data[1].contours.start == fig.data[1].contours.end == 0.5
    assert len(fig.data[2].x) == 1 and len(fig.data[3].x) == 2
    assert fig.data[2].marker.symbol != fig.data[3].marker.symbol     # not colour alone


def test_enlarge_repeats_pixels():
    image = np.array([[0, 255], [10, 20]], dtype=np.uint8)
    big = figures.enlarge(image, 3)
    assert big.shape == (6, 6) and big.dtype == np.uint8
    assert (big[:3, 3:] == 255).all() and (big[3:, :3] == 10).all()


# ----------------------------------------------------------------------------- tables
def test_differing_params_picks_exactly_the_varied_columns():
    base = ScenarioSpec(dataset="shapes", epochs=2, hidden_sizes=(32,))
    runs = runs_frame({"a": base.replace(name="base"),
                       "b": base.replace(name="l2", weight_decay=1e-5),
                       "c": base.replace(name="wide", hidden_sizes=[64, 64], batchnorm=True),
                       "d": base.replace(name="few", train_subset=300)})
    assert tables.differing_params(runs) == ["train_subset", "hidden_sizes", "batchnorm", "weight_decay"]
    assert tables.differing_params(runs.iloc[:1]) == []
    same = runs_frame({"a": base.replace(name="x"), "b": base.replace(name="y")})
    assert tables.differing_params(same) == []           # the name is a label, not a parameter


def test_comparison_table_one_row_per_run_with_final_and_best_values(three_runs):
    runs = runs_frame({"r1": ScenarioSpec(name="name-r1", dropout=0.2), "r2": ScenarioSpec(name="name-r2"),
                       "r3": ScenarioSpec(name="name-r3")},
                      test_acc={"r1": 0.81, "r2": None, "r3": 0.55}, state={"r2": "running"})
    table = tables.comparison_table(runs, three_runs)
    assert list(table["run_id"]) == ["r1", "r2", "r3"]
    assert "dropout" in table.columns and "lr" not in table.columns
    r1 = table.set_index("run_id").loc["r1"]
    assert r1["final_train_loss"] == 0.4 and r1["final_val_loss"] == 0.9
    assert r1["final_train_acc"] == 0.8 and r1["final_val_acc"] == 0.62
    assert r1["best_val_loss"] == 0.8 and r1["best_epoch"] == 2
    assert r1["test_acc"] == 0.81 and r1["epochs_done"] == 3 and r1["seconds"] == pytest.approx(4.5)
    assert pd.isna(table.set_index("run_id").loc["r2", "test_acc"])


def test_comparison_table_handles_a_run_without_epochs(three_runs):
    runs = runs_frame({"r1": ScenarioSpec(name="a"), "new": ScenarioSpec(name="b", lr=0.01)},
                      state={"new": "queued"})
    table = tables.comparison_table(runs, three_runs)
    row = table.set_index("run_id").loc["new"]
    assert pd.isna(row["final_val_loss"]) and pd.isna(row["best_epoch"])


def test_filters_by_sweep_tag_and_state():
    specs = {"20250101-1": ScenarioSpec(name="a", tags=("reg",)), "20250101-2": ScenarioSpec(name="b", tags=("reg", "x")),
             "20250102-1": ScenarioSpec(name="c"), "20250103-1": ScenarioSpec(name="d", tags=("x",))}
    runs = runs_frame(specs, sweep={"20250101-1": "old", "20250101-2": "old", "20250102-1": "new"},
                      state={"20250103-1": "failed"})
    assert tables.sweeps(runs) == ["new", "old"]
    assert tables.most_recent_sweep(runs) == "new"
    assert tables.tags(runs) == ["reg", "x"]
    assert list(tables.filter_runs(runs, sweeps=["old"])["name"]) == ["a", "b"]
    assert list(tables.filter_runs(runs, tags=["x"])["name"]) == ["b", "d"]
    assert list(tables.filter_runs(runs, states=["failed"])["name"]) == ["d"]
    assert list(tables.filter_runs(runs, sweeps=["old"], tags=["x"])["name"]) == ["b"]
    assert list(tables.filter_runs(runs, sweeps=[])["name"]) == []
    assert tables.default_run_ids(runs) == ["20250102-1"]
    no_sweeps = runs.assign(sweep=None)
    assert tables.default_run_ids(no_sweeps, fallback=2) == ["20250102-1", "20250103-1"]


def test_unique_names_tell_runs_with_the_same_name_apart():
    runs = runs_frame({"20250101-base-ab12": ScenarioSpec(name="baseline"),
                       "20250102-base-cd34": ScenarioSpec(name="baseline"), "20250102-l2-ef56": ScenarioSpec(name="l2")})
    names = tables.unique_names(runs)
    assert names == {"20250101-base-ab12": "baseline · ab12", "20250102-base-cd34": "baseline · cd34",
                     "20250102-l2-ef56": "l2"}
    assert list(tables.with_names(runs, names)["name"]) == list(names.values())


def test_select_keeps_the_given_order():
    runs = runs_frame({"a": ScenarioSpec(name="a"), "b": ScenarioSpec(name="b"), "c": ScenarioSpec(name="c")})
    assert list(tables.select(runs, ["c", "a", "gone"])["run_id"]) == ["c", "a"]
