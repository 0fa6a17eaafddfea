"""Speed benchmark: the course's training loop against trainlib, on identical work, in one run.

    python bench/bench.py --device auto --out bench/result.json            # mlp, regularization, cnn
    python bench/bench.py --device cpu --quick --out /tmp/bench_quick.json  # under a minute on a small CPU
    python bench/bench.py --device cuda --cases mlp,cnn --epochs 2 --out b.json

It writes its own learnable data (no network) in torchvision's file formats, so both sides load it
through torchvision's own dataset classes. Per case it times, wall clock, everything from reading
the files to the test accuracy: the course's loop (torchvision dataset + ToTensor + DataLoader,
`.item()` per batch) and trainlib's public API (create_scenario + train, or the Runner for a sweep).
Needs only torch, torchvision, numpy, pandas, tensorboard and this repository's trainlib.
"""
from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import argparse
import contextlib
import hashlib
import json
import math
import os
import pickle
import platform
import socket
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone

import numpy as np
import torch
import torchvision
from torch import nn
from torch.utils.data import DataLoader, random_split
from torchvision import datasets, transforms

from trainlib import Runner, ScenarioSpec, create_scenario, train, variants
from trainlib.data import clear_cache

CASES = ("mlp", "regularization", "cnn")
SEED = 0                     # split, initial weights and batch order, on both sides
BATCH_SIZE = 64
LR = 1e-3
HIDDEN = (256, 256)
CHANNELS = (32, 64, 128)
# The course's regularization comparison (GUIDE.md), as trainlib variants and as course models.
REGULARIZATION = {"baseline": {}, "l2": {"weight_decay": 1e-5}, "dropout": {"dropout": 0.2},
                  "batchnorm": {"batchnorm": True}}


@dataclass(frozen=True)
class Sizes:
    mnist_train: int         # MNIST-shaped 1x28x28: train / validation split of the training file, test file
    mnist_val: int
    mnist_test: int
    cifar_train: int         # CIFAR-shaped 3x32x32
    cifar_val: int
    cifar_test: int
    mlp_epochs: int          # mlp and regularization cases
    cnn_epochs: int


FULL = Sizes(48_000, 12_000, 10_000, 40_000, 10_000, 10_000, mlp_epochs=5, cnn_epochs=1)
QUICK = Sizes(6_000, 1_500, 1_000, 3_200, 800, 800, mlp_epochs=2, cnn_epochs=1)
TINY = Sizes(960, 240, 240, 256, 64, 64, mlp_epochs=1, cnn_epochs=1)       # the test suite's size
# Warm-up: at least 4 full batches so trainlib's CUDA-graph capture is exercised too.
WARMUP = Sizes(320, 80, 80, 320, 80, 80, mlp_epochs=1, cnn_epochs=1)


# ============================================================================ data
# Class-conditional images: each class has a few fixed random low-frequency prototype fields;
# a sample is one of its class's prototypes, shifted by up to SHIFT pixels, scaled, plus a
# random low-frequency clutter field and white noise, on a dark background (about half the
# pixels 0, as in MNIST; a mid-grey background made the MLP's accuracy jump by 1-2 points from
# one epoch to the next). Tuned so that the MLP reaches ~98 % test accuracy on the full
# MNIST-shaped set (real MNIST: 97.7 %) and ~85 % with --quick.
DATA_SEED = 1234             # the prototypes; train and test samples come from DATA_SEED + 1 / + 2
PROTOTYPES_PER_CLASS = 4
SHIFT = 2                    # pixels, each direction
CLUTTER = 1.1                # weight of the per-sample clutter: an upsampled unit-normal grid (std ~0.8)
NOISE = 0.3                  # std of the per-pixel noise, relative to a prototype's
OFFSET, GAIN = 0, 64          # pixel = OFFSET + GAIN * field, clipped to 0..255: dark background, like MNIST
COARSE = 8                   # prototype and clutter fields are drawn on a COARSE x COARSE grid
NUM_CLASSES = 10


def upsample_matrix(fine: int, coarse: int) -> np.ndarray:
    """(fine, coarse) linear-interpolation weights: U @ grid @ U.T upsamples a coarse 2-D grid."""
    position = np.linspace(0, coarse - 1, fine)
    eye = np.eye(coarse)
    return np.stack([np.interp(position, np.arange(coarse), eye[j]) for j in range(coarse)], axis=1).astype(np.float32)


