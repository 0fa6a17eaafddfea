"""The Runs page and its helpers: progress rows, Cancel / Stop / Resume, and runs a dead server left behind."""
from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

import pandas as pd

from apphelpers import app_runs, button, chart_specs, current_runner, open_app, texts, wait_until  # noqa: F401
from dashboard import progress
from dashboard.state import SELECTED_RUN
from trainlib import ScenarioSpec
from trainlib.liveness import STOP_REQUEST
from trainlib.store import RunStore, now_iso, update_status

NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=timezone.utc)


def iso(seconds_ago: float) -> str:
    return (NOW - timedelta(seconds=seconds_ago)).isoformat()


def tiny(**changes) -> ScenarioSpec:
    fields = dict(name="tiny", dataset="moons", train_subset=200, hidden_sizes=(8,), epochs=1, device="cpu")
    fields.update(changes)
    return ScenarioSpec(**fields)


# ----------------------------------------------------------------------------- pure helpers
def runs_frame() -> pd.DataFrame:
    return pd.DataFrame([
        {"run_id": "20250301-115000-a-0001", "name": "a", "sweep": "s1", "state": "finished", "epoch": 5, "epochs": 5,
         "created_at": iso(600), "started_at": iso(590), "ended_at": iso(500), "final_val_acc": 0.9, "error": None},
        {"run_id": "20250301-115001-b-0002", "name": "b", "sweep": "s1", "state": "running", "epoch": 2, "epochs": 5,
         "created_at": iso(599), "started_at": iso(40), "ended_at": None, "final_val_acc": None, "error": None},
        {"run_id": "20250301-115002-c-0003", "name": "c", "sweep": "s1", "state": "queued", "epoch": 0, "epochs": 5,
         "created_at": iso(598), "started_at": None, "ended_at": None, "final_val_acc": None, "error": None},
        {"run_id": "20250301-115900-d-0004", "name": "d", "sweep": None, "state": "interrupted", "epoch": 1,
         "epochs": 3, "created_at": iso(60), "started_at": iso(50), "ended_at": iso(30), "final_val_acc": None,
         "error": "the process running it stopped while it was running"},
    ])


def test_progress_rows_give_fraction_elapsed_eta_and_action():
    metrics = {"20250301-115001-b-0002": pd.DataFrame({"epoch": [1, 2], "seconds": [10.0, 14.0],
                                                      "val_acc": [0.5, 0.75]})}
    rows = progress.progress_rows(runs_frame(), {}, metrics, live_ids={"20250301-115001-b-0002",
                                                                       "20250301-115002-c-0003"}, now=NOW)
    assert list(rows["name"]) == ["d", "c", "b", "a"]                  # newest first
    by_name = rows.set_index("name")
    b = by_name.loc["b"]
    assert b["fraction"] == 0.4 and b["elapsed_s"] == 40 and b["eta_s"] == 3 * 12.0     # mean 12 s per epoch
    assert b["last_val_acc"] == 0.75 and b["action"] == "stop"
    assert by_name.loc["c", "action"] == "cancel" and pd.isna(by_name.loc["c", "eta_s"])
    assert by_name.loc["a", "fraction"] == 1.0 and by_name.loc["a", "elapsed_s"] == 90
    assert by_name.loc["a", "last_val_acc"] == 0.9 and by_name.loc["a", "action"] is None
    assert by_name.loc["d", "action"] == "resume" and by_name.loc["d", "elapsed_s"] == 20
    # A clock time, not a countdown: the page redraws at each epoch's end, and a countdown would stand still.
    ends = (NOW + timedelta(seconds=36)).astimezone()
    assert b["ends_at"] == NOW + timedelta(seconds=36)
    assert progress.progress_text(b) == f"epoch 2/5 · 12.0 s per epoch · ends about {ends:%H:%M:%S} · val acc 75.0%"
    assert progress.progress_text(by_name.loc["a"]) == "epoch 5/5 · 1:30 elapsed · val acc 90.0%"
    assert progress.progress_text(by_name.loc["c"]) == "epoch 0/5 · waiting for a worker"


