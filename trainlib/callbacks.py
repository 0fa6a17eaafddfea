"""The training loop's concerns as small callbacks around a plain loop (fastai's miniai Learner,
Lightning's Callback): best epoch and early stopping, a function per epoch, a stop flag.

    history = train(S, callbacks=[OnEpoch(print), StopWhen(flag.is_set)])

train() calls, in list order: before_fit once (after a resume has restored the scenario),
after_epoch after each epoch, before_test once the epochs are over (not when the run stopped,
diverged or failed), and after_fit always, last, with history.state final. should_stop() is asked
between batches. The run-folder callbacks (metrics, checkpoints, heartbeat, stop requests) are in
recording.py.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .history import History
from .scenario import Scenario


@dataclass
class TrainingRun:
    """What the callbacks share: the scenario, the history so far, and where the epochs start."""
    S: Scenario
    history: History
    start_epoch: int = 1                # > 1 after a resume
    checkpoint: dict | None = None      # the checkpoint a resume continued from
    early_stop: bool = False            # set by a callback: end after this epoch


class Callback:
    def before_fit(self, run: TrainingRun) -> None:
        pass

    def after_epoch(self, run: TrainingRun, record: dict) -> None:
        pass

    def before_test(self, run: TrainingRun) -> None:
        pass

    def after_fit(self, run: TrainingRun) -> None:
        pass

    def should_stop(self) -> bool:
        return False


class BestEpoch(Callback):
    """Tracks the lowest validation loss; with patience > 0 stops after that many epochs without a
    new best and hands back the best epoch's weights for the test (the course's early stopping)."""

    def __init__(self, patience: int = 0):
        self.patience = patience
        self.bad_epochs = 0
        self.best_state: dict | None = None
        self.is_new_best = False        # the epoch just seen is the best so far (BestCheckpoint reads it)

    def before_fit(self, run: TrainingRun) -> None:
        checkpoint = run.checkpoint
        if checkpoint is None:
            return
        run.history.best_epoch = checkpoint.get("best_epoch", checkpoint["epoch"])
        run.history.best_val_loss = checkpoint.get("best_loss")
        run.history.early_stopped = bool(checkpoint.get("early_stopped", False))
        self.bad_epochs = int(checkpoint.get("bad_epochs", 0))
        if self.patience and checkpoint.get("best_model_state") is not None:
            self.best_state = checkpoint["best_model_state"]

    def after_epoch(self, run: TrainingRun, record: dict) -> None:
        history = run.history
        self.is_new_best = history.best_val_loss is None or record["val_loss"] < history.best_val_loss
        if self.is_new_best:
            history.best_epoch, history.best_val_loss = record["epoch"], record["val_loss"]
            self.bad_epochs = 0
            if self.patience:
                self.best_state = {k: v.detach().clone() for k, v in run.S.model.state_dict().items()}
        else:
            self.bad_epochs += 1
        if self.patience and self.bad_epochs >= self.patience:
            history.early_stopped = run.early_stop = True

    def before_test(self, run: TrainingRun) -> None:
        if self.patience and self.best_state is not None:
            run.S.model.load_state_dict(self.best_state)     # early stopping hands back the best weights


class OnEpoch(Callback):
    """Calls fn(record) after each epoch (a progress bar, a test's spy)."""

    def __init__(self, fn: Callable[[dict], None]):
        self.fn = fn

    def after_epoch(self, run: TrainingRun, record: dict) -> None:
        self.fn(record)


class StopWhen(Callback):
    """Stops the run between two batches once fn() is true (a threading.Event's is_set)."""

    def __init__(self, fn: Callable[[], bool]):
        self.fn = fn

    def should_stop(self) -> bool:
        return bool(self.fn())
