"""Live-demo benchmark (issue 9): what watching a sweep in the browser costs the training, how soon
Run puts the first curve point on screen, and how long a Compare refresh takes on the server.

    .venv/bin/python bench/live_demo.py --out bench/results/live-demo-cpu.json      # everything (~5 min on 2 cores)
    .venv/bin/python bench/live_demo.py --quick --out /tmp/live-demo-quick.json     # smoke test: 1 repeat, 2 epochs
    .venv/bin/python bench/live_demo.py --skip-browser --out /tmp/compare-only.json # the AppTest Compare refresh alone
    .venv/bin/python bench/live_demo.py --compare-browser-only --out /tmp/cmp.json  # the Compare refresh in a real server alone
    .venv/bin/python bench/live_demo.py --watching-only --out /tmp/watch.json       # the watching cost alone (~2.5 min)
    .venv/bin/python bench/live_demo.py --first-point-only --out /tmp/first.json    # the first point after Run alone (~1.5 min)

Needs streamlit, plotly, the `playwright` package and Debian's chromium at /usr/bin/chromium (playwright's
own browser download cannot work offline), so it is a benchmark, not a test: nothing here is asserted.
Three parts, each against a goal of issue 9:

1. watching: the Regularization preset's four variants on the built-in `shapes` data, as one CLI
   sweep (`python -m trainlib sweep ...`) into a runs folder a real `streamlit run app.py` server
   also reads, timed with no browser, one Runs tab, one Compare tab, three Runs tabs (one shown, two
   behind it) and three Runs windows (all shown) open
   (chromium pages opened and loaded before the sweep, closed after it), R times each, interleaved.
   Goal: <= 1.25x the no-browser time with one tab, <= 1.5x with three.
2. first point: New experiment -> the preset -> Run, timed in the browser until the Runs page draws
   a chart holding a point, on a fresh server (cold) and again on the same, warm one. Goal: <= 2 s.
3. compare refresh, on 50 fake runs x 100 epochs, one of them running. Goal: < 200 ms of server time
   when that run gained an epoch.
   a. in a real server (the goal's figure): one `streamlit run app.py`, one chromium tab on Compare;
      per appended epoch, the server process's CPU ms from the append until the page shows the new
      point and has finished its run, and the wall ms until the point is on screen; also the
      server's idle CPU ms per second with the tab open and with no tab (the watcher's polling).
   b. pages/compare.py under streamlit's AppTest, in this process: at.run() timed after that run
      gained an epoch, and with nothing changed (the page's whole rerun and AppTest's own handling of
      the elements; no sidebar, no websocket, no polls): a second figure, not the goal's.
"""
from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import argparse
import json
import math
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.request
from datetime import datetime, timezone

import numpy as np
import pandas as pd

# ----------------------------------------------------------------------------- what the pages say
# Every selector that depends on page text or layout, in one place: pages/ change under this script.
PRESET_TITLE = "Regularization: baseline / L2 / dropout / BatchNorm"   # dashboard.presets.PRESETS key
PRESET_BUTTON = "Regularization"          # its button's label on New experiment
RUN_BUTTON = re.compile(r"^Run \d+ scenarios?")                        # New experiment's Run button
PAGE_PATHS = {"runs": "/live", "compare": "/compare", "new": "/"}      # st.Page url paths (file names)
SCRIPT_IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"
HEADING = "[data-testid='stMain'] h1"                                  # any page's title
EXCEPTION = "[data-testid='stException']"
# Polled in the page after Run: records (Date.now(), ms) when a run's progress first reads "epoch N/"
# with N >= 1, and when a Plotly chart first holds a trace with a point (gd.data is the figure Plotly
# drew, whatever its mode: markers, lines, dashes), both only once the address is the Runs page's
# (Run switches there). Returns whether the one asked for (need: 'chart' or 'text') has been seen.
FIRST_POINT_JS = r"""([runsPath, need]) => {
  const w = window, now = Date.now();
  if (!location.pathname.endsWith(runsPath)) return false;
  if (!w.__benchText && /epoch [1-9][0-9]*\s*\//.test(document.body.innerText)) w.__benchText = now;
  if (!w.__benchChart) {
    for (const gd of document.querySelectorAll('.js-plotly-plot')) {
      const points = v => (v && (v.length || (v.bdata && v.bdata.length))) || 0;   // an array, or plotly.py's base64
      if ((gd.data || []).some(t => points(t.y) > 0 || points(t.x) > 0)) { w.__benchChart = now; break; }
    }
  }
  return Boolean(need === 'text' ? w.__benchText : w.__benchChart);
}"""
# Compare, in a real server: the loss overlay chart is the Plotly chart whose title starts with
# LOSS_TITLE ("Loss (solid: train, dashed: validation)"; the per-run panels' title is "Loss per run
# (..."), and a run's points are its trace's x values (plotly.py's typed-array spec {dtype, bdata}
# as sent, or an array). The running run's epochs are 1..E, so its trace holds E points, the most of
# any trace. The caption "Updating as epochs end: NAME running E/TOTAL" names the status epoch.
LOSS_TITLE = "Loss ("
RUNNING_CAPTION = "running {epoch}/"
LOSS_POINTS_FN = r"""(title) => {
  const size = {i1: 1, u1: 1, u1c: 1, i2: 2, u2: 2, i4: 4, u4: 4, f4: 4, f8: 8};
  const count = v => !v ? 0 : (Array.isArray(v) || ArrayBuffer.isView(v)) ? v.length
    : typeof v.bdata === 'string' ? Math.floor(atob(v.bdata).length / (size[v.dtype] || 8)) : 0;
  for (const gd of document.querySelectorAll('.js-plotly-plot')) {
    const t = gd.layout && gd.layout.title;
    const text = typeof t === 'string' ? t : (t && t.text) || '';
    if (text.startsWith(title)) return Math.max(0, ...(gd.data || []).map(trace => count(trace.x)));
  }
  return null;
}"""
LOSS_POINTS_JS = f"title => ({LOSS_POINTS_FN})(title)"       # the most points of a trace, or null: no chart
# Polled after an epoch was appended: records (Date.now(), ms) when the loss chart first holds a trace
# of `epoch` points and when the caption first reads "running EPOCH/"; true once both were seen.
# textContent, not innerText: no forced layout at each poll while the page redraws (the text occurs
# nowhere else: run labels elsewhere read "NAME · running · ID", and the old caption "running E-1/").
REFRESH_JS = r"""([title, epoch, caption]) => {
  const w = window, now = Date.now();
  if (!w.__benchPoint) { const n = (%s)(title); if (n !== null && n >= epoch) w.__benchPoint = now; }
  if (!w.__benchCaption && document.body.textContent.includes(caption)) w.__benchCaption = now;
  return Boolean(w.__benchPoint && w.__benchCaption);
}""" % LOSS_POINTS_FN

