"""Form logic of the New experiment and LR finder pages, without streamlit: widget values in, specs out.

    state = form_state({"lr": 1e-2}, "ne_", axes={"dropout": [0.0, 0.2]})   # widget key -> widget value
    result = read_form(raw_fields, mode="grid", axes=[("lr", "1e-2, 1e-3"), ("", "")])
    result.specs        # the ScenarioSpecs to queue; [] when anything is wrong
    result.errors       # {"lr": "lr: must be ...", "axis_2": "...", "variants": "..."}: one message per place
    preview_frame(result.specs)     # one row per scenario: name + the fields that differ

Nothing here raises for a user's typing: every SpecError becomes a message keyed by the form place
(a field name, 'axis_1'..'axis_3', 'variants' or 'sweep'), so the page shows it under that widget.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd

from trainlib.data import IMAGE_DATASETS, TORCHVISION_LAYOUT, task_of
from trainlib.scenario import LOSSES_FOR_TASK, resolve_device
from trainlib.spec import (ACTIVATIONS, DATASETS, DEFAULTS, DEVICES, LOSSES, MODELS, OPTIMIZERS, PRECISIONS,
                           SCHEDULERS, ScenarioSpec, SpecError, check_type, field_kind, field_names, parse_value)
from trainlib.sweep import describe_changes, format_value, grid, repeat_seeds, variants

NEW_PREFIX = "ne_"        # widget keys of the New experiment page
FINDER_PREFIX = "lf_"     # widget keys of the LR finder page
MAX_AXES = 3
# Fields a grid may vary; a seed axis repeats the same scenario with other initial weights and batches.
AXIS_FIELDS = ("lr", "weight_decay", "dropout", "batchnorm", "batch_size", "optimizer", "scheduler", "epochs",
               "seed")
MODES = {"grid": "One run, or a grid over up to 3 fields", "variants": "Named variants"}
MAX_REPEATS = 10          # seeds per scenario the form offers (the engine takes up to 100)
# Fields drawn as a selectbox, and their options.
CHOICES: dict[str, tuple[str, ...]] = {"dataset": DATASETS, "model": MODELS, "activation": ACTIVATIONS,
                                       "loss": LOSSES, "optimizer": OPTIMIZERS, "scheduler": SCHEDULERS,
                                       "device": DEVICES, "precision": PRECISIONS}


@dataclass
class FormResult:
    specs: list[ScenarioSpec] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    sweep: str | None = None
    variants: list[str] = field(default_factory=list)     # the variant of each spec (repeats share one)
    repeats: int = 1

    @property
    def ok(self) -> bool:
        return not self.errors and bool(self.specs)


# ----------------------------------------------------------------------------- widgets <-> values
def field_key(name: str, prefix: str = NEW_PREFIX) -> str:
    return f"{prefix}{name}"


def widget_kind(name: str) -> str:
    """'select', 'bool' or 'text' (parsed with spec.parse_value, integers included: a number input
    turns what it cannot parse, 'abc' or '1e9', into its minimum without a word)."""
    if name in CHOICES:
        return "select"
    if field_kind(name) == "bool":
        return "bool"
    return "text"


def to_widget(name: str, value: Any) -> Any:
    """A spec value as its widget holds it: text for text inputs ('256,256', '1e-05', 'all').

    A value its widget cannot hold (a hand-edited scenario.json: dataset 'foo', epochs 0) becomes the
    default for a selectbox or a checkbox; text keeps it, so the form says what is wrong.
    """
    kind = widget_kind(name)
    if kind == "select":
        return value if value in CHOICES[name] else DEFAULTS[name]
    if kind == "bool":
        return value if isinstance(value, bool) else DEFAULTS[name]
    if value is None:
        return "all"          # train_subset: no cap
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def value_text(value: Any) -> str:
    """A value as typed in an axis or a variant's changes ('true', '0.001', '128,128')."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def changes_text(changes: Mapping[str, Any]) -> str:
    """{'weight_decay': 1e-5, 'dropout': 0.2} -> 'weight_decay=1e-05, dropout=0.2' (parse_changes reads it back)."""
    return ", ".join(f"{name}={value_text(value)}" for name, value in changes.items())


def variants_table(named: Mapping[str, Mapping[str, Any]] | None = None) -> pd.DataFrame:
    """The variants editor's table: one row per variant, columns name and changes."""
    rows = [{"name": name, "changes": changes_text(changes)} for name, changes in (named or {}).items()]
    return pd.DataFrame(rows or [{"name": "baseline", "changes": ""}], columns=["name", "changes"]).astype(str)


