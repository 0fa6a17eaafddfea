"""ScenarioSpec: round trips, strict validation naming the field, parse_value."""
from __future__ import annotations

import json

import pytest

from trainlib import ScenarioSpec, SpecError
from trainlib.spec import DEFAULTS, field_names, parse_value


def test_defaults_are_the_course_scenario():
    spec = ScenarioSpec()
    assert (spec.model, spec.hidden_sizes, spec.optimizer, spec.lr, spec.batch_size, spec.epochs,
            spec.val_fraction) == ("mlp", (256, 256), "adam", 1e-3, 64, 5, 0.2)


def test_round_trip_through_dict_and_json():
    spec = ScenarioSpec(name="l2 run", dataset="moons", hidden_sizes=(32, 16), lr=0.05, dropout=0.2,
                        batchnorm=True, train_subset=100, tags=("course", "ch3"), scheduler="cosine")
    as_dict = spec.to_dict()
    assert as_dict["hidden_sizes"] == [32, 16] and as_dict["tags"] == ["course", "ch3"]
    assert set(as_dict) == set(field_names())
    assert ScenarioSpec.from_dict(as_dict) == spec
    text = spec.to_json()
    back = ScenarioSpec.from_dict(json.loads(text))
    assert back == spec
    assert back.hidden_sizes == (32, 16) and isinstance(back.tags, tuple)
    hash(back)                                 # lists from JSON became tuples: still hashable


def test_from_dict_of_partial_mapping_fills_defaults_and_accepts_int_for_float():
    spec = ScenarioSpec.from_dict({"lr": 1, "epochs": 3})
    assert spec.lr == 1.0 and isinstance(spec.lr, float)
    assert spec.epochs == 3 and spec.batch_size == DEFAULTS["batch_size"]


def test_replace_makes_a_new_checked_spec():
    spec = ScenarioSpec()
    other = spec.replace(weight_decay=1e-5)
    assert other.weight_decay == 1e-5 and spec.weight_decay == 0.0
    with pytest.raises(SpecError) as info:
        spec.replace(dropout=2.0)
    assert info.value.field == "dropout"


@pytest.mark.parametrize("changes, field", [
    ({"lr": 0}, "lr"),
    ({"lr": -1e-3}, "lr"),
    ({"lr": float("nan")}, "lr"),
    ({"batch_size": 0}, "batch_size"),
    ({"dropout": 1.0}, "dropout"),
    ({"dropout": -0.1}, "dropout"),
    ({"epochs": 0}, "epochs"),
    ({"weight_decay": -1.0}, "weight_decay"),
    ({"val_fraction": 1.0}, "val_fraction"),
    ({"train_subset": 0}, "train_subset"),
    ({"dataset": "imagenet"}, "dataset"),
    ({"model": "transformer"}, "model"),
    ({"optimizer": "lbfgs"}, "optimizer"),
    ({"scheduler": "step"}, "scheduler"),
    ({"loss": "hinge"}, "loss"),
    ({"hidden_sizes": [256, 0]}, "hidden_sizes"),
    ({"name": "  "}, "name"),
])
def test_out_of_range_values_name_their_field(changes, field):
    with pytest.raises(SpecError) as info:
        ScenarioSpec.from_dict(changes)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")


@pytest.mark.parametrize("changes, field", [
    ({"epochs": "5"}, "epochs"),
    ({"epochs": True}, "epochs"),            # a bool is not an int here
    ({"epochs": 2.5}, "epochs"),
    ({"lr": "0.1"}, "lr"),
    ({"batchnorm": 1}, "batchnorm"),
    ({"hidden_sizes": [256, "a"]}, "hidden_sizes"),
    ({"hidden_sizes": 256}, "hidden_sizes"),
    ({"tags": "course"}, "tags"),
    ({"train_subset": "all"}, "train_subset"),
])
def test_wrong_types_name_their_field(changes, field):
    with pytest.raises(SpecError) as info:
        ScenarioSpec.from_dict(changes)
    assert info.value.field == field
    assert "expected" in info.value.message


def test_constructor_validates_too():
    with pytest.raises(SpecError) as info:
        ScenarioSpec(batch_size=0)
    assert info.value.field == "batch_size"


def test_unknown_key_is_named():
    with pytest.raises(SpecError) as info:
        ScenarioSpec.from_dict({"lr": 1e-3, "learning_rate": 1e-3})
    assert info.value.field == "learning_rate"
    assert "unknown field" in info.value.message


def test_non_mapping_is_rejected():
    with pytest.raises(SpecError) as info:
        ScenarioSpec.from_dict(["lr", 1e-3])
    assert info.value.field == "spec"


