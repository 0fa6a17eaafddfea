"""The run store: folder contents, listings, corrupt folders, atomic writes, interrupted runs, TensorBoard."""
from __future__ import annotations

import json
import os
import socket
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest
import torch

from trainlib import RunStore, create_scenario, list_runs, load_run, train
from trainlib.loop import METRIC_COLUMNS
from trainlib.liveness import RunnerHeartbeat
from trainlib.store import CHECKPOINT, read_json, update_status, write_atomic, write_json


def train_into_store(store: RunStore, spec, sweep=None):
    folder = store.new_run(spec, sweep=sweep)
    history = train(create_scenario(spec, log_folder=folder))
    return folder, history


def leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.rglob("*") if p.name.endswith(".tmp")]


def test_new_run_is_queued_with_its_scenario(tiny_spec, runs_dir):
    store = RunStore()
    assert store.root == runs_dir                  # $TRAINLIB_RUNS_DIR
    spec = tiny_spec(name="my run/1")
    folder = store.new_run(spec, sweep="s1", owner="runner-1")
    assert folder.parent == runs_dir and "/" not in folder.name and "my-run-1" in folder.name
    assert read_json(folder / "scenario.json") == spec.to_dict()
    status = read_json(folder / "status.json")
    assert status["state"] == "queued" and status["sweep"] == "s1" and status["epoch"] == 0
    assert status["epochs"] == spec.epochs and status["owner"] == "runner-1"


def test_run_folder_after_training(tiny_spec):
    store = RunStore()
    spec = tiny_spec(epochs=3)
    folder, history = train_into_store(store, spec)
    names = {p.name for p in folder.iterdir()}
    assert {"scenario.json", "status.json", "metrics.csv", "summary.json", CHECKPOINT} <= names
    assert any(n.startswith("events.out.tfevents.") for n in names)
    assert leftovers(folder) == []
    assert read_json(folder / "scenario.json") == spec.to_dict()
    status = read_json(folder / "status.json")
    assert status["state"] == "finished" and status["error"] is None
    assert status["epoch"] == status["epochs"] == 3
    assert status["ended_at"] and status["started_at"] and status["engine"].startswith("eager (")
    metrics = pd.read_csv(folder / "metrics.csv")
    assert list(metrics.columns) == METRIC_COLUMNS and metrics["epoch"].tolist() == [1, 2, 3]
    assert metrics["val_loss"].tolist() == pytest.approx([r["val_loss"] for r in history.records])
    summary = read_json(folder / "summary.json")
    assert 0 <= summary["test_acc"] <= 1 and summary["test_acc"] == pytest.approx(history.test_acc)
    assert summary["state"] == "finished" and summary["epochs_run"] == 3
    checkpoint = torch.load(folder / CHECKPOINT, map_location="cpu", weights_only=False)
    assert checkpoint["epoch"] == summary["best_epoch"]


def test_failed_and_diverged_runs_say_so_in_their_folder(tiny_spec):
    store = RunStore()
    folder, _ = train_into_store(store, tiny_spec(dataset="sine", optimizer="sgd", lr=1e6))
    status = read_json(folder / "status.json")
    assert status["state"] == "diverged" and "epoch 1" in status["error"]
    # NaN never reaches the JSON files (they stay strict JSON)
    json.loads((folder / "summary.json").read_text())
    folder = store.new_run(tiny_spec())
    S = create_scenario(tiny_spec(), log_folder=folder)
    S.train_loader = [(torch.randn(2, 5), torch.zeros(2))]
    train(S)
    status = read_json(folder / "status.json")
    assert status["state"] == "failed" and status["error"].startswith("RuntimeError")


