"""Redraw a page when what it shows of the runs folder changed, and only then.

    drawn = watch.runs_version(store)                  # first, before the page reads anything
    ... draw the page from the store ...
    watch.rerun_on_change(lambda: watch.runs_version(store), drawn, every, watched=run_ids)

Why: a page that redraws itself every second costs the server the whole page per open tab per
second (every chart rebuilt and sent again), and on a laptop that also trains, the class watches
training slow down. Here each tab polls a *version* of the runs folder: the cached run list (one
stat per file of each run; a file is parsed again only when it changed) plus the stamp of each
run's metrics.csv. The page is drawn again only when the part of that version it shows moved: its
runs' epochs, states and results, or the set of runs (a new run, another state to filter by). A tab
with nothing running keeps polling, slowly, so it learns of runs another tab or a terminal started.

The browser polls, not a script run: a tiny component asks the server's CHANGED_ROUTE (app.py
serves changed_endpoint) whether this page's version moved, a few stats on the server and nothing
drawn, and only a yes reruns the page (or the fragment it sits in). A poll that was a Streamlit
script run instead (a fragment with run_every) made the browser re-render every element of the page
each time (~85 ms of its main thread on Runs, more on larger pages), for nothing most of the time.
A tab the browser does not show (another tab in front of it, a minimised window) does not poll at
all: on a laptop that trains, its browser would lay out charts nobody sees with the CPU the training
needs. Shown again, it asks at once and redraws if the folder moved meanwhile.

A redraw budget keeps watching from slowing the training down: after a redraw, a tab waits
budget - 1 times what that redraw took (from its poll's yes to the page drawn again, the next frame
painted) before it asks again, at most REDRAW_WAIT_MAX_S, so it spends at most 1/budget of its time
redrawing while a redraw takes under REDRAW_WAIT_MAX_S / (budget - 1) (REDRAW_BUDGET, or
$TRAINLIB_REDRAW_BUDGET; 1: none). Epochs that come faster than that
are shown together at the next redraw; a fast machine redraws every `every` as before. Not while the
first point after Run is due: that one shows as soon as it is there.
"""
from __future__ import annotations

import os
import secrets
import threading
import time
from collections import OrderedDict
from typing import Callable, Collection, Hashable

import pandas as pd
import streamlit as st
from starlette.requests import Request
from starlette.responses import JSONResponse
from streamlit.logger import get_logger

from trainlib.store import ACTIVE_STATES, RunStore

FIRST_POINT_EVERY = "0.25s"  # Run was clicked and its first epoch is due: show it within a quarter second
ACTIVE_EVERY = "1s"          # runs are moving: a new epoch shows within a second
IDLE_EVERY = "3s"            # nothing moves: notice a run started elsewhere within three seconds
# A tab spends at most 1/budget of its time redrawing (see _POLLER_JS and redraw_budget()), waiting
# at most REDRAW_WAIT_MAX_S between redraws. Not while the first point is due.
REDRAW_BUDGET_ENV = "TRAINLIB_REDRAW_BUDGET"
REDRAW_BUDGET = 8
REDRAW_WAIT_MAX_S = 5.0
_REMEMBERED = "watch_version_before_sidebar"