def form_state(spec_fields: Mapping[str, Any], prefix: str = NEW_PREFIX, *,
               axes: Mapping[str, Iterable[Any]] | None = None,
               named: Mapping[str, Mapping[str, Any]] | None = None,
               mode: str | None = None, sweep: str = "") -> dict[str, Any]:
    """Widget key -> value that puts a whole scenario (and axes or variants) into a form.

    Fields not in spec_fields get the spec's defaults, so loading a preset or a clone resets the rest.
    Unknown keys (a scenario.json from another version) are ignored.
    """
    from trainlib.dataroot import default_data_dir
    merged = {**DEFAULTS, "data_dir": default_data_dir(), **{k: v for k, v in spec_fields.items() if k in DEFAULTS}}
    state = {field_key(name, prefix): to_widget(name, merged[name]) for name in field_names()}
    axis_items = list((axes or {}).items())
    if len(axis_items) > MAX_AXES:
        raise ValueError(f"at most {MAX_AXES} axes, got {len(axis_items)}")
    for i in range(1, MAX_AXES + 1):
        name, values = axis_items[i - 1] if i <= len(axis_items) else ("", [])
        state[f"{prefix}axis_field_{i}"] = name
        state[f"{prefix}axis_values_{i}"] = ", ".join(value_text(v) for v in values)
    state[f"{prefix}mode"] = mode or ("variants" if named else "grid")
    state[f"{prefix}variants_table"] = variants_table(named)
    state[f"{prefix}sweep"] = sweep
    return state


# ----------------------------------------------------------------------------- reading the form
def _message(exc: SpecError) -> str:
    return str(exc)            # 'lr: must be a number > 0, got -1.0': names the field


def read_fields(raw: Mapping[str, Any]) -> tuple[ScenarioSpec | None, dict[str, str]]:
    """Widget values (text or typed) -> (spec, {}) or (None, {field: message}) with every bad field at once."""
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name, raw_value in raw.items():
        try:
            value = parse_value(name, raw_value) if isinstance(raw_value, str) else raw_value
            value = check_type(name, value)
            if name != "weights":             # weights alone is checked against the model below
                ScenarioSpec.from_dict({name: value})
            values[name] = value
        except SpecError as exc:
            errors[name] = _message(exc)
    if errors:
        return None, errors
    try:
        spec = ScenarioSpec.from_dict(values)
    except SpecError as exc:
        return None, {exc.field: _message(exc)}
    errors = combination_errors(spec)
    return (None, errors) if errors else (spec, {})


def combination_errors(spec: ScenarioSpec) -> dict[str, str]:
    """Mismatches a run would only find when it starts (and fail on): say them in the form instead."""
    errors: dict[str, str] = {}
    if spec.model != "mlp" and spec.dataset not in IMAGE_DATASETS:
        errors["model"] = f"model: {spec.model!r} needs images; dataset {spec.dataset!r} is not images (use mlp)"
    task = task_of(spec.dataset)
    allowed = LOSSES_FOR_TASK[task]
    if spec.loss != "auto" and spec.loss not in allowed:
        errors["loss"] = (f"loss: {spec.loss!r} does not fit a {task} task (dataset {spec.dataset!r}); "
                          f"allowed: auto, {', '.join(allowed)}")
    # Imported here: this function is the only part of the module that needs the server's data root.
    from trainlib.dataroot import data_root_errors
    # Outside the data root nothing is looked at, not even whether the folder exists (that would tell
    # anyone on the network which paths this machine has).
    errors.update(data_root_errors(spec))
    if spec.dataset == "imagefolder" and "data_dir" not in errors and not Path(spec.data_dir).is_dir():
        errors["data_dir"] = (f"data_dir: {spec.data_dir!r} is not a folder; imagefolder needs a folder "
                              f"with one sub-folder of images per class")
    try:
        resolve_device(spec.device)
    except SpecError as exc:
        errors["device"] = _message(exc)
    return errors


def parse_axis(name: str, text: str, base: ScenarioSpec) -> list[Any]:
    """'1e-2, 1e-3' -> [0.01, 0.001] for field `name`; raises SpecError naming the field."""
    if name not in AXIS_FIELDS:
        raise SpecError(name, f"cannot be an axis here; pick one of {', '.join(AXIS_FIELDS)}")
    pieces = [p for p in re.split(r"[,\s]+", text or "") if p]
    if not pieces:
        raise SpecError(name, "give one or more values separated by commas, e.g. "
                              + {"lr": "1e-2, 1e-3", "seed": "0, 1, 2", "batchnorm": "false, true",
                                 "optimizer": "adam, sgd"}.get(name, "…"))
    values: list[Any] = []
    for piece in pieces:
        value = parse_value(name, piece)
        base.replace(**{name: value})         # range check: raises SpecError for lr=-1
        if value in values:
            raise SpecError(name, f"{piece!r} is listed twice")
        values.append(value)
    return values


