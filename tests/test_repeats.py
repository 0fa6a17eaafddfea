"""Repeats over seeds (trainlib/repeats.py): the per-variant table and the verdicts, on run folders
written by hand with known test accuracies."""
from __future__ import annotations

import math
import time

import pandas as pd
import pytest

from trainlib import RunStore, ScenarioSpec
from trainlib.repeats import (Verdict, baseline_variant, format_p, format_points, group_labels, superseded_run_ids,
                              variant_table, verdicts)
from trainlib.runfiles import now_iso, update_status, write_json


def fake_run(store: RunStore, variant: str, seed: int, test_acc: float | None, position: int | None = 0,
             sweep: str | None = "s", state: str = "finished") -> str:
    """A run folder as training leaves it, without training: status and summary written directly."""
    folder = store.new_run(ScenarioSpec(name=f"{variant} · seed {seed}", seed=seed), sweep=sweep, variant=variant,
                           position=position)
    update_status(folder, state=state, ended_at=now_iso() if state != "running" else None, heartbeat_at=now_iso())
    if test_acc is not None:
        write_json(folder / "summary.json", {"test_acc": test_acc, "state": state})
    return folder.name


def sweep_of(store: RunStore, accs: dict[str, list[float]]) -> pd.DataFrame:
    """One sweep: each variant (in the order given, which is their position) with one run per accuracy."""
    for position, (variant, values) in enumerate(accs.items()):
        for seed, acc in enumerate(values):
            fake_run(store, variant, seed, acc, position=position)
    return store.list_runs()


def test_the_table_has_one_row_per_variant_in_position_order(runs_dir):
    store = RunStore()
    # written in another order than planned: the table follows the positions, not the folders
    fake_run(store, "dropout", 0, 0.9696, position=2)
    fake_run(store, "baseline", 0, 0.9769, position=0)
    fake_run(store, "dropout", 1, 0.9702, position=2)
    fake_run(store, "l2", 0, 0.9773, position=1)
    fake_run(store, "baseline", 1, 0.9741, position=0)
    fake_run(store, "baseline", 2, 0.9755, position=0)
    fake_run(store, "dropout", 2, None, position=2, state="running")      # not finished: not counted
    table = variant_table(store.list_runs())
    assert list(table["variant"]) == ["baseline", "l2", "dropout"]
    assert list(table["position"]) == [0, 1, 2]
    rows = table.set_index("variant")
    assert list(rows["runs"]) == [3, 1, 3] and list(rows["n"]) == [3, 1, 2] and list(rows["finished"]) == [3, 1, 2]
    assert rows.loc["baseline", "mean_test_acc"] == pytest.approx(0.9755)
    assert rows.loc["baseline", "std_test_acc"] == pytest.approx(0.0014)                  # sample std
    assert (rows.loc["baseline", "min_test_acc"], rows.loc["baseline", "max_test_acc"]) == (0.9741, 0.9769)
    assert sorted(rows.loc["baseline", "seeds"]) == [0, 1, 2]
    assert sorted(rows.loc["dropout", "test_accs"]) == [0.9696, 0.9702]
    assert sorted(rows.loc["dropout", "seeds"]) == [0, 1]
    assert len(rows.loc["dropout", "run_ids"]) == 2
    assert math.isnan(rows.loc["l2", "std_test_acc"]) and rows.loc["l2", "mean_test_acc"] == 0.9773


def test_runs_without_a_position_come_after_in_first_appearance_and_old_runs_group_by_name(runs_dir):
    store = RunStore()
    fake_run(store, "b", 0, 0.5, position=None)
    fake_run(store, "a", 0, 0.6, position=None)
    fake_run(store, "z", 0, 0.7, position=0)
    runs = store.list_runs().set_index("variant").loc[["b", "a", "z"]].reset_index()
    assert list(variant_table(runs)["variant"]) == ["z", "b", "a"]
    old = runs.drop(columns=["variant"])                          # a frame from before variants: by name
    assert list(variant_table(old)["variant"]) == ["z · seed 0", "b · seed 0", "a · seed 0"]
    assert variant_table(store.list_runs().head(0)).empty


