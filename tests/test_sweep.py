"""Sweeps: grids and named variants over a base spec, and the --vary / --variant parsers."""
from __future__ import annotations

import pytest

from trainlib import ScenarioSpec, SpecError, grid, variants
from trainlib.sweep import check_unique_names, parse_variant, parse_vary, repeat_seeds

COURSE_VARIANTS = {"baseline": {}, "l2": {"weight_decay": 1e-5}, "dropout": {"dropout": 0.2},
                   "batchnorm": {"batchnorm": True}}


def test_grid_2x2_is_the_product_in_axis_order_with_names_saying_what_differs():
    base = ScenarioSpec(dataset="moons", epochs=3)
    specs = grid(base, lr=[1e-2, 1e-3], dropout=[0.0, 0.2])
    assert len(specs) == 4
    # first axis varies slowest
    assert [(s.lr, s.dropout) for s in specs] == [(1e-2, 0.0), (1e-2, 0.2), (1e-3, 0.0), (1e-3, 0.2)]
    assert [s.name for s in specs] == ["lr=0.01 dropout=0", "lr=0.01 dropout=0.2",
                                       "lr=0.001 dropout=0", "lr=0.001 dropout=0.2"]
    # everything else is the base's
    assert all(s.dataset == "moons" and s.epochs == 3 for s in specs)


def test_grid_sizes_and_short_labels():
    base = ScenarioSpec()
    assert len(grid(base, lr=[1e-2, 1e-3, 1e-4])) == 3
    assert len(grid(base, lr=[1e-2, 1e-3], batch_size=[32, 64, 128])) == 6
    specs = grid(base, weight_decay=[1e-5], batchnorm=[True, False], hidden_sizes=[(64, 64)])
    assert [s.name for s in specs] == ["wd=1e-05 bn=on hidden=64x64", "wd=1e-05 bn=off hidden=64x64"]


def test_grid_adds_the_sweep_tag_once_and_keeps_base_tags():
    base = ScenarioSpec(tags=("course",))
    specs = grid(base, sweep="reg", lr=[1e-2, 1e-3])
    assert all(s.tags == ("course", "reg") for s in specs)
    again = grid(ScenarioSpec(tags=("reg",)), sweep="reg", lr=[1e-2])
    assert again[0].tags == ("reg",)
    assert grid(base, lr=[1e-2])[0].tags == ("course",)


@pytest.mark.parametrize("axes, field", [
    ({"learning_rate": [1e-2]}, "learning_rate"),
    ({"name": ["a", "b"]}, "name"),
    ({"lr": []}, "lr"),
    ({"dropout": [0.1, 1.5]}, "dropout"),
    ({"lr": [1e-2, 1e-2]}, "name"),         # two specs would share a name
])
def test_grid_errors_name_the_field(axes, field):
    with pytest.raises(SpecError) as info:
        grid(ScenarioSpec(), **axes)
    assert info.value.field == field


def test_the_course_four_variants():
    base = ScenarioSpec(dataset="mnist", epochs=5)
    specs = variants(base, COURSE_VARIANTS, sweep="regularization")
    assert [s.name for s in specs] == ["baseline", "l2", "dropout", "batchnorm"]
    by_name = {s.name: s for s in specs}
    assert (by_name["baseline"].weight_decay, by_name["baseline"].dropout, by_name["baseline"].batchnorm) == (
        0.0, 0.0, False)
    assert by_name["l2"].weight_decay == 1e-5 and by_name["l2"].dropout == 0.0 and not by_name["l2"].batchnorm
    assert by_name["dropout"].dropout == 0.2 and by_name["dropout"].weight_decay == 0.0
    assert by_name["batchnorm"].batchnorm is True and by_name["batchnorm"].dropout == 0.0
    assert all(s.tags == ("regularization",) and s.dataset == "mnist" and s.epochs == 5 for s in specs)


def test_variants_unnamed_get_described_and_duplicates_are_refused():
    specs = variants(ScenarioSpec(), {"": {"lr": 0.01}})
    assert specs[0].name == "lr=0.01"
    with pytest.raises(SpecError) as info:
        variants(ScenarioSpec(), {"": {"lr": 0.01}, "lr=0.01": {}})
    assert info.value.field == "name"
    with pytest.raises(SpecError) as info:
        variants(ScenarioSpec(), {})
    assert info.value.field == "variants"
    with pytest.raises(SpecError) as info:
        variants(ScenarioSpec(), {"bad": {"dropout": 1.0}})
    assert info.value.field == "dropout"


def test_parse_vary():
    assert parse_vary("lr=1e-2,1e-3") == ("lr", [0.01, 0.001])
    assert parse_vary("batch-size=32, 64") == ("batch_size", [32, 64])
    assert parse_vary("batchnorm=true,false") == ("batchnorm", [True, False])
    assert parse_vary("hidden_sizes=256,256;512") == ("hidden_sizes", [(256, 256), (512,)])


@pytest.mark.parametrize("text, field", [("lr", "vary"), ("lr=", "vary"), ("nofield=1", "nofield"),
                                         ("lr=abc", "lr"), ("epochs=1,two", "epochs")])
def test_parse_vary_errors(text, field):
    with pytest.raises(SpecError) as info:
        parse_vary(text)
    assert info.value.field == field


