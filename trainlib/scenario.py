"""The scenario: everything one training run needs, as the course names it.

    S = create_scenario(dataset="mnist", lr=1e-3, dropout=0.2)      # or create_scenario(spec, epochs=3)
    S.model, S.loss_fn, S.optimizer, S.scheduler, S.train_loader, S.valid_loader, S.test_loader,
    S.device, S.epochs, S.batch_size, S.log_folder, S.spec
    history = train(S)

A new scenario for every run: create_scenario builds fresh model and optimizer objects each call.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .data import DataBundle, DeviceLoader, load_data, make_loaders
from .models import build_model
from .spec import ScenarioSpec, SpecError, derived_seed

# Which losses fit which task; the first one is what 'auto' picks.
LOSSES_FOR_TASK = {"multiclass": ("cross_entropy",), "binary": ("bce", "cross_entropy"), "regression": ("mse",)}
# Seeding and building are one critical section for scenarios built in threads of one process (a
# notebook, the comparison-only thread executor): those share torch's global generator.
_INIT_LOCK = threading.Lock()


@dataclass
class Scenario:
    spec: ScenarioSpec
    model: nn.Module
    loss_fn: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any                      # an LRScheduler or None
    scheduler_per_batch: bool           # one-cycle steps every batch, the others every epoch
    train_loader: Any
    valid_loader: Any
    test_loader: Any
    device: torch.device
    epochs: int
    batch_size: int
    log_folder: Path | None
    data: DataBundle
    task: str
    loss_name: str
    graph_reason: str = ""              # why the train step is not a CUDA graph ("" = it will try one)
    extras: dict = field(default_factory=dict)

    @property
    def uses_cuda_graph(self) -> bool:
        return not self.graph_reason


def resolve_device(requested: str) -> torch.device:
    if requested == "cuda" and not torch.cuda.is_available():
        raise SpecError("device", "'cuda' was asked for but no CUDA GPU is visible; use 'auto' or 'cpu'")
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def resolve_loss(spec: ScenarioSpec, task: str) -> str:
    allowed = LOSSES_FOR_TASK[task]
    if spec.loss == "auto":
        return allowed[0]
    if spec.loss not in allowed:
        raise SpecError("loss", f"{spec.loss!r} does not fit a {task} task (dataset {spec.dataset!r}); "
                                f"allowed: auto, {', '.join(allowed)}")
    return spec.loss


def build_loss(loss_name: str) -> nn.Module:
    return {"cross_entropy": nn.CrossEntropyLoss, "bce": nn.BCEWithLogitsLoss, "mse": nn.MSELoss}[loss_name]()


def num_outputs(loss_name: str, bundle: DataBundle) -> int:
    if loss_name == "cross_entropy":
        return bundle.num_classes
    if loss_name == "bce":
        return 1
    return bundle.train.y.shape[1] if bundle.train.y.ndim > 1 else 1


def graph_blocker(spec: ScenarioSpec, device: torch.device, train_loader: Any) -> str:
    """'' when the train step can be captured as a CUDA graph, else the reason it cannot."""
    if not spec.cuda_graph:
        return "cuda_graph is off in the scenario"
    if device.type != "cuda":
        return f"device is {device.type}, CUDA graphs need a GPU"
    if not isinstance(train_loader, DeviceLoader):
        return "resident_data is off: batches come from a host DataLoader"
    if train_loader.num_samples // spec.batch_size < 4:
        return "fewer than 4 full batches per epoch: nothing to gain from a graph"
    return ""


def build_optimizer(spec: ScenarioSpec, model: nn.Module, graphed: bool) -> torch.optim.Optimizer:
    # A graph bakes Python floats into its kernels, so a graphed step reads lr from a device tensor
    # (schedulers fill it in place) and uses the fused kernels, which keep their step count on the GPU.
    # Adam/AdamW also refuse to be captured unless capturable=True (fused alone is not enough).
    lr: float | torch.Tensor = spec.lr
    extra: dict[str, Any] = {}
    device = next(model.parameters()).device
    if graphed:
        lr = torch.tensor(spec.lr, device=device)
        extra = {"fused": True} if spec.optimizer == "sgd" else {"fused": True, "capturable": True}
    elif device.type == "cpu":
        # One fused kernel per step instead of a loop of small ops: ~20 % less time per MLP epoch here.
        extra = {"fused": True}
    params = model.parameters()
    if spec.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=spec.weight_decay, **extra)
    if spec.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=spec.weight_decay, **extra)
    return torch.optim.SGD(params, lr=lr, momentum=spec.momentum, weight_decay=spec.weight_decay, **extra)


def build_scheduler(spec: ScenarioSpec, optimizer: torch.optim.Optimizer, steps_per_epoch: int):
    """(scheduler, steps per batch?) for the spec's schedule; (None, False) for 'none'."""
    sched = torch.optim.lr_scheduler
    if spec.scheduler == "linear":
        # Stepped after each epoch: the last epoch trains at lr_end.
        return sched.LinearLR(optimizer, start_factor=1.0, end_factor=spec.lr_end / spec.lr,
                              total_iters=max(spec.epochs - 1, 1)), False
    if spec.scheduler == "cosine":
        return sched.CosineAnnealingLR(optimizer, T_max=max(spec.epochs - 1, 1), eta_min=spec.lr_end), False
    if spec.scheduler == "onecycle":
        # Momentum cycling would rewrite Adam's betas, which a captured graph holds as constants.
        return sched.OneCycleLR(optimizer, max_lr=spec.lr, total_steps=spec.epochs * max(steps_per_epoch, 1),
                                cycle_momentum=False), True
    return None, False


def create_scenario(spec: ScenarioSpec | dict | None = None, log_folder: str | Path | None = None,
                    **overrides: Any) -> Scenario:
    """Build a fresh scenario from a spec (or its dict) plus field overrides."""
    if spec is None:
        spec = ScenarioSpec()
    elif isinstance(spec, dict):
        spec = ScenarioSpec.from_dict(spec)
    if overrides:
        spec = spec.replace(**overrides)
    device = resolve_device(spec.device)
    bundle = load_data(spec)
    loss_name = resolve_loss(spec, bundle.task)
    train_loader, valid_loader, test_loader = make_loaders(bundle, spec, device)
    reason = graph_blocker(spec, device, train_loader)
    with _INIT_LOCK:
        # The global generators: the layers' initial weights and then dropout's masks come from
        # them. The runner trains each run in a process of its own, so the whole run is reproducible
        # from its seed; runs trained at once in threads of one process share these generators.
        torch.manual_seed(derived_seed(spec.seed, "init"))
        model = build_model(spec, bundle.input_shape, num_outputs(loss_name, bundle))
    model = model.to(device)
    if spec.channels_last and bundle.is_image:
        model = model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(spec, model, graphed=not reason)
    scheduler, per_batch = build_scheduler(spec, optimizer, len(train_loader))
    lr = optimizer.param_groups[0]["lr"]
    extras = {"lr_tensor": lr} if isinstance(lr, torch.Tensor) else {}
    return Scenario(spec=spec, model=model, loss_fn=build_loss(loss_name), optimizer=optimizer,
                    scheduler=scheduler, scheduler_per_batch=per_batch, train_loader=train_loader,
                    valid_loader=valid_loader, test_loader=test_loader, device=device, epochs=spec.epochs,
                    batch_size=spec.batch_size, log_folder=Path(log_folder) if log_folder else None,
                    data=bundle, task=bundle.task, loss_name=loss_name, graph_reason=reason,
                    extras=extras)
