"""The runner: a queue of runs handed to an executor (warm local processes by default, or Ray).

    if __name__ == "__main__":                   # worker processes are spawned: scripts need the guard
        runner = Runner(runs_dir="runs")         # one single-threaded process per core on a CPU, 4 runs on a GPU
        ids = runner.submit_many(specs, sweep="regularization")
        runner.stop(ids[0]); runner.cancel(ids[3]); runner.resume(some_interrupted_id)
        runner.wait(ids)                         # block until they end (CLI, benchmark, tests)
        runner.snapshot()                        # {run_id: {'state', 'epoch', 'epochs', ...}} for polling

Each run executes in its own process (executors.py) with nothing of torch's global state shared
with another run, so a scenario gives the same curves alone or in a sweep, and a run that crashes
takes nothing else with it: it is recorded failed (or, killed, shown interrupted) and the others go
on. The run folder is the only channel to the run: its status, metrics and heartbeat come out, stop
requests go in (liveness.py), so stop works for a run of any process or machine.

A runner's own heartbeat (<runs>/.runners/) says its queued runs are still its own; a dashboard that
restarts adopts the queued runs whose runner is gone (adopt_orphans), never a live terminal's queue.
"""
from __future__ import annotations

import logging
import os
import queue
import signal
import threading
import atexit
import time
import weakref
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .checkpoints import CHECKPOINT, LAST_CHECKPOINT
from .executors import default_executor, make_executor
from .liveness import RunnerHeartbeat, clear_stop_request, request_stop, stop_requested
from .runfiles import now_iso, read_json, update_status
from .spec import ScenarioSpec
from .store import RESUMABLE_STATES, RunStore

log = logging.getLogger("trainlib")


def _on_interpreter_exit(method: "weakref.WeakMethod") -> None:
    """Call method() when the interpreter exits, before concurrent.futures waits for the worker
    pools' running work (it does so at threading shutdown, so a plain atexit hook comes too late)."""
    def call() -> None:
        bound = method()
        if bound is not None:
            bound()
    register = getattr(threading, "_register_atexit", None)     # CPython's hook, run in reverse order
    try:
        register(call) if register is not None else atexit.register(call)
    except RuntimeError:           # already shutting down
        pass


FINAL_STATES = ("finished", "stopped", "failed", "diverged", "interrupted")
_RUNNERS: "weakref.WeakSet[Runner]" = weakref.WeakSet()     # the runners of this process not shut down


def live_runners() -> list["Runner"]:
    """The runners of this process that have not been shut down."""
    return list(_RUNNERS)
POLL_EVERY = 0.25         # seconds between looks at a running run's status.json (progress, on_epoch)


def cuda_visible() -> bool:
    import torch
    return torch.cuda.is_available()


def usable_cores() -> int:
    """The cores this process may run on (a container's CPU set, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def default_workers() -> int:
    # Several runs share a GPU well (each is bound by kernel-launch overhead, not FLOPs). On a CPU the
    # small models of a class are bound by per-step overhead too: one single-threaded run per core
    # (4 runs in 2 single-thread processes finished 1.68x sooner than in one process with 2 threads).
    return 4 if cuda_visible() else usable_cores()


def default_threads() -> int | None:
    """torch threads per run: 1 on a CPU (one run per core), torch's choice on a GPU."""
    return None if cuda_visible() else 1


@dataclass
class RunHandle:
    run_id: str
    spec: ScenarioSpec
    resume: bool = False
    state: str = "queued"
    epoch: int = 0
    started: float | None = None          # time.monotonic() when its process took it, then when it started training
    training: bool = False                # its folder has said 'running'
    last_record: dict | None = None
    done: threading.Event = field(default_factory=threading.Event)


