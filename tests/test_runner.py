"""The runner: runs in their own processes, supervised through their run folders.

Ordering is forced by what the run folder says (an epoch reached, a heartbeat gone stale), never by
sleeping a guessed time. A run meant to be stopped has 100,000 epochs: it cannot finish first.
"""
from __future__ import annotations

import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest

from apphelpers import wait_until
from trainlib import Runner
from trainlib.executors import LocalProcessExecutor
from trainlib.liveness import RUNNERS_DIR, STOP_REQUEST
from trainlib.runfiles import CHECKPOINT, LAST_CHECKPOINT, now_iso, read_json, update_status, write_json

TIMEOUT = 120       # seconds; only reached when something is broken
FOREVER = 100_000   # epochs: a run that only ends when it is told to
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def short_ttl(monkeypatch):
    """Heartbeats every 0.5 s and stale after 2 s, in this process and in the workers it spawns."""
    monkeypatch.setenv("TRAINLIB_HEARTBEAT_TTL", "2")


@pytest.fixture
def make_runner(runs_dir):
    runners = []

    def make(**kwargs) -> Runner:
        runner = Runner(runs_dir, **kwargs)
        runners.append(runner)
        return runner

    yield make
    for runner in runners:
        runner.shutdown()


def status_of(runs_dir: Path, run_id: str) -> dict:
    return read_json(runs_dir / run_id / "status.json")


def epochs_in(runs_dir: Path, run_id: str) -> list[int]:
    return pd.read_csv(runs_dir / run_id / "metrics.csv")["epoch"].tolist()


def reached_epoch(runs_dir: Path, run_id: str, epoch: int):
    def condition() -> bool:
        try:
            return (status_of(runs_dir, run_id).get("epoch") or 0) >= epoch
        except (OSError, ValueError):
            return False
    return condition


def test_submit_many_gives_each_variant_its_position_in_the_sweep(make_runner, tiny_spec, runs_dir):
    runner = make_runner(workers=1, executor="thread")
    specs = [tiny_spec(name=name, epochs=1) for name in ("b · seed 0", "b · seed 1", "a · seed 0")]
    with pytest.raises(ValueError, match="one per spec"):
        runner.submit_many(specs, sweep="s", variants=["b"])
    assert runner.store.run_ids() == []
    ids = runner.submit_many(specs, sweep="s", variants=["b", "b", "a"])
    alone = runner.submit_many(specs[:1])                                # no sweep: no position
    statuses = [status_of(runs_dir, run_id) for run_id in ids + alone]
    assert [(status["variant"], status["position"]) for status in statuses] == [
        ("b", 0), ("b", 0), ("a", 1), ("b · seed 0", None)]
    assert runner.wait(ids + alone, timeout=TIMEOUT)


def test_runs_train_in_their_own_processes_to_finished(make_runner, tiny_spec, runs_dir):
    seen = []
    runner = make_runner(workers=2, on_epoch=lambda run_id, record: seen.append((run_id, record["epoch"])))
    assert runner.executor_name == "local" and runner.threads == 1
    specs = [tiny_spec(name=f"r{i}", seed=i, epochs=2) for i in range(3)]
    ids = runner.submit_many(specs, sweep="three")
    assert runner.wait(ids, timeout=TIMEOUT)
    assert not runner.busy()
    pids = set()
    for run_id in ids:
        status = status_of(runs_dir, run_id)
        assert status["state"] == "finished" and status["sweep"] == "three" and status["epoch"] == 2
        assert epochs_in(runs_dir, run_id) == [1, 2]
        assert (runs_dir / run_id / LAST_CHECKPOINT).exists() and (runs_dir / run_id / CHECKPOINT).exists()
        pids.add(status["pid"])
    assert os.getpid() not in pids and 1 <= len(pids) <= 2          # the two warm worker processes
    for run_id in ids:                                               # on_epoch: every epoch, in order
        assert [epoch for rid, epoch in seen if rid == run_id] == [1, 2]
    first = runner.snapshot()[ids[0]]
    assert first["name"] == "r0" and first["state"] == "finished" and first["epoch"] == 2
    assert first["last"]["epoch"] == 2 and first["last"]["val_loss"] > 0


