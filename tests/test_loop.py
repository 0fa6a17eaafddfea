"""The training loop: records, fast path = plain path, early stopping, checkpoints, resume,
divergence, stopping, failures, tasks and losses, schedulers, optimizers, engine choice, lr finder."""
from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
from torch import nn

from trainlib import History, SpecError, create_scenario, fit, train
from trainlib.loop import METRIC_COLUMNS
from trainlib.lr_finder import find_lr
from trainlib.scenario import graph_blocker
from trainlib.store import CHECKPOINT


def state_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k].cpu(), b[k].cpu()) for k in a)


def load_ckpt(folder):
    return torch.load(folder / CHECKPOINT, map_location="cpu", weights_only=False)


def test_train_returns_a_finished_history(tiny_spec):
    S = create_scenario(tiny_spec(epochs=3))
    history = train(S)
    assert isinstance(history, History)
    assert history.state == "finished" and history.error is None
    assert 0.0 <= history.test_acc <= 1.0 and math.isfinite(history.test_loss)
    assert history.test_acc > 0.7                # moons are learnable in 3 short epochs
    frame = history.to_frame()
    assert list(frame.columns) == METRIC_COLUMNS
    assert frame["epoch"].tolist() == [1, 2, 3]
    assert (frame["lr"] == 1e-2).all()
    assert frame["train_loss"].iloc[-1] < frame["train_loss"].iloc[0]
    assert frame["val_acc"].between(0, 1).all() and (frame["samples_per_s"] > 0).all()
    assert history.best_epoch in (1, 2, 3) and history.best_val_loss == frame["val_loss"].min()
    summary = history.summary()
    assert summary["state"] == "finished" and summary["epochs_run"] == 3 and summary["test_acc"] == history.test_acc


def test_fit_yields_one_record_per_epoch(tiny_spec):
    S = create_scenario(tiny_spec(epochs=3))
    records = list(fit(S))
    assert [r["epoch"] for r in records] == [1, 2, 3]
    assert all(list(r) == METRIC_COLUMNS for r in records)
    assert records[0]["train_loss"] > 0 and 0 <= records[0]["train_acc"] <= 1
    later = list(fit(create_scenario(tiny_spec(epochs=3)), start_epoch=3))
    assert [r["epoch"] for r in later] == [3]


@pytest.mark.parametrize("changes", [
    dict(dataset="moons", dropout=0.2),
    dict(dataset="shapes", hidden_sizes=(32, 16), batchnorm=True, drop_last=True),
])
def test_fast_path_equals_plain_path(tiny_spec, changes):
    """Resident data + randperm batches gives the same numbers as the DataLoader path, same seed."""
    fast = train(create_scenario(tiny_spec(epochs=2, batch_size=30, **changes)))
    plain = train(create_scenario(tiny_spec(epochs=2, batch_size=30, resident_data=False, **changes)))
    assert fast.state == plain.state == "finished"
    for f, p in zip(fast.records, plain.records, strict=True):
        for key in ("train_loss", "val_loss", "train_acc", "val_acc"):
            assert f[key] == pytest.approx(p[key], abs=1e-5)
    assert fast.test_loss == pytest.approx(plain.test_loss, abs=1e-5)


def test_same_seed_same_run_other_seed_other_run(tiny_spec):
    a = train(create_scenario(tiny_spec(seed=3)))
    b = train(create_scenario(tiny_spec(seed=3)))
    c = train(create_scenario(tiny_spec(seed=4)))
    assert [r["train_loss"] for r in a.records] == [r["train_loss"] for r in b.records]
    assert [r["train_loss"] for r in a.records] != [r["train_loss"] for r in c.records]


def spoil_after_first_epoch(S):
    """An on_epoch callback that wrecks the weights after epoch 1 and slows learning to a crawl,
    so no later epoch can beat epoch 1."""
    def on_epoch(record):
        if record["epoch"] == 1:
            with torch.no_grad():
                for p in S.model.parameters():
                    p.add_(torch.randn_like(p) * 3)
            for group in S.optimizer.param_groups:
                group["lr"] = 1e-8
    return on_epoch


