"""The class's guess of a sweep's winner, kept beside the sweep's runs until the result is in.

    save_prediction(store.root, "regularization", "dropout")
    read_predictions(store.root, "regularization")     # ['dropout']: oldest first

One small JSON file per guess, in a folder per sweep under the runs folder's hidden `.predictions/`
folder (hidden names are not runs: the store passes them over). The sweep's folder is named by a
slug of the sweep plus a hash of its exact name, so any sweep name maps to one safe folder name; a
guess gets a file of its own (time, then a random part), so two tabs voting at once both count
(one shared file would keep only the last writer's list). A file that cannot be read counts as no
guess.
"""
from __future__ import annotations

import hashlib
import uuid
from datetime import datetime
from pathlib import Path

from .runfiles import now_iso, read_json, write_json
from .store import slug

FOLDER = ".predictions"


def prediction_folder(root: str | Path, sweep: str) -> Path:
    digest = hashlib.sha256(sweep.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    return Path(root) / FOLDER / f"{slug(sweep)}-{digest}"


def read_predictions(root: str | Path, sweep: str) -> list[str]:
    """The guesses made for `sweep`, oldest first; [] when there are none or none can be read."""
    try:
        files = sorted(path for path in prediction_folder(root, sweep).iterdir() if path.suffix == ".json")
    except OSError:                         # none yet, a file in the folder's place, no permission
        return []
    guesses = []
    for path in files:
        try:
            data = read_json(path)
        except (OSError, ValueError):       # a broken or unreadable guess: the others still count
            continue
        if isinstance(data, dict) and data.get("sweep") == sweep and isinstance(data.get("winner"), str):
            guesses.append(data["winner"])
    return guesses


def save_prediction(root: str | Path, sweep: str, winner: str) -> Path:
    """Add a guess for `sweep` (several are kept: a class may vote twice), in a file of its own."""
    folder = prediction_folder(root, sweep)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{datetime.now():%Y%m%d-%H%M%S-%f}-{uuid.uuid4().hex[:8]}.json"
    write_json(path, {"sweep": sweep, "winner": winner, "at": now_iso()})
    return path
