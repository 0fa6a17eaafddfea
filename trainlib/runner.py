"""The runner: a queue of runs and worker threads that train them, without any UI.

    runner = Runner(runs_dir="runs")             # 1 worker on a CPU, 4 on a GPU by default
    ids = runner.submit_many(specs, sweep="regularization")
    runner.stop(ids[0]); runner.cancel(ids[3]); runner.resume(some_interrupted_id)
    runner.wait(ids)                             # block until they end (CLI, benchmark, tests)
    runner.snapshot()                            # {run_id: {'state', 'epoch', 'epochs', ...}} for polling

Each run gets a fresh scenario built in its worker thread. A run that fails is recorded as failed
with its error and the other runs go on. Workers never touch the UI: the run folder is the channel.
"""
from __future__ import annotations

import contextlib
import logging
import os
import queue
import socket
import threading
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from .loop import train
from .scenario import create_scenario
from .spec import ScenarioSpec
from .store import CHECKPOINT, RESUMABLE_STATES, RunStore, now_iso, update_status

log = logging.getLogger("trainlib")
FINAL_STATES = ("finished", "stopped", "failed", "diverged", "interrupted")
_RUNNERS: "weakref.WeakSet[Runner]" = weakref.WeakSet()     # every Runner alive in this process


def default_workers() -> int:
    # Several runs share a GPU well (each is bound by kernel-launch overhead, not FLOPs);
    # on a small CPU, concurrent runs only fight over the cores.
    return 4 if torch.cuda.is_available() else 1


@dataclass
class RunHandle:
    run_id: str
    spec: ScenarioSpec
    resume: bool = False
    stop_event: threading.Event = field(default_factory=threading.Event)
    state: str = "queued"
    epoch: int = 0
    started: float | None = None          # time.monotonic() at start
    last_record: dict | None = None
    done: threading.Event = field(default_factory=threading.Event)


