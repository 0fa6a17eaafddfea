"""The dashboard's pure helpers: figures (dashboard/figures.py) and tables (dashboard/tables.py).

Small hand-made frames shaped like RunStore.list_runs() and RunStore.load_metrics(), so every
expected value is known.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dashboard import figures, tables

V = figures.values      # a trace's x or y as a list (the hot charts write typed arrays)
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
    assert V(train.x) == [1, 2, 3]
    assert V(train.y) == [1.0, 0.6, 0.4] and V(val.y) == [1.1, 0.8, 0.9]
    assert len(set(colors.values())) == 3
    assert fig.layout.font.size == figures.FONT_SIZE


def test_overlay_accuracy_is_in_percent(three_runs):
    fig = figures.curves_overlay(three_runs, "acc", "epoch")
    train, val = traces_of(fig, "name-r2")
    assert V(train.y) == pytest.approx([55.0, 65.0])
    assert V(val.y) == pytest.approx([50.0, 60.0])
    assert "%" in fig.layout.yaxis.title.text


def test_wall_time_x_is_cumulative_seconds(three_runs):
    fig = figures.curves_overlay(three_runs, "loss", "wall")
    expected = {"r1": [2.0, 3.5, 4.5], "r2": [3.0, 6.5], "r3": [0.5, 0.75, 1.0]}
    for run_id, cumulative in expected.items():
        for trace in traces_of(fig, f"name-{run_id}"):
            assert V(trace.x) == pytest.approx(cumulative)
    assert "wall time" in fig.layout.xaxis.title.text


def test_wall_time_follows_epoch_order_even_when_rows_are_shuffled(three_runs):
    shuffled = three_runs.sample(frac=1.0, random_state=3)
    fig = figures.curves_overlay(shuffled, "loss", "wall", figures.run_colors(["r1", "r2", "r3"]))
    train, _ = traces_of(fig, "name-r1")
    assert V(train.x) == pytest.approx([2.0, 3.5, 4.5])
    assert V(train.y) == [1.0, 0.6, 0.4]


def test_colours_follow_the_mapping_in_every_chart(three_runs):
    colors = {"r1": "#111111", "r2": "#222222", "r3": "#333333"}
    overlay = figures.curves_overlay(three_runs, "loss", "epoch", colors)
    panels = figures.curves_small_multiples(three_runs, "acc", "epoch", colors)
    gap = figures.overfitting_gap(three_runs, "epoch", colors)
    runs = runs_frame({r: ScenarioSpec(name=f"name-{r}") for r in ("r1", "r2", "r3")},
                      test_acc={"r1": 0.9, "r2": 0.8, "r3": 0.7})
    bars = figures.accuracy_dots(runs, colors)
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
    axes = {t.xaxis for t in fig.data if V(t.x) != [None]}
    assert axes == {"x", "x2", "x3"}
    for letter in ("x", "y"):       # every panel's axis matches one and the same axis
        axes = [(name, fig.layout[name]) for name in fig.layout if name.startswith(f"{letter}axis")]
        assert len(axes) == 3
        assert len({axis.matches or name.replace("axis", "") for name, axis in axes}) == 1
    r2_train, r2_val = traces_of(fig, "name-r2")
    assert r2_train.line.dash == "solid" and r2_val.line.dash == "dash"
    assert V(r2_val.y) == [0.95, 0.75]


def test_overfitting_gap_is_val_minus_train(three_runs):
    fig = figures.overfitting_gap(three_runs)
    assert len(fig.data) == 3
    (r1,) = traces_of(fig, "name-r1")
    assert V(r1.y) == pytest.approx([0.1, 0.2, 0.5])


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
def test_test_accuracy_dots_in_percent_labelled_zoomed_and_only_finished_runs():
    runs = runs_frame({"a": ScenarioSpec(name="base"), "b": ScenarioSpec(name="l2"), "c": ScenarioSpec(name="wip")},
                      test_acc={"a": 0.9769, "b": 0.9773, "c": None}, state={"c": "running"})
    fig = figures.accuracy_dots(runs)
    dots, best = fig.data
    assert V(dots.y) == ["base", "l2"]
    assert V(dots.x) == pytest.approx([97.69, 97.73])
    assert [t.strip() for t in dots.text] == ["97.69 %", "97.73 %"]
    low, high = fig.layout.xaxis.range
    assert 96 < low < 97.69 and 97.73 < high < 99.5          # zoomed: 0.04 points apart must show
    assert list(fig.layout.yaxis.categoryarray) == ["base", "l2"]    # the runs' order, first on top
    assert fig.layout.yaxis.autorange == "reversed"


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
    assert list(dims) == ["run", "lr (log)", "optimizer", "batchnorm", "test acc (%)"]
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
    assert V(heat.x) == ["cat", "dog"] and V(heat.y) == ["cat", "dog"]
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
    assert list(table["run_id"]) == ["r1", "r3", "r2"]       # best test accuracy first, none last
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


# ----------------------------------------------------------------------------- issue 9: one colour, one order
def sweep_runs(rows: list[tuple]) -> pd.DataFrame:
    """(run_id, sweep, variant, position, seed[, test_acc]) rows like RunStore.list_runs()'s columns."""
    frame = pd.DataFrame([dict(run_id=r[0], sweep=r[1], variant=r[2], name=r[2] if r[4] is None else f"{r[2]} · seed {r[4]}",
                               position=r[3], seed=r[4] if r[4] is not None else 0,
                               test_acc=r[5] if len(r) > 5 else None, state="finished") for r in rows])
    frame["position"] = frame["position"].astype("Int64")
    return frame