# Installed in a watching tab once it has loaded: counts what the tab does while the sweep runs, so
# its browser CPU can be read per redraw. 'draws': plotly_afterplot events of every chart (a chart
# drawn or redrawn); 'runs': the app's script (or a fragment) starting a run (the watcher's polls are
# the browser's HTTP requests, not runs).
COUNT_REDRAWS_JS = r"""() => {
  const w = window;
  w.__benchDraws = 0; w.__benchRuns = 0;
  const hook = gd => { if (!gd.__benchHooked && gd.on) { gd.__benchHooked = true; gd.on('plotly_afterplot', () => w.__benchDraws++); } };
  const app = document.querySelector("[data-testid='stApp']");
  new MutationObserver(() => document.querySelectorAll('.js-plotly-plot').forEach(hook))
    .observe(document.body, {childList: true, subtree: true});
  document.querySelectorAll('.js-plotly-plot').forEach(hook);
  new MutationObserver(() => { if (app.getAttribute('data-test-script-state') === 'running') w.__benchRuns++; })
    .observe(app, {attributes: true, attributeFilter: ['data-test-script-state']});
}"""
READ_REDRAWS_JS = "() => ({draws: window.__benchDraws || 0, runs: window.__benchRuns || 0})"
# Installed before a background tab's page loads: the page reads 'hidden', as a browser tells a page
# whose tab is behind another (headless chromium shows every page); window.__benchShow() brings it
# to the front, with the event a browser sends.
BACKGROUND_TAB_JS = """(() => {
  let state = 'hidden';
  Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => state});
  Object.defineProperty(document, 'hidden', {configurable: true, get: () => state === 'hidden'});
  window.__benchShow = () => { state = 'visible'; document.dispatchEvent(new Event('visibilitychange')); };
})()"""

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]
VIEWPORT = {"width": 1280, "height": 720}          # a classroom projector

# ----------------------------------------------------------------------------- conditions and goals
NO_BROWSER = "no browser"
BACKGROUND = ":background"      # a tab the browser does not show (another tab in front of it)
# A browser shows one tab per window: "three Runs tabs" is one in front and two behind it; three
# windows side by side, all shown, is the harder case (every tab redraws).
CONDITIONS = {NO_BROWSER: (), "one Runs tab": ("runs",), "one Compare tab": ("compare",),
              "three Runs tabs, one shown": ("runs", "runs" + BACKGROUND, "runs" + BACKGROUND),
              "three Runs windows, all shown": ("runs", "runs", "runs")}
WATCH_GOALS = {"one Runs tab": 1.25, "one Compare tab": 1.25,                  # x the no-browser time
               "three Runs tabs, one shown": 1.5, "three Runs windows, all shown": 1.5}
FIRST_POINT_GOAL_S = 2.0
COMPARE_GOAL_MS = 200.0          # server CPU ms per Compare refresh after one run gained an epoch
ENDED = ("finished", "stopped", "failed", "diverged", "interrupted")


# ============================================================================ pure parts (tested)
def median(values) -> float | None:
    values = [v for v in values if v is not None and math.isfinite(v)]
    return statistics.median(values) if values else None


def verdict(value: float | None, goal: float) -> str:
    """'pass' when value <= goal, 'miss' above it, 'n/a' without a value."""
    if value is None:
        return "n/a"
    return "pass" if value <= goal else "miss"


def watch_table(trials: list[dict]) -> list[dict]:
    """Per condition (in CONDITIONS order): medians of the trials' seconds and server CPU, their
    ratio to the no-browser median, and the goal's verdict on the CLI wall-time ratio.

    A trial: {'condition', 'cli_s', 'span_s', 'server_cpu_s', ...}; 'span_s' is first run started to
    last run ended (status.json), 'cli_s' the CLI process's wall time."""
    by_condition: dict[str, list[dict]] = {}
    for trial in trials:
        by_condition.setdefault(trial["condition"], []).append(trial)
    base = by_condition.get(NO_BROWSER, [])
    base_cli = median(t.get("cli_s") for t in base)
    base_span = median(t.get("span_s") for t in base)
    rows = []
    for condition in [c for c in CONDITIONS if c in by_condition] + [c for c in by_condition if c not in CONDITIONS]:
        group = by_condition[condition]
        cli, span = median(t.get("cli_s") for t in group), median(t.get("span_s") for t in group)
        ratio = cli / base_cli if cli is not None and base_cli else None
        span_ratio = span / base_span if span is not None and base_span else None
        goal = WATCH_GOALS.get(condition)
        rows.append({"condition": condition, "repeats": len(group), "cli_s": cli, "span_s": span,
                     "ratio": ratio, "span_ratio": span_ratio, "goal": goal,
                     "verdict": verdict(ratio, goal) if goal else "",
                     "span_verdict": verdict(span_ratio, goal) if goal else "",
                     "server_cpu_s": median(t.get("server_cpu_s") for t in group),
                     "browser_cpu_s": median(t.get("browser_cpu_s") for t in group),
                     "tabs_saw_sweep": all(all(t.get("tabs_saw_sweep") or [True]) for t in group)})
    return rows