def test_list_runs_and_load_run(tiny_spec, runs_dir):
    store = RunStore()
    a, _ = train_into_store(store, tiny_spec(name="a", epochs=2), sweep="s")
    b, _ = train_into_store(store, tiny_spec(name="b", epochs=3, hidden_sizes=(8, 4)), sweep="s")
    beat = RunnerHeartbeat(runs_dir).start()                  # a live runner owns the queued run
    queued = store.new_run(tiny_spec(name="c"), owner=beat.runner_id)
    frame = list_runs()                                       # the module function, default folder
    assert sorted(frame["run_id"]) == sorted([a.name, b.name, queued.name])
    assert frame.attrs["skipped"] == []
    rows = frame.set_index("name")
    assert rows.loc["a", "state"] == "finished" and rows.loc["c", "state"] == "queued"
    assert rows.loc["b", "epoch"] == 3 and rows.loc["b", "hidden_sizes"] == "8,4"
    assert rows.loc["a", "sweep"] == "s" and 0 <= rows.loc["a", "test_acc"] <= 1
    assert pd.isna(rows.loc["c", "test_acc"])
    assert {"lr", "dataset", "best_val_loss", "engine"} <= set(frame.columns)
    metrics = load_run(b.name, root=runs_dir)
    assert metrics["epoch"].tolist() == [1, 2, 3] and list(metrics.columns) == METRIC_COLUMNS
    empty = load_run(queued.name)
    assert empty.empty and list(empty.columns) == METRIC_COLUMNS
    long = store.load_metrics([a.name, b.name])
    assert len(long) == 5 and list(long.columns[:2]) == ["run_id", "name"]
    assert long.groupby("name")["epoch"].max().to_dict() == {"a": 2, "b": 3}
    with pytest.raises(KeyError):
        load_run("no-such-run")
    with pytest.raises(KeyError):
        store.folder("../" + a.name)
    beat.stop()                                               # its runner gone: shown interrupted
    assert list_runs().set_index("name").loc["c", "state"] == "interrupted"


def test_corrupt_folders_are_skipped_and_reported(tiny_spec, runs_dir):
    store = RunStore()
    good = store.new_run(tiny_spec(name="good"))
    bad_json = store.new_run(tiny_spec(name="badjson"))
    (bad_json / "status.json").write_text('{"state": "fini')
    no_status = store.new_run(tiny_spec(name="nostatus"))
    (no_status / "status.json").unlink()
    odd_state = store.new_run(tiny_spec(name="oddstate"))
    update_status(odd_state, state="exploded")
    not_object = store.new_run(tiny_spec(name="list"))
    (not_object / "scenario.json").write_text("[1, 2]")
    (runs_dir / "stray-file.txt").write_text("not a run")
    (runs_dir / ".hidden").mkdir()
    frame = store.list_runs()
    assert frame["run_id"].tolist() == [good.name]
    skipped = dict(frame.attrs["skipped"])
    assert set(skipped) == {bad_json.name, no_status.name, odd_state.name, not_object.name, "stray-file.txt"}
    assert skipped[bad_json.name].startswith("status.json is not valid JSON (Unterminated string")
    assert "unknown state 'exploded'" in skipped[odd_state.name]
    assert skipped[no_status.name] == "no status.json"
    assert skipped[not_object.name] == "scenario.json does not hold a JSON object (it holds a list)"
    assert skipped["stray-file.txt"] == "a file, not a run folder"      # '.hidden': not a run, by convention
    # metrics of an unreadable run are skipped too, never a crash
    assert store.load_metrics([bad_json.name, "missing"]).empty


def test_empty_store_lists_nothing(tmp_path):
    frame = list_runs(tmp_path / "none-yet")
    assert frame.empty and frame.attrs["skipped"] == []


def test_write_atomic_replaces_the_whole_file_and_leaves_no_temporaries(tmp_path):
    path = tmp_path / "status.json"
    write_atomic(path, "x" * 10_000)
    write_atomic(path, "short")
    assert path.read_text() == "short"
    write_json(path, {"a": float("nan"), "b": [1.0, float("inf")]})
    assert json.loads(path.read_text()) == {"a": None, "b": [1.0, None]}
    assert leftovers(tmp_path) == []


def test_a_failed_write_keeps_the_old_file_whole(tmp_path, monkeypatch):
    path = tmp_path / "status.json"
    write_json(path, {"state": "running", "epoch": 1})

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        write_json(path, {"state": "finished", "epoch": 2})
    monkeypatch.undo()
    assert read_json(path) == {"state": "running", "epoch": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]


def test_update_status_merges(tmp_path):
    update_status(tmp_path, state="running", epoch=1)
    status = update_status(tmp_path, epoch=2)
    assert status["state"] == "running" and status["epoch"] == 2 and "updated_at" in status
    assert read_json(tmp_path / "status.json") == status