@pytest.fixture
def repeats() -> pd.DataFrame:
    """Sweep 'reg' (older) with baseline x2 seeds, dropout x2, l2 x1; sweep 'lr' (newer) with 2 variants."""
    return sweep_runs([
        ("20250101-000000-b0", "reg", "baseline", 0, 0, 0.80), ("20250101-000001-b1", "reg", "baseline", 0, 1, 0.81),
        ("20250101-000002-d0", "reg", "dropout", 1, 0, 0.83), ("20250101-000003-d1", "reg", "dropout", 1, 1, 0.84),
        ("20250101-000004-l0", "reg", "l2", 2, 0, 0.79),
        ("20250102-000000-a", "lr", "lr=0.001", 0, 0, 0.70), ("20250102-000001-b", "lr", "lr=0.1", 1, 0, 0.10),
    ])


def test_run_colors_by_position_shared_by_repeats_and_stable_when_the_selection_changes(repeats):
    reg = repeats[repeats["sweep"] == "reg"]
    colors = figures.run_colors(reg)                       # the Runs page: the sweep's group
    assert colors["20250101-000000-b0"] == colors["20250101-000001-b1"] == figures.PALETTE[0]
    assert colors["20250101-000002-d0"] == colors["20250101-000003-d1"] == figures.PALETTE[1]
    assert colors["20250101-000004-l0"] == figures.PALETTE[2]
    # Compare with two of the three variants, in another row order: the same colours.
    subset = reg[reg["variant"].isin(["l2", "dropout"])].iloc[::-1]
    assert figures.run_colors(subset) == {r: colors[r] for r in subset["run_id"]}
    # Run detail with one run: the same colour as on the other pages.
    one = reg[reg["run_id"] == "20250101-000004-l0"]
    assert figures.run_colors(one) == {"20250101-000004-l0": figures.PALETTE[2]}


def test_a_runs_colour_is_its_positions_whatever_is_shown_with_it(repeats):
    # One colour per run on every page: the same alone, with its sweep, or with another sweep (two
    # sweeps may then share colours; the legend's names tell them apart).
    together = figures.run_colors(repeats.iloc[::-1])
    assert together["20250101-000000-b0"] == figures.PALETTE[0]
    assert together["20250102-000000-a"] == figures.PALETTE[0]           # 'lr' position 0
    assert together["20250102-000001-b"] == figures.PALETTE[1]
    for run_id in repeats["run_id"]:
        assert figures.run_colors(repeats[repeats["run_id"] == run_id])[run_id] == together[run_id]
        assert figures.run_colors(repeats[repeats["sweep"] == repeats.set_index("run_id").loc[run_id, "sweep"]])[
            run_id] == together[run_id]