def test_early_stopping_restores_the_best_epochs_weights(tiny_spec, tmp_path):
    S = create_scenario(tiny_spec(epochs=6, early_stopping_patience=1), log_folder=tmp_path / "run")
    history = train(S, on_epoch=spoil_after_first_epoch(S))
    assert history.state == "finished" and history.early_stopped
    assert [r["epoch"] for r in history.records] == [1, 2]
    assert history.records[1]["val_loss"] > history.records[0]["val_loss"]
    assert history.best_epoch == 1
    checkpoint = load_ckpt(tmp_path / "run")
    assert checkpoint["epoch"] == 1 and checkpoint["best_loss"] == history.best_val_loss
    assert state_equal(S.model.state_dict(), checkpoint["model_state"])
    # the test metrics are those of the restored model
    assert history.test_loss < history.records[1]["val_loss"]


def test_without_patience_every_epoch_runs_and_the_last_weights_stay(tiny_spec, tmp_path):
    S = create_scenario(tiny_spec(epochs=3), log_folder=tmp_path / "run")
    history = train(S, on_epoch=spoil_after_first_epoch(S))
    assert [r["epoch"] for r in history.records] == [1, 2, 3] and not history.early_stopped
    assert history.best_epoch == 1 and load_ckpt(tmp_path / "run")["epoch"] == 1
    assert not state_equal(S.model.state_dict(), load_ckpt(tmp_path / "run")["model_state"])


def test_checkpoint_holds_model_and_optimizer(tiny_spec, tmp_path):
    S = create_scenario(tiny_spec(epochs=2), log_folder=tmp_path / "run")
    history = train(S)
    checkpoint = load_ckpt(tmp_path / "run")
    assert {"epoch", "best_loss", "model_state", "optim_state"} <= set(checkpoint)
    assert checkpoint["epoch"] == history.best_epoch
    assert checkpoint["best_loss"] == pytest.approx(history.best_val_loss)
    assert checkpoint["model_state"].keys() == S.model.state_dict().keys()
    assert checkpoint["spec"] == S.spec.to_dict()


def test_resume_continues_after_the_checkpoint_with_the_optimizer_state(tiny_spec, tmp_path):
    folder = tmp_path / "run"
    spec = tiny_spec(epochs=4)
    S = create_scenario(spec, log_folder=folder)
    batches = len(S.train_loader)
    reached = []
    stopped = train(S, on_epoch=lambda r: reached.append(r["epoch"]), should_stop=lambda: len(reached) >= 2)
    assert stopped.state == "stopped" and reached == [1, 2]
    checkpoint = load_ckpt(folder)
    done = checkpoint["epoch"]
    assert done in (1, 2)
    assert checkpoint["optim_state"]["state"][0]["step"].item() == done * batches   # Adam's step count

    S2 = create_scenario(spec, log_folder=folder)
    resumed = train(S2, resume=True)
    assert resumed.state == "finished"
    assert [r["epoch"] for r in resumed.records] == [1, 2, 3, 4]
    # Adam kept counting from the checkpoint: a fresh optimizer would be at (4 - done) * batches
    assert S2.optimizer.state_dict()["state"][0]["step"].item() == 4 * batches
    metrics = pd.read_csv(folder / "metrics.csv")
    assert metrics["epoch"].tolist() == [1, 2, 3, 4]
    # the epochs before the checkpoint are the original ones, untouched
    first = stopped.records[:done]
    assert metrics["train_loss"].iloc[:done].tolist() == pytest.approx([r["train_loss"] for r in first])


def test_resume_without_a_checkpoint_fails_clearly(tiny_spec, tmp_path):
    history = train(create_scenario(tiny_spec(), log_folder=tmp_path / "empty"), resume=True)
    assert history.state == "failed" and CHECKPOINT in history.error
    history = train(create_scenario(tiny_spec()), resume=True)
    assert history.state == "failed" and "log_folder" in history.error


def test_divergence_is_detected_and_names_the_epoch(tiny_spec, tmp_path):
    S = create_scenario(tiny_spec(dataset="sine", loss="mse", lr=1e6, optimizer="sgd", epochs=3),
                        log_folder=tmp_path / "run")
    history = train(S)
    assert history.state == "diverged"
    assert "epoch 1" in history.error and history.records == []
    assert history.test_acc is None and history.test_loss is None


def test_divergence_in_a_later_epoch_names_that_epoch(tiny_spec):
    S = create_scenario(tiny_spec(dataset="sine", optimizer="sgd", lr=1e-2, epochs=4))

    def blow_up(record):
        for group in S.optimizer.param_groups:
            group["lr"] = 1e6

    history = train(S, on_epoch=blow_up)
    assert history.state == "diverged"
    assert "epoch 2" in history.error
    assert [r["epoch"] for r in history.records] == [1]


