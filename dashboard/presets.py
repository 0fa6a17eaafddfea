"""Ready-made comparisons for class, as data: a base scenario plus a grid of axes or named variants.

    preset = PRESETS["Regularization: baseline / L2 / dropout / BatchNorm"]
    specs = preset.specs(epochs=1)           # four ScenarioSpecs, named baseline / l2 / dropout / batchnorm
    preset.sweep                             # 'regularization', the default sweep name

The New experiment page writes a preset into its form (forms.form_state), so every value stays editable.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from trainlib.spec import ScenarioSpec
from trainlib.sweep import grid, variants

# The course's setup: MLP 256-256, Adam 1e-3, batch 64, 5 epochs. 'shapes' is built in, so a preset
# runs offline; switch the dataset to mnist in the form when its files are there.
COURSE_BASE: dict[str, Any] = {"dataset": "shapes", "model": "mlp", "hidden_sizes": [256, 256],
                               "optimizer": "adam", "lr": 1e-3, "batch_size": 64, "epochs": 5}


@dataclass(frozen=True)
class Preset:
    title: str                                   # what it compares, in full (the button's tooltip)
    short: str                                   # the button's label: fits a button at 1280x720
    sweep: str                                   # default sweep name (the runs' group on the Runs page)
    note: str                                    # what the class should look for
    base: Mapping[str, Any] = field(default_factory=lambda: dict(COURSE_BASE))
    axes: Mapping[str, list] = field(default_factory=dict)            # field -> values: a grid
    variants: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)   # name -> changes

    @property
    def mode(self) -> str:
        return "variants" if self.variants else "grid"

    def base_spec(self, **overrides: Any) -> ScenarioSpec:
        return ScenarioSpec.from_dict({**self.base, **overrides})

    def specs(self, **overrides: Any) -> list[ScenarioSpec]:
        """The scenarios this preset runs, with base fields overridden (e.g. epochs=1 for a quick look)."""
        base = self.base_spec(**overrides)
        if self.variants:
            return variants(base, self.variants, sweep=self.sweep)
        return grid(base, sweep=self.sweep, **self.axes)


_PRESET_LIST = [
    Preset(
        title="Regularization: baseline / L2 / dropout / BatchNorm",
        short="Regularization",
        sweep="regularization",
        note="The course's comparison: the same MLP plain, with L2 (weight decay 1e-5), "
             "with dropout 0.2 and with BatchNorm. Watch the gap between train and validation loss.",
        variants={"baseline": {}, "l2": {"weight_decay": 1e-5}, "dropout": {"dropout": 0.2},
                  "batchnorm": {"batchnorm": True}},
    ),
    Preset(
        title="Learning-rate sweep",
        short="Learning rate",
        sweep="lr-sweep",
        note="Four learning rates a factor 10 apart: too large diverges or plateaus, too small barely moves.",
        axes={"lr": [1e-1, 1e-2, 1e-3, 1e-4]},
    ),
    Preset(
        title="Batch-size sweep",
        short="Batch size",
        sweep="batch-size-sweep",
        note="Same lr, three batch sizes: small batches take more (noisier) steps per epoch.",
        axes={"batch_size": [16, 64, 256]},
    ),
    Preset(
        title="Optimizers",
        short="Optimizers",
        sweep="optimizers",
        note="Adam, AdamW (decoupled weight decay 0.01, torch's default) and SGD with momentum 0.9; "
             "SGD gets lr 0.05 because Adam's 1e-3 is far too small for it.",
        variants={"adam": {"optimizer": "adam"},
                  "adamw": {"optimizer": "adamw", "weight_decay": 1e-2},
                  "sgd": {"optimizer": "sgd", "lr": 0.05, "momentum": 0.9}},
    ),
]
PRESETS: dict[str, Preset] = {preset.title: preset for preset in _PRESET_LIST}
