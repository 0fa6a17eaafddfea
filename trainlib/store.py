"""The run store: one folder per run, readable by humans, pandas and TensorBoard.

    store = RunStore()                           # ./runs, or $TRAINLIB_RUNS_DIR
    folder = store.new_run(spec, sweep="reg")    # scenario.json + status.json (queued)
    store.unique_sweep_name("reg")               # 'reg', or 'reg-2' when runs of 'reg' exist already
    runs = list_runs()                           # DataFrame, one row per run
    metrics = load_run(run_id)                   # DataFrame, one row per epoch

A run folder holds scenario.json, status.json, metrics.csv, summary.json, checkpoint_best.pth and
TensorBoard event files. Every JSON/CSV write goes to a temporary file first and is then renamed,
so a reader never sees half a file. Nothing in the runs folder may take a reader down: a folder that
cannot be read is skipped and reported (list_runs().attrs['skipped']), a part of one that cannot be
read is left out and reported (.attrs['problems']), and the readers of one run raise KeyError (no
such run) or ValueError naming the file, never whatever the file's bytes happened to provoke.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import re
import shutil
import socket
import threading
import unicodedata
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from .history import METRIC_COLUMNS
from .liveness import derive_state, runner_alive
from .runfiles import (CHECKPOINT, LAST_CHECKPOINT, now_iso, read_json, read_metrics,  # noqa: F401 (re-exported)
                       update_status, write_atomic, write_json)
from .spec import ScenarioSpec, SpecError, check_type, field_names

log = logging.getLogger("trainlib")
RUNS_ENV = "TRAINLIB_RUNS_DIR"
STATES = ("queued", "running", "finished", "stopped", "failed", "diverged", "interrupted")
ACTIVE_STATES = ("queued", "running")
RESUMABLE_STATES = ("interrupted", "stopped")


def default_runs_dir() -> Path:
    return Path(os.environ.get(RUNS_ENV, "runs"))


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")[:60] or "run"


# ----------------------------------------------------------------------------- the folder of runs
def _stamp(*paths: Path) -> tuple:
    """Inode, modification time and size: write_atomic renames a new file into place, so every
    write changes the inode even when the clock's granularity would hide it."""
    out = []
    for path in paths:
        try:
            stat = path.stat()
            out.append((stat.st_ino, stat.st_mtime_ns, stat.st_size))
        except FileNotFoundError:
            out.append(None)
    return tuple(out)


def printable_name(name: str) -> str:
    """A folder name as text that can be shown and encoded: bytes that are not UTF-8 as \\xff."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def unaddressable(name: str) -> str | None:
    """Why a folder name cannot be a run id, or None. Pages put run ids in addresses, widget keys,
    tables and JSON: such an id must be encodable text without path separators."""
    if not name or name.startswith("."):
        return "a hidden name (starting with '.') is not a run"
    if any(unicodedata.category(c) == "Cs" for c in name):
        return "its name is not valid UTF-8, so it cannot be a run id (rename the folder)"
    if "/" in name or "\\" in name:
        return "its name holds a slash or a backslash, so it cannot be a run id (rename the folder)"
    if any(unicodedata.category(c) == "Cc" for c in name):
        return "its name holds control characters, so it cannot be a run id (rename the folder)"
    return None


@dataclasses.dataclass(frozen=True)
class _Unreadable:
    """A cached read that failed, and why."""
    reason: str


def _reason(exc: Exception) -> str:
    """Why a run was skipped: the store's own KeyError/ValueError say it; anything else is named."""
    if isinstance(exc, KeyError) and exc.args:
        return str(exc.args[0])
    return str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"


# Columns of list_runs() that come from status.json and summary.json; spec fields follow them.
STATUS_COLUMNS = ("run_id", "state", "sweep", "variant", "position", "epoch", "epochs", "created_at", "started_at",
                  "ended_at", "error", "engine", "recorded_state", "heartbeat_at")
