"""The scenario as data: a flat, frozen, JSON-serialisable description of one training run.

    spec = ScenarioSpec(dataset="mnist", lr=1e-3, dropout=0.2)
    spec2 = ScenarioSpec.from_dict(spec.to_dict())     # round trip, strict about keys and types
    spec3 = spec.replace(weight_decay=1e-5)            # a new spec, never a mutated one

Every bad value raises SpecError naming the field and what is allowed.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
from dataclasses import dataclass
from typing import Any

DATASETS = ("shapes", "moons", "circles", "spirals", "sine", "mnist", "fashion_mnist", "cifar10", "imagefolder")
MODELS = ("mlp", "cnn", "resnet18")
ACTIVATIONS = ("relu", "gelu", "tanh", "sigmoid", "leaky_relu")
LOSSES = ("auto", "cross_entropy", "bce", "mse")
OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULERS = ("none", "linear", "cosine", "onecycle")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("fp32", "bf16")

# Allowed ranges of the integer fields, inclusive. The upper bounds turn a typo (an extra zero, a
# pasted 10**400) into a one-line error here instead of an overflow, a hang or an out-of-memory
# crash minutes into a run; each is far beyond what a lesson's run needs.
INT_RANGES = {
    "image_size": (8, 512),                # pixels per side
    "train_subset": (1, 10**9),            # more samples than any dataset here holds
    "seed": (0, 2**63 - 1),                # torch seeds are 64-bit; derived_seed gives 63-bit ones
    "epochs": (1, 100_000),
    "batch_size": (1, 2**20),
    "early_stopping_patience": (0, 100_000),   # like epochs; 0 = off
}
MAX_WIDTH = 65_536                         # units of one hidden layer / channels of one conv block
MAX_LAYERS = 64                            # widths in hidden_sizes / channels


class SpecError(ValueError):
    """A bad scenario value. `field` names the offending field (or key)."""

    def __init__(self, field_name: str, message: str):
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.message = message


@dataclass(frozen=True)
class ScenarioSpec:
    name: str = "run"                      # label shown in tables and legends
    # data
    dataset: str = "shapes"                # one of DATASETS; 'shapes' and the 2-D sets need no network
    data_dir: str = "data"                 # torchvision root (holds MNIST/raw/...), or the imagefolder path
    image_size: int = 32                   # pixels, 8..512; imagefolder images are resized to image_size x image_size
    train_subset: int | None = None        # cap on training samples, 1..10**9 (None = all), for quick runs
    val_fraction: float = 0.2              # share of the training pool held out for validation
    seed: int = 0                          # 0..2**63-1; drives the split, the initial weights and the batch order
    # model
    model: str = "mlp"                     # one of MODELS
    hidden_sizes: tuple[int, ...] = (256, 256)   # MLP hidden layer widths: 1..64 layers of 1..65536 units
    channels: tuple[int, ...] = (32, 64, 128)    # CNN conv block widths: 1..64 blocks of 1..65536 channels
    activation: str = "relu"               # one of ACTIVATIONS
    dropout: float = 0.0                   # probability in [0, 1), after each hidden layer / block
    batchnorm: bool = False                # one BatchNorm per hidden layer / conv block
    weights: str = ""                      # resnet18 only: path to a local state_dict to start from
    # objective and optimisation
    loss: str = "auto"                     # 'auto' follows the task: CE for classes, BCE binary, MSE regression
    optimizer: str = "adam"                # one of OPTIMIZERS
    lr: float = 1e-3                       # learning rate (peak lr for onecycle)
    momentum: float = 0.9                  # sgd only
    weight_decay: float = 0.0              # L2 penalty passed to the optimizer
    scheduler: str = "none"                # one of SCHEDULERS
    lr_end: float = 1e-5                   # linear: lr reached at the last epoch
    epochs: int = 5                        # 1..100,000
    batch_size: int = 64                   # 1..2**20 samples
    drop_last: bool = False                # drop the last partial training batch
    early_stopping_patience: int = 0       # epochs without val-loss improvement before stopping, 0..100,000; 0 = off
    # execution
    device: str = "auto"                   # auto = cuda when available, else cpu
    resident_data: bool = True             # hold the data on the device as uint8 and batch by randperm there
    cuda_graph: bool = True                # capture the train step as a CUDA graph (cuda, static shapes)
    precision: str = "fp32"                # 'bf16' autocasts forward passes (CNNs on GPUs)
    channels_last: bool = False            # memory format for conv models
    tags: tuple[str, ...] = ()             # free labels to group runs (sweep names, course chapter...)

    def __post_init__(self) -> None:
        # Lists from JSON become tuples so the spec stays hashable and immutable.
        for name in ("hidden_sizes", "channels", "tags"):
            value = getattr(self, name)
            if isinstance(value, list):
                object.__setattr__(self, name, tuple(value))
        validate(self)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        for key, value in out.items():
            if isinstance(value, tuple):
                out[key] = list(value)
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ScenarioSpec":
        if not isinstance(data, dict):
            raise SpecError("spec", f"expected a mapping of field names to values, got {type(data).__name__}")
        known = field_names()
        for key in data:
            if key not in known:
                raise SpecError(str(key), f"unknown field; allowed: {', '.join(known)}")
        return cls(**{key: check_type(key, value) for key, value in data.items()})

    def replace(self, **changes: Any) -> "ScenarioSpec":
        """A new spec with `changes` applied, checked like from_dict."""
        merged = self.to_dict()
        merged.update(changes)
        return ScenarioSpec.from_dict(merged)


def field_names() -> list[str]:
    return [f.name for f in dataclasses.fields(ScenarioSpec)]


def field_kind(name: str) -> str:
    """'str', 'int', 'float', 'bool', 'optional_int', 'int_tuple' or 'str_tuple'."""
    kinds = {
        "train_subset": "optional_int",
        "hidden_sizes": "int_tuple",
        "channels": "int_tuple",
        "tags": "str_tuple",
    }
    if name in kinds:
        return kinds[name]
    if name not in field_names():
        raise SpecError(name, f"unknown field; allowed: {', '.join(field_names())}")
    default = DEFAULTS[name]
    return type(default).__name__


def check_type(name: str, value: Any) -> Any:
    """Return `value` if it has the field's JSON type (ints accepted for floats), else raise."""
    kind = field_kind(name)
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if kind == "str" and isinstance(value, str):
        return value
    if kind == "bool" and isinstance(value, bool):
        return value
    if kind == "int" and is_int:
        return value
    if kind == "float" and (is_int or isinstance(value, float)):
        # float(10**400) raises OverflowError, and inf/nan would only surface as a diverged run.
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if not math.isfinite(number):
            raise SpecError(name, f"expected a finite number, got {shown(value)}")
        return number
    if kind == "optional_int" and (value is None or is_int):
        return value
    if kind in ("int_tuple", "str_tuple") and isinstance(value, (list, tuple)):
        item_ok = (lambda v: isinstance(v, int) and not isinstance(v, bool)) if kind == "int_tuple" else (
            lambda v: isinstance(v, str))
        if all(item_ok(v) for v in value):
            return tuple(value)
    wanted = {"optional_int": "an integer or null", "int_tuple": "a list of integers",
              "str_tuple": "a list of strings", "float": "a number", "int": "an integer",
              "bool": "true or false", "str": "a string"}[kind]
    raise SpecError(name, f"expected {wanted}, got {shown(value)}")


