"""The run store: one folder per run, readable by humans, pandas and TensorBoard.

    store = RunStore()                           # ./runs, or $TRAINLIB_RUNS_DIR
    folder = store.new_run(spec, sweep="reg")    # scenario.json + status.json (queued)
    runs = list_runs()                           # DataFrame, one row per run
    metrics = load_run(run_id)                   # DataFrame, one row per epoch

A run folder holds scenario.json, status.json, metrics.csv, summary.json, checkpoint_best.pth and
TensorBoard event files. Every JSON/CSV write goes to a temporary file first and is then renamed,
so a reader never sees half a file. A folder that cannot be read is skipped and reported.
"""
from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import socket
import tempfile
import threading
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from .loop import METRIC_COLUMNS, History
from .spec import ScenarioSpec

log = logging.getLogger("trainlib")
RUNS_ENV = "TRAINLIB_RUNS_DIR"
STATES = ("queued", "running", "finished", "stopped", "failed", "diverged", "interrupted")
ACTIVE_STATES = ("queued", "running")
RESUMABLE_STATES = ("interrupted", "stopped")
CHECKPOINT = "checkpoint_best.pth"


def default_runs_dir() -> Path:
    return Path(os.environ.get(RUNS_ENV, "runs"))


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _clean(value: Any) -> Any:
    """NaN/inf are not JSON: write them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: dict) -> None:
    write_atomic(path, json.dumps(_clean(data), indent=2, allow_nan=False))


def read_json(path: Path) -> dict:
    with open(path, encoding="utf-8") as handle:
        data = json.load(handle)
    if not isinstance(data, dict):
        raise ValueError(f"{path.name} does not hold a JSON object")
    return data


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=-]+", "-", text).strip("-")[:60] or "run"


# Status updates merge into the file; one lock per process keeps read-modify-write whole.
_STATUS_LOCK = threading.Lock()


def update_status(folder: Path, **fields: Any) -> dict:
    with _STATUS_LOCK:
        path = folder / "status.json"
        status = read_json(path) if path.exists() else {}
        status.update(fields)
        status["updated_at"] = now_iso()
        write_json(path, status)
        return status


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# ----------------------------------------------------------------------------- writing one run
class RunRecorder:
    """Keeps one run folder up to date while train() runs; owns the TensorBoard writer."""

    def __init__(self, folder: Path, spec: ScenarioSpec):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.spec = spec
        self.writer = None
        if not (self.folder / "scenario.json").exists():
            write_json(self.folder / "scenario.json", spec.to_dict())

    def previous_records(self, up_to_epoch: int) -> list[dict]:
        path = self.folder / "metrics.csv"
        if not path.exists():
            return []
        frame = pd.read_csv(path)
        return frame[frame["epoch"] <= up_to_epoch].to_dict("records")

    def _tensorboard(self):
        if self.writer is None:
            from torch.utils.tensorboard import SummaryWriter
            self.writer = SummaryWriter(log_dir=str(self.folder))
        return self.writer

    def started(self, history: History, resumed_from: int | None) -> None:
        update_status(self.folder, state="running", started_at=now_iso(), ended_at=None, error=None,
                      epoch=len(history.records), epochs=self.spec.epochs, pid=os.getpid(),
                      host=socket.gethostname(), engine=history.engine, resumed_from=resumed_from)
        self._write_metrics(history)

    def _write_metrics(self, history: History) -> None:
        write_atomic(self.folder / "metrics.csv", history.to_frame().to_csv(index=False))

    def epoch_done(self, record: dict, history: History) -> None:
        self._write_metrics(history)
        writer = self._tensorboard()
        step = record["epoch"]
        for key, tag in (("train_loss", "loss/train"), ("val_loss", "loss/val"), ("train_acc", "accuracy/train"),
                         ("val_acc", "accuracy/val"), ("lr", "lr"), ("seconds", "seconds")):
            if record[key] is not None and math.isfinite(record[key]):
                writer.add_scalar(tag, record[key], step)
        writer.flush()   # so `tensorboard --logdir runs` shows the run while it trains
        update_status(self.folder, epoch=record["epoch"], best_epoch=history.best_epoch)

    def save_checkpoint(self, S, epoch: int, best_loss: float) -> None:
        state = {"epoch": epoch, "best_loss": best_loss, "model_state": S.model.state_dict(),
                 "optim_state": S.optimizer.state_dict(),
                 "scheduler_state": S.scheduler.state_dict() if S.scheduler is not None else None,
                 "spec": S.spec.to_dict()}
        tmp = self.folder / f".{CHECKPOINT}.tmp"
        torch.save(state, tmp)
        os.replace(tmp, self.folder / CHECKPOINT)

    def finished(self, history: History) -> None:
        summary = history.summary()
        write_json(self.folder / "summary.json", summary)
        if history.state == "finished":
            writer = self._tensorboard()
            _write_hparams(writer, self.spec, summary)
        if self.writer is not None:
            self.writer.close()
        update_status(self.folder, state=history.state, error=history.error, ended_at=now_iso(),
                      engine=history.engine)


def _write_hparams(writer, spec: ScenarioSpec, summary: dict) -> None:
    """Hyperparameters and final metrics into this run's own event file (TensorBoard's HParams tab)."""
    from torch.utils.tensorboard.summary import hparams
    params = {k: (",".join(map(str, v)) if isinstance(v, (list, tuple)) else ("" if v is None else v))
              for k, v in spec.to_dict().items()}
    metrics = {f"hparam/{k}": summary[k] for k in ("test_acc", "test_loss", "best_val_loss")
               if isinstance(summary.get(k), (int, float))}
    experiment, start, end = hparams(params, metrics)
    file_writer = writer._get_file_writer()
    for item in (experiment, start, end):
        file_writer.add_summary(item)
    for key, value in metrics.items():
        writer.add_scalar(key, value)


def load_checkpoint(S) -> dict:
    """Restore model, optimizer and scheduler of S from its folder's checkpoint_best.pth; return the dict."""
    path = Path(S.log_folder) / CHECKPOINT
    if not path.exists():
        raise FileNotFoundError(f"no {CHECKPOINT} in {S.log_folder}: the run never finished an epoch")
    checkpoint = torch.load(path, map_location=S.device, weights_only=True)
    S.model.load_state_dict(checkpoint["model_state"])
    S.optimizer.load_state_dict(checkpoint["optim_state"])
    if S.scheduler is not None and checkpoint.get("scheduler_state"):
        S.scheduler.load_state_dict(checkpoint["scheduler_state"])
    return checkpoint


