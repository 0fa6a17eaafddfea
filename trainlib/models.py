"""Models the course uses: an MLP, a small CNN with the same switches, and torchvision's resnet18.

    model = build_model(spec, input_shape=(1, 28, 28), num_outputs=10)
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from .spec import ScenarioSpec, SpecError

ACTIVATION_LAYERS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid,
                     "leaky_relu": nn.LeakyReLU}


def build_mlp(in_features: int, hidden_sizes: tuple[int, ...], num_outputs: int, activation: str,
              dropout: float, batchnorm: bool) -> nn.Sequential:
    """Flatten, then per hidden layer Linear -> [BatchNorm1d] -> activation -> [Dropout], then Linear."""
    layers: list[nn.Module] = [nn.Flatten()]
    width = in_features
    for hidden in hidden_sizes:
        layers.append(nn.Linear(width, hidden))
        if batchnorm:
            layers.append(nn.BatchNorm1d(hidden))     # its own layer per hidden layer, never shared
        layers.append(ACTIVATION_LAYERS[activation]())
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = hidden
    layers.append(nn.Linear(width, num_outputs))
    return nn.Sequential(*layers)


def build_cnn(in_channels: int, channels: tuple[int, ...], num_outputs: int, activation: str,
              dropout: float, batchnorm: bool) -> nn.Sequential:
    """Blocks of 3x3 conv -> [BatchNorm2d] -> activation -> 2x2 max-pool -> [Dropout], then a linear head."""
    layers: list[nn.Module] = []
    width = in_channels
    for out in channels:
        layers.append(nn.Conv2d(width, out, 3, padding=1, bias=not batchnorm))
        if batchnorm:
            layers.append(nn.BatchNorm2d(out))
        layers += [ACTIVATION_LAYERS[activation](), nn.MaxPool2d(2)]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, num_outputs)]
    return nn.Sequential(*layers)


def build_resnet18(in_channels: int, num_outputs: int, dropout: float, weights: str) -> nn.Module:
    """torchvision's resnet18 from scratch (BatchNorm is part of it), or from a local state_dict file."""
    from torchvision.models import resnet18
    model = resnet18(weights=None)
    if weights:
        path = Path(weights)
        if not path.is_file():
            raise SpecError("weights", f"no file at {path}; give the path of a resnet18 state_dict saved locally")
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    if in_channels != 3:
        model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    head = nn.Linear(model.fc.in_features, num_outputs)
    model.fc = nn.Sequential(nn.Dropout(dropout), head) if dropout > 0 else head
    return model


def build_model(spec: ScenarioSpec, input_shape: tuple[int, ...], num_outputs: int) -> nn.Module:
    is_image = len(input_shape) == 3
    if spec.model in ("cnn", "resnet18") and not is_image:
        raise SpecError("model", f"{spec.model!r} needs image data; dataset {spec.dataset!r} is not images "
                                 f"(use model 'mlp')")
    if spec.model == "mlp":
        return build_mlp(math.prod(input_shape), spec.hidden_sizes, num_outputs, spec.activation,
                         spec.dropout, spec.batchnorm)
    if spec.model == "cnn":
        return build_cnn(input_shape[0], spec.channels, num_outputs, spec.activation, spec.dropout, spec.batchnorm)
    return build_resnet18(input_shape[0], num_outputs, spec.dropout, spec.weights)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def summarize(model: nn.Module) -> list[dict]:
    """One row per leaf layer: name, type, parameter count (for the run detail page)."""
    rows = []
    for name, module in model.named_modules():
        if list(module.children()):
            continue
        rows.append({"layer": name, "type": type(module).__name__, "parameters": count_parameters(module),
                     "details": module.extra_repr()})
    return rows