SUMMARY_COLUMNS = ("test_acc", "test_loss", "best_epoch", "best_val_loss", "final_val_acc", "seconds")
RUN_FILES = ("scenario.json", "status.json", "summary.json")
_INT64_MAX = 2 ** 63 - 1


def _text(value: Any) -> str | None:
    """A free-text status value as text (None stays None): a hand-edited file may hold anything."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value)[:200] if isinstance(value, (list, dict)) else str(value)


def _number(value: Any) -> float | None:
    """A finite number as float, else None (null, text, NaN/inf, an integer beyond float range)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _count(value: Any) -> int | None:
    """A whole number >= 0 that fits a table column, else None."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _INT64_MAX:
        return None
    return value


def _spec_cell(name: str, value: Any) -> Any:
    """A spec value as list_runs() shows it (tuples joined by ','); ValueError when it is not of
    the field's type, so the row gets None there and the run a problem, not the table an odd cell."""
    try:
        checked = check_type(name, value)
    except Exception as exc:        # SpecError, or OverflowError for an integer beyond float range
        raise ValueError(f"scenario.json's {name} left out: {exc}") from None
    if isinstance(checked, tuple):
        return ",".join(map(str, checked))
    if isinstance(checked, float) and not math.isfinite(checked):
        raise ValueError(f"scenario.json's {name} left out: {value!r} is not a finite number")
    if isinstance(checked, int) and not isinstance(checked, bool) and abs(checked) > _INT64_MAX:
        raise ValueError(f"scenario.json's {name} left out: {value} is too large")
    return checked


def run_row(run_id: str, run: dict) -> tuple[dict, list[str]]:
    """(one list_runs() row, what was left out of it) from read_run()'s dict. Every cell has the
    type its column promises, whatever the files hold: pages sort, sum and format these columns."""
    spec, status, summary = run["spec"], run["status"], run["summary"]
    problems = list(run.get("problems", []))
    row: dict[str, Any] = {}
    for name in SPEC_FIELD_NAMES:
        if name not in spec:
            row[name] = None
            continue
        try:
            row[name] = _spec_cell(name, spec[name])
        except ValueError as exc:
            row[name] = None
            problems.append(str(exc))
    if not isinstance(row["name"], str) or not row["name"].strip():
        row["name"] = run_id
    variant = status.get("variant")
    row.update({"run_id": run_id, "state": status.get("state"), "sweep": _text(status.get("sweep")) or None,
                "variant": variant if isinstance(variant, str) and variant.strip() else row["name"],
                "position": _count(status.get("position")),
                "epoch": _count(status.get("epoch")) or 0,
                "epochs": _count(status.get("epochs")) or row["epochs"],
                "created_at": _text(status.get("created_at")), "started_at": _text(status.get("started_at")),
                "ended_at": _text(status.get("ended_at")), "error": _text(status.get("error")),
                "engine": _text(status.get("engine"))})
    for key in SUMMARY_COLUMNS:
        row[key] = _count(summary.get(key)) if key == "best_epoch" else _number(summary.get(key))
    return row, problems


SPEC_FIELD_NAMES = tuple(field_names())
RUN_COLUMNS = [*STATUS_COLUMNS, *SUMMARY_COLUMNS, *(n for n in SPEC_FIELD_NAMES if n not in STATUS_COLUMNS)]