def test_a_run_that_cannot_start_fails_while_the_others_finish(make_runner, tiny_spec, runs_dir, tmp_path):
    runner = make_runner(workers=1)
    missing = tiny_spec(name="mnist", dataset="mnist", data_dir=str(tmp_path / "no-mnist-here"))
    ids = runner.submit_many([tiny_spec(name="before"), missing, tiny_spec(name="after")])
    assert runner.wait(ids, timeout=TIMEOUT)
    assert [status_of(runs_dir, run_id)["state"] for run_id in ids] == ["finished", "failed", "finished"]
    status = status_of(runs_dir, ids[1])
    assert status["error"].startswith("DatasetUnavailable") and "MNIST" in status["error"] and status["ended_at"]
    assert runner.snapshot()[ids[1]]["state"] == "failed"


def test_same_scenario_same_curves_alone_and_inside_a_sweep(make_runner, tiny_spec, runs_dir):
    """Dropout masks and batch orders come from the run's own process: other runs cannot shift them."""
    spec = tiny_spec(name="probe", dropout=0.3, seed=7, epochs=3)
    alone = make_runner(workers=1)
    solo = alone.submit(spec)
    assert alone.wait([solo], timeout=TIMEOUT)
    sweep = make_runner(workers=2)
    others = [tiny_spec(name=f"other{i}", dropout=0.5, seed=i, epochs=3) for i in range(3)]
    ids = sweep.submit_many([others[0], spec, others[1], others[2]])
    assert sweep.wait(ids, timeout=TIMEOUT)
    a = pd.read_csv(runs_dir / solo / "metrics.csv")
    b = pd.read_csv(runs_dir / ids[1] / "metrics.csv")
    for column in ("train_loss", "val_loss", "train_acc", "val_acc"):
        assert b[column].to_numpy() == pytest.approx(a[column].to_numpy(), rel=1e-5), column


def test_cancel_a_queued_run_it_never_trains(make_runner, tiny_spec, runs_dir):
    runner = make_runner(workers=1)
    first = runner.submit(tiny_spec(name="first", epochs=FOREVER))
    second = runner.submit(tiny_spec(name="second", epochs=2))
    wait_until(reached_epoch(runs_dir, first, 1), timeout=TIMEOUT)   # the only slot is busy with the first
    snapshot = runner.snapshot()
    assert snapshot[first]["state"] == "running" and snapshot[first]["elapsed"] >= 0
    assert snapshot[second]["state"] == "queued" and snapshot[second]["epoch"] == 0
    assert runner.cancel(second) is True
    assert runner.cancel(first) is False           # a running run is stopped, not cancelled
    assert runner.stop(first) is True
    assert runner.wait([first, second], timeout=TIMEOUT)
    status = status_of(runs_dir, second)
    assert status["state"] == "stopped" and "cancelled" in status["error"] and status["epoch"] == 0
    assert not (runs_dir / second / "metrics.csv").exists()
    assert status_of(runs_dir, first)["state"] == "stopped"


def test_stop_then_resume_continues_after_the_last_epoch(make_runner, tiny_spec, runs_dir):
    runner = make_runner(workers=1)
    run_id = runner.submit(tiny_spec(name="long", epochs=FOREVER))
    wait_until(reached_epoch(runs_dir, run_id, 2), timeout=TIMEOUT)
    assert runner.stop(run_id) is True
    assert runner.wait([run_id], timeout=TIMEOUT)
    status = status_of(runs_dir, run_id)
    assert status["state"] == "stopped" and status["error"] is None
    done = epochs_in(runs_dir, run_id)
    assert done == list(range(1, len(done) + 1)) and len(done) >= 2
    assert not (runs_dir / run_id / STOP_REQUEST).exists()      # answered: a resume must not stop at once
    assert runner.stop(run_id) is False                          # already over
    before = pd.read_csv(runs_dir / run_id / "metrics.csv")

    # Resume it with fewer epochs left than it has: put the target just past where it stopped.
    spec = json.loads((runs_dir / run_id / "scenario.json").read_text())
    spec["epochs"] = len(done) + 2
    write_json(runs_dir / run_id / "scenario.json", spec)
    assert runner.resume(run_id) == run_id
    assert runner.wait([run_id], timeout=TIMEOUT)
    status = status_of(runs_dir, run_id)
    assert status["state"] == "finished" and status["resumed_from"] == len(done)
    after = pd.read_csv(runs_dir / run_id / "metrics.csv")
    assert after["epoch"].tolist() == list(range(1, len(done) + 3))          # each epoch exactly once
    pd.testing.assert_frame_equal(after.iloc[:len(done)], before)             # the earlier rows unchanged