def test_readers_derive_interrupted_from_a_stale_heartbeat_and_never_write_it(tiny_spec, runs_dir, monkeypatch):
    monkeypatch.setenv("TRAINLIB_HEARTBEAT_TTL", "30")
    store = RunStore()
    stale = (datetime.now(timezone.utc) - timedelta(seconds=31)).isoformat()
    fresh = (datetime.now(timezone.utc) - timedelta(seconds=5)).isoformat()
    dead = store.new_run(tiny_spec(name="dead"))
    update_status(dead, state="running", heartbeat_at=stale, host=socket.gethostname(), pid=os.getpid())
    far = store.new_run(tiny_spec(name="far"))
    update_status(far, state="running", heartbeat_at=fresh, host="another-machine", pid=1)
    done = store.new_run(tiny_spec(name="done"))
    update_status(done, state="finished", heartbeat_at=stale)
    rows = store.list_runs().set_index("name")
    assert rows.loc["dead", "state"] == "interrupted" and rows.loc["dead", "recorded_state"] == "running"
    assert "no heartbeat for 3" in rows.loc["dead", "error"]
    assert rows.loc["far", "state"] == "running"            # fresh: alive, whatever host and pid it names
    assert rows.loc["done", "state"] == "finished"
    assert read_json(dead / "status.json")["state"] == "running"      # the file is the run's alone
    assert store.read_run(dead.name)["status"]["state"] == "interrupted"


def test_tensorboard_reads_the_scalars_per_epoch(tiny_spec):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    store = RunStore()
    folder, history = train_into_store(store, tiny_spec(epochs=3))
    events = EventAccumulator(str(folder))
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"loss/train", "loss/val", "accuracy/train", "accuracy/val", "lr"} <= scalars
    for tag, key in (("loss/train", "train_loss"), ("loss/val", "val_loss"), ("accuracy/val", "val_acc")):
        points = events.Scalars(tag)
        assert [p.step for p in points] == [1, 2, 3]
        assert [p.value for p in points] == pytest.approx([r[key] for r in history.records], rel=1e-6)
    assert "hparam/test_acc" in scalars
    assert events.Scalars("hparam/test_acc")[-1].value == pytest.approx(history.test_acc, rel=1e-6)


def test_cached_reads_follow_every_write(tmp_path):
    """The store caches parsed files per stamp; back-to-back writes must still be seen."""
    from trainlib.spec import ScenarioSpec
    store = RunStore(tmp_path)
    folder = store.new_run(ScenarioSpec(name="cached"))
    run_id = folder.name
    for epoch in range(1, 30):                         # faster than any file clock ticks
        update_status(folder, epoch=epoch)
        assert store.read_run(run_id)["status"]["epoch"] == epoch
    assert store.list_runs().loc[0, "epoch"] == 29
    write_atomic(folder / "metrics.csv", "epoch,train_loss\n1,0.5\n")
    assert store.load_run(run_id)["train_loss"].tolist() == [0.5]
    write_atomic(folder / "metrics.csv", "epoch,train_loss\n1,0.4\n")
    assert store.load_run(run_id)["train_loss"].tolist() == [0.4]


# ----------------------------------------------------------------------------- robustness of the readers
def test_a_folder_whose_name_is_not_utf8_is_skipped_and_the_others_listed(tiny_spec, runs_dir, capsys):
    """Such a name made building the DataFrame raise UnicodeEncodeError: `trainlib list` and every page went down."""
    store = RunStore()
    good = store.new_run(tiny_spec(name="good"))
    bad = os.path.join(os.fsencode(runs_dir), b"bad\xff")
    os.mkdir(bad)
    for name in ("scenario.json", "status.json"):          # a whole run folder, only its name is wrong
        with open(os.path.join(bad, name.encode()), "wb") as handle:
            handle.write((good / name).read_bytes())
    frame = store.list_runs()
    assert frame["run_id"].tolist() == [good.name]
    assert dict(frame.attrs["skipped"]) == {
        "bad\\xff": "its name is not valid UTF-8, so it cannot be a run id (rename the folder)"}
    with pytest.raises(KeyError):
        store.read_run("bad\udcff")
    from trainlib.cli import main
    assert main(["list"]) == 0
    out, err = capsys.readouterr()
    assert good.name in out and "skipped bad\\xff: its name is not valid UTF-8" in err


