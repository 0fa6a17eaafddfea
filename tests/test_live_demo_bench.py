"""bench/live_demo.py's pure parts: the ratio and goal table, the fake runs RunStore reads back, the
sweep command, the CPU readings. No browser, no server, no timing asserted (speed is read from the
benchmark, never from a test)."""
from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest

from trainlib import RunStore
from trainlib.cli import build_parser, spec_from_args, specs_of_sweep
from trainlib.history import METRIC_COLUMNS

LIVE_DEMO = Path(__file__).resolve().parents[1] / "bench" / "live_demo.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("trainlib_live_demo", LIVE_DEMO)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def trial(condition: str, cli_s: float, span_s: float | None, cpu: float = 0.0, saw=()):
    return {"condition": condition, "cli_s": cli_s, "span_s": span_s, "server_cpu_s": cpu, "browser_cpu_s": cpu,
            "tabs_saw_sweep": list(saw)}


def test_watch_table_gives_medians_ratios_to_no_browser_and_the_goals_verdicts(bench):
    trials = [trial("no browser", 10.0, 4.0), trial("no browser", 12.0, 6.0),
              trial("one Runs tab", 12.0, 6.0, 1.0, [True]), trial("one Runs tab", 13.0, 6.0, 3.0, [True]),
              trial("three Runs tabs", 20.0, 8.0, 5.0, [True, False, True]),
              trial("one Compare tab", 11.0, None, saw=[True])]
    rows = {row["condition"]: row for row in bench.watch_table(trials)}
    assert list(rows) == ["no browser", "one Runs tab", "one Compare tab", "three Runs tabs"]   # CONDITIONS order
    base = rows["no browser"]
    assert (base["cli_s"], base["span_s"], base["ratio"], base["verdict"]) == (11.0, 5.0, 1.0, "")
    runs = rows["one Runs tab"]
    assert runs["cli_s"] == 12.5 and runs["ratio"] == pytest.approx(12.5 / 11)
    assert runs["span_ratio"] == pytest.approx(1.2) and runs["server_cpu_s"] == 2.0
    assert (runs["goal"], runs["verdict"], runs["span_verdict"]) == (1.25, "pass", "pass")
    three = rows["three Runs tabs"]
    assert three["ratio"] == pytest.approx(20 / 11) and (three["goal"], three["verdict"]) == (1.5, "miss")
    assert three["span_verdict"] == "miss" and three["tabs_saw_sweep"] is False
    compare = rows["one Compare tab"]
    assert compare["span_ratio"] is None and compare["span_verdict"] == "n/a" and compare["verdict"] == "pass"
    table = bench.format_watch_table(bench.watch_table(trials))
    assert "three Runs tabs" in table and "miss/miss" in table and "<=1.50x" in table
    assert "a tab never showed the sweep" in table


def test_verdict_and_median_handle_missing_values(bench):
    assert bench.verdict(1.25, 1.25) == "pass" and bench.verdict(1.26, 1.25) == "miss"
    assert bench.verdict(None, 2.0) == "n/a"
    assert bench.median([None, 3.0, float("nan"), 1.0]) == 2.0 and bench.median([None]) is None


def test_fake_runs_are_read_back_by_the_run_store(bench, tmp_path):
    root = tmp_path / "runs"
    ids = bench.build_fake_runs(root, runs=5, epochs=12, sweep="fake", running=1)
    store = RunStore(root)
    runs = store.list_runs().set_index("run_id")
    assert sorted(runs.index) == sorted(ids) and not runs.attrs["skipped"] and not runs.attrs["problems"]
    assert set(runs["sweep"]) == {"fake"} and runs["lr"].nunique() == 5
    assert runs.loc[ids[-1], "state"] == "running"           # a fresh heartbeat: not shown interrupted
    assert (runs.loc[ids[:-1], "state"] == "finished").all()
    assert runs.loc[ids[:-1], "test_acc"].between(0, 1).all() and runs.loc[ids[-1], "epochs"] == 32
    metrics = store.load_metrics(ids)
    assert not metrics.attrs["skipped"] and list(metrics.columns) == ["run_id", "name", *METRIC_COLUMNS]
    assert len(metrics) == 5 * 12 and metrics.groupby("run_id")["epoch"].max().eq(12).all()
    assert (metrics["val_loss"] > 0).all() and metrics[METRIC_COLUMNS].notna().all().all()

    assert bench.append_epoch(root / ids[-1]) == 13
    assert store.load_run(ids[-1])["epoch"].tolist() == list(range(1, 14))
    status = json.loads((root / ids[-1] / "status.json").read_text())
    assert status["epoch"] == 13 and status["state"] == "running"
    assert store.load_run(ids[0])["epoch"].max() == 12     # the others untouched


def test_the_sweep_command_runs_the_regularization_presets_variants(bench, tmp_path):
    from dashboard.presets import PRESETS
    preset = PRESETS[bench.PRESET_TITLE]
    command = bench.sweep_command(tmp_path / "runs", "watch-x", epochs=3, workers=2)
    assert command[1:4] == ["-m", "trainlib", "sweep"]
    args = build_parser().parse_args(command[3:])
    assert (args.runs_dir, args.sweep_name, args.workers) == (str(tmp_path / "runs"), "watch-x", 2)
    specs = specs_of_sweep(args, spec_from_args(args), "watch-x")
    expected = preset.specs(epochs=3)
    assert [s.name for s in specs] == [s.name for s in expected] == list(preset.variants)
    assert {s.dataset for s in specs} == {"shapes"} and {s.epochs for s in specs} == {3}
    for got, want in zip(specs, expected):
        for field in ("weight_decay", "dropout", "batchnorm", "lr", "hidden_sizes"):
            assert getattr(got, field) == getattr(want, field), (got.name, field)
    assert bench.preset_variant_flags()[1] == preset.base["epochs"]


def test_status_span_is_first_start_to_last_end(bench, tmp_path):
    for name, started, ended in (("a", "2025-01-01T00:00:01+00:00", "2025-01-01T00:00:05+00:00"),
                                 ("b", "2025-01-01T00:00:02+00:00", "2025-01-01T00:00:07.5+00:00")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "status.json").write_text(json.dumps({"started_at": started, "ended_at": ended}))
    assert bench.status_span(bench.run_folders(tmp_path)) == pytest.approx(6.5)
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "status.json").write_text(json.dumps({"started_at": "2025-01-01T00:00:00+00:00"}))
    assert bench.status_span(bench.run_folders(tmp_path)) is None        # a run that has not ended
    (tmp_path / ".runners").mkdir()
    bench.clear_runs(tmp_path)
    assert bench.run_folders(tmp_path) == [] and (tmp_path / ".runners").is_dir()


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_cpu_readings_come_from_proc(bench):
    mine = os.getpid()
    before = bench.tree_cpu(mine)
    sum(i * i for i in range(300_000))          # some CPU time of this process
    after = bench.tree_cpu(mine)
    assert mine in after and after[mine] >= before[mine] and bench.cpu_seconds(mine) > 0
    assert bench.cpu_delta(before, after) >= 0
    assert bench.cpu_seconds(2 ** 22 + 12345) is None      # no such process
