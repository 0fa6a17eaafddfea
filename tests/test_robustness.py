"""No folder, file or name in the runs folder takes a reader down: a thousand good runs written by
hand beside every kind of broken one, read by list_runs, load_run, load_metrics, read_run,
read_spec, the CLI and the Compare page."""
from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import pandas as pd
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from apphelpers import fresh_app_cache
from trainlib import RunStore, ScenarioSpec
from trainlib.cli import main as cli_main
from trainlib.loop import METRIC_COLUMNS
from trainlib.store import RUN_COLUMNS, STATES

GOOD_RUNS = 1000
GOOD_METRICS = ("epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds,samples_per_s\n"
                "1,0.9,0.6,0.8,0.65,0.001,1.5,3000\n2,0.5,0.8,0.6,0.75,0.001,1.4,3100\n")
SPEC = ScenarioSpec(name="x", dataset="moons", hidden_sizes=(8,), epochs=2).to_dict()
STATUS = {"state": "finished", "sweep": "s", "epoch": 2, "epochs": 2, "created_at": "2025-01-01T00:00:00",
          "error": None}
SUMMARY = {"test_acc": 0.75, "test_loss": 0.6, "best_epoch": 2, "best_val_loss": 0.6, "seconds": 2.9}


def write_run(folder: Path | bytes, spec: dict | str | bytes | None = None, status: dict | str | bytes | None = None,
              metrics: str | bytes | None = GOOD_METRICS, summary: dict | str | bytes | None = None) -> None:
    """A run folder written by hand (no training): each file as given, a dict as JSON, None = absent.
    `folder` may be bytes, for names that are not UTF-8."""
    os.makedirs(folder, exist_ok=True)
    files = {"scenario.json": SPEC if spec is None else spec, "status.json": STATUS if status is None else status,
             "metrics.csv": metrics, "summary.json": summary}
    for name, content in files.items():
        if content is None:
            continue
        if isinstance(content, dict):
            content = json.dumps(content)
        data = content.encode() if isinstance(content, str) else content
        with open(os.path.join(folder, os.fsencode(name) if isinstance(folder, bytes) else name), "wb") as handle:
            handle.write(data)


def good_id(i: int) -> str:
    return f"20250101-000000-good-{i:04d}"


