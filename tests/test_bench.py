"""bench/bench.py on tiny data: its generated files load through torchvision, and its JSON has what reports read.

No timing is asserted: speed is read from the benchmark's ratios, never from a test.
"""
from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision import datasets

BENCH_PATH = Path(__file__).resolve().parents[1] / "bench" / "bench.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("trainlib_bench", BENCH_PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module          # its dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def test_generated_mnist_is_read_by_torchvision(bench, tmp_path):
    bench.write_mnist(tmp_path, n_pool=200, n_test=50)
    train = datasets.MNIST(tmp_path, train=True, download=False)
    test = datasets.MNIST(tmp_path, train=False, download=False)
    assert tuple(train.data.shape) == (200, 28, 28) and train.data.dtype == torch.uint8
    assert len(test) == 50
    expected, labels = bench.make_images(200, bench.make_prototypes(1, 28 + 2 * bench.SHIFT), 28, bench.DATA_SEED + 1)
    assert np.array_equal(train.data.numpy(), expected[:, 0])
    assert np.array_equal(train.targets.numpy(), labels)
    assert set(labels.tolist()) == set(range(10))


def test_generated_cifar_loads_only_inside_the_patch(bench, tmp_path):
    meta_md5 = bench.write_cifar(tmp_path, n_pool=100, n_test=20)
    with pytest.raises(RuntimeError):     # the official checksums cannot match generated files
        datasets.CIFAR10(tmp_path, train=True, download=False)
    with bench.generated_cifar_accepted(meta_md5):
        train = datasets.CIFAR10(tmp_path, train=True, download=False)
        test = datasets.CIFAR10(tmp_path, train=False, download=False)
    assert train.data.shape == (100, 32, 32, 3) and len(test) == 20
    assert train.classes == [f"class {k}" for k in range(10)]
    with pytest.raises(RuntimeError):     # the patch is gone once the context closes
        datasets.CIFAR10(tmp_path, train=True, download=False)


def test_class_prototypes_differ_more_than_samples_of_one_class(bench):
    # Learnable data: images of one class are closer to each other than to images of other classes.
    images, labels = bench.make_images(2000, bench.make_prototypes(1, 28 + 2 * bench.SHIFT), 28, seed=7)
    flat = images.reshape(len(images), -1).astype(np.float32)
    means = np.stack([flat[labels == k].mean(0) for k in range(10)])
    nearest = np.argmin(((flat[:, None, :] - means[None]) ** 2).sum(-1), axis=1)
    assert (nearest == labels).mean() > 0.5       # chance is 0.1


def test_accuracy_tolerance_grows_for_small_test_sets(bench):
    assert bench.acc_tolerance(0.97, 10_000) == pytest.approx(0.02)
    assert bench.acc_tolerance(0.85, 1_000) > 0.04


def test_unknown_case_is_rejected(bench, tmp_path):
    with pytest.raises(SystemExit):
        bench.parse_args(["--cases", "mlp,transformer", "--out", str(tmp_path / "x.json")])


def test_tiny_mlp_run_writes_the_result_file(bench, tmp_path):
    out = tmp_path / "bench.json"
    threads = torch.get_num_threads()
    # One thread: fast and steady on a 2-core machine shared with other test processes.
    returned = bench.main(["--device", "cpu", "--tiny", "--cases", "mlp", "--threads", "1", "--out", str(out)])
    assert torch.get_num_threads() == threads          # main() puts the thread count back
    result = json.loads(out.read_text())
    assert result["cases"] == json.loads(json.dumps(returned["cases"]))
    assert result["device"] == "cpu"
    for key in ("hostname", "cpu_count", "gpu", "torch"):
        assert key in result["machine"]
    (case,) = result["cases"]
    assert case["name"] == "mlp"
    for key in ("course_s", "trainlib_s", "ratio", "course_test_acc", "trainlib_test_acc",
                "course_images_per_s", "trainlib_images_per_s", "trainlib_engine"):
        assert key in case, key
    assert case["course_s"] > 0 and case["trainlib_s"] > 0
    assert case["ratio"] == pytest.approx(case["course_s"] / case["trainlib_s"])
    assert 0 <= case["course_test_acc"] <= 1 and 0 <= case["trainlib_test_acc"] <= 1
    assert case["trainlib_engine"].startswith("eager")      # no CUDA graph on a CPU
    assert case["test_images"] == bench.TINY.mnist_test and case["train_images"] == bench.TINY.mnist_train


def test_tiny_regularization_reports_threads_processes_and_the_first_row(bench, tmp_path):
    out = tmp_path / "bench.json"
    bench.main(["--device", "cpu", "--tiny", "--cases", "regularization", "--out", str(out)])
    result = json.loads(out.read_text())
    (case,) = result["cases"]
    assert case["trainlib_workers"] == (4 if torch.cuda.is_available() else os.cpu_count())
    for key in ("thread_runner_s", "thread_runner_first_row_s", "trainlib_first_row_s", "processes_vs_threads"):
        assert case[key] > 0, key
    assert case["trainlib_first_row_s"] < case["trainlib_s"]
    assert case["processes_vs_threads"] == pytest.approx(case["thread_runner_s"] / case["trainlib_s"])
    shapes = result["shapes_preset"]
    assert 0 < shapes["first_row_s"] < shapes["seconds"]