def make_prototypes(channels: int, side: int, seed: int = DATA_SEED) -> np.ndarray:
    """(NUM_CLASSES * PROTOTYPES_PER_CLASS, channels, side, side) smooth fields, each of mean 0 and std 1."""
    rng = np.random.default_rng(seed)
    up = upsample_matrix(side, COARSE)
    grids = rng.standard_normal((NUM_CLASSES * PROTOTYPES_PER_CLASS, channels, COARSE, COARSE), dtype=np.float32)
    fields = up @ grids @ up.T
    fields -= fields.mean(axis=(1, 2, 3), keepdims=True)
    fields /= fields.std(axis=(1, 2, 3), keepdims=True)
    return fields


def make_images(n: int, prototypes: np.ndarray, size: int, seed: int, chunk: int = 5000) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images (n, C, size, size), int64 labels (n,)): vectorised, in chunks to bound memory."""
    rng = np.random.default_rng(seed)
    channels = prototypes.shape[1]
    labels = rng.integers(0, NUM_CLASSES, n)
    which = labels * PROTOTYPES_PER_CLASS + rng.integers(0, PROTOTYPES_PER_CLASS, n)
    top, left = rng.integers(0, 2 * SHIFT + 1, n), rng.integers(0, 2 * SHIFT + 1, n)
    scale = rng.uniform(0.6, 1.4, n).astype(np.float32)
    up = upsample_matrix(size, COARSE)
    pixels = np.empty((n, channels, size, size), np.uint8)
    span = np.arange(size)
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        rows = (top[start:stop, None] + span)[:, None, :, None]
        cols = (left[start:stop, None] + span)[:, None, None, :]
        image = prototypes[which[start:stop, None, None, None], np.arange(channels)[None, :, None, None], rows, cols]
        image *= scale[start:stop, None, None, None]
        grids = rng.standard_normal((stop - start, channels, COARSE, COARSE), dtype=np.float32)
        image += CLUTTER * (up @ grids @ up.T)
        image += NOISE * rng.standard_normal(image.shape, dtype=np.float32)
        pixels[start:stop] = np.clip(OFFSET + GAIN * image, 0, 255).astype(np.uint8)
    return pixels, labels.astype(np.int64)


def write_idx(path: Path, array: np.ndarray) -> None:
    """MNIST's IDX format: big-endian magic (2051 images, 2049 labels), dimensions, then uint8 data."""
    magic = {3: 2051, 1: 2049}[array.ndim]
    header = np.array([magic, *array.shape], dtype=">i4").tobytes()
    path.write_bytes(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def write_mnist(root: Path, n_pool: int, n_test: int) -> Path:
    """root/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte, read by datasets.MNIST without download."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    prototypes = make_prototypes(1, 28 + 2 * SHIFT)
    for prefix, n, seed in (("train", n_pool, DATA_SEED + 1), ("t10k", n_test, DATA_SEED + 2)):
        images, labels = make_images(n, prototypes, 28, seed)
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images[:, 0])
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
    return root


def write_cifar(root: Path, n_pool: int, n_test: int) -> str:
    """root/cifar-10-batches-py/ in torchvision's pickle format; returns the md5 of batches.meta."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    prototypes = make_prototypes(3, 32 + 2 * SHIFT)

    def dump(name: str, images: np.ndarray, labels: np.ndarray) -> None:
        # Rows of 3072 bytes: the red plane, then green, then blue, each row-major (CIFAR's layout).
        entry = {"batch_label": name, "data": images.reshape(len(images), -1), "labels": labels.tolist()}
        with open(folder / name, "wb") as f:
            pickle.dump(entry, f, protocol=pickle.HIGHEST_PROTOCOL)

    images, labels = make_images(n_pool, prototypes, 32, DATA_SEED + 1)
    for i, part in enumerate(np.array_split(np.arange(n_pool), 5), start=1):
        dump(f"data_batch_{i}", images[part], labels[part])
    images, labels = make_images(n_test, prototypes, 32, DATA_SEED + 2)
    dump("test_batch", images, labels)
    meta = pickle.dumps({"label_names": [f"class {k}" for k in range(NUM_CLASSES)], "num_cases_per_batch": 0,
                         "num_vis": 3072})
    (folder / "batches.meta").write_bytes(meta)
    return hashlib.md5(meta).hexdigest()


@contextlib.contextmanager
def generated_cifar_accepted(meta_md5: str):
    """Let torchvision's CIFAR10 class read the generated files.

    CIFAR10 checks every batch file against the md5 sums of the official download, which generated
    files cannot match, and refuses to load otherwise. Inside this process (and only while this
    context is open) the check of the batch files passes and batches.meta is checked against the
    md5 of the file written here. Both sides build their dataset through this same class, so both
    get the same shortcut: neither pays for hashing 180 MB of batches.
    """
    cls = datasets.CIFAR10
    saved_check, saved_meta = cls.__dict__["_check_integrity"], cls.meta
    cls._check_integrity = lambda self: True
    cls.meta = {**saved_meta, "md5": meta_md5}
    try:
        yield
    finally:
        cls._check_integrity = saved_check
        cls.meta = saved_meta


# ============================================================================ the course's side
def in_fresh_thread(fn, *args):
    """fn(*args) in a new thread, its result returned and its exception re-raised here.

    Every timed side (and the warm-up) runs this way, for fairness on CPUs: libgomp throttles
    its spin-waiting once more than one OpenMP thread team exists, and a team lives as long as
    the thread that started it. Had one side computed on the main thread, its team would outlive
    it and make every later training thread (the Runner's workers) 2-3x slower on a CPU
    (measured on 2 cores; a run in a thread that starts first is as fast as on the main thread).
    A fresh thread's team ends with it, so neither side pays for the other.
    """
    outcome: dict = {}

    def target() -> None:
        try:
            outcome["value"] = fn(*args)
        except BaseException as exc:       # handed to the caller's thread below
            outcome["error"] = exc

    thread = threading.Thread(target=target, name="bench-side")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def course_mlp(dropout: float = 0.0, batchnorm: bool = False) -> nn.Sequential:
    """784-256-256-10 as the course writes it inline (the same layers, in the same order, as trainlib's MLP)."""
    layers: list[nn.Module] = [nn.Flatten(), nn.Linear(28 * 28, 256)]
    if batchnorm:
        layers.append(nn.BatchNorm1d(256))
    layers.append(nn.ReLU())
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(256, 256))
    if batchnorm:
        layers.append(nn.BatchNorm1d(256))
    layers.append(nn.ReLU())
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(256, 10))
    return nn.Sequential(*layers)