def test_the_baseline_is_the_variant_named_baseline_else_the_first():
    assert baseline_variant(pd.DataFrame({"variant": ["l2", "baseline", "dropout"]})) == "baseline"
    assert baseline_variant(pd.DataFrame({"variant": ["lr=0.1", "lr=0.01"]})) == "lr=0.1"
    with pytest.raises(ValueError):
        baseline_variant(pd.DataFrame({"variant": []}))


def test_a_difference_within_seed_noise_and_one_larger_than_it(runs_dir):
    runs = sweep_of(RunStore(), {"l2": [0.9741, 0.9760, 0.9730, 0.9752],
                                 "baseline": [0.9769, 0.9710, 0.9748, 0.9725],
                                 "dropout": [0.9550, 0.9540, 0.9565, 0.9548]})
    found = verdicts(runs)
    assert [v.variant for v in found] == ["l2", "dropout"] and {v.baseline for v in found} == {"baseline"}
    l2, dropout = found
    assert l2.diff_points == pytest.approx(0.0775) and l2.p_value > 0.05
    assert l2.text == "l2 vs baseline: +0.1 points, within seed noise"
    assert dropout.diff_points == pytest.approx(-1.8725) and dropout.p_value < 0.05
    assert dropout.text == "dropout vs baseline: -1.9 points, larger than seed noise"
    assert dropout.test_name == "Welch's t-test over seeds, p < 0.001 (two-sided, alpha 0.05)"
    assert l2.test_name == f"Welch's t-test over seeds, p = {l2.p_value:.2g} (two-sided, alpha 0.05)"


def test_a_single_seed_cannot_tell(runs_dir):
    runs = sweep_of(RunStore(), {"baseline": [0.9769, 0.9741], "dropout": [0.9809]})
    (verdict,) = verdicts(runs)
    assert verdict == Verdict("dropout", "baseline", pytest.approx(0.54), None,
                              "dropout vs baseline: +0.5 points, one seed: cannot tell", verdict.test_name)
    assert "Welch's t-test" in verdict.test_name and "2 or more seeds" in verdict.test_name


def test_only_finished_runs_with_a_test_accuracy_count(runs_dir):
    store = RunStore()
    for seed, acc in enumerate([0.90, 0.91, 0.92]):
        fake_run(store, "baseline", seed, acc, position=0)
    fake_run(store, "wide", 0, 0.99, position=1)
    fake_run(store, "wide", 1, 0.10, position=1, state="stopped")       # a stopped run's test_acc is no result
    fake_run(store, "wide", 2, None, position=1)                         # finished, no test accuracy
    table = variant_table(store.list_runs()).set_index("variant")
    assert (table.loc["wide", "runs"], table.loc["wide", "finished"], table.loc["wide", "n"]) == (3, 2, 1)
    (verdict,) = verdicts(store.list_runs())
    assert verdict.text == "wide vs baseline: +8.0 points, one seed: cannot tell"


def test_a_variant_with_no_finished_run_says_so(runs_dir):
    store = RunStore()
    sweep_of(store, {"baseline": [0.9, 0.91]})
    fake_run(store, "late", 0, None, position=1, state="running")
    (verdict,) = verdicts(store.list_runs())
    assert verdict.diff_points is None and verdict.p_value is None
    assert verdict.text == "late vs baseline: no finished run of late yet"
    assert verdicts(store.list_runs().head(0)) == []


def test_seeds_that_all_agree_on_both_sides_cannot_tell(runs_dir):
    # Welch's t is undefined without any spread; "larger than seed noise" for 0.92 vs 0.90 would be
    # a claim about a noise nobody measured.
    same, apart = verdicts(sweep_of(RunStore(), {"baseline": [0.9, 0.9], "copy": [0.9, 0.9], "other": [0.92, 0.92]}))
    assert same.p_value is None and same.text == "copy vs baseline: +0.0 points, every seed gave the same value: cannot tell"
    assert apart.p_value is None and apart.text.startswith("other vs baseline: +2.0 points, every seed gave the same")


