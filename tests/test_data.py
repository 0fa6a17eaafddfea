"""Datasets, splits and loaders: sizes, seeds, every sample once per epoch, fast path = plain path,
and MNIST read by torchvision's own class from tiny IDX files written here."""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from trainlib import DatasetUnavailable, ScenarioSpec, load_data
from trainlib import builtin_data
from trainlib.data import (BUILTIN_POOL, BUILTIN_TEST, DeviceLoader, HostLoader, Split, clear_cache,
                           dataset_status, load_pool, make_loaders, mirrors_reachable, split_indices)

CPU = torch.device("cpu")
MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
               "t10k-labels-idx1-ubyte")


def numbered_split(n: int) -> Split:
    """Sample i has feature i and label i, so a batch says which samples it holds."""
    return Split(torch.arange(n, dtype=torch.float32).unsqueeze(1), torch.arange(n))


def batches_of(loader) -> list[list[int]]:
    return [y.tolist() for _, y in loader]


# ----------------------------------------------------------------------------- splits
def test_split_sizes_are_80_20_of_the_pool_and_test_is_the_datasets_own():
    bundle = load_data(ScenarioSpec(dataset="moons"))
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (4800, 1200, BUILTIN_TEST)
    _, _, test_x, test_y, _ = load_pool("moons")
    assert torch.equal(bundle.test.x, test_x) and torch.equal(bundle.test.y, test_y)
    assert bundle.task == "binary" and bundle.num_classes == 2 and bundle.input_shape == (2,)
    other = load_data(ScenarioSpec(dataset="moons", val_fraction=0.1))
    assert (len(other.train), len(other.val)) == (5400, 600)


def test_split_indices_partition_the_pool_reproducibly():
    val, train = split_indices(103, (0.2,), seed=3)
    assert (len(val), len(train)) == (21, 82)
    assert sorted(torch.cat([val, train]).tolist()) == list(range(103))
    again_val, again_train = split_indices(103, (0.2,), seed=3)
    assert torch.equal(val, again_val) and torch.equal(train, again_train)
    other_val, _ = split_indices(103, (0.2,), seed=4)
    assert not torch.equal(val, other_val)


def test_same_seed_same_split_other_seed_other_split():
    a = load_data(ScenarioSpec(dataset="moons", seed=0))
    b = load_data(ScenarioSpec(dataset="moons", seed=0))
    c = load_data(ScenarioSpec(dataset="moons", seed=1))
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.val.y, b.val.y)
    assert not torch.equal(a.val.x, c.val.x)
    # a different split of the same pool: same test set, same total
    assert torch.equal(a.test.x, c.test.x)
    pool = {tuple(p) for p in torch.cat([a.train.x, a.val.x]).tolist()}
    assert pool == {tuple(p) for p in torch.cat([c.train.x, c.val.x]).tolist()}


def test_train_subset_caps_training_and_leaves_validation_alone():
    full = load_data(ScenarioSpec(dataset="moons"))
    small = load_data(ScenarioSpec(dataset="moons", train_subset=100))
    assert len(small.train) == 100
    assert torch.equal(small.train.x, full.train.x[:100])
    assert torch.equal(small.val.x, full.val.x) and len(small.test) == len(full.test)
    assert len(load_data(ScenarioSpec(dataset="moons", train_subset=10**6)).train) == 4800


# ----------------------------------------------------------------------------- loaders
def test_device_loader_yields_every_sample_once_with_the_last_partial_batch():
    loader = DeviceLoader(numbered_split(103), 10, shuffle=True, drop_last=False, seed=0, device=CPU)
    assert len(loader) == 11
    batches = batches_of(loader)
    assert [len(b) for b in batches] == [10] * 10 + [3]
    assert sorted(sum(batches, [])) == list(range(103))
    second = batches_of(loader)
    assert sorted(sum(second, [])) == list(range(103))
    assert second != batches                      # reshuffled each epoch


def test_device_loader_drop_last():
    loader = DeviceLoader(numbered_split(103), 10, shuffle=True, drop_last=True, seed=0, device=CPU)
    assert len(loader) == 10
    batches = batches_of(loader)
    assert [len(b) for b in batches] == [10] * 10
    assert len(set(sum(batches, []))) == 100