def test_a_run_without_a_position_never_takes_a_colour_shown_beside_it():
    # A single run picked with a sweep's runs: its hashed colour may be a position's; it moves on.
    for i in range(40):
        single = f"20250101-0000{i:02d}-alone"
        frame = pd.DataFrame({"run_id": ["s0", "s1", "s2", single], "position": [0, 1, 2, None]})
        colors = figures.run_colors(frame)
        assert colors["s0"] == figures.PALETTE[0] and colors["s2"] == figures.PALETTE[2]
        assert len(set(colors.values())) == 4
        assert figures.run_colors(frame.iloc[::-1]) == colors                 # frame order does not matter


def test_run_colors_without_positions_come_from_the_run_id_and_old_frames_work():
    import zlib         # crc32, not hash(): the same colour in every server process
    old = pd.DataFrame({"run_id": ["20240101-000000-x", "20240101-000001-y"], "name": ["x", "y"]})
    colors = figures.run_colors(old)                          # no sweep, variant or position columns
    for run_id, color in colors.items():
        assert color == figures.PALETTE[zlib.crc32(run_id.encode()) % len(figures.PALETTE)]
    assert figures.run_colors(old.iloc[::-1]) == colors
    mixed = sweep_runs([("s-1", "s", "a", 0, 0), ("single", None, "single", None, None)])
    assert figures.run_colors(mixed)["s-1"] == figures.PALETTE[0]
    assert figures.run_colors(mixed)["single"] == figures.run_colors(mixed.iloc[1:])["single"]


def test_run_order_sweep_oldest_first_then_position_seed_and_run_id(repeats):
    shuffled = repeats.sample(frac=1.0, random_state=1)
    assert tables.run_order(shuffled) == list(repeats["run_id"])
    ten = sweep_runs([(f"20250101-{i:06d}", "s", f"v{i}", 10 - i, 0) for i in range(11)])
    assert tables.run_order(ten)[:3] == ["20250101-000010", "20250101-000009", "20250101-000008"]  # 0, 1, 2: numbers
    seeds = sweep_runs([("r-a", "s", "v", 0, 10), ("r-b", "s", "v", 0, 9), ("r-c", "s", "v", 0, 100)])
    assert tables.run_order(seeds) == ["r-b", "r-a", "r-c"]
    old = pd.DataFrame({"run_id": ["2", "1"], "sweep": [None, None]})
    assert tables.run_order(old) == ["1", "2"]
    assert list(tables.in_run_order(shuffled)["run_id"]) == list(repeats["run_id"])


def test_numbers_sort_as_numbers_in_the_table_and_in_categories():
    base = ScenarioSpec(epochs=2)
    runs = runs_frame({"a": base.replace(name="bs=16", batch_size=16), "b": base.replace(name="bs=256", batch_size=256),
                       "c": base.replace(name="bs=64", batch_size=64)}, test_acc={"a": 0.8, "b": 0.8, "c": 0.8})
    runs["batch_size"] = runs["batch_size"].astype(object)           # as a frame of mixed rows holds them
    table = tables.comparison_table(runs, pd.DataFrame(columns=["run_id", "epoch", "train_loss", "val_loss",
                                                                "train_acc", "val_acc", "seconds"]))
    assert pd.api.types.is_integer_dtype(table["batch_size"])
    assert list(table.sort_values("batch_size")["name"]) == ["bs=16", "bs=64", "bs=256"]
    assert figures._dimension("hidden", pd.Series(["256", "16,16", "64", None]))["ticktext"] == \
        ["16,16", "64", "256", "none"]


