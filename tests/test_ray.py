"""Runs as Ray tasks on a real local Ray instance: the same run folders as the local executor.

Needs the ray package (requirements-ray.txt, installed by `make test`). Skipped without it, unless
REQUIRE_RAY=1 (CI), where that is a failure.
"""
from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import pandas as pd
import pytest

from apphelpers import wait_until
from trainlib import Runner
from trainlib.liveness import request_stop
from trainlib.runfiles import read_json

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 180


@pytest.fixture(scope="module")
def local_ray():
    try:
        import ray
    except ImportError:
        if os.environ.get("REQUIRE_RAY") == "1":
            pytest.fail("REQUIRE_RAY=1 but the ray package is missing (pip install -r requirements-ray.txt)")
        pytest.skip("no ray package (pip install -r requirements-ray.txt)")
    # The test's own instance: 2 CPUs, workers that import trainlib from this checkout.
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(REPO)}})
    yield ray
    ray.shutdown()


def folder_files(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir() if not p.name.startswith("events.out.tfevents")}


def test_a_sweep_on_ray_writes_the_folders_the_local_executor_writes(local_ray, tiny_spec, tmp_path):
    base = tiny_spec(hidden_sizes=(16,), dropout=0.2, epochs=2)
    specs = [base.replace(name=f"r{i}", seed=i, tags=["same"]) for i in range(3)]

    local = Runner(tmp_path / "local", workers=2)
    try:
        local_ids = local.submit_many(specs, sweep="same")
        assert local.wait(local_ids, timeout=TIMEOUT)
    finally:
        local.shutdown()

    # The same sweep through the command line's --executor ray (the instance above is the one it uses),
    # with a fourth run that only ends when a stop request reaches it through its folder.
    from trainlib.cli import main
    ray_dir = tmp_path / "ray"
    argv = ["sweep", "--executor", "ray", "--runs-dir", str(ray_dir), "--sweep-name", "same",
            "--dataset", "moons", "--train-subset", "256", "--hidden-sizes", "16", "--batch-size", "32",
            "--lr", "0.01", "--device", "cpu", "--dropout", "0.2", "--epochs", "2",
            *[f"--variant=r{i}:seed={i}" for i in range(3)], "--variant=forever:epochs=100000,dropout=0"]
    exit_code = []
    command = threading.Thread(target=lambda: exit_code.append(main(argv)))
    command.start()
    try:
        def forever_folder():
            folders = [p for p in ray_dir.glob("*-forever-*")] if ray_dir.is_dir() else []
            return folders[0] if folders and (read_json(folders[0] / "status.json").get("epoch") or 0) >= 1 else None
        wait_until(lambda: forever_folder() is not None, timeout=TIMEOUT)
        stopped = forever_folder()
        request_stop(stopped)                           # what `python -m trainlib stop` writes
    finally:
        command.join(TIMEOUT)
    assert exit_code == [1]                             # not every run finished: one was stopped
    by_name = {read_json(p / "scenario.json")["name"]: p.name for p in ray_dir.iterdir() if not p.name.startswith(".")}
    ray_ids = [by_name[f"r{i}"] for i in range(3)]

    for local_id, ray_id in zip(local_ids, ray_ids):
        a, b = tmp_path / "local" / local_id, ray_dir / ray_id
        assert read_json(b / "status.json")["state"] == "finished"
        assert folder_files(a) == folder_files(b)
        assert any(p.name.startswith("events.out.tfevents") for p in b.iterdir())
        metrics_a, metrics_b = pd.read_csv(a / "metrics.csv"), pd.read_csv(b / "metrics.csv")
        for column in ("train_loss", "val_loss", "val_acc"):          # same process rules: same curves
            assert metrics_b[column].to_numpy() == pytest.approx(metrics_a[column].to_numpy(), rel=1e-5)
        assert read_json(b / "summary.json")["test_acc"] == pytest.approx(read_json(a / "summary.json")["test_acc"])
    status = read_json(stopped / "status.json")
    assert status["state"] == "stopped" and status["epoch"] >= 1


def test_without_ray_the_cli_says_how_to_install_it(monkeypatch, capsys, tmp_path):
    from trainlib.cli import main
    monkeypatch.setitem(sys.modules, "ray", None)           # import ray fails, as on a laptop without it
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--executor", "ray", "--dataset", "moons", "--runs-dir", str(tmp_path / "runs")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--executor: executor 'ray' needs the ray package: pip install -r requirements-ray.txt" in err
