"""python -m trainlib: run, sweep, list, export in-process, one real subprocess, and one-line errors."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from trainlib.cli import main
from trainlib.store import read_json

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--dataset", "moons", "--train-subset", "128", "--hidden-sizes", "8", "--batch-size", "32",
        "--lr", "0.01", "--device", "cpu"]


def run_folders(runs_dir: Path) -> list[Path]:
    return sorted(p for p in runs_dir.iterdir() if p.is_dir()) if runs_dir.is_dir() else []


def specs_by_name(runs_dir: Path) -> dict[str, dict]:
    return {read_json(p / "scenario.json")["name"]: read_json(p / "scenario.json") for p in run_folders(runs_dir)}


def test_run_creates_a_finished_run_folder(runs_dir, capsys):
    assert main(["run", *TINY, "--epochs", "2", "--name", "cli run", "--batchnorm"]) == 0
    folders = run_folders(runs_dir)
    assert len(folders) == 1
    status = read_json(folders[0] / "status.json")
    assert status["state"] == "finished" and status["epoch"] == 2
    spec = read_json(folders[0] / "scenario.json")
    assert (spec["name"], spec["dataset"], spec["epochs"], spec["hidden_sizes"], spec["batchnorm"], spec["lr"]) == (
        "cli run", "moons", 2, [8], True, 0.01)
    captured = capsys.readouterr()
    assert folders[0].name in captured.out and "finished" in captured.out
    assert "epoch 2/2" in captured.err                    # the progress lines go to stderr


def test_runs_dir_flag_overrides_the_environment(tmp_path, runs_dir, capsys):
    elsewhere = tmp_path / "elsewhere"
    assert main(["run", *TINY, "--epochs", "1", "--runs-dir", str(elsewhere)]) == 0
    assert len(run_folders(elsewhere)) == 1 and run_folders(runs_dir) == []


def test_sweep_with_the_course_variants(runs_dir, capsys):
    argv = ["sweep", *TINY, "--epochs", "1", "--sweep-name", "reg",
            "--variant", "baseline:", "--variant", "l2:weight_decay=1e-5",
            "--variant", "dropout:dropout=0.2", "--variant", "batchnorm:batchnorm=true"]
    assert main(argv) == 0
    specs = specs_by_name(runs_dir)
    assert set(specs) == {"baseline", "l2", "dropout", "batchnorm"}
    assert (specs["baseline"]["weight_decay"], specs["baseline"]["dropout"], specs["baseline"]["batchnorm"]) == (
        0.0, 0.0, False)
    assert specs["l2"]["weight_decay"] == 1e-5 and specs["l2"]["dropout"] == 0.0
    assert specs["dropout"]["dropout"] == 0.2 and specs["dropout"]["weight_decay"] == 0.0
    assert specs["batchnorm"]["batchnorm"] is True
    assert all(s["tags"] == ["reg"] and s["dataset"] == "moons" for s in specs.values())
    for folder in run_folders(runs_dir):
        status = read_json(folder / "status.json")
        assert status["state"] == "finished" and status["sweep"] == "reg"


def test_sweep_grid(runs_dir, capsys):
    assert main(["sweep", *TINY, "--epochs", "1", "--vary", "lr=0.01,0.001", "--vary", "dropout=0,0.2"]) == 0
    specs = specs_by_name(runs_dir)
    assert set(specs) == {"lr=0.01 dropout=0", "lr=0.01 dropout=0.2", "lr=0.001 dropout=0", "lr=0.001 dropout=0.2"}
    assert specs["lr=0.001 dropout=0.2"]["lr"] == 0.001 and specs["lr=0.001 dropout=0.2"]["dropout"] == 0.2
    tags = {tuple(s["tags"]) for s in specs.values()}
    assert len(tags) == 1 and tags.pop()[0].startswith("sweep-")


def test_list_prints_the_runs(runs_dir, capsys):
    assert main(["list"]) == 0
    assert "no runs" in capsys.readouterr().out
    main(["run", *TINY, "--epochs", "1", "--name", "listed"])
    (runs_dir / "broken").mkdir()
    (runs_dir / "broken" / "status.json").write_text("{")
    capsys.readouterr()
    assert main(["list"]) == 0
    captured = capsys.readouterr()
    run_id = next(p.name for p in run_folders(runs_dir) if p.name != "broken")
    assert run_id in captured.out and "listed" in captured.out and "finished" in captured.out
    assert "skipped broken" in captured.err


def test_export_writes_a_long_csv(runs_dir, tmp_path, capsys):
    main(["run", *TINY, "--epochs", "2", "--name", "one"])
    main(["run", *TINY, "--epochs", "3", "--name", "two"])
    ids = [p.name for p in run_folders(runs_dir)]
    out = tmp_path / "metrics.csv"
    assert main(["export", *ids, "--csv", str(out)]) == 0
    frame = pd.read_csv(out)
    assert list(frame.columns[:3]) == ["run_id", "name", "epoch"]
    assert len(frame) == 5 and set(frame["run_id"]) == set(ids)
    assert frame.groupby("name")["epoch"].apply(list).to_dict() == {"one": [1, 2], "two": [1, 2, 3]}
    assert frame["val_loss"].notna().all()


@pytest.mark.parametrize("argv, named", [
    (["run", "--lr", "-1"], "lr"),
    (["run", "--dropout", "1.5"], "dropout"),
    (["run", "--epochs", "five"], "epochs"),
    (["run", "--dataset", "imagenet"], "dataset"),
    (["run", "--no-such-flag", "1"], "--no-such-flag"),
    (["sweep", "--vary", "nofield=1"], "nofield"),
    (["sweep", "--vary", "lr"], "vary"),
    (["sweep", "--variant", "l2"], "variant"),
    (["sweep", "--epochs", "1"], "--vary"),
    (["sweep", "--variant", "a:", "--workers", "0"], "--workers"),
    (["export", "no-such-run", "--csv", "x.csv"], "no-such-run"),
    (["train"], "train"),
])
def test_bad_input_exits_2_with_one_line_naming_it(argv, named, runs_dir, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and named in lines[0] and "error" in lines[0]
    assert run_folders(runs_dir) == []                     # nothing was started


def test_python_dash_m_trainlib_in_a_subprocess(tmp_path):
    runs = tmp_path / "subprocess-runs"
    env = {**os.environ, "TRAINLIB_RUNS_DIR": str(runs), "TRAINLIB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-m", "trainlib", "run", *TINY, "--epochs", "1", "--name", "sub"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    folders = run_folders(runs)
    assert len(folders) == 1 and read_json(folders[0] / "status.json")["state"] == "finished"
    assert "sub" in done.stdout and "epoch 1/1" in done.stderr