def course_cnn() -> nn.Sequential:
    """The small CNN written out: three 3x3 conv + BatchNorm + ReLU + max-pool blocks (32, 64, 128), linear head."""
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 128, 3, padding=1, bias=False), nn.BatchNorm2d(128), nn.ReLU(), nn.MaxPool2d(2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, 10),
    )


def course_loaders(dataset: str, root: Path, n_train: int, n_val: int):
    """The course's data code: torchvision dataset + ToTensor, seeded random_split, DataLoaders, 0 workers."""
    cls = datasets.MNIST if dataset == "mnist" else datasets.CIFAR10
    train_full = cls(root, train=True, transform=transforms.ToTensor(), download=False)
    test_set = cls(root, train=False, transform=transforms.ToTensor(), download=False)
    train_set, val_set = random_split(train_full, [n_train, n_val], generator=torch.Generator().manual_seed(SEED))
    train_loader = DataLoader(train_set, batch_size=BATCH_SIZE, shuffle=True, num_workers=0)
    val_loader = DataLoader(val_set, batch_size=BATCH_SIZE, shuffle=False, num_workers=0)
    test_loader = DataLoader(test_set, batch_size=BATCH_SIZE, shuffle=False, num_workers=0)
    return train_loader, val_loader, test_loader


def course_evaluate(model: nn.Module, loader: DataLoader, criterion: nn.Module, device: torch.device):
    model.eval()
    total_loss, correct, total = 0.0, 0, 0
    with torch.no_grad():
        for images, labels in loader:
            images, labels = images.to(device), labels.to(device)
            outputs = model(images)
            total_loss += criterion(outputs, labels).item() * labels.size(0)
            correct += (outputs.argmax(1) == labels).sum().item()
            total += labels.size(0)
    return total_loss / total, correct / total


