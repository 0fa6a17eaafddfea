"""What makes a page redraw (dashboard/watch.py): a new run, a new epoch, a state; never a heartbeat.
And the small files of the class flow: the winner's guess (trainlib/predictions.py)."""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

from dashboard import watch
from trainlib import ScenarioSpec
from trainlib.predictions import FOLDER, prediction_folder, read_predictions, save_prediction
from trainlib.liveness import RunnerHeartbeat
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
    # A page that shows other runs sees only that this one exists, in its sweep and state: a new
    # epoch of it changes nothing there, a new state does (a State filter lists it elsewhere).
    before = watch.runs_version(store)
    add_epoch(folder, 3)
    update_status(folder, epoch=3)
    after = watch.runs_version(store)
    assert after != before
    assert watch.narrow(after, watched=[]) == watch.narrow(before, watched=[])
    assert watch.narrow(after, watched=[folder.name]) != watch.narrow(before, watched=[folder.name])
    assert watch.narrow(after, watched=None) == after
    update_status(folder, state="finished")
    assert watch.narrow(watch.runs_version(store), watched=[]) != watch.narrow(after, watched=[])
    other = store.new_run(ScenarioSpec(name="b"), sweep="s")                 # a run joins the sweep
    assert len(watch.narrow(watch.runs_version(store), watched=[])) == 2 and other.name


def test_a_tab_polls_fast_for_the_first_point_after_run_then_every_second_then_slowly(tmp_path, request):
    store = RunStore(tmp_path / "runs")
    assert watch.poll_every(store.list_runs()) == watch.IDLE_EVERY                 # no runs: 3 s
    beat = RunnerHeartbeat(tmp_path / "runs").start()     # a live runner owns the queued runs
    request.addfinalizer(beat.stop)                        # its thread ends with the test, passed or not
    folder = store.new_run(ScenarioSpec(name="a"), sweep="s", owner=beat.runner_id)
    assert watch.poll_every(store.list_runs()) == watch.FIRST_POINT_EVERY          # queued: its first epoch comes soon
    # running in a living process (not this one), its first epoch not in yet
    update_status(folder, state="running", pid=os.getppid(), started_at=now_iso(), heartbeat_at=now_iso())
    assert watch.poll_every(store.list_runs()) == watch.FIRST_POINT_EVERY          # its first epoch is due
    add_epoch(folder, 1)
    update_status(folder, epoch=1)
    assert watch.poll_every(store.list_runs()) == watch.ACTIVE_EVERY
    # The sweep's next run starting is one more line on a chart that has points: polled every second.
    later = store.new_run(ScenarioSpec(name="b"), sweep="s", owner=beat.runner_id)
    assert watch.poll_every(store.list_runs()) == watch.ACTIVE_EVERY
    # Another sweep queued behind the one that trains: its first point is not due before that one ends.
    behind = store.new_run(ScenarioSpec(name="q"), sweep="u", owner=beat.runner_id)
    assert watch.poll_every(store.list_runs()) == watch.ACTIVE_EVERY
    update_status(later, state="running", pid=os.getppid(), started_at=now_iso(), heartbeat_at=now_iso())
    assert watch.poll_every(store.list_runs()) == watch.ACTIVE_EVERY
    assert watch.poll_every(store.list_runs(), first_point=False) == watch.ACTIVE_EVERY      # Compare: never fast
    # Another Run: a new sweep, or a run outside any sweep, with no point yet: fast again.
    single = store.new_run(ScenarioSpec(name="c"))
    update_status(single, state="running", pid=os.getppid(), started_at=now_iso(), heartbeat_at=now_iso())
    assert watch.poll_every(store.list_runs()) == watch.FIRST_POINT_EVERY
    update_status(single, state="finished", ended_at=now_iso())
    other_sweep = store.new_run(ScenarioSpec(name="d"), sweep="t")
    update_status(other_sweep, state="running", pid=os.getppid(), started_at=now_iso(), heartbeat_at=now_iso())
    assert watch.poll_every(store.list_runs()) == watch.FIRST_POINT_EVERY
    for run in (folder, later, other_sweep, behind):
        update_status(run, state="finished", ended_at=now_iso())
    assert watch.poll_every(store.list_runs()) == watch.IDLE_EVERY
    assert (watch.FIRST_POINT_EVERY, watch.ACTIVE_EVERY, watch.IDLE_EVERY) == ("0.25s", "1s", "3s")


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
    assert prediction_folder(root, "odd/name ../x").parent == root / FOLDER   # one safe folder name
    assert store.list_runs().empty                                            # not a run
    (prediction_folder(root, "regularization") / "0-broken.json").write_text("[1, 2")
    assert read_predictions(root, "regularization") == ["dropout", "batchnorm"]    # the others still count
    (root / FOLDER / "x").write_text("a file where a sweep's folder could be")
    assert read_predictions(root, "x") == []


def test_guesses_made_at_once_are_all_kept(tmp_path):
    # Two tabs (or a whole class) voting in the same instant: one file per guess, none overwritten.
    root = tmp_path / "runs"
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: save_prediction(root, "race", f"v{i % 3}"), range(40)))
    assert sorted(read_predictions(root, "race")) == sorted(f"v{i % 3}" for i in range(40))


def test_a_page_is_drawn_from_the_version_taken_before_the_sidebar_count(tmp_path, monkeypatch):
    # navigation.py takes the version before the sidebar reads its count; the page then uses that one, so a
    # state written between the two makes the page's next poll redraw both.
    monkeypatch.setattr(watch.st, "session_state", {})
    store = RunStore(tmp_path / "runs")
    folder = store.new_run(ScenarioSpec(name="a"), sweep="s")
    watch.remember_version(store)
    before = watch.runs_version(store)
    update_status(folder, state="running", pid=os.getppid(), started_at=now_iso(), heartbeat_at=now_iso())
    assert watch.drawn_version(store) == before != watch.runs_version(store)
    assert watch.drawn_version(store) == watch.runs_version(store)       # used once; then taken anew


