"""Looking inside one finished run: its best weights, predictions, confusion matrix, decision boundary.

    S = load_trained("runs/20250101-120000-baseline-ab12")     # the best epoch's weights, on the CPU
    outputs, targets = predict(S, "test")
    cm = confusion_matrix(targets, predicted_labels(outputs), S.data.num_classes, S.data.class_names)
    report = analyze_run("runs/20250101-120000-baseline-ab12")   # all of it as numpy/pandas, no torch

Everything here reads a run folder and returns values; nothing writes to it, and nothing is created
anywhere: a torchvision dataset whose files are not under data_dir is an error (DatasetUnavailable,
"the dataset files are not in DIR"), never a download.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from .data import load_data, prepare_inputs, require_dataset_files
from .loop import predicted_labels
from .models import build_model, count_parameters, summarize
from .scenario import Scenario, create_scenario, num_outputs, resolve_loss
from .spec import ScenarioSpec
from .store import CHECKPOINT, read_json

SPLITS = ("train", "val", "test")
PREDICT_BATCH = 4096      # samples per forward pass: inference keeps no activations, so big is cheap


def load_trained(run_folder: str | Path, device: str = "cpu") -> Scenario:
    """The run's scenario rebuilt from scenario.json, with the weights of checkpoint_best.pth.

    These are the weights of the epoch with the lowest validation loss (the best epoch), not
    necessarily those of the last epoch: summary.json's test_acc was measured on the last
    epoch's weights unless early stopping handed back the best ones. The epoch they come from is
    in S.extras['checkpoint_epoch']. The model is left in eval mode.
    """
    folder = Path(run_folder)
    path = folder / CHECKPOINT
    if not path.is_file():
        raise FileNotFoundError(f"no {CHECKPOINT} in {folder}: the run never finished an epoch")
    spec = ScenarioSpec.from_dict(read_json(folder / "scenario.json"))
    require_dataset_files(spec.dataset, spec.data_dir)
    # No CUDA graph and plain fp32 inputs: this scenario is only evaluated, never trained.
    S = create_scenario(spec.replace(device=device, cuda_graph=False), log_folder=folder)
    checkpoint = torch.load(path, map_location=S.device, weights_only=True)
    S.model.load_state_dict(checkpoint["model_state"])
    S.model.eval()
    S.extras["checkpoint_epoch"] = checkpoint.get("epoch")
    S.extras["checkpoint_val_loss"] = checkpoint.get("best_loss")
    return S


def _split(S: Scenario, split: str):
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    return getattr(S.data, split)


@torch.no_grad()
def predict(S: Scenario, split: str = "test") -> tuple[torch.Tensor, torch.Tensor]:
    """(model outputs, targets) for a whole split, on the CPU, computed in eval mode in big batches."""
    data = _split(S, split)
    S.model.eval()
    outputs = []
    for start in range(0, len(data), PREDICT_BATCH):
        x = prepare_inputs(data.x[start:start + PREDICT_BATCH].to(S.device))
        outputs.append(S.model(x).float().cpu())
    if not outputs:
        return torch.empty(0, 1), data.y.clone()
    return torch.cat(outputs), data.y.clone()


def positive_probability(outputs: torch.Tensor) -> torch.Tensor:
    """P(class 1) of a binary model, whether it has one logit (BCE) or two (cross-entropy)."""
    if outputs.shape[1] == 1:
        return torch.sigmoid(outputs.squeeze(1))
    return torch.softmax(outputs, dim=1)[:, 1]


def _as_numpy(values: Any) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    return np.asarray(values).astype(np.int64).ravel()


def _names(num_classes: int, class_names: Sequence[str] | None) -> list[str]:
    if class_names is not None and len(class_names) == num_classes:
        return [str(name) for name in class_names]
    return [str(i) for i in range(num_classes)]


def confusion_matrix(y_true: Any, y_pred: Any, num_classes: int,
                     class_names: Sequence[str] | None = None) -> pd.DataFrame:
    """Counts: rows are the true classes, columns the predicted ones (index/columns named by class)."""
    true, pred = _as_numpy(y_true), _as_numpy(y_pred)
    if true.shape != pred.shape:
        raise ValueError(f"y_true has {true.size} labels but y_pred has {pred.size}")
    if true.size and (min(true.min(), pred.min()) < 0 or max(true.max(), pred.max()) >= num_classes):
        raise ValueError(f"labels must be in [0, {num_classes})")
    counts = np.bincount(true * num_classes + pred, minlength=num_classes * num_classes)
    names = _names(num_classes, class_names)
    frame = pd.DataFrame(counts.reshape(num_classes, num_classes), index=names, columns=names)
    frame.index.name, frame.columns.name = "true", "predicted"
    return frame


def per_class_accuracy(y_true: Any, y_pred: Any, num_classes: int,
                       class_names: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per class: class, samples, correct, accuracy in [0, 1] (NaN for a class with no samples)."""
    cm = confusion_matrix(y_true, y_pred, num_classes, class_names).to_numpy()
    samples = cm.sum(axis=1)
    correct = np.diag(cm)
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.where(samples > 0, correct / np.maximum(samples, 1), np.nan)
    return pd.DataFrame({"class": _names(num_classes, class_names), "samples": samples,
                         "correct": correct, "accuracy": accuracy})


