"""bench/live_demo.py's pure parts: the ratio and goal table, the fake runs RunStore reads back, the
sweep command, the CPU readings, the Compare refresh summary and the chart title it reads the page by. No browser, no server, no timing asserted (speed is read from the
benchmark, never from a test)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from trainlib import RunStore
from trainlib.cli import build_parser, spec_from_args, specs_of_sweep
from trainlib.history import METRIC_COLUMNS

def trial(condition: str, cli_s: float, span_s: float | None, cpu: float = 0.0, saw=()):
    return {"condition": condition, "cli_s": cli_s, "span_s": span_s, "server_cpu_s": cpu, "browser_cpu_s": cpu,
            "tabs_saw_sweep": list(saw)}


def test_watch_table_gives_medians_ratios_to_no_browser_and_the_goals_verdicts(bench):
    trials = [trial("no browser", 10.0, 4.0), trial("no browser", 12.0, 6.0),
              trial("one Runs tab", 12.0, 6.0, 1.0, [True]), trial("one Runs tab", 13.0, 6.0, 3.0, [True]),
              trial("three Runs windows, all shown", 20.0, 8.0, 5.0, [True, False, True]),
              trial("one Compare tab", 11.0, None, saw=[True])]
    rows = {row["condition"]: row for row in bench.watch_table(trials)}
    assert list(rows) == ["no browser", "one Runs tab", "one Compare tab", "three Runs windows, all shown"]
    base = rows["no browser"]
    assert (base["cli_s"], base["span_s"], base["ratio"], base["verdict"]) == (11.0, 5.0, 1.0, "")
    runs = rows["one Runs tab"]
    assert runs["cli_s"] == 12.5 and runs["ratio"] == pytest.approx(12.5 / 11)
    assert runs["span_ratio"] == pytest.approx(1.2) and runs["server_cpu_s"] == 2.0
    assert (runs["goal"], runs["verdict"], runs["span_verdict"]) == (1.25, "pass", "pass")
    three = rows["three Runs windows, all shown"]
    assert three["ratio"] == pytest.approx(20 / 11) and (three["goal"], three["verdict"]) == (1.5, "miss")
    assert three["span_verdict"] == "miss" and three["tabs_saw_sweep"] is False
    compare = rows["one Compare tab"]
    assert compare["span_ratio"] is None and compare["span_verdict"] == "n/a" and compare["verdict"] == "pass"
    table = bench.format_watch_table(bench.watch_table(trials))
    assert "three Runs windows, all shown" in table and "miss/miss" in table and "<=1.50x" in table
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


def test_refresh_summary_gives_net_cpu_medians_and_the_goals_verdict(bench):
    refreshes = [{"server_cpu_ms": 150.0, "point_ms": 400.0, "caption_ms": 500.0, "done_ms": 900.0,
                  "browser_cpu_ms": 90.0},
                 {"server_cpu_ms": 190.0, "point_ms": 700.0, "caption_ms": None, "done_ms": 1000.0,
                  "browser_cpu_ms": 110.0},
                 {"server_cpu_ms": 250.0, "point_ms": None, "caption_ms": 250.0, "done_ms": 450.0,
                  "browser_cpu_ms": 100.0}]
    summary = bench.refresh_summary(refreshes, idle_tab_ms_per_s=20.0)
    # less 20 ms/s x the time until the caption showed the epoch; unknown without that time
    assert [r["net_cpu_ms"] for r in refreshes] == [140.0, None, 245.0]
    assert (summary["n"], summary["median_server_cpu_ms"], summary["median_net_cpu_ms"]) == (3, 190.0, 192.5)
    assert (summary["median_point_ms"], summary["median_caption_ms"], summary["median_done_ms"]) == (550.0, 375.0, 900.0)
    assert summary["median_browser_cpu_ms"] == 100.0
    assert (summary["goal_ms"], summary["verdict"]) == (200.0, "pass")
    assert bench.refresh_summary([{"server_cpu_ms": 201.0, "caption_ms": 100.0}], None)["verdict"] == "miss"
    empty = bench.refresh_summary([], 5.0)
    assert (empty["n"], empty["median_server_cpu_ms"], empty["verdict"]) == (0, None, "n/a")

    result = {"summary": summary, "idle_tab_cpu_ms_per_s": 20.0, "idle_no_tab_cpu_ms_per_s": 1.5, "idle_s": 10.0,
              "load_s": 4.2, "charts": 5}
    text = bench.format_compare_browser(result)
    assert "server CPU per refresh" in text and "190 ms" in text and "goal < 200 ms: pass" in text
    assert "20.0 ms/s with the tab open" in text and "1.5 ms/s with no tab" in text and "5 charts" in text


def test_cpu_rate_is_ms_per_second(bench):
    assert bench.cpu_rate(1.0, 1.5, 10.0) == pytest.approx(50.0)
    assert bench.cpu_rate(None, 1.5, 10.0) is None and bench.cpu_rate(1.0, 1.5, 0.0) is None


def test_the_compare_selectors_match_the_figures(bench, tmp_path):
    """LOSS_TITLE picks the loss overlay, not its per-run panels; the running run's trace holds the most points."""
    from dashboard import figures, tables
    root = tmp_path / "runs"
    ids = bench.build_fake_runs(root, runs=3, epochs=6, sweep="fake", running=1)
    bench.append_epoch(root / ids[-1])
    store = RunStore(root)
    metrics = tables.with_names(store.load_metrics(ids), tables.unique_names(store.list_runs()))
    overlay = figures.curves_overlay(metrics, "loss", "epoch")
    assert overlay.layout.title.text.startswith(bench.LOSS_TITLE)
    for other in (figures.curves_small_multiples(metrics, "loss", "epoch"), figures.curves_overlay(metrics, "acc", "epoch")):
        assert not other.layout.title.text.startswith(bench.LOSS_TITLE)
    longest = max((figures.values(trace.x) for trace in overlay.data), key=len)
    assert longest == list(range(1, 8))          # the running run's trace: epochs 1..7
    assert bench.RUNNING_CAPTION.format(epoch=7) == "running 7/"


def test_compare_flags(bench):
    quick = bench.parse_args(["--out", "x.json", "--quick", "--compare-browser-only"])
    assert quick.compare_browser_only and (quick.compare_refreshes, quick.idle_seconds) == (3, 5.0)
    full = bench.parse_args(["--out", "x.json"])
    assert not full.compare_browser_only and (full.compare_refreshes, full.idle_seconds) == (5, 10.0)
    assert bench.parse_args(["--out", "x.json", "--compare-refreshes", "7"]).compare_refreshes == 7
    with pytest.raises(SystemExit):
        bench.parse_args(["--out", "x.json", "--skip-browser", "--compare-browser-only"])
    assert bench.parse_args(["--out", "x.json", "--watching-only"]).watching_only
    assert bench.parse_args(["--out", "x.json", "--watching-only"]).parts == {"watching"}
    assert bench.parse_args(["--out", "x.json", "--skip-browser"]).parts == {"compare-apptest"}
    assert full.parts == set(bench.PARTS)
    with pytest.raises(SystemExit):
        bench.parse_args(["--out", "x.json", "--watching-only", "--compare-browser-only"])