class RunStore:
    """The folder of runs. Reads are cached per file stamp: a dashboard polls every second from
    every open tab, and only the runs that changed since are read and parsed again."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else default_runs_dir()
        self.root.mkdir(parents=True, exist_ok=True)
        self._cache: dict[tuple[str, str], tuple[tuple, Any]] = {}
        self._cache_lock = threading.Lock()
        self._logged: set[tuple[str, str]] = set()     # (run_id, reason) already logged as skipped

    def _cached(self, kind: str, run_id: str, stamp: tuple, read):
        """read() once per stamp. A ValueError (a file that cannot be read) is remembered too, and
        raised again until the files change: a broken folder costs a poll nothing."""
        with self._cache_lock:
            hit = self._cache.get((kind, run_id))
        if hit is not None and hit[0] == stamp:
            value = hit[1]
        else:
            try:
                value = read()
            except ValueError as exc:
                value = _Unreadable(str(exc))
            with self._cache_lock:
                self._cache[(kind, run_id)] = (stamp, value)
        if isinstance(value, _Unreadable):
            raise ValueError(value.reason)
        return value

    def _forget(self, keep: set[str]) -> None:
        """Drop the cache entries of runs that are gone (deleted by hand, renamed)."""
        with self._cache_lock:
            for key in [key for key in self._cache if key[1] not in keep]:
                del self._cache[key]
            self._logged = {item for item in self._logged if item[0] in keep}

    def _log_skip(self, run_id: str, what: str, reason: str) -> None:
        """Log a skipped run once, not at every poll of every open page."""
        if (run_id, reason) not in self._logged:
            self._logged.add((run_id, reason))
            log.warning("skipping %s of %s: %s", what, run_id, reason)

    def folder(self, run_id: str) -> Path:
        path = self.root / run_id
        if not isinstance(run_id, str) or unaddressable(run_id) or not path.is_dir():
            raise KeyError(f"no run {run_id!r} in {self.root}")
        return path

    def new_run(self, spec: ScenarioSpec, sweep: str | None = None, owner: str | None = None,
                variant: str | None = None, position: int | None = None) -> Path:
        """A queued run's folder. owner: the id of the runner that will start it (its heartbeat in
        .runners/ keeps the run its own); a queued run whose owner stops beating shows interrupted.
        variant: what the run is a repeat of (default its name: repeats with other seeds share it);
        position: the variant's place in its sweep's plan, 0.. (None outside a sweep), which gives
        the run its colour and its place in every table and legend."""
        if position is not None and (isinstance(position, bool) or not isinstance(position, int) or position < 0):
            raise ValueError(f"position must be a whole number >= 0 or None, got {position!r}")
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        run_id = f"{stamp}-{slug(spec.name)}-{uuid.uuid4().hex[:4]}"
        folder = self.root / run_id
        folder.mkdir(parents=True)
        write_json(folder / "scenario.json", spec.to_dict())
        update_status(folder, state="queued", created_at=now_iso(), queued_at=now_iso(), sweep=sweep,
                      variant=variant or spec.name, position=position, epoch=0,
                      epochs=spec.epochs, error=None, owner=owner, host=socket.gethostname())
        return folder

    def unique_sweep_name(self, name: str) -> str:
        """`name` if no run here belongs to a sweep of that name, else name-2, name-3, ...: a new
        sweep never merges into an old one (its summary and verdicts would mix two experiments)."""
        taken = set(self.list_runs()["sweep"].dropna())
        candidate, number = name, 1
        while candidate in taken:
            number += 1
            candidate = f"{name}-{number}"
        return candidate

    def _live(self, status: dict) -> dict:
        """status.json as readers show it: a running run with a stale heartbeat, or a queued one
        whose runner is gone, is 'interrupted' (liveness.derive_state); the file is not touched.
        'recorded_state' keeps what the file says."""
        state, why = derive_state(status, lambda owner: runner_alive(self.root, owner))
        if state == status.get("state"):
            return {**status, "recorded_state": state}
        return {**status, "state": state, "recorded_state": status.get("state"),
                "error": status.get("error") or why}

    def entries(self) -> tuple[list[str], list[tuple[str, str]]]:
        """(run ids, sorted; [(printable name, why it is not a run)]) of the runs folder's entries.

        Hidden names ('.runners', an editor's or a file manager's files) are passed over in silence:
        they are not runs by convention, and reporting them would repeat at every listing."""
        ids, skipped = [], []
        try:
            listing = [entry for entry in os.scandir(self.root) if not entry.name.startswith(".")]
        except FileNotFoundError:
            return [], []
        for entry in listing:
            why = unaddressable(entry.name)
            if why is None:
                try:
                    if not entry.is_dir():
                        why = ("a link that does not lead to a folder" if entry.is_symlink()
                               else "a file, not a run folder")
                except OSError as exc:
                    why = f"cannot be inspected ({exc.strerror or exc})"
            if why is None:
                ids.append(entry.name)
            else:
                skipped.append((printable_name(entry.name), why))
        return sorted(ids), sorted(skipped)

    def run_ids(self) -> list[str]:
        return self.entries()[0]

    def read_run(self, run_id: str) -> dict:
        """{'run_id', 'spec', 'status', 'summary', 'problems'} for one folder: the files as they are
        ('problems' lists the optional parts left out, e.g. a summary.json that is not an object).

        Raises KeyError when there is no such run, ValueError naming the file when a needed part
        cannot be read. The dicts may be shared with other callers: read them, do not change them."""
        folder = self.folder(run_id)
        run = self._cached("run", run_id, self._run_stamp(folder), lambda: self._read_run_files(run_id, folder))
        return {**run, "status": self._live(run["status"])}

    def metrics_stamp(self, run_id: str) -> tuple | None:
        """(inode, mtime, size) of a run's metrics.csv, None when it has none (yet) or cannot be
        looked at: a cheap way to tell that a run gained an epoch, without reading it."""
        try:
            return _stamp(self.root / run_id / "metrics.csv")[0]
        except OSError:
            return None

    @staticmethod
    def _run_stamp(folder: Path) -> tuple:
        try:
            return _stamp(*(folder / name for name in RUN_FILES))
        except OSError as exc:           # no permission to look inside
            raise ValueError(f"the folder cannot be read ({exc.strerror or exc})") from None

    @staticmethod
    def _read_part(path: Path) -> dict:
        try:
            return read_json(path)
        except FileNotFoundError:
            raise ValueError(f"no {path.name}") from None
        except OSError as exc:
            raise ValueError(f"{path.name} cannot be opened ({exc.strerror or exc})") from None

    def _read_run_files(self, run_id: str, folder: Path) -> dict:
        spec = self._read_part(folder / "scenario.json")
        status = self._read_part(folder / "status.json")
        state = status.get("state")
        if not isinstance(state, str) or state not in STATES:
            raise ValueError(f"status.json has unknown state {state!r}; known: {', '.join(STATES)}")
        summary, problems = {}, []
        if (folder / "summary.json").exists():
            try:
                summary = self._read_part(folder / "summary.json")
            except ValueError as exc:      # the run is still there to look at, stop or delete
                problems.append(f"summary.json left out: {exc}")
        return {"run_id": run_id, "spec": spec, "status": status, "summary": summary, "problems": problems}

    def list_runs(self) -> pd.DataFrame:
        """One row per readable run: ids, state, progress, summary metrics and every spec field
        (RUN_COLUMNS, each of one type: a value a file holds that does not fit becomes None).

        .attrs['skipped']: [(name, reason)] of the entries that are not runs or cannot be read;
        .attrs['problems']: [(run_id, reason)] of listed runs with a part left out.
        """
        run_ids, skipped = self.entries()
        rows, problems = [], []
        for run_id in run_ids:
            try:
                row, left_out = self._row(run_id)
            except Exception as exc:       # one run folder never takes the listing down
                reason = _reason(exc)
                skipped.append((run_id, reason))
                self._log_skip(run_id, "run folder", reason)
                continue
            rows.append(row)
            if left_out:
                problems.append((run_id, "; ".join(left_out)))
        self._forget(set(run_ids))
        frame = pd.DataFrame(rows, columns=RUN_COLUMNS)
        frame["position"] = frame["position"].astype("Int64")     # whole numbers with gaps, not floats
        frame.attrs["skipped"] = skipped
        frame.attrs["problems"] = problems
        return frame

    def _row(self, run_id: str) -> tuple[dict, list[str]]:
        """read_run() as a list_runs() row, cached on the same stamp (a poll re-checks no values)."""
        folder = self.folder(run_id)
        stamp = self._run_stamp(folder)
        run = self._cached("run", run_id, stamp, lambda: self._read_run_files(run_id, folder))
        row, problems = self._cached("row", run_id, stamp, lambda: run_row(run_id, run))
        live = self._live(run["status"])        # changes with time, not with the files: never cached
        row = {**row, "recorded_state": live["recorded_state"], "heartbeat_at": _text(live.get("heartbeat_at"))}
        if live["state"] != row["state"]:
            row.update(state=live["state"], error=_text(live["error"]))
        return row, problems

    def _metrics_file(self, run_id: str) -> tuple[Path, tuple]:
        """(path, stamp) of a run's metrics.csv. KeyError when there is no such run; ValueError
        when the file cannot be looked at."""
        path = self.folder(run_id) / "metrics.csv"
        try:
            return path, _stamp(path)
        except OSError as exc:
            raise ValueError(f"metrics.csv cannot be read: {exc.strerror or exc}") from None

    def load_run(self, run_id: str) -> pd.DataFrame:
        """The run's metrics.csv (empty with the standard columns when no epoch has finished).
        KeyError when there is no such run; ValueError('metrics.csv cannot be read: ...')."""
        path, stamp = self._metrics_file(run_id)
        return self._cached("metrics", run_id, stamp, lambda: read_metrics(path)).copy()

    @staticmethod
    def _long_frame(run_id: str, name: str, path: Path) -> pd.DataFrame:
        frame = read_metrics(path)
        frame.insert(0, "name", name)
        frame.insert(0, "run_id", run_id)
        return frame

    def load_metrics(self, run_ids: list[str]) -> pd.DataFrame:
        """Long table of several runs' metrics, with run_id and name columns. Runs that cannot be
        read are left out and listed in .attrs['skipped'] as (run_id, reason)."""
        frames, skipped = [], []
        for run_id in run_ids:
            try:
                path, stamp = self._metrics_file(run_id)
                name = self._row(run_id)[0]["name"]
                # Cached with its two columns in place: a redraw of 50 runs copies nothing per run
                # (pd.concat below makes the one copy the caller gets).
                frame = self._cached("metrics_long", run_id, (stamp, name),
                                     lambda: self._long_frame(run_id, name, path))
            except Exception as exc:
                reason = _reason(exc)
                skipped.append((run_id, reason))
                self._log_skip(run_id, "metrics", reason)
                continue
            frames.append(frame)
        out = (pd.concat(frames, ignore_index=True) if frames
               else pd.DataFrame(columns=["run_id", "name", *METRIC_COLUMNS]))
        out.attrs["skipped"] = skipped
        return out

    def read_spec(self, run_id: str) -> ScenarioSpec:
        """The run's scenario. KeyError when there is no such run; SpecError (a ValueError) naming
        the field and the file, or ValueError naming the file, when scenario.json cannot be one."""
        path = self.folder(run_id) / "scenario.json"
        try:
            data = self._read_part(path)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
        try:
            return ScenarioSpec.from_dict(data)
        except SpecError as exc:
            raise SpecError(exc.field, f"{exc.message} (in {path})") from None
        except Exception as exc:     # a value from_dict did not foresee (OverflowError for 10**400)
            raise ValueError(f"{path} does not hold a usable scenario ({type(exc).__name__}: {exc})") from None

    def delete(self, run_id: str) -> None:
        shutil.rmtree(self.folder(run_id))
        with self._cache_lock:
            for kind in ("run", "row", "metrics", "metrics_long"):
                self._cache.pop((kind, run_id), None)

def list_runs(root: str | Path | None = None) -> pd.DataFrame:
    return RunStore(root).list_runs()


def load_run(run_id: str, root: str | Path | None = None) -> pd.DataFrame:
    return RunStore(root).load_run(run_id)