def build_grid(base: ScenarioSpec, axes: Sequence[tuple[str | None, str | None]]) -> tuple[list[ScenarioSpec], dict]:
    """Specs of the grid over the chosen axes ([base] when none is chosen) and errors by 'axis_i'."""
    chosen: dict[str, list[Any]] = {}
    seen: set[str] = set()
    errors: dict[str, str] = {}
    for i, (name, text) in enumerate(axes, start=1):
        where = f"axis_{i}"
        if not name:
            if (text or "").strip():
                errors[where] = f"axis {i}: pick the field these values are for"
            continue
        if name in seen:
            errors[where] = f"axis {i}: {name} is already an axis above"
            continue
        seen.add(name)
        try:
            chosen[name] = parse_axis(name, text or "", base)
        except SpecError as exc:
            errors[where] = f"axis {i}, {_message(exc)}"
    if errors:
        return [], errors
    if not chosen:
        return [base], {}
    try:
        return grid(base, **chosen), {}
    except SpecError as exc:
        return [], {"axis_1": _message(exc)}


def parse_changes(text: str) -> dict[str, Any]:
    """'weight_decay=1e-5, hidden_sizes=128,128' -> {'weight_decay': 1e-05, 'hidden_sizes': (128, 128)}."""
    merged: list[str] = []
    for piece in (p.strip() for p in re.split(r"[,\n;]", text or "")):
        if not piece:
            continue
        if "=" in piece or not merged:
            merged.append(piece)
        else:
            merged[-1] += "," + piece          # the rest of a tuple value
    changes: dict[str, Any] = {}
    for piece in merged:
        name, eq, value = piece.partition("=")
        name = name.strip().replace("-", "_")
        if not eq or not name:
            raise SpecError("changes", f"expected FIELD=VALUE, got {piece!r}")
        if name in ("name", "tags"):
            raise SpecError(name, "the name goes in the name column; tags come from the sweep")
        field_kind(name)                       # unknown field -> SpecError listing the allowed ones
        if name in changes:
            raise SpecError(name, "is given twice")
        changes[name] = parse_value(name, value)
    return changes


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value).strip()


def build_variants(base: ScenarioSpec, rows: Iterable[Mapping[str, Any]]) -> tuple[list[ScenarioSpec], dict]:
    """Specs of the named variants (rows with 'name' and 'changes') and errors under 'variants'."""
    named: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    for i, row in enumerate(rows, start=1):
        name, text = _cell(row.get("name")), _cell(row.get("changes"))
        if not name and not text:
            continue                           # an empty row the editor added
        try:
            changes = parse_changes(text)
            base.replace(**changes)
        except SpecError as exc:
            problems.append(f"row {i} ({name or 'no name'}): {_message(exc)}")
            continue
        name = name or describe_changes(changes)
        if name in named:
            problems.append(f"row {i}: the name {name!r} is used twice; give each variant its own name")
            continue
        named[name] = changes
    if problems:
        return [], {"variants": "variants: " + "; ".join(problems)}
    if not named:
        return [], {"variants": "variants: add at least one row (a name, and changes such as dropout=0.2)"}
    try:
        return variants(base, named), {}
    except SpecError as exc:
        return [], {"variants": f"variants: {_message(exc)}"}


def sweep_name(text: str | None, count: int, existing: Iterable[str] = (), now: datetime | None = None) -> str | None:
    """The sweep to file runs under: the typed name (made unique: 'regularization-2'), an automatic
    'sweep-<date-time>' for several runs, or None for a single run with no name given."""
    name = (text or "").strip()
    if not name:
        if count <= 1:
            return None
        name = f"sweep-{(now or datetime.now()):%Y%m%d-%H%M%S}"
    taken = {s for s in existing if isinstance(s, str)}
    if name not in taken:
        return name
    n = 2
    while f"{name}-{n}" in taken:
        n += 1
    return f"{name}-{n}"


def tag_sweep(specs: list[ScenarioSpec], sweep: str | None) -> list[ScenarioSpec]:
    if not sweep:
        return specs
    return [s if sweep in s.tags else s.replace(tags=[*s.tags, sweep]) for s in specs]


def read_repeats(text: Any) -> tuple[int, str | None]:
    """(k, None) for the 'Repeat each scenario with k seeds' field, or (1, why it is refused)."""
    raw = str(text if text is not None else "").strip() or "1"
    try:
        k = int(raw)
    except ValueError:
        return 1, f"repeats: a whole number of seeds from 1 to {MAX_REPEATS}, got {raw!r}"
    if not 1 <= k <= MAX_REPEATS:
        return 1, f"repeats: from 1 to {MAX_REPEATS} seeds per scenario, got {k}"
    return k, None


