"""The course's learning-rate finder: train briefly while the lr grows exponentially, watch the loss.

    S = create_scenario(dataset="mnist")
    result = find_lr(S, start_lr=1e-7, end_lr=10, num_steps=200)
    result.frame          # DataFrame: step, lr, loss, smoothed_loss
    result.suggested_lr   # lr at the steepest descent of the smoothed loss

The model and optimizer are put back as they were afterwards, so S can still be trained.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import pandas as pd
import torch

from .loop import forward_loss, pin_lr_tensor
from .scenario import Scenario


@dataclass
class LRFinderResult:
    frame: pd.DataFrame
    suggested_lr: float | None
    stopped_early: bool       # the loss blew up before end_lr


def _set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        if isinstance(group["lr"], torch.Tensor):
            group["lr"].fill_(lr)
        else:
            group["lr"] = lr


def find_lr(S: Scenario, start_lr: float = 1e-7, end_lr: float = 10.0, num_steps: int = 200,
            smoothing: float = 0.05, diverge_factor: float = 4.0) -> LRFinderResult:
    if not (0 < start_lr < end_lr):
        raise ValueError(f"start_lr/end_lr: need 0 < start_lr < end_lr, got {start_lr} and {end_lr}")
    if num_steps < 10:
        raise ValueError(f"num_steps: need at least 10 steps, got {num_steps}")
    saved_model = copy.deepcopy(S.model.state_dict())
    saved_optim = copy.deepcopy(S.optimizer.state_dict())
    factor = (end_lr / start_lr) ** (1 / (num_steps - 1))
    lrs, losses = [], []
    best, smoothed, stopped_early = math.inf, 0.0, False
    S.model.train()
    step = 0
    try:
        while step < num_steps:
            for x, y in S.train_loader:
                lr = start_lr * factor ** step
                _set_lr(S.optimizer, lr)
                _, loss = forward_loss(S, x, y)
                S.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                S.optimizer.step()
                # One value per step is the point of this tool; a few hundred syncs are fine here.
                value = loss.item()
                smoothed = value if step == 0 else smoothing * value + (1 - smoothing) * smoothed
                lrs.append(lr)
                losses.append(value)
                best = min(best, smoothed)
                step += 1
                if not math.isfinite(smoothed) or smoothed > diverge_factor * best:
                    stopped_early = True
                    break
                if step >= num_steps:
                    break
            if stopped_early:
                break
    finally:
        S.model.load_state_dict(saved_model)
        S.optimizer.load_state_dict(saved_optim)
        pin_lr_tensor(S)
    frame = pd.DataFrame({"step": range(len(lrs)), "lr": lrs, "loss": losses})
    frame["smoothed_loss"] = frame["loss"].ewm(alpha=smoothing, adjust=False).mean()
    return LRFinderResult(frame, suggest_lr(frame), stopped_early)


def suggest_lr(frame: pd.DataFrame) -> float | None:
    """The lr where the smoothed loss falls fastest (per log-lr) on its way down to its minimum,
    ignoring the noisy ends. Past the minimum the loss is blowing up: a fall there is a rebound
    of a diverging model, never a learning rate to use."""
    usable = frame[frame["smoothed_loss"].map(math.isfinite)]
    if len(usable) < 10:
        return None
    usable = usable.loc[:usable["smoothed_loss"].idxmin()]
    if len(usable) < 10:
        return None
    trimmed = usable.iloc[len(usable) // 10: -max(1, len(usable) // 20)]
    slope = trimmed["smoothed_loss"].diff() / trimmed["lr"].map(math.log).diff()
    if slope.dropna().empty:
        return None
    return float(trimmed.loc[slope.idxmin(), "lr"])