def test_device_loader_inputs_are_scaled_floats():
    pixels = torch.tensor([[0, 51, 255]], dtype=torch.uint8).repeat(4, 1)
    loader = DeviceLoader(Split(pixels, torch.zeros(4, dtype=torch.long)), 4, shuffle=False, drop_last=False,
                          seed=0, device=CPU)
    x, _ = next(iter(loader))
    assert x.dtype == torch.float32
    assert x[0].tolist() == pytest.approx([0.0, 0.2, 1.0])


def test_validation_and_test_loaders_are_in_order():
    bundle = load_data(ScenarioSpec(dataset="moons", train_subset=64))
    for resident in (True, False):
        spec = ScenarioSpec(dataset="moons", train_subset=64, batch_size=16, resident_data=resident)
        train, valid, test = make_loaders(bundle, spec, CPU)
        assert type(train) is (DeviceLoader if resident else HostLoader)
        for loader, split in ((valid, bundle.val), (test, bundle.test)):
            first = torch.cat([y for _, y in loader])
            assert torch.equal(first, split.y)
            assert torch.equal(torch.cat([y for _, y in loader]), first)


@pytest.mark.parametrize("drop_last", [False, True])
def test_host_loader_gives_the_same_batches_as_device_loader(drop_last):
    """The plain path (DataLoader) and the fast path (resident randperm) see the same batches."""
    split = numbered_split(103)
    fast = DeviceLoader(split, 10, shuffle=True, drop_last=drop_last, seed=7, device=CPU)
    plain = HostLoader(split, 10, shuffle=True, drop_last=drop_last, seed=7, device=CPU)
    assert len(fast) == len(plain) == (10 if drop_last else 11)
    for _ in range(3):                            # the same order epoch after epoch, not just the first
        assert batches_of(fast) == batches_of(plain)
    for x, y in plain:
        assert x.dtype == torch.float32 and torch.equal(x[:, 0].long(), y)


def test_host_loader_leaves_the_global_rng_alone():
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    batches_of(HostLoader(numbered_split(50), 8, shuffle=True, drop_last=False, seed=1, device=CPU))
    assert torch.equal(torch.rand(3), expected)   # dropout masks must not depend on the loader type


# ----------------------------------------------------------------------------- built-in data
def test_builtin_generators_are_deterministic_and_typed():
    x, y = builtin_data.make_shapes(50, seed=5)
    assert x.dtype == torch.uint8 and x.shape == (50, 1, 28, 28)
    assert y.dtype == torch.int64 and set(y.tolist()) <= {0, 1, 2}
    x2, y2 = builtin_data.make_shapes(50, seed=5)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    assert not torch.equal(x, builtin_data.make_shapes(50, seed=6)[0])
    for kind in builtin_data.POINT_SETS:
        p, labels = builtin_data.make_points(kind, 40, seed=1)
        assert p.shape == (40, 2) and p.dtype == torch.float32 and set(labels.tolist()) <= {0, 1}
        assert torch.equal(p, builtin_data.make_points(kind, 40, seed=1)[0])
    sx, sy = builtin_data.make_sine(30, seed=2)
    assert sx.shape == sy.shape == (30, 1) and sy.dtype == torch.float32
    with pytest.raises(ValueError):
        builtin_data.make_points("stars", 10, seed=0)


def test_builtin_datasets_load_the_same_pool_every_time():
    first = load_data(ScenarioSpec(dataset="shapes"))
    clear_cache()
    again = load_data(ScenarioSpec(dataset="shapes"))
    assert torch.equal(first.train.x, again.train.x) and torch.equal(first.test.y, again.test.y)
    assert first.train.x.dtype == torch.uint8 and first.train.x.shape[1:] == (1, 28, 28)
    assert first.input_shape == (1, 28, 28) and first.num_classes == 3 and first.task == "multiclass"
    assert len(first.train) + len(first.val) == BUILTIN_POOL
    sine = load_data(ScenarioSpec(dataset="sine"))
    assert sine.task == "regression" and sine.num_classes == 0 and sine.train.y.shape[1:] == (1,)