# ----------------------------------------------------------------------------- readable ranges
def lr_sweep() -> pd.DataFrame:
    """Three sane runs starting near 0.3-0.5 and one (lr=0.1) that starts at 22.8 and stays high."""
    return metrics_frame({
        "lr1": {"train_loss": [0.50, 0.20, 0.10, 0.05], "val_loss": [0.40, 0.25, 0.15, 0.12]},
        "lr2": {"train_loss": [0.30, 0.15, 0.08, 0.04], "val_loss": [0.35, 0.20, 0.12, 0.10]},
        "lr3": {"train_loss": [0.45, 0.30, 0.20, 0.10], "val_loss": [0.40, 0.30, 0.25, 0.20]},
        "big": {"train_loss": [22.8, 9.0, 4.0, 2.3], "val_loss": [15.0, 6.0, 2.5, 2.3]},
    }).replace({"name-big": "lr=0.1"})


def test_divergent_curve_is_clipped_at_the_ceiling_and_said_so():
    metrics = lr_sweep()
    ceiling = figures.clip_ceiling(metrics)
    assert ceiling == pytest.approx(3 * 0.50)             # 3 x the largest first-epoch loss of the ordinary runs
    fig = figures.curves_overlay(metrics, "loss", "epoch", log_y=False)
    big_train = [t for t in fig.data if t.name == "lr=0.1"][0]
    assert V(big_train.y) == pytest.approx([ceiling] * 4)     # 22.8, 9, 4, 2.3 drawn at 1.5
    (mark,) = [t for t in fig.data if t.name and "clipped" in t.name]
    assert mark.name == "lr=0.1: clipped, diverged up to 22.8"
    assert mark.marker.symbol == figures.CLIP_SYMBOL and mark.legendgroup == "big"
    assert sorted(row[1] for row in mark.customdata) == sorted([22.8, 9.0, 4.0, 2.3, 15.0, 6.0, 2.5, 2.3])
    sane = [t for t in fig.data if t.name == "name-lr1"][0]
    assert V(sane.y) == [0.50, 0.20, 0.10, 0.05]            # untouched
    assert "clipped above 1.5" in fig.layout.annotations[0].text


def test_nothing_is_clipped_without_a_divergent_run(three_runs):
    assert figures.clip_ceiling(three_runs) is None
    fig = figures.curves_overlay(three_runs)
    assert not [t for t in fig.data if t.name and "clipped" in t.name] and not fig.layout.shapes


def test_two_runs_the_higher_one_is_the_divergent_one():
    metrics = metrics_frame({"ok": {"train_loss": [0.3, 0.2], "val_loss": [0.3, 0.2]},
                             "bad": {"train_loss": [22.8, 30.0], "val_loss": [25.0, float("inf")]}})
    assert figures.clip_ceiling(metrics) == pytest.approx(0.9)
    fig = figures.curves_overlay(metrics, log_y=False)
    assert max(V([t for t in fig.data if t.name == "name-bad (validation)"][0].y)) == pytest.approx(0.9)


def test_log_scale_by_default_when_losses_span_more_than_two_decades():
    wide = metrics_frame({"a": {"train_loss": [10.0, 1.0, 0.1, 0.005], "val_loss": [10.0, 1.0, 0.2, 0.01]}})
    assert figures.loss_span_decades(wide) == pytest.approx(np.log10(10 / 0.005))
    assert figures.curves_overlay(wide).layout.yaxis.type == "log"
    assert "log" in figures.curves_overlay(wide).layout.yaxis.title.text
    assert figures.curves_overlay(wide, log_y=False).layout.yaxis.type is None
    assert figures.curves_small_multiples(wide).layout.yaxis.type == "log"
    narrow = metrics_frame({"a": {"train_loss": [1.0, 0.5, 0.1], "val_loss": [1.0, 0.5, 0.2]}})
    assert figures.loss_span_decades(narrow) < figures.LOG_DECADES
    assert figures.curves_overlay(narrow).layout.yaxis.type is None
    assert figures.curves_overlay(narrow, log_y=True).layout.yaxis.type == "log"
    accuracy = metrics_frame({"a": {"train_loss": [1.0, 0.001], "val_loss": [1.0, 0.001],
                                    "train_acc": [0.001, 0.9], "val_acc": [0.001, 0.9]}})
    assert figures.curves_overlay(accuracy, "acc", log_y=True).layout.yaxis.type is None    # never log