def read_form(raw_fields: Mapping[str, Any], mode: str = "grid",
              axes: Sequence[tuple[str | None, str | None]] = (),
              variant_rows: Iterable[Mapping[str, Any]] = (), sweep: str | None = "",
              existing_sweeps: Iterable[str] = (), now: datetime | None = None, repeats: Any = 1) -> FormResult:
    """The whole New experiment form -> FormResult. Errors of the base fields, the axes and the
    variants are all collected (axes and variants are checked against the defaults when the base is bad).
    `repeats` k > 1 runs every scenario with k seeds (seed, seed+1, ...), named 'NAME · seed S' and
    grouped by NAME on Compare; a seed axis and repeats together are refused."""
    base, errors = read_fields(raw_fields)
    check_base = base or ScenarioSpec()
    if mode == "variants":
        specs, more = build_variants(check_base, variant_rows)
    else:
        specs, more = build_grid(check_base, axes)
    errors.update(more)
    k, why = read_repeats(repeats)
    if why:
        errors["repeats"] = why
    if errors:
        return FormResult([], errors, None)
    try:
        planned = repeat_seeds(specs, k)
    except SpecError as exc:
        return FormResult([], {"repeats": _message(exc)}, None)
    specs, names = [spec for _, spec in planned], [variant for variant, _ in planned]
    name = sweep_name(sweep, len(specs), existing_sweeps, now)
    return FormResult(tag_sweep(specs, name), {}, name, names, k)


# ----------------------------------------------------------------------------- preview
def preview_frame(specs: Sequence[ScenarioSpec]) -> pd.DataFrame:
    """One row per scenario: its name, then the fields that differ between them (or, for one
    scenario, from the defaults). Values are shown as text ('1e-05', 'on', '256x256')."""
    if not specs:
        return pd.DataFrame(columns=["name"])
    dicts = [s.to_dict() for s in specs]
    skip = {"name", "tags"}
    if len(dicts) == 1:
        default = ScenarioSpec().to_dict()
        differ = [k for k in field_names() if k not in skip and dicts[0][k] != default[k]]
    else:
        differ = [k for k in field_names() if k not in skip and len({repr(d[k]) for d in dicts}) > 1]
    # The dataset always shows: training on another dataset than the one in mind must be visible.
    columns = ["dataset", *(k for k in differ if k != "dataset")]
    rows = [{"name": d["name"], **{k: format_value(d[k]) for k in columns}} for d in dicts]
    return pd.DataFrame(rows, columns=["name", *columns])


def shared_settings(specs: Sequence[ScenarioSpec]) -> str:
    """What every scenario of the list trains on, in one line: 'All 4 runs: dataset mnist (data folder
    data/digits) · model mlp 256x256 · adam lr 0.001 · batch 64 · 5 epochs'. The preview table lists
    only what differs, so this line is where a wrong dataset or folder shows before Run."""
    if not specs:
        return ""
    first = specs[0]

    def same(name: str) -> bool:
        return all(getattr(s, name) == getattr(first, name) for s in specs)

    parts = []
    if same("dataset"):
        folder = same("data_dir") and (first.dataset in TORCHVISION_LAYOUT or first.dataset == "imagefolder")
        parts.append(f"dataset {first.dataset}" + (f" (data folder {first.data_dir})" if folder else ""))
    if same("model"):
        widths = first.hidden_sizes if first.model == "mlp" else first.channels if first.model == "cnn" else ()
        shape = f" {format_value(widths)}" if widths and same("hidden_sizes") and same("channels") else ""
        parts.append(f"model {first.model}{shape}")
    if same("optimizer") and same("lr"):
        parts.append(f"{first.optimizer} lr {format_value(first.lr)}")
    if same("batch_size"):
        parts.append(f"batch {first.batch_size}")
    if same("epochs"):
        parts.append(f"{first.epochs} epoch{'s' if first.epochs != 1 else ''}")
    who = "The run" if len(specs) == 1 else f"All {len(specs)} runs"
    return f"{who}: " + " · ".join(parts) if parts else ""


def nice_lr(lr: float) -> float:
    """0.0954548 -> 0.095: two significant digits, what a person would type."""
    return float(f"{lr:.2g}")


# ----------------------------------------------------------------------------- clone and change one knob
def one_knob(spec_fields: Mapping[str, Any], field_name: str, text: str) -> ScenarioSpec:
    """A new scenario: the run's own with one field changed, named by the difference
    ('dropout · lr=0.01'). SpecError naming the field for a bad value, or for no change at all."""
    base = ScenarioSpec.from_dict(dict(spec_fields))
    if field_name not in AXIS_FIELDS:
        raise SpecError(field_name, f"is not a knob here; choose one of {', '.join(AXIS_FIELDS)}")
    value = parse_value(field_name, str(text))
    if value == getattr(base, field_name):
        raise SpecError(field_name, f"is already {format_value(value)} in this run; give another value")
    changes = {field_name: value}
    return base.replace(**changes, name=f"{base.name} · {describe_changes(changes)}")