def test_a_seed_run_twice_counts_once_the_newest(runs_dir):
    store = RunStore()
    fake_run(store, "baseline", 0, 0.90)
    fake_run(store, "baseline", 1, 0.92)
    fake_run(store, "wide", 0, 0.93, position=1)
    time.sleep(0.01)                                # created_at has milliseconds: the reruns come later
    fake_run(store, "baseline", 1, 0.95)            # seed 1 again (a rerun): its newest run counts
    fake_run(store, "wide", 0, 0.94, position=1)    # one seed twice is still one seed
    table = variant_table(store.list_runs()).set_index("variant")
    assert (table.loc["baseline", "runs"], table.loc["baseline", "n"]) == (3, 2)
    assert sorted(table.loc["baseline", "test_accs"]) == [0.90, 0.95]
    assert (table.loc["wide", "n"], table.loc["wide", "test_accs"]) == (1, [0.94])
    (verdict,) = verdicts(store.list_runs())
    assert verdict.text.endswith("one seed: cannot tell")


def test_groups_never_span_two_sweeps_nor_runs_outside_a_sweep(runs_dir):
    store = RunStore()
    for sweep in ("monday", "tuesday"):
        for seed, acc in enumerate([0.90, 0.91]):
            fake_run(store, "baseline", seed, acc, sweep=sweep)
    alone = [fake_run(store, "solo", seed, 0.8, sweep=None, position=None) for seed in (0, 1)]
    runs = store.list_runs()
    labels = dict(zip(runs["run_id"], group_labels(runs)))
    assert sorted(set(labels.values()) - {labels[r] for r in alone}) == ["baseline · monday", "baseline · tuesday"]
    assert {labels[r] for r in alone} == {"solo · seed 0", "solo · seed 1"}      # names differ: as they are
    table = variant_table(runs).set_index("variant")
    assert table.loc["baseline · monday", "n"] == 2 and table.loc["baseline · tuesday", "n"] == 2
    one_sweep = runs[runs["sweep"] == "monday"]
    assert set(group_labels(one_sweep)) == {"baseline"}                          # one sweep: the variant alone
    twins = pd.DataFrame({"run_id": ["a", "b"], "name": ["same", "same"], "sweep": [None, None]})
    assert list(group_labels(twins)) == ["same · a", "same · b"]                # outside a sweep: never grouped


def test_numbers_in_the_verdicts():
    assert [format_points(d) for d in (0.4, -2.14, 0.04, -0.04, 12.25)] == ["+0.4", "-2.1", "+0.0", "+0.0", "+12.2"]
    assert [format_p(p) for p in (0.43, 1.0, 0.012, 0.0496, 0.05, 0.0004)] == [
        "p = 0.43", "p = 1", "p = 0.012", "p = 0.0496", "p = 0.05", "p < 0.001"]


def test_two_sweeps_get_verdicts_each_against_its_own_baseline(runs_dir):
    store = RunStore()
    for sweep, shift in (("monday", 0.0), ("tuesday", -0.3)):
        for position, (variant, accs) in enumerate({"baseline": [0.90, 0.91, 0.92],
                                                     "dropout": [0.80, 0.81, 0.80]}.items()):
            for seed, acc in enumerate(accs):
                fake_run(store, variant, seed, acc + shift, position=position, sweep=sweep)
    found = verdicts(store.list_runs())          # in the frame's order of sweeps
    assert sorted(v.text for v in found) == ["monday: dropout vs baseline: -10.7 points, larger than seed noise",
                                       "tuesday: dropout vs baseline: -10.7 points, larger than seed noise"]


def test_an_older_run_of_a_seed_run_again_is_superseded_and_odd_frames_do_not_break_the_table(runs_dir):
    store = RunStore()
    old = fake_run(store, "a", 0, 0.90)
    time.sleep(0.01)
    new = fake_run(store, "a", 0, 0.70)
    fake_run(store, "a", 1, 0.80)
    runs = store.list_runs()
    assert superseded_run_ids(runs) == {old} and new not in superseded_run_ids(runs)
    # Run ids that are not text, a state column with missing values: no exception, ids kept as given.
    odd = pd.DataFrame({"run_id": [1, 2, 3], "name": ["x", "x", "x"], "sweep": ["s", "s", "s"],
                        "variant": ["v", "v", "v"], "seed": [0, 1, 2], "test_acc": [0.5, 0.6, 0.7],
                        "state": pd.array(["finished", None, "finished"], dtype="string")})
    (row,) = variant_table(odd).to_dict("records")
    assert row["run_ids"] == [1, 3] and row["n"] == 2 and row["runs"] == 3
