"""The GPU path's logic, checked on a CPU: what needs no GPU to be wrong.

- GraphStepper's epoch accounting (warm-up batches counted, replays reading the permutation at a
  device-side position, the partial batch eager) with a stand-in graph whose replay runs the body
  that would have been captured: it must train exactly as the eager stepper does.
- bf16 autocast and channels_last, the options of a CNN on a GPU, train on a CPU too.
- A resume keeps the optimizer settings of the process that resumes (capturable, fused), whatever
  the checkpoint was written with.
"""
from __future__ import annotations

import math

import pytest
import torch

from trainlib import create_scenario, train
from trainlib.checkpoints import load_optimizer_state
from trainlib.loop import EagerStepper, GraphStepper


class ReplayingBody:
    """A CUDA graph stand-in: replay() runs the captured body again. A captured backward writes
    fresh gradients into the graph's own buffers, so the stand-in clears them first, as replay does."""

    def __init__(self, stepper: GraphStepper):
        self.stepper = stepper
        self.replays = 0

    def replay(self) -> None:
        self.stepper.S.optimizer.zero_grad(set_to_none=True)
        self.stepper._graph_body()
        self.replays += 1


def capture_on_cpu(stepper: GraphStepper) -> None:
    """GraphStepper._capture without CUDA: the same warm-up steps, then the stand-in graph."""
    while stepper.warm_steps < stepper.WARMUP_STEPS:
        stepper.S.optimizer.zero_grad(set_to_none=True)
        stepper._graph_body()
        stepper.after_step()
        stepper.warm_steps += 1
    stepper.graph = ReplayingBody(stepper)


def losses_per_epoch(stepper, S, epochs: int) -> list[float]:
    out = []
    for epoch in range(1, epochs + 1):
        S.train_loader.set_epoch(epoch)
        seen = stepper.run_epoch(None)
        assert seen == S.train_loader.num_samples              # each sample once, the partial batch too
        out.append(stepper.loss_sum.item() / seen)
    return out


@pytest.mark.parametrize("batch_size", [32, 50])           # 256 samples: no partial batch / a partial one
def test_graph_stepper_accounts_epochs_like_the_eager_stepper(tiny_spec, monkeypatch, batch_size):
    spec = tiny_spec(epochs=3, batch_size=batch_size, dropout=0.0)
    eager_S = create_scenario(spec)
    eager = losses_per_epoch(EagerStepper(eager_S), eager_S, 3)

    graph_S = create_scenario(spec)
    monkeypatch.setattr(type(graph_S), "uses_cuda_graph", property(lambda self: True))
    stepper = GraphStepper(graph_S)
    monkeypatch.setattr(stepper, "_capture", lambda: capture_on_cpu(stepper))
    graphed = losses_per_epoch(stepper, graph_S, 3)

    assert graphed == pytest.approx(eager, rel=1e-5)
    full = 256 // batch_size
    assert stepper.graph.replays == 3 * full - GraphStepper.WARMUP_STEPS   # warm-up batches were real steps
    for a, b in zip(eager_S.model.parameters(), graph_S.model.parameters()):
        assert torch.allclose(a, b, atol=1e-6)


def test_bf16_autocast_and_channels_last_train_a_cnn_on_a_cpu(tiny_spec):
    S = create_scenario(tiny_spec(dataset="shapes", model="cnn", channels=(8, 16), train_subset=256,
                                  precision="bf16", channels_last=True, epochs=2))
    conv = next(m for m in S.model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    history = train(S)
    assert history.state == "finished", history.error
    assert all(math.isfinite(r["train_loss"]) and math.isfinite(r["val_loss"]) for r in history.records)
    assert all(p.dtype == torch.float32 for p in S.model.parameters())   # autocast computes in bf16, keeps fp32 weights


def test_a_resumed_optimizer_keeps_the_settings_of_the_process_that_resumes():
    model = torch.nn.Linear(3, 2)
    eager = torch.optim.Adam(model.parameters(), lr=1e-3)              # how a CPU run wrote its checkpoint
    model(torch.randn(4, 3)).sum().backward()
    eager.step()
    checkpoint = eager.state_dict()

    graphed = torch.optim.Adam(model.parameters(), lr=torch.tensor(1e-3), capturable=True, fused=True)
    load_optimizer_state(graphed, checkpoint)
    group = graphed.param_groups[0]
    assert group["capturable"] is True and group["fused"] is True      # a plain load_state_dict sets both False
    assert graphed.state[model.weight]["step"].item() == 1
    model(torch.randn(4, 3)).sum().backward()
    graphed.step()
    assert graphed.state[model.weight]["step"].item() == 2

    plain = torch.optim.Adam(model.parameters(), lr=1e-3)
    plain.load_state_dict(checkpoint)
    assert plain.param_groups[0]["capturable"] is False                # what load_optimizer_state guards against