def course_fit(model: nn.Module, loaders, device: torch.device, epochs: int, weight_decay: float = 0.0) -> dict:
    """The course's loop: train / validate every epoch with .item() per batch, test at the end."""
    train_loader, val_loader, test_loader = loaders
    model = model.to(device)
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=LR, weight_decay=weight_decay)
    epoch_seconds, val_accs = [], []
    for _ in range(epochs):
        started = time.perf_counter()
        model.train()
        running_loss, correct, total = 0.0, 0, 0
        for images, labels in train_loader:
            images, labels = images.to(device), labels.to(device)
            optimizer.zero_grad()
            outputs = model(images)
            loss = criterion(outputs, labels)
            loss.backward()
            optimizer.step()
            running_loss += loss.item() * labels.size(0)
            correct += (outputs.argmax(1) == labels).sum().item()
            total += labels.size(0)
        _, val_acc = course_evaluate(model, val_loader, criterion, device)
        val_accs.append(val_acc)
        sync(device)
        epoch_seconds.append(time.perf_counter() - started)
    _, test_acc = course_evaluate(model, test_loader, criterion, device)
    return {"test_acc": test_acc, "val_acc": val_accs[-1], "train_acc": correct / max(total, 1),
            "val_acc_per_epoch": val_accs, "epoch_s": epoch_seconds}


def build_course_model(dataset: str, changes: dict) -> nn.Module:
    torch.manual_seed(SEED)
    if dataset == "cifar10":
        return course_cnn()
    return course_mlp(dropout=changes.get("dropout", 0.0), batchnorm=changes.get("batchnorm", False))


def run_course(dataset: str, root: Path, n_train: int, n_val: int, epochs: int, device: torch.device,
               variant_changes: dict[str, dict]) -> dict:
    """Time the course's code end to end: datasets read once, then each variant trained in turn."""
    sync(device)
    started = time.perf_counter()
    torch.manual_seed(SEED)
    loaders = course_loaders(dataset, root, n_train, n_val)
    setup_s = time.perf_counter() - started
    runs = {}
    for name, changes in variant_changes.items():
        model = build_course_model(dataset, changes)
        runs[name] = course_fit(model, loaders, device, epochs, weight_decay=changes.get("weight_decay", 0.0))
    sync(device)
    return {"seconds": time.perf_counter() - started, "setup_s": setup_s, "runs": runs}


# ============================================================================ trainlib's side
def base_spec(dataset: str, root: Path, sizes: Sizes, epochs: int, device: torch.device) -> ScenarioSpec:
    n_train, n_val = (sizes.mnist_train, sizes.mnist_val) if dataset == "mnist" else (sizes.cifar_train, sizes.cifar_val)
    val_fraction = n_val / (n_train + n_val)
    assert int(round((n_train + n_val) * val_fraction)) == n_val
    common = dict(dataset=dataset, data_dir=str(root), val_fraction=val_fraction, seed=SEED, epochs=epochs,
                  batch_size=BATCH_SIZE, lr=LR, optimizer="adam", device=device.type)
    if dataset == "mnist":
        return ScenarioSpec(name="mlp", model="mlp", hidden_sizes=HIDDEN, **common)
    return ScenarioSpec(name="cnn", model="cnn", channels=CHANNELS, batchnorm=True, **common)


def run_trainlib_single(spec: ScenarioSpec, log_folder: Path, device: torch.device) -> dict:
    """create_scenario + train(S), timed from reading the files to the test accuracy."""
    clear_cache()              # the files are read inside the timing, as on the course's side
    sync(device)
    started = time.perf_counter()
    S = create_scenario(spec, log_folder=log_folder)
    setup_s = time.perf_counter() - started
    history = train(S)
    sync(device)
    seconds = time.perf_counter() - started
    if history.state != "finished":
        raise RuntimeError(f"trainlib run {spec.name} ended {history.state}: {history.error}")
    return {"seconds": seconds, "setup_s": setup_s,
            "runs": {spec.name: {"test_acc": history.test_acc, "val_acc": history.records[-1]["val_acc"],
                                 "train_acc": history.records[-1]["train_acc"],
                                 "val_acc_per_epoch": [r["val_acc"] for r in history.records],
                                 "epoch_s": [r["seconds"] for r in history.records], "engine": history.engine}}}