# ----------------------------------------------------------------------------- MNIST through torchvision
def write_idx_mnist(root: Path, n_train: int = 50, n_test: int = 20) -> None:
    """MNIST's IDX files, uncompressed: big-endian magic (2051 images / 2049 labels), sizes, uint8 data.

    Image i of a split is filled with the value 3*i+1 and labelled (3*i+1) % 10, so pixels and labels
    can be checked against each other after any shuffle."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        values = (np.arange(n, dtype=np.int64) * 3 + 1).astype(np.uint8)
        images = np.repeat(values, 28 * 28).reshape(n, 28, 28)
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(struct.pack(">iiii", 2051, n, 28, 28) + images.tobytes())
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">ii", 2049, n) + (values % 10).tobytes())


def test_mnist_from_idx_files_through_torchvision(tmp_path, no_download):
    write_idx_mnist(tmp_path, n_train=50, n_test=20)
    bundle = load_data(ScenarioSpec(dataset="mnist", data_dir=str(tmp_path)))
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (40, 10, 20)
    assert bundle.train.x.shape == (40, 1, 28, 28) and bundle.train.x.dtype == torch.uint8
    assert bundle.input_shape == (1, 28, 28) and bundle.num_classes == 10 and bundle.task == "multiclass"
    assert bundle.class_names[0].startswith("0")
    for split in (bundle.train, bundle.val, bundle.test):
        fill = split.x[:, 0, 0, 0].long()
        assert torch.equal(split.x.flatten(1).long().amin(1), fill)     # whole image is its fill value
        assert torch.equal(split.x.flatten(1).long().amax(1), fill)
        assert torch.equal(split.y, fill % 10)
    assert bundle.test.x[:, 0, 0, 0].tolist() == [3 * i + 1 for i in range(20)]   # the test file, in order
    assert sorted(torch.cat([bundle.train.x, bundle.val.x])[:, 0, 0, 0].tolist()) == [3 * i + 1 for i in range(50)]


def test_mnist_missing_offline_says_which_files_to_put_where_then_works(tmp_path, no_download):
    root = tmp_path / "data"
    assert mirrors_reachable() is False               # TRAINLIB_OFFLINE=1
    assert dataset_status("mnist", root, online=False) == "cannot download"
    assert dataset_status("mnist", root, online=True) == "will download"
    with pytest.raises(DatasetUnavailable) as info:
        load_data(ScenarioSpec(dataset="mnist", data_dir=str(root)))
    message = str(info.value)
    assert str(root.resolve() / "MNIST" / "raw") in message
    for name in MNIST_FILES:
        assert name in message
    write_idx_mnist(root, n_train=30, n_test=10)
    assert dataset_status("mnist", root, online=False) == "downloaded"
    bundle = load_data(ScenarioSpec(dataset="mnist", data_dir=str(root)))
    assert len(bundle.train) + len(bundle.val) == 30 and len(bundle.test) == 10


def test_dataset_status_values(tmp_path):
    for name in ("shapes", "moons", "circles", "spirals", "sine"):
        assert dataset_status(name, tmp_path, online=False) == "built-in"
    assert dataset_status("imagefolder", tmp_path, online=False) == "downloaded"
    assert dataset_status("imagefolder", tmp_path / "nowhere", online=True) == "cannot download"
    assert dataset_status("cifar10", tmp_path, online=False) == "cannot download"
    (tmp_path / "cifar-10-batches-py").mkdir()
    assert dataset_status("cifar10", tmp_path, online=False) == "downloaded"
    assert dataset_status("fashion_mnist", tmp_path, online=True) == "will download"


def test_imagefolder_without_test_split_carves_one(tmp_path):
    from PIL import Image
    for label, colour in (("dark", 20), ("light", 230)):
        (tmp_path / label).mkdir()
        for i in range(10):
            Image.new("RGB", (12, 10), (colour, colour, colour)).save(tmp_path / label / f"{i}.png")
    bundle = load_data(ScenarioSpec(dataset="imagefolder", data_dir=str(tmp_path), image_size=16))
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (12, 4, 4)
    assert bundle.input_shape == (3, 16, 16) and bundle.class_names == ["dark", "light"]
    for split in (bundle.train, bundle.val, bundle.test):
        assert torch.equal((split.x.float().mean((1, 2, 3)) > 128).long(), split.y)
    with pytest.raises(DatasetUnavailable):
        load_data(ScenarioSpec(dataset="imagefolder", data_dir=str(tmp_path / "missing")))


def test_split_init_and_batch_order_draw_from_independent_streams():
    """The scenario's seed is not handed unchanged to several generators (their streams would coincide)."""
    from trainlib.data import make_loaders
    spec = ScenarioSpec(dataset="moons", seed=3)
    bundle = load_data(spec)
    train_loader, _, _ = make_loaders(bundle, spec, torch.device("cpu"))
    first_order = train_loader.epoch_order()
    same_stream = torch.randperm(len(bundle.train), generator=torch.Generator().manual_seed(spec.seed))
    assert not torch.equal(first_order, same_stream)
    other = load_data(spec.replace(seed=4))
    assert not torch.equal(bundle.val.x, other.val.x)           # the seed still drives the split


