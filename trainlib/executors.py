"""Where a run executes: a warm local process, a Ray task, or (for comparison only) a thread.

    executor = make_executor("local", slots=2, threads=1)     # or "ray", or "thread"
    future = executor.submit(slot, folder, resume)            # a concurrent.futures.Future of the final state
    executor.shutdown()

local (the default): one single-worker ProcessPoolExecutor per slot, started with 'spawn' and
warmed at once (engine imported, thread count set), so process start-up never sits between a Run
button and the first curve point. One pool per slot, not one pool of N: a ProcessPoolExecutor
whose worker dies breaks every future of the pool (BrokenProcessPool), so an aborting run would end
its siblings; here it breaks its own slot, which is replaced.

ray: each run is one Ray task (max_retries=0: a failed run is recorded failed, never silently
retried), with num_cpus / num_gpus from TRAINLIB_RAY_NUM_CPUS / TRAINLIB_RAY_NUM_GPUS (a fraction
of a GPU lets several runs share one). The runs folder must be storage every node sees.

thread: the run trains in the runner's own thread, sharing the process with every other run
(torch's random generators, its thread pool, the GIL). Kept to measure what the processes gain.
"""
from __future__ import annotations

import gc
import multiprocessing
import os
import signal
import sys
import threading
import types
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from pathlib import Path

from .worker import execute_run, ignore_interrupts, prepare_process

EXECUTOR_ENV = "TRAINLIB_EXECUTOR"
EXECUTORS = ("local", "ray", "thread")
RAY_CPUS_ENV, RAY_GPUS_ENV = "TRAINLIB_RAY_NUM_CPUS", "TRAINLIB_RAY_NUM_GPUS"
RAY_INSTALL = "pip install -r requirements-ray.txt"


class ExecutorUnavailable(RuntimeError):
    """The executor asked for cannot start here (Ray not installed, no cluster at the address)."""


def default_executor() -> str:
    return os.environ.get(EXECUTOR_ENV) or "local"


@contextmanager
def _no_script_as_main():
    """Spawn a worker without re-running the parent's main script in it.

    A spawned process imports the parent's __main__ again (as __mp_main__) when it is a file. Under
    Streamlit, __main__ is the app script itself while it runs (Streamlit installs it there), so
    every worker would run the app's script (navigation.py), whose runner spawns workers again: "An
    attempt has been made to start a new process before the current process has finished its
    bootstrapping phase". Workers need nothing from a script: they import trainlib by name.
    """
    main = sys.modules.get("__main__")
    is_script = main is not None and getattr(main, "__file__", None) and getattr(main, "__spec__", None) is None
    if not is_script:
        yield
        return
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = main


class ThreadExecutor:
    name = "thread"

    def wait_ready(self, timeout: float | None = None) -> None:
        pass

    def __init__(self, slots: int, threads: int | None = None):
        self.slots = slots
        self.threads = threads

    def submit(self, slot: int, folder: Path, resume: bool) -> Future:
        future: Future = Future()
        try:
            future.set_result(execute_run(str(folder), resume, None))
        except BaseException as exc:
            future.set_exception(exc)
        return future

    def replace_slot(self, slot: int) -> int | None:
        return None

    def describe(self) -> str:
        return "threads of this process"

    def shutdown(self, kill: bool = False) -> None:
        pass


def _processes_of(pool: ProcessPoolExecutor) -> list:
    """The pool's worker processes: ProcessPoolExecutor keeps them in a private attribute, so an
    empty list where a Python version has none."""
    return list((getattr(pool, "_processes", None) or {}).values())