def first_row_seconds(runs_dir: Path, ids: list[str], started: float, timeout: float = 600) -> float:
    """Seconds from `started` (the submit) until the first metrics row of any of the runs is on disk:
    what a dashboard's first curve point waits for."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        for run_id in ids:
            path = runs_dir / run_id / "metrics.csv"
            with contextlib.suppress(OSError):
                if path.stat().st_size and len(path.read_text().splitlines()) >= 2:
                    return time.perf_counter() - started
        time.sleep(0.01)
    raise RuntimeError("no metrics row within the timeout")


def run_trainlib_sweep(base: ScenarioSpec, runs_dir: Path, device: torch.device, executor: str = "local",
                       workers: int | None = None, variants_of=REGULARIZATION) -> dict:
    """The dashboard's path: a Runner (warm, as a dashboard's is when Run is pressed), submit_many
    (variants), wait. executor 'local': one process per run (the default); 'thread': every run in a
    thread of this process, as the runner was before the process executor."""
    clear_cache()
    runner = Runner(runs_dir=runs_dir, workers=workers, executor=executor)
    runner.executor.wait_ready()
    specs = variants(base, variants_of, sweep="regularization")
    try:
        sync(device)
        started = time.perf_counter()
        ids = runner.submit_many(specs, sweep="regularization")
        first_row = first_row_seconds(runs_dir, ids, started)
        runner.wait(ids)
        sync(device)
        seconds = time.perf_counter() - started
    finally:
        runner.shutdown()
    runs = {}
    for run_id in ids:
        record = runner.store.read_run(run_id)
        summary, status = record["summary"], record["status"]
        if status.get("state") != "finished":
            raise RuntimeError(f"trainlib run {record['spec']['name']} ended {status.get('state')}: {status.get('error')}")
        metrics = runner.store.load_run(run_id)
        runs[record["spec"]["name"]] = {"test_acc": summary["test_acc"], "val_acc": summary["final_val_acc"],
                                        "train_acc": float(metrics["train_acc"].iloc[-1]),
                                        "val_acc_per_epoch": metrics["val_acc"].tolist(),
                                        "epoch_s": metrics["seconds"].tolist(), "engine": summary["engine"]}
    return {"seconds": seconds, "workers": runner.workers, "threads": runner.threads, "executor": executor,
            "first_row_s": first_row, "runs": runs}


def shapes_first_row(work: Path, device: torch.device) -> dict:
    """The Regularization preset as the dashboard runs it (built-in shapes, 5 epochs, the default
    warm local runner): seconds from submit to the first metrics row, and to the end."""
    base = ScenarioSpec(dataset="shapes", epochs=5, device=device.type)
    result = run_trainlib_sweep(base, work / "runs-shapes", device, executor="local")
    return {"first_row_s": result["first_row_s"], "seconds": result["seconds"], "workers": result["workers"]}


# ============================================================================ cases
def acc_tolerance(acc: float, n_test: int) -> float:
    """Largest expected difference (fraction) between two runs' test accuracies: 2 points, or 3 standard
    deviations of the difference of two binomial estimates on n_test images when that is larger."""
    p = min(max(acc, 0.01), 0.99)
    return max(0.02, 3 * math.sqrt(2 * p * (1 - p) / n_test))


def make_case(name: str, course: dict, lib: dict, images: int, epochs: int, n_test: int, extra: dict) -> dict:
    course_accs = {k: r["test_acc"] for k, r in course["runs"].items()}
    lib_accs = {k: r["test_acc"] for k, r in lib["runs"].items()}
    warnings = []
    for variant, course_acc in course_accs.items():
        lib_acc = lib_accs[variant]
        tolerance = acc_tolerance((course_acc + lib_acc) / 2, n_test)
        if abs(course_acc - lib_acc) <= tolerance:
            continue
        message = (f"{name}/{variant}: test accuracy course {course_acc:.4f} vs trainlib {lib_acc:.4f} "
                   f"differs by more than {100 * tolerance:.1f} points")
        course_train, lib_train = course["runs"][variant]["train_acc"], lib["runs"][variant]["train_acc"]
        if abs(course_train - lib_train) <= acc_tolerance((course_train + lib_train) / 2, images):
            # Seen with BatchNorm after few steps (its running statistics lag weights that still move
            # fast) and with under-trained models: the test accuracy of the last step swings with the
            # seed on both sides while the accuracy over the last epoch does not.
            message += (f"; last-epoch train accuracies agree ({course_train:.4f} vs {lib_train:.4f}): the models "
                        f"learned alike, the last step's test accuracy swings with the seed (see val_acc_per_epoch)")
        warnings.append(message)
    course_acc = sum(course_accs.values()) / len(course_accs)
    lib_acc = sum(lib_accs.values()) / len(lib_accs)
    engines = sorted({r["engine"] for r in lib["runs"].values()})
    work = images * epochs * len(course_accs)        # training images processed per side
    return {
        "name": name, "course_s": course["seconds"], "trainlib_s": lib["seconds"],
        "ratio": course["seconds"] / lib["seconds"],
        "course_test_acc": course_acc, "trainlib_test_acc": lib_acc,
        "course_train_acc": sum(r["train_acc"] for r in course["runs"].values()) / len(course_accs),
        "trainlib_train_acc": sum(r["train_acc"] for r in lib["runs"].values()) / len(course_accs),
        "course_images_per_s": work / course["seconds"], "trainlib_images_per_s": work / lib["seconds"],
        "train_images": images, "epochs": epochs, "runs": len(course_accs), "test_images": n_test,
        "trainlib_engine": engines[0] if len(engines) == 1 else ", ".join(engines),
        "course_engine": "eager (torchvision dataset + ToTensor + DataLoader, 0 workers, .item() per batch)",
        "course_setup_s": course["setup_s"],
        "acc_warnings": warnings,
        "variants": {k: {"course": course["runs"][k], "trainlib": lib["runs"][k]} for k in course_accs},
        **extra,
    }


def case_single(name: str, dataset: str, root: Path, work: Path, sizes: Sizes, epochs: int,
                device: torch.device) -> dict:
    """One scenario: the course's loop vs create_scenario + train, on `dataset` ('mnist' or 'cifar10')."""
    n_train, n_val, n_test = ((sizes.mnist_train, sizes.mnist_val, sizes.mnist_test) if dataset == "mnist"
                              else (sizes.cifar_train, sizes.cifar_val, sizes.cifar_test))
    course = in_fresh_thread(run_course, dataset, root, n_train, n_val, epochs, device, {name: {}})
    spec = base_spec(dataset, root, sizes, epochs, device)
    lib = in_fresh_thread(run_trainlib_single, spec, work / f"runs-{name}" / name, device)
    return make_case(name, course, lib, n_train, epochs, n_test,
                     {"trainlib_path": "create_scenario + train(S), run folder written",
                      "course_epoch_s": course["runs"][name]["epoch_s"],
                      "trainlib_epoch_s": lib["runs"][name]["epoch_s"], "trainlib_setup_s": lib["setup_s"]})


