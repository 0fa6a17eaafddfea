"""The files of a run folder, written whole and read strictly: the helpers every writer and reader shares.

    write_json(folder / "summary.json", summary)     # a temporary file renamed into place: never half a file
    update_status(folder, epoch=3)                   # merge into status.json (one lock per process)
    read_json(path); read_metrics(path)              # ValueError naming the file for anything unreadable

Both the run (recording.py, worker.py) and the readers (store.py, liveness.py) use these, so none of
them imports another to get at a file.
"""
from __future__ import annotations

import json
import math
import os
import re
import threading
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .history import METRIC_COLUMNS

CHECKPOINT = "checkpoint_best.pth"        # the course's best checkpoint (Run detail evaluates it)
LAST_CHECKPOINT = "checkpoint_last.pth"   # after every epoch: where a resume continues

def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _clean(value: Any) -> Any:
    """NaN/inf are not JSON: write them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def write_atomic(path: Path, text: str) -> None:
    """Write text to a hidden temporary file beside path, then rename it over path.

    The temporary file is created with mode 0666 and the process umask applied, as open() would
    (tempfile.mkstemp makes 0600 files: then a TensorBoard service or a colleague could read the
    checkpoints but not the metrics or status beside them).
    """
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex[:12]}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json(path: Path, data: dict) -> None:
    write_atomic(path, json.dumps(_clean(data), indent=2, allow_nan=False))


# A JSON escape of a UTF-16 surrogate: json.loads turns a lone one into a str that cannot be encoded.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _encodable(value: Any) -> Any:
    """Strings with lone surrogates (JSON's "\\udcff") shown as their escape: pandas' arrow strings,
    protobuf and the terminal all refuse to encode them."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
            return value
        except UnicodeEncodeError:
            return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {_encodable(k): _encodable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_encodable(v) for v in value]
    return value


def read_json(path: Path) -> dict:
    """The JSON object in path. ValueError naming the file when it is not UTF-8 JSON holding an
    object; OSError when it cannot be opened."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path.name} is not UTF-8 text (byte {exc.start})") from None
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:   # bad JSON, an integer of over 4,300 digits, deep nesting
        raise ValueError(f"{path.name} is not valid JSON ({str(exc).splitlines()[0][:200]})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path.name} does not hold a JSON object (it holds a {type(data).__name__})")
    return _encodable(data) if _SURROGATE_ESCAPE.search(text) else data


def read_metrics(path: Path) -> pd.DataFrame:
    """metrics.csv with every METRIC_COLUMNS column numeric (columns an older file lacks are added,
    empty) and whole epochs; empty with the standard columns when there is no file or it is empty.

    Anything else raises ValueError('metrics.csv cannot be read: ...'), so a page can say it and go on.
    """
    if not path.exists() or path.stat().st_size == 0:
        return pd.DataFrame(columns=METRIC_COLUMNS)

    def unreadable(why: str) -> ValueError:
        return ValueError(f"{path.name} cannot be read: {why}")

    try:
        frame = pd.read_csv(path, encoding="utf-8-sig")      # a spreadsheet may have added a BOM
    except UnicodeDecodeError as exc:
        raise unreadable(f"it is not UTF-8 text (byte {exc.start})") from None
    except Exception as exc:             # pandas' ParserError, EmptyDataError, OSError...
        first_line = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise unreadable(f"{type(exc).__name__}: {first_line}" if first_line else type(exc).__name__) from None
    if "epoch" not in frame.columns:
        shown = ", ".join(repr(str(c))[:40] for c in frame.columns[:8])
        raise unreadable(f"it has no 'epoch' column (its columns: {shown})")
    for column in METRIC_COLUMNS:
        if column not in frame.columns:
            frame[column] = float("nan")
            continue
        values = frame[column]
        numbers = pd.to_numeric(values, errors="coerce")
        text = numbers.isna() & values.notna()
        if text.any():
            row = int(text.to_numpy().argmax())
            raise unreadable(f"column {column!r} holds text ({str(values.iloc[row])[:40]!r} in data row {row + 1})")
        frame[column] = numbers.astype("float64") if column != "epoch" else numbers
    epochs = frame["epoch"]
    whole = epochs.notna() & np.isfinite(epochs.astype("float64")) & (epochs.astype("float64") % 1 == 0)
    if not whole.all():
        row = int((~whole).to_numpy().argmax())
        cell = "an empty cell" if pd.isna(epochs.iloc[row]) else str(epochs.iloc[row])
        raise unreadable(f"column 'epoch' must hold whole numbers ({cell} in data row {row + 1})")
    frame["epoch"] = epochs.astype("int64")
    extras = [c for c in frame.columns if c not in METRIC_COLUMNS]
    return frame[[*METRIC_COLUMNS, *extras]]


# Status updates merge into the file; one lock per process keeps read-modify-write whole.
_STATUS_LOCK = threading.Lock()


def update_status(folder: Path, **fields: Any) -> dict:
    with _STATUS_LOCK:
        path = folder / "status.json"
        status = read_json(path) if path.exists() else {}
        status.update(fields)
        status["updated_at"] = now_iso()
        write_json(path, status)
        return status


def read_metrics_rows(folder: Path, up_to_epoch: int) -> list[dict]:
    """metrics.csv's rows of epochs 1..up_to_epoch as records ([] when there is no file)."""
    frame = read_metrics(Path(folder) / "metrics.csv")
    return frame[frame["epoch"] <= up_to_epoch][METRIC_COLUMNS].to_dict("records")