def test_an_estimate_no_clock_can_hold_says_it_is_estimating_instead_of_failing():
    # seconds holding timestamps, an infinite value: the page must not fall over a datetime overflow
    for seconds in (1.7e9, 1e12, float("inf")):
        metrics = {"20250301-115001-b-0002": pd.DataFrame({"epoch": [1, 2], "seconds": [seconds, seconds],
                                                          "val_acc": [0.5, 0.6]})}
        row = progress.progress_rows(runs_frame(), {}, metrics, now=NOW).set_index("name").loc["b"]
        assert row["ends_at"] is None
        assert progress.progress_text(row).startswith("epoch 2/5 · estimating the end")


def test_snapshot_fills_in_what_the_folder_does_not_know_yet():
    runs = runs_frame().iloc[[1]]
    snapshot = {"20250301-115001-b-0002": {"state": "running", "epoch": 3, "epochs": 5, "elapsed": 33.0,
                                           "last": {"val_acc": 0.8}}}
    row = progress.progress_rows(runs, snapshot, now=NOW).iloc[0]
    assert (row["epoch"], row["elapsed_s"], row["last_val_acc"]) == (3, 33.0, 0.8)
    assert row["eta_s"] == 2 * 11.0              # no metrics: elapsed / epochs done
    assert row["action"] == "stop"               # any running run: the stop request goes into its folder


def test_groups_sweeps_first_by_newest_and_runs_in_queue_order():
    rows = progress.progress_rows(runs_frame(), now=NOW)
    groups = progress.group_runs(rows)
    assert [(title, sweep) for title, sweep, _ in groups] == [("Single runs", None), ("Sweep s1", "s1")]
    assert list(groups[1][2]["name"]) == ["a", "b", "c"]
    assert progress.summary_text(groups[1][2]) == "3 runs: 1 running, 1 queued, 1 finished"
    assert not progress.sweep_finished(groups[1][2])
    assert progress.any_active(rows) and not progress.any_active(groups[0][2])
    done = groups[1][2].assign(state=["finished", "stopped", "finished"])
    assert progress.sweep_finished(done)
    # The folders say finished, but this server's runner has not collected the last run yet: not over
    # (the page would draw Compare one poll before the full rerun that ends the polling replaces it).
    collecting = done.assign(live=[False, False, True])
    assert not progress.sweep_finished(collecting) and progress.any_active(collecting)
    assert progress.group_runs(progress.progress_rows(pd.DataFrame())) == []


def test_runs_queued_in_the_same_millisecond_keep_their_queue_order():
    runs = pd.DataFrame([{"run_id": f"20250301-120000-{name}-000{i}", "name": name, "sweep": "s", "state": "queued",
                          "epoch": 0, "epochs": 1, "created_at": iso(0)} for i, name in enumerate(["z", "y", "x"])])
    snapshot = {run_id: {} for run_id in runs["run_id"]}          # the runner's submission order: z, y, x
    (_, _, group), = progress.group_runs(progress.progress_rows(runs, snapshot, now=NOW))
    assert list(group["name"]) == ["z", "y", "x"]


def test_a_sweep_lists_its_runs_by_position_then_seed():
    # Queued in another order than the sweep's own (a clone queued last takes the next position).
    runs = pd.DataFrame([{"run_id": f"20250301-12000{i}-{name}-000{i}", "name": name, "sweep": "s", "state": "queued",
                          "epoch": 0, "epochs": 1, "created_at": iso(10 - i), "position": position, "seed": seed}
                         for i, (name, position, seed) in enumerate([("b1", 1, 1), ("a0", 0, 0), ("b0", 1, 0),
                                                                     ("old", None, 0), ("a1", 0, 1)])])
    (_, _, group), = progress.group_runs(progress.progress_rows(runs, now=NOW))
    assert list(group["name"]) == ["a0", "a1", "b0", "b1", "old"]


def test_compare_is_offered_from_the_first_finished_epoch():
    rows = progress.progress_rows(runs_frame(), now=NOW)
    sweep = progress.group_runs(rows)[1][2]
    assert progress.sweep_comparable(sweep)                       # a has finished, b is at epoch 2
    fresh = sweep.assign(state="queued", epoch=0)
    assert not progress.sweep_comparable(fresh)
    assert progress.sweep_comparable(fresh.assign(epoch=[0, 1, 0]))


