"""The training loop: a generator of per-epoch records, and train(S) around it.

    history = train(S)                                  # writes S.log_folder when it is set
    history = train(S, callbacks=[OnEpoch(print)])      # the loop's concerns are callbacks (callbacks.py)
    for record in fit(S): print(record["val_loss"])     # the bare loop, no files, no early stopping

The loop returns values, it never prints. Metrics are summed on the device and read once per
epoch (one host sync), never with .item() per batch.
"""
from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
import traceback
from typing import Callable, Iterable, Iterator

import torch
from torch import nn

from .callbacks import BestEpoch, Callback, OnEpoch, StopWhen, TrainingRun
from .history import METRIC_COLUMNS, History  # noqa: F401 (METRIC_COLUMNS: part of this module's API)
from .scenario import Scenario

log = logging.getLogger("trainlib")
ShouldStop = Callable[[], bool] | None


class StopTraining(Exception):
    """should_stop() said so between two batches."""


class Diverged(Exception):
    def __init__(self, epoch: int, value: float):
        super().__init__(f"loss became {value} at epoch {epoch}")
        self.epoch = epoch


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

    def close(self) -> None:
        """Called when the loop ends, however it ends."""

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
        self.side: torch.cuda.Stream | None = None      # the capture's stream, made by _capture

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

    def synchronize(self) -> None:
        """Wait for this run's own streams only (never the whole device): before its tensors are
        freed after a stop or a failed capture."""
        if self.S.device.type != "cuda":
            return
        if self.side is not None:
            self.side.synchronize()
        torch.cuda.current_stream(self.S.device).synchronize()

    def close(self) -> None:
        self.synchronize()

    def _capture(self) -> None:
        S = self.S
        self.side = side = torch.cuda.Stream(device=S.device)
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
        self.synchronize()

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
    try:
        for epoch in range(start_epoch, S.epochs + 1):
            yield _train_epoch(S, stepper, epoch, should_stop)
    finally:
        stepper.close()


def _train_epoch(S: Scenario, stepper: EagerStepper, epoch: int, should_stop: ShouldStop) -> dict:
    started = time.perf_counter()
    lr = current_lr(S.optimizer)
    set_epoch = getattr(S.train_loader, "set_epoch", None)
    if set_epoch is not None:
        set_epoch(epoch)          # the batch order is a function of (seed, epoch): a resume continues it
    seen = stepper.run_epoch(should_stop)
    train_loss, train_right = torch.stack([stepper.loss_sum, stepper.correct.to(stepper.loss_sum.dtype)]).tolist()
    train_loss /= max(seen, 1)
    val_loss, val_acc = evaluate(S, S.valid_loader)
    if S.scheduler is not None and not S.scheduler_per_batch:
        step_scheduler(S)
    if not (math.isfinite(train_loss) and math.isfinite(val_loss)):
        raise Diverged(epoch, train_loss if not math.isfinite(train_loss) else val_loss)
    seconds = time.perf_counter() - started
    return {"epoch": epoch, "train_loss": train_loss,
            "train_acc": math.nan if S.task == "regression" else train_right / max(seen, 1),
            "val_loss": val_loss, "val_acc": val_acc, "lr": lr, "seconds": seconds,
            "samples_per_s": seen / seconds if seconds > 0 else math.nan}


def engine_name(S: Scenario) -> str:
    return "cuda-graph" if S.uses_cuda_graph else f"eager ({S.graph_reason})"


def train(S: Scenario, on_epoch: Callable[[dict], None] | None = None, should_stop: ShouldStop = None,
          resume: bool = False, callbacks: Iterable[Callback] = ()) -> History:
    """Run the scenario to its end; never raises for a run's failure (History.state says it).

    With S.log_folder set, the folder is kept whole every epoch (recording.py): metrics, both
    checkpoints, TensorBoard, status with a heartbeat, and stop requests honoured. resume=True
    continues after the last finished epoch of the folder's checkpoint_last.pth (or, for runs
    written before it existed, after the best epoch of checkpoint_best.pth).
    """
    from . import checkpoints
    from .recording import folder_callbacks

    history = History(engine=engine_name(S))
    run = TrainingRun(S, history)
    best = BestEpoch(S.spec.early_stopping_patience)
    everything: list[Callback] = [best]
    if S.log_folder:
        everything += folder_callbacks(S.log_folder, S.spec, best)
    everything += list(callbacks)
    if on_epoch is not None:
        everything.append(OnEpoch(on_epoch))
    if should_stop is not None:
        everything.append(StopWhen(should_stop))

    def stop_now() -> bool:
        return any(callback.should_stop() for callback in everything)

    started = []
    try:
        if resume:
            if not S.log_folder:
                raise ValueError("resume needs the scenario's log_folder with its checkpoints")
            run.checkpoint = checkpoints.restore(S)
            pin_lr_tensor(S)
            run.start_epoch = run.checkpoint["epoch"] + 1
            history.records = _records_up_to(S.log_folder, run.checkpoint)
        for callback in everything:
            callback.before_fit(run)
            started.append(callback)
        if not history.early_stopped:
            for record in fit(S, stop_now, run.start_epoch):
                history.records.append(record)
                for callback in everything:
                    callback.after_epoch(run, record)
                if run.early_stop:
                    break
        for callback in everything:
            callback.before_test(run)
        history.test_loss, history.test_acc = evaluate(S, S.test_loader)
        if S.task == "regression":
            history.test_acc = None
        history.state = "finished"
    except StopTraining:
        history.state = "stopped"
    except Diverged as exc:
        history.state, history.error = "diverged", str(exc)
    except Exception as exc:  # a run's failure is recorded, never raised into whoever runs it
        history.state = "failed"
        history.error = f"{type(exc).__name__}: {exc}"
        log.debug("run %s failed\n%s", S.spec.name, traceback.format_exc())
    finally:
        history.engine = engine_name(S)
        for callback in started:
            try:
                callback.after_fit(run)
            except Exception:      # one callback's trouble must not hide the others' final writes
                log.exception("run %s: %s.after_fit failed", S.spec.name, type(callback).__name__)
    return history


def _records_up_to(folder, checkpoint: dict) -> list[dict]:
    """The metrics rows of the epochs a checkpoint holds: its own copy (a last checkpoint), else
    metrics.csv's rows up to its epoch (a best checkpoint from before checkpoint_last.pth)."""
    if checkpoint.get("records") is not None:
        return [dict(r) for r in checkpoint["records"]]
    from .runfiles import read_metrics_rows
    return read_metrics_rows(folder, up_to_epoch=checkpoint["epoch"])
