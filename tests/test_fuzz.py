"""Fuzzing the entry points that take outside input: a scenario's JSON, the command line, the text parsers.

Each gives a value or raises the one error its callers handle (SpecError; for the CLI, exit status 2
with one line), whatever the input. The concrete cases that once broke are pinned with @example.
No training starts: the CLI's command_run is replaced by a recorder.
"""
from __future__ import annotations

import contextlib
import io
import json
import math
import re

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from trainlib import ScenarioSpec, SpecError
from trainlib import cli, preflight
from trainlib.store import RunStore
from trainlib.spec import (ACTIVATIONS, DATASETS, DEVICES, LOSSES, MODELS, OPTIMIZERS, PRECISIONS, SCHEDULERS,
                           check_type, field_kind, field_names, parse_value)
from trainlib.sweep import parse_variant, parse_vary

FIELDS = field_names()
# 1,000 examples per entry point, new ones each run; no database of past failures (the concrete
# cases are pinned as @examples instead); the fixtures a test takes (monkeypatch, tmp_path) are
# meant to be shared by all its examples.
FUZZ = settings(max_examples=1000, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# ----------------------------------------------------------------------------- values
HUGE = [10 ** 400, -10 ** 400, 2 ** 63, 2 ** 64, 10 ** 4000]
json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.sampled_from(HUGE),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=3)), max_leaves=10)

CHOICES = {"dataset": DATASETS, "model": MODELS, "activation": ACTIVATIONS, "loss": LOSSES,
           "optimizer": OPTIMIZERS, "scheduler": SCHEDULERS, "device": DEVICES, "precision": PRECISIONS}
# Values inside each field's range: mixed into the fuzz so that examples also get past validation
# (and, for the CLI, to the commands) instead of all stopping at the first check.
VALID = {
    "name": st.text(min_size=1, max_size=12).filter(str.strip), "data_dir": st.text(max_size=12).filter(
        lambda t: "\x00" not in t), "weights": st.just(""),
    "image_size": st.integers(8, 512), "train_subset": st.none() | st.integers(1, 10 ** 9),
    "val_fraction": st.floats(0.01, 0.99), "seed": st.integers(0, 2 ** 63 - 1),
    "hidden_sizes": st.lists(st.integers(1, 65_536), min_size=1, max_size=4),
    "channels": st.lists(st.integers(1, 65_536), min_size=1, max_size=4),
    "dropout": st.floats(0, 0.99), "lr": st.floats(1e-6, 10), "momentum": st.floats(0, 0.99),
    "weight_decay": st.floats(0, 1), "lr_end": st.floats(1e-8, 1), "epochs": st.integers(1, 100_000),
    "batch_size": st.integers(1, 2 ** 20), "early_stopping_patience": st.integers(0, 100_000),
    "tags": st.lists(st.text(min_size=1, max_size=6), max_size=3),
    **{name: st.sampled_from(choices) for name, choices in CHOICES.items()},
    **{name: st.booleans() for name in FIELDS if field_kind(name) == "bool"},
}


def mostly(valid: st.SearchStrategy, other: st.SearchStrategy) -> st.SearchStrategy:
    """`valid` nine times in ten, `other` the tenth."""
    return st.integers(0, 9).flatmap(lambda k: other if k == 0 else valid)


def edge(name: str) -> st.SearchStrategy:
    """Values of the field's type around and far beyond its range: they pass the type check only."""
    kind = field_kind(name)
    if kind == "str":
        return st.text(max_size=16)
    if kind == "bool":
        return st.booleans()
    if kind == "float":
        return st.floats(allow_nan=True, allow_infinity=True) | st.integers() | st.sampled_from(HUGE)
    if kind in ("int", "optional_int"):
        return st.integers(-5, 70_000) | st.integers() | st.sampled_from(HUGE)
    if kind == "int_tuple":
        return st.lists(st.integers(-2, 70_000) | st.sampled_from(HUGE), max_size=70)
    return st.lists(st.text(max_size=8), max_size=4)


keys = st.sampled_from(FIELDS) | st.text(max_size=10)
arbitrary_dicts = st.dictionaries(keys, json_values, max_size=6)
plausible_dicts = st.fixed_dictionaries({}, optional={name: mostly(VALID[name], edge(name) | json_values)
                                                      for name in FIELDS})