# ----------------------------------------------------------------------------- failed loads say what to do
def test_a_failed_download_names_the_files_and_where_without_torchvisions_noise(tmp_path, no_download):
    """It ended with '(RuntimeError: Error downloading train-images-idx3-ubyte.gz:)'."""
    from trainlib.data import missing_files_message
    with pytest.raises(DatasetUnavailable) as info:
        load_data(ScenarioSpec(dataset="mnist", data_dir=str(tmp_path)))
    assert str(info.value) == missing_files_message("mnist", tmp_path)
    assert str(info.value).endswith("; then run again.") and "Error downloading" not in str(info.value)


def test_a_failed_cifar_download_says_the_same(tmp_path, monkeypatch):
    from torchvision import datasets

    from trainlib.data import missing_files_message
    monkeypatch.setattr(datasets.CIFAR10, "url", "http://127.0.0.1:9/cifar-10-python.tar.gz")
    with pytest.raises(DatasetUnavailable) as info:
        load_data(ScenarioSpec(dataset="cifar10", data_dir=str(tmp_path)))
    assert str(info.value) == missing_files_message("cifar10", tmp_path)      # no 'URLError: <urlopen error ...>'


def test_files_that_fail_their_checksum_say_so(tmp_path, no_download):
    """Placed .gz files that are not the originals: torchvision checks their md5, tries to download
    fresh ones and fails; the message says the files are wrong, not that they are missing."""
    import gzip
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in MNIST_FILES:
        (raw / f"{name}.gz").write_bytes(gzip.compress(b"not mnist"))
    with pytest.raises(DatasetUnavailable) as info:
        load_data(ScenarioSpec(dataset="mnist", data_dir=str(tmp_path)))
    message = str(info.value)
    assert f"the files in {raw.resolve()} do not match torchvision's checksums" in message
    assert all(name in message for name in MNIST_FILES) and "Error downloading" not in message


