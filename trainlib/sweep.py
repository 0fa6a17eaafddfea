"""Sweeps: many specs from one base.

    grid(base, lr=[1e-2, 1e-3], dropout=[0.0, 0.2])          # 4 specs, the cartesian product
    variants(base, {"baseline": {}, "l2": {"weight_decay": 1e-5}})   # 2 specs, named by hand
    parse_variant("l2:weight_decay=1e-5")  -> ("l2", {"weight_decay": 1e-5})
    repeat_seeds(specs, 3)                   # [(variant, spec)]: each spec with seeds s, s+1, s+2

Every spec gets a name saying what differs from the base, and a tag naming the sweep.
"""
from __future__ import annotations

import itertools
from typing import Any, Iterable, Mapping

from .spec import ScenarioSpec, SpecError, field_kind, field_names, parse_value, shown

# Short labels keep legends readable on a projector ("lr=0.01 wd=1e-05", not the field names).
SHORT_NAMES = {"weight_decay": "wd", "batch_size": "bs", "batchnorm": "bn", "dropout": "dropout",
               "early_stopping_patience": "patience", "hidden_sizes": "hidden"}


def format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "x".join(str(v) for v in value)
    return str(value)


def describe_changes(changes: Mapping[str, Any]) -> str:
    """'lr=0.01 wd=1e-05' for {'lr': 0.01, 'weight_decay': 1e-5}; 'base' when nothing changes."""
    parts = [f"{SHORT_NAMES.get(k, k)}={format_value(v)}" for k, v in changes.items() if k not in ("name", "tags")]
    return " ".join(parts) or "base"


# Set by the sweep itself, so a variant or an axis cannot change them.
SWEEP_OWNED = {"name": "the name is the variant's (NAME: in --variant) or says what differs",
               "tags": "tags come from the sweep (--sweep-name) and the base's --tags"}


def _refuse_sweep_owned(field_name: str) -> None:
    if field_name in SWEEP_OWNED:
        raise SpecError(field_name, f"cannot be changed by a variant or an axis: {SWEEP_OWNED[field_name]}")


def _with_changes(base: ScenarioSpec, name: str, changes: Mapping[str, Any], sweep: str | None) -> ScenarioSpec:
    for field_name in changes:
        _refuse_sweep_owned(field_name)
    tags = tuple(base.tags) + ((sweep,) if sweep and sweep not in base.tags else ())
    return base.replace(**dict(changes), name=name, tags=list(tags))


def grid(base: ScenarioSpec, sweep: str | None = None, **axes: Iterable[Any]) -> list[ScenarioSpec]:
    """The cartesian product of the axes over `base`, in axis order (first axis varies slowest)."""
    names = field_names()
    values: dict[str, list[Any]] = {}
    for axis, options in axes.items():
        _refuse_sweep_owned(axis)
        if axis not in names:
            raise SpecError(axis, f"cannot vary this; allowed: {', '.join(n for n in names if n not in SWEEP_OWNED)}")
        values[axis] = list(options)
        if not values[axis]:
            raise SpecError(axis, "needs at least one value to vary over")
    specs = []
    for combo in itertools.product(*values.values()):
        changes = dict(zip(values.keys(), combo))
        specs.append(_with_changes(base, describe_changes(changes), changes, sweep))
    check_unique_names(specs)
    return specs


def variants(base: ScenarioSpec, named: Mapping[str, Mapping[str, Any]], sweep: str | None = None) -> list[ScenarioSpec]:
    """One spec per named override set: the course's baseline / L2 / dropout / BatchNorm comparison."""
    if not named:
        raise SpecError("variants", "give at least one variant")
    specs = [_with_changes(base, name or describe_changes(changes), changes, sweep) for name, changes in named.items()]
    check_unique_names(specs)
    return specs


MAX_REPEATS = 100         # seeds per variant; a typo (1000) would queue a night of runs


def repeat_seeds(specs: list[ScenarioSpec], repeats: int) -> list[tuple[str, ScenarioSpec]]:
    """(variant, spec) pairs: each spec `repeats` times with the seeds spec.seed, spec.seed + 1, ...,
    named 'dropout · seed 1', the repeats of one variant next to each other. With repeats == 1 the
    specs as they are, each its own variant. Repeats tell a difference between variants from what
    a change of seed alone does (the course's four runs differ by less than that)."""
    if isinstance(repeats, bool) or not isinstance(repeats, int) or not 1 <= repeats <= MAX_REPEATS:
        raise SpecError("repeats", f"must be a whole number in 1..{MAX_REPEATS}, got {shown(repeats)}")
    if repeats == 1:
        return [(spec.name, spec) for spec in specs]
    if len({spec.seed for spec in specs}) > 1:
        raise SpecError("repeats", "conflicts with a seed axis: these scenarios already differ by seed; "
                                   "vary the seed or repeat, not both")
    pairs = [(spec.name, spec.replace(seed=seed, name=f"{spec.name} · seed {seed}"))
             for spec in specs for seed in range(spec.seed, spec.seed + repeats)]
    check_unique_names([spec for _, spec in pairs])
    return pairs


def check_unique_names(specs: list[ScenarioSpec]) -> None:
    """Two runs of one sweep with one name could not be told apart in a legend."""
    seen: set[str] = set()
    for spec in specs:
        if spec.name in seen:
            raise SpecError("name", f"two scenarios would both be called {spec.name!r}; give variants distinct names")
        seen.add(spec.name)


def parse_vary(text: str) -> tuple[str, list[Any]]:
    """'lr=1e-2,1e-3' -> ('lr', [0.01, 0.001]). Tuple fields take ';' between options: hidden_sizes=256,256;512."""
    field_name, sep, raw = text.partition("=")
    field_name = field_name.strip().replace("-", "_")
    if not sep or not field_name or not raw.strip():
        raise SpecError("vary", f"expected FIELD=v1,v2,... got {shown(text)}")
    splitter = ";" if field_kind(field_name).endswith("tuple") else ","
    pieces = raw.split(splitter)
    if not all(piece.strip() for piece in pieces):       # 'lr=1e-2,,1e-3': a value was left out
        raise SpecError(field_name, f"an empty option in {shown(text)}; separate options by {splitter!r}")
    return field_name, [parse_value(field_name, piece) for piece in pieces]


def parse_variant(text: str) -> tuple[str, dict[str, Any]]:
    """'l2:weight_decay=1e-5,epochs=3' -> ('l2', {'weight_decay': 1e-5, 'epochs': 3}); 'baseline:' has no changes."""
    name, sep, raw = text.partition(":")
    name = name.strip()
    if not sep or not name:
        raise SpecError("variant", f"expected NAME:FIELD=V,FIELD=V (or NAME: for the base), got {shown(text)}")
    changes: dict[str, Any] = {}
    for piece in (raw.split(",") if raw.strip() else []):
        field_name, eq, value = piece.partition("=")
        field_name = field_name.strip().replace("-", "_")
        if not eq or not field_name:
            raise SpecError("variant", f"expected FIELD=VALUE in {shown(text)}, got {shown(piece)} "
                                       f"(',' separates changes; tuple values use x: hidden_sizes=512x512)")
        if field_name in changes:
            raise SpecError(field_name, f"is given twice in {shown(text)}")
        changes[field_name] = parse_value(field_name, value)
    return name, changes
