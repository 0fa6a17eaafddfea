"""Progress of runs for the Runs page and the sidebar, without streamlit.

    rows = progress_rows(store.list_runs(), runner.snapshot(), metrics, live_ids=runner.live_ids())
    rows[["name", "state", "epoch", "epochs", "fraction", "elapsed_s", "eta_s", "last_val_acc", "action"]]
    for title, sweep, group in group_runs(rows): ...       # newest group first
    progress_text(row)      # 'epoch 2/5 · 6.0 s per epoch · ends about 10:42:31'

Reads the store's rows (every run in the folder, the CLI's included) and adds what only this
process knows from the runner's snapshot (elapsed time of its own running runs).
"""
from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Mapping

import pandas as pd

from trainlib.liveness import parse_time
from trainlib.store import ACTIVE_STATES, RESUMABLE_STATES

COLUMNS = ["run_id", "name", "sweep", "position", "seed", "state", "epoch", "epochs", "fraction", "elapsed_s",
           "eta_s", "ends_at", "seconds_per_epoch", "last_val_acc", "created_at", "error", "live", "action"]
STATE_COLORS = {"queued": "gray", "running": "blue", "finished": "green", "stopped": "orange",
                "failed": "red", "diverged": "red", "interrupted": "violet"}


def _number(value: Any) -> float | None:
    """A finite float, or None for None / NaN / text."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def seconds_per_epoch(metrics: pd.DataFrame | None) -> float | None:
    """Mean of metrics.csv's 'seconds' column (train + validation time of one epoch)."""
    if metrics is None or metrics.empty or "seconds" not in metrics:
        return None
    values = pd.to_numeric(metrics["seconds"], errors="coerce").dropna()
    return float(values.mean()) if len(values) else None


def action_for(state: str, live: bool) -> str | None:
    """The one button a run gets: 'stop' (running), 'cancel' (queued), 'resume' or None.

    Stop and cancel reach any run, wherever it trains (a terminal's `python -m trainlib`, another
    machine): they are requests written into its folder. `live`: this server's runner still has
    it, so it is not offered for resuming even if its folder says otherwise for a moment.
    """
    if state == "running":
        return "stop"
    if state == "queued":
        return "cancel"
    if not live and state in RESUMABLE_STATES:
        return "resume"
    return None


def progress_rows(runs: pd.DataFrame, snapshot: Mapping[str, Mapping[str, Any]] | None = None,
                  metrics: Mapping[str, pd.DataFrame] | None = None, live_ids: Iterable[str] = (),
                  now: datetime | None = None) -> pd.DataFrame:
    """One row per run, newest first: state, epoch k/n, fraction done, elapsed and ETA in seconds,
    last validation accuracy, and the action its button offers.

    `metrics` maps run_id -> metrics.csv frame for the runs whose ETA and accuracy should come
    from their epochs (the running ones); other runs fall back to their summary.
    """
    snapshot, metrics, live = snapshot or {}, metrics or {}, set(live_ids)
    now = now or datetime.now(timezone.utc)
    rows = []
    for run in ([] if runs is None or runs.empty else runs.to_dict("records")):
        run_id = run["run_id"]
        snap = snapshot.get(run_id) or {}
        state = run.get("state") or snap.get("state") or "queued"
        epochs = int(_number(run.get("epochs")) or _number(snap.get("epochs")) or 0)
        epoch = int(max(_number(run.get("epoch")) or 0, _number(snap.get("epoch")) or 0))
        frame = metrics.get(run_id)

        fraction = 1.0 if state == "finished" else (min(epoch / epochs, 1.0) if epochs else 0.0)
        started, ended = parse_time(run.get("started_at")), parse_time(run.get("ended_at"))
        elapsed = _number(snap.get("elapsed")) if state == "running" else None
        if elapsed is None and started is not None and state != "queued":
            elapsed = max(((ended if ended and state != "running" else now) - started).total_seconds(), 0.0)
        per_epoch = seconds_per_epoch(frame)
        if per_epoch is None and elapsed and epoch:
            per_epoch = elapsed / epoch
        eta = max(epochs - epoch, 0) * per_epoch if state == "running" and per_epoch is not None else None

        last_acc = None
        if frame is not None and not frame.empty and "val_acc" in frame:
            last_acc = _number(frame["val_acc"].iloc[-1])
        if last_acc is None and snap.get("last"):
            last_acc = _number(snap["last"].get("val_acc"))
        if last_acc is None:
            last_acc = _number(run.get("final_val_acc"))

        is_live = run_id in live
        rows.append({"run_id": run_id, "name": run.get("name") or snap.get("name") or run_id,
                     "sweep": run.get("sweep") if isinstance(run.get("sweep"), str) else None,
                     "position": _number(run.get("position")), "seed": _number(run.get("seed")),
                     "state": state, "epoch": epoch, "epochs": epochs, "fraction": fraction,
                     "elapsed_s": elapsed, "eta_s": eta,
                     "ends_at": _clock_after(now, eta),
                     "seconds_per_epoch": per_epoch,
                     "last_val_acc": last_acc, "created_at": run.get("created_at") or "",
                     "error": run.get("error") if isinstance(run.get("error"), str) else None,
                     "live": is_live, "action": action_for(state, is_live)})
    frame = pd.DataFrame(rows, columns=COLUMNS)
    for column in ("sweep", "error", "action", "ends_at"):
        # object, not pandas' string dtype: a missing value stays None (falsy), never NaN (truthy)
        frame[column] = pd.Series([row[column] for row in rows], index=frame.index, dtype=object)
    if frame.empty:
        return frame
    # Runs queued within the same millisecond share created_at: this runner's submission order (the
    # snapshot's order) breaks the tie, then the run id, which starts with the creation time too.
    submitted = {run_id: i for i, run_id in enumerate(snapshot)}
    frame["_created"] = frame["created_at"].where(frame["created_at"] != "", frame["run_id"])
    frame["_submitted"] = frame["run_id"].map(submitted).fillna(-1)
    frame = frame.sort_values(["_created", "_submitted", "run_id"], ascending=False)
    return frame.drop(columns=["_created", "_submitted"]).reset_index(drop=True)