def test_files_that_cannot_be_parsed_name_the_cause(tmp_path, no_download):
    write_idx_mnist(tmp_path, n_train=5, n_test=5)
    (tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03 truncated")
    with pytest.raises(DatasetUnavailable) as info:
        load_data(ScenarioSpec(dataset="mnist", data_dir=str(tmp_path)))
    message = str(info.value)
    assert message.startswith(f"dataset 'mnist': the files in {(tmp_path / 'MNIST' / 'raw').resolve()} cannot be "
                              "read (")
    assert "Replace them with the original files" in message


def every_folder(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_dir()}


def test_require_dataset_files_creates_nothing(tmp_path):
    from trainlib.data import require_dataset_files
    before = every_folder(tmp_path)
    with pytest.raises(DatasetUnavailable) as info:
        require_dataset_files("mnist", tmp_path / "nowhere" / "deep")
    assert str(info.value).startswith(f"the dataset files are not in {tmp_path / 'nowhere' / 'deep' / 'MNIST' / 'raw'}")
    assert every_folder(tmp_path) == before
    require_dataset_files("shapes", tmp_path / "nowhere")            # generated: nothing to find
    write_idx_mnist(tmp_path / "data")
    require_dataset_files("mnist", tmp_path / "data")


# ----------------------------------------------------------------------------- the data root
def test_data_root_is_the_environment_variable_or_data_in_the_current_folder(tmp_path, monkeypatch):
    from trainlib.dataroot import data_root
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TRAINLIB_DATA_ROOT", raising=False)
    assert data_root() == tmp_path.resolve() / "data"
    monkeypatch.setenv("TRAINLIB_DATA_ROOT", "sets/../datasets")
    assert data_root() == tmp_path.resolve() / "datasets"
    monkeypatch.setenv("TRAINLIB_DATA_ROOT", "")
    assert data_root() == tmp_path.resolve() / "data"


def test_paths_inside_the_data_root_pass_and_others_are_refused_by_field(tmp_path, monkeypatch):
    from trainlib.dataroot import check_inside_data_root
    from trainlib.spec import SpecError
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TRAINLIB_DATA_ROOT", raising=False)
    root = tmp_path.resolve() / "data"
    (root / "mnist").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (root / "way-out").symlink_to(tmp_path / "elsewhere")
    for inside in ("data", "data/mnist", "data/not/yet/there", str(root / "mnist"), "./data/mnist/../mnist"):
        assert check_inside_data_root(inside, "data_dir").is_relative_to(root)
    for outside in ("..", ".", "", "data/../elsewhere", "/etc", "data/way-out", "data/way-out/mnist", "~",
                    "datab", "data\x00/x"):
        with pytest.raises(SpecError) as info:
            check_inside_data_root(outside, "data_dir")
        assert info.value.field == "data_dir"
        assert str(info.value).startswith("data_dir: ")
        if "\x00" not in outside:
            assert (f"must be inside the data root {root} (set by TRAINLIB_DATA_ROOT when the server starts); "
                    f"got {outside!r}") in str(info.value)
    monkeypatch.setenv("TRAINLIB_DATA_ROOT", str(tmp_path / "elsewhere"))
    assert check_inside_data_root("data/way-out", "weights") == (tmp_path / "elsewhere").resolve()


def test_data_root_errors_check_the_paths_a_scenario_reads(tmp_path, monkeypatch):
    from trainlib.dataroot import data_root_errors
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TRAINLIB_DATA_ROOT", raising=False)
    assert data_root_errors(ScenarioSpec(dataset="mnist")) == {}                 # data_dir 'data' is the root
    assert data_root_errors(ScenarioSpec(dataset="shapes", data_dir="/etc")) == {}   # generated: data_dir unused
    errors = data_root_errors(ScenarioSpec(dataset="imagefolder", data_dir="/etc", model="resnet18",
                                           weights="../w.pth"))
    assert set(errors) == {"data_dir", "weights"} and errors["weights"].startswith("weights: must be inside")
    assert set(data_root_errors({"dataset": "cifar10", "data_dir": 7})) == {"data_dir"}    # a raw scenario.json
    assert data_root_errors({"dataset": ["odd"], "model": "resnet18", "weights": ""}) == {}


def test_the_engine_and_the_cli_read_data_outside_the_data_root(tmp_path, monkeypatch, no_download, capsys):
    """The root binds the dashboard only: the machine's own user trains from any folder."""
    from trainlib.cli import main
    monkeypatch.setenv("TRAINLIB_DATA_ROOT", str(tmp_path / "root"))
    write_idx_mnist(tmp_path / "elsewhere", n_train=30, n_test=10)
    assert len(load_data(ScenarioSpec(dataset="mnist", data_dir=str(tmp_path / "elsewhere"))).test) == 10
    code = main(["run", "--dataset", "mnist", "--data-dir", str(tmp_path / "elsewhere"), "--epochs", "1",
                 "--hidden-sizes", "8", "--device", "cpu", "--runs-dir", str(tmp_path / "runs")])
    assert code == 0 and "finished" in capsys.readouterr().out
