"""What runs inside a worker process (or a Ray task): one run, from its folder to its final status.

    execute_run("runs/20261201-reg-baseline-ab12", resume=False, threads=1)   # -> 'finished', 'stopped'...

The folder is all a run gets and all it gives back: scenario.json in; status.json (with a
heartbeat), metrics.csv, checkpoints, summary.json and TensorBoard events out. A worker process
keeps nothing of one run for the next but imported modules: create_scenario seeds the process's
own random generators, and the thread count is set here for every run.
"""
from __future__ import annotations

import logging
import os
import signal
import socket
from pathlib import Path

log = logging.getLogger("trainlib")


def ignore_interrupts() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


WARM_DATASET = "shapes"      # the presets' built-in dataset: generated once per worker, at start


def prepare_process(threads: int | None) -> int:
    """Import the engine, set torch's thread count and generate the presets' built-in dataset, so
    that the first run of a class demo starts with none of these between Run and its first epoch."""
    import torch

    from . import loop, recording, scenario  # noqa: F401 (the imports are the point: a warm process)
    from .data import load_pool
    if threads:
        torch.set_num_threads(threads)
    load_pool(WARM_DATASET)                  # cached in this process (0.6 s on a 2-core laptop CPU)
    return os.getpid()


def execute_run(folder: str, resume: bool = False, threads: int | None = None) -> str:
    """Train the run in folder to its end and return its final state. Never raises for the run's
    own failure: that is recorded in status.json as 'failed' with its error.

    A folder with a checkpoint is always resumed (resume=True or not): a run queued again after a
    stop or a kill, and adopted by another runner, must continue, never start over its epochs."""
    from .liveness import Heartbeat, clear_stop_request, stop_requested
    from .runfiles import CHECKPOINT, LAST_CHECKPOINT, now_iso, read_json, update_status

    prepare_process(threads)
    path = Path(folder)
    resume = resume or (path / LAST_CHECKPOINT).exists() or (path / CHECKPOINT).exists()
    if stop_requested(path):        # cancelled while it waited for a worker
        clear_stop_request(path)
        update_status(path, state="stopped", ended_at=now_iso(), error="cancelled before it started")
        return "stopped"
    with Heartbeat(path):
        try:
            from .loop import train
            from .scenario import create_scenario
            from .spec import ScenarioSpec
            update_status(path, state="running", started_at=now_iso(), ended_at=None, error=None,
                          pid=os.getpid(), host=socket.gethostname())
            spec = ScenarioSpec.from_dict(read_json(path / "scenario.json"))
            S = create_scenario(spec, log_folder=path)
            state = train(S, resume=resume).state
            del S
        except Exception as exc:   # building the scenario failed (missing data, bad file): record it
            log.warning("run %s failed: %s", path.name, exc)
            update_status(path, state="failed", error=f"{type(exc).__name__}: {exc}", ended_at=now_iso())
            state = "failed"
        finally:
            release_gpu_memory()
    return state


def release_gpu_memory() -> None:
    """A warm worker keeps living after its run: hand the run's cached GPU memory back, or the next
    run of any worker on that GPU may find none."""
    import gc

    import torch
    gc.collect()
    if torch.cuda.is_initialized():
        torch.cuda.empty_cache()