def test_parse_variant():
    assert parse_variant("l2:weight_decay=1e-5,epochs=3") == ("l2", {"weight_decay": 1e-5, "epochs": 3})
    assert parse_variant("baseline:") == ("baseline", {})
    assert parse_variant("bn:batchnorm=true") == ("bn", {"batchnorm": True})
    assert parse_variant(" drop : dropout=0.2 ") == ("drop", {"dropout": 0.2})


@pytest.mark.parametrize("text, field", [("l2", "variant"), (":lr=1", "variant"), ("x:lr", "variant"),
                                         ("x:nofield=1", "nofield"), ("x:epochs=many", "epochs")])
def test_parse_variant_errors(text, field):
    with pytest.raises(SpecError) as info:
        parse_variant(text)
    assert info.value.field == field


@pytest.mark.parametrize("axes, field", [({"tags": [("a",), ("b",)]}, "tags"), ({"name": ["a", "b"]}, "name")])
def test_grid_cannot_vary_name_or_tags(axes, field):
    with pytest.raises(SpecError) as info:
        grid(ScenarioSpec(), sweep="s", **axes)
    assert info.value.field == field
    assert "cannot be changed by a variant or an axis" in info.value.message


@pytest.mark.parametrize("changes, field", [({"name": "b"}, "name"), ({"tags": ("x",)}, "tags"),
                                            ({"lr": 0.1, "tags": ["x"]}, "tags")])
def test_variants_cannot_change_name_or_tags(changes, field):
    with pytest.raises(SpecError) as info:
        variants(ScenarioSpec(), {"a": changes}, sweep="s")
    assert info.value.field == field


@pytest.mark.parametrize("text, field", [("lr=0.1,,0.2", "lr"), ("lr=0.1,", "lr"), ("hidden_sizes=512;;256", "hidden_sizes"),
                                         ("hidden_sizes=512x;256", "hidden_sizes"), ("=1", "vary")])
def test_parse_vary_refuses_empty_options(text, field):
    with pytest.raises(SpecError) as info:
        parse_vary(text)
    assert info.value.field == field


@pytest.mark.parametrize("text, field", [("a:lr=1,lr=2", "lr"), ("a:lr=1,,epochs=2", "variant"), ("a:=1", "variant"),
                                         ("a:hidden_sizes=512x", "hidden_sizes"), ("a:hidden_sizes=512,512", "variant")])
def test_parse_variant_refuses_repeats_and_blanks(text, field):
    with pytest.raises(SpecError) as info:
        parse_variant(text)
    assert info.value.field == field


def test_variant_tuple_values_use_x():
    assert parse_variant("wide:hidden_sizes=512x512,lr=0.01") == ("wide", {"hidden_sizes": (512, 512), "lr": 0.01})


def test_check_unique_names_across_variants_and_grid():
    specs = variants(ScenarioSpec(), {"lr=0.01": {}}) + grid(ScenarioSpec(), lr=[0.01])
    with pytest.raises(SpecError) as info:
        check_unique_names(specs)
    assert info.value.field == "name"


# ----------------------------------------------------------------------------- repeats over seeds
def test_repeat_seeds_puts_each_variants_seeds_next_to_each_other():
    specs = variants(ScenarioSpec(seed=7), {"baseline": {}, "dropout": {"dropout": 0.2}}, sweep="reg")
    pairs = repeat_seeds(specs, 3)
    assert [(variant, spec.name, spec.seed) for variant, spec in pairs] == [
        ("baseline", "baseline · seed 7", 7), ("baseline", "baseline · seed 8", 8),
        ("baseline", "baseline · seed 9", 9), ("dropout", "dropout · seed 7", 7),
        ("dropout", "dropout · seed 8", 8), ("dropout", "dropout · seed 9", 9)]
    assert all(spec.replace(seed=7, name=variant) == original           # nothing else changed
               for (variant, spec), original in zip(pairs, [specs[0]] * 3 + [specs[1]] * 3))
    assert [spec.tags for _, spec in pairs] == [("reg",)] * 6


def test_one_repeat_is_the_specs_as_they_are():
    specs = grid(ScenarioSpec(), lr=[0.1, 0.01])
    assert repeat_seeds(specs, 1) == [("lr=0.1", specs[0]), ("lr=0.01", specs[1])]
    seeded = grid(ScenarioSpec(), seed=[1, 2])                 # a seed axis alone is fine
    assert [spec.seed for _, spec in repeat_seeds(seeded, 1)] == [1, 2]


@pytest.mark.parametrize("repeats", [0, -1, 101, 2.5, "3", True])
def test_repeats_outside_1_to_100_name_the_field(repeats):
    with pytest.raises(SpecError) as info:
        repeat_seeds([ScenarioSpec()], repeats)
    assert info.value.field == "repeats" and "1..100" in str(info.value)


def test_repeats_conflict_with_a_seed_axis():
    with pytest.raises(SpecError) as info:
        repeat_seeds(grid(ScenarioSpec(), seed=[1, 2]), 3)
    assert info.value.field == "repeats" and "conflicts with a seed axis" in str(info.value)


def test_repeats_past_the_largest_seed_name_the_seed():
    with pytest.raises(SpecError) as info:
        repeat_seeds([ScenarioSpec(seed=2 ** 63 - 1)], 2)
    assert info.value.field == "seed"