def shown(value: Any, depth: int = 0) -> str:
    """A value as an error message shows it: one short line. repr() of a huge int is slow, and
    fails past 4300 digits, so such ints are described instead of written out."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 100:   # > ~30 digits
        return f"an integer of about {round(value.bit_length() * math.log10(2))} digits"
    if isinstance(value, (list, tuple)):
        if depth >= 2:
            return "[...]"
        items = [shown(v, depth + 1) for v in value[:8]] + (["..."] if len(value) > 8 else [])
        return "[" + ", ".join(items) + "]"
    if isinstance(value, dict):
        return f"a mapping of {len(value)} keys"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# Widths of a tuple field on the command line: '512x512', '512,512' or '512 512' (spaces around
# the separator allowed). Splitting on exactly one separator keeps '512x' and '512,,512' errors.
_WIDTH_SEPARATOR = re.compile(r"\s*[xX,]\s*|\s+")


def parse_value(name: str, text: str) -> Any:
    """Parse a command-line or form string into the field's type (`--vary lr=1e-2,1e-3` pieces)."""
    kind = field_kind(name)
    text = text.strip()
    try:
        if kind == "str":
            return text
        if kind == "bool":
            lowered = text.lower()
            if lowered in ("true", "1", "yes", "on"):
                return True
            if lowered in ("false", "0", "no", "off"):
                return False
            raise ValueError
        if kind == "int":
            return int(text)
        if kind == "float":
            number = float(text)              # '1e400' gives inf, 'nan' gives nan: not numbers a run can use
            if not math.isfinite(number):
                raise ValueError
            return number
        if kind == "optional_int":
            return None if text.lower() in ("", "none", "null", "all") else int(text)
        if kind == "int_tuple":
            # Every piece must be a number: dropping empty ones made '512x' train [512].
            pieces = _WIDTH_SEPARATOR.split(text)
            if not all(pieces):
                raise ValueError
            return tuple(int(piece) for piece in pieces)
        return tuple(piece.strip() for piece in text.split(",") if piece.strip())   # tags: blanks mean nothing
    except ValueError:
        wanted = {"bool": "true or false", "int": "an integer", "float": "a finite number",
                  "optional_int": "an integer or 'none'",
                  "int_tuple": "integers separated by ',', 'x' or spaces (512,256 or 512x256)"}[kind]
        raise SpecError(name, f"expected {wanted}, got {shown(text)}") from None


