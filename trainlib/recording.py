"""The writing side of a run folder: callbacks that keep it up to date while train(S) runs.

    history = train(S)              # with S.log_folder set, train() adds folder_callbacks(S)

Order within an epoch, chosen so that a kill at any moment loses nothing that finished:
checkpoint_best.pth (when the epoch is the best) -> TensorBoard -> checkpoint_last.pth (model,
optimizer, scheduler, random generators and every metrics row so far) -> metrics.csv ->
status.json. A kill after the last checkpoint but before metrics.csv loses no row: a resume
rewrites metrics.csv from the checkpoint's rows. TensorBoard is written before the checkpoint: a
resume continues after the checkpoint's epoch with purge_step set to the next one, so a point of an
epoch the checkpoint does not hold is dropped and written again, and every epoch is there once.

The run writes its own status.json (one writer per file); a heartbeat thread refreshes it while the
run is alive, and readers call a run with a stale heartbeat interrupted (liveness.py).
"""
from __future__ import annotations

import math
import os
import socket
import time
from pathlib import Path

from . import checkpoints
from .callbacks import BestEpoch, Callback, TrainingRun
from .history import History
from .liveness import Heartbeat, clear_stop_request, stop_requested
from .runfiles import now_iso, update_status, write_atomic, write_json
from .spec import ScenarioSpec

SCALARS = (("train_loss", "loss/train"), ("val_loss", "loss/val"), ("train_acc", "accuracy/train"),
           ("val_acc", "accuracy/val"), ("lr", "lr"), ("seconds", "seconds"))


def folder_callbacks(folder: Path, spec: ScenarioSpec, best: BestEpoch) -> list[Callback]:
    """Everything a run folder needs, in the order that keeps it whole under a kill (module docstring)."""
    run_folder = RunFolder(folder, spec)
    return [BestCheckpoint(folder, best), TensorBoardScalars(run_folder), LastCheckpoint(folder, best),
            run_folder, StopRequest(folder)]


class TensorBoardScalars(Callback):
    """The epoch's scalars into the run folder's TensorBoard events, before checkpoint_last.pth."""

    def __init__(self, run_folder: "RunFolder"):
        self.run_folder = run_folder

    def after_epoch(self, run: TrainingRun, record: dict) -> None:
        self.run_folder.write_scalars(record)


class BestCheckpoint(Callback):
    """checkpoint_best.pth, the course's {epoch, best_loss, model_state, optim_state}, at each new best."""

    def __init__(self, folder: Path, best: BestEpoch):
        self.folder, self.best = Path(folder), best

    def after_epoch(self, run: TrainingRun, record: dict) -> None:
        if self.best.is_new_best:
            checkpoints.save_best(self.folder, run.S, record["epoch"], record["val_loss"])


class LastCheckpoint(Callback):
    """checkpoint_last.pth after every epoch: what a resume needs to continue after that epoch."""

    def __init__(self, folder: Path, best: BestEpoch):
        self.folder, self.best = Path(folder), best

    def after_epoch(self, run: TrainingRun, record: dict) -> None:
        checkpoints.save_last(self.folder, run.S, run.history, bad_epochs=self.best.bad_epochs,
                              best_model_state=self.best.best_state)


class StopRequest(Callback):
    """Stops between two batches once the folder holds a stop request (liveness.request_stop): the
    channel through which a dashboard, a terminal or another machine stops this run."""

    CHECK_EVERY = 0.2          # seconds between looks at the folder: a stat per look, not per batch

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.next_check = 0.0

    def should_stop(self) -> bool:
        now = time.monotonic()
        if now < self.next_check:
            return False
        self.next_check = now + self.CHECK_EVERY
        return stop_requested(self.folder)


class RunFolder(Callback):
    """metrics.csv, TensorBoard scalars and hparams, summary.json and status.json, with a heartbeat."""

    def __init__(self, folder: Path, spec: ScenarioSpec):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.spec = spec
        self.writer = None
        self.purge_step: int | None = None
        self.heartbeat = Heartbeat(self.folder)
        if not (self.folder / "scenario.json").exists():
            write_json(self.folder / "scenario.json", spec.to_dict())

    def _tensorboard(self):
        if self.writer is None:
            from torch.utils.tensorboard import SummaryWriter
            # purge_step: TensorBoard drops points at or after it that an earlier attempt of this
            # run wrote, so a resumed run shows each epoch once whatever the earlier attempt left.
            self.writer = SummaryWriter(log_dir=str(self.folder), purge_step=self.purge_step)
        return self.writer

    def _write_metrics(self, history: History) -> None:
        write_atomic(self.folder / "metrics.csv", history.to_frame().to_csv(index=False))

    def before_fit(self, run: TrainingRun) -> None:
        resumed_from = run.start_epoch - 1 if run.checkpoint is not None else None
        self.purge_step = run.start_epoch if resumed_from is not None else None
        self.heartbeat.start()
        update_status(self.folder, state="running", started_at=now_iso(), ended_at=None, error=None,
                      epoch=len(run.history.records), epochs=self.spec.epochs, pid=os.getpid(),
                      host=socket.gethostname(), engine=run.history.engine, resumed_from=resumed_from,
                      best_epoch=run.history.best_epoch, heartbeat_at=now_iso())
        self._write_metrics(run.history)      # after a resume: the checkpoint's rows, whole again

    def write_scalars(self, record: dict) -> None:
        writer = self._tensorboard()
        for key, tag in SCALARS:
            value = record[key]
            if value is not None and math.isfinite(value):
                writer.add_scalar(tag, value, record["epoch"])
        writer.flush()   # so `tensorboard --logdir runs` shows the run while it trains

    def after_epoch(self, run: TrainingRun, record: dict) -> None:
        self._write_metrics(run.history)
        update_status(self.folder, epoch=record["epoch"], best_epoch=run.history.best_epoch)

    def after_fit(self, run: TrainingRun) -> None:
        history = run.history
        summary = history.summary()
        write_json(self.folder / "summary.json", summary)
        if history.state == "finished":
            _write_hparams(self._tensorboard(), self.spec, summary)
        if self.writer is not None:
            self.writer.close()
        # The last writes of this run: no heartbeat may land after the final status (a resume from
        # another process may queue the run again at once), and a stop request is answered.
        Heartbeat.stop_all_for(self.folder)
        if history.state == "stopped":
            clear_stop_request(self.folder)
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
