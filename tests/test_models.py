"""Model construction: the switches do what the course says, and each architecture trains."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from trainlib import ScenarioSpec, SpecError, create_scenario, train
from trainlib.models import build_model, count_parameters, summarize


def layers_of(model: nn.Module, kind: type) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, kind)]


def test_course_mlp_is_784_256_256_10():
    model = build_model(ScenarioSpec(), (1, 28, 28), 10)
    linears = layers_of(model, nn.Linear)
    assert [(l.in_features, l.out_features) for l in linears] == [(784, 256), (256, 256), (256, 10)]
    assert count_parameters(model) == 784 * 256 + 256 + 256 * 256 + 256 + 256 * 10 + 10
    assert not layers_of(model, nn.BatchNorm1d) and not layers_of(model, nn.Dropout)


def test_mlp_has_one_batchnorm_per_hidden_layer_and_dropout_after_each():
    model = build_model(ScenarioSpec(batchnorm=True, dropout=0.2, hidden_sizes=(64, 32, 16)), (1, 28, 28), 10)
    norms = layers_of(model, nn.BatchNorm1d)
    assert [n.num_features for n in norms] == [64, 32, 16]
    assert len({id(n) for n in norms}) == 3                      # each its own layer
    drops = layers_of(model, nn.Dropout)
    assert len(drops) == 3 and all(d.p == 0.2 for d in drops)
    kinds = [type(m).__name__ for m in model]
    assert kinds[:5] == ["Flatten", "Linear", "BatchNorm1d", "ReLU", "Dropout"]


def test_cnn_switches_and_output_shape():
    model = build_model(ScenarioSpec(model="cnn", batchnorm=True, dropout=0.1, channels=(8, 16)), (3, 32, 32), 10)
    assert [c.out_channels for c in layers_of(model, nn.Conv2d)] == [8, 16]
    assert len(layers_of(model, nn.BatchNorm2d)) == 2
    assert model(torch.zeros(4, 3, 32, 32)).shape == (4, 10)


def test_resnet18_from_scratch_on_one_channel_images_and_local_weights(tmp_path):
    spec = ScenarioSpec(model="resnet18", dataset="shapes")
    model = build_model(spec, (1, 28, 28), 3)
    assert model.conv1.in_channels == 1
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 3)
    # Weights from a local file (no download): a saved torchvision resnet18 state_dict.
    from torchvision.models import resnet18
    reference = resnet18(weights=None)
    torch.save(reference.state_dict(), tmp_path / "r18.pth")
    loaded = build_model(spec.replace(weights=str(tmp_path / "r18.pth")), (3, 32, 32), 3)
    assert torch.equal(loaded.layer1[0].conv1.weight, reference.layer1[0].conv1.weight)
    with pytest.raises(SpecError) as err:
        build_model(spec.replace(weights=str(tmp_path / "missing.pth")), (3, 32, 32), 3)
    assert err.value.field == "weights"


def test_resnet18_trains_an_epoch():
    history = train(create_scenario(model="resnet18", dataset="shapes", train_subset=128, epochs=1, batch_size=32))
    assert history.state == "finished" and 0 <= history.test_acc <= 1


def test_summary_lists_leaf_layers_with_parameter_counts():
    rows = summarize(build_model(ScenarioSpec(hidden_sizes=(4,)), (2,), 1))
    assert [r["type"] for r in rows] == ["Flatten", "Linear", "ReLU", "Linear"]
    assert sum(r["parameters"] for r in rows) == 2 * 4 + 4 + 4 + 1


def test_imagefolder_reads_class_folders_resized(tmp_path):
    rng = np.random.default_rng(0)
    for label in ("cats", "dogs"):
        (tmp_path / label).mkdir()
        for i in range(10):
            pixels = rng.integers(0, 255, size=(20 + i, 30, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / label / f"{i}.png")
    S = create_scenario(dataset="imagefolder", data_dir=str(tmp_path), image_size=16, model="cnn",
                        channels=(4,), epochs=1, val_fraction=0.2, batch_size=4)
    bundle = S.data
    assert bundle.class_names == ["cats", "dogs"]
    assert bundle.input_shape == (3, 16, 16)
    # No test split of its own: carved from the pool, the size of the validation split.
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (12, 4, 4)
    assert train(S).state == "finished"


def test_imagefolder_missing_folder_names_data_dir(tmp_path):
    from trainlib import DatasetUnavailable
    with pytest.raises(DatasetUnavailable, match="data_dir"):
        create_scenario(dataset="imagefolder", data_dir=str(tmp_path / "nope"))
