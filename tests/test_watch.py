"""What makes a page redraw (dashboard/watch.py): a new run, a new epoch, a state; never a heartbeat.
And the small files of the class flow: the winner's guess (trainlib/predictions.py)."""
from __future__ import annotations

import os

from dashboard import watch
from trainlib import ScenarioSpec
from trainlib.predictions import FOLDER, prediction_file, read_predictions, save_prediction
from trainlib.store import RunStore, now_iso, update_status


def add_epoch(folder, epoch: int) -> None:
    path = folder / "metrics.csv"
    header = "" if path.exists() else "epoch,train_loss,val_loss,train_acc,val_acc,lr,seconds\n"
    with open(path, "a") as out:
        out.write(header + f"{epoch},0.5,0.6,0.8,0.7,0.001,0.1\n")


def test_the_version_moves_with_what_a_page_shows_and_not_with_heartbeats(tmp_path):
    store = RunStore(tmp_path / "runs")
    empty = watch.runs_version(store)
    folder = store.new_run(ScenarioSpec(name="a"), sweep="s")
    queued = watch.runs_version(store)
    assert queued != empty                                  # an idle tab learns of a run started elsewhere

    update_status(folder, state="running", started_at=now_iso(), heartbeat_at=now_iso())
    running = watch.runs_version(store)
    assert running != queued
    update_status(folder, heartbeat_at=now_iso())           # a heartbeat rewrites status.json...
    assert watch.runs_version(store) == running              # ...and changes nothing on screen

    add_epoch(folder, 1)
    update_status(folder, epoch=1)
    first = watch.runs_version(store)
    assert first != running
    assert watch.runs_version(store) == first                 # nothing changed: the same version
    add_epoch(folder, 2)                                      # a row lands before the status says so
    assert watch.runs_version(store) != first
    # Only the watched runs' metrics count: a page showing other runs does not redraw for this one.
    assert watch.runs_version(store, run_ids=[]) == watch.runs_version(store, run_ids=[])


def test_a_broken_run_folder_does_not_break_the_version(tmp_path):
    store = RunStore(tmp_path / "runs")
    folder = store.new_run(ScenarioSpec(name="a"))
    (folder / "status.json").write_bytes(b"\xff\xfe not json")
    os.mkdir(tmp_path / "runs" / "not-a-run")
    assert watch.runs_version(store) == watch.runs_version(store)


def test_guesses_are_kept_per_sweep_and_never_break_a_reader(tmp_path):
    root = tmp_path / "runs"
    store = RunStore(root)
    assert read_predictions(root, "regularization") == []
    save_prediction(root, "regularization", "dropout")
    save_prediction(root, "regularization", "batchnorm")
    save_prediction(root, "odd/name ../x", "l2")
    assert read_predictions(root, "regularization") == ["dropout", "batchnorm"]
    assert read_predictions(root, "odd/name ../x") == ["l2"]
    assert prediction_file(root, "odd/name ../x").parent == root / FOLDER     # one safe file name
    assert store.list_runs().empty                                            # not a run
    prediction_file(root, "regularization").write_text("[1, 2")
    assert read_predictions(root, "regularization") == []