def test_format_duration():
    assert [progress.format_duration(s) for s in (None, 0, 75, 3725)] == ["–", "0:00", "1:15", "1:02:05"]


def test_cancel_a_queued_run_and_stop_a_running_one(app_runs):
    runner = current_runner()
    # 'long' takes minutes unless stopped (full shapes set, many epochs); 'waiting' queues behind it.
    long_id = runner.submit(ScenarioSpec(name="long", dataset="shapes", hidden_sizes=(16,), epochs=300,
                                         device="cpu"), sweep="live-test")
    waiting_id = runner.submit(tiny(name="waiting"), sweep="live-test")
    wait_until(lambda: RunStore(app_runs).read_run(long_id)["status"]["state"] == "running", timeout=60)

    at = open_app("pages/live.py")
    assert at.title[0].value == "Runs"
    assert "1 running" in " ".join(texts(at.markdown))
    # The shared sidebar counts them too. (AppTest runs a page reached by switch_page without navigation.py,
    # so the sidebar is looked at on a fresh load of the app.)
    assert "1 running · 1 queued" in " ".join(texts(open_app().sidebar.markdown))
    bars = at.get("progress")
    assert len(bars) == 2 and all("/300" in bar.proto.text or "/1" in bar.proto.text for bar in bars)

    at.button(key=f"cancel_{waiting_id}").click().run()
    assert RunStore(app_runs).read_run(waiting_id)["status"]["state"] == "stopped"

    wait_until(lambda: (RunStore(app_runs).read_run(long_id)["status"].get("epoch") or 0) >= 1, timeout=60)
    at.run()                                   # a poll: the first epoch shows up, with its curve
    (curves,) = chart_specs(at)
    assert curves["layout"]["yaxis"]["title"]["text"] == "loss"
    lines = {(trace["name"], trace["line"]["dash"]) for trace in curves["data"] if trace.get("line")}
    assert {("long", "solid"), ("long (validation)", "dash")} <= lines       # train and validation
    assert not any("waiting" in trace["name"] for trace in curves["data"])   # 'waiting' never trained
    at.button(key=f"stop_{long_id}").click().run()
    assert runner.wait([long_id], timeout=30)
    assert RunStore(app_runs).read_run(long_id)["status"]["state"] == "stopped"

    at.run()
    assert at.button(key=f"resume_{long_id}") and at.button(key=f"resume_{waiting_id}")
    assert not [b for b in at.button if b.key and b.key.startswith(("stop_", "cancel_"))]
    # A run has a finished epoch: the sweep's curves can be compared, though none finished.
    assert "Compare" in [b.label for b in at.button]

    at.button(key=f"details_{long_id}").click().run()     # hand-off to the Run detail page
    assert not at.exception
    assert at.session_state[SELECTED_RUN] == long_id


def test_interrupted_run_is_resumed_after_a_restart(app_runs):
    # A run folder a killed server left 'running': its heartbeat stopped an hour ago.
    store = RunStore(app_runs)
    folder = store.new_run(tiny(name="orphan", epochs=2), sweep="before-restart")
    an_hour_ago = (datetime.now(timezone.utc) - timedelta(hours=1)).isoformat()
    update_status(folder, state="running", heartbeat_at=an_hour_ago, started_at=an_hour_ago, epoch=0)
    run_id = folder.name

    at = open_app()                            # a fresh runner: the "restarted" server
    assert current_runner().interrupted_at_start == [run_id]
    assert any("interrupted" in w for w in texts(at.sidebar.warning))
    at.switch_page("pages/live.py").run()
    assert store.read_run(run_id)["status"]["state"] == "interrupted"
    at.button(key=f"resume_{run_id}").click().run()
    assert not at.exception
    assert store.read_run(run_id)["status"]["state"] in ("queued", "running", "finished")

    assert current_runner().wait([run_id], timeout=60)
    at.run()                                   # the next poll shows it finished
    status = store.read_run(run_id)["status"]
    assert status["state"] == "finished" and status["epoch"] == 2
    assert ":green-badge[finished]" in texts(at.markdown)
    assert not [b for b in at.button if b.key and b.key.startswith(("resume_", "stop_", "cancel_"))]
    assert not open_app().sidebar.warning      # nothing left to resume (the same runner, a new page load)


