"""The training loop: a generator of per-epoch records, and train(S) around it.

    history = train(S)                                  # writes S.log_folder when it is set
    for record in fit(S): print(record["val_loss"])     # the bare loop, no files, no early stopping

The loop returns values, it never prints. Metrics are summed on the device and read once per
epoch (one host sync), never with .item() per batch.
"""
from __future__ import annotations

import contextlib
import copy
import logging
import math
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Callable, Iterator

import pandas as pd
import torch
from torch import nn

from .scenario import Scenario

log = logging.getLogger("trainlib")
ShouldStop = Callable[[], bool] | None
METRIC_COLUMNS = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds", "samples_per_s"]


class StopTraining(Exception):
    """should_stop() said so between two batches."""


class Diverged(Exception):
    def __init__(self, epoch: int, value: float):
        super().__init__(f"loss became {value} at epoch {epoch}")
        self.epoch = epoch


@dataclass
class History:
    records: list[dict] = field(default_factory=list)
    state: str = "running"              # finished, stopped, failed or diverged once train() returns
    error: str | None = None
    test_loss: float | None = None
    test_acc: float | None = None
    best_epoch: int | None = None
    best_val_loss: float | None = None
    early_stopped: bool = False
    engine: str = ""                    # 'cuda-graph' or 'eager (reason)'

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.records, columns=METRIC_COLUMNS)

    def summary(self) -> dict:
        last = self.records[-1] if self.records else {}
        return {"state": self.state, "test_loss": self.test_loss, "test_acc": self.test_acc,
                "best_epoch": self.best_epoch, "best_val_loss": self.best_val_loss,
                "final_train_loss": last.get("train_loss"), "final_val_loss": last.get("val_loss"),
                "final_val_acc": last.get("val_acc"), "epochs_run": len(self.records),
                "early_stopped": self.early_stopped, "engine": self.engine,
                "seconds": sum(r["seconds"] for r in self.records)}