def test_should_stop_gives_stopped_not_failed(tiny_spec, tmp_path):
    S = create_scenario(tiny_spec(epochs=5), log_folder=tmp_path / "run")
    calls = []

    def should_stop():
        calls.append(1)
        return len(calls) > 3                     # stop inside the first epoch, between batches

    history = train(S, should_stop=should_stop)
    assert history.state == "stopped" and history.error is None
    assert history.records == [] and history.test_acc is None


def test_a_failure_inside_training_is_recorded_not_raised(tiny_spec, tmp_path):
    S = create_scenario(tiny_spec(), log_folder=tmp_path / "run")
    S.train_loader = [(torch.randn(4, 3), torch.zeros(4, dtype=torch.long))]   # 3 features for a 2-input model
    history = train(S)
    assert history.state == "failed"
    assert history.error.startswith("RuntimeError: ")


def test_regression_on_sine_uses_mse_with_nan_accuracy(tiny_spec):
    S = create_scenario(tiny_spec(dataset="sine", epochs=3, hidden_sizes=(32, 32)))
    assert S.loss_name == "mse" and isinstance(S.loss_fn, nn.MSELoss) and S.task == "regression"
    history = train(S)
    assert history.state == "finished"
    assert all(math.isnan(r["val_acc"]) and math.isnan(r["train_acc"]) for r in history.records)
    assert history.test_acc is None and math.isfinite(history.test_loss)
    assert history.records[-1]["val_loss"] < history.records[0]["val_loss"]


def test_binary_uses_bce_with_one_output(tiny_spec):
    S = create_scenario(tiny_spec(dataset="moons"))
    assert S.loss_name == "bce" and isinstance(S.loss_fn, nn.BCEWithLogitsLoss)
    x, _ = next(iter(S.valid_loader))
    assert S.model(x).shape == (len(x), 1)
    history = train(S)
    assert 0 <= history.test_acc <= 1
    ce = create_scenario(tiny_spec(dataset="moons", loss="cross_entropy"))
    assert ce.model(x).shape == (len(x), 2)


def test_multiclass_uses_cross_entropy(tiny_spec):
    S = create_scenario(tiny_spec(dataset="shapes"))
    assert S.loss_name == "cross_entropy" and S.model(next(iter(S.valid_loader))[0]).shape[1] == 3


@pytest.mark.parametrize("changes, field", [
    (dict(dataset="shapes", loss="mse"), "loss"),
    (dict(dataset="sine", loss="cross_entropy"), "loss"),
    (dict(dataset="moons", model="cnn"), "model"),
    (dict(dataset="sine", model="resnet18"), "model"),
])
def test_bad_combinations_name_the_field(tiny_spec, changes, field):
    with pytest.raises(SpecError) as info:
        create_scenario(tiny_spec(**changes))
    assert info.value.field == field


@pytest.mark.parametrize("scheduler, expected", [
    ("none", [0.1, 0.1, 0.1, 0.1]),
    ("linear", [0.1, 0.067, 0.034, 0.001]),          # reaches lr_end at the last epoch
    ("cosine", [0.1, 0.07525, 0.02575, 0.001]),      # eta_min + (lr - eta_min) * (1 + cos(pi t / 3)) / 2
])
def test_epoch_schedulers_set_each_epochs_lr(tiny_spec, scheduler, expected):
    history = train(create_scenario(tiny_spec(epochs=4, lr=0.1, lr_end=1e-3, optimizer="sgd", scheduler=scheduler)))
    assert [r["lr"] for r in history.records] == pytest.approx(expected, rel=1e-6)


def test_onecycle_steps_every_batch(tiny_spec):
    S = create_scenario(tiny_spec(epochs=4, lr=0.1, scheduler="onecycle"))
    assert S.scheduler_per_batch
    history = train(S)
    lrs = [r["lr"] for r in history.records]
    assert lrs[0] == pytest.approx(0.1 / 25)           # starts at max_lr / div_factor
    assert lrs[1] > lrs[0] and lrs[3] < lrs[1] and max(lrs) <= 0.1
    assert S.scheduler.last_epoch == 4 * len(S.train_loader)