# Each broken entry: its name in the runs folder, and what becomes of it: 'skipped' (with a reason
# containing the text given), 'row' (listed, with a problem containing the text given, if any) or
# 'ignored' (a hidden name: the store's own '.runners', a file manager's '.DS_Store').
@pytest.fixture(scope="module")
def runs_folder(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("robust") / "runs"
    root.mkdir()
    for i in range(GOOD_RUNS):
        write_run(root / good_id(i), spec={**SPEC, "name": f"good {i}"}, summary=SUMMARY)
    bad = {}

    def broken(name: str, **files) -> str:
        write_run(root / name, **files)
        return name

    write_run(os.path.join(os.fsencode(root), b"bad\xff"))
    bad["not utf-8 name"] = "bad\\xff"
    (root / "a-file").write_text("not a run")
    bad["file"] = "a-file"
    (root / "empty").mkdir()
    bad["empty"] = "empty"
    bad["status list"] = broken("status-list", status="[1, 2]")
    bad["status binary"] = broken("status-binary", status=b"\xff\xfe\x00\x81binary")
    bad["status truncated"] = broken("status-truncated", status='{"state": "fini')
    bad["status unknown state"] = broken("status-exploded", status={**STATUS, "state": "exploded"})
    bad["status number state"] = broken("status-number", status={**STATUS, "state": 3})
    bad["status odd types"] = broken("status-odd-types", status={**STATUS, "epoch": "abc", "epochs": 10 ** 400,
                                                                "sweep": ["a", 1], "error": {"why": 1}})
    bad["lr 1e400"] = broken("lr-1e400", spec=json.dumps(SPEC).replace('"lr": 0.001', '"lr": 1e400'))
    bad["lr 10**400"] = broken("lr-int", spec=json.dumps(SPEC).replace('"lr": 0.001', f'"lr": {10 ** 400}'))
    bad["unknown keys"] = broken("unknown-keys", spec={**SPEC, "run_id": "hijack", "state": "finished",
                                                       "colour": "red"})
    bad["wrong types"] = broken("wrong-types", spec={**SPEC, "name": ["a"], "hidden_sizes": "8", "tags": [1, 2],
                                                     "epochs": True})
    bad["surrogate in name"] = broken("surrogate", spec=json.dumps(SPEC).replace('"name": "x"', '"name": "\\udcff!"'))
    bad["metrics binary"] = broken("metrics-binary", metrics=b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe")
    bad["metrics no epoch"] = broken("metrics-no-epoch", metrics="loss,acc\n0.5,0.8\n")
    bad["metrics text"] = broken("metrics-text", metrics=GOOD_METRICS.replace("0.6,0.75", "oops,0.75"))
    bad["summary not object"] = broken("summary-list", summary="[0.9]")
    os.symlink(root / "loop", root / "loop")
    bad["symlink loop"] = "loop"
    locked = broken("locked")
    os.chmod(root / locked, 0)
    bad["no permission"] = locked
    (root / ".hidden").mkdir()
    bad["hidden"] = ".hidden"
    bad["spaces"] = broken("2025 name with spaces")
    bad["unicode"] = broken("2025-ünïcødé-✓-运行")
    bad["markdown"] = broken("![x](http:host.png) **bold** `code`")
    yield {"root": root, "bad": bad, "locked_readable": os.access(root / locked / "status.json", os.R_OK)}
    os.chmod(root / locked, 0o755)


EXPECTED = {   # what list_runs makes of each broken entry
    "not utf-8 name": ("skipped", "not valid UTF-8"),
    "file": ("skipped", "a file"),
    "empty": ("skipped", "no scenario.json"),
    "status list": ("skipped", "status.json does not hold a JSON object"),
    "status binary": ("skipped", "status.json is not UTF-8"),
    "status truncated": ("skipped", "status.json is not valid JSON"),
    "status unknown state": ("skipped", "unknown state 'exploded'"),
    "status number state": ("skipped", "unknown state 3"),
    "status odd types": ("row", None),
    "lr 1e400": ("row", "lr"),
    "lr 10**400": ("row", "lr"),
    "unknown keys": ("row", None),
    "wrong types": ("row", "hidden_sizes"),
    "surrogate in name": ("row", None),
    "metrics binary": ("row", None),
    "metrics no epoch": ("row", None),
    "metrics text": ("row", None),
    "summary not object": ("row", "summary.json"),
    "symlink loop": ("skipped", "link"),
    "no permission": ("skipped", "cannot be"),
    "hidden": ("ignored", None),
    "spaces": ("row", None),
    "unicode": ("row", None),
    "markdown": ("row", None),
}


@pytest.fixture(scope="module")
def listing(runs_folder) -> tuple[pd.DataFrame, float]:
    started = time.perf_counter()
    frame = RunStore(runs_folder["root"]).list_runs()
    return frame, time.perf_counter() - started


def test_every_good_run_is_listed_and_every_broken_entry_is_skipped_with_a_reason_or_a_sane_row(runs_folder,
                                                                                                  listing):
    frame, seconds = listing
    bad = runs_folder["bad"]
    assert set(EXPECTED) == set(bad)
    ids = set(frame["run_id"])
    assert {good_id(i) for i in range(GOOD_RUNS)} <= ids
    skipped = dict(frame.attrs["skipped"])
    problems = dict(frame.attrs["problems"])
    for case, (outcome, text) in EXPECTED.items():
        name = bad[case]
        if case == "no permission" and runs_folder["locked_readable"]:
            outcome, text = "row", None            # running as root: the folder is readable all the same
        if outcome == "skipped":
            assert name not in ids and text in skipped[name], (case, skipped.get(name))
        elif outcome == "ignored":
            assert name not in ids and name not in skipped, case
        else:
            assert name in ids and name not in skipped, (case, skipped.get(name))
            if text is not None:
                assert text in problems[name], (case, problems.get(name))
    assert len(frame) + len(skipped) == GOOD_RUNS + len(bad) - 1        # all but the hidden one
    assert seconds < 10, f"listing {len(frame)} runs took {seconds:.1f} s"   # ~1 s here; catches quadratic work


def test_rows_hold_one_type_per_column_whatever_the_files_hold(runs_folder, listing):
    frame, _ = listing
    rows = frame.set_index("run_id")
    bad = runs_folder["bad"]
    assert list(frame.columns) == RUN_COLUMNS
    assert set(frame["state"]) <= set(STATES)
    assert frame["lr"].dtype == "float64" and frame["epoch"].dtype == "int64"
    assert all(isinstance(name, str) and name for name in frame["name"])
    assert math.isnan(rows.loc[bad["lr 1e400"], "lr"]) and math.isnan(rows.loc[bad["lr 10**400"], "lr"])
    odd = rows.loc[bad["status odd types"]]
    assert odd["epoch"] == 0 and odd["epochs"] == 2 and odd["sweep"] == '["a", 1]' and odd["error"] == '{"why": 1}'
    assert "colour" not in frame.columns and rows.loc[bad["unknown keys"], "state"] == "finished"
    wrong = rows.loc[bad["wrong types"]]
    assert wrong["name"] == bad["wrong types"] and pd.isna(wrong["hidden_sizes"]) and pd.isna(wrong["tags"])
    assert rows.loc[bad["surrogate in name"], "name"] == "\\udcff!"
    assert pd.isna(rows.loc[bad["summary not object"], "test_acc"])
    assert rows.loc[good_id(7), "test_acc"] == 0.75 and rows.loc[good_id(7), "hidden_sizes"] == "8"
    # what the CLI and the pages do with the frame: print it, write it, sort it, sum it
    frame.to_string()
    frame.to_csv()
    frame.to_json()
    assert frame.sort_values("run_id")["lr"].notna().sum() == len(frame) - 2


def test_metrics_readers_say_what_is_wrong_and_skip_only_that_run(runs_folder, listing):
    frame, _ = listing
    store = RunStore(runs_folder["root"])
    bad = runs_folder["bad"]
    unreadable = {bad["metrics binary"]: "not UTF-8", bad["metrics no epoch"]: "no 'epoch' column",
                  bad["metrics text"]: "column 'val_loss' holds text ('oops' in data row 2)"}
    for run_id in frame["run_id"]:
        if run_id in unreadable:
            with pytest.raises(ValueError, match=r"^metrics\.csv cannot be read: ") as info:
                store.load_run(run_id)
            assert unreadable[run_id] in str(info.value)
        else:
            metrics = store.load_run(run_id)
            assert list(metrics.columns) == METRIC_COLUMNS and metrics["epoch"].tolist() == [1, 2]
    long = store.load_metrics(list(frame["run_id"]) + [bad["not utf-8 name"], "no-such-run"])
    assert set(long["run_id"]) == set(frame["run_id"]) - set(unreadable)
    skipped = dict(long.attrs["skipped"])
    assert set(skipped) == {*unreadable, bad["not utf-8 name"], "no-such-run"}
    assert all(skipped[run_id].startswith("metrics.csv cannot be read") for run_id in unreadable)


def test_read_run_and_read_spec_raise_only_clear_errors(runs_folder, listing):
    frame, _ = listing
    store = RunStore(runs_folder["root"])
    bad = runs_folder["bad"]
    for name in [*frame["run_id"], *(n for n, _ in frame.attrs["skipped"]), "bad\udcff"]:
        try:
            run = store.read_run(name)
        except (KeyError, ValueError):
            assert name not in set(frame["run_id"])
        else:
            assert set(run) == {"run_id", "spec", "status", "summary", "problems"}
        try:
            store.read_spec(name)
        except KeyError:
            assert name not in set(frame["run_id"])
        except ValueError as exc:        # SpecError is one: it names the field, and the file
            assert "scenario.json" in str(exc), (name, exc)
    with pytest.raises(ValueError, match=r"lr-int/scenario\.json"):
        store.read_spec(bad["lr 10**400"])
    with pytest.raises(ValueError, match=r"^lr: .*lr-1e400/scenario\.json"):
        store.read_spec(bad["lr 1e400"])
    with pytest.raises(KeyError):
        store.read_spec("bad\udcff")              # not an id any page can address


def test_a_poll_reads_only_what_changed(runs_folder, listing, monkeypatch):
    import trainlib.store as store_module
    store = RunStore(runs_folder["root"])
    first = store.list_runs()
    reads = []
    real = store_module.read_json
    monkeypatch.setattr(store_module, "read_json", lambda path: reads.append(path.name) or real(path))
    again = store.list_runs()
    assert reads == [] and again.equals(first)
    monkeypatch.undo()


def test_cli_list_prints_the_runs_and_the_skipped_folders(runs_folder, capsys):
    assert cli_main(["list", "--runs-dir", str(runs_folder["root"])]) == 0
    out, err = capsys.readouterr()
    assert good_id(999) in out and "bad\\xff" in err and "not valid UTF-8" in err


def test_a_runner_starts_and_adopts_past_broken_folders(runs_folder):
    from trainlib import Runner
    runner = Runner(runs_folder["root"], workers=1, executor="thread")
    try:
        assert runner.interrupted_at_start == [] and runner.adopt_orphans() == []   # every readable run is finished
    finally:
        runner.shutdown()


def test_compare_page_stays_up_with_an_out_of_range_scenario(tmp_path, monkeypatch):
    """lr written as a 400-digit integer: the Compare page's table of differing parameters went down."""
    root = tmp_path / "runs"
    write_run(root / "20250101-000000-a", spec={**SPEC, "name": "a"})
    write_run(root / "20250101-000001-b", spec=json.dumps({**SPEC, "name": "b"}).replace('"lr": 0.001',
                                                                                         f'"lr": {10 ** 400}'))
    monkeypatch.setenv("TRAINLIB_RUNS_DIR", str(root))
    fresh_app_cache()
    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "pages" / "compare.py"), default_timeout=60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    tables = [df.value for df in at.dataframe if "run_id" in df.value.columns]
    assert tables and set(tables[0]["run_id"]) == {"20250101-000000-a", "20250101-000001-b"}
    fresh_app_cache()


def test_resuming_a_run_with_an_out_of_range_scenario_is_a_clear_error(tmp_path):
    """read_spec raised OverflowError; the Runs page catches KeyError and ValueError around Resume."""
    from trainlib import Runner
    root = tmp_path / "runs"
    write_run(root / "20250101-000000-big", status={**STATUS, "state": "stopped"},
              spec=json.dumps(SPEC).replace('"lr": 0.001', f'"lr": {10 ** 400}'))
    runner = Runner(root, workers=1, executor="thread")
    try:
        with pytest.raises(ValueError, match=r"20250101-000000-big/scenario\.json"):
            runner.resume("20250101-000000-big")
    finally:
        runner.shutdown()