# ----------------------------------------------------------------------------- losses and counts
def compute_loss(loss_fn: nn.Module, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if isinstance(loss_fn, nn.BCEWithLogitsLoss):
        return loss_fn(out.squeeze(1), y.to(out.dtype))
    if isinstance(loss_fn, nn.MSELoss):
        return loss_fn(out, y.to(out.dtype).view_as(out))
    return loss_fn(out, y)


def predicted_labels(out: torch.Tensor) -> torch.Tensor:
    """Class ids: one logit means binary (sigmoid > 0.5, i.e. logit > 0), several mean argmax."""
    if out.ndim == 2 and out.shape[1] == 1:
        return (out.squeeze(1) > 0).long()
    return out.argmax(1)


def count_correct(out: torch.Tensor, y: torch.Tensor, task: str) -> torch.Tensor:
    if task == "regression":
        return torch.zeros((), dtype=torch.long, device=out.device)
    return (predicted_labels(out) == y).sum()


def autocast_for(S: Scenario):
    if S.spec.precision == "bf16":
        # cache off: a cached cast would be captured once and then go stale inside a CUDA graph
        return torch.autocast(S.device.type, dtype=torch.bfloat16, cache_enabled=False)
    return contextlib.nullcontext()


def _to_memory_format(S: Scenario, x: torch.Tensor) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if S.spec.channels_last and x.ndim == 4 else x


def forward_loss(S: Scenario, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(outputs, loss) of one training batch: memory format, autocast and the task's loss."""
    with autocast_for(S):
        out = S.model(_to_memory_format(S, x))
        loss = compute_loss(S.loss_fn, out.float(), y)
    return out, loss


@torch.no_grad()
def evaluate(S: Scenario, loader) -> tuple[float, float]:
    """(mean loss, accuracy in [0, 1]) over a loader, in eval mode; accuracy is NaN for regression."""
    S.model.eval()
    loss_sum = torch.zeros((), device=S.device)
    correct = torch.zeros((), dtype=torch.long, device=S.device)
    n = 0
    for x, y in loader:
        with autocast_for(S):
            out = S.model(_to_memory_format(S, x))
        loss_sum += compute_loss(S.loss_fn, out.float(), y) * len(y)
        correct += count_correct(out, y, S.task)
        n += len(y)
    loss, right = torch.stack([loss_sum, correct.to(loss_sum.dtype)]).tolist()   # the one sync
    return loss / max(n, 1), (math.nan if S.task == "regression" else right / max(n, 1))


def current_lr(optimizer: torch.optim.Optimizer) -> float:
    lr = optimizer.param_groups[0]["lr"]
    return float(lr.item()) if isinstance(lr, torch.Tensor) else float(lr)


def pin_lr_tensor(S: Scenario) -> None:
    """Make a graphed optimizer's lr the very tensor its graph reads again, with the current value.

    Needed after anything that rebinds param_groups' lr: a scheduler that assigns floats, or
    optimizer.load_state_dict (resume, the lr finder's restore), which copies the groups.
    """
    lr_tensor = S.extras.get("lr_tensor")
    if lr_tensor is None:
        return
    for group in S.optimizer.param_groups:
        if group["lr"] is not lr_tensor:
            lr_tensor.fill_(float(group["lr"]))
            group["lr"] = lr_tensor


def step_scheduler(S: Scenario) -> None:
    S.scheduler.step()
    pin_lr_tensor(S)


# ----------------------------------------------------------------------------- steppers
class EagerStepper:
    """One optimisation step per batch, in plain PyTorch."""

    def __init__(self, S: Scenario):
        self.S = S
        self.loss_sum = torch.zeros((), device=S.device)
        self.correct = torch.zeros((), dtype=torch.long, device=S.device)

    def step(self, x: torch.Tensor, y: torch.Tensor, set_to_none: bool = True) -> None:
        S = self.S
        out, loss = forward_loss(S, x, y)
        S.optimizer.zero_grad(set_to_none=set_to_none)
        loss.backward()
        S.optimizer.step()
        self.loss_sum += loss.detach() * len(y)
        self.correct += count_correct(out.detach(), y, S.task)

    def after_step(self) -> None:
        if self.S.scheduler_per_batch:
            step_scheduler(self.S)

    def run_epoch(self, should_stop: ShouldStop) -> int:
        """Train one epoch; returns the number of samples seen (metrics stay on the device)."""
        self.S.model.train()
        self.loss_sum.zero_()
        self.correct.zero_()
        seen = 0
        for x, y in self.S.train_loader:
            if should_stop is not None and should_stop():
                raise StopTraining()
            self.step(x, y)
            self.after_step()
            seen += len(y)
        return seen


class GraphStepper(EagerStepper):
    """The full-batch train step (gather, forward, backward, optimizer) replayed as one CUDA graph.

    The graph reads the batch indices from this epoch's permutation at a device-side position
    counter, so a replay needs no host work at all. The last partial batch runs eagerly.
    """

    WARMUP_STEPS = 3     # eager steps on a side stream before capture, so the optimizer state exists
    # One capture at a time in the process: entering a capture synchronizes the whole device, which
    # would invalidate a capture another worker thread has under way.
    CAPTURE_LOCK = threading.Lock()

    def __init__(self, S: Scenario):
        super().__init__(S)
        self.warm_steps = 0          # warm-up steps taken (real steps of the first epoch)
        loader = S.train_loader
        self.batch_size = loader.batch_size
        self.full_batches = loader.num_samples // self.batch_size
        self.order = torch.arange(loader.num_samples, device=S.device)
        self.position = torch.zeros((), dtype=torch.long, device=S.device)
        self.offsets = torch.arange(self.batch_size, device=S.device)
        self.graph: torch.cuda.CUDAGraph | None = None

    def _graph_body(self) -> None:
        loader, S = self.S.train_loader, self.S
        idx = self.order.index_select(0, self.position * self.batch_size + self.offsets)
        self.position += 1
        x = loader.transform(loader.x.index_select(0, idx))
        y = loader.y.index_select(0, idx)
        out, loss = forward_loss(S, x, y)
        loss.backward()
        S.optimizer.step()
        self.loss_sum += loss.detach() * self.batch_size
        self.correct += count_correct(out.detach(), y, S.task)

    def _capture(self) -> None:
        S = self.S
        side = torch.cuda.Stream(device=S.device)
        side.wait_stream(torch.cuda.current_stream(S.device))
        with torch.cuda.stream(side):
            while self.warm_steps < self.WARMUP_STEPS:   # real steps: these batches count for the epoch
                S.optimizer.zero_grad(set_to_none=True)
                self._graph_body()
                self.after_step()
                self.warm_steps += 1
        torch.cuda.current_stream(S.device).wait_stream(side)
        S.optimizer.zero_grad(set_to_none=True)
        graph = torch.cuda.CUDAGraph()
        # Its own capture stream (torch's default one is shared by every thread) and thread_local
        # errors: the other runs of a sweep keep training in their threads during this capture.
        with self.CAPTURE_LOCK, torch.cuda.graph(graph, stream=side, capture_error_mode="thread_local"):
            self._graph_body()
        self.graph = graph

    def _give_up_graph(self, exc: Exception) -> None:
        """Capture failed: say why, and train eagerly from here on (no batch repeated or skipped)."""
        self.S.graph_reason = f"capture failed: {type(exc).__name__}: {exc}"
        log.warning("%s: CUDA graph not used, %s", self.S.spec.name, self.S.graph_reason)
        torch.cuda.synchronize(self.S.device)

    def run_epoch(self, should_stop: ShouldStop) -> int:
        S, loader = self.S, self.S.train_loader
        S.model.train()
        self.loss_sum.zero_()
        self.correct.zero_()
        self.position.zero_()
        order = loader.epoch_order()
        self.order.copy_(order if order is not None else torch.arange(loader.num_samples, device=S.device))
        done = 0
        if self.graph is None and self.S.uses_cuda_graph:
            try:
                self._capture()
            except Exception as exc:
                self._give_up_graph(exc)
            done = self.warm_steps          # the first epoch's warm-up batches are already trained
        for batch in range(done, self.full_batches):
            if should_stop is not None and should_stop():
                raise StopTraining()
            if self.graph is not None:
                self.graph.replay()
            else:
                idx = self.order[batch * self.batch_size:(batch + 1) * self.batch_size]
                self.step(loader.transform(loader.x[idx]), loader.y[idx], set_to_none=False)
            self.after_step()
        seen = self.full_batches * self.batch_size
        remainder = loader.num_samples - seen
        if remainder and not loader.drop_last:
            idx = self.order[seen:]
            # set_to_none=False: the graph owns the .grad buffers, an eager step must reuse them
            self.step(loader.transform(loader.x[idx]), loader.y[idx], set_to_none=False)
            self.after_step()
            seen += remainder
        return seen


def make_stepper(S: Scenario) -> EagerStepper:
    if S.uses_cuda_graph:
        return GraphStepper(S)
    return EagerStepper(S)


# ----------------------------------------------------------------------------- the loop
def fit(S: Scenario, should_stop: ShouldStop = None, start_epoch: int = 1) -> Iterator[dict]:
    """Yield one metrics record per epoch from start_epoch to S.epochs; raise Diverged or StopTraining."""
    stepper = make_stepper(S)
    for epoch in range(start_epoch, S.epochs + 1):
        started = time.perf_counter()
        lr = current_lr(S.optimizer)
        seen = stepper.run_epoch(should_stop)
        train_loss, train_right = torch.stack([stepper.loss_sum, stepper.correct.to(stepper.loss_sum.dtype)]).tolist()
        train_loss /= max(seen, 1)
        val_loss, val_acc = evaluate(S, S.valid_loader)
        if S.scheduler is not None and not S.scheduler_per_batch:
            step_scheduler(S)
        if not (math.isfinite(train_loss) and math.isfinite(val_loss)):
            raise Diverged(epoch, train_loss if not math.isfinite(train_loss) else val_loss)
        seconds = time.perf_counter() - started
        yield {"epoch": epoch, "train_loss": train_loss,
               "train_acc": math.nan if S.task == "regression" else train_right / max(seen, 1),
               "val_loss": val_loss, "val_acc": val_acc, "lr": lr, "seconds": seconds,
               "samples_per_s": seen / seconds if seconds > 0 else math.nan}


def engine_name(S: Scenario) -> str:
    return "cuda-graph" if S.uses_cuda_graph else f"eager ({S.graph_reason})"


def train(S: Scenario, on_epoch: Callable[[dict], None] | None = None, should_stop: ShouldStop = None,
          resume: bool = False) -> History:
    """Run the scenario to its end, with early stopping and the best checkpoint; never raises for a run's failure.

    With S.log_folder set, the run folder is kept up to date every epoch (see store.RunRecorder).
    resume=True continues from the folder's checkpoint_best.pth at the epoch after it.
    """
    from .store import RunRecorder, load_checkpoint   # the store imports this module's History

    history = History(engine=engine_name(S))
    recorder = RunRecorder(S.log_folder, S.spec) if S.log_folder else None
    patience = S.spec.early_stopping_patience
    best_state: dict | None = None
    bad_epochs = 0
    start_epoch = 1
    try:
        if resume:
            if recorder is None:
                raise ValueError("resume needs the scenario's log_folder with its checkpoint_best.pth")
            checkpoint = load_checkpoint(S)
            pin_lr_tensor(S)
            start_epoch = checkpoint["epoch"] + 1
            history.best_epoch, history.best_val_loss = checkpoint["epoch"], checkpoint["best_loss"]
            history.records = recorder.previous_records(up_to_epoch=checkpoint["epoch"])
            best_state = copy.deepcopy(S.model.state_dict())
        if recorder:
            recorder.started(history, resumed_from=start_epoch - 1 if resume else None)
        for record in fit(S, should_stop, start_epoch):
            history.records.append(record)
            if history.best_val_loss is None or record["val_loss"] < history.best_val_loss:
                history.best_epoch, history.best_val_loss = record["epoch"], record["val_loss"]
                bad_epochs = 0
                if patience:
                    best_state = {k: v.detach().clone() for k, v in S.model.state_dict().items()}
                if recorder:
                    recorder.save_checkpoint(S, record["epoch"], record["val_loss"])
            else:
                bad_epochs += 1
            if recorder:
                recorder.epoch_done(record, history)
            if on_epoch:
                on_epoch(record)
            if patience and bad_epochs >= patience:
                history.early_stopped = True
                break
        if patience and best_state is not None:
            S.model.load_state_dict(best_state)     # early stopping hands back the best epoch's weights
        history.test_loss, history.test_acc = evaluate(S, S.test_loader)
        if S.task == "regression":
            history.test_acc = None
        history.state = "finished"
    except StopTraining:
        history.state = "stopped"
    except Diverged as exc:
        history.state, history.error = "diverged", str(exc)
    except Exception as exc:  # a run's failure is recorded, never raised into the runner's thread
        history.state = "failed"
        history.error = f"{type(exc).__name__}: {exc}"
        log.debug("run %s failed\n%s", S.spec.name, traceback.format_exc())
    finally:
        history.engine = engine_name(S)
        if recorder:
            recorder.finished(history)
    return history
