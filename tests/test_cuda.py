"""The GPU fast path: CUDA-graph capture, its fallbacks, concurrency. Skipped without a CUDA GPU.

    python -m pytest tests/test_cuda.py -q      # on a machine with a GPU
"""
from __future__ import annotations

import pytest
import torch

from trainlib import Runner, ScenarioSpec, create_scenario, train, variants
from trainlib.loop import GraphStepper, make_stepper

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

# 2,000 training images, batch 64: 31 full batches and a partial one of 16 every epoch.
SMALL = dict(dataset="shapes", train_subset=2000, hidden_sizes=(64, 64), epochs=3, device="cuda")


def test_graph_path_is_used_and_matches_eager_losses():
    graphed = train(create_scenario(**SMALL))
    eager = train(create_scenario(**SMALL, cuda_graph=False))
    assert graphed.state == eager.state == "finished"
    assert graphed.engine == "cuda-graph"
    assert eager.engine.startswith("eager (cuda_graph is off")
    # Same seed, same batches, same arithmetic up to the fused optimizer's rounding.
    for g, e in zip(graphed.records, eager.records):
        assert g["train_loss"] == pytest.approx(e["train_loss"], rel=2e-3)
        assert g["val_loss"] == pytest.approx(e["val_loss"], rel=5e-3)
    assert graphed.test_acc == pytest.approx(eager.test_acc, abs=0.02)


def test_graph_epoch_sees_every_sample_once_including_the_partial_batch():
    S = create_scenario(**SMALL)
    stepper = make_stepper(S)
    assert isinstance(stepper, GraphStepper)
    for _ in range(2):                                  # capture epoch, then a pure-replay epoch
        seen = stepper.run_epoch(should_stop=None)
        assert seen == 2000
        assert int(stepper.position) == stepper.full_batches == 2000 // 64
        assert sorted(stepper.order.tolist()) == list(range(2000))


def test_dropout_and_batchnorm_inside_the_graph():
    S = create_scenario(**SMALL, dropout=0.3, batchnorm=True)
    running_mean_before = S.model[2].running_mean.clone()
    history = train(S)
    assert history.engine == "cuda-graph" and history.state == "finished"
    assert not torch.equal(S.model[2].running_mean, running_mean_before)   # BN statistics moved in replays
    losses = [r["train_loss"] for r in history.records]
    assert losses[-1] < losses[0]
    # Dropout is live in training mode inside the graph: two forward passes differ.
    S.model.train()
    x = S.valid_loader.transform(S.valid_loader.x[:128])
    with torch.no_grad():
        assert not torch.equal(S.model(x), S.model(x))


@pytest.mark.parametrize("scheduler", ["onecycle", "linear", "cosine"])
def test_schedulers_change_the_lr_the_graph_reads(scheduler):
    history = train(create_scenario(**SMALL, scheduler=scheduler, lr=3e-3, lr_end=1e-4))
    assert history.engine == "cuda-graph"
    lrs = [r["lr"] for r in history.records]
    assert len(set(lrs)) == len(lrs)                    # a new lr every epoch, as recorded


@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])
def test_other_optimizers_capture(optimizer):
    history = train(create_scenario(**SMALL, optimizer=optimizer, lr=1e-2 if optimizer == "sgd" else 1e-3))
    assert history.engine == "cuda-graph" and history.state == "finished"
    assert history.records[-1]["train_loss"] < history.records[0]["train_loss"]


def test_cnn_bf16_channels_last():
    history = train(create_scenario(dataset="shapes", model="cnn", batchnorm=True, precision="bf16",
                                    channels_last=True, epochs=2, device="cuda"))
    assert history.state == "finished" and history.engine == "cuda-graph"
    assert history.test_acc > 0.5


def test_fallbacks_name_their_reason():
    assert create_scenario(**SMALL, resident_data=False).graph_reason.startswith("resident_data is off")
    assert create_scenario(**{**SMALL, "train_subset": 100}).graph_reason.startswith("fewer than 4 full batches")


def test_four_scenarios_run_concurrently_through_the_runner(tmp_path):
    base = ScenarioSpec(**SMALL)
    specs = variants(base, {"baseline": {}, "l2": {"weight_decay": 1e-5}, "dropout": {"dropout": 0.2},
                            "batchnorm": {"batchnorm": True}}, sweep="reg")
    runner = Runner(tmp_path, workers=4)
    ids = runner.submit_many(specs, sweep="reg")
    assert runner.wait(ids, timeout=300)
    frame = runner.store.list_runs()
    assert set(frame["state"]) == {"finished"}
    assert set(frame["engine"]) == {"cuda-graph"}
    runner.shutdown()
