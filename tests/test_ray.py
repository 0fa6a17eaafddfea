"""Runs as Ray tasks on a real local Ray instance: the same run folders as the local executor.

Needs the ray package (requirements-ray.txt, installed by `make test`). Skipped without it, unless
REQUIRE_RAY=1 (CI), where that is a failure.
"""
from __future__ import annotations

import os
import sys
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
    specs = [tiny_spec(name=f"r{i}", seed=i, dropout=0.2, epochs=2) for i in range(3)]
    forever = tiny_spec(name="forever", epochs=100_000)

    local = Runner(tmp_path / "local", workers=2)
    try:
        local_ids = local.submit_many(specs, sweep="same")
        assert local.wait(local_ids, timeout=TIMEOUT)
    finally:
        local.shutdown()

    on_ray = Runner(tmp_path / "ray", workers=4, executor="ray")
    assert on_ray.executor_name == "ray" and "ray" in on_ray.describe_executor()
    try:
        ray_ids = on_ray.submit_many([*specs, forever], sweep="same")
        stopped = ray_ids[-1]
        wait_until(lambda: (read_json(tmp_path / "ray" / stopped / "status.json").get("epoch") or 0) >= 1,
                   timeout=TIMEOUT)
        request_stop(tmp_path / "ray" / stopped)        # what `python -m trainlib stop` writes
        assert on_ray.wait(ray_ids, timeout=TIMEOUT)
    finally:
        on_ray.shutdown()

    for local_id, ray_id in zip(local_ids, ray_ids):
        a, b = tmp_path / "local" / local_id, tmp_path / "ray" / ray_id
        assert read_json(b / "status.json")["state"] == "finished"
        assert folder_files(a) == folder_files(b)
        assert any(p.name.startswith("events.out.tfevents") for p in b.iterdir())
        metrics_a, metrics_b = pd.read_csv(a / "metrics.csv"), pd.read_csv(b / "metrics.csv")
        for column in ("train_loss", "val_loss", "val_acc"):          # same process rules: same curves
            assert metrics_b[column].to_numpy() == pytest.approx(metrics_a[column].to_numpy(), rel=1e-5)
        assert read_json(b / "summary.json")["test_acc"] == pytest.approx(read_json(a / "summary.json")["test_acc"])
    status = read_json(tmp_path / "ray" / stopped / "status.json")
    assert status["state"] == "stopped" and status["epoch"] >= 1


def test_without_ray_the_cli_says_how_to_install_it(monkeypatch, capsys, tmp_path):
    from trainlib.cli import main
    monkeypatch.setitem(sys.modules, "ray", None)           # import ray fails, as on a laptop without it
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--executor", "ray", "--dataset", "moons", "--runs-dir", str(tmp_path / "runs")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--executor: executor 'ray' needs the ray package: pip install -r requirements-ray.txt" in err