def _cell(value, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def format_watch_table(rows: list[dict]) -> str:
    width = max([len("condition"), *(len(row["condition"]) for row in rows)])
    head = (f"{'condition':<{width}} {'n':>2} {'CLI s':>7} {'ratio':>6} {'span s':>7} {'ratio':>6} {'goal':>6} "
            f"{'verdict':>12} {'server CPU s':>13} {'browser CPU s':>14}")
    lines = [head, "-" * len(head)]
    for row in rows:
        goal = f"<={row['goal']:.2f}x" if row["goal"] else ""
        verdicts = f"{row['verdict']}/{row['span_verdict']}" if row["goal"] else ""
        lines.append(f"{row['condition']:<{width}} {row['repeats']:>2} {_cell(row['cli_s'], '.2f'):>7} "
                     f"{_cell(row['ratio'], '.2f'):>6} {_cell(row['span_s'], '.2f'):>7} "
                     f"{_cell(row['span_ratio'], '.2f'):>6} {goal:>6} {verdicts:>12} "
                     f"{_cell(row['server_cpu_s'], '.2f'):>13} {_cell(row['browser_cpu_s'], '.2f'):>14}"
                     + ("" if row["tabs_saw_sweep"] else "   (a tab never showed the sweep)"))
    lines.append("ratio: to 'no browser'; verdict: CLI wall / status span (first run started to last ended)")
    return "\n".join(lines)


def cpu_rate(before: float | None, after: float | None, seconds: float) -> float | None:
    """CPU ms per second of wall time between two CPU-seconds readings (None if either is missing)."""
    if before is None or after is None or seconds <= 0:
        return None
    return (after - before) * 1000 / seconds


def refresh_summary(refreshes: list[dict], idle_tab_ms_per_s: float | None) -> dict:
    """The Compare refreshes in a real server: per refresh `net_cpu_ms`, an estimate of the redraw
    alone (its server CPU ms less the idle tab's polling rate over the time until the caption showed
    the new epoch: the polls before the change was seen), then medians and the goal's verdict on the median server CPU ms (polls included: the
    conservative figure).

    A refresh: {'server_cpu_ms', 'point_ms' (append to the new point on screen), 'caption_ms' (to the
    caption's new epoch), 'done_ms' (to the page's run finished), 'browser_cpu_ms', ...}; changed in place."""
    for refresh in refreshes:
        cpu, seen = refresh.get("server_cpu_ms"), refresh.get("caption_ms")
        refresh["net_cpu_ms"] = (cpu - idle_tab_ms_per_s * seen / 1000
                                 if None not in (cpu, seen, idle_tab_ms_per_s) else None)
    server_cpu = median(r.get("server_cpu_ms") for r in refreshes)
    return {"n": len(refreshes), "median_server_cpu_ms": server_cpu,
            "median_net_cpu_ms": median(r.get("net_cpu_ms") for r in refreshes),
            "median_point_ms": median(r.get("point_ms") for r in refreshes),
            "median_caption_ms": median(r.get("caption_ms") for r in refreshes),
            "median_done_ms": median(r.get("done_ms") for r in refreshes),
            "median_browser_cpu_ms": median(r.get("browser_cpu_ms") for r in refreshes),
            "goal_ms": COMPARE_GOAL_MS, "verdict": verdict(server_cpu, COMPARE_GOAL_MS)}


def format_compare_browser(result: dict) -> str:
    """The real-server Compare figures as printed: the goal's line first, then wall and idle."""
    summary = result["summary"]
    return "\n".join([
        f"server CPU per refresh (one run gained an epoch): {_cell(summary['median_server_cpu_ms'], '.0f')} ms"
        f"   goal < {COMPARE_GOAL_MS:.0f} ms: {summary['verdict']}"
        f"   (estimate without the polls before the change was seen: {_cell(summary['median_net_cpu_ms'], '.0f')} ms;"
        f" n={summary['n']})",
        f"wall, append -> new point on screen: {_cell(summary['median_point_ms'], '.0f')} ms"
        f" (caption {_cell(summary['median_caption_ms'], '.0f')} ms, page run finished "
        f"{_cell(summary['median_done_ms'], '.0f')} ms); browser CPU {_cell(summary['median_browser_cpu_ms'], '.0f')} ms",
        f"idle server CPU, nothing changing: {_cell(result['idle_tab_cpu_ms_per_s'], '.1f')} ms/s with the tab open, "
        f"{_cell(result['idle_no_tab_cpu_ms_per_s'], '.1f')} ms/s with no tab (over {result['idle_s']:.0f} s each)",
        f"first load: {_cell(result['load_s'], '.1f')} s, {result['charts']} charts on the page",
    ])


def preset_variant_flags(title: str = PRESET_TITLE) -> tuple[list[str], int]:
    """(['--variant', 'baseline:', '--variant', 'l2:weight_decay=1e-05', ...], the preset's epochs)."""
    from dashboard.presets import PRESETS
    preset = PRESETS[title]
    flags = []
    for name, changes in preset.variants.items():
        values = ",".join(f"{key}={str(value).lower() if isinstance(value, bool) else value}"
                          for key, value in changes.items())
        flags += ["--variant", f"{name}:{values}"]
    return flags, int(preset.base.get("epochs", 5))


def sweep_command(runs_dir: Path, sweep: str, epochs: int, workers: int | None = None) -> list[str]:
    flags, _ = preset_variant_flags()
    command = [sys.executable, "-m", "trainlib", "sweep", "--dataset", "shapes", "--epochs", str(epochs),
               *flags, "--runs-dir", str(runs_dir), "--sweep-name", sweep]
    return command + (["--workers", str(workers)] if workers else [])


def run_folders(runs_dir: Path) -> list[Path]:
    if not runs_dir.is_dir():
        return []
    return sorted(p for p in runs_dir.iterdir() if p.is_dir() and not p.name.startswith("."))


def read_status(folder: Path) -> dict:
    try:
        return json.loads((folder / "status.json").read_text())
    except (OSError, ValueError):
        return {}


def _moment(text) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def status_span(folders: list[Path]) -> float | None:
    """Seconds from the first run's started_at to the last run's ended_at (None if any is missing)."""
    statuses = [read_status(folder) for folder in folders]
    starts = [_moment(s.get("started_at")) for s in statuses]
    ends = [_moment(s.get("ended_at")) for s in statuses]
    if not statuses or None in starts or None in ends:
        return None
    return (max(ends) - min(starts)).total_seconds()


def clear_runs(runs_dir: Path) -> None:
    """Remove the run folders; hidden entries (the server runner's .runners/ heartbeat) stay."""
    for folder in run_folders(runs_dir):
        shutil.rmtree(folder, ignore_errors=True)


# ----------------------------------------------------------------------------- fake runs (Compare refresh)
def fake_metrics(epochs: int, seed: int, first_epoch: int = 1) -> pd.DataFrame:
    """Plausible curves: losses falling towards a floor, validation above train, a little noise."""
    from trainlib.history import METRIC_COLUMNS
    rng = np.random.default_rng(seed)
    epoch = np.arange(first_epoch, first_epoch + epochs)
    rate, floor = rng.uniform(0.05, 0.3), rng.uniform(0.05, 0.4)
    train_loss = floor + 2.2 * np.exp(-rate * epoch) + rng.normal(0, 0.01, len(epoch)).clip(-0.02, 0.02)
    val_loss = train_loss + 0.05 + 0.002 * epoch + rng.normal(0, 0.02, len(epoch)).clip(-0.04, 0.04)
    frame = pd.DataFrame({"epoch": epoch, "train_loss": train_loss, "train_acc": 1 - train_loss / 2.5,
                          "val_loss": val_loss, "val_acc": 1 - val_loss / 2.5, "lr": 1e-3,
                          "seconds": rng.uniform(0.9, 1.1, len(epoch)), "samples_per_s": 4000.0})
    return frame[METRIC_COLUMNS]


def build_fake_runs(root: Path, runs: int = 50, epochs: int = 100, sweep: str = "fake-50",
                    running: int = 1) -> list[str]:
    """`runs` run folders written through RunStore, no training: `epochs` rows of metrics each, the
    last `running` of them still running (fresh heartbeat, 20 more epochs to go), the others
    finished with a summary. Each run has its own lr, so Compare finds a differing parameter.
    Returns the run ids in the order made."""
    from trainlib.runfiles import now_iso, update_status, write_atomic, write_json
    from trainlib.spec import ScenarioSpec
    from trainlib.store import RunStore
    store = RunStore(root)
    ids = []
    for i in range(runs):
        lr = float(f"{10 ** (-4 + 3 * i / max(runs - 1, 1)):.3g}")
        is_running = i >= runs - running
        total = epochs + 20 if is_running else epochs
        spec = ScenarioSpec(name=f"run-{i:02d}", dataset="shapes", epochs=total, lr=lr, device="cpu")
        folder = store.new_run(spec, sweep=sweep)
        metrics = fake_metrics(epochs, seed=i)
        write_atomic(folder / "metrics.csv", metrics.to_csv(index=False))
        now = now_iso()
        if is_running:
            update_status(folder, state="running", started_at=now, heartbeat_at=now, epoch=epochs, epochs=total)
        else:
            best = int(metrics["val_loss"].idxmin())
            write_json(folder / "summary.json", {
                "state": "finished", "test_loss": float(metrics["val_loss"].iloc[-1]),
                "test_acc": float(metrics["val_acc"].iloc[-1]), "best_epoch": int(metrics["epoch"].iloc[best]),
                "best_val_loss": float(metrics["val_loss"].iloc[best]),
                "final_train_loss": float(metrics["train_loss"].iloc[-1]),
                "final_val_loss": float(metrics["val_loss"].iloc[-1]),
                "final_val_acc": float(metrics["val_acc"].iloc[-1]), "epochs_run": epochs,
                "early_stopped": False, "engine": "fake", "seconds": float(metrics["seconds"].sum())})
            update_status(folder, state="finished", started_at=now, ended_at=now, heartbeat_at=now,
                          epoch=epochs, epochs=total)
        ids.append(folder.name)
    return ids


def append_epoch(folder: Path) -> int:
    """One more epoch row in the run's metrics.csv and its status.json (epoch, heartbeat), written
    the way a run writes them (whole files renamed into place). Returns the new epoch."""
    from trainlib.runfiles import now_iso, read_metrics, update_status, write_atomic
    metrics = read_metrics(folder / "metrics.csv")
    epoch = int(metrics["epoch"].max()) + 1 if len(metrics) else 1
    row = fake_metrics(1, seed=epoch, first_epoch=epoch)
    write_atomic(folder / "metrics.csv", pd.concat([metrics, row], ignore_index=True).to_csv(index=False))
    update_status(folder, epoch=epoch, heartbeat_at=now_iso())
    return epoch


# ----------------------------------------------------------------------------- CPU seconds from /proc
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, user + system CPU seconds) of a live process, else None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()      # after the command name, which may hold spaces
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def cpu_seconds(pid: int) -> float | None:
    stat = _stat(pid)
    return stat[1] if stat else None