def test_watches_fast_while_a_terminal_run_trains_and_slowly_when_it_ends(app_runs, polling):
    # A run another living process trains (a terminal's `python -m trainlib`): shown, watched, stoppable
    # through its folder (the terminal's run reads the request between two batches).
    store = RunStore(app_runs)
    folder = store.new_run(tiny(name="from-terminal", epochs=3), sweep="cli")
    update_status(folder, state="running", pid=os.getppid(), epoch=1, started_at=now_iso(), heartbeat_at=now_iso())
    at = open_app()
    assert polling == ["1s"]                                 # the sidebar's count, on every page
    at.switch_page("pages/live.py").run()
    assert polling[-1] == "1s"                               # the runs page's watcher, while runs move
    assert any("epoch 1/3" in bar.proto.text for bar in at.get("progress"))
    at.button(key=f"stop_{folder.name}").click().run()
    assert (folder / STOP_REQUEST).exists()

    update_status(folder, epoch=2)
    at.run()                                                 # the redraw a changed version triggers
    assert any("epoch 2/3" in bar.proto.text for bar in at.get("progress"))

    update_status(folder, state="finished", epoch=3)
    at.run()
    assert not at.exception
    assert polling[-1] == "3s"                   # nothing moves: it still watches, slowly, for new runs
    assert button(at, "Compare")
    open_app()
    assert polling[-1] == "3s"                               # so does the sidebar


def test_the_sidebar_does_not_poll_on_pages_that_watch_the_folder(app_runs, polling):
    # Runs and Compare redraw the whole app, the sidebar's count included, when a state changes.
    open_app("pages/compare.py")
    assert polling == ["3s", "3s"]     # New experiment's sidebar poller, then Compare's own watcher only
    store = RunStore(app_runs)
    folder = store.new_run(tiny(name="elsewhere", epochs=3), sweep="cli")
    update_status(folder, state="running", pid=os.getppid(), epoch=1, started_at=now_iso(), heartbeat_at=now_iso())
    polling.clear()
    open_app("pages/live.py")
    assert polling == ["1s", "1s"]     # New experiment's sidebar poller, then the Runs page's own watcher


def test_resume_refuses_a_run_whose_data_lie_outside_the_data_root(app_runs, tmp_path, monkeypatch):
    # A scenario.json put into the runs folder by hand can name any folder; the dashboard reads data
    # only inside its root, so Resume says why and queues nothing (and creates nothing there).
    monkeypatch.setenv("TRAINLIB_DATA_ROOT", str(tmp_path / "data"))
    store = RunStore(app_runs)
    elsewhere = tmp_path / "elsewhere" / "deep"
    folder = store.new_run(tiny(name="outside", dataset="mnist", data_dir=str(elsewhere)))
    update_status(folder, state="stopped", ended_at=now_iso())
    at = open_app("pages/live.py")
    at.button(key=f"resume_{folder.name}").click().run()
    assert any("not resumed here: data_dir: must be inside the data root" in w for w in texts(at.warning))
    assert store.read_run(folder.name)["status"]["state"] == "stopped"
    assert not (tmp_path / "elsewhere").exists()


def test_a_queued_run_left_by_a_stopped_server_is_run_by_the_next_one(app_runs):
    # The server that queued it is gone (its runner's heartbeat file is missing): the next start runs it.
    store = RunStore(app_runs)
    folder = store.new_run(tiny(name="left-queued", epochs=2), sweep="before-restart", owner="gone-host-1-abc")
    assert store.read_run(folder.name)["status"]["state"] == "interrupted"
    open_app()
    assert current_runner().wait([folder.name], timeout=60)
    status = store.read_run(folder.name)["status"]
    assert status["state"] == "finished" and status["epoch"] == 2
