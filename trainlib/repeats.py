"""Repeats over seeds: one row per variant, and a verdict per variant against the baseline.

    runs = RunStore().list_runs()
    table = variant_table(runs[runs["sweep"] == "reg"])     # mean ± std of test accuracy over seeds
    for verdict in verdicts(runs[runs["sweep"] == "reg"]):
        print(verdict.text, "-", verdict.test_name)        # 'dropout vs baseline: +0.4 points, within seed noise'

A difference between two variants means something only when it is larger than what changing the
seed alone does: the course's four regularization runs differ by less than that. The verdict comes
from Welch's t-test over the seeds' test accuracies (trainlib.stats), and says "cannot tell" when a
side has a single seed, or when every seed of both sides gave the same value (no spread to judge
by). Only finished runs with a test accuracy count, and each seed once: a seed run twice (a rerun)
is one sample, not two, so the newest of its runs counts.

What is a variant (group_labels): runs of one sweep with the same variant name differ only by their
seed. Runs of two sweeps never share a group (their other settings may differ), nor do runs outside
a sweep (each is its own group).
"""
from __future__ import annotations

import dataclasses
import math
import numbers
import statistics

import pandas as pd

from .stats import welch_t_test

ALPHA = 0.05              # two-sided significance level of the verdicts
BASELINE = "baseline"     # the variant every other one is compared with, when there is one of that name
TEST = "Welch's t-test over seeds"
TABLE_COLUMNS = ["variant", "position", "runs", "finished", "n", "mean_test_acc", "std_test_acc", "min_test_acc",
                 "max_test_acc", "test_accs", "seeds", "run_ids"]


@dataclasses.dataclass(frozen=True)
class Verdict:
    variant: str
    baseline: str
    diff_points: float | None      # mean test accuracy minus the baseline's, in percentage points; None: no data
    p_value: float | None          # two-sided, of TEST; None when a side has fewer than 2 seeds
    text: str                      # 'dropout vs baseline: +0.4 points, within seed noise'
    test_name: str                 # "Welch's t-test over seeds, p = 0.43 (two-sided, alpha 0.05)"


def _text(value) -> str | None:
    return value if isinstance(value, str) and value else None


def group_labels(runs: pd.DataFrame) -> pd.Series:
    """The group of each run (list_runs() rows), as a label, indexed like `runs`: runs that differ
    only by their seed share one.

    A run of a sweep: its variant (its name for a run from before variants were stored); with runs
    of several sweeps in the frame, "variant · sweep", so that two sweeps' "baseline" stay apart. A
    run outside a sweep: its name alone, with " · run_id" when another row has the same label."""
    names = [_text(n) or r for n, r in zip(runs["name"] if "name" in runs else runs["run_id"], runs["run_id"])]
    variants = runs["variant"] if "variant" in runs else pd.Series([None] * len(runs), index=runs.index)
    sweeps = [_text(s) for s in (runs["sweep"] if "sweep" in runs else [None] * len(runs))]
    several = len({s for s in sweeps if s is not None}) > 1
    labels = []
    for name, variant, sweep in zip(names, variants, sweeps):
        if sweep is None:
            labels.append(None)
        else:
            variant = _text(variant) or name
            labels.append(f"{variant} · {sweep}" if several else variant)
    taken = {label for label in labels if label is not None}
    alone = [name for name, label in zip(names, labels) if label is None]
    out = [label if label is not None
           else (name if name not in taken and alone.count(name) == 1 else f"{name} · {run_id}")
           for label, name, run_id in zip(labels, names, runs["run_id"])]
    return pd.Series(out, index=runs.index, dtype=object)


def _number(value) -> float | None:
    """A finite-or-not float, None for what is missing or not a number (None, NaN, NA, text)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def _seed(value) -> int | None:
    """A seed as an exact int (seeds go up to 2^63 - 1: no float on the way), None when unknown."""
    if isinstance(value, numbers.Integral):
        return int(value)
    number = _number(value)
    return int(number) if number is not None and number.is_integer() else None


def variant_table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per variant of `runs` (list_runs() rows, usually one sweep's), in the sweep's order:
    by position, then first appearance. Columns (TABLE_COLUMNS): variant, position (<NA> outside a
    sweep), runs (all of the variant's), finished (state finished), n (finished with a test
    accuracy, one per seed: the runs counted), mean/std/min/max_test_acc over those n (fractions, as
    the engine writes them; std is the sample std, NaN for n < 2), and lists over those n in run
    order: test_accs, seeds (None for a seed a file does not hold) and run_ids. Variants are
    group_labels(runs).

    A seed run more than once counts once: its newest run (by creation time, then run id); runs
    whose seed is unknown all count. Plain Python over the rows: Compare calls this on every redraw,
    and per-group pandas calls cost ~5 ms a variant."""
    if runs.empty:
        return pd.DataFrame(columns=TABLE_COLUMNS)
    labels = group_labels(runs)
    column = lambda name: list(runs[name]) if name in runs else [None] * len(runs)      # noqa: E731
    groups: dict[str, dict] = {}
    for variant, run_id, state, acc, seed, position, created in zip(
            labels, column("run_id"), column("state"), column("test_acc"), column("seed"), column("position"),
            column("created_at")):
        group = groups.setdefault(variant, {"runs": 0, "finished": 0, "positions": [], "counted": {}, "unknown": []})
        group["runs"] += 1
        position = _number(position)
        if position is not None:
            group["positions"].append(int(position))
        acc = _number(acc)
        if not (isinstance(state, str) and state == "finished"):
            continue
        group["finished"] += 1
        if acc is None:
            continue
        seed = _seed(seed)
        entry = (str(created) if isinstance(created, str) else "", str(run_id), acc, run_id)
        if seed is None:
            group["unknown"].append((None, entry))
        elif seed not in group["counted"] or entry[:2] > group["counted"][seed][:2]:
            group["counted"][seed] = entry               # the newest run of this seed
    rows = []
    order = {str(run_id): i for i, run_id in enumerate(column("run_id"))}
    for first_seen, (variant, group) in enumerate(groups.items()):
        kept = sorted([(seed, entry) for seed, entry in group["counted"].items()] + group["unknown"],
                      key=lambda item: order[item[1][1]])                   # run order, as the frame has them
        accs = [entry[2] for _, entry in kept]
        rows.append({"variant": variant, "position": min(group["positions"]) if group["positions"] else pd.NA,
                     "runs": group["runs"], "finished": group["finished"], "n": len(accs),
                     "mean_test_acc": statistics.fmean(accs) if accs else math.nan,
                     "std_test_acc": statistics.stdev(accs) if len(accs) > 1 else math.nan,
                     "min_test_acc": min(accs, default=math.nan), "max_test_acc": max(accs, default=math.nan),
                     "test_accs": accs, "seeds": [seed for seed, _ in kept],
                     "run_ids": [entry[3] for _, entry in kept], "_first_seen": first_seen})
    table = pd.DataFrame(rows)
    table["position"] = table["position"].astype("Int64")
    table = table.sort_values(["position", "_first_seen"], na_position="last", kind="stable")
    return table.reset_index(drop=True)[TABLE_COLUMNS]