def test_a_killed_run_shows_interrupted_within_the_ttl_and_resumes_without_gaps(
        make_runner, tiny_spec, runs_dir, short_ttl):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    runner = make_runner(workers=1)
    run_id = runner.submit(tiny_spec(name="killed", epochs=FOREVER))
    wait_until(reached_epoch(runs_dir, run_id, 3), timeout=TIMEOUT)
    os.kill(status_of(runs_dir, run_id)["pid"], signal.SIGKILL)             # mid-epoch, at some batch
    assert runner.wait([run_id], timeout=TIMEOUT)
    # Nobody writes 'interrupted': readers derive it once the heartbeat is older than the TTL.
    wait_until(lambda: runner.store.read_run(run_id)["status"]["state"] == "interrupted", timeout=10)
    assert status_of(runs_dir, run_id)["state"] == "running"
    done = epochs_in(runs_dir, run_id)
    assert len(done) >= 3 and done == list(range(1, len(done) + 1))
    before = pd.read_csv(runs_dir / run_id / "metrics.csv")
    last = read_json(runs_dir / run_id / "status.json")["epoch"]

    spec = json.loads((runs_dir / run_id / "scenario.json").read_text())
    spec["epochs"] = last + 2
    write_json(runs_dir / run_id / "scenario.json", spec)
    runner.resume(run_id)
    assert runner.wait([run_id], timeout=TIMEOUT)
    assert status_of(runs_dir, run_id)["state"] == "finished"
    after = pd.read_csv(runs_dir / run_id / "metrics.csv")
    assert after["epoch"].tolist() == list(range(1, last + 3))
    pd.testing.assert_frame_equal(after.iloc[:len(before)], before)
    events = EventAccumulator(str(runs_dir / run_id))
    events.Reload()
    steps = [event.step for event in events.Scalars("loss/val")]
    assert steps == list(range(1, last + 3))                                # each epoch once in TensorBoard


def test_a_fresh_heartbeat_is_alive_whatever_host_it_names(make_runner, tiny_spec, runs_dir, monkeypatch):
    monkeypatch.setenv("TRAINLIB_HEARTBEAT_TTL", "30")
    runner = make_runner(workers=1, executor="thread")
    folder = runner.store.new_run(tiny_spec(name="elsewhere"), owner=runner.runner_id)
    update_status(folder, state="running", host="another-machine", pid=1, heartbeat_at=now_iso())
    assert runner.store.read_run(folder.name)["status"]["state"] == "running"
    with pytest.raises(ValueError, match="running; only interrupted or stopped runs resume"):
        runner.resume(folder.name)
    assert make_runner(workers=1, executor="thread").interrupted_at_start == []
    # Once it stops beating it is interrupted, whatever it says, and resumes.
    update_status(folder, heartbeat_at=(datetime.now(timezone.utc) - timedelta(seconds=31)).isoformat())
    assert runner.store.read_run(folder.name)["status"]["state"] == "interrupted"
    assert status_of(runs_dir, folder.name)["state"] == "running"


def test_a_run_that_aborts_is_failed_and_its_siblings_finish(runs_dir, tiny_spec):
    runner = Runner(runs_dir, workers=2, executor=LocalProcessExecutor(2, threads=1, target=_abort_if_named_boom))
    try:
        ids = runner.submit_many([tiny_spec(name="a", epochs=3), tiny_spec(name="boom"),
                                  tiny_spec(name="b", epochs=3), tiny_spec(name="c", epochs=3)])
        assert runner.wait(ids, timeout=TIMEOUT)
    finally:
        runner.shutdown()
    states = {run_id: status_of(runs_dir, run_id) for run_id in ids}
    assert [states[run_id]["state"] for run_id in ids] == ["finished", "failed", "finished", "finished"]
    assert "SIGABRT" in states[ids[1]]["error"]