def test_small_multiples_and_gap_clip_the_divergent_run():
    metrics = lr_sweep()
    panels = figures.curves_small_multiples(metrics, log_y=False)
    big = [t for t in panels.data if t.name == "lr=0.1 (train)"][0]
    assert max(V(big.y)) == pytest.approx(1.5)
    assert [t for t in panels.data if t.marker.symbol == figures.CLIP_SYMBOL]
    gap = figures.overfitting_gap(metrics)
    sane_peak = max(abs(v) for t in gap.data if t.name.startswith("name-lr") for v in V(t.y))
    big_line = [t for t in gap.data if t.name == "lr=0.1"][0]
    assert max(abs(v) for v in V(big_line.y)) <= 1.5 * sane_peak + 1e-9
    (mark,) = [t for t in gap.data if "clipped" in t.name]
    assert list(mark.customdata) == pytest.approx([15.0 - 22.8, 6.0 - 9.0, 2.5 - 4.0, 0.0])


# ----------------------------------------------------------------------------- the winner is obvious
def test_best_run_is_starred_and_named_in_the_title():
    runs = runs_frame({"a": ScenarioSpec(name="baseline"), "b": ScenarioSpec(name="l2"),
                       "c": ScenarioSpec(name="dropout"), "d": ScenarioSpec(name="batchnorm")},
                      test_acc={"a": 0.807, "b": 0.816, "c": 0.822, "d": 0.777})
    fig = figures.accuracy_dots(runs)
    assert fig.layout.title.text == "Test accuracy · best: dropout, 82.20 %"
    best = [t for t in fig.data if t.name == "best"][0]
    assert V(best.y) == ["dropout"] and V(best.x) == pytest.approx([82.2])
    assert list(fig.layout.yaxis.categoryarray) == ["baseline", "l2", "dropout", "batchnorm"]
    assert fig.layout.xaxis.range[0] > 70


def test_repeats_give_one_row_per_variant_with_seeds_mean_and_whisker(repeats):
    reg = repeats[repeats["sweep"] == "reg"]
    fig = figures.accuracy_dots(reg, figures.run_colors(reg))
    assert list(fig.layout.yaxis.categoryarray) == ["baseline", "dropout", "l2"]
    seeds = fig.data[0]
    assert V(seeds.y) == ["baseline", "baseline", "dropout", "dropout", "l2"]
    assert V(seeds.x) == pytest.approx([80, 81, 83, 84, 79])
    dropout = [t for t in fig.data if t.name == "dropout mean"][0]
    assert V(dropout.x) == pytest.approx([83.5])
    assert dropout.error_x.array[0] == pytest.approx(0.5) and dropout.error_x.arrayminus[0] == pytest.approx(0.5)
    assert dropout.marker.color == figures.PALETTE[1]
    assert fig.layout.title.text == "Test accuracy · best: dropout, mean 83.50 % over 2 seeds"


def test_comparison_table_sorted_by_test_accuracy_best_first(repeats, three_runs):
    table = tables.comparison_table(repeats.assign(test_acc=[0.8, None, 0.9, 0.85, 0.8, None, 0.7]), three_runs)
    assert list(table["test_acc"].head(5)) == [0.9, 0.85, 0.8, 0.8, 0.7]
    assert list(table["run_id"][2:4]) == ["20250101-000000-b0", "20250101-000004-l0"]     # ties keep the order
    assert table["test_acc"].tail(2).isna().all()
    assert "variant" in table.columns


def test_parallel_coordinates_first_axis_names_the_runs():
    base = ScenarioSpec(epochs=2)
    runs = runs_frame({"a": base.replace(name="bs=16", batch_size=16), "b": base.replace(name="bs=64", batch_size=64),
                       "c": base.replace(name="bs=256", batch_size=256)}, test_acc={"a": 0.8, "b": 0.85, "c": 0.7})
    (trace,) = figures.parallel_coordinates(runs, ["batch_size"]).data
    run_axis = trace.dimensions[0]
    assert run_axis.label == "run"
    by_value = dict(zip(run_axis.tickvals, run_axis.ticktext))
    assert [by_value[v] for v in run_axis.values] == ["bs=16", "bs=64", "bs=256"]    # each line is its run
    assert run_axis.values[0] > run_axis.values[-1]              # the first run at the top