def case_mlp(root: Path, work: Path, sizes: Sizes, epochs: int, device: torch.device) -> dict:
    return case_single("mlp", "mnist", root, work, sizes, epochs, device)


def case_regularization(root: Path, work: Path, sizes: Sizes, epochs: int, device: torch.device) -> dict:
    course = in_fresh_thread(run_course, "mnist", root, sizes.mnist_train, sizes.mnist_val, epochs, device,
                             REGULARIZATION)
    base = base_spec("mnist", root, sizes, epochs, device)
    # Before the process executor: every run a thread of one process, one worker on a CPU.
    threads = run_trainlib_sweep(base, work / "runs-regularization-threads", device, executor="thread",
                                 workers=1 if device.type == "cpu" else None)
    # Now: the default Runner, one process per run (on a CPU one per core, single-threaded).
    lib = run_trainlib_sweep(base, work / "runs-regularization", device, executor="local")
    return make_case("regularization", course, lib, sizes.mnist_train, epochs, sizes.mnist_test,
                     {"trainlib_path": f"Runner(executor='local', workers=None -> {lib['workers']} processes, "
                                       f"{lib['threads']} thread(s) each).submit_many(variants(...)) + wait",
                      "course_path": "the course's loop run 4 times in sequence, datasets read once",
                      "trainlib_workers": lib["workers"], "trainlib_first_row_s": lib["first_row_s"],
                      "thread_runner_s": threads["seconds"], "thread_runner_workers": threads["workers"],
                      "thread_runner_first_row_s": threads["first_row_s"],
                      "processes_vs_threads": threads["seconds"] / lib["seconds"]})