def process_tree(root: int) -> list[int]:
    """root and its live descendants."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _stat(int(entry))
            if stat:
                parents[int(entry)] = stat[0]
    tree, frontier = [root], [root]
    while frontier:
        children = [pid for pid, parent in parents.items() if parent in frontier]
        tree += children
        frontier = children
    return tree


def tree_cpu(root: int, exclude: set[int] = frozenset()) -> dict[int, float]:
    """{pid: CPU seconds} of root's live tree, less the subtrees rooted at `exclude`."""
    skip = set()
    for pid in exclude:
        skip.update(process_tree(pid))
    return {pid: seconds for pid in process_tree(root) if pid not in skip
            for seconds in [cpu_seconds(pid)] if seconds is not None}


def browser_cpu(mine: int, exclude: set[int]) -> dict[int, float]:
    """tree_cpu() of this script's children less the server's and the CLI's: chromium and playwright's driver."""
    return {pid: seconds for pid, seconds in tree_cpu(mine, exclude).items() if pid != mine}


def cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds spent between two tree_cpu() readings by the processes alive at the second."""
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


# ============================================================================ the server and the browser
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def bench_env(runs_dir: Path, data_dir: Path, workers: int | None, extra: dict | None = None) -> dict:
    env = {**os.environ, "TRAINLIB_RUNS_DIR": str(runs_dir), "TRAINLIB_OFFLINE": "1",
           "TRAINLIB_DATA_ROOT": str(data_dir), **(extra or {})}
    if workers:
        env["TRAINLIB_WORKERS"] = str(workers)
    return env


class Server:
    """`streamlit run app.py` on a free port, headless, on its own runs folder, in its own process group."""

    def __init__(self, work: Path, runs_dir: Path, workers: int | None, name: str = "server",
                 env: dict | None = None):
        self.log_path = work / f"{name}.log"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
             "--server.port", str(self.port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
            cwd=REPO_ROOT, env=bench_env(runs_dir, work / "data", workers, env), stdout=self._log,
            stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as answer:
                    if answer.read() == b"ok":
                        break
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"streamlit did not start: {self.log_path.read_text()[-2000:]}")
            time.sleep(0.3)

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        try:                                  # the runner's worker processes, in the same group
            os.killpg(self.process.pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass
        self._log.close()


def wait_idle(page) -> None:
    """Until the app's script (or a fragment) has finished its run: what it draws is on screen."""
    page.locator(SCRIPT_IDLE).wait_for()


def open_tab(browser, url: str, which: str, query: str = ""):
    """A new page on one of the app's pages (query: '?sweep=...'), loaded (title drawn, script run
    finished); `which` ending in BACKGROUND: a tab behind another one (see BACKGROUND_TAB_JS)."""
    page = browser.new_page(viewport=VIEWPORT)
    page.set_default_timeout(120_000)
    if which.endswith(BACKGROUND):
        page.add_init_script(BACKGROUND_TAB_JS)
    page.goto(url + PAGE_PATHS[which.removesuffix(BACKGROUND)] + query)
    page.locator(f"{HEADING}, {EXCEPTION}").first.wait_for()
    wait_idle(page)
    raise_shown_exception(page, which)
    return page