# ----------------------------------------------------------------------------- noise as noise
def seeds_metrics() -> pd.DataFrame:
    return metrics_frame({
        "20250101-000000-b0": {"train_loss": [1.0, 0.6, 0.4], "val_loss": [1.1, 0.8, 0.7]},
        "20250101-000001-b1": {"train_loss": [0.8, 0.5, 0.2], "val_loss": [0.9, 0.6, 0.5]},
        "20250101-000002-d0": {"train_loss": [1.2, 0.7], "val_loss": [1.0, 0.9]},
        "20250101-000003-d1": {"train_loss": [1.0, 0.9, 0.6], "val_loss": [1.2, 0.7, 0.6]},
        "20250101-000004-l0": {"train_loss": [0.9, 0.7, 0.5], "val_loss": [1.0, 0.8, 0.7]},
    })


def test_grouped_curves_mean_line_and_min_max_band_per_variant(repeats):
    reg = repeats[repeats["sweep"] == "reg"]
    colors = figures.run_colors(reg)
    fig = figures.curves_grouped(seeds_metrics(), reg, "loss", colors=colors, band="minmax", log_y=False)
    named = {t.name: t for t in fig.data}
    assert V(named["baseline (train, low)"].y) == pytest.approx([0.8, 0.5, 0.2])     # min of the seeds
    assert V(named["baseline (train, high)"].y) == pytest.approx([1.0, 0.6, 0.4])    # max of the seeds
    assert named["baseline (train, high)"].fill == "tonexty"
    assert named["baseline (train, high)"].fillcolor == "rgba(0,114,178,0.18)"        # the variant's colour
    mean = named["baseline (2 seeds)"]
    assert V(mean.y) == pytest.approx([0.9, 0.55, 0.3]) and mean.line.dash == "solid"
    assert mean.line.color == colors["20250101-000000-b0"]
    assert named["baseline (2 seeds) (validation)"].line.dash == "dash"
    # dropout: seed 0 has two epochs only; epoch 3 is seed 1's value alone.
    assert V(named["dropout (2 seeds)"].y) == pytest.approx([1.1, 0.8, 0.6])
    assert V(named["dropout (train, low)"].y) == pytest.approx([1.0, 0.7, 0.6])
    # A variant with one run: its own line, no band.
    assert V(named["l2"].y) == [0.9, 0.7, 0.5] and "l2 (train, low)" not in named
    legend = [t.name for t in fig.data if t.showlegend is not False]
    assert legend == ["baseline (2 seeds)", "dropout (2 seeds)", "l2", "train (solid)", "validation (dashed)"]


def test_grouped_curves_std_band_and_fallback_to_names(repeats):
    reg = repeats[repeats["sweep"] == "reg"]
    fig = figures.curves_grouped(seeds_metrics(), reg, band="std", log_y=False)
    named = {t.name: t for t in fig.data}
    std = np.std([1.0, 0.8], ddof=1)
    assert V(named["baseline (train, low)"].y)[0] == pytest.approx(0.9 - std)
    assert V(named["baseline (train, high)"].y)[0] == pytest.approx(0.9 + std)
    no_variant = reg.drop(columns=["variant"])          # an old frame: each run is its own variant
    fig = figures.curves_grouped(seeds_metrics(), no_variant, log_y=False)
    assert not [t for t in fig.data if t.name and t.name.endswith("low)")]
    with pytest.raises(ValueError, match="band"):
        figures.curves_grouped(seeds_metrics(), reg, band="iqr")


# ----------------------------------------------------------------------------- live curves
def test_live_figure_train_and_validation_in_run_order_and_colours(repeats):
    from dashboard.live_figures import live_figure
    reg = repeats[repeats["sweep"] == "reg"]
    colors = figures.run_colors(reg)
    metrics = seeds_metrics().iloc[::-1]                     # rows in any order
    fig = live_figure(metrics, reg, colors)
    lines = [t for t in fig.data if t.mode and t.mode.startswith("lines") and t.legendgroup != "line styles"]
    assert [t.legendgroup for t in lines[::2]] == list(reg["run_id"])
    for train, val in zip(lines[::2], lines[1::2]):
        assert train.line.dash == "solid" and val.line.dash == "dash"
        assert train.line.color == val.line.color == colors[train.legendgroup]
    assert fig.layout.font.size == figures.FONT_SIZE