def _abort_if_named_boom(folder: str, resume: bool, threads: int | None) -> str:
    from trainlib.worker import execute_run
    if json.loads((Path(folder) / "scenario.json").read_text())["name"] == "boom":
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))      # no core file left behind
        os.abort()
    return execute_run(folder, resume, threads)


def test_a_runner_that_leaves_stops_its_run_resumable_keeps_the_queue_and_ends_its_processes(
        make_runner, tiny_spec, runs_dir):
    """What a stopping dashboard server does (dashboard/startup.py): nothing is lost, nothing left."""
    runner = make_runner(workers=1)
    running = runner.submit(tiny_spec(name="long", epochs=FOREVER))
    queued = runner.submit(tiny_spec(name="next"))
    wait_until(reached_epoch(runs_dir, running, 1), timeout=TIMEOUT)
    processes = list(runner.executor._pools[0]._processes.values())
    assert runner.leave(timeout=TIMEOUT) is True
    assert status_of(runs_dir, running)["state"] == "stopped"          # resumable
    assert status_of(runs_dir, queued)["state"] == "queued"            # for the next start to adopt
    assert processes and not any(process.is_alive() for process in processes)
    assert not list((runs_dir / RUNNERS_DIR).glob("*"))                # it says it is gone: adoptable


def test_a_run_that_does_not_stop_when_the_runner_leaves_is_killed_and_shows_interrupted(runs_dir, tiny_spec):
    """A run stuck outside its batches (here: in a sleep) must not hold a stopping server forever."""
    runner = Runner(runs_dir, workers=1, executor=LocalProcessExecutor(1, threads=1, target=_hang_after_starting))
    try:
        stuck = runner.submit(tiny_spec(name="stuck"))
        queued = runner.submit(tiny_spec(name="next"))
        wait_until(lambda: status_of(runs_dir, stuck)["state"] == "running", timeout=TIMEOUT)
        processes = list(runner.executor._pools[0]._processes.values())
        assert runner.leave(timeout=0.5) is False
        assert processes and not any(process.is_alive() for process in processes)
        wait_until(lambda: runner._handles[stuck].state != "running", timeout=TIMEOUT)
        assert runner._handles[stuck].state == "interrupted"            # not 'failed': it resumes
        assert status_of(runs_dir, queued)["state"] == "queued"
    finally:
        runner.shutdown()


def test_a_runner_with_nothing_running_leaves_at_once(make_runner, tiny_spec, runs_dir):
    runner = make_runner(workers=1)
    runner._closing = True                 # the queue cannot start: what leave() meets at a server's stop
    queued = runner.submit(tiny_spec(name="waits"))
    waited = []
    runner.wait = lambda run_ids=None, timeout=None: waited.append(run_ids) or True
    assert runner.leave(timeout=30) is True
    assert waited == []                    # nothing to wait for: not the queued run, which never starts
    assert status_of(runs_dir, queued)["state"] == "queued"


def _hang_after_starting(folder: str, resume: bool, threads: int | None) -> str:
    update_status(Path(folder), state="running", started_at=now_iso(), heartbeat_at=now_iso())
    time.sleep(3600)
    return "finished"