def test_write_atomic_creates_files_with_the_mode_open_would(tmp_path):
    """mkstemp made metrics.csv and status.json 0600: another account could read the checkpoints
    (0644) but not the metrics beside them."""
    previous = os.umask(0o022)
    try:
        write_atomic(tmp_path / "metrics.csv", "epoch\n1\n")
        write_json(tmp_path / "status.json", {"state": "queued"})
        with open(tmp_path / "plain.txt", "w") as handle:
            handle.write("x")
        os.umask(0o077)
        write_atomic(tmp_path / "private.csv", "epoch\n")
    finally:
        os.umask(previous)
    mode = lambda name: (tmp_path / name).stat().st_mode & 0o777      # noqa: E731
    assert mode("metrics.csv") == mode("status.json") == mode("plain.txt") == 0o644
    assert mode("private.csv") == 0o600                 # the umask decides, as for open()
    assert leftovers(tmp_path) == []


def test_a_run_folders_files_are_readable_by_other_accounts(tiny_spec):
    previous = os.umask(0o022)
    try:
        folder, _ = train_into_store(RunStore(), tiny_spec())
    finally:
        os.umask(previous)
    for name in ("scenario.json", "status.json", "metrics.csv", "summary.json", CHECKPOINT):
        assert (folder / name).stat().st_mode & 0o777 == 0o644, name


def test_read_spec_raises_a_clear_error_naming_the_file(tiny_spec):
    store = RunStore()
    folder = store.new_run(tiny_spec())
    text = (folder / "scenario.json").read_text()
    # a 400-digit lr raised OverflowError (the Runs page's Resume went down), binary text UnicodeDecodeError
    for bad, expected in ((text.replace('"lr": 0.01', f'"lr": {10 ** 400}'), r"scenario\.json"),
                          (text.replace('"lr": 0.01', '"lr": 1e400'), r"^lr: .*scenario\.json"),
                          ("\xff\xfe not text", r"scenario\.json is not UTF-8 text"),
                          ('{"lr": ', r"scenario\.json is not valid JSON"),
                          (text.replace('"name"', '"colour": 1, "name"'), r"^colour: unknown field")):
        (folder / "scenario.json").write_bytes(bad.encode("latin-1") if bad.startswith("\xff") else bad.encode())
        with pytest.raises(ValueError, match=expected) as info:
            store.read_spec(folder.name)
        assert str(folder) in str(info.value)
    (folder / "scenario.json").unlink()
    with pytest.raises(ValueError, match="no scenario.json"):
        store.read_spec(folder.name)
    with pytest.raises(KeyError):
        store.read_spec("no-such-run")


def test_load_run_checks_the_columns_it_needs(tiny_spec):
    store = RunStore()
    folder = store.new_run(tiny_spec())
    path = folder / "metrics.csv"
    for content, expected in (
            (b"\x89PNG\r\n\x1a\n\x00\xff\xfe", "it is not UTF-8 text"),
            (b"loss,acc\n0.5,0.8\n", "it has no 'epoch' column (its columns: 'loss', 'acc')"),
            (b"epoch,train_loss\n1,0.5\n2,abc\n", "column 'train_loss' holds text ('abc' in data row 2)"),
            (b"epoch,train_loss\n1.5,0.5\n", "column 'epoch' must hold whole numbers (1.5 in data row 1)"),
            (b"epoch,train_loss\n,0.5\n", "column 'epoch' must hold whole numbers")):
        path.write_bytes(content)
        with pytest.raises(ValueError) as info:
            store.load_run(folder.name)
        assert str(info.value).startswith(f"metrics.csv cannot be read: {expected}"), info.value
    path.write_bytes(b"epoch,train_loss,val_loss,note\n1,0.5,,first\n2,0.4,0.45,\n")   # an older, shorter file
    metrics = store.load_run(folder.name)
    assert list(metrics.columns) == [*METRIC_COLUMNS, "note"]
    assert metrics["epoch"].tolist() == [1, 2] and metrics["train_loss"].tolist() == [0.5, 0.4]
    assert metrics["val_acc"].isna().all() and metrics["val_loss"].isna().tolist() == [True, False]