class LocalProcessExecutor:
    name = "local"

    def __init__(self, slots: int, threads: int | None = 1, target=execute_run):
        self.threads = threads
        self.target = target                    # a module-level function (spawn pickles it by name)
        self._context = multiprocessing.get_context("spawn")
        self._lock = threading.Lock()
        self._warming: list[Future] = []
        self._slots = slots
        self._killed = False                    # shut down with kill: its runs' processes were ended by it
        self._pools = [self._new_pool() for _ in range(slots)]

    def _new_pool(self) -> ProcessPoolExecutor:
        # initializer: worker processes ignore Ctrl-C, which a terminal sends to its whole process
        # group; the runner turns it into stop requests, so runs end 'stopped' and resumable.
        pool = ProcessPoolExecutor(max_workers=1, mp_context=self._context, initializer=ignore_interrupts)
        with _no_script_as_main():
            # warm: spawn and import now, not at the first Run
            self._warming.append(pool.submit(prepare_process, self.threads))
        return pool

    def wait_ready(self, timeout: float | None = None) -> None:
        """Until every slot's process has started and imported the engine (for measurements)."""
        for future in list(self._warming):
            future.result(timeout)

    @property
    def slots(self) -> int:
        return self._slots

    def submit(self, slot: int, folder: Path, resume: bool) -> Future:
        with self._lock:
            if not self._pools:                # shut down: the run stays queued (Runner._run)
                raise RuntimeError("the worker processes have been shut down")
            pool = self._pools[slot]
        try:
            return pool.submit(self.target, str(folder), resume, self.threads)
        except BrokenProcessPool:       # its idle process died (an out-of-memory kill): a fresh one
            self.replace_slot(slot)
            with self._lock:
                pool = self._pools[slot]
            return pool.submit(self.target, str(folder), resume, self.threads)

    def replace_slot(self, slot: int) -> int | None:
        """After the slot's process died: a fresh, warm one (the dead pool is broken for good).

        Returns how the old process ended (negative: the signal), None when unknown. Read only
        after the dead pool's manager thread has joined its process: that thread reaps it, and a
        second thread waiting on the same pid can lose the race and see no exit code at all
        (1 time in 14 here), which once turned a `kill` into a "crash in native code".
        """
        with self._lock:
            if not self._pools:                # shut down: no new process; killed by it, if so
                return -signal.SIGKILL if self._killed else None
            old, self._pools[slot] = self._pools[slot], self._new_pool()
        processes = _processes_of(old)          # none known: the exit code is unknown
        old.shutdown(wait=True, cancel_futures=True)
        codes = [process.exitcode for process in processes if process.exitcode is not None]
        return codes[0] if codes else None

    def describe(self) -> str:
        threads = f", {self.threads} thread{'s' if self.threads != 1 else ''} each" if self.threads else ""
        return f"{self.slots} local process{'es' if self.slots != 1 else ''}{threads}"

    def shutdown(self, kill: bool = False) -> None:
        """End the worker processes: once their work is done, or at once with kill (SIGKILL: a run
        that did not stop when asked). The pools are then let go: their queues' semaphores are freed
        now, not left to multiprocessing's resource tracker (which warns of them) when the process
        ends by a signal, as a server stopped by SIGTERM does."""
        with self._lock:
            pools, self._pools = self._pools, []
            self._killed = kill
        for pool in pools:
            if kill:                            # none known: it waits for them instead
                for process in _processes_of(pool):
                    process.kill()
            pool.shutdown(wait=True, cancel_futures=True)
        del pools
        gc.collect()


class RayExecutor:
    name = "ray"
    RUNS_PER_GPU = 4          # the default share of a GPU per run when the cluster has GPUs

    def __init__(self, slots: int | None, address: str | None = None, threads: int | None = 1,
                 num_cpus: float | None = None, num_gpus: float | None = None):
        try:
            import ray
        except ImportError:
            raise ExecutorUnavailable(f"executor 'ray' needs the ray package: {RAY_INSTALL}") from None
        self.ray = ray
        self.threads = threads
        self.address = address or os.environ.get("RAY_ADDRESS") or None
        if not ray.is_initialized():
            project = str(Path(__file__).resolve().parents[1])
            try:
                if self.address:
                    ray.init(address=self.address, log_to_driver=False)
                else:
                    # A local instance for this process; its workers import trainlib from here.
                    ray.init(include_dashboard=False, log_to_driver=False,
                             runtime_env={"env_vars": {"PYTHONPATH": project}})
            except Exception as exc:
                raise ExecutorUnavailable(f"ray: cannot start or reach a cluster"
                                          f"{' at ' + self.address if self.address else ''}: {exc}") from None
        cluster = ray.cluster_resources()
        cpus = num_cpus if num_cpus is not None else float(os.environ.get(RAY_CPUS_ENV, threads or 1))
        # A task with num_gpus=0 sees no GPU at all (Ray empties CUDA_VISIBLE_DEVICES): on a cluster
        # with GPUs, each run takes a share of one unless told otherwise.
        default_gpus = 1 / self.RUNS_PER_GPU if cluster.get("GPU", 0) > 0 else 0
        gpus = num_gpus if num_gpus is not None else float(os.environ.get(RAY_GPUS_ENV, default_gpus))
        self.resources = {"num_cpus": cpus, "num_gpus": gpus}
        # Runs in flight at once: what the cluster can hold, unless given.
        fit = cluster.get("CPU", 1) / cpus if cpus else cluster.get("CPU", 1)
        if gpus:
            fit = min(fit, cluster.get("GPU", 0) / gpus)
        self.slots = slots or max(1, int(fit))
        self._remote = ray.remote(max_retries=0, **self.resources)(execute_run)

    def submit(self, slot: int, folder: Path, resume: bool) -> Future:
        return self._remote.remote(str(folder), resume, self.threads).future()

    def replace_slot(self, slot: int) -> int | None:
        return None           # Ray starts a new worker for the next task itself

    def wait_ready(self, timeout: float | None = None) -> None:
        pass

    def describe(self) -> str:
        where = self.address or "a local Ray instance"
        return f"ray ({where}; {self.resources['num_cpus']:g} CPU, {self.resources['num_gpus']:g} GPU per run)"

    def shutdown(self, kill: bool = False) -> None:
        pass                  # the cluster outlives the runner; a local instance ends with the process


def make_executor(kind: str, slots: int, threads: int | None, ray_address: str | None = None):
    if kind == "local":
        return LocalProcessExecutor(slots, threads)
    if kind == "ray":
        return RayExecutor(slots, address=ray_address, threads=threads)
    if kind == "thread":
        return ThreadExecutor(slots, threads)
    raise ValueError(f"executor: unknown value {kind!r}; allowed: {', '.join(EXECUTORS)}")
