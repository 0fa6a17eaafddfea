"""Tables about runs, as pure functions of DataFrames: what differs, how they ended, which to show.

    runs = store.list_runs()
    chosen = filter_runs(runs, sweeps=[most_recent_sweep(runs)])
    differing_params(chosen)                  # ['dropout', 'weight_decay']: what the comparison is about
    chosen = in_run_order(chosen)             # by sweep (oldest first), position, seed: the order of every chart
    comparison_table(chosen, store.load_metrics(list(chosen["run_id"])))   # one row per run, best test acc first

`runs` frames are RunStore.list_runs() rows (spec fields as columns, tuples joined by ',');
`metrics` frames are RunStore.load_metrics() long tables (run_id, name, epoch, train_loss, ...).
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from trainlib.spec import field_names

SPEC_FIELDS = tuple(field_names())
# Spec fields that label a run rather than configure it; the name is shown anyway.
NOT_PARAMS = ("name",)
RESULT_COLUMNS = ["final_train_loss", "final_val_loss", "final_train_acc", "final_val_acc",
                  "best_val_loss", "best_epoch", "test_acc", "epochs_done", "seconds"]
# What a run without a finished epoch has (test_acc comes from its summary, not its metrics).
NO_RESULTS = {key: None for key in RESULT_COLUMNS if key != "test_acc"}


def _plain(value: Any) -> Any:
    """One comparable form per value: missing values (None, NaN) are all the same."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()          # numpy scalars
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    return str(value)


def differing_params(runs: pd.DataFrame, exclude: Sequence[str] = NOT_PARAMS) -> list[str]:
    """The spec columns whose values are not all equal among the runs, in spec field order."""
    if len(runs) < 2:
        return []
    out = []
    for name in SPEC_FIELDS:
        if name in exclude or name not in runs.columns:
            continue
        values = {repr(_plain(v)) for v in runs[name]}
        if len(values) > 1:
            out.append(name)
    return out


def unique_names(runs: pd.DataFrame) -> dict[str, str]:
    """run_id -> label for legends: the run's name, with the run id's last 4 characters added to
    names that several chosen runs share (two sweeps both have a 'baseline')."""
    names = {run_id: (name if isinstance(name, str) and name else run_id)
             for run_id, name in zip(runs["run_id"], runs.get("name", runs["run_id"]))}
    counts = pd.Series(list(names.values())).value_counts()
    out = {}
    for run_id, name in names.items():
        out[run_id] = f"{name} · {run_id[-4:]}" if counts[name] > 1 else name
    if len(set(out.values())) < len(out):     # still ambiguous: fall back to the whole id
        out = {run_id: f"{name} · {run_id}" for run_id, name in names.items()}
    return out


def with_names(frame: pd.DataFrame, names: dict[str, str]) -> pd.DataFrame:
    """A copy of a runs or metrics frame whose `name` column holds the labels of unique_names()."""
    out = frame.copy()
    out["name"] = out["run_id"].map(names).fillna(out["run_id"]) if len(out) else pd.Series(dtype=object)
    return out


def run_results(metrics: pd.DataFrame, run_id: str) -> dict[str, Any]:
    """Final and best numbers of one run from its metrics rows (None where there is no epoch yet)."""
    rows = metrics[metrics["run_id"] == run_id] if len(metrics) else metrics
    return results_by_run(rows).get(run_id, dict(NO_RESULTS))