def raise_shown_exception(page, where: str) -> None:
    """A page that shows an exception measures nothing: stop with what it says."""
    shown = page.locator(EXCEPTION)
    if shown.count():
        raise RuntimeError(f"the {where} page shows an exception: {shown.first.inner_text()[:500]}")


def tab_shows(page, text: str, timeout_ms: int = 5000) -> bool:
    try:
        page.wait_for_function("text => document.body.innerText.includes(text)", arg=text, timeout=timeout_ms)
        return True
    except Exception:          # playwright's TimeoutError
        return False


def wait_for_runs(runs_dir: Path, count: int, timeout: float = 600, ended: bool = True) -> None:
    """Until `count` run folders exist (and, with ended, all have ended)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        folders = run_folders(runs_dir)
        if len(folders) >= count and (not ended or all(read_status(f).get("state") in ENDED for f in folders)):
            return
        time.sleep(0.1)
    raise TimeoutError(f"{count} runs in {runs_dir} not {'ended' if ended else 'there'} after {timeout:.0f} s")


# ----------------------------------------------------------------------------- 1. watching cost
def watched_sweep(browser, server: Server, runs_dir: Path, work: Path, condition: str, repeat: int,
                  epochs: int, workers: int | None, open_tabs: str) -> dict:
    clear_runs(runs_dir)
    sweep = f"watch-{re.sub(r'[^a-z]+', '-', condition)}-{repeat}"
    tabs = []
    if open_tabs == "before":
        tabs = [open_tab(browser, server.url, which) for which in CONDITIONS[condition]]
        # Settled, as a tab open for some seconds is: its page drawn and plotly.js loaded (every page
        # has the browser load it when idle: dashboard/charts.py), not loaded by the sweep's first chart.
        for page in tabs:
            page.wait_for_function("() => window.__trainlibChartsLoaded === true", timeout=30_000)
        time.sleep(1.0)
    mine = os.getpid()
    server_before = tree_cpu(server.pid)
    browser_before = browser_cpu(mine, exclude={server.pid})
    log = open(work / f"{sweep}.log", "w")
    started = time.perf_counter()
    cli = subprocess.Popen(sweep_command(runs_dir, sweep, epochs, workers), cwd=REPO_ROOT, stdout=log,
                           stderr=subprocess.STDOUT, env=bench_env(runs_dir, work / "data", workers))
    if open_tabs == "after-start":           # a class opens the page once the runs are there
        wait_for_runs(runs_dir, len(preset_variant_flags()[0]) // 2, ended=False)
        tabs = [open_tab(browser, server.url, which) for which in CONDITIONS[condition]]
    for page in tabs:
        page.evaluate(COUNT_REDRAWS_JS)
    rc = cli.wait()
    cli_s = time.perf_counter() - started
    log.close()
    server_after = tree_cpu(server.pid)
    browser_after = browser_cpu(mine, exclude={server.pid, cli.pid})
    if rc != 0:
        raise RuntimeError(f"the sweep failed (exit {rc}): {(work / f'{sweep}.log').read_text()[-2000:]}")
    counts = [page.evaluate(READ_REDRAWS_JS) for page in tabs]
    for page, which in zip(tabs, CONDITIONS[condition]):
        if which.endswith(BACKGROUND):       # brought to the front: it must catch up with the sweep
            page.evaluate("() => window.__benchShow()")
    saw = [tab_shows(page, sweep) for page in tabs]
    for page in tabs:
        page.close()
    folders = run_folders(runs_dir)
    return {"condition": condition, "repeat": repeat, "sweep": sweep, "cli_s": cli_s,
            "span_s": status_span(folders), "runs": len(folders),
            "states": sorted(read_status(f).get("state") for f in folders),
            "server_cpu_s": server_after.get(server.pid, 0.0) - server_before.get(server.pid, 0.0),
            "server_children_cpu_s": cpu_delta(server_before, server_after)
                                     - (server_after.get(server.pid, 0.0) - server_before.get(server.pid, 0.0)),
            "browser_cpu_s": cpu_delta(browser_before, browser_after) if CONDITIONS[condition] else 0.0,
            "chart_draws": [c["draws"] for c in counts], "script_runs": [c["runs"] for c in counts],
            "tabs_saw_sweep": saw}


def measure_watching(browser, work: Path, repeats: int, epochs: int, workers: int | None, open_tabs: str) -> dict:
    runs_dir = work / "watch-runs"
    server = Server(work, runs_dir, workers, name="watch-server")
    try:
        for which in ("runs", "compare", "new"):     # warm: the first page loads import the engine
            open_tab(browser, server.url, which).close()
        trials = []
        for repeat in range(repeats):
            order = list(CONDITIONS) if repeat % 2 == 0 else list(reversed(CONDITIONS))
            for condition in order:
                trial = watched_sweep(browser, server, runs_dir, work, condition, repeat, epochs, workers, open_tabs)
                trials.append(trial)
                print(f"  {condition:<16} repeat {repeat}: CLI {trial['cli_s']:.2f} s, span "
                      f"{_cell(trial['span_s'], '.2f')} s, server CPU {trial['server_cpu_s']:.2f} s, "
                      f"browser CPU {trial['browser_cpu_s']:.2f} s, chart draws per tab {trial['chart_draws']}, "
                      f"script runs per tab {trial['script_runs']}, tabs saw the sweep: {trial['tabs_saw_sweep']}",
                      flush=True)
    finally:
        server.stop()
    return {"epochs": epochs, "workers": workers, "open_tabs": open_tabs, "trials": trials,
            "table": watch_table(trials)}


# ----------------------------------------------------------------------------- 2. first point after Run
class FirstRowWatcher(threading.Thread):
    """Polls a runs folder every 20 ms for the first metrics.csv holding a row: its mtime (when the
    run wrote it) and when this thread saw it, both as time.time()."""

    def __init__(self, runs_dir: Path):
        super().__init__(daemon=True)
        self.runs_dir, self.mtime, self.seen = runs_dir, None, None
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set() and self.mtime is None:
            for folder in run_folders(self.runs_dir):
                path = folder / "metrics.csv"
                try:
                    stat = path.stat()
                    rows = path.read_text().count("\n")
                except OSError:
                    continue
                if rows >= 2:                 # a header and one epoch
                    self.mtime, self.seen = stat.st_mtime, time.time()
                    break
            self._stop_event.wait(0.02)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=5)


def pick_preset(page) -> None:
    """The Regularization preset on New experiment, until its Run button is drawn."""
    page.get_by_role("button", name=PRESET_BUTTON, exact=True).first.click()
    page.get_by_role("button", name=RUN_BUTTON).first.wait_for()
    wait_idle(page)


def first_point_once(browser, server: Server, runs_dir: Path, kind: str) -> dict:
    clear_runs(runs_dir)
    page = open_tab(browser, server.url, "new")
    pick_preset(page)
    # A teacher reads the preset's note before Run: seconds in which New experiment has the browser
    # load the charts' code (dashboard/charts.py). Clicked at once, the first point waits for it.
    loaded_ahead = True
    try:
        page.wait_for_function("() => window.__trainlibChartsLoaded === true", timeout=30_000)
    except Exception:                         # playwright's TimeoutError: not preloaded, say so
        loaded_ahead = False
    watcher = FirstRowWatcher(runs_dir)
    watcher.start()
    clicked = time.time()
    page.get_by_role("button", name=RUN_BUTTON).first.click()
    try:
        page.wait_for_function(FIRST_POINT_JS, arg=[PAGE_PATHS["runs"], "chart"], polling=50, timeout=180_000)
    except Exception:
        raise_shown_exception(page, "Runs")   # the likelier cause, with its message
        raise
    try:                                      # the progress text may come after the chart
        page.wait_for_function(FIRST_POINT_JS, arg=[PAGE_PATHS["runs"], "text"], polling=50, timeout=30_000)
    except Exception:                         # playwright's TimeoutError: reported as None
        pass
    chart_ms, text_ms = page.evaluate("() => [window.__benchChart || null, window.__benchText || null]")
    wait_for_runs(runs_dir, 1, ended=False)
    count = len(run_folders(runs_dir))
    deadline = time.monotonic() + 30
    while watcher.mtime is None and time.monotonic() < deadline:
        time.sleep(0.05)
    watcher.stop()
    wait_for_runs(runs_dir, count)           # the sweep ends before the next trial starts
    page.close()
    return {"kind": kind, "chart_s": chart_ms / 1000 - clicked if chart_ms else None,
            "text_s": text_ms / 1000 - clicked if text_ms else None,
            "disk_row_s": watcher.mtime - clicked if watcher.mtime else None,
            "disk_seen_s": watcher.seen - clicked if watcher.seen else None, "runs": count,
            "charts_loaded_ahead": loaded_ahead}


def measure_first_point(browser, work: Path, cold: int, warm: int, workers: int | None) -> dict:
    runs_dir = work / "first-point-runs"
    trials = []
    for i in range(cold):
        server = Server(work, runs_dir, workers, name=f"first-point-server-{i}")
        try:
            trials.append(first_point_once(browser, server, runs_dir, "cold"))
            print(f"  cold {i}: {format_first_point(trials[-1])}", flush=True)
            if i == cold - 1:
                for j in range(warm):
                    trials.append(first_point_once(browser, server, runs_dir, "warm"))
                    print(f"  warm {j}: {format_first_point(trials[-1])}", flush=True)
        finally:
            server.stop()
    summary = {}
    for kind in ("cold", "warm"):
        group = [t for t in trials if t["kind"] == kind]
        if group:
            chart = median(t["chart_s"] for t in group)
            summary[kind] = {"n": len(group), "chart_s": chart, "text_s": median(t["text_s"] for t in group),
                             "disk_row_s": median(t["disk_row_s"] for t in group),
                             "goal_s": FIRST_POINT_GOAL_S, "verdict": verdict(chart, FIRST_POINT_GOAL_S)}
    return {"trials": trials, "summary": summary}


def format_first_point(trial: dict) -> str:
    return (f"chart point {_cell(trial['chart_s'], '.2f')} s, 'epoch 1/' text {_cell(trial['text_s'], '.2f')} s, "
            f"first metrics row on disk {_cell(trial['disk_row_s'], '.2f')} s after the click"
            + ("" if trial.get("charts_loaded_ahead", True) else " (the charts' code was not loaded ahead)"))


# ----------------------------------------------------------------------------- 3a. Compare refresh, real server
SETTLE_S = 1.0        # between refreshes: the page's run and the browser's drawing are over
POLL_MS = 25          # REFRESH_JS in the page


def loss_chart_points(page) -> int | None:
    return page.evaluate(LOSS_POINTS_JS, LOSS_TITLE)


def compare_refresh_once(page, server: Server, folder: Path) -> dict:
    """One epoch appended to the running run; until the page shows it (the loss chart's trace has the
    new point, the caption the new epoch) and the page's run has finished. Server CPU is read just
    before the append and just after."""
    page.evaluate("() => { delete window.__benchPoint; delete window.__benchCaption; }")
    mine = os.getpid()
    browser_before = browser_cpu(mine, exclude={server.pid})
    cpu_before = cpu_seconds(server.pid)
    appended = time.time()
    epoch = append_epoch(folder)           # metrics.csv, then status.json's epoch and heartbeat
    try:
        page.wait_for_function(REFRESH_JS, arg=[LOSS_TITLE, epoch, RUNNING_CAPTION.format(epoch=epoch)],
                               polling=POLL_MS, timeout=60_000)
        wait_idle(page)
    except Exception:
        raise_shown_exception(page, "Compare")
        raise RuntimeError(f"Compare did not show epoch {epoch} within 60 s (loss chart's most points: "
                           f"{loss_chart_points(page)}; caption '{RUNNING_CAPTION.format(epoch=epoch)}' "
                           f"seen: {page.evaluate('() => Boolean(window.__benchCaption)')})")
    done = time.time()
    cpu_after = cpu_seconds(server.pid)
    browser_after = browser_cpu(mine, exclude={server.pid})
    point, caption = page.evaluate("() => [window.__benchPoint || null, window.__benchCaption || null]")
    raise_shown_exception(page, "Compare")
    return {"epoch": epoch, "server_cpu_ms": (cpu_after - cpu_before) * 1000 if None not in (cpu_before, cpu_after) else None,
            "window_s": done - appended, "done_ms": (done - appended) * 1000,
            "point_ms": point - appended * 1000 if point else None,
            "caption_ms": caption - appended * 1000 if caption else None,
            "browser_cpu_ms": cpu_delta(browser_before, browser_after) * 1000}


def idle_cpu(server: Server, seconds: float) -> float | None:
    """The server's CPU ms per second over `seconds` of nothing changing."""
    before, started = cpu_seconds(server.pid), time.monotonic()
    time.sleep(seconds)
    return cpu_rate(before, cpu_seconds(server.pid), time.monotonic() - started)