@pytest.mark.parametrize("text, value", [("true", True), ("Yes", True), ("1", True), ("on", True),
                                         ("false", False), ("0", False), ("no", False), ("OFF", False)])
def test_parse_value_bool(text, value):
    assert parse_value("batchnorm", text) is value


def test_parse_value_numbers_and_tuples():
    assert parse_value("epochs", " 7 ") == 7 and isinstance(parse_value("epochs", "7"), int)
    assert parse_value("lr", "1e-3") == pytest.approx(1e-3)
    assert isinstance(parse_value("lr", "1"), float)
    assert parse_value("train_subset", "none") is None
    assert parse_value("train_subset", "500") == 500
    assert parse_value("hidden_sizes", "256,128") == (256, 128)
    assert parse_value("hidden_sizes", "256x256x10") == (256, 256, 10)
    assert parse_value("channels", "16 32") == (16, 32)
    assert parse_value("tags", "a,b") == ("a", "b")
    assert parse_value("dataset", " moons ") == "moons"


@pytest.mark.parametrize("name, text", [("batchnorm", "maybe"), ("epochs", "1.5"), ("lr", "fast"),
                                        ("hidden_sizes", "256,a"), ("train_subset", "lots")])
def test_parse_value_errors_name_the_field(name, text):
    with pytest.raises(SpecError) as info:
        parse_value(name, text)
    assert info.value.field == name
    assert repr(text.strip()) in info.value.message


def test_parse_value_unknown_field():
    with pytest.raises(SpecError) as info:
        parse_value("nofield", "1")
    assert info.value.field == "nofield"


@pytest.mark.parametrize("text", ["512x", "512,,512", " ", "", "x512", ",512", "512,", "512xx512", "512, ,512"])
def test_int_tuples_refuse_empty_pieces(text):
    with pytest.raises(SpecError) as info:
        parse_value("hidden_sizes", text)
    assert info.value.field == "hidden_sizes"


@pytest.mark.parametrize("text", ["512x512", "512,512", "512 512", "512, 512", " 512 x 512 "])
def test_int_tuples_take_x_commas_or_spaces(text):
    assert parse_value("hidden_sizes", text) == (512, 512)
    assert parse_value("channels", text) == (512, 512)


def test_tags_are_stripped_and_blank_tags_dropped():
    assert parse_value("tags", " course , ch3 ,") == ("course", "ch3")


FLOAT_FIELDS = [n for n in field_names() if isinstance(DEFAULTS[n], float)]


@pytest.mark.parametrize("name", FLOAT_FIELDS)
@pytest.mark.parametrize("value", [10 ** 400, -10 ** 400, float("inf"), float("-inf"), float("nan")])
def test_floats_beyond_range_or_not_numbers_are_spec_errors(name, value):
    with pytest.raises(SpecError) as info:
        ScenarioSpec.from_dict({name: value})
    assert info.value.field == name
    assert len(str(info.value)) < 200            # a 400-digit number is described, not written out


@pytest.mark.parametrize("name", FLOAT_FIELDS)
@pytest.mark.parametrize("text", ["1e400", "-1e400", "inf", "nan", "NaN"])
def test_parse_value_refuses_what_is_not_a_finite_number(name, text):
    with pytest.raises(SpecError) as info:
        parse_value(name, text)
    assert info.value.field == name


@pytest.mark.parametrize("name, top", [("epochs", 100_000), ("batch_size", 2 ** 20), ("seed", 2 ** 63 - 1),
                                       ("image_size", 512), ("train_subset", 10 ** 9),
                                       ("early_stopping_patience", 100_000)])
def test_integer_fields_have_an_upper_bound(name, top):
    assert getattr(ScenarioSpec.from_dict({name: top}), name) == top
    for too_big in (top + 1, 10 ** 400):
        with pytest.raises(SpecError) as info:
            ScenarioSpec.from_dict({name: too_big})
        assert info.value.field == name and "must be in [" in info.value.message


@pytest.mark.parametrize("name", ["hidden_sizes", "channels"])
def test_widths_and_layer_counts_have_bounds(name):
    assert getattr(ScenarioSpec.from_dict({name: [65536]}), name) == (65536,)
    for bad in ([65537], [10 ** 400], [10 ** 5000], [8] * 65, []):
        with pytest.raises(SpecError) as info:
            ScenarioSpec.from_dict({name: bad})
        assert info.value.field == name


def test_paths_with_a_nul_character_are_refused():
    for name in ("data_dir", "weights"):
        with pytest.raises(SpecError) as info:
            ScenarioSpec.from_dict({name: "a\x00b", "model": "resnet18"})
        assert info.value.field == name