# Polls the server's CHANGED_ROUTE for this page's token every `every_ms` while the tab is shown, at
# once when it is shown again, never while hidden; a change (or an answer that is not a plain "no":
# another server, a token it does not know) sets a trigger, which reruns the page (or the fragment
# the component sits in), and polling stops until that rerun mounts it again (`generation`).
# Streamlit calls this function again whenever `data` changes (each rerun: `generation`) without
# calling the previous call's cleanup (only the last one's, when the element goes): the module, loaded
# once per page, keeps the poller of each element and stops it before starting the next.
# The redraw budget (data.budget): the time from a trigger to the page drawn again (the server's
# script run, the transfer, the browser's render and chart updates, all on the laptop that trains)
# is the redraw's cost; the next poll waits (budget - 1) times that cost, at most data.max_wait_ms,
# so a tab spends at most 1/budget of its time redrawing (while a redraw takes under max_wait_ms /
# (budget - 1)). A fast machine still redraws every
# `every_ms`; a loaded one redraws less often instead of slowing its training down. A redraw the tab
# was hidden during is not measured (a hidden tab's timers and rendering are slowed), and a tab shown
# again asks at once. `window.__trainlibRedraw` keeps the last cost and wait (tests, benchmark).
_POLLER_JS = """
const pollers = new Map();     // parentElement -> stop(): one live poller per element
const triggered = new WeakMap();   // parentElement -> {at: when it asked for its rerun, shows: visibility changes then}
const TIMEOUT_MS = 10000;
let visibilityChanges = 0;
document.addEventListener("visibilitychange", () => { visibilityChanges++; });

function timeoutSignal() {
  if (AbortSignal.timeout) return AbortSignal.timeout(TIMEOUT_MS);
  const controller = new AbortController();
  setTimeout(() => controller.abort(), TIMEOUT_MS);
  return controller.signal;
}

export default function ({ data, parentElement, setTriggerValue }) {
  const previous = pollers.get(parentElement);
  if (previous) previous();
  let stopped = false, busy = false, timer = null, notBefore = 0;
  const stop = () => {
    stopped = true;
    clearTimeout(timer);
    document.removeEventListener("visibilitychange", shown);
    if (pollers.get(parentElement) === stop) pollers.delete(parentElement);
  };
  const next = delay => { clearTimeout(timer); if (!stopped) timer = setTimeout(poll, delay); };
  const poll = async () => {
    if (stopped || busy || document.visibilityState === "hidden") return;
    const early = notBefore - performance.now();
    if (early > 0) return next(early);
    busy = true;
    let changed = false;
    try {
      const answer = await fetch(data.url + "?token=" + encodeURIComponent(data.token),
                                 { cache: "no-store", signal: timeoutSignal() });
      try {
        changed = !answer.ok || (await answer.json()).changed !== false;
      } catch (error) {
        changed = true;         // an answer, but not ours (a proxy's page): redraw, as a change
      }
    } catch (error) {
      changed = false;          // no answer (the server restarting, 10 s without one): ask again next time
    }
    busy = false;
    if (stopped) return;
    if (changed) {
      stop();
      triggered.set(parentElement, { at: performance.now(), shows: visibilityChanges });
      setTriggerValue("changed", data.generation);
    } else {
      next(data.every_ms);
    }
  };
  const shown = () => { if (document.visibilityState === "visible") { notBefore = 0; poll(); } };
  document.addEventListener("visibilitychange", shown);
  pollers.set(parentElement, stop);
  const asked = triggered.get(parentElement);
  triggered.delete(parentElement);
  if (asked === undefined || data.budget <= 1) {
    next(data.every_ms);
  } else {
    // The redraw is done after the next frame is painted (the charts update right after this render).
    requestAnimationFrame(() => setTimeout(() => {
      if (stopped) return;
      const hidden = asked.shows !== visibilityChanges || document.visibilityState === "hidden";
      const cost = performance.now() - asked.at;
      const wait = hidden ? data.every_ms : Math.min(Math.max((data.budget - 1) * cost, data.every_ms), data.max_wait_ms);
      notBefore = performance.now() + wait;
      if (!hidden) window.__trainlibRedraw = { cost_ms: cost, wait_ms: wait };
      next(wait);
    }, 0));
  }
  return stop;
}
"""
_poller = st.components.v2.component("trainlib_folder_poller", js=_POLLER_JS)

# GET ?token=...: {"changed": true|false}, served by app.py at the server's root (st.App does not put
# its routes under server.baseUrlPath: behind a proxy that passes only a base path, each poll fails
# and reruns the page, as polling did before this route).
CHANGED_ROUTE = "/_trainlib/changed"
MAX_WATCHES = 1024       # pages remembered (each open tab's page and fragments)
FORGET_AFTER_S = 120.0   # a page not heard of for this long is forgotten (closed; or hidden: it redraws once shown)
_LOGGER = get_logger(__name__)
# token -> (version_now, the narrowed version drawn, watched, last heard of): what each page showed.
_watches: "OrderedDict[str, tuple[Callable[[], Hashable], Hashable, frozenset | None, float]]" = OrderedDict()
_watches_lock = threading.Lock()


