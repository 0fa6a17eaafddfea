"""The runner: a queue of runs and worker threads. Ordering is forced with events, never with sleeps."""
from __future__ import annotations

import subprocess
import sys
import threading
import time

import pandas as pd
import pytest

from trainlib import Runner, create_scenario, train
from trainlib.store import CHECKPOINT, read_json, update_status

TIMEOUT = 60    # seconds; only reached when something is broken


class Gate:
    """An on_epoch callback that holds the worker after a chosen epoch until the test releases it."""

    def __init__(self, at_epoch: int = 1):
        self.at_epoch = at_epoch
        self.reached = threading.Event()
        self.release = threading.Event()
        self.seen: list[tuple[str, int]] = []

    def __call__(self, run_id: str, record: dict) -> None:
        self.seen.append((run_id, record["epoch"]))
        if record["epoch"] == self.at_epoch and not self.reached.is_set():
            self.reached.set()
            self.release.wait(TIMEOUT)


@pytest.fixture
def make_runner(runs_dir):
    runners, gates = [], []

    def make(gate: Gate | None = None, **kwargs) -> Runner:
        runner = Runner(runs_dir, on_epoch=gate, **kwargs)
        runners.append(runner)
        if gate is not None:
            gates.append(gate)
        return runner

    yield make
    for gate in gates:
        gate.release.set()
    for runner in runners:
        runner.shutdown()


def test_submit_many_runs_them_all_to_finished(make_runner, tiny_spec, runs_dir):
    runner = make_runner()
    specs = [tiny_spec(name=f"r{i}", seed=i, epochs=2) for i in range(3)]
    ids = runner.submit_many(specs, sweep="three")
    assert len(set(ids)) == 3
    assert runner.wait(ids, timeout=TIMEOUT)
    assert not runner.busy()
    for run_id, spec in zip(ids, specs):
        status = read_json(runs_dir / run_id / "status.json")
        assert status["state"] == "finished" and status["sweep"] == "three" and status["epoch"] == 2
        assert len(pd.read_csv(runs_dir / run_id / "metrics.csv")) == 2
    snapshot = runner.snapshot()
    assert set(snapshot) == set(ids)
    first = snapshot[ids[0]]
    assert first["name"] == "r0" and first["state"] == "finished"
    assert first["epoch"] == first["epochs"] == 2 and first["elapsed"] is None
    assert first["last"]["epoch"] == 2 and first["last"]["val_loss"] > 0
    frame = runner.store.list_runs()
    assert sorted(frame["name"]) == ["r0", "r1", "r2"] and (frame["state"] == "finished").all()


def test_a_run_that_cannot_start_fails_while_the_others_finish(make_runner, tiny_spec, runs_dir, tmp_path,
                                                                no_download):
    runner = make_runner()
    missing = tiny_spec(name="mnist", dataset="mnist", data_dir=str(tmp_path / "no-mnist-here"))
    ids = runner.submit_many([tiny_spec(name="before"), missing, tiny_spec(name="after")])
    assert runner.wait(ids, timeout=TIMEOUT)
    states = [read_json(runs_dir / run_id / "status.json")["state"] for run_id in ids]
    assert states == ["finished", "failed", "finished"]
    status = read_json(runs_dir / ids[1] / "status.json")
    assert status["error"].startswith("DatasetUnavailable") and "MNIST" in status["error"]
    assert status["ended_at"]
    assert runner.snapshot()[ids[1]]["state"] == "failed"


def test_cancel_a_queued_run_it_never_trains(make_runner, tiny_spec, runs_dir):
    gate = Gate(at_epoch=1)
    runner = make_runner(gate, workers=1)
    first = runner.submit(tiny_spec(name="first", epochs=2))
    second = runner.submit(tiny_spec(name="second", epochs=2))
    assert gate.reached.wait(TIMEOUT)              # the single worker is busy with the first run
    snapshot = runner.snapshot()
    assert snapshot[first]["state"] == "running" and snapshot[first]["epoch"] == 1
    assert snapshot[first]["elapsed"] >= 0
    assert snapshot[second]["state"] == "queued" and snapshot[second]["epoch"] == 0
    assert runner.wait([first], timeout=0.05) is False
    assert runner.cancel(second) is True
    assert runner.cancel(first) is False           # a running run is stopped, not cancelled
    gate.release.set()
    assert runner.wait([first, second], timeout=TIMEOUT)
    status = read_json(runs_dir / second / "status.json")
    assert status["state"] == "stopped" and "cancelled" in status["error"] and status["epoch"] == 0
    assert not (runs_dir / second / "metrics.csv").exists() and not (runs_dir / second / CHECKPOINT).exists()
    assert all(run_id == first for run_id, _ in gate.seen)
    assert read_json(runs_dir / first / "status.json")["state"] == "finished"
    assert runner.snapshot()[second]["state"] == "stopped"


def test_cancel_while_a_worker_is_taking_the_run_off_the_queue(make_runner, tiny_spec, runs_dir):
    """The race between cancel() and a worker that has already dequeued the run: it must not train."""
    runner = make_runner(workers=1)
    taken, proceed = threading.Event(), threading.Event()
    original_run = runner._run

    def slow_start(handle):
        taken.set()                    # dequeued, stop_event checked, not started yet
        proceed.wait(TIMEOUT)
        original_run(handle)

    runner._run = slow_start
    run_id = runner.submit(tiny_spec(name="racy"))
    assert taken.wait(TIMEOUT)
    assert runner.cancel(run_id) is True
    proceed.set()
    assert runner.wait([run_id], timeout=TIMEOUT)
    runner.shutdown()                  # joins the worker: whatever _run would do is done now
    status = read_json(runs_dir / run_id / "status.json")
    assert status["state"] == "stopped" and "cancelled" in status["error"]
    assert not (runs_dir / run_id / "metrics.csv").exists()
    assert runner.snapshot()[run_id]["state"] == "stopped"