def _still_moving(rows: pd.DataFrame) -> pd.Series:
    """Queued or running by its folder, or still this server's runner's (its process has written the
    final status, the runner has not yet collected it): both must agree a run is over, or the page
    would draw the end of a sweep one poll before its full rerun replaces what it drew."""
    moving = rows["state"].isin(ACTIVE_STATES)
    if "live" in rows:
        moving |= rows["live"].fillna(False).astype(bool)
    return moving


def any_active(rows: pd.DataFrame) -> bool:
    """Is any run queued or running (here or in another process)?"""
    return bool(not rows.empty and _still_moving(rows).any())


def count_states(rows: pd.DataFrame) -> dict[str, int]:
    if rows.empty:
        return {}
    return {state: int(n) for state, n in rows["state"].value_counts().items()}


def group_runs(rows: pd.DataFrame) -> list[tuple[str, str | None, pd.DataFrame]]:
    """[(title, sweep, rows)]: one group per sweep and one for runs without a sweep, the group with
    the newest run first. A sweep lists its runs in its own order (the variant's position in the
    preset or grid, then the seed; the order they were queued for runs without a position), the
    order of the Compare page too; single runs stay newest first."""
    if rows.empty:
        return []
    groups = []
    # rows are newest first, so groupby(sort=False) meets each group at its newest run.
    for sweep, group in rows.groupby(rows["sweep"].fillna(""), sort=False):
        if sweep:
            queued_order = group.iloc[::-1].assign(_queued=range(len(group)))
            in_order = queued_order.sort_values(["position", "seed", "_queued"], na_position="last", kind="stable")
            groups.append((f"Sweep {sweep}", sweep, in_order.drop(columns="_queued")))
        else:
            groups.append(("Single runs", None, group))
    return groups


def sweep_finished(group: pd.DataFrame) -> bool:
    """Every run has ended and at least one finished: worth comparing."""
    return bool(not group.empty and not _still_moving(group).any() and (group["state"] == "finished").any())


def sweep_comparable(group: pd.DataFrame) -> bool:
    """Some run has a finished epoch: Compare has a curve to show (it grows there live)."""
    return bool(not group.empty and ((group["epoch"] > 0) | (group["state"] == "finished")).any())


def summary_text(group: pd.DataFrame) -> str:
    """'4 runs: 2 finished, 1 running, 1 queued'."""
    counts = count_states(group)
    order = ["running", "queued", "finished", "stopped", "interrupted", "diverged", "failed"]
    parts = [f"{counts[s]} {s}" for s in order if counts.get(s)]
    n = len(group)
    return f"{n} run{'s' if n != 1 else ''}: " + ", ".join(parts)


def format_duration(seconds: float | None) -> str:
    """75 -> '1:15', 3725 -> '1:02:05', None -> '–'."""
    if seconds is None or not math.isfinite(seconds):
        return "–"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


MAX_ETA_S = 366 * 24 * 3600      # an estimate beyond a year is a broken file, not a forecast


def _clock_after(now: datetime, seconds: float | None) -> datetime | None:
    """now + seconds, None when there is no sensible estimate (missing, infinite, a metrics.csv
    whose seconds are timestamps or garbage: a datetime cannot hold them, and a page must not fall)."""
    if seconds is None or not math.isfinite(seconds) or not 0 <= seconds <= MAX_ETA_S:
        return None
    return now + timedelta(seconds=seconds)


def progress_text(row: Mapping[str, Any]) -> str:
    """The words on a run's progress bar.

    A running run's bar says when it should end, as a clock time, and the time an epoch takes, not
    a countdown: the page is drawn again only when an epoch ends (dashboard/watch.py), and a
    countdown would stand still in between, then jump."""
    parts = [f"epoch {row['epoch']}/{row['epochs']}" if row.get("epochs") else "epoch –"]
    if row["state"] == "queued":
        parts.append("waiting for a worker")
    elif row["state"] == "running":
        per_epoch, ends_at = _number(row.get("seconds_per_epoch")), row.get("ends_at")
        if per_epoch is not None and isinstance(ends_at, datetime):
            parts.append(f"{per_epoch:.1f} s per epoch · ends about {ends_at.astimezone():%H:%M:%S}")
        else:
            parts.append("estimating the end")
    else:
        parts.append(f"{format_duration(_number(row.get('elapsed_s')))} elapsed")
    acc = _number(row.get("last_val_acc"))
    if acc is not None:
        parts.append(f"val acc {acc:.1%}")
    return " · ".join(parts)
