"""The Compare page (pages/compare.py) through streamlit's AppTest, on tiny runs really trained.

Charts are read from their protos: spec is the figure's JSON, config what the modebar gets.
"""
from __future__ import annotations

import base64
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

import apphelpers
from apphelpers import fresh_app_cache
from dashboard import figures
from trainlib import RunStore, ScenarioSpec, create_scenario, train
from trainlib.store import update_status, write_atomic, write_json

PAGE = str(Path(__file__).resolve().parents[1] / "pages" / "compare.py")


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict:
    """A runs folder with a moons run (no sweep) and, newer, a three-run sweep 'reg' on shapes."""
    root = tmp_path_factory.mktemp("compare") / "runs"
    store = RunStore(root)
    ids = {}
    moons = ScenarioSpec(name="moons", dataset="moons", hidden_sizes=(8,), epochs=2, device="cpu")
    folder = store.new_run(moons)
    train(create_scenario(moons, log_folder=folder))
    ids["moons"] = folder.name
    base = ScenarioSpec(dataset="shapes", train_subset=300, hidden_sizes=(32,), epochs=2, device="cpu", tags=("chapter3",))
    for position, spec in enumerate((base.replace(name="baseline"), base.replace(name="dropout", dropout=0.2),
                                     base.replace(name="l2", weight_decay=1e-3))):
        folder = store.new_run(spec, sweep="reg", position=position)
        train(create_scenario(spec, log_folder=folder))
        ids[spec.name] = folder.name
    return {"root": root, "ids": ids, "store": store}


def use_runs(monkeypatch, root: Path) -> None:
    monkeypatch.setenv("TRAINLIB_RUNS_DIR", str(root))
    st.cache_data.clear()
    fresh_app_cache()          # a fresh Runner for this runs folder


def open_page() -> AppTest:
    return AppTest.from_file(PAGE, default_timeout=60).run()


def chart_specs(at: AppTest) -> dict[str, dict]:
    """{figure title: figure JSON} of every plotly chart on the page."""
    out = {}
    for spec in apphelpers.chart_specs(at):
        out[spec["layout"]["title"]["text"]] = spec
    return out


def array(value) -> list:
    """Plotly JSON writes numpy arrays as typed base64 ({'dtype', 'bdata'}); lists stay lists."""
    if isinstance(value, dict) and "bdata" in value:
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"])).tolist()
    return list(value)


def named(spec: dict, name: str) -> dict:
    (trace,) = [t for t in spec["data"] if t.get("name") == name]
    return trace


def titled(specs: dict[str, dict], start: str) -> dict:
    (spec,) = [s for title, s in specs.items() if title.startswith(start)]
    return spec


