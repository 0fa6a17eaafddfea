"""The class's guess of a sweep's winner, kept beside the sweep's runs until the result is in.

    save_prediction(store.root, "regularization", "dropout")
    read_predictions(store.root, "regularization")     # ['dropout']: oldest first

One small JSON file per sweep in the runs folder's hidden `.predictions/` folder (hidden names are
not runs: the store passes them over), named by a slug of the sweep plus a hash of its exact name,
so any sweep name maps to one safe file name. A file that cannot be read counts as no guess.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from .runfiles import now_iso, read_json, write_json
from .store import slug

FOLDER = ".predictions"


def prediction_file(root: str | Path, sweep: str) -> Path:
    digest = hashlib.sha256(sweep.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    return Path(root) / FOLDER / f"{slug(sweep)}-{digest}.json"


def _guesses(root: str | Path, sweep: str) -> list[dict]:
    try:
        data = read_json(prediction_file(root, sweep))
    except (OSError, ValueError):          # none yet, a folder in its place, a broken file
        return []
    guesses = data.get("guesses") if data.get("sweep") == sweep else None
    if not isinstance(guesses, list):
        return []
    return [g for g in guesses if isinstance(g, dict) and isinstance(g.get("winner"), str)]


def read_predictions(root: str | Path, sweep: str) -> list[str]:
    """The guesses made for `sweep`, oldest first; [] when there are none or the file is unreadable."""
    return [g["winner"] for g in _guesses(root, sweep)]


def save_prediction(root: str | Path, sweep: str, winner: str) -> Path:
    """Add a guess for `sweep` (several are kept: a class may vote twice)."""
    path = prediction_file(root, sweep)
    path.parent.mkdir(parents=True, exist_ok=True)
    guesses = _guesses(root, sweep)
    guesses.append({"winner": winner, "at": now_iso()})
    write_json(path, {"sweep": sweep, "guesses": guesses})
    return path