def measure_compare_browser(browser, work: Path, runs: int, epochs: int, refreshes: int, idle_s: float,
                            workers: int | None) -> dict:
    """The fake runs in a fresh runs folder, one `streamlit run app.py` on it, one tab on Compare
    (?sweep=), drawn; one warm-up refresh, then `refreshes` timed ones; then the idle cost with the
    tab open and with none."""
    from urllib.parse import quote
    root = work / "compare-browser-runs"
    sweep = f"fake-{runs}"
    ids = build_fake_runs(root, runs=runs, epochs=epochs, sweep=sweep)
    running = root / ids[-1]
    # The running run's heartbeat must not go stale during the timing (only a change, not a beat, is timed).
    server = Server(work, root, workers, name="compare-server", env={"TRAINLIB_HEARTBEAT_TTL": "3600"})
    page = None
    try:
        started = time.perf_counter()
        page = open_tab(browser, server.url, "compare", f"?sweep={quote(sweep)}")
        page.wait_for_function(f"([title, n]) => {{ const p = ({LOSS_POINTS_FN})(title); return p !== null && p >= n; }}",
                               arg=[LOSS_TITLE, epochs], polling=100, timeout=120_000)
        wait_idle(page)
        load_s = time.perf_counter() - started
        raise_shown_exception(page, "Compare")
        charts = page.locator(".js-plotly-plot").count()
        time.sleep(SETTLE_S)
        trials = []
        for i in range(refreshes + 1):
            trial = compare_refresh_once(page, server, running)
            if i == 0:
                print(f"  warm-up: server CPU {_cell(trial['server_cpu_ms'], '.0f')} ms", flush=True)
            else:
                trials.append(trial)
                print(f"  epoch {trial['epoch']}: server CPU {_cell(trial['server_cpu_ms'], '.0f')} ms, new point "
                      f"{_cell(trial['point_ms'], '.0f')} ms, page done {trial['done_ms']:.0f} ms after the append, "
                      f"browser CPU {trial['browser_cpu_ms']:.0f} ms", flush=True)
            time.sleep(SETTLE_S)
        idle_tab = idle_cpu(server, idle_s)
        page.close()
        page = None
        time.sleep(2.0)                        # the session's socket closes
        idle_none = idle_cpu(server, idle_s)
    finally:
        if page is not None:
            page.close()
        server.stop()
    return {"runs": runs, "epochs": epochs, "sweep": sweep, "charts": charts, "load_s": load_s,
            "refreshes": trials, "idle_s": idle_s, "idle_tab_cpu_ms_per_s": idle_tab,
            "idle_no_tab_cpu_ms_per_s": idle_none, "summary": refresh_summary(trials, idle_tab)}