def results_by_run(metrics: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """run_results of every run in a long metrics table (a run without rows has none: NO_RESULTS), in
    one pass over its arrays: Compare builds the table on every redraw, and pandas calls per run cost
    ~1 ms each (50 ms for 50 runs)."""
    if metrics.empty:
        return {}
    run_ids = metrics["run_id"].to_numpy(dtype=object)
    epoch = pd.to_numeric(metrics["epoch"], errors="coerce").to_numpy(dtype=float)
    columns = {name: pd.to_numeric(metrics[name], errors="coerce").to_numpy(dtype=float)
               for name in ("train_loss", "val_loss", "train_acc", "val_acc", "seconds")}
    codes, uniques = pd.factorize(run_ids)
    order = np.lexsort((epoch, codes))                       # by run, then by epoch
    bounds = np.flatnonzero(np.diff(codes[order])) + 1
    out = {}
    for rows in np.split(order, bounds):
        values = {name: column[rows] for name, column in columns.items()}
        val_loss = values["val_loss"]
        best = int(np.nanargmin(val_loss)) if (~np.isnan(val_loss)).any() else None

        def last(name: str) -> float | None:
            value = values[name][-1]
            return None if np.isnan(value) else float(value)

        out[uniques[codes[rows[0]]]] = {
            "final_train_loss": last("train_loss"), "final_val_loss": last("val_loss"),
            "final_train_acc": last("train_acc"), "final_val_acc": last("val_acc"),
            "best_val_loss": None if best is None else float(val_loss[best]),
            "best_epoch": None if best is None else int(epoch[rows][best]),
            "epochs_done": int(len(rows)), "seconds": float(np.nansum(values["seconds"]))}
    return out


def _numeric_or_same(column: pd.Series) -> pd.Series:
    """A column of numbers (bools excepted) as a numeric dtype, so that it sorts as numbers (16, 64, 256,
    not 16, 256, 64): whole numbers as Int64, others as float. Anything else is returned unchanged."""
    present = [v for v in column if _plain(v) is not None]
    if not present or any(isinstance(_plain(v), (bool, str)) for v in present):
        return column
    numbers = pd.to_numeric(column, errors="coerce").astype(float)
    if all(float(v).is_integer() for v in numbers.dropna()):
        return numbers.astype("Int64")
    return numbers


def comparison_table(runs: pd.DataFrame, metrics: pd.DataFrame) -> pd.DataFrame:
    """One row per run, the best test accuracy first (runs without one last, ties in the runs' order):
    run_id, name, variant (when the runs have one), state, the differing params (numbers as a numeric
    dtype), final train/val loss and accuracy, best validation loss and its epoch, test accuracy,
    epochs done, seconds.

    Accuracies stay fractions in [0, 1] like the engine's; the page formats them as percent.
    """
    params = differing_params(runs)
    has_variant = "variant" in runs.columns
    results = results_by_run(metrics)
    rows = []
    for _, run in runs.iterrows():
        row = {"run_id": run["run_id"], "name": run.get("name", run["run_id"]), "state": run.get("state")}
        if has_variant:
            variant = run["variant"]
            row["variant"] = variant if isinstance(variant, str) and variant else row["name"]
        for param in params:
            row[param] = run[param]
        row.update(results.get(run["run_id"], NO_RESULTS))
        test_acc = pd.to_numeric(run.get("test_acc"), errors="coerce")
        row["test_acc"] = None if pd.isna(test_acc) else float(test_acc)
        rows.append(row)
    columns = ["run_id", "name", *(["variant"] if has_variant else []), "state", *params, *RESULT_COLUMNS]
    table = pd.DataFrame(rows, columns=columns)
    for column in RESULT_COLUMNS:
        table[column] = pd.to_numeric(table[column], errors="coerce")
    for param in params:
        table[param] = _numeric_or_same(table[param])
    table["best_epoch"] = table["best_epoch"].astype("Int64")
    table["epochs_done"] = table["epochs_done"].astype("Int64")
    # mergesort is stable: equal accuracies (and the runs without one) keep the runs' order.
    return table.sort_values("test_acc", ascending=False, na_position="last", kind="mergesort").reset_index(drop=True)


# ----------------------------------------------------------------------------- one order
def _numbers(runs: pd.DataFrame, column: str) -> pd.Series:
    """A column as floats, missing (absent, None, <NA>, not a number) as +inf: sorts last."""
    if column not in runs.columns:
        return pd.Series(math.inf, index=runs.index)
    return pd.to_numeric(runs[column], errors="coerce").astype(float).fillna(math.inf)


def run_order(runs: pd.DataFrame) -> list[str]:
    """Run ids in the one order every page and chart uses: by sweep, the oldest sweep first (its first
    run id; ids begin with their creation time), then the variant's position in its sweep (the order
    the sweep was planned in), then seed, then run id. A run outside any sweep is a group of its own,
    placed by its own id; runs without a position (old ones) follow the positioned ones of their sweep.
    Numbers sort as numbers, so a batch-size sweep reads bs=16, 64, 256."""
    if runs.empty:
        return []
    frame = runs.reset_index(drop=True)
    ids = frame["run_id"].astype(str)
    sweep = frame["sweep"] if "sweep" in frame.columns else pd.Series(None, index=frame.index)
    named = sweep.map(lambda s: isinstance(s, str) and bool(s))
    group = ids.where(~named, "sweep:" + sweep.astype(str))
    key = pd.DataFrame({"age": ids.groupby(group).transform("min"), "group": group,
                        "position": _numbers(frame, "position"), "seed": _numbers(frame, "seed"), "run_id": ids})
    key = key.sort_values(["age", "group", "position", "seed", "run_id"], kind="mergesort")
    return list(dict.fromkeys(key["run_id"]))


def in_run_order(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs frame reordered by run_order() (a copy, index 0..n-1)."""
    if runs.empty:
        return runs.reset_index(drop=True)
    return select(runs, run_order(runs))


# ----------------------------------------------------------------------------- choosing runs
def _tags_of(value: Any) -> list[str]:
    if not isinstance(value, str) or not value:
        return []
    return [tag for tag in value.split(",") if tag]


def sweeps(runs: pd.DataFrame) -> list[str]:
    """Sweep names, the most recently started sweep first (run ids begin with their creation time)."""
    if runs.empty or "sweep" not in runs.columns:
        return []
    named = runs[runs["sweep"].map(lambda s: isinstance(s, str) and bool(s))]
    latest = named.groupby("sweep")["run_id"].max().sort_values(ascending=False)
    return list(latest.index)


def tags(runs: pd.DataFrame) -> list[str]:
    """Every tag of the runs, sorted."""
    if runs.empty or "tags" not in runs.columns:
        return []
    return sorted({tag for value in runs["tags"] for tag in _tags_of(value)})


def most_recent_sweep(runs: pd.DataFrame) -> str | None:
    found = sweeps(runs)
    return found[0] if found else None


def filter_runs(runs: pd.DataFrame, sweeps: Iterable[str] | None = None, tags: Iterable[str] | None = None,
                states: Iterable[str] | None = None) -> pd.DataFrame:
    """Runs in any of the sweeps, with any of the tags, in any of the states; None = no condition."""
    mask = pd.Series(True, index=runs.index)
    if sweeps is not None:
        mask &= runs["sweep"].isin(list(sweeps)) if "sweep" in runs.columns else False
    if tags is not None:
        wanted = set(tags)
        mask &= runs["tags"].map(lambda v: bool(wanted & set(_tags_of(v)))) if "tags" in runs.columns else False
    if states is not None:
        mask &= runs["state"].isin(list(states))
    return runs[mask]


def default_run_ids(runs: pd.DataFrame, fallback: int = 4) -> list[str]:
    """The runs of the most recent sweep; without any sweep, the `fallback` newest runs."""
    if runs.empty:
        return []
    sweep = most_recent_sweep(runs)
    if sweep is not None:
        return list(filter_runs(runs, sweeps=[sweep])["run_id"])
    return list(runs.sort_values("run_id")["run_id"].iloc[-fallback:])


def select(runs: pd.DataFrame, run_ids: Iterable[str]) -> pd.DataFrame:
    """The rows of run_ids, in the order given."""
    order = [run_id for run_id in run_ids if run_id in set(runs["run_id"])]
    return runs.set_index("run_id", drop=False).loc[order].reset_index(drop=True)