class Runner:
    def __init__(self, runs_dir: str | Path | None = None, workers: int | None = None,
                 on_epoch: Callable[[str, dict], None] | None = None, executor=None,
                 ray_address: str | None = None, threads: int | None = None):
        self.store = RunStore(runs_dir)
        self.threads = threads if threads is not None else default_threads()
        self.on_epoch = on_epoch
        # executor: 'local', 'ray' or 'thread' (executors.py), or an executor object of one's own.
        # Ray sizes its slots from the cluster when workers is not given.
        kind = executor or default_executor()
        self.executor = (executor if not isinstance(kind, str) else
                         make_executor(kind, workers or (None if kind == "ray" else default_workers()),
                                       self.threads, ray_address))
        self.workers = workers or self.executor.slots
        self._closing = False                 # the interpreter is exiting: start no more runs
        self._queue: queue.Queue[RunHandle | None] = queue.Queue()
        self._handles: dict[str, RunHandle] = {}
        self._lock = threading.Lock()
        self._heartbeat = RunnerHeartbeat(self.store.root).start()
        self.runner_id = self._heartbeat.runner_id
        self._finalizer = weakref.finalize(self, self._heartbeat.stop)
        _on_interpreter_exit(weakref.WeakMethod(self._leave))
        _RUNNERS.add(self)
        self._threads = [threading.Thread(target=self._dispatch, args=(slot,), name=f"trainlib-slot-{slot}",
                                          daemon=True) for slot in range(self.workers)]
        for thread in self._threads:
            thread.start()
        # What a restarted dashboard says once: runs a dead process left behind (shown interrupted).
        runs = self.store.list_runs()
        self.interrupted_at_start = list(runs.loc[runs["state"] == "interrupted", "run_id"]) if not runs.empty else []

    @property
    def executor_name(self) -> str:
        return self.executor.name

    def describe_executor(self) -> str:
        return self.executor.describe()

    # ------------------------------------------------------------------ submitting
    def submit(self, spec: ScenarioSpec, sweep: str | None = None, variant: str | None = None,
               position: int | None = None) -> str:
        """Queue one run; its id. variant (default: the spec's name) and position: see RunStore.new_run."""
        folder = self.store.new_run(spec, sweep=sweep, owner=self.runner_id, variant=variant, position=position)
        return self._enqueue(RunHandle(folder.name, spec))

    def submit_many(self, specs: list[ScenarioSpec], sweep: str | None = None,
                    variants: list[str] | None = None) -> list[str]:
        """Queue runs in this order; their ids. variants: one per spec (default each spec's name), as
        sweep.repeat_seeds pairs them. In a sweep each run gets its variant's position: the index of
        the variant among the distinct ones in order of first appearance (repeats share it)."""
        if variants is None:
            variants = [spec.name for spec in specs]
        if len(variants) != len(specs):
            raise ValueError(f"{len(variants)} variants for {len(specs)} specs: give one per spec")
        positions = {variant: index for index, variant in enumerate(dict.fromkeys(variants))}
        return [self.submit(spec, sweep, variant=variant, position=positions[variant] if sweep is not None else None)
                for spec, variant in zip(specs, variants)]

    def resume(self, run_id: str) -> str:
        """Queue an interrupted or stopped run again: it continues after its last finished epoch
        (checkpoint_last.pth). Refused for a run whose heartbeat is fresh, wherever it runs."""
        with self._lock:
            handle = self._handles.get(run_id)
            if handle is not None and handle.state in ("queued", "running"):
                raise ValueError(f"run {run_id} is already {handle.state}")
            state = self.store.read_run(run_id)["status"]["state"]
            if state not in RESUMABLE_STATES:
                raise ValueError(f"run {run_id} is {state}; only {' or '.join(RESUMABLE_STATES)} runs resume")
            folder = self.store.folder(run_id)
            spec = self.store.read_spec(run_id)
            clear_stop_request(folder)
            # The run is dead (stale heartbeat) or stopped: nobody else writes its status now.
            update_status(folder, state="queued", error=None, ended_at=None, owner=self.runner_id,
                          queued_at=now_iso())
            resume = (folder / LAST_CHECKPOINT).exists() or (folder / CHECKPOINT).exists()
            handle = RunHandle(run_id, spec, resume=resume)
            self._handles[run_id] = handle
        return self._enqueue(handle)

    def adopt_orphans(self) -> list[str]:
        """Queue here the runs left queued by a runner that is gone (a killed dashboard or terminal).
        A queued run whose runner still beats is that runner's and is left alone."""
        adopted = []
        runs = self.store.list_runs()
        if runs.empty:
            return adopted
        orphans = runs[(runs["state"] == "interrupted") & (runs["recorded_state"] == "queued")]
        for run_id in orphans["run_id"]:
            try:
                folder = self.store.folder(run_id)
                spec = self.store.read_spec(run_id)
                update_status(folder, state="queued", owner=self.runner_id, error=None)
            except (KeyError, OSError, ValueError) as exc:
                log.warning("could not adopt queued run %s: %s", run_id, exc)
                continue
            self._enqueue(RunHandle(run_id, spec))
            adopted.append(run_id)
        self.interrupted_at_start = [r for r in self.interrupted_at_start if r not in adopted]
        return adopted

    def _enqueue(self, handle: RunHandle) -> str:
        with self._lock:
            self._handles[handle.run_id] = handle
        self._queue.put(handle)
        return handle.run_id

    # ------------------------------------------------------------------ control
    def cancel(self, run_id: str) -> bool:
        """Keep a queued run from starting (recorded as stopped before it started)."""
        with self._lock:       # one decision with a slot taking it off the queue right now (see _dispatch)
            handle = self._handles.get(run_id)
            if handle is not None and handle.state == "queued":
                handle.state = "stopped"
                mine = True
            else:
                mine = False
        if mine:
            update_status(self.store.folder(run_id), state="stopped", ended_at=now_iso(),
                          error="cancelled before it started")
            handle.done.set()
            return True
        try:            # another runner's queued run: it reads the request before starting the run
            if self.store.read_run(run_id)["status"]["state"] == "queued":
                request_stop(self.store.folder(run_id), reason="cancel")
                return True
        except (KeyError, OSError, ValueError):
            pass
        return False

    def stop(self, run_id: str) -> bool:
        """Stop a running run between two batches (recorded as stopped; resumable), from any
        process or machine; a queued run is cancelled."""
        handle = self._handles.get(run_id)
        if handle is not None and handle.state == "queued":
            return self.cancel(run_id)
        try:
            state = self.store.read_run(run_id)["status"]["state"]
            folder = self.store.folder(run_id)
        except (KeyError, OSError, ValueError):
            return False
        if state == "queued":
            return self.cancel(run_id)
        if state != "running" and not (handle is not None and handle.state == "running"):
            return False
        request_stop(folder)
        return True

    def stop_all(self) -> None:
        for handle in self._all_handles():
            if handle.state in ("queued", "running"):
                self.stop(handle.run_id)

    def reap_orphans(self) -> list[str]:
        """Nothing to do any more: a dead run is shown interrupted by readers, from its stale heartbeat."""
        return []

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

    def _leave(self) -> None:
        """At interpreter exit (a dashboard's Ctrl-C), before the worker pools wait for their work:
        running runs stop between two batches (resumable), queued ones stay queued on disk for the
        next start to adopt."""
        self._closing = True
        for handle in self._all_handles():
            if handle.state == "running":
                request_stop(self.store.root / handle.run_id)

    def leave(self, timeout: float = 30.0) -> bool:
        """Leave as a server that stops does (SIGTERM, Ctrl-C): what interpreter exit does (running
        runs stop between two batches, resumable; queued ones stay queued on disk for the next start
        to adopt), then wait up to `timeout` s for the running ones and end the worker processes.
        Needed where the process is ended by its signal after its own shutdown (uvicorn re-raises
        SIGTERM), so that no exit hook runs: without it the workers outlive their server.
        False when a run did not stop in time: its process is then killed (it shows `interrupted`
        and resumes from its last finished epoch)."""
        self._leave()
        running = [handle.run_id for handle in self._all_handles() if handle.state == "running"]
        stopped = self.wait(running, timeout) if running else True
        _RUNNERS.discard(self)
        for _ in self._threads:
            self._queue.put(None)
        self.executor.shutdown(kill=not stopped)
        self._finalizer()
        return stopped

    def shutdown(self, wait: bool = True) -> None:
        """Stop every run of this runner (stopped: resumable), end its processes and its heartbeat."""
        _RUNNERS.discard(self)
        self.stop_all()
        for _ in self._threads:
            self._queue.put(None)
        if wait:
            for thread in self._threads:
                thread.join()
            self.executor.shutdown()
        self._finalizer()

    # ------------------------------------------------------------------ the slots
    def _dispatch(self, slot: int) -> None:
        while True:
            handle = self._queue.get()
            if handle is None:
                return
            try:
                self._run(slot, handle)
            except Exception:      # never let one run take its slot down with it
                log.exception("slot %d lost run %s", slot, handle.run_id)
                self._record_failure(handle, "the runner lost it (see the log)")
            finally:
                handle.done.set()

    def _run(self, slot: int, handle: RunHandle) -> None:
        folder = self.store.root / handle.run_id
        with self._lock:                      # one decision with cancel(): it is queued or it runs
            if handle.state != "queued" or self._closing:   # cancelled while it waited: never start it
                return
            if stop_requested(folder):        # cancelled from another process
                handle.state = "stopped"
            else:
                handle.state, handle.started = "running", time.monotonic()
        if handle.state == "stopped":
            clear_stop_request(folder)
            update_status(folder, state="stopped", ended_at=now_iso(), error="cancelled before it started")
            return
        try:
            future = self.executor.submit(slot, folder, handle.resume)
        except RuntimeError as exc:           # the interpreter or the pool is shutting down
            log.info("run %s left queued: %s", handle.run_id, exc)
            handle.state = "queued"           # still queued on disk: the next runner adopts it
            return
        while True:
            try:
                state = future.result(timeout=POLL_EVERY)
                break
            except FutureTimeout:
                self._follow(handle, folder)
            except BrokenProcessPool:
                self._process_died(slot, handle, folder)
                return
            except Exception as exc:          # a Ray task that died, a folder deleted under the run
                self._record_failure(handle, f"{type(exc).__name__}: {exc}")
                return
        self._follow(handle, folder)
        handle.state = state if state in FINAL_STATES else "failed"

    def _follow(self, handle: RunHandle, folder: Path) -> None:
        """Progress from the run folder: the epoch, and on_epoch for each new metrics row."""
        try:
            status = read_json(folder / "status.json")
            epoch = int(status.get("epoch") or 0)
        except (OSError, ValueError, TypeError):
            return
        if not handle.training and status.get("state") == "running":
            handle.training = True
            handle.started = time.monotonic()    # elapsed counts from the run's start, not its wait for a process
        if epoch <= handle.epoch:
            return
        try:
            rows = self.store.load_run(handle.run_id)
        except (KeyError, OSError, ValueError):
            return
        for record in rows[rows["epoch"] > handle.epoch].to_dict("records"):
            handle.epoch, handle.last_record = int(record["epoch"]), record
            if self.on_epoch:
                try:
                    self.on_epoch(handle.run_id, record)
                except Exception:        # a watcher's trouble (a closed terminal) is not the run's
                    log.exception("on_epoch failed for run %s", handle.run_id)

    def _process_died(self, slot: int, handle: RunHandle, folder: Path) -> None:
        code = self.executor.replace_slot(slot)
        if code is not None and code < 0 and -code in (signal.SIGKILL, signal.SIGTERM):
            # Killed from outside (an out-of-memory kill, `kill`): every finished epoch is on disk;
            # readers show it interrupted once its heartbeat is stale, and it resumes from there.
            handle.state = "interrupted"
            return
        how = f"by signal {signal.Signals(-code).name}" if code is not None and code < 0 else (
            f"with exit code {code}" if code is not None else "")
        self._record_failure(handle, f"its process died {how}".strip() + " (a crash in native code: "
                                     "an abort, a segfault)")

    def _record_failure(self, handle: RunHandle, message: str) -> None:
        handle.state = "failed"
        log.warning("run %s failed: %s", handle.run_id, message)
        try:
            update_status(self.store.root / handle.run_id, state="failed", error=message, ended_at=now_iso())
        except OSError as exc:      # deleted under us: nothing left to record into
            log.warning("could not record the failure of %s: %s", handle.run_id, exc)