@FUZZ
@given(st.one_of(plausible_dicts, arbitrary_dicts, json_values))
@example({"lr": 10 ** 400})
@example({"epochs": 10 ** 400})
@example({"seed": 2 ** 63})
@example({"hidden_sizes": [10 ** 5000]})
@example({"lr": float("nan")})
@example({"momentum": float("inf")})
@example({"data_dir": "a\x00b"})
def test_from_dict_gives_a_spec_or_a_spec_error(data):
    try:
        spec = ScenarioSpec.from_dict(data)
    except SpecError:
        event("SpecError")
        return
    event("a spec")
    assert isinstance(spec, ScenarioSpec)
    text = json.dumps(spec.to_dict(), allow_nan=False)     # a valid spec is plain JSON: no inf, no NaN
    assert ScenarioSpec.from_dict(json.loads(text)) == spec


# ----------------------------------------------------------------------------- text
TOKENS = ["", " ", "=", ":", ";", ",", "x", "512x", "512,,512", "x512", "512x512", "512 512", "1e400", "-1e400",
          "nan", "inf", "-1", "0", "1", "0.5", "1" + "0" * 400, "true", "none", "cuda", "cpu", "mnist",
          "imagefolder", "resnet18", "cnn", "sgd", "onecycle", "bf16", "ünïcødé", "名前", "a\nb", "\x00",
          "lr=0.1", "a:lr=0.1", "tags=a;b", "name=a,b", "a:name=b", "a:tags=x", "--lr", "-x",
          "a" * 300, "/" + "b" * 300 + "/c"]                 # longer than a file name may be
fuzz_text = st.one_of(st.text(max_size=16), st.sampled_from(TOKENS),
                      st.integers(-10 ** 30, 10 ** 30).map(str), st.floats().map(str))


def as_text(name: str, value) -> str:
    """A valid value as the command line writes it."""
    if isinstance(value, list):
        return "x".join(map(str, value)) if field_kind(name) == "int_tuple" else ",".join(value)
    return "none" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def text_for(name: str) -> st.SearchStrategy:
    """Command-line text for a field: mostly a valid value written out, else fuzz."""
    return mostly(VALID[name].map(lambda value: as_text(name, value)), fuzz_text)


# Fields a sweep can vary: not name and tags (the sweep sets them), not str fields whose values hold separators.
AXES = [n for n in FIELDS if n not in ("name", "tags", "data_dir", "weights")]


@st.composite
def valid_vary(draw) -> str:
    name = draw(st.sampled_from(AXES))
    values = draw(st.lists(VALID[name].map(lambda value: as_text(name, value)), min_size=1, max_size=3, unique=True))
    return f"{name.replace('_', draw(st.sampled_from(['_', '-'])))}=" + (";" if field_kind(name) == "int_tuple" else ",").join(values)


@st.composite
def valid_variant(draw) -> str:
    label = draw(st.text(alphabet="abcdefgh xyz_-", min_size=1, max_size=8).filter(str.strip))
    names = draw(st.lists(st.sampled_from(AXES), max_size=3, unique=True))
    return f"{label}:" + ",".join(f"{name}={as_text(name, draw(VALID[name]))}" for name in names)


vary_texts = mostly(valid_vary(), fuzz_text | st.builds(
    lambda name, values, sep: f"{name}={sep.join(values)}",
    st.sampled_from(FIELDS) | st.text(max_size=6), st.lists(fuzz_text, max_size=3), st.sampled_from([",", ";"])))
variant_texts = mostly(valid_variant(), fuzz_text | st.builds(
    lambda name, changes: f"{name}:" + ",".join(f"{k}={v}" for k, v in changes),
    st.text(max_size=6), st.lists(st.tuples(st.sampled_from(FIELDS), fuzz_text), max_size=3)))


@FUZZ
@given(st.sampled_from(FIELDS), fuzz_text)
@example("hidden_sizes", "512x")
@example("hidden_sizes", "512,,512")
@example("hidden_sizes", " ")
@example("hidden_sizes", "x512")
@example("lr", "1e400")
@example("epochs", "1" + "0" * 5000)
def test_parse_value_gives_the_fields_type_or_a_spec_error(name, text):
    try:
        value = parse_value(name, text)
    except SpecError as exc:
        assert exc.field == name
        return
    check_type(name, value)                          # of the field's type, a finite float included
    if isinstance(value, float):
        assert math.isfinite(value)


@FUZZ
@given(vary_texts)
@example("tags=a;b")
@example("name=a,b")
@example("lr=0.1,,0.2")
@example("=1")
def test_parse_vary_gives_an_axis_or_a_spec_error(text):
    try:
        name, values = parse_vary(text)
    except SpecError:
        return
    assert name in FIELDS and values
    for value in values:
        check_type(name, value)


@FUZZ
@given(variant_texts)
@example("a:name=b")
@example("a:tags=x")
@example("a:lr=1,lr=2")
@example("a:hidden_sizes=512x")
def test_parse_variant_gives_changes_or_a_spec_error(text):
    try:
        name, changes = parse_variant(text)
    except SpecError:
        return
    assert name.strip() == name and name
    for field_name, value in changes.items():
        check_type(field_name, value)