def test_live_figure_stars_the_best_epoch_and_marks_an_early_stop(repeats):
    from dashboard.live_figures import live_figure
    runs = repeats[repeats["sweep"] == "reg"].assign(epochs=3)
    runs.loc[runs["run_id"] == "20250101-000002-d0", "state"] = "finished"      # 2 of 3 epochs: stopped early
    runs.loc[runs["run_id"] == "20250101-000001-b1", "state"] = "running"
    metrics = seeds_metrics()
    metrics.loc[(metrics["run_id"] == "20250101-000000-b0") & (metrics["epoch"] == 2), "val_loss"] = 0.3
    fig = live_figure(metrics, runs)
    stars = {t.legendgroup: t for t in fig.data if t.marker.symbol == "star"}
    assert V(stars["20250101-000000-b0"].x) == [2] and V(stars["20250101-000000-b0"].y) == [0.3]
    assert "best epoch 2" in stars["20250101-000000-b0"].hovertemplate
    assert V(stars["20250101-000003-d1"].x) == [3]
    (stop,) = [t for t in fig.data if t.text and "early stop" in t.text[0]]
    assert stop.legendgroup == "20250101-000002-d0" and V(stop.x) == [2]
    assert stop.text[0] == "early stop at epoch 2"


def test_live_figure_without_epochs_says_so():
    from dashboard.live_figures import live_figure
    empty = pd.DataFrame(columns=["run_id", "name", "epoch", "train_loss", "val_loss", "seconds"])
    fig = live_figure(empty, pd.DataFrame({"run_id": ["x"], "state": ["queued"]}))
    assert not fig.data and "No finished epochs" in fig.layout.annotations[0].text


def test_confusion_matrix_counts_fit_their_cells():
    # ten classes of about a thousand test images each (MNIST): four digits per cell
    matrix = pd.DataFrame(np.diag([980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]))
    half = figures.confusion_matrix_figure(matrix).data[0].textfont.size
    wide = figures.confusion_matrix_figure(matrix, plot_width_px=700).data[0].textfont.size
    assert half * 0.62 * 4 <= 320 / 10 and wide * 0.62 * 4 <= 700 / 10       # four digits fit a cell
    assert half < wide <= figures.FONT_SIZE + 2
    three = figures.confusion_matrix_figure(pd.DataFrame(np.diag([300, 310, 290]))).data[0].textfont.size
    assert three == figures.FONT_SIZE + 2                                     # few classes: full size


def test_results_of_all_runs_in_one_pass_match_each_runs_own():
    # tables.results_by_run (Compare's table, every redraw) gives what run_results gives run by run,
    # with epochs out of order, a missing validation loss and a run with no epoch at all.
    rng = np.random.default_rng(3)
    frames = []
    for run_id, epochs in (("a", [3, 1, 2]), ("b", [1, 2, 3, 4]), ("c", [2, 1])):
        frames.append(pd.DataFrame({"run_id": run_id, "name": run_id, "epoch": epochs,
                                    "train_loss": rng.random(len(epochs)), "val_loss": rng.random(len(epochs)),
                                    "train_acc": rng.random(len(epochs)), "val_acc": rng.random(len(epochs)),
                                    "lr": 1e-3, "seconds": rng.random(len(epochs))}))
    metrics = pd.concat(frames, ignore_index=True)
    metrics.loc[metrics["run_id"] == "c", "val_loss"] = np.nan
    together = tables.results_by_run(metrics)
    for run_id in ("a", "b", "c"):
        assert together[run_id] == pytest.approx(tables.run_results(metrics, run_id), nan_ok=True)
    assert together["c"]["best_epoch"] is None and together["b"]["epochs_done"] == 4
    assert tables.results_by_run(metrics.iloc[:0]) == {}