def runs_version(store: RunStore, watched: Collection[str] | None = None) -> tuple:
    """Every run's (id, sweep, state, epoch, test accuracy, metrics.csv stamp), as a comparable value;
    the stamp (one more stat per run) only of the `watched` runs (None: of all), as narrow() keeps
    them. Heartbeats are left out on purpose: they rewrite status.json every few seconds and change
    nothing on screen."""
    runs = store.list_runs()
    if runs.empty:
        return ()
    stamped = None if watched is None else set(watched)
    return tuple(
        (run_id, sweep if isinstance(sweep, str) else None, state, int(epoch),
         None if pd.isna(test_acc) else float(test_acc),
         store.metrics_stamp(run_id) if stamped is None or run_id in stamped else None)
        for run_id, sweep, state, epoch, test_acc
        in zip(runs["run_id"], runs["sweep"], runs["state"], runs["epoch"], runs["test_acc"]))


def remember_version(store: RunStore) -> None:
    """Take the version now, for the page this script run draws (drawn_version): navigation.py calls it
    before the sidebar reads its count, so the page redraws for any change after the count's read."""
    st.session_state[_REMEMBERED] = runs_version(store)


def drawn_version(store: RunStore) -> tuple:
    """The version a page is drawn from: the one navigation.py took earlier in this script run, else now.
    Call it first, before the page reads anything."""
    remembered = st.session_state.pop(_REMEMBERED, None)
    return remembered if remembered is not None else runs_version(store)


def narrow(version: tuple, watched: Collection[str] | None) -> tuple:
    """The part of a version a page shows: everything of the `watched` runs (None: of all), and of
    the others only that they exist, their sweep and their state (what the page's choices list)."""
    if watched is None:
        return version
    watched = set(watched)
    return tuple(entry if entry[0] in watched else entry[:3] for entry in version)


def poll_every(runs: pd.DataFrame, first_point: bool = True) -> str:
    """How often a page polls, from list_runs() rows: fast while the first point after Run is due
    (first_point: the page that shows it, Runs), every second while runs move, slowly otherwise.

    The first point after Run is the first epoch of a sweep none of whose runs has one yet, or of a
    run outside a sweep: running, or queued while no other run trains (it starts at once: a redraw
    while it waits for a worker must not make the tab wait out its redraw budget, see _POLLER_JS,
    while the first epoch comes in; queued behind another sweep, it waits for that one). A later
    run of a sweep starting is one more line on a chart that is there: polled as any epoch. (On a
    2-core laptop each redraw costs the browser a third of a second of CPU the training needs; a
    short sweep started its later runs under fast polls and was redrawn ten to fourteen times per tab.)"""
    if runs.empty:
        return IDLE_EVERY
    moving = runs[runs["state"].isin(ACTIVE_STATES)]
    if moving.empty:
        return IDLE_EVERY
    if first_point:
        running = moving[moving["state"] == "running"]
        due = moving[(moving["epoch"] == 0) & ((moving["state"] == "running") | running.empty)]
        if (due["sweep"].isna()).any():
            return FIRST_POINT_EVERY
        started = set(runs.loc[runs["epoch"] > 0, "sweep"].dropna())
        if any(sweep not in started for sweep in due["sweep"].dropna()):
            return FIRST_POINT_EVERY
    return ACTIVE_EVERY


def redraw_budget() -> int:
    """$TRAINLIB_REDRAW_BUDGET (a whole number >= 1; 1: redraw at every change, no budget), else
    REDRAW_BUDGET; a value that is not one is logged and the default used."""
    text = os.environ.get(REDRAW_BUDGET_ENV, "").strip()
    if not text:
        return REDRAW_BUDGET
    try:
        budget = int(text)
    except ValueError:
        budget = 0
    if budget < 1:
        _LOGGER.warning("%s must be a whole number >= 1 (1: no redraw budget), not %r: using %d",
                        REDRAW_BUDGET_ENV, text, REDRAW_BUDGET)
        return REDRAW_BUDGET
    return budget


