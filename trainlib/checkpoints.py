"""A run's two checkpoints, and putting a scenario back where one left it.

    save_best(folder, S, epoch, val_loss)    # checkpoint_best.pth: the course's {epoch, best_loss, model_state, optim_state}
    save_last(folder, S, history, ...)       # checkpoint_last.pth: everything a resume needs, every epoch
    checkpoint = restore(S, folder)          # model, optimizer, scheduler, random generators; returns the dict

Both are written to a temporary file and renamed, so a kill never leaves half a checkpoint.
"""
from __future__ import annotations

import os
import uuid
from pathlib import Path

import torch

from .history import History
from .runfiles import CHECKPOINT, LAST_CHECKPOINT
# Optimizer settings that belong to how this process builds the optimizer, not to the run's
# history: a checkpoint of an eager run resumed on a GPU must still capture a graph (capturable),
# and one from a GPU must still load on a CPU. load_state_dict would copy them from the file.
BUILD_SETTINGS = ("capturable", "fused", "foreach", "differentiable")


def _save(state: dict, path: Path) -> None:
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def save_best(folder: Path, S, epoch: int, best_loss: float) -> None:
    _save({"epoch": epoch, "best_loss": best_loss, "model_state": S.model.state_dict(),
           "optim_state": S.optimizer.state_dict(),
           "scheduler_state": S.scheduler.state_dict() if S.scheduler is not None else None,
           "spec": S.spec.to_dict()}, Path(folder) / CHECKPOINT)


def rng_states(S) -> dict:
    """Every random generator the rest of the run draws from: dropout (the global generators; a run
    has its process to itself) and the batch order is a function of the epoch (data.py)."""
    states = {"torch": torch.get_rng_state()}
    if S.device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state(S.device)
    return states


def save_last(folder: Path, S, history: History, bad_epochs: int, best_model_state: dict | None) -> None:
    last = history.records[-1]
    _save({"epoch": last["epoch"], "best_epoch": history.best_epoch, "best_loss": history.best_val_loss,
           "bad_epochs": bad_epochs, "early_stopped": history.early_stopped,
           "model_state": S.model.state_dict(), "optim_state": S.optimizer.state_dict(),
           "scheduler_state": S.scheduler.state_dict() if S.scheduler is not None else None,
           "best_model_state": best_model_state, "rng": rng_states(S),
           "records": [dict(r) for r in history.records], "spec": S.spec.to_dict()},
          Path(folder) / LAST_CHECKPOINT)


def load_optimizer_state(optimizer: torch.optim.Optimizer, state: dict) -> None:
    """optimizer.load_state_dict(state), keeping this optimizer's own build settings (BUILD_SETTINGS)."""
    kept = [{key: group[key] for key in BUILD_SETTINGS if key in group} for group in optimizer.param_groups]
    optimizer.load_state_dict(state)
    for group, settings in zip(optimizer.param_groups, kept):
        group.update(settings)
    if any(settings.get("capturable") or settings.get("fused") for settings in kept):
        # A capturable or fused optimizer keeps its step counts on the parameters' device.
        for param_state in optimizer.state.values():
            step = param_state.get("step")
            if isinstance(step, torch.Tensor):
                device = next((v.device for v in param_state.values()
                               if isinstance(v, torch.Tensor) and v.ndim > 0), step.device)
                param_state["step"] = step.to(device=device, dtype=torch.float32)


def load(path: Path, device) -> dict:
    return torch.load(path, map_location=device, weights_only=True)


def restore(S, folder: Path | None = None) -> dict:
    """Put S where its folder's last checkpoint (else its best one) left it; return that checkpoint.

    Restores model, optimizer (keeping this process's build settings), scheduler and, from a last
    checkpoint, the random generators. Raises FileNotFoundError when the run never finished an epoch.
    """
    folder = Path(folder or S.log_folder)
    path = folder / LAST_CHECKPOINT
    if not path.exists():
        path = folder / CHECKPOINT            # a run from before checkpoint_last.pth: its best epoch
    if not path.exists():
        raise FileNotFoundError(f"no {LAST_CHECKPOINT} or {CHECKPOINT} in {folder}: the run never finished an epoch")
    checkpoint = load(path, S.device)
    S.model.load_state_dict(checkpoint["model_state"])
    load_optimizer_state(S.optimizer, checkpoint["optim_state"])
    if S.scheduler is not None and checkpoint.get("scheduler_state"):
        S.scheduler.load_state_dict(checkpoint["scheduler_state"])
    rng = checkpoint.get("rng") or {}
    if "torch" in rng:
        torch.set_rng_state(rng["torch"].cpu())
    if "cuda" in rng and S.device.type == "cuda":
        torch.cuda.set_rng_state(rng["cuda"].cpu(), S.device)
    checkpoint["source"] = path.name
    return checkpoint