def _one_of(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise SpecError(name, f"unknown value {value!r}; allowed: {', '.join(allowed)}")


def validate(spec: ScenarioSpec) -> None:
    """Raise SpecError for the first field whose value is out of range."""
    for f in dataclasses.fields(spec):
        check_type(f.name, getattr(spec, f.name))
    if not spec.name.strip():
        raise SpecError("name", "must not be empty")
    _one_of("dataset", spec.dataset, DATASETS)
    _one_of("model", spec.model, MODELS)
    _one_of("activation", spec.activation, ACTIVATIONS)
    _one_of("loss", spec.loss, LOSSES)
    _one_of("optimizer", spec.optimizer, OPTIMIZERS)
    _one_of("scheduler", spec.scheduler, SCHEDULERS)
    _one_of("device", spec.device, DEVICES)
    _one_of("precision", spec.precision, PRECISIONS)
    positive_floats = {"lr": spec.lr, "lr_end": spec.lr_end}
    for name, value in positive_floats.items():
        if not (math.isfinite(value) and value > 0):
            raise SpecError(name, f"must be a number > 0, got {value!r}")
    if not (math.isfinite(spec.weight_decay) and spec.weight_decay >= 0):
        raise SpecError("weight_decay", f"must be >= 0, got {spec.weight_decay!r}")
    if not (0 <= spec.momentum < 1):
        raise SpecError("momentum", f"must be in [0, 1), got {spec.momentum!r}")
    if not (0 <= spec.dropout < 1):
        raise SpecError("dropout", f"must be in [0, 1), got {spec.dropout!r}")
    if not (0 < spec.val_fraction < 1):
        raise SpecError("val_fraction", f"must be in (0, 1), got {spec.val_fraction!r}")
    for name, (low, high) in INT_RANGES.items():
        value = getattr(spec, name)
        if value is not None and not (low <= value <= high):
            allowed = f"in [{low}, {_bound(high)}]" + (" or null for all" if name == "train_subset" else "")
            raise SpecError(name, f"must be {allowed}, got {shown(value)}")
    for name in ("hidden_sizes", "channels"):
        widths = getattr(spec, name)
        if not (1 <= len(widths) <= MAX_LAYERS) or any(not (1 <= w <= MAX_WIDTH) for w in widths):
            raise SpecError(name, f"must be 1 to {MAX_LAYERS} widths, each in [1, {MAX_WIDTH}], got {shown(widths)}")
    for name in ("data_dir", "weights"):
        if "\x00" in getattr(spec, name):
            raise SpecError(name, "must not contain a NUL character: no file system path can")
    if spec.weights and spec.model != "resnet18":
        raise SpecError("weights", "only resnet18 loads local weights; leave it empty for other models")


def _bound(number: int) -> str:
    return "2**63 - 1" if number == 2**63 - 1 else str(number)


DEFAULTS: dict[str, Any] = {f.name: f.default for f in dataclasses.fields(ScenarioSpec)}


def derived_seed(seed: int, purpose: str) -> int:
    """An independent seed for one use of the scenario's seed ('split', 'init', 'shuffle').

    Seeding two generators with the same number gives them the same random stream, so the split's
    permutation and the first epoch's batch order were drawn from one stream. On the benchmark's data
    trainlib then trailed the course's loop by 0.5-4 points over 3 seeds; with a seed per purpose
    it falls within the course's own spread over seeds.
    """
    digest = hashlib.blake2b(f"{seed}:{purpose}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1          # a non-negative 63-bit int, as torch wants