class Runner:
    def __init__(self, runs_dir: str | Path | None = None, workers: int | None = None,
                 on_epoch: Callable[[str, dict], None] | None = None):
        self.store = RunStore(runs_dir)
        self.workers = workers or default_workers()
        self.on_epoch = on_epoch
        self._queue: queue.Queue[RunHandle | None] = queue.Queue()
        self._handles: dict[str, RunHandle] = {}
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        # Runs a dead process left queued or running cannot finish any more: say so now. Runs that
        # another Runner of this same process is handling are alive, not interrupted.
        live_here = set().union(*(runner.live_ids() for runner in list(_RUNNERS)))
        self.interrupted_at_start = self.store.mark_interrupted(live_run_ids=live_here)
        _RUNNERS.add(self)

    # ------------------------------------------------------------------ submitting
    def submit(self, spec: ScenarioSpec, sweep: str | None = None) -> str:
        folder = self.store.new_run(spec, sweep=sweep)
        return self._enqueue(RunHandle(folder.name, spec))

    def submit_many(self, specs: list[ScenarioSpec], sweep: str | None = None) -> list[str]:
        return [self.submit(spec, sweep) for spec in specs]

    def resume(self, run_id: str) -> str:
        """Queue an interrupted or stopped run again. It continues from its best checkpoint: the
        epochs after the best one are trained again. Without a checkpoint it starts over."""
        with self._lock:
            status = self.store.read_run(run_id)["status"]
            handle = self._handles.get(run_id)
            if handle is not None and handle.state in ("queued", "running"):
                raise ValueError(f"run {run_id} is already {handle.state}")
            if status["state"] not in RESUMABLE_STATES:
                raise ValueError(f"run {run_id} is {status['state']}; only {' or '.join(RESUMABLE_STATES)} runs resume")
            spec = self.store.read_spec(run_id)
            has_checkpoint = (self.store.folder(run_id) / CHECKPOINT).exists()
            # This process owns it now: a periodic reap must not call it interrupted again.
            update_status(self.store.folder(run_id), state="queued", error=None, ended_at=None,
                          pid=os.getpid(), host=socket.gethostname())
            handle = RunHandle(run_id, spec, resume=has_checkpoint)
            self._handles[run_id] = handle
        return self._enqueue(handle)

    def _enqueue(self, handle: RunHandle) -> str:
        with self._lock:
            self._handles[handle.run_id] = handle
            self._start_workers()
        self._queue.put(handle)
        return handle.run_id

    def _start_workers(self) -> None:
        self._threads = [t for t in self._threads if t.is_alive()]
        while len(self._threads) < self.workers:
            thread = threading.Thread(target=self._work, name=f"trainlib-worker-{len(self._threads)}", daemon=True)
            thread.start()
            self._threads.append(thread)

    # ------------------------------------------------------------------ control
    def cancel(self, run_id: str) -> bool:
        """Take a queued run out of the queue (recorded as stopped before it started)."""
        handle = self._handles.get(run_id)
        with self._lock:       # one decision with a worker taking it off the queue right now (see _run)
            if handle is None or handle.state != "queued":
                return False
            handle.stop_event.set()
            handle.state = "stopped"
        update_status(self.store.folder(run_id), state="stopped", ended_at=now_iso(),
                      error="cancelled before it started")
        handle.done.set()
        return True

    def stop(self, run_id: str) -> bool:
        """Stop a running run between two batches (recorded as stopped); cancel it if still queued."""
        handle = self._handles.get(run_id)
        if handle is None:
            return False
        if handle.state == "queued":
            return self.cancel(run_id)
        if handle.state != "running":
            return False
        handle.stop_event.set()
        return True

    def stop_all(self) -> None:
        for handle in self._all_handles():
            self.stop(handle.run_id)

    def reap_orphans(self) -> list[str]:
        """Mark interrupted the runs of other processes that died since (a terminal run killed
        while the dashboard is up). Cheap enough to call on every poll."""
        return self.store.mark_interrupted(other_processes_only=True)

    # ------------------------------------------------------------------ observing
    def _all_handles(self) -> list[RunHandle]:
        with self._lock:        # other sessions' threads submit while a page iterates
            return list(self._handles.values())

    def live_ids(self) -> set[str]:
        return {h.run_id for h in self._all_handles() if h.state in ("queued", "running")}

    def busy(self) -> bool:
        return bool(self.live_ids())

    def snapshot(self) -> dict[str, dict]:
        """In-memory progress of this runner's runs (cheap enough to poll every second)."""
        out = {}
        for handle in self._all_handles():
            elapsed = time.monotonic() - handle.started if handle.started and handle.state == "running" else None
            out[handle.run_id] = {"name": handle.spec.name, "state": handle.state, "epoch": handle.epoch,
                                  "epochs": handle.spec.epochs, "elapsed": elapsed,
                                  "last": dict(handle.last_record) if handle.last_record else None}
        return out

    def wait(self, run_ids: list[str] | None = None, timeout: float | None = None) -> bool:
        """Block until the runs (default: all submitted) have ended; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for run_id in run_ids or list(self._handles):
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not self._handles[run_id].done.wait(remaining):
                return False
        return True

    def shutdown(self, wait: bool = True) -> None:
        """Stop everything and let the workers exit."""
        self.stop_all()
        for _ in self._threads:
            self._queue.put(None)
        if wait:
            for thread in self._threads:
                thread.join()

    # ------------------------------------------------------------------ the worker
    def _work(self) -> None:
        # Its own CUDA stream per worker, so runs of a sweep overlap on one GPU.
        stream = torch.cuda.Stream() if torch.cuda.is_available() else None
        while True:
            handle = self._queue.get()
            if handle is None:
                return
            if handle.stop_event.is_set():      # cancelled while queued
                handle.done.set()
                continue
            try:
                with torch.cuda.stream(stream) if stream is not None else contextlib.nullcontext():
                    self._run(handle)
            except Exception:      # never let one run take its worker thread down with it
                log.exception("worker lost run %s", handle.run_id)
            if stream is not None:
                stream.synchronize()

    def _run(self, handle: RunHandle) -> None:
        with self._lock:
            if handle.state != "queued":      # cancelled after _work checked its stop_event: never start it
                return
            handle.state, handle.started = "running", time.monotonic()

        def on_epoch(record: dict) -> None:
            handle.epoch, handle.last_record = record["epoch"], record
            if self.on_epoch:
                self.on_epoch(handle.run_id, record)

        try:
            folder = self.store.folder(handle.run_id)
            update_status(folder, state="running", started_at=now_iso(), pid=os.getpid(), host=socket.gethostname())
            S = create_scenario(handle.spec, log_folder=folder)
            history = train(S, on_epoch=on_epoch, should_stop=handle.stop_event.is_set, resume=handle.resume)
            handle.state = history.state
        except Exception as exc:   # building the scenario failed (missing data, bad combination), folder gone...
            handle.state = "failed"
            log.warning("run %s failed: %s", handle.run_id, exc)
            try:
                update_status(self.store.root / handle.run_id, state="failed",
                              error=f"{type(exc).__name__}: {exc}", ended_at=now_iso())
            except OSError as write_error:      # deleted under us: nothing left to record into
                log.warning("could not record the failure of %s: %s", handle.run_id, write_error)
        finally:
            handle.done.set()
