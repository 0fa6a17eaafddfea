"""Who is alive, read from the runs folder alone: heartbeats, stop requests, derived states.

    with Heartbeat(folder):             # the run: status.json's heartbeat_at refreshed every few seconds
        ...
    request_stop(folder)                # anyone, from any process or machine: the run stops between batches
    derive_state(status, runner_alive)  # a reader: 'interrupted' when a running run's heartbeat is stale

The run folder is the only channel between a run and whoever watches it. A reader never writes a
run's status: a run whose heartbeat is older than the TTL is *shown* interrupted, and a queued run
whose runner's heartbeat is stale is shown interrupted too (a restarted dashboard adopts those). No
process ids are looked up: a reused pid kept a dead run "running", and a run on another machine
must never be declared dead by a local look-up.

Clocks: a heartbeat is a wall-clock time written by the run's machine and compared with the
reader's clock, so the machines sharing a runs folder need clocks within a few seconds of each
other (NTP), well under the TTL. TRAINLIB_HEARTBEAT_TTL sets the TTL in seconds (default 30).
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from .runfiles import now_iso, read_json, update_status, write_json

log = logging.getLogger("trainlib")
TTL_ENV = "TRAINLIB_HEARTBEAT_TTL"
DEFAULT_TTL = 30.0                 # seconds without a heartbeat before a run counts as interrupted
STOP_REQUEST = "stop.request"      # a run folder's file that asks the run to stop
RUNNERS_DIR = ".runners"           # <runs>/.runners/<runner id>.json: each runner's own heartbeat


def heartbeat_ttl() -> float:
    try:
        ttl = float(os.environ.get(TTL_ENV, DEFAULT_TTL))
    except ValueError:
        ttl = DEFAULT_TTL
    return ttl if ttl > 0 else DEFAULT_TTL


def heartbeat_every() -> float:
    """Four or more beats per TTL, never more than one every 5 s."""
    return min(5.0, heartbeat_ttl() / 4)


def parse_time(text) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def age_seconds(text, now: datetime | None = None) -> float | None:
    moment = parse_time(text)
    if moment is None:
        return None
    return ((now or datetime.now(timezone.utc)) - moment).total_seconds()


def is_fresh(text, now: datetime | None = None) -> bool:
    age = age_seconds(text, now)
    return age is not None and age <= heartbeat_ttl()


class Heartbeat:
    """A daemon thread that refreshes a run's status.json heartbeat_at while the run is alive (while
    it loads data as well as between batches). One per folder per process: nested starts share it."""

    _active: dict[str, "Heartbeat"] = {}
    _lock = threading.Lock()

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._owner = False

    def start(self) -> "Heartbeat":
        key = str(self.folder.resolve())
        with Heartbeat._lock:
            if key in Heartbeat._active:          # the worker's heartbeat already covers this run
                return self
            Heartbeat._active[key] = self
            self._owner = True
        self._beat()
        self._thread = threading.Thread(target=self._loop, name=f"heartbeat-{self.folder.name}", daemon=True)
        self._thread.start()
        return self

    def _beat(self) -> None:
        try:
            update_status(self.folder, heartbeat_at=now_iso())
        except OSError:          # the folder was deleted under the run: nothing to keep alive
            pass

    def _loop(self) -> None:
        every = heartbeat_every()
        while not self._stop.wait(every):
            self._beat()

    def stop(self) -> None:
        if not self._owner:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with Heartbeat._lock:
            Heartbeat._active.pop(str(self.folder.resolve()), None)
        self._owner = False

    @classmethod
    def stop_all_for(cls, folder: Path) -> None:
        """Stop whichever heartbeat of this process keeps folder alive (before a run's final status)."""
        with cls._lock:
            beating = cls._active.get(str(Path(folder).resolve()))
        if beating is not None:
            beating.stop()

    def __enter__(self) -> "Heartbeat":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# ----------------------------------------------------------------------------- stop requests
def request_stop(folder: Path, reason: str = "stop") -> None:
    """Ask the run in folder to stop (a queued run: not to start). Any process, any machine."""
    write_json(Path(folder) / STOP_REQUEST, {"requested_at": now_iso(), "reason": reason,
                                              "by": f"{socket.gethostname()}:{os.getpid()}"})


def stop_requested(folder: Path) -> bool:
    return (Path(folder) / STOP_REQUEST).exists()


def clear_stop_request(folder: Path) -> None:
    (Path(folder) / STOP_REQUEST).unlink(missing_ok=True)


# ----------------------------------------------------------------------------- runners
class RunnerHeartbeat:
    """A runner's own heartbeat file: its queued runs are its own while this is fresh."""

    def __init__(self, runs_root: Path):
        self.runner_id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.path = Path(runs_root) / RUNNERS_DIR / f"{self.runner_id}.json"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> "RunnerHeartbeat":
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:     # a read-only runs folder: runs can be looked at, not queued from here
            log.warning("no runner heartbeat in %s (%s): runs this runner queues show interrupted elsewhere",
                        self.path.parent, exc)
        self._prune_stale()
        self._beat()
        self._thread = threading.Thread(target=self._loop, name="runner-heartbeat", daemon=True)
        self._thread.start()
        return self

    def _prune_stale(self) -> None:
        """Drop the files of runners that stopped beating: a missing file says 'gone' as well."""
        for path in self.path.parent.glob("*.json"):
            try:
                if not is_fresh(read_json(path).get("heartbeat_at")):
                    path.unlink(missing_ok=True)
            except (OSError, ValueError):
                continue

    def _beat(self) -> None:
        try:
            write_json(self.path, {"runner": self.runner_id, "heartbeat_at": now_iso(),
                                   "host": socket.gethostname(), "pid": os.getpid()})
        except OSError:
            pass

    def _loop(self) -> None:
        every = heartbeat_every()
        while not self._stop.wait(every):
            self._beat()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.path.unlink(missing_ok=True)


def runner_alive(runs_root: Path, runner_id) -> bool:
    """Whether the runner that queued a run still beats (False for unknown or unreadable ids)."""
    if not isinstance(runner_id, str) or not runner_id or "/" in runner_id or runner_id.startswith("."):
        return False
    try:
        beat = read_json(Path(runs_root) / RUNNERS_DIR / f"{runner_id}.json")
    except (OSError, ValueError):
        return False
    return is_fresh(beat.get("heartbeat_at"))


# ----------------------------------------------------------------------------- derived states
def derive_state(status: dict, owner_alive: Callable[[str], bool], now: datetime | None = None) -> tuple[str, str | None]:
    """(state to show, why) for a status.json: a stale running run or an orphaned queued run is
    'interrupted'; everything else is what the file says."""
    state = status.get("state")
    if state == "running":
        beat = status.get("heartbeat_at") or status.get("updated_at")
        if not is_fresh(beat, now):
            age = age_seconds(beat, now)
            since = f"for {age:.0f} s" if age is not None else "ever"
            return "interrupted", f"no heartbeat {since}: the process running it stopped"
    elif state == "queued" and not owner_alive(status.get("owner")):
        return "interrupted", "the runner that queued it stopped before starting it"
    return state, None