def baseline_variant(table: pd.DataFrame) -> str:
    """The variant named 'baseline', else the table's first. ValueError for an empty table."""
    if table.empty:
        raise ValueError("no variants: nothing to compare with")
    names = list(table["variant"])
    return BASELINE if BASELINE in names else names[0]


def format_p(p: float) -> str:
    """'p = 0.43', 'p < 0.001'; a p that would round onto ALPHA keeps its digits ('p = 0.0496')."""
    if p < 0.001:
        return "p < 0.001"
    text = f"{p:.2g}"
    return f"p = {p:.4f}" if float(text) == ALPHA and p != ALPHA else f"p = {text}"


def format_points(diff: float) -> str:
    """'+0.4', '-2.1', '+0.0' (not '-0.0'): percentage points, one decimal, the sign always shown."""
    rounded = round(diff, 1)
    return f"{rounded if rounded != 0 else 0.0:+.1f}"


def compare(variant: str, accs: list[float], baseline: str, base_accs: list[float]) -> Verdict:
    """The verdict of one variant's test accuracies (fractions, one per seed) against the baseline's."""
    head = f"{variant} vs {baseline}:"
    if not accs or not base_accs:
        who = variant if not accs else baseline
        return Verdict(variant, baseline, None, None, f"{head} no finished run of {who} yet",
                       f"{TEST}: needs finished runs on both sides")
    diff = (sum(accs) / len(accs) - sum(base_accs) / len(base_accs)) * 100
    points = f"{head} {format_points(diff)} points"
    if len(accs) < 2 or len(base_accs) < 2:
        return Verdict(variant, baseline, diff, None, f"{points}, one seed: cannot tell",
                       f"{TEST}: needs 2 or more seeds on each side (--repeats 3 gives 3)")
    if len(set(accs)) == 1 and len(set(base_accs)) == 1:
        # No seed changed anything on either side (a small test set, a deterministic model): there is
        # no seed noise to measure the difference against, and Welch's t is undefined.
        return Verdict(variant, baseline, diff, None, f"{points}, every seed gave the same value: cannot tell",
                       f"{TEST}: needs seeds that differ on at least one side")
    _, _, p = welch_t_test(accs, base_accs)
    noise = "larger than seed noise" if p < ALPHA else "within seed noise"
    return Verdict(variant, baseline, diff, p, f"{points}, {noise}",
                   f"{TEST}, {format_p(p)} (two-sided, alpha {ALPHA:g})")


def superseded_run_ids(runs: pd.DataFrame, table: pd.DataFrame | None = None) -> set:
    """Finished runs with a test accuracy that variant_table does not count: an older run of a seed
    run again. The figures leave them out too, so that a chart's winner is the verdicts' winner.
    table: variant_table(runs), when the caller has it already."""
    if runs.empty:
        return set()
    table = variant_table(runs) if table is None else table
    counted = {run_id for ids in table["run_ids"] for run_id in ids}
    finished = (runs["state"] == "finished").fillna(False) & pd.to_numeric(runs["test_acc"], errors="coerce").notna()
    return set(runs.loc[finished.astype(bool), "run_id"]) - counted


def verdicts(runs: pd.DataFrame) -> list[Verdict]:
    """One verdict per variant other than the baseline, in variant_table's order.

    Runs of several sweeps: each sweep's variants against that sweep's own baseline (two sweeps'
    other settings may differ, so a difference across them says nothing about a variant), the
    text led by the sweep's name ("monday: dropout vs baseline: ..."); runs outside a sweep then
    get no verdict."""
    sweeps = list(dict.fromkeys(s for s in runs["sweep"] if isinstance(s, str) and s)) if "sweep" in runs else []
    if len(sweeps) > 1:
        found = []
        for sweep in sweeps:
            for verdict in _verdicts_of_one(runs[runs["sweep"] == sweep]):
                found.append(dataclasses.replace(verdict, text=f"{sweep}: {verdict.text}"))
        return found
    return _verdicts_of_one(runs)


def _verdicts_of_one(runs: pd.DataFrame) -> list[Verdict]:
    table = variant_table(runs)
    if table.empty:
        return []
    baseline = baseline_variant(table)
    accs = dict(zip(table["variant"], table["test_accs"]))
    return [compare(variant, accs[variant], baseline, accs[baseline])
            for variant in table["variant"] if variant != baseline]