def test_a_summary_that_is_not_an_object_leaves_the_run_listed(tiny_spec):
    store = RunStore()
    folder = store.new_run(tiny_spec(name="kept"))
    (folder / "summary.json").write_text("[0.9]")
    frame = store.list_runs()
    assert frame["name"].tolist() == ["kept"] and pd.isna(frame.loc[0, "test_acc"])
    assert frame.attrs["problems"] == [(folder.name, "summary.json left out: summary.json does not hold a JSON "
                                                     "object (it holds a list)")]
    assert store.read_run(folder.name)["summary"] == {}


def test_scenario_keys_do_not_overwrite_the_rows_own_columns(tiny_spec):
    store = RunStore()
    folder = store.new_run(tiny_spec(name="mine"))
    update_status(folder, state="stopped")
    spec = read_json(folder / "scenario.json")
    write_json(folder / "scenario.json", {**spec, "run_id": "someone-else", "state": "finished", "colour": "red"})
    row = store.list_runs().iloc[0]
    assert row["run_id"] == folder.name and row["state"] == "stopped" and "colour" not in row.index


# ----------------------------------------------------------------------------- variants, positions, sweep names
def test_new_run_stores_its_variant_and_position(tiny_spec):
    store = RunStore()
    repeat = store.new_run(tiny_spec(name="dropout · seed 1", seed=1), sweep="reg", variant="dropout", position=2)
    alone = store.new_run(tiny_spec(name="alone"))
    for folder, variant, position in ((repeat, "dropout", 2), (alone, "alone", None)):
        status = read_json(folder / "status.json")
        assert (status["variant"], status["position"]) == (variant, position)
    rows = store.list_runs().set_index("name")
    assert rows.loc["dropout · seed 1", "variant"] == "dropout" and rows.loc["dropout · seed 1", "position"] == 2
    assert rows.loc["alone", "variant"] == "alone" and pd.isna(rows.loc["alone", "position"])
    assert str(rows["position"].dtype) == "Int64"
    for bad in (-1, True, 1.5):
        with pytest.raises(ValueError, match="position"):
            store.new_run(tiny_spec(), sweep="reg", position=bad)


@pytest.mark.parametrize("variant, position, shown_variant, shown_position", [
    ("l2", 3, "l2", 3),
    (None, None, "hand-edited", None),            # an old run: neither key
    (5, "3", "hand-edited", None),
    ("  ", -1, "hand-edited", None),
    (["a"], 1.0, "hand-edited", None),
    ({"x": 1}, True, "hand-edited", None),
    ("l2", 2 ** 70, "l2", None),
])
def test_hand_edited_variants_and_positions_fall_back(tiny_spec, variant, position, shown_variant, shown_position):
    store = RunStore()
    folder = store.new_run(tiny_spec(name="hand-edited"), sweep="s", position=0)
    status = read_json(folder / "status.json")
    del status["variant"], status["position"]
    status.update({key: value for key, value in (("variant", variant), ("position", position)) if value is not None})
    write_json(folder / "status.json", status)
    frame = store.list_runs()
    assert frame.attrs["skipped"] == [] and str(frame["position"].dtype) == "Int64"
    row = frame.iloc[0]
    assert row["variant"] == shown_variant
    assert (pd.isna(row["position"]) if shown_position is None else row["position"] == shown_position)


def test_unique_sweep_name_never_reuses_a_sweep_in_the_folder(tiny_spec):
    store = RunStore()
    assert store.unique_sweep_name("reg") == "reg"
    store.new_run(tiny_spec(), sweep="reg")
    assert store.unique_sweep_name("reg") == "reg-2"
    store.new_run(tiny_spec(), sweep="reg-2")
    store.new_run(tiny_spec(), sweep="other")
    assert store.unique_sweep_name("reg") == "reg-3"
    assert store.unique_sweep_name("reg-2") == "reg-2-2" and store.unique_sweep_name("new") == "new"