def test_stop_a_running_run(make_runner, tiny_spec, runs_dir):
    gate = Gate(at_epoch=1)
    runner = make_runner(gate)
    run_id = runner.submit(tiny_spec(name="long", epochs=50))
    assert gate.reached.wait(TIMEOUT)
    assert runner.stop(run_id) is True
    gate.release.set()
    assert runner.wait([run_id], timeout=TIMEOUT)
    status = read_json(runs_dir / run_id / "status.json")
    assert status["state"] == "stopped" and status["error"] is None
    assert status["epoch"] == 1                   # stopped between batches of epoch 2
    assert pd.read_csv(runs_dir / run_id / "metrics.csv")["epoch"].tolist() == [1]
    assert runner.snapshot()[run_id]["state"] == "stopped"
    assert runner.stop(run_id) is False           # already over


def test_resume_an_interrupted_run_from_its_checkpoint(make_runner, tiny_spec, runs_dir):
    spec = tiny_spec(name="crashed", epochs=3)
    first_runner = make_runner()
    folder = first_runner.store.new_run(spec)
    # Train one epoch, then leave the folder as a killed process would: 'running', owner gone.
    epochs_done = []
    train(create_scenario(spec, log_folder=folder), on_epoch=lambda r: epochs_done.append(r["epoch"]),
          should_stop=lambda: bool(epochs_done))
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    update_status(folder, state="running", pid=gone.pid, ended_at=None)

    runner = make_runner()
    assert runner.interrupted_at_start == [folder.name]
    assert read_json(folder / "status.json")["state"] == "interrupted"
    assert runner.resume(folder.name) == folder.name
    assert runner.wait([folder.name], timeout=TIMEOUT)
    status = read_json(folder / "status.json")
    assert status["state"] == "finished" and status["resumed_from"] == 1 and status["epoch"] == 3
    assert pd.read_csv(folder / "metrics.csv")["epoch"].tolist() == [1, 2, 3]
    assert read_json(folder / "summary.json")["epochs_run"] == 3


def test_resume_of_a_live_run_is_refused(make_runner, tiny_spec):
    gate = Gate(at_epoch=1)
    runner = make_runner(gate)
    run_id = runner.submit(tiny_spec(epochs=2))
    assert gate.reached.wait(TIMEOUT)
    with pytest.raises(ValueError, match="already running"):
        runner.resume(run_id)
    gate.release.set()
    assert runner.wait([run_id], timeout=TIMEOUT)


def test_default_workers_one_on_cpu_four_on_gpu(make_runner):
    import torch
    assert make_runner().workers == (4 if torch.cuda.is_available() else 1)
    assert make_runner(workers=3).workers == 3


def test_a_second_runner_in_the_same_process_leaves_the_first_ones_runs_alone(runs_dir):
    """Two runners in one process (a cached runner replaced, a script beside the app): the second
    must not call the first one's live runs interrupted."""
    from trainlib.spec import ScenarioSpec
    first = Runner(runs_dir, workers=1)
    release = threading.Event()
    first.on_epoch = lambda run_id, record: release.wait(60)      # hold the run in 'running'
    run_id = first.submit(ScenarioSpec(dataset="moons", hidden_sizes=(8,), epochs=2, train_subset=200))
    deadline = time.monotonic() + 60
    while first.snapshot()[run_id]["state"] != "running" and time.monotonic() < deadline:
        time.sleep(0.01)
    second = Runner(runs_dir, workers=1)
    assert run_id not in second.interrupted_at_start
    release.set()
    assert first.wait([run_id], timeout=60)
    assert first.store.read_run(run_id)["status"]["state"] == "finished"


def test_only_interrupted_or_stopped_runs_resume(make_runner, tiny_spec):
    runner = make_runner()
    run_id = runner.submit(tiny_spec(epochs=1))
    assert runner.wait([run_id], timeout=TIMEOUT)
    with pytest.raises(ValueError, match="finished; only interrupted or stopped runs resume"):
        runner.resume(run_id)
    assert runner.store.read_run(run_id)["status"]["state"] == "finished"


def test_a_resumed_run_waiting_in_the_queue_is_not_reaped_again(make_runner, tiny_spec, runs_dir):
    """The dashboard reaps orphans on every poll: a resumed run still queued behind another one
    belongs to this process now, whatever pid its folder had before."""
    store_runner = make_runner()
    folder = store_runner.store.new_run(tiny_spec(name="orphan"))
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    update_status(folder, state="running", pid=gone.pid)
    gate = Gate(at_epoch=1)
    runner = make_runner(gate, workers=1)
    assert runner.interrupted_at_start == [folder.name]
    blocker = runner.submit(tiny_spec(name="blocker", epochs=2))
    assert gate.reached.wait(TIMEOUT)                 # the only worker is busy: the resumed run waits
    runner.resume(folder.name)
    assert runner.reap_orphans() == []
    assert read_json(folder / "status.json")["state"] == "queued"
    gate.release.set()
    assert runner.wait([blocker, folder.name], timeout=TIMEOUT)
    assert read_json(folder / "status.json")["state"] == "finished"