def test_default_compares_the_newest_sweep(trained, monkeypatch, polling):
    use_runs(monkeypatch, trained["root"])
    at = open_page()
    assert not at.exception
    assert polling == ["3s"]                  # nothing is training: it only watches for new runs, slowly
    specs = chart_specs(at)
    assert len(specs) == 4                    # loss, acc overlaid (the open tab's); dots; gap
    # Parallel coordinates (WebGL in the browser: ~1 s of CPU per draw without a GPU) only when opened.
    assert [e.label for e in at.expander] == ["Parallel coordinates: the differing parameters against test accuracy"]
    at.session_state["compare_parallel"] = True
    at.run()
    specs = chart_specs(at)
    assert len(specs) == 5 and titled(specs, "Parameters and test accuracy")["data"][0]["type"] == "parcoords"
    loss = titled(specs, "Loss (")
    text = json.dumps(loss)
    assert all(name in text for name in ("baseline", "dropout", "l2")) and "moons" not in text
    assert len(loss["data"]) == 3 * 2 + 2     # train + validation per run, two line-style keys
    # The other tab's charts are built only when it is opened (a redraw then sends those instead).
    at.session_state["compare_curves_tab"] = "One panel per run"
    at.run()
    panels = chart_specs(at)
    assert len(panels) == 5 and not [title for title in panels if title.startswith("Loss (")]
    assert len(titled(panels, "Loss per run")["data"]) == 3 * 2 + 2
    assert [a["text"] for a in titled(panels, "Loss per run")["layout"]["annotations"]] == ["baseline", "dropout", "l2"]
    at.session_state["compare_curves_tab"] = "All runs in one chart"
    at.run()
    # A run's colour is its variant's position in the sweep, in every chart (and on every page).
    for position, name in enumerate(("baseline", "dropout", "l2")):
        assert named(loss, name)["line"]["color"] == figures.PALETTE[position]
        assert named(titled(specs, "Overfitting gap"), name)["line"]["color"] == figures.PALETTE[position]
    # Test accuracy: dots in run order on a zoomed axis, the values written, the best one named.
    store = trained["store"]
    accuracy = {n: 100 * store.read_run(trained["ids"][n])["summary"]["test_acc"] for n in ("baseline", "dropout", "l2")}
    result = titled(specs, "Test accuracy")
    dots = result["data"][0]
    assert list(dots["y"]) == ["baseline", "dropout", "l2"]
    assert array(dots["x"]) == pytest.approx(list(accuracy.values()))
    assert dots["marker"]["color"] == list(figures.PALETTE[:3])
    best = max(accuracy, key=accuracy.get)
    assert f"best: {best}" in result["layout"]["title"]["text"]
    low, high = result["layout"]["xaxis"]["range"]
    assert low > 0 or high - low < 100                       # zoomed: not 0 to 100 %
    parcoords = titled(specs, "Parameters")["data"][0]
    assert [d["label"] for d in parcoords["dimensions"]] == ["run", "dropout", "weight_decay", "test acc (%)"]
    # One seed per variant: the page says a difference may be seed noise.
    assert any("One seed per variant" in c.value for c in at.caption)
    # every chart exports a 2x PNG from its modebar
    for chart in apphelpers.charts(at):
        assert chart["config"]["toImageButtonOptions"]["format"] == "png"


def test_table_has_one_row_per_run_and_the_csv_holds_their_metrics(trained, monkeypatch):
    use_runs(monkeypatch, trained["root"])
    at = open_page()
    table = at.dataframe[0].value
    assert sorted(table["name"]) == ["baseline", "dropout", "l2"]
    accuracy = list(table["test_acc"])
    assert accuracy == sorted(accuracy, reverse=True)          # the winner on top
    assert {"dropout", "weight_decay"} <= set(table.columns) and "lr" not in table.columns
    metrics = trained["store"].load_run(trained["ids"]["dropout"])
    row = table.set_index("name").loc["dropout"]
    assert row["final_val_loss"] == pytest.approx(metrics["val_loss"].iloc[-1])
    assert row["best_val_loss"] == pytest.approx(metrics["val_loss"].min())
    assert row["epochs_done"] == 2
    (download,) = at.get("download_button")
    assert "CSV" in download.proto.label


def test_pick_by_hand_in_the_chosen_order(trained, monkeypatch):
    use_runs(monkeypatch, trained["root"])
    at = open_page()
    at.segmented_control(key="compare_mode").set_value("Pick by hand").run()
    ids = trained["ids"]
    at.multiselect(key="compare_runs").set_value([ids["moons"], ids["l2"]]).run()
    assert not at.exception
    loss = titled(chart_specs(at), "Loss (")
    assert len(loss["data"]) == 2 * 2 + 2
    # l2 keeps its sweep colour when picked with another run; a run of no sweep has its own.
    assert named(loss, "l2")["line"]["color"] == figures.PALETTE[2]
    assert named(loss, "moons")["line"]["color"] != figures.PALETTE[2]
    assert sorted(at.dataframe[0].value["name"]) == ["l2", "moons"]


def test_wall_time_axis_is_cumulative_seconds(trained, monkeypatch):
    use_runs(monkeypatch, trained["root"])
    at = open_page()
    at.segmented_control(key="compare_x").set_value("wall").run()
    loss = titled(chart_specs(at), "Loss (")
    assert loss["layout"]["xaxis"]["title"]["text"] == "wall time (s)"
    seconds = trained["store"].load_run(trained["ids"]["l2"])["seconds"]
    assert array(named(loss, "l2")["x"]) == pytest.approx(list(seconds.cumsum()))


