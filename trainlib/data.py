"""Datasets, reproducible splits and loaders.

    bundle = load_data(spec)                    # train / val / test tensors + what the task is
    loader = DeviceLoader(bundle.train, 64, shuffle=True, drop_last=False, seed=0, device=dev)
    for x, y in loader: ...                     # float inputs on `dev`, each sample once per epoch

Torchvision datasets are read by torchvision's own classes (download=True); the pixels are then
kept as one uint8 tensor, so an epoch costs no per-sample Python work. download=True creates
DATA_DIR/MNIST/raw before it tries the network, so whatever only reads a run (its evaluation, its
model summary) calls require_dataset_files() first: reading never creates folders.
"""
from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch

from . import builtin_data
from .spec import ScenarioSpec, SpecError, derived_seed

IMAGE_DATASETS = ("shapes", "mnist", "fashion_mnist", "cifar10", "imagefolder")
POINT_DATASETS = ("moons", "circles", "spirals")
REGRESSION_DATASETS = ("sine",)

# Where torchvision's classes look for each dataset under DATA_DIR, and the files it wants there.
TORCHVISION_LAYOUT = {
    "mnist": ("MNIST/raw", ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                            "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]),
    "fashion_mnist": ("FashionMNIST/raw", ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                                            "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]),
    "cifar10": (".", ["cifar-10-python.tar.gz (or its extracted folder cifar-10-batches-py/)"]),
}
# Sizes of the generated sets: small enough to train in seconds on a CPU, big enough to over-fit visibly.
BUILTIN_POOL, BUILTIN_TEST = 6000, 1000
BUILTIN_DATA_SEED = 1234     # the data itself is fixed; the spec's seed only drives split and training


class DatasetUnavailable(RuntimeError):
    """The dataset's files are missing and could not be downloaded."""


@dataclass
class Split:
    x: torch.Tensor          # uint8 images (N, C, H, W), or float features (N, D)
    y: torch.Tensor          # int64 class ids, or float targets (N, 1) for regression

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class DataBundle:
    train: Split
    val: Split
    test: Split
    task: str                # 'multiclass', 'binary' or 'regression'
    num_classes: int         # 0 for regression
    input_shape: tuple[int, ...]
    class_names: list[str]

    @property
    def is_image(self) -> bool:
        return len(self.input_shape) == 3


def prepare_inputs(x: torch.Tensor) -> torch.Tensor:
    """uint8 pixels -> float in [0, 1] (what ToTensor gives); float features pass through."""
    return x.float().div_(255) if x.dtype == torch.uint8 else x


# ----------------------------------------------------------------------------- raw pools
_POOL_CACHE: dict[tuple, tuple] = {}
_POOL_LOCK = threading.Lock()


def _torchvision_class(name: str):
    from torchvision import datasets
    return {"mnist": datasets.MNIST, "fashion_mnist": datasets.FashionMNIST, "cifar10": datasets.CIFAR10}[name]


def missing_files_message(name: str, root: str | os.PathLike) -> str:
    folder, files = TORCHVISION_LAYOUT[name]
    where = (Path(root) / folder).resolve()
    return (f"dataset {name!r} is not in {Path(root).resolve()} and could not be downloaded. "
            f"Put these files in {where}: {', '.join(files)}; then run again.")


def _is_failed_download(exc: BaseException) -> bool:
    """torchvision's ways of saying a download failed: URLError (CIFAR), 'Error downloading X:'
    after every MNIST mirror, a refused or timed-out connection, a downloaded file with the wrong md5."""
    from urllib.error import URLError
    if isinstance(exc, (URLError, ConnectionError, TimeoutError)):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and (text.startswith("Error downloading") or "not found or corrupted" in text)


def unavailable_message(name: str, root: str | os.PathLike, exc: BaseException, had_files: bool) -> str:
    """What to tell when torchvision could not give the dataset: which files to put where, and
    only what the cause adds to that. Without the files, a failed download is the whole story
    (torchvision's 'Error downloading train-images-idx3-ubyte.gz:' adds nothing). With them, it
    downloads only when a file fails its checksum; any other error is about the files' contents."""
    if not had_files:
        return missing_files_message(name, root)
    folder, files = TORCHVISION_LAYOUT[name]
    where = (Path(root) / folder).resolve()
    replace = f"Replace them with the original files: {', '.join(files)}; then run again."
    if _is_failed_download(exc):
        return (f"dataset {name!r}: the files in {where} do not match torchvision's checksums (truncated, or "
                f"not the original files) and fresh copies could not be downloaded. {replace}")
    first_line = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
    cause = f"{type(exc).__name__}: {first_line}" if first_line else type(exc).__name__
    return f"dataset {name!r}: the files in {where} cannot be read ({cause}). {replace}"


def require_dataset_files(name: str, root: str | os.PathLike) -> None:
    """Raise DatasetUnavailable unless torchvision will find dataset `name` under root without
    downloading; a no-op for datasets that are not torchvision's. For readers of a run: torchvision's
    download=True creates ROOT/MNIST/raw even when the download then fails."""
    if name in TORCHVISION_LAYOUT and not files_present(name, root):
        folder, files = TORCHVISION_LAYOUT[name]
        raise DatasetUnavailable(f"the dataset files are not in {(Path(root) / folder).resolve()}: "
                                 f"{name} needs {', '.join(files)} there (nothing is downloaded to look at a run)")


def _load_torchvision(name: str, root: str) -> tuple:
    cls = _torchvision_class(name)
    had_files = files_present(name, root)
    try:
        train = cls(root, train=True, download=True)
        test = cls(root, train=False, download=True)
    except Exception as exc:  # torchvision raises RuntimeError, URLError, OSError... by mirror and by file
        raise DatasetUnavailable(unavailable_message(name, root, exc, had_files)) from exc
    pools = []
    for ds in (train, test):
        pixels = torch.as_tensor(ds.data)
        pixels = pixels.unsqueeze(1) if pixels.ndim == 3 else pixels.permute(0, 3, 1, 2)   # CIFAR is NHWC
        pools.append((pixels.contiguous(), torch.as_tensor(ds.targets, dtype=torch.int64)))
    (train_x, train_y), (test_x, test_y) = pools
    return train_x, train_y, test_x, test_y, list(train.classes)


def files_present(name: str, root: str | os.PathLike) -> bool:
    """True when torchvision will find the dataset under root without downloading."""
    root = Path(root)
    if name == "cifar10":
        return (root / "cifar-10-batches-py").is_dir() or (root / "cifar-10-python.tar.gz").is_file()
    folder = root / TORCHVISION_LAYOUT[name][0]
    return all((folder / f).is_file() or (folder / f.removesuffix(".gz")).is_file()
               for f in TORCHVISION_LAYOUT[name][1])


def dataset_status(name: str, root: str | os.PathLike, online: bool) -> str:
    """'built-in', 'downloaded', 'will download' or 'cannot download' (for the dataset picker).

    `online` is the caller's answer to "can this machine reach the dataset mirrors?".
    """
    if name not in TORCHVISION_LAYOUT:
        return "built-in" if name != "imagefolder" else ("downloaded" if Path(root).is_dir() else "cannot download")
    if files_present(name, root):
        return "downloaded"
    return "will download" if online else "cannot download"


def _load_imagefolder(root: str, size: int) -> tuple:
    from torchvision import datasets, transforms
    if not Path(root).is_dir():
        raise DatasetUnavailable(f"data_dir: imagefolder needs a folder of class sub-folders, {root!r} is not a folder")
    folder = datasets.ImageFolder(root, transform=transforms.Compose([
        transforms.Resize((size, size)), transforms.PILToTensor()]))
    if len(folder) == 0:
        raise DatasetUnavailable(f"data_dir: no images found under {root!r}")
    # One pass at load time; afterwards the pixels live in one uint8 tensor like the other datasets.
    pixels = torch.stack([folder[i][0] for i in range(len(folder))])
    return pixels, torch.tensor(folder.targets, dtype=torch.int64), None, None, list(folder.classes)


def _load_builtin(name: str) -> tuple:
    if name == "shapes":
        x, y = builtin_data.make_shapes(BUILTIN_POOL + BUILTIN_TEST, seed=BUILTIN_DATA_SEED)
        classes = list(builtin_data.SHAPE_CLASSES)
    elif name == "sine":
        x, y = builtin_data.make_sine(BUILTIN_POOL + BUILTIN_TEST, seed=BUILTIN_DATA_SEED)
        classes = []
    else:
        x, y = builtin_data.make_points(name, BUILTIN_POOL + BUILTIN_TEST, seed=BUILTIN_DATA_SEED)
        classes = ["class 0", "class 1"]
    return x[:BUILTIN_POOL], y[:BUILTIN_POOL], x[BUILTIN_POOL:], y[BUILTIN_POOL:], classes


def load_pool(dataset: str, data_dir: str = "data", image_size: int = 32) -> tuple:
    """(train_x, train_y, test_x, test_y, class_names) on the CPU; test_x is None when there is no test split.

    Cached per process: a sweep of four scenarios reads the files once.
    """
    key = (dataset, str(Path(data_dir).resolve()) if dataset in TORCHVISION_LAYOUT or dataset == "imagefolder" else "",
           image_size if dataset == "imagefolder" else 0)
    with _POOL_LOCK:
        if key not in _POOL_CACHE:
            if dataset in TORCHVISION_LAYOUT:
                _POOL_CACHE[key] = _load_torchvision(dataset, data_dir)
            elif dataset == "imagefolder":
                _POOL_CACHE[key] = _load_imagefolder(data_dir, image_size)
            else:
                _POOL_CACHE[key] = _load_builtin(dataset)
        return _POOL_CACHE[key]


def clear_cache() -> None:
    with _POOL_LOCK:
        _POOL_CACHE.clear()


def task_of(dataset: str) -> str:
    if dataset in REGRESSION_DATASETS:
        return "regression"
    if dataset in POINT_DATASETS:
        return "binary"
    return "multiclass"


# ----------------------------------------------------------------------------- splits
def split_indices(n: int, fractions: tuple[float, ...], seed: int) -> list[torch.Tensor]:
    """A seeded permutation of range(n) cut into consecutive parts; the last part takes the rest."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    parts, start = [], 0
    for fraction in fractions:
        size = int(round(n * fraction))
        parts.append(order[start:start + size])
        start += size
    parts.append(order[start:])
    return parts


def load_data(spec: ScenarioSpec) -> DataBundle:
    """The spec's train / validation / test splits, reproducible from spec.seed."""
    pool_x, pool_y, test_x, test_y, classes = load_pool(spec.dataset, spec.data_dir, spec.image_size)
    if test_x is None:
        # No test split of its own (a user's folder): carve one the size of the validation split.
        test_idx, val_idx, train_idx = split_indices(len(pool_y), (spec.val_fraction, spec.val_fraction),
                                                     derived_seed(spec.seed, "split"))
        test_x, test_y = pool_x[test_idx], pool_y[test_idx]
    else:
        val_idx, train_idx = split_indices(len(pool_y), (spec.val_fraction,), derived_seed(spec.seed, "split"))
    if len(train_idx) == 0 or len(val_idx) == 0:
        raise SpecError("val_fraction", f"{spec.val_fraction} leaves an empty split of {len(pool_y)} samples")
    if spec.train_subset is not None:
        train_idx = train_idx[:spec.train_subset]
    task = task_of(spec.dataset)
    return DataBundle(
        train=Split(pool_x[train_idx], pool_y[train_idx]),
        val=Split(pool_x[val_idx], pool_y[val_idx]),
        test=Split(test_x, test_y),
        task=task,
        num_classes=0 if task == "regression" else len(classes),
        input_shape=tuple(pool_x.shape[1:]),
        class_names=classes,
    )


# ----------------------------------------------------------------------------- loaders
class DeviceLoader:
    """Batches from tensors held on the training device, ordered by a device-side randperm.

    Same meaning as DataLoader(shuffle=..., drop_last=...): every sample once per epoch, the last
    partial batch kept unless drop_last. Inputs leave as float (uint8 pixels scaled to [0, 1]).
    """

    def __init__(self, split: Split, batch_size: int, shuffle: bool, drop_last: bool, seed: int,
                 device: torch.device, transform: Callable[[torch.Tensor], torch.Tensor] = prepare_inputs):
        self.x = split.x.to(device)
        self.y = split.y.to(device)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.transform = transform
        self.order = EpochOrder(seed, device) if shuffle else None

    def __len__(self) -> int:
        n = len(self.y)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    @property
    def num_samples(self) -> int:
        return len(self.y)

    def set_epoch(self, epoch: int) -> None:
        if self.order is not None:
            self.order.set_epoch(epoch)

    def epoch_order(self) -> torch.Tensor | None:
        """This epoch's sample order (None = natural order); the next call gives the next epoch's."""
        return self.order.permutation(len(self.y)) if self.order is not None else None

    def batch_bounds(self) -> Iterator[tuple[int, int]]:
        n = len(self.y)
        stop = (n // self.batch_size) * self.batch_size if self.drop_last else n
        for start in range(0, stop, self.batch_size):
            yield start, min(start + self.batch_size, n)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = self.epoch_order()
        for start, end in self.batch_bounds():
            if order is None:
                yield self.transform(self.x[start:end]), self.y[start:end]
            else:
                idx = order[start:end]
                yield self.transform(self.x[idx]), self.y[idx]


class EpochOrder:
    """The shuffled order of an epoch as a function of (seed, epoch), as DistributedSampler does it:
    a resumed run draws epoch 7's order without replaying epochs 1-6, and no generator state needs
    saving. Epochs count up by themselves from 1; set_epoch(n) says which comes next."""

    def __init__(self, seed: int, device: torch.device | str = "cpu"):
        self.seed = seed
        self.next_epoch = 1
        self.generator = torch.Generator(device=device)

    def set_epoch(self, epoch: int) -> None:
        self.next_epoch = epoch

    def permutation(self, n: int) -> torch.Tensor:
        self.generator.manual_seed(self.seed + self.next_epoch)
        self.next_epoch += 1
        return torch.randperm(n, device=self.generator.device, generator=self.generator)


class _EpochPermutation(torch.utils.data.Sampler):
    """DeviceLoader.epoch_order on the host: the same EpochOrder, as a DataLoader sampler."""

    def __init__(self, n: int, seed: int):
        self.n = n
        self.order = EpochOrder(seed)

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        return iter(self.order.permutation(self.n).tolist())


class HostLoader:
    """The plain path (resident_data=False): torch's DataLoader over CPU tensors, moved per batch."""

    def __init__(self, split: Split, batch_size: int, shuffle: bool, drop_last: bool, seed: int,
                 device: torch.device, transform: Callable[[torch.Tensor], torch.Tensor] = prepare_inputs):
        from torch.utils.data import DataLoader, TensorDataset
        # Same order as DeviceLoader for the same seed: one randperm per epoch from a seeded generator.
        # (RandomSampler draws a second randperm per epoch, and DataLoader draws its worker base seed
        # from the generator it is given, so neither may share this one.)
        self.sampler = sampler = _EpochPermutation(len(split), seed) if shuffle else None
        self.loader = DataLoader(TensorDataset(split.x, split.y), batch_size=batch_size, sampler=sampler,
                                 drop_last=drop_last, generator=torch.Generator().manual_seed(seed),
                                 pin_memory=device.type == "cuda")
        self.device = device
        self.transform = transform
        self.num_samples = len(split)

    def __len__(self) -> int:
        return len(self.loader)

    def set_epoch(self, epoch: int) -> None:
        if self.sampler is not None:
            self.sampler.order.set_epoch(epoch)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for x, y in self.loader:
            yield (self.transform(x.to(self.device, non_blocking=True)), y.to(self.device, non_blocking=True))


def make_loaders(bundle: DataBundle, spec: ScenarioSpec, device: torch.device, eval_batch_size: int | None = None):
    """(train, valid, test) loaders: training shuffled, validation and test in order, in large batches.

    Evaluation batches: 2048 on a GPU (fewer launches); 256 on a CPU, where a conv net's forward
    pass over 2048 images ran ~2x slower than over small batches (cache-bound).
    """
    if eval_batch_size is None:
        eval_batch_size = 2048 if device.type == "cuda" else 256
    cls = DeviceLoader if spec.resident_data else HostLoader
    shuffle_seed = derived_seed(spec.seed, "shuffle")
    train = cls(bundle.train, spec.batch_size, shuffle=True, drop_last=spec.drop_last, seed=shuffle_seed, device=device)
    valid = cls(bundle.val, eval_batch_size, shuffle=False, drop_last=False, seed=spec.seed, device=device)
    test = cls(bundle.test, eval_batch_size, shuffle=False, drop_last=False, seed=spec.seed, device=device)
    return train, valid, test


def mirrors_reachable(timeout: float = 1.5) -> bool:
    """Can this machine open a connection to torchvision's MNIST mirror? False at once when
    TRAINLIB_OFFLINE=1 (tests, classrooms without internet)."""
    import socket
    if os.environ.get("TRAINLIB_OFFLINE") == "1":
        return False
    try:
        with socket.create_connection(("ossci-datasets.s3.amazonaws.com", 443), timeout=timeout):
            return True
    except OSError:
        return False
