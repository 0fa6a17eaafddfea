"""trainlib.analysis: a run folder's best weights evaluated again (confusion matrix, per-class
accuracy, misclassified images, decision boundary), checked against the engine's own numbers."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from trainlib import DatasetUnavailable, RunStore, ScenarioSpec, create_scenario, evaluate, train
from trainlib.analysis import (analyze_run, confusion_matrix, data_points, decision_grid, load_trained,
                               misclassified, model_summary, per_class_accuracy, predict, predicted_labels)
from trainlib.models import count_parameters
from trainlib.store import read_json


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict:
    store = RunStore(tmp_path_factory.mktemp("analysis") / "runs")
    out = {}
    for spec in (ScenarioSpec(name="shapes", dataset="shapes", train_subset=300, hidden_sizes=(32,), epochs=2, device="cpu"),
                 ScenarioSpec(name="moons", dataset="moons", hidden_sizes=(8,), epochs=3, lr=1e-2, device="cpu"),
                 ScenarioSpec(name="sine", dataset="sine", hidden_sizes=(8,), epochs=1, device="cpu")):
        folder = store.new_run(spec)
        train(create_scenario(spec, log_folder=folder))
        out[spec.name] = folder
    out["store"] = store
    return out


def test_confusion_matrix_counts_true_rows_predicted_columns():
    cm = confusion_matrix([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 0, 2], 3, ["a", "b", "c"])
    assert cm.to_numpy().tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    assert list(cm.index) == list(cm.columns) == ["a", "b", "c"]
    assert confusion_matrix(torch.tensor([1]), torch.tensor([1]), 2).to_numpy().tolist() == [[0, 0], [0, 1]]
    with pytest.raises(ValueError, match="labels must be in"):
        confusion_matrix([0, 3], [0, 1], 3)


def test_per_class_accuracy():
    table = per_class_accuracy([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 0, 2], 4)
    assert list(table["class"]) == ["0", "1", "2", "3"]
    assert list(table["samples"]) == [2, 1, 3, 0] and list(table["correct"]) == [1, 1, 2, 0]
    assert table["accuracy"].iloc[:3].tolist() == pytest.approx([0.5, 1.0, 2 / 3])
    assert np.isnan(table["accuracy"].iloc[3])          # no samples: no accuracy, not 0


def test_predicted_labels_binary_logit_and_argmax():
    assert predicted_labels(torch.tensor([[-0.1], [0.3], [0.0]])).tolist() == [0, 1, 0]
    assert predicted_labels(torch.tensor([[0.1, 2.0, -1.0], [3.0, 0.0, 0.0]])).tolist() == [1, 0]


def test_load_trained_gives_the_best_epochs_weights(folders):
    folder = folders["moons"]
    summary = folders["store"].read_run(folder.name)["summary"]
    S = load_trained(folder)
    assert S.extras["checkpoint_epoch"] == summary["best_epoch"]
    assert S.device.type == "cpu" and not S.model.training
    saved = torch.load(folder / "checkpoint_best.pth", weights_only=True)["model_state"]
    for key, value in S.model.state_dict().items():
        assert torch.equal(value, saved[key])
    outputs, targets = predict(S, "test")
    assert outputs.shape == (1000, 1) and targets.shape == (1000,)
    accuracy = (predicted_labels(outputs) == targets).float().mean().item()
    assert accuracy == pytest.approx(evaluate(S, S.test_loader)[1])


def test_load_trained_without_checkpoint_says_so(tmp_path):
    folder = RunStore(tmp_path).new_run(ScenarioSpec(dataset="moons", hidden_sizes=(8,)))
    with pytest.raises(FileNotFoundError, match="never finished an epoch"):
        load_trained(folder)


def test_misclassified_images_are_really_misclassified(folders):
    S = load_trained(folders["shapes"])
    outputs, targets = predict(S, "test")
    wrong_total = int((predicted_labels(outputs) != targets).sum())
    wrong = misclassified(S, limit=10)
    assert len(wrong) == min(10, wrong_total)
    for image, true, predicted in wrong:
        assert image.shape == (28, 28) and image.dtype == np.uint8
        assert true != predicted and {true, predicted} <= {"circle", "square", "triangle"}
    first = int(torch.nonzero(predicted_labels(outputs) != targets)[0])
    assert np.array_equal(wrong[0][0], S.data.test.x[first, 0].numpy())


def test_decision_grid_is_the_models_probability(folders):
    S = load_trained(folders["moons"])
    xs, ys, prob = decision_grid(S, resolution=20)
    assert xs.shape == ys.shape == (20,) and prob.shape == (20, 20)
    assert ((prob >= 0) & (prob <= 1)).all()
    with torch.no_grad():
        direct = torch.sigmoid(S.model(torch.tensor([[xs[3], ys[7]]], dtype=torch.float32))).item()
    assert prob[7, 3] == pytest.approx(direct, abs=1e-6)
    xy, labels = data_points(S)
    assert xy.shape == (1000, 2) and set(labels.tolist()) == {0, 1}
    assert xs.min() < xy[:, 0].min() and xs.max() > xy[:, 0].max()          # the box holds every point


def test_analyze_run_collects_what_applies(folders):
    image = analyze_run(folders["shapes"], misclassified_limit=5)
    assert image["confusion"].to_numpy().sum() == image["samples"] == 1000
    assert image["accuracy"] == pytest.approx(np.trace(image["confusion"].to_numpy()) / 1000)
    assert len(image["misclassified"]) <= 5 and image["grid"] is None
    assert image["parameters"] == sum(row["parameters"] for row in image["layers"])
    points = analyze_run(folders["moons"], resolution=10)
    assert points["grid"][2].shape == (10, 10) and points["misclassified"] is None
    regression = analyze_run(folders["sine"])
    assert regression["task"] == "regression"
    assert regression["confusion"] is None and regression["accuracy"] is None and regression["grid"] is None


def test_model_summary_of_an_untrained_spec():
    spec = ScenarioSpec(dataset="shapes", hidden_sizes=(16,), dropout=0.1)
    layers, parameters = model_summary(spec.to_dict())
    assert [row["type"] for row in layers] == ["Flatten", "Linear", "ReLU", "Dropout", "Linear"]
    assert parameters == count_parameters(create_scenario(spec, device="cpu").model) == 784 * 16 + 16 + 16 * 3 + 3


# ----------------------------------------------------------------------------- reading a run creates nothing
def mnist_run_by_hand(store: RunStore, data_dir) -> Path:
    """A finished-looking MNIST run with a checkpoint, written without its data (no training)."""
    from trainlib.models import build_model
    from trainlib.store import CHECKPOINT, update_status, write_json
    spec = ScenarioSpec(name="digits", dataset="mnist", data_dir=str(data_dir), hidden_sizes=(8,), epochs=1,
                        device="cpu")
    folder = store.new_run(spec)
    model = build_model(spec, (1, 28, 28), 10)
    torch.save({"epoch": 1, "best_loss": 0.5, "model_state": model.state_dict()}, folder / CHECKPOINT)
    update_status(folder, state="finished", epoch=1)
    write_json(folder / "summary.json", {"test_acc": 0.5})
    return folder


def test_evaluating_a_run_whose_dataset_files_are_absent_creates_nothing(tmp_path):
    """torchvision's download=True made <data_dir>/MNIST/raw wherever scenario.json pointed."""
    folder = mnist_run_by_hand(RunStore(tmp_path / "runs"), tmp_path / "nowhere" / "deep")
    before = {p for p in tmp_path.rglob("*") if p.is_dir()}
    expected = f"the dataset files are not in {tmp_path / 'nowhere' / 'deep' / 'MNIST' / 'raw'}"
    with pytest.raises(DatasetUnavailable, match="^" + expected):
        analyze_run(folder)
    with pytest.raises(DatasetUnavailable, match="^" + expected):
        model_summary(read_json(folder / "scenario.json"))
    assert {p for p in tmp_path.rglob("*") if p.is_dir()} == before
    assert not (tmp_path / "nowhere").exists()


def test_an_mnist_run_is_evaluated_through_torchvision(tmp_path, no_download):
    """The real path on small data: IDX files in torchvision's layout, read by its MNIST class."""
    from test_data import write_idx_mnist
    write_idx_mnist(tmp_path / "data", n_train=50, n_test=20)
    store = RunStore(tmp_path / "runs")
    spec = ScenarioSpec(name="digits", dataset="mnist", data_dir=str(tmp_path / "data"), hidden_sizes=(8,),
                        epochs=1, device="cpu")
    folder = store.new_run(spec)
    train(create_scenario(spec, log_folder=folder))
    report = analyze_run(folder)
    assert report["samples"] == 20 and report["confusion"].to_numpy().sum() == 20
    assert report["class_names"][0].startswith("0") and len(report["per_class"]) == 10
    assert all(image.shape == (28, 28) for image, _, _ in report["misclassified"])
    layers, parameters = model_summary(spec)
    assert parameters == 784 * 8 + 8 + 8 * 10 + 10