def test_filter_by_state_and_guard_when_nothing_matches(trained, monkeypatch):
    use_runs(monkeypatch, trained["root"])
    at = open_page()
    at.segmented_control(key="compare_mode").set_value("State").run()
    assert len(at.dataframe[0].value) == 4              # 'finished' by default: every run here
    at.multiselect(key="compare_states").set_value(["failed"]).run()
    assert not at.exception
    assert not apphelpers.charts(at)
    assert any("No runs chosen" in info.value for info in at.info)


def test_tag_filter(trained, monkeypatch):
    use_runs(monkeypatch, trained["root"])
    at = open_page()
    at.segmented_control(key="compare_mode").set_value("Tag").run()
    assert at.multiselect(key="compare_tags").options == ["chapter3"]
    at.multiselect(key="compare_tags").set_value(["chapter3"]).run()
    assert sorted(at.dataframe[0].value["name"]) == ["baseline", "dropout", "l2"]


def test_no_runs_at_all(tmp_path, monkeypatch):
    use_runs(monkeypatch, tmp_path / "empty")
    at = open_page()
    assert not at.exception
    assert any("No runs yet" in info.value for info in at.info)


def test_curves_grow_while_a_run_trains_and_polling_stops_when_it_ends(tmp_path, monkeypatch, polling):
    """A run another process is training (status running, its heartbeat fresh): the page watches the
    folder and shows each new epoch on the next redraw (AppTest has no timer: .run() stands for the
    redraw the watcher asks for when metrics.csv changed)."""
    root = tmp_path / "live"
    store = RunStore(root)
    spec = ScenarioSpec(name="growing", dataset="moons", hidden_sizes=(8,), epochs=3)
    folder = store.new_run(spec, sweep="live")
    update_status(folder, state="running", pid=os.getppid(), epoch=1)    # a living process that is not this one
    columns = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds", "samples_per_s"]
    rows = [[1, 0.7, 0.5, 0.72, 0.5, 1e-3, 0.5, 100.0]]
    write_atomic(folder / "metrics.csv", pd.DataFrame(rows, columns=columns).to_csv(index=False))
    use_runs(monkeypatch, root)
    at = open_page()
    assert polling == ["1s"]                   # watching the folder every second while a run moves
    assert any("Updating as epochs end" in c.value for c in at.caption)
    assert len(array(named(titled(chart_specs(at), "Loss ("), "growing")["y"])) == 1

    rows.append([2, 0.6, 0.6, 0.65, 0.6, 1e-3, 0.5, 100.0])
    write_atomic(folder / "metrics.csv", pd.DataFrame(rows, columns=columns).to_csv(index=False))
    at.run()
    assert array(named(titled(chart_specs(at), "Loss ("), "growing")["y"]) == [0.7, 0.6]

    update_status(folder, state="finished", epoch=2)
    at.run()
    assert not at.exception
    assert polling[-1] == "3s"
    assert not any("Updating as epochs end" in c.value for c in at.caption)


def test_runs_page_hand_off_opens_that_sweep(tmp_path, trained, monkeypatch):
    """The Runs page's "Compare" button sets st.session_state['compare_sweep'] (and ?sweep=)."""
    root = tmp_path / "runs"
    for run_id in (trained["ids"]["moons"], trained["ids"]["baseline"]):
        shutil.copytree(trained["store"].folder(run_id), root / run_id)
    update_status(root / trained["ids"]["moons"], sweep="older")
    use_runs(monkeypatch, root)
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.session_state["compare_sweep"] = "older"
    at.run()
    assert not at.exception
    assert at.multiselect(key="compare_sweeps").value == ["older"]
    assert list(at.dataframe[0].value["name"]) == ["moons"]
    fresh = AppTest.from_file(PAGE, default_timeout=60)
    fresh.query_params["sweep"] = "older"
    fresh.run()
    assert list(fresh.dataframe[0].value["name"]) == ["moons"]