# ----------------------------------------------------------------------------- 3b. Compare refresh, AppTest
def measure_compare_refresh(work: Path, runs: int, epochs: int, timed: int) -> dict:
    """pages/compare.py under AppTest on fake runs: at.run() after one run gained an epoch, and with
    nothing changed, alternately, `timed` times each after one warm-up run. Wall and process CPU."""
    root = work / "compare-runs"
    ids = build_fake_runs(root, runs=runs, epochs=epochs)
    saved = {key: os.environ.get(key) for key in ("TRAINLIB_RUNS_DIR", "TRAINLIB_WORKERS", "TRAINLIB_OFFLINE",
                                                  "TRAINLIB_HEARTBEAT_TTL")}
    # The running run's heartbeat must not go stale during the timing (only a change, not a beat, is timed).
    os.environ.update({"TRAINLIB_RUNS_DIR": str(root), "TRAINLIB_WORKERS": "1", "TRAINLIB_OFFLINE": "1",
                       "TRAINLIB_HEARTBEAT_TTL": "3600"})
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from dashboard.charts import COMPONENT_NAME as CHART_COMPONENT
    at = None
    try:
        st.cache_resource.clear()
        st.cache_data.clear()
        at = AppTest.from_file(str(REPO_ROOT / "pages" / "compare.py"), default_timeout=300)

        def timed_run() -> tuple[float, float]:
            wall, cpu = time.perf_counter(), time.process_time()
            at.run()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            if at.exception:
                raise RuntimeError(f"the Compare page raised: {[e.value for e in at.exception]}")
            return wall * 1000, cpu * 1000

        warm_ms = timed_run()[0]
        charts = sum(element.proto.component_name == CHART_COMPONENT for element in at.get("bidi_component"))
        changed, unchanged = [], []
        for _ in range(timed):
            append_epoch(root / ids[-1])
            changed.append(timed_run())
            unchanged.append(timed_run())
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        try:
            from trainlib.runner import live_runners
            for runner in live_runners():
                runner.shutdown(wait=True)
        except ImportError:
            pass
        st.cache_resource.clear()
    changed_ms, unchanged_ms = median(w for w, _ in changed), median(w for w, _ in unchanged)
    return {"runs": runs, "epochs": epochs, "charts": charts, "first_run_ms": warm_ms,
            "changed_ms": [w for w, _ in changed], "changed_cpu_ms": [c for _, c in changed],
            "unchanged_ms": [w for w, _ in unchanged], "unchanged_cpu_ms": [c for _, c in unchanged],
            "median_changed_ms": changed_ms, "median_changed_cpu_ms": median(c for _, c in changed),
            "median_unchanged_ms": unchanged_ms, "median_unchanged_cpu_ms": median(c for _, c in unchanged),
            "goal_ms": COMPARE_GOAL_MS, "verdict": verdict(changed_ms, COMPARE_GOAL_MS)}