# ----------------------------------------------------------------------------- the command line
def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def rarely(draw) -> bool:
    return draw(st.integers(0, 9)) == 0


# --csv stays inside the test's folder (the test runs there): relative names, and a few bad ones.
csv_paths = st.sampled_from(["out.csv", "missing/x.csv", "/nonexistent/dir/x.csv", "", ".", "a\x00b.csv"]) | st.text(
    alphabet="abcxyz_-. ", max_size=8).map(lambda name: name + ".csv")


@st.composite
def argvs(draw) -> list[str]:
    """An argv of real flags with fuzzed values, for one of the four commands."""
    command = draw(st.sampled_from(["run", "sweep", "list", "export"]))
    argv = [command]
    if command in ("run", "sweep"):
        for name in draw(st.lists(st.sampled_from(FIELDS), max_size=4)):
            if field_kind(name) == "bool":
                argv.append(draw(st.sampled_from([flag(name), "--no-" + name.replace("_", "-")])))
            else:
                argv += [flag(name), draw(text_for(name))]
    if command == "sweep":
        for text in draw(st.lists(vary_texts, max_size=2)):
            argv += ["--vary", text]
        for text in draw(st.lists(variant_texts, max_size=3)):
            argv += ["--variant", text]
        if rarely(draw):
            argv += ["--workers", draw(mostly(st.integers(1, 64).map(str), fuzz_text))]
        if rarely(draw):
            argv += ["--sweep-name", draw(fuzz_text)]
    if command == "export":
        argv += draw(st.lists(mostly(st.just("RUN"), fuzz_text), min_size=0, max_size=3))
        if draw(st.integers(0, 9)):
            argv += ["--csv", draw(csv_paths)]
    if rarely(draw):
        argv += draw(st.lists(fuzz_text, max_size=2))         # stray arguments
    return argv


@pytest.fixture
def submitted(monkeypatch, tmp_path) -> list:
    """What the CLI would have trained: command_run records its specs instead of starting runs.
    The test runs in tmp_path, so a relative path in a fuzzed value lands there."""
    calls = []

    def record(args, specs, sweep_name):
        calls.append(specs)
        return 0

    monkeypatch.setattr(cli, "command_run", record)
    monkeypatch.setattr(preflight, "mirrors_reachable", lambda: False)     # never the network
    monkeypatch.chdir(tmp_path)
    return calls


@FUZZ
@given(argv=argvs())
@example(argv=["export", "RUN", "--csv", "/nonexistent/dir/x.csv"])
@example(argv=["run", "--hidden-sizes", "512x"])
@example(argv=["run", "--lr", "1e400"])
@example(argv=["run", "--epochs", "1" + "0" * 400])
@example(argv=["sweep", "--variant", "a:name=b"])
@example(argv=["sweep", "--variant", "a:tags=x"])
@example(argv=["sweep", "--vary", "tags=a;b"])
@example(argv=["sweep", "--vary", "name=a,b"])
@example(argv=["run", "--device", "cuda"])
@example(argv=["run", "--dataset", "mnist", "--data-dir", "MISSING"])
@example(argv=["run", "--name", "a\nb", "--lr", "x"])
def test_main_returns_a_status_or_exits_2_with_one_line(argv, submitted, tmp_path):
    # run and sweep get a runs folder that does not exist (and must not be made); list and export
    # one holding a single run, 'RUN', so that they get as far as printing and writing.
    existing = tmp_path / "existing"
    if not existing.exists():
        run_folder = RunStore(existing).new_run(ScenarioSpec(name="listed"))
        run_folder.rename(existing / "RUN")
    runs_dir = tmp_path / "never-made" if argv[0] in ("run", "sweep") else existing
    before = sorted(p.name for p in tmp_path.iterdir())
    submitted.clear()
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = cli.main([*argv, "--runs-dir", str(runs_dir)])
        except SystemExit as exc:
            assert exc.code == 2, (argv, err.getvalue())
            lines = err.getvalue().splitlines()
            assert len(lines) == 1 and re.match(r"python -m trainlib( \w+)?: error: ", lines[0]), (argv, lines)
            assert not submitted
            status = None
    event(f"{argv[0]}: {'exit 2' if status is None else 'status'}")
    if status is not None:
        assert status == 0
        if argv[0] in ("run", "sweep"):
            assert len(submitted) == 1 and all(isinstance(spec, ScenarioSpec) for spec in submitted[0])
    made = sorted(set(p.name for p in tmp_path.iterdir()) - set(before))
    assert made == [] or (argv[0] == "export" and status == 0 and len(made) == 1), made   # only the CSV
    for name in made:
        (tmp_path / name).unlink()