@pytest.mark.parametrize("optimizer, cls, lr", [("adam", torch.optim.Adam, 1e-2), ("adamw", torch.optim.AdamW, 1e-2),
                                                ("sgd", torch.optim.SGD, 0.1)])
def test_optimizers(tiny_spec, optimizer, cls, lr):
    S = create_scenario(tiny_spec(optimizer=optimizer, lr=lr, weight_decay=1e-4, epochs=3))
    assert type(S.optimizer) is cls
    group = S.optimizer.param_groups[0]
    assert group["lr"] == lr and group["weight_decay"] == 1e-4
    if optimizer == "sgd":
        assert group["momentum"] == 0.9
    history = train(S)
    assert history.state == "finished"
    assert history.records[-1]["train_loss"] < history.records[0]["train_loss"]


def test_weight_decay_changes_training(tiny_spec):
    plain = train(create_scenario(tiny_spec(optimizer="sgd", lr=0.1)))
    decayed = train(create_scenario(tiny_spec(optimizer="sgd", lr=0.1, weight_decay=0.1)))
    assert plain.records[-1]["train_loss"] != decayed.records[-1]["train_loss"]


def test_engine_falls_back_to_eager_on_cpu_with_the_reason(tiny_spec):
    S = create_scenario(tiny_spec())
    assert S.device.type == "cpu"
    assert S.graph_reason and not S.uses_cuda_graph
    assert "cpu" in S.graph_reason
    history = train(S)
    assert history.engine.startswith("eager (") and S.graph_reason in history.engine


def test_graph_decision_reasons(tiny_spec):
    """The decision itself, for each blocker (a cuda device object needs no GPU to be inspected)."""
    S = create_scenario(tiny_spec(batch_size=32))                  # 256 samples: 8 full batches
    cuda = torch.device("cuda")
    assert graph_blocker(S.spec, cuda, S.train_loader) == ""
    assert "cuda_graph is off" in graph_blocker(S.spec.replace(cuda_graph=False), cuda, S.train_loader)
    assert "cpu" in graph_blocker(S.spec, torch.device("cpu"), S.train_loader)
    host = create_scenario(tiny_spec(resident_data=False)).train_loader
    assert "resident_data" in graph_blocker(S.spec, cuda, host)
    assert "fewer than 4" in graph_blocker(S.spec.replace(batch_size=100), cuda, S.train_loader)


def test_lr_finder_sweeps_lr_up_and_puts_the_model_back(tiny_spec):
    S = create_scenario(tiny_spec(batch_size=16))
    before_model = {k: v.clone() for k, v in S.model.state_dict().items()}
    result = find_lr(S, start_lr=1e-5, end_lr=1.0, num_steps=40)
    frame = result.frame
    assert list(frame.columns) == ["step", "lr", "loss", "smoothed_loss"]
    assert 10 <= len(frame) <= 40
    assert frame["lr"].iloc[0] == pytest.approx(1e-5)
    assert frame["lr"].is_monotonic_increasing and frame["lr"].diff().dropna().gt(0).all()
    if not result.stopped_early:
        assert frame["lr"].iloc[-1] == pytest.approx(1.0)
    assert result.suggested_lr is None or 1e-5 <= result.suggested_lr <= 1.0
    assert state_equal(S.model.state_dict(), before_model)
    assert S.optimizer.state_dict()["state"] == {}                 # Adam untouched: no moments, no steps
    assert S.optimizer.param_groups[0]["lr"] == 1e-2
    assert train(S).state == "finished"                            # S is still trainable


def test_lr_finder_rejects_bad_ranges(tiny_spec):
    S = create_scenario(tiny_spec())
    with pytest.raises(ValueError, match="start_lr"):
        find_lr(S, start_lr=1.0, end_lr=1e-3)
    with pytest.raises(ValueError, match="num_steps"):
        find_lr(S, num_steps=5)


def test_lr_finder_stops_when_the_loss_blows_up_and_still_restores(tiny_spec):
    S = create_scenario(tiny_spec(batch_size=16, optimizer="sgd"))
    before = {k: v.clone() for k, v in S.model.state_dict().items()}
    result = find_lr(S, start_lr=1e-3, end_lr=1e6, num_steps=60)
    assert result.stopped_early and len(result.frame) < 60
    assert result.frame["lr"].iloc[-1] < 1e6
    assert state_equal(S.model.state_dict(), before)