# ============================================================================ main
def machine_info() -> dict:
    info = {"cores": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "load_avg_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}
    for module in ("torch", "streamlit", "plotly", "pandas"):
        try:
            info[module] = __import__(module).__version__
        except ImportError:
            info[module] = None
    return info


PARTS = ("compare-apptest", "compare-server", "watching", "first-point")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="JSON file for the figures")
    parser.add_argument("--repeats", type=int, default=2, help="each watching condition, interleaved (default 2)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs of the watched sweep (default: the preset's)")
    parser.add_argument("--workers", type=int, default=None,
                        help="TRAINLIB_WORKERS of the server and --workers of the CLI (default: their own, one per core)")
    parser.add_argument("--first-point-repeats", type=int, default=3, help="cold and warm each (default 3)")
    parser.add_argument("--open-tabs", choices=("before", "after-start"), default="before",
                        help="open the watching tabs before the sweep starts (default), or once its run folders exist")
    parser.add_argument("--compare-runs", type=int, default=50)
    parser.add_argument("--compare-epochs", type=int, default=100)
    parser.add_argument("--compare-refreshes", type=int, default=None,
                        help="timed Compare refreshes in the real server (default 5; --quick 3)")
    parser.add_argument("--idle-seconds", type=float, default=None,
                        help="each idle server-CPU window, tab open and no tab (default 10; --quick 5)")
    parser.add_argument("--quick", action="store_true",
                        help="1 repeat, 2 epochs, 1 first-point trial each, 2 AppTest and 3 real-server refreshes, 5 s idle")
    parser.add_argument("--skip-browser", action="store_true", help="the AppTest Compare refresh alone (no server, no chromium)")
    parser.add_argument("--watching-only", action="store_true",
                        help="the watching cost alone (no Compare refresh, no first point)")
    parser.add_argument("--first-point-only", action="store_true",
                        help="the first point after Run alone (no Compare refresh, no watching)")
    parser.add_argument("--compare-browser-only", action="store_true",
                        help="the Compare refresh in a real server alone (no AppTest, no watching, no first point)")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats, args.first_point_repeats = 1, 1
        args.epochs = args.epochs or 2
    args.epochs = args.epochs or preset_variant_flags()[1]
    args.compare_timed = 2 if args.quick else 5
    if args.compare_refreshes is None:
        args.compare_refreshes = 3 if args.quick else 5
    if args.idle_seconds is None:
        args.idle_seconds = 5.0 if args.quick else 10.0
    only = {"compare-apptest": args.skip_browser, "compare-server": args.compare_browser_only,
            "watching": args.watching_only, "first-point": args.first_point_only}
    if sum(only.values()) > 1:
        parser.error("--skip-browser, --compare-browser-only, --watching-only and --first-point-only each leave out "
                     "what the others measure")
    args.parts = {part for part, alone in only.items() if alone} or set(PARTS)     # what this run measures
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    result = {"benchmark": "live_demo", "args": {k: v for k, v in vars(args).items()}, "machine": machine_info()}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="live-demo-") as tmp:
        work = Path(tmp)
        if "compare-apptest" in args.parts:
            print(f"Compare refresh under AppTest: {args.compare_runs} fake runs x {args.compare_epochs} epochs, "
                  f"one running", flush=True)
            result["compare_refresh"] = measure_compare_refresh(work, args.compare_runs, args.compare_epochs,
                                                                args.compare_timed)
        if args.parts - {"compare-apptest"}:
            if not Path(CHROMIUM).exists():
                raise SystemExit(f"no chromium at {CHROMIUM} (apt-get install chromium), or use --skip-browser")
            from playwright.sync_api import sync_playwright
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
                result["machine"]["chromium"] = browser.version
                if "compare-server" in args.parts:
                    print(f"\nCompare refresh in a real server: {args.compare_runs} fake runs x {args.compare_epochs} "
                          f"epochs, one running; one tab, {args.compare_refreshes} refreshes", flush=True)
                    result["compare_refresh_server"] = measure_compare_browser(
                        browser, work, args.compare_runs, args.compare_epochs, args.compare_refreshes,
                        args.idle_seconds, args.workers)
                if "watching" in args.parts:
                    print(f"\nWatching cost: 4-run shapes sweep, {args.epochs} epochs, {args.repeats} repeat(s) of "
                          f"{len(CONDITIONS)} conditions, tabs opened {args.open_tabs} the sweep", flush=True)
                    result["watching"] = measure_watching(browser, work, args.repeats, args.epochs, args.workers,
                                                          args.open_tabs)
                if "first-point" in args.parts:
                    print(f"\nFirst point after Run: {args.first_point_repeats} cold, {args.first_point_repeats} warm",
                          flush=True)
                    result["first_point"] = measure_first_point(browser, work, args.first_point_repeats,
                                                                args.first_point_repeats, args.workers)
                browser.close()
    result["total_s"] = time.perf_counter() - started
    result["machine"]["load_avg_1min_end"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None

    if "compare_refresh_server" in result:
        server = result["compare_refresh_server"]
        print(f"\n== Compare refresh in a real server ({server['runs']} runs x {server['epochs']} epochs, one tab, "
              f"medians): the goal's figure")
        print(format_compare_browser(server))
    if "compare_refresh" in result:
        compare = result["compare_refresh"]
        print("\n== Compare refresh under AppTest, a second figure (wall ms of at.run() of pages/compare.py alone, "
              "CPU ms of this process: the page's whole rerun plus AppTest's element handling; no sidebar, "
              "websocket or polls)")
        print(f"one run gained an epoch: {compare['median_changed_ms']:.0f} ms (CPU {compare['median_changed_cpu_ms']:.0f} ms)"
              f"   against the goal < {COMPARE_GOAL_MS:.0f} ms: {compare['verdict']}")
        print(f"nothing changed:         {compare['median_unchanged_ms']:.0f} ms (CPU {compare['median_unchanged_cpu_ms']:.0f} ms)"
              f"   first run {compare['first_run_ms']:.0f} ms, {compare['charts']} charts")
    if "watching" in result:
        print(f"\n== Watching cost ({args.epochs}-epoch 4-run sweep, medians)")
        print(format_watch_table(result["watching"]["table"]))
        if not all(row["tabs_saw_sweep"] for row in result["watching"]["table"]):
            print("NOTE: some tabs never showed the sweep (a page opened on an empty runs folder does not poll): "
                  "their ratio measures an idle tab. --open-tabs after-start measures tabs that watch.")
    if "first_point" in result:
        print("\n== First point after Run (Regularization preset, medians, seconds after the click)")
        for kind, row in result["first_point"]["summary"].items():
            print(f"{kind:<5} (n={row['n']}): chart point {_cell(row['chart_s'], '.2f')} s, 'epoch 1/' text "
                  f"{_cell(row['text_s'], '.2f')} s, first row on disk {_cell(row['disk_row_s'], '.2f')} s"
                  f"   goal <= {FIRST_POINT_GOAL_S:.0f} s: {row['verdict']}")
    load = max(result["machine"]["load_avg_1min"] or 0, result["machine"]["load_avg_1min_end"] or 0)
    if load > (os.cpu_count() or 1) - 0.5:
        print(f"WARNING: load average {load:.1f} on {os.cpu_count()} CPUs: other processes competed; the figures are noise")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str))
    print(f"\nwrote {out} ({result['total_s']:.0f} s)")
    return result


if __name__ == "__main__":
    main()