def case_cnn(root: Path, work: Path, sizes: Sizes, epochs: int, device: torch.device) -> dict:
    return case_single("cnn", "cifar10", root, work, sizes, epochs, device)


def write_data(root: Path, sizes: Sizes, cases: list[str]) -> str | None:
    """Generate what the cases need under root; returns the CIFAR meta md5 (None without the cnn case)."""
    if {"mlp", "regularization"} & set(cases):
        write_mnist(root, sizes.mnist_train + sizes.mnist_val, sizes.mnist_test)
    if "cnn" in cases:
        return write_cifar(root, sizes.cifar_train + sizes.cifar_val, sizes.cifar_test)
    return None


def warm_up(work: Path, cases: list[str], device: torch.device) -> float:
    """One tiny run of each side before any timing: CUDA context, cuBLAS/cuDNN handles, the first
    graph capture, lazy imports (TensorBoard's writer) are paid here, not by whichever side runs first.
    The CNN is warmed up on CUDA only: on a CPU it has no one-off cost worth the seconds it takes."""
    started = time.perf_counter()
    root = work / "warmup-data"
    warm_cases = ["mlp"] + (["cnn"] if "cnn" in cases and device.type == "cuda" else [])
    meta_md5 = write_data(root, WARMUP, warm_cases)
    with generated_cifar_accepted(meta_md5) if meta_md5 else contextlib.nullcontext():
        case_mlp(root, work / "warmup-runs", WARMUP, 1, device)
        if "cnn" in warm_cases:
            case_cnn(root, work / "warmup-runs", WARMUP, 1, device)
    clear_cache()
    return time.perf_counter() - started


# ============================================================================ report
def machine_info(device: torch.device) -> dict:
    cpu_model = platform.processor()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    info = {"hostname": socket.gethostname(), "platform": platform.platform(), "python": platform.python_version(),
            "cpu": cpu_model, "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "torchvision": torchvision.__version__,
            "cuda_available": torch.cuda.is_available(), "cuda": torch.version.cuda,
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            # Other busy processes distort CPU timings: a 1-minute load above the core count says so.
            "load_avg_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}
    if torch.cuda.is_available():
        info["gpu_count"] = torch.cuda.device_count()
        info["cudnn"] = torch.backends.cudnn.version()
    return info


def format_table(cases: list[dict]) -> str:
    header = (f"{'case':<15}{'course s':>10}{'trainlib s':>12}{'course img/s':>14}{'trainlib img/s':>16}"
              f"{'ratio':>8}{'course acc':>12}{'trainlib acc':>14}  trainlib engine")
    lines = [header, "-" * len(header)]
    for c in cases:
        lines.append(f"{c['name']:<15}{c['course_s']:>10.2f}{c['trainlib_s']:>12.2f}{c['course_images_per_s']:>14,.0f}"
                     f"{c['trainlib_images_per_s']:>16,.0f}{c['ratio']:>7.2f}x{100 * c['course_test_acc']:>11.2f}%"
                     f"{100 * c['trainlib_test_acc']:>13.2f}%  {c['trainlib_engine']}")
    return "\n".join(lines)


def resolve_bench_device(requested: str) -> torch.device:
    if requested == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA GPU is visible to torch here; use --device cpu or auto")
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--quick", action="store_true",
                        help="small data and 2 epochs: the whole CPU run in under a minute")
    parser.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)     # the test suite's size
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, from {', '.join(CASES)}")
    parser.add_argument("--epochs", type=int, default=None, help="override the epochs of every case")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch.set_num_threads for both sides (default: torch's own choice, left alone)")
    parser.add_argument("--out", required=True, help="where to write the JSON results")
    args = parser.parse_args(argv)
    args.argv = list(argv if argv is not None else sys.argv[1:])
    args.cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in args.cases if c not in CASES]
    if unknown or not args.cases:
        parser.error(f"--cases: unknown {', '.join(unknown) or '(none given)'}; allowed: {', '.join(CASES)}")
    if args.epochs is not None and args.epochs < 1:
        parser.error("--epochs must be >= 1")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    device = resolve_bench_device(args.device)
    threads_before = torch.get_num_threads()
    if args.threads is not None:
        # Only on request: on a CPU shared with other busy processes, fewer intra-op threads than cores
        # avoids OpenMP barriers that wait for a descheduled thread (both sides equally affected).
        torch.set_num_threads(args.threads)
    try:
        return run_benchmark(args, device)
    finally:
        torch.set_num_threads(threads_before)    # main() may be called from a test process


