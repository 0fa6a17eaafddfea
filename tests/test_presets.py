"""Presets are data: each builds valid specs, and the form path (form_state -> read_form) builds the same."""
from __future__ import annotations

import pytest

from dashboard import forms
from dashboard.presets import COURSE_BASE, PRESETS
from trainlib.spec import ScenarioSpec, field_names

REGULARIZATION = "Regularization: baseline / L2 / dropout / BatchNorm"


def test_the_four_presets_exist():
    assert list(PRESETS) == [REGULARIZATION, "Learning-rate sweep", "Batch-size sweep", "Optimizers"]


def test_regularization_is_the_course_comparison():
    specs = PRESETS[REGULARIZATION].specs()
    by_name = {s.name: s for s in specs}
    assert list(by_name) == ["baseline", "l2", "dropout", "batchnorm"]
    for spec in specs:
        assert (spec.dataset, spec.model, spec.hidden_sizes) == ("shapes", "mlp", (256, 256))
        assert (spec.optimizer, spec.lr, spec.batch_size, spec.epochs) == ("adam", 1e-3, 64, 5)
        assert spec.tags == ("regularization",)
    baseline = by_name["baseline"]
    assert (baseline.weight_decay, baseline.dropout, baseline.batchnorm) == (0, 0, False)
    assert by_name["l2"].weight_decay == 1e-5 and by_name["l2"].dropout == 0
    assert by_name["dropout"].dropout == 0.2 and by_name["dropout"].weight_decay == 0
    assert by_name["batchnorm"].batchnorm is True and by_name["batchnorm"].dropout == 0


def test_sweeps_vary_one_field_over_the_course_base():
    lrs = PRESETS["Learning-rate sweep"].specs()
    assert [s.lr for s in lrs] == [1e-1, 1e-2, 1e-3, 1e-4]
    assert [s.batch_size for s in PRESETS["Batch-size sweep"].specs()] == [16, 64, 256]
    optimizers = {s.name: s for s in PRESETS["Optimizers"].specs()}
    assert [s.optimizer for s in optimizers.values()] == ["adam", "adamw", "sgd"]
    assert optimizers["sgd"].lr == 0.05 and optimizers["adam"].lr == 1e-3
    assert optimizers["adamw"].weight_decay > 0     # with 0, AdamW is Adam: nothing to compare


def test_overrides_reach_every_scenario():
    specs = PRESETS[REGULARIZATION].specs(epochs=1, train_subset=100)
    assert {(s.epochs, s.train_subset) for s in specs} == {(1, 100)}
    assert PRESETS["Learning-rate sweep"].specs(lr=0.5)[0].lr == 1e-1    # the axis wins over the base


@pytest.mark.parametrize("title", list(PRESETS))
def test_form_path_builds_what_the_preset_says(title):
    preset = PRESETS[title]
    state = forms.form_state(preset.base, "p_", axes=preset.axes, named=preset.variants, mode=preset.mode,
                             sweep=preset.sweep)
    raw = {name: state[f"p_{name}"] for name in field_names()}
    axes = [(state[f"p_axis_field_{i}"], state[f"p_axis_values_{i}"]) for i in range(1, 4)]
    result = forms.read_form(raw, state["p_mode"], axes, state["p_variants_table"].to_dict("records"),
                             state["p_sweep"])
    assert result.errors == {}
    assert result.sweep == preset.sweep
    assert [s.to_dict() for s in result.specs] == [s.to_dict() for s in preset.specs()]


def test_course_base_is_a_valid_spec():
    assert ScenarioSpec.from_dict(COURSE_BASE).dataset == "shapes"