def _every_ms(every: str) -> int:
    """'0.25s' -> 250."""
    return max(50, round(float(every.removesuffix("s")) * 1000))


def rerun_on_change(version_now: Callable[[], Hashable], drawn: Hashable, every: str,
                    watched: Collection[str] | None = None, key: str = "page") -> None:
    """Have the browser ask every `every` (while it shows the tab) whether version_now()'s part for
    `watched` (see narrow) differs from `drawn`, the version the page was drawn from, and rerun the
    page when it does: the whole app, or the fragment this is called in. Call it once per run of the
    page (or fragment), after drawing; it draws nothing visible itself.

    version_now is kept between polls: make it a function of this module with its arguments
    (functools.partial(runs_version, store, watched)), never a page's lambda or function, which
    would keep all of that page run's variables (frames, figures) alive with it."""
    token_key, generation_key = f"watch_token_{key}", f"watch_generation_{key}"
    token = st.session_state.get(token_key) or secrets.token_urlsafe(16)
    st.session_state[token_key] = token
    generation = st.session_state[generation_key] = st.session_state.get(generation_key, 0) + 1
    remember_watch(token, version_now, narrow(drawn, watched), watched)
    _poller(key=f"watch_poller_{key}", on_changed_change=lambda: None,
            data={"url": CHANGED_ROUTE, "token": token, "every_ms": _every_ms(every), "generation": generation,
                  "budget": 1 if every == FIRST_POINT_EVERY else redraw_budget(),
                  "max_wait_ms": round(REDRAW_WAIT_MAX_S * 1000)})


def remember_watch(token: str, version_now: Callable[[], Hashable], seen: Hashable,
                   watched: Collection[str] | None) -> None:
    """What the page of `token` was drawn from. Pages not heard of for FORGET_AFTER_S, and the
    oldest beyond MAX_WATCHES, are forgotten: a forgotten page that asks again hears 'changed',
    redraws and is remembered again."""
    now = time.monotonic()
    with _watches_lock:
        _watches[token] = (version_now, seen, None if watched is None else frozenset(watched), now)
        _watches.move_to_end(token)
        while _watches and (len(_watches) > MAX_WATCHES or next(iter(_watches.values()))[3] < now - FORGET_AFTER_S):
            _watches.popitem(last=False)


def folder_changed(token: str) -> bool:
    """Whether the part of the runs folder the page of `token` shows moved since it was drawn.
    An unknown token (a restarted server, a forgotten page) is a change: the page redraws."""
    with _watches_lock:
        entry = _watches.get(token)
        if entry is not None:                     # heard of: kept, as the most recent
            _watches[token] = (*entry[:3], time.monotonic())
            _watches.move_to_end(token)
    if entry is None:
        return True
    version_now, seen, watched, _ = entry
    return narrow(version_now(), watched) != seen


def runs_and_live_version(store: RunStore, runner) -> tuple:
    """runs_version() and the runs this server's runner still holds (the Runs page's Stop and
    Resume, and when a sweep is over, depend on them)."""
    return runs_version(store), frozenset(runner.live_ids())


def training_counts(store: RunStore) -> tuple[int, int]:
    """(running, queued), from the runs' status files (a stat each: the store caches)."""
    states = store.list_runs()["state"]
    return int((states == "running").sum()), int((states == "queued").sum())


def changed_endpoint(request: Request) -> JSONResponse:
    """CHANGED_ROUTE: a browser's poll (starlette runs it in its thread pool: a few stats)."""
    try:
        changed = folder_changed(request.query_params.get("token", ""))
    except Exception:              # a folder read failing mid-way: no redraw now, the next poll asks again
        _LOGGER.exception("the runs folder's version could not be read")
        changed = False
    return JSONResponse({"changed": changed}, headers={"Cache-Control": "no-store"})