def test_stop_and_cancel_reach_a_run_of_another_process(make_runner, tiny_spec, runs_dir):
    cli = subprocess.Popen([sys.executable, "-m", "trainlib", "sweep", "--runs-dir", str(runs_dir), "--workers", "1",
                            "--dataset", "moons", "--train-subset", "200", "--hidden-sizes", "8",
                            "--epochs", str(FOREVER), "--vary", "seed=1,2"],
                           cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        here = make_runner(workers=1, executor="thread")
        wait_until(lambda: sorted(here.store.list_runs()["recorded_state"]) == ["queued", "running"], timeout=TIMEOUT)
        runs = here.store.list_runs().set_index("recorded_state")
        running, queued = runs.loc["running", "run_id"], runs.loc["queued", "run_id"]
        assert runs.loc["queued", "state"] == "queued"       # its runner beats: not this process's to adopt
        assert here.adopt_orphans() == []
        assert here.cancel(queued) is True
        wait_until(reached_epoch(runs_dir, running, 1), timeout=TIMEOUT)
        assert here.stop(running) is True
        output, _ = cli.communicate(timeout=TIMEOUT)
    finally:
        cli.kill()
    assert status_of(runs_dir, running)["state"] == "stopped", output
    assert status_of(runs_dir, queued)["state"] == "stopped" and not (runs_dir / queued / "metrics.csv").exists()


def test_a_restarted_runner_adopts_queued_runs_whose_runner_is_gone(make_runner, tiny_spec, runs_dir):
    first = make_runner(workers=1, executor="thread")
    folder = first.store.new_run(tiny_spec(name="left-queued"), owner="old-host-123-abcdef")
    write_json(runs_dir / RUNNERS_DIR / "old-host-123-abcdef.json", {"heartbeat_at": "2020-01-01T00:00:00+00:00"})
    live = first.store.new_run(tiny_spec(name="live-queue"), owner=first.runner_id)
    assert first.store.read_run(folder.name)["status"]["state"] == "interrupted"
    assert first.store.read_run(live.name)["status"]["state"] == "queued"

    dashboard = make_runner(workers=1)
    assert dashboard.adopt_orphans() == [folder.name]
    assert dashboard.wait([folder.name], timeout=TIMEOUT)
    assert status_of(runs_dir, folder.name)["state"] == "finished"
    assert status_of(runs_dir, live.name)["state"] == "queued"            # a live runner's queue is its own


def test_a_script_that_exits_right_after_wait_exits_0(runs_dir):
    script = ("from trainlib import Runner, ScenarioSpec, variants\n"
              "if __name__ == '__main__':\n"
              "    base = ScenarioSpec(dataset='moons', train_subset=200, hidden_sizes=(8,), epochs=2)\n"
              "    runner = Runner(%r, workers=2)\n"
              "    runner.wait(runner.submit_many(variants(base, {'a': {}, 'b': {'dropout': 0.2}})))\n" % str(runs_dir))
    for attempt in range(3):
        done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=TIMEOUT)
        assert done.returncode == 0, (attempt, done.stderr[-2000:])


def test_default_workers_one_per_core_on_cpu_four_on_gpu(make_runner):
    import torch
    runner = make_runner(executor="thread")
    assert runner.workers == (4 if torch.cuda.is_available() else os.cpu_count())
    assert make_runner(workers=3, executor="thread").workers == 3


def test_only_interrupted_or_stopped_runs_resume(make_runner, tiny_spec):
    runner = make_runner(workers=1)
    run_id = runner.submit(tiny_spec(epochs=1))
    assert runner.wait([run_id], timeout=TIMEOUT)
    with pytest.raises(ValueError, match="finished; only interrupted or stopped runs resume"):
        runner.resume(run_id)
    assert runner.store.read_run(run_id)["status"]["state"] == "finished"


def test_the_runner_beats_while_alive_and_its_file_goes_with_it(runs_dir):
    runner = Runner(runs_dir, workers=1, executor="thread")
    beat = runs_dir / RUNNERS_DIR / f"{runner.runner_id}.json"
    assert read_json(beat)["host"] == socket.gethostname()
    runner.shutdown()
    assert not beat.exists()


def test_a_runner_drops_the_heartbeat_files_of_runners_gone(runs_dir):
    gone = runs_dir / RUNNERS_DIR / "old-host-1-aaaaaa.json"
    gone.parent.mkdir(parents=True)
    write_json(gone, {"heartbeat_at": "2020-01-01T00:00:00+00:00"})
    runner = Runner(runs_dir, workers=1, executor="thread")
    try:
        assert not gone.exists() and (runs_dir / RUNNERS_DIR / f"{runner.runner_id}.json").exists()
    finally:
        runner.shutdown()