def fake_repeats(root: Path, accuracies: dict[str, list[float]], sweep: str = "seeds") -> RunStore:
    """Finished runs of `sweep` without training: per variant one run per seed with the given test
    accuracies, and two epochs of metrics whose validation loss is the test accuracy's complement."""
    store = RunStore(root)
    columns = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds", "samples_per_s"]
    for position, (variant, accs) in enumerate(accuracies.items()):
        for seed, acc in enumerate(accs):
            spec = ScenarioSpec(name=f"{variant} · seed {seed}", seed=seed, dropout=0.2 if variant == "dropout" else 0.0)
            folder = store.new_run(spec, sweep=sweep, variant=variant, position=position)
            rows = [[1, 1.0, 0.5, 1.1, 0.5, 1e-3, 0.5, 100.0], [2, 0.5, acc, 1 - acc, acc, 1e-3, 0.5, 100.0]]
            write_atomic(folder / "metrics.csv", pd.DataFrame(rows, columns=columns).to_csv(index=False))
            write_json(folder / "summary.json", {"test_acc": acc, "best_epoch": 2})
            update_status(folder, state="finished", epoch=2)
    return store


def test_seeds_of_a_variant_are_one_line_with_a_band_and_a_verdict(tmp_path, monkeypatch):
    root = tmp_path / "runs"
    fake_repeats(root, {"baseline": [0.90, 0.91, 0.92], "dropout": [0.80, 0.81, 0.80], "l2": [0.905, 0.915, 0.915]})
    use_runs(monkeypatch, root)
    at = open_page()
    assert not at.exception
    assert at.toggle(key="compare_grouped").value                # repeats: grouped by default
    loss = titled(chart_specs(at), "Loss")
    # dropout's validation mean and its band (min to max over its three seeds) at epoch 2
    val = [t for t in loss["data"] if t.get("name", "").startswith("dropout") and "validation" in t.get("name", "")]
    means = [t for t in val if t.get("fill") != "tonexty" and "high" not in t["name"] and "low" not in t["name"]]
    assert array(means[0]["y"])[-1] == pytest.approx(1 - np.mean([0.80, 0.81, 0.80]))
    high = [t for t in val if t.get("fill") == "tonexty"]
    assert array(high[0]["y"])[-1] == pytest.approx(1 - 0.80)
    # Verdicts against the baseline, the test named in a tooltip.
    verdicts = {m.value.replace("\\", ""): m for m in at.markdown if " vs baseline" in m.value}   # names are escaped
    assert "**dropout vs baseline: -10.7 points, larger than seed noise**" in verdicts
    assert "**l2 vs baseline: +0.2 points, within seed noise**" in verdicts
    assert "Welch" in verdicts["**dropout vs baseline: -10.7 points, larger than seed noise**"].proto.help
    # The results show one row per variant, its mean, the best variant named.
    result = titled(chart_specs(at), "Test accuracy")
    assert "best: l2" in result["layout"]["title"]["text"]
    assert "variant" in at.dataframe[0].value.columns


def test_two_sweeps_never_pool_their_seeds_and_one_seed_gives_no_verdict(tmp_path, monkeypatch):
    root = tmp_path / "runs"
    fake_repeats(root, {"baseline": [0.90, 0.91], "dropout": [0.80, 0.81]}, sweep="monday")
    fake_repeats(root, {"baseline": [0.70, 0.71], "dropout": [0.60, 0.61]}, sweep="tuesday")
    use_runs(monkeypatch, root)
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.session_state["compare_sweeps"] = ["monday", "tuesday"]
    at.run()
    assert not at.exception
    result = titled(chart_specs(at), "Test accuracy")
    rows = result["layout"]["yaxis"]["categoryarray"]
    assert sorted(rows) == ["baseline · monday", "baseline · tuesday", "dropout · monday", "dropout · tuesday"]
    assert "best: baseline · monday, mean 90.50 % over 2 seeds" in result["layout"]["title"]["text"]
    assert sorted(set(at.dataframe[0].value["variant"])) == sorted(rows)
    # each sweep's variants against its own baseline, never across sweeps
    lines = sorted(m.value.replace("\\", "") for m in at.markdown if " vs baseline" in m.value)
    assert [line.split(" points")[0] for line in lines] == ["**monday: dropout vs baseline: -10.0",
                                                            "**tuesday: dropout vs baseline: -10.0"]

    single = tmp_path / "single"
    fake_repeats(single, {"baseline": [0.90], "dropout": [0.95]}, sweep="once")
    use_runs(monkeypatch, single)
    at = open_page()
    assert not [m for m in at.markdown if " vs baseline" in m.value]       # no "cannot tell" per pair...
    assert any("One seed per variant" in c.value for c in at.caption)     # ...one line that says why