def _image_for_display(pixels: torch.Tensor) -> np.ndarray:
    """(C, H, W) uint8 -> (H, W) for one channel, (H, W, C) otherwise, as st.image wants it."""
    array = pixels.cpu().numpy()
    if array.dtype != np.uint8:
        array = np.clip(array * 255, 0, 255).astype(np.uint8)
    return array[0] if array.shape[0] == 1 else np.transpose(array, (1, 2, 0))


def misclassified(S: Scenario, limit: int = 32, split: str = "test") -> list[tuple[np.ndarray, str, str]]:
    """Up to `limit` wrongly classified images of a split, in split order: (uint8 image, true name, predicted name)."""
    if not S.data.is_image:
        raise ValueError(f"dataset {S.spec.dataset!r} is not images")
    return _wrong_images(S, *predict(S, split), limit=limit, split=split)


def _wrong_images(S: Scenario, outputs: torch.Tensor, targets: torch.Tensor, limit: int, split: str) -> list:
    predicted = predicted_labels(outputs)
    wrong = torch.nonzero(predicted != targets).flatten()[:limit]
    names = _names(S.data.num_classes, S.data.class_names)
    images = _split(S, split).x
    return [(_image_for_display(images[i]), names[int(targets[i])], names[int(predicted[i])]) for i in wrong.tolist()]


def _require_points(S: Scenario) -> None:
    if S.data.input_shape != (2,) or S.task == "regression":
        raise ValueError(f"dataset {S.spec.dataset!r} is not 2-D points with classes")


@torch.no_grad()
def decision_grid(S: Scenario, resolution: int = 150, margin: float = 0.1
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(xs, ys, prob) over the box around all the data: xs and ys are the 1-D axes (resolution values
    each), prob[i, j] is the model's P(class 1) at (xs[j], ys[i]). Binary 2-D point datasets only."""
    _require_points(S)
    every = torch.cat([S.data.train.x, S.data.val.x, S.data.test.x]).float()
    low, high = every.min(0).values, every.max(0).values
    pad = (high - low) * margin
    low, high = low - pad, high + pad
    xs = torch.linspace(float(low[0]), float(high[0]), resolution)
    ys = torch.linspace(float(low[1]), float(high[1]), resolution)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    points = torch.stack([grid_x.flatten(), grid_y.flatten()], dim=1)
    S.model.eval()
    probs = [positive_probability(S.model(points[i:i + PREDICT_BATCH].to(S.device)).float()).cpu()
             for i in range(0, len(points), PREDICT_BATCH)]
    prob = torch.cat(probs).reshape(resolution, resolution)
    return xs.numpy(), ys.numpy(), prob.numpy()


def data_points(S: Scenario, split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """(xy of shape (N, 2), labels of shape (N,)) of a 2-D point dataset's split, to draw over the grid."""
    _require_points(S)
    data = _split(S, split)
    return data.x.float().cpu().numpy(), data.y.cpu().numpy()


def model_summary(spec: ScenarioSpec | dict) -> tuple[list[dict], int]:
    """(one row per leaf layer, parameter count) of the model a spec builds, untrained: for runs
    that have no checkpoint yet. Needs the spec's dataset (its input shape and classes): for a
    torchvision dataset its files under data_dir, since nothing is downloaded here."""
    spec = ScenarioSpec.from_dict(spec) if isinstance(spec, dict) else spec
    require_dataset_files(spec.dataset, spec.data_dir)
    bundle = load_data(spec)
    model = build_model(spec, bundle.input_shape, num_outputs(resolve_loss(spec, bundle.task), bundle))
    return summarize(model), count_parameters(model)


def analyze_run(run_folder: str | Path, device: str = "cpu", split: str = "test", misclassified_limit: int = 32,
                resolution: int = 150) -> dict[str, Any]:
    """Everything the run detail page shows about a trained model, as plain numpy/pandas values
    (picklable, so a UI can cache it): the best epoch's weights evaluated on `split`.

    Keys: task, class_names, checkpoint_epoch, accuracy (None for regression), samples, layers
    (summarize rows), parameters; for classification confusion and per_class (DataFrames); for
    image datasets misclassified (list of (image, true, predicted)); for 2-D point datasets grid
    ((xs, ys, prob)) and points ((xy, labels)). Missing parts are None.
    """
    S = load_trained(run_folder, device=device)
    outputs, targets = predict(S, split)
    report: dict[str, Any] = {
        "task": S.task, "dataset": S.spec.dataset, "split": split, "class_names": list(S.data.class_names),
        "checkpoint_epoch": S.extras.get("checkpoint_epoch"), "samples": int(len(targets)),
        "layers": summarize(S.model), "parameters": count_parameters(S.model),
        "accuracy": None, "confusion": None, "per_class": None, "misclassified": None, "grid": None, "points": None,
    }
    if S.task != "regression":
        predicted = predicted_labels(outputs)
        report["accuracy"] = float((predicted == targets).float().mean()) if len(targets) else None
        report["confusion"] = confusion_matrix(targets, predicted, S.data.num_classes, S.data.class_names)
        report["per_class"] = per_class_accuracy(targets, predicted, S.data.num_classes, S.data.class_names)
    if S.data.is_image:
        report["misclassified"] = _wrong_images(S, outputs, targets, misclassified_limit, split)
    if S.data.input_shape == (2,) and S.task != "regression":
        report["grid"] = decision_grid(S, resolution)
        report["points"] = data_points(S, split)
    return report