def run_benchmark(args: argparse.Namespace, device: torch.device) -> dict:
    sizes = TINY if args.tiny else QUICK if args.quick else FULL
    if args.epochs is not None:
        sizes = replace(sizes, mlp_epochs=args.epochs, cnn_epochs=args.epochs)
    result = {"machine": machine_info(device), "device": device.type,
              "command": "python bench/bench.py " + " ".join(args.argv),
              "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "sizes": asdict(sizes), "cases": []}
    print(f"device {device.type}" + (f" ({result['machine']['gpu']})" if result["machine"]["gpu"] else "")
          + f", torch {torch.__version__}, {os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads", flush=True)
    run_started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="trainlib-bench-") as tmp:
        work = Path(tmp)
        root = work / "data"
        started = time.perf_counter()
        meta_md5 = write_data(root, sizes, args.cases)
        result["data_s"] = time.perf_counter() - started
        print(f"data written in {result['data_s']:.1f} s", flush=True)
        with generated_cifar_accepted(meta_md5) if meta_md5 else contextlib.nullcontext():
            result["warmup_s"] = warm_up(work, args.cases, device)
            print(f"warm-up {result['warmup_s']:.1f} s", flush=True)
            runners = {"mlp": (case_mlp, sizes.mlp_epochs), "regularization": (case_regularization, sizes.mlp_epochs),
                       "cnn": (case_cnn, sizes.cnn_epochs)}
            for name in args.cases:
                run_case, epochs = runners[name]
                case = run_case(root, work, sizes, epochs, device)
                result["cases"].append(case)
                print(f"{name}: course {case['course_s']:.2f} s, trainlib {case['trainlib_s']:.2f} s, "
                      f"ratio {case['ratio']:.2f}x", flush=True)
                if name == "regularization":
                    print(f"  thread runner (before): {case['thread_runner_s']:.2f} s with "
                          f"{case['thread_runner_workers']} worker, first metrics row after "
                          f"{case['thread_runner_first_row_s']:.2f} s; process executor: {case['trainlib_s']:.2f} s "
                          f"with {case['trainlib_workers']} processes, first row after "
                          f"{case['trainlib_first_row_s']:.2f} s ({case['processes_vs_threads']:.2f}x)", flush=True)
            if "regularization" in args.cases:
                result["shapes_preset"] = shapes_first_row(work, device)
                print(f"shapes preset (4 runs x 5 epochs, warm local runner): first metrics row "
                      f"{result['shapes_preset']['first_row_s']:.2f} s after submit, all done after "
                      f"{result['shapes_preset']['seconds']:.2f} s", flush=True)
    result["total_s"] = time.perf_counter() - run_started
    result["load_avg_1min_end"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    print()
    print(format_table(result["cases"]))
    # Below full size the models are under-trained and their test accuracies swing by several points
    # with the seed on either side: a gap there is reported, but only the full size raises a WARNING.
    label = "WARNING" if sizes.mnist_train >= FULL.mnist_train else "note (under-trained at this size)"
    for case in result["cases"]:
        for warning in case["acc_warnings"]:
            print(f"{label}: {warning}")
    cores, load = os.cpu_count() or 1, max(result["machine"]["load_avg_1min"] or 0, result["load_avg_1min_end"] or 0)
    if device.type == "cpu" and load > cores - 0.5:
        print(f"WARNING: load average {load:.1f} on {cores} CPUs: other processes competed for the CPU, "
              f"the seconds are inflated (with torch's default threads, badly; --threads 1 suffers less)")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"\nwrote {out}")
    return result


if __name__ == "__main__":
    main()