# ----------------------------------------------------------------------------- the folder of runs
def _stamp(*paths: Path) -> tuple:
    """Inode, modification time and size: write_atomic renames a new file into place, so every
    write changes the inode even when the clock's granularity would hide it."""
    out = []
    for path in paths:
        try:
            stat = path.stat()
            out.append((stat.st_ino, stat.st_mtime_ns, stat.st_size))
        except FileNotFoundError:
            out.append(None)
    return tuple(out)


class RunStore:
    """The folder of runs. Reads are cached per file stamp: a dashboard polls every second from
    every open tab, and only the runs that changed since are read and parsed again."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else default_runs_dir()
        self.root.mkdir(parents=True, exist_ok=True)
        self._cache: dict[tuple[str, str], tuple[tuple, Any]] = {}
        self._cache_lock = threading.Lock()

    def _cached(self, kind: str, run_id: str, stamp: tuple, read):
        with self._cache_lock:
            hit = self._cache.get((kind, run_id))
        if hit is not None and hit[0] == stamp:
            return hit[1]
        value = read()
        with self._cache_lock:
            self._cache[(kind, run_id)] = (stamp, value)
        return value

    def folder(self, run_id: str) -> Path:
        path = self.root / run_id
        if not run_id or "/" in run_id or "\\" in run_id or run_id.startswith(".") or not path.is_dir():
            raise KeyError(f"no run {run_id!r} in {self.root}")
        return path

    def new_run(self, spec: ScenarioSpec, sweep: str | None = None) -> Path:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        run_id = f"{stamp}-{slug(spec.name)}-{uuid.uuid4().hex[:4]}"
        folder = self.root / run_id
        folder.mkdir(parents=True)
        write_json(folder / "scenario.json", spec.to_dict())
        update_status(folder, state="queued", created_at=now_iso(), sweep=sweep, epoch=0, epochs=spec.epochs,
                      error=None, pid=os.getpid(), host=socket.gethostname())
        return folder

    def run_ids(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))

    def read_run(self, run_id: str) -> dict:
        """{'run_id', 'spec', 'status', 'summary'} for one folder; raises if it cannot be read.
        The dicts may be shared with other callers: read them, do not change them."""
        folder = self.folder(run_id)
        files = [folder / name for name in ("scenario.json", "status.json", "summary.json")]
        return self._cached("run", run_id, _stamp(*files), lambda: self._read_run_files(run_id, folder))

    def _read_run_files(self, run_id: str, folder: Path) -> dict:
        spec = read_json(folder / "scenario.json")
        status = read_json(folder / "status.json")
        if status.get("state") not in STATES:
            raise ValueError(f"status.json has unknown state {status.get('state')!r}")
        summary_path = folder / "summary.json"
        summary = read_json(summary_path) if summary_path.exists() else {}
        return {"run_id": run_id, "spec": spec, "status": status, "summary": summary}

    def list_runs(self) -> pd.DataFrame:
        """One row per readable run: ids, state, progress, summary metrics and every spec field.

        Unreadable folders are logged and listed in .attrs['skipped'] as (run_id, reason).
        """
        rows, skipped = [], []
        for run_id in self.run_ids():
            try:
                run = self.read_run(run_id)
            except Exception as exc:
                skipped.append((run_id, f"{type(exc).__name__}: {exc}"))
                log.warning("skipping run folder %s: %s", run_id, exc)
                continue
            status, summary = run["status"], run["summary"]
            row = {"run_id": run_id, "state": status.get("state"), "sweep": status.get("sweep"),
                   "epoch": status.get("epoch", 0), "epochs": status.get("epochs"),
                   "created_at": status.get("created_at"), "started_at": status.get("started_at"),
                   "ended_at": status.get("ended_at"), "error": status.get("error"),
                   "engine": status.get("engine")}
            for key in ("test_acc", "test_loss", "best_epoch", "best_val_loss", "final_val_acc", "seconds"):
                row[key] = summary.get(key)
            for key, value in run["spec"].items():
                row[key] = ",".join(map(str, value)) if isinstance(value, list) else value
            rows.append(row)
        frame = pd.DataFrame(rows)
        frame.attrs["skipped"] = skipped
        return frame

    def load_run(self, run_id: str) -> pd.DataFrame:
        """The run's metrics.csv (empty with the standard columns when no epoch has finished)."""
        path = self.folder(run_id) / "metrics.csv"

        def read() -> pd.DataFrame:
            if not path.exists() or path.stat().st_size == 0:
                return pd.DataFrame(columns=METRIC_COLUMNS)
            return pd.read_csv(path)
        return self._cached("metrics", run_id, _stamp(path), read).copy()

    def load_metrics(self, run_ids: list[str]) -> pd.DataFrame:
        """Long table of several runs' metrics, with run_id and name columns; unreadable runs skipped."""
        frames = []
        for run_id in run_ids:
            try:
                frame = self.load_run(run_id)
                name = self.read_run(run_id)["spec"].get("name", run_id)
            except Exception as exc:
                log.warning("skipping metrics of %s: %s", run_id, exc)
                continue
            frame.insert(0, "name", name)
            frame.insert(0, "run_id", run_id)
            frames.append(frame)
        if not frames:
            return pd.DataFrame(columns=["run_id", "name", *METRIC_COLUMNS])
        return pd.concat(frames, ignore_index=True)

    def read_spec(self, run_id: str) -> ScenarioSpec:
        return ScenarioSpec.from_dict(read_json(self.folder(run_id) / "scenario.json"))

    def delete(self, run_id: str) -> None:
        shutil.rmtree(self.folder(run_id))
        with self._cache_lock:
            for kind in ("run", "metrics"):
                self._cache.pop((kind, run_id), None)

    def mark_interrupted(self, live_run_ids: set[str] = frozenset(), other_processes_only: bool = False) -> list[str]:
        """Runs left queued/running by a process that is gone become 'interrupted'. Returns their ids.

        A run whose recorded process is still alive on this host (a terminal's `python -m trainlib`)
        or that this process is running right now (live_run_ids) is left alone; with
        other_processes_only, so is every run this process created (for periodic checks, which must
        not race a run being submitted).
        """
        marked = []
        host = socket.gethostname()
        for run_id in self.run_ids():
            folder = self.root / run_id
            try:
                status = read_json(folder / "status.json")
            except Exception:
                continue
            if status.get("state") not in ACTIVE_STATES or run_id in live_run_ids:
                continue
            pid = status.get("pid")
            if other_processes_only and pid == os.getpid():
                continue
            same_host = status.get("host") in (None, host)
            owner_alive = same_host and isinstance(pid, int) and pid != os.getpid() and process_alive(pid)
            if owner_alive:
                continue
            update_status(folder, state="interrupted", ended_at=now_iso(),
                          error=f"the process running it stopped while it was {status.get('state')}")
            marked.append(run_id)
        return marked


def list_runs(root: str | Path | None = None) -> pd.DataFrame:
    return RunStore(root).list_runs()


def load_run(run_id: str, root: str | Path | None = None) -> pd.DataFrame:
    return RunStore(root).load_run(run_id)