def test_the_class_guess_is_revealed_with_the_result(tmp_path, monkeypatch):
    from trainlib.predictions import save_prediction

    root = tmp_path / "runs"
    store = fake_repeats(root, {"baseline": [0.9], "dropout": [0.95]}, sweep="guess")
    save_prediction(root, "guess", "baseline")
    use_runs(monkeypatch, root)
    at = open_page()
    (reveal,) = [i.value for i in at.info if "predicted" in i.value]
    assert reveal == "The class predicted **baseline**; the winner is **dropout** (95.0%)."
    # While a run of the sweep still trains, the guess stays hidden.
    folder = store.new_run(ScenarioSpec(name="late"), sweep="guess", variant="late", position=2)
    update_status(folder, state="running", pid=os.getppid(), epoch=0)
    at.run()
    assert not [i for i in at.info if "predicted" in i.value]
    assert any("revealed here when the sweep has ended" in i.value for i in at.info)


def test_a_run_has_one_colour_and_one_place_on_every_page_and_numbers_sort_as_numbers(tmp_path, monkeypatch):
    """A batch-size sweep queued 16, 64, 256 (names that sort as text: bs=16, bs=256, bs=64)."""
    root = tmp_path / "runs"
    store = RunStore(root)
    columns = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds", "samples_per_s"]
    ids = {}
    for position, (bs, acc) in enumerate([(16, 0.91), (64, 0.93), (256, 0.89)]):
        spec = ScenarioSpec(name=f"bs={bs}", batch_size=bs)
        folder = store.new_run(spec, sweep="batch", position=position)
        write_atomic(folder / "metrics.csv", pd.DataFrame([[1, 0.5, acc, 0.6, acc, 1e-3, 0.5, 100.0]],
                                                          columns=columns).to_csv(index=False))
        write_json(folder / "summary.json", {"test_acc": acc})
        update_status(folder, state="finished", epoch=1)
        ids[spec.name] = folder.name
    use_runs(monkeypatch, root)
    at = open_page()
    specs = chart_specs(at)
    loss = titled(specs, "Loss (")
    compare_colours = {name: named(loss, name)["line"]["color"] for name in ids}
    assert compare_colours == {"bs=16": figures.PALETTE[0], "bs=64": figures.PALETTE[1], "bs=256": figures.PALETTE[2]}
    assert [t["name"] for t in loss["data"] if t["name"] in ids] == ["bs=16", "bs=64", "bs=256"]   # legend order
    assert list(titled(specs, "Test accuracy")["data"][0]["y"]) == ["bs=16", "bs=64", "bs=256"]
    table = at.dataframe[0].value
    assert pd.api.types.is_numeric_dtype(table["batch_size"])             # sorts 16, 64, 256 when clicked
    assert list(table["name"]) == ["bs=64", "bs=16", "bs=256"]           # best test accuracy first

    # The Runs page draws the same runs in the same colours and order.
    runs_page = AppTest.from_file(str(Path(PAGE).parent / "live.py"), default_timeout=60).run()
    assert not runs_page.exception
    (curves,) = apphelpers.chart_specs(runs_page)
    runs_colours = {name: named(curves, name)["line"]["color"] for name in ids}
    assert runs_colours == compare_colours
    names = [m.value for m in runs_page.markdown if m.value.startswith("**bs")]
    assert [n.replace("\\", "") for n in names] == ["**bs=16**", "**bs=64**", "**bs=256**"]