# ----------------------------------------------------------------------------- the browser's poll
def ask(token: str) -> dict:
    """What a browser's GET of CHANGED_ROUTE answers (the endpoint, without a server)."""
    import json

    from starlette.requests import Request
    request = Request({"type": "http", "method": "GET", "path": watch.CHANGED_ROUTE,
                       "query_string": f"token={token}".encode(), "headers": []})
    answer = watch.changed_endpoint(request)
    assert answer.headers["cache-control"] == "no-store"
    return json.loads(answer.body)


def test_the_poll_says_changed_only_when_the_part_a_page_shows_moved(tmp_path):
    store = RunStore(tmp_path / "runs")
    shown, other = (store.new_run(ScenarioSpec(name=name)) for name in ("shown", "other"))
    for folder in (shown, other):
        update_status(folder, state="running", epoch=0, heartbeat_at=now_iso())
    watched = [shown.name]
    watch.remember_watch("page-a", lambda: watch.runs_version(store, watched),
                         watch.narrow(watch.runs_version(store, watched), watched), watched)
    assert ask("page-a") == {"changed": False}
    update_status(other, heartbeat_at=now_iso())
    add_epoch(other, 1)
    update_status(other, epoch=1)                   # a run the page does not show: its epochs are not its business
    assert ask("page-a") == {"changed": False}
    update_status(other, state="finished")          # ... its state is (the page lists runs by state)
    assert ask("page-a") == {"changed": True}
    watch.remember_watch("page-a", lambda: watch.runs_version(store, watched),
                         watch.narrow(watch.runs_version(store, watched), watched), watched)   # redrawn
    assert ask("page-a") == {"changed": False}
    add_epoch(shown, 1)
    update_status(shown, epoch=1)
    assert ask("page-a") == {"changed": True}


def test_a_page_the_server_does_not_know_redraws_and_a_failing_read_waits(tmp_path, monkeypatch):
    # A restarted server, or a page forgotten among too many: the page redraws and is known again.
    assert ask("never-drawn") == {"changed": True}
    monkeypatch.setattr(watch, "MAX_WATCHES", 3)
    for i in range(5):
        watch.remember_watch(f"tab-{i}", lambda: (), (), None)
    assert ask("tab-0") == {"changed": True} and ask("tab-4") == {"changed": False}

    def broken():
        raise OSError("the disk went away")

    watch.remember_watch("tab-broken", broken, (), None)
    logged = []
    monkeypatch.setattr(watch._LOGGER, "exception", lambda message, *args: logged.append(message))
    assert ask("tab-broken") == {"changed": False}      # no redraw now; the next poll asks again
    assert logged


def test_a_page_not_heard_of_for_a_while_is_forgotten_and_one_that_asks_is_kept(monkeypatch):
    """A closed tab's page (or a hidden one, which does not ask) is let go after FORGET_AFTER_S."""
    from collections import OrderedDict
    clock = [1000.0]
    monkeypatch.setattr(watch.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(watch, "_watches", OrderedDict())          # this server's pages only
    watch.remember_watch("closed-tab", lambda: (), (), None)
    watch.remember_watch("open-tab", lambda: (), (), None)
    clock[0] += watch.FORGET_AFTER_S / 2
    assert ask("open-tab") == {"changed": False}        # asking keeps it
    clock[0] += watch.FORGET_AFTER_S / 2 + 1
    watch.remember_watch("another-tab", lambda: (), (), None)
    assert "closed-tab" not in watch._watches and "open-tab" in watch._watches
    assert ask("closed-tab") == {"changed": True}       # shown again: it redraws, and is remembered


def _poller_page() -> None:
    # One page run that polls as the Runs page does with the first point due, one as it does later.
    import streamlit as st
    from dashboard import watch
    every = st.session_state.get("every", watch.FIRST_POINT_EVERY)
    watch.rerun_on_change(lambda: 0, 0, every, key="test")
    st.session_state["every"] = watch.ACTIVE_EVERY


def test_the_redraw_budget_is_off_while_the_first_point_is_due_and_set_by_the_environment(monkeypatch):
    import json
    from streamlit.testing.v1 import AppTest

    def poller_data(at):
        (element,) = [e for e in at.get("bidi_component") if e.proto.component_name == "trainlib_folder_poller"]
        return json.loads(element.proto.json)

    monkeypatch.delenv(watch.REDRAW_BUDGET_ENV, raising=False)
    at = AppTest.from_function(_poller_page).run()
    first = poller_data(at)
    assert first["every_ms"] == 250 and first["budget"] == 1     # the first point shows as soon as it is there
    later = poller_data(at.run())
    assert later["every_ms"] == 1000 and later["budget"] == watch.REDRAW_BUDGET == 8
    assert later["max_wait_ms"] == 5000
    monkeypatch.setenv(watch.REDRAW_BUDGET_ENV, "1")             # a teacher's fast machine: no budget
    assert poller_data(at.run())["budget"] == 1


def test_a_redraw_budget_that_is_not_a_whole_number_of_at_least_one_falls_back_to_the_default(monkeypatch):
    for text, expected in (("12", 12), (" 3 ", 3), ("", 8), ("0", 8), ("-2", 8), ("1.5", 8), ("many", 8)):
        monkeypatch.setenv(watch.REDRAW_BUDGET_ENV, text)
        assert watch.redraw_budget() == expected, text
