"""Command line: python -m trainlib {run,sweep,summary,resume,stop,list,export} ...

    python -m trainlib run --dataset mnist --epochs 5 --lr 1e-3 --dropout 0.2
    python -m trainlib sweep --dataset mnist --epochs 5 --variant 'baseline:' --variant 'l2:weight_decay=1e-5' \
        --variant 'dropout:dropout=0.2' --variant 'batchnorm:batchnorm=true'
    python -m trainlib sweep --vary lr=1e-2,1e-3 --vary dropout=0,0.2          # a 2x2 grid
    python -m trainlib sweep ... --executor ray --ray-address ray://head:10001  # on a Ray cluster
    python -m trainlib sweep ... --repeats 3     # each variant with seeds s, s+1, s+2
    python -m trainlib summary --sweep reg       # test accuracy over seeds per variant, verdicts vs baseline
    python -m trainlib resume RUN_ID...          # interrupted or stopped runs, after their last epoch
    python -m trainlib stop RUN_ID...            # wherever they train: a request in the run folder
    python -m trainlib list
    python -m trainlib export RUN_ID... --csv metrics.csv

Ctrl-C on run, sweep or resume stops their runs between two batches: 'stopped', resumable.

A bad flag or value prints one line naming it and what is allowed, exits with status 2 and creates
no run folder; that includes what this machine can check before training (a GPU, the dataset's
files: see preflight.py). A run that fails while training keeps its folder, marked failed; the
command then prints one line per run that did not finish (name: error) and exits with status 1.
"""
from __future__ import annotations

import argparse
import logging
import os
import shlex
import shutil
import signal
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from .executors import EXECUTOR_ENV, EXECUTORS, default_executor
from .preflight import check_can_run_here
from .spec import DEFAULTS, ScenarioSpec, SpecError, field_kind, field_names, parse_value, shown
from .store import RUNS_ENV, RunStore, default_runs_dir
from .sweep import MAX_REPEATS, check_unique_names, grid, parse_variant, parse_vary, repeat_seeds, variants

MAX_WORKERS = 64          # threads training at once; more only queue up behind the same GPU or cores


def one_line(text: str) -> str:
    """`text` with newlines and other control characters escaped: the one-line promise holds for any value."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))


class OneLineParser(argparse.ArgumentParser):
    """argparse prints the whole usage on errors; a class in a hurry wants the one line that matters."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {one_line(message)}\n")


class FlagError(ValueError):
    """A bad command-line value that is not a scenario field (--runs-dir, --csv, a RUN id)."""

    def __init__(self, flag: str, message: str):
        super().__init__(f"{flag}: {message}")


def _add_spec_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("scenario fields (defaults are the course's)")
    for name in field_names():
        flag = "--" + name.replace("_", "-")
        kind = field_kind(name)
        if kind == "bool":
            group.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=None,
                               help=f"default: {DEFAULTS[name]}")
        else:
            shown = ",".join(map(str, DEFAULTS[name])) if isinstance(DEFAULTS[name], tuple) else DEFAULTS[name]
            group.add_argument(flag, dest=name, default=None, metavar="VALUE", help=f"default: {shown}")
    parser.add_argument("--runs-dir", default=None, help=f"where run folders go (default: ${RUNS_ENV} or ./runs)")


def spec_from_args(args: argparse.Namespace) -> ScenarioSpec:
    changes = {}
    for name in field_names():
        value = getattr(args, name, None)
        if value is None:
            continue
        changes[name] = value if isinstance(value, bool) else parse_value(name, value)
    return ScenarioSpec.from_dict(changes)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m trainlib", description="Train and compare scenarios.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    run = commands.add_parser("run", help="train one scenario")
    _add_spec_flags(run)
    sweep = commands.add_parser("sweep", help="train several scenarios from one base")
    _add_spec_flags(sweep)
    sweep.add_argument("--vary", action="append", default=[], metavar="FIELD=V1,V2",
                       help="an axis of a grid (repeat for more axes; tuple fields use ';' between options)")
    sweep.add_argument("--variant", action="append", default=[], metavar="NAME:FIELD=V,FIELD=V",
                       help="a named run: the base plus these changes ('baseline:' is the base itself)")
    for command, default in ((run, "none, or repeats-<time> with --repeats"), (sweep, "sweep-<time>")):
        command.add_argument("--repeats", type=int, default=1, metavar="K",
                             help=f"train each scenario with K seeds (its --seed, +1, ...; 1..{MAX_REPEATS}, "
                                  f"default 1); 'summary --sweep' then says which differences exceed seed noise")
        command.add_argument("--sweep-name", default=None,
                             help=f"tag for the runs (default: {default}); a name runs in --runs-dir already "
                                  f"have becomes NAME-2, NAME-3, ...: two sweeps never merge")
    sweep.add_argument("--workers", type=int, default=None,
                       help=f"runs at once, 1..{MAX_WORKERS} (default: one per core on a CPU, 4 on a GPU)")
    resume = commands.add_parser("resume", help="continue interrupted or stopped runs after their last epoch")
    resume.add_argument("runs", nargs="+", metavar="RUN")
    resume.add_argument("--runs-dir", default=None)
    stop = commands.add_parser("stop", help="ask running runs to stop (queued ones not to start), wherever they train")
    stop.add_argument("runs", nargs="+", metavar="RUN")
    stop.add_argument("--runs-dir", default=None)
    for command in (run, sweep, resume):
        command.add_argument("--executor", choices=EXECUTORS, default=None,
                             help=f"where runs execute (default: ${EXECUTOR_ENV} or local: one process per run here)")
        command.add_argument("--ray-address", default=None, metavar="ADDR",
                             help="a Ray cluster (default: $RAY_ADDRESS; none: a local Ray instance for this command)")
    summary = commands.add_parser("summary", help="a sweep's test accuracy over seeds per variant, and verdicts "
                                                  "against its baseline")
    summary.add_argument("--sweep", required=True, metavar="NAME", help="the sweep's name (the 'sweep' column of list)")
    summary.add_argument("--runs-dir", default=None)
    listing = commands.add_parser("list", help="a table of the runs")
    listing.add_argument("--runs-dir", default=None)
    export = commands.add_parser("export", help="metrics of runs as one long CSV")
    export.add_argument("runs", nargs="+", metavar="RUN")
    export.add_argument("--csv", required=True, metavar="FILE")
    export.add_argument("--runs-dir", default=None)
    return parser


# ----------------------------------------------------------------------------- the runs folder
def runs_dir_of(args: argparse.Namespace) -> Path:
    return Path(args.runs_dir) if args.runs_dir is not None else default_runs_dir()


@contextmanager
def _looking_at(flag: str, path: Path | str):
    """A path the OS refuses to look at (a name too long, no permission) is a bad flag, not a traceback."""
    if "\x00" in str(path):
        raise FlagError(flag, "must not contain a NUL character")
    try:
        yield
    except OSError as exc:
        raise FlagError(flag, f"cannot use {shown(str(path))}: {exc.strerror or exc}") from None


def check_runs_dir_writable(path: Path) -> None:
    """Raise FlagError unless run folders can be made under `path` (made later, by RunStore)."""
    with _looking_at("--runs-dir", path):
        if path.exists() and not path.is_dir():
            raise FlagError("--runs-dir", f"{path} is a file, not a folder")
        existing = next(p for p in (path, *path.absolute().parents) if p.exists())
        if not existing.is_dir():
            raise FlagError("--runs-dir", f"cannot create {path}: {existing} is a file, not a folder")
        if not os.access(existing, os.W_OK | os.X_OK):
            raise FlagError("--runs-dir", f"cannot create run folders in {existing}: permission denied")


def open_existing_store(path: Path) -> RunStore | None:
    """The store at `path`, or None when there is no such folder. Reading must not create it."""
    with _looking_at("--runs-dir", path):
        if not path.exists():
            return None
        if not path.is_dir():
            raise FlagError("--runs-dir", f"{path} is a file, not a folder")
        return RunStore(path)


# ----------------------------------------------------------------------------- output
class ProgressBar:
    """Each run's progress on stderr, with the time since that run started.

    On a terminal the lines of the runs in progress are redrawn in place ('\\r', clear to the end of
    the line) and an ended run's last line stays above them; elsewhere (a log file, a pipe, CI) each
    epoch is one line, so the log reads top to bottom.
    """

    def __init__(self, stream=None, width: int = 16):
        self.stream = stream or sys.stderr      # looked up now, not at import: redirect_stderr/capsys apply
        self.width = width
        isatty = getattr(self.stream, "isatty", None)
        self.in_place = bool(isatty and isatty())
        self._lines: dict[str, str] = {}        # run id -> its line, for runs in the redrawn block
        self._drawn = 0                         # lines of that block on screen now
        self._lock = threading.Lock()           # runs report their epochs from their own worker threads

    def line(self, name: str, record: dict, epochs: int, elapsed: float | None, columns: int | None = None) -> str:
        """The run's line; with `columns`, made to fit: the bar goes first, then the end of the name."""
        done = min(record["epoch"] / epochs, 1.0)
        filled = round(done * self.width)
        bar = f" [{'#' * filled}{'.' * (self.width - filled)}]"
        acc = record["val_acc"]
        acc_text = f" val_acc {acc:.3f}" if acc == acc else ""          # NaN for regression: no accuracy
        time_text = f" elapsed {elapsed:.1f}s" if elapsed is not None else ""
        stats = (f" epoch {record['epoch']}/{epochs} train_loss {record['train_loss']:.4f} "
                 f"val_loss {record['val_loss']:.4f}{acc_text}{time_text}")
        label = f"{one_line(name)[:20]:<20}"
        if columns is None or len(label + bar + stats) <= columns:
            return label + bar + stats
        if len(label + stats) > columns:
            label = label.rstrip()[:max(columns - len(stats), 8)]
        return (label + stats)[:columns]

    def update(self, run_id: str, name: str, record: dict, epochs: int, elapsed: float | None) -> None:
        # A line wider than the terminal wraps, and redrawing in place would then miss its start.
        columns = max(shutil.get_terminal_size((100, 24)).columns - 1, 20) if self.in_place else None
        text = self.line(name, record, epochs, elapsed, columns)
        with self._lock:
            if not self.in_place:
                self.stream.write(text + "\n")
            else:
                self._lines[run_id] = text
                self._redraw()
            self.stream.flush()

    def finish(self, run_id: str) -> None:
        """The run has ended: its last line leaves the redrawn block and stays on screen."""
        with self._lock:
            if self.in_place and run_id in self._lines:
                self._redraw(ended=self._lines.pop(run_id))
                self.stream.flush()

    def close(self) -> None:
        with self._lock:
            if self.in_place and self._drawn:
                self.stream.write("\n")
                self._drawn = 0
                self.stream.flush()

    def _redraw(self, ended: str | None = None) -> None:
        """Rewrite the block from its first line: `ended` (kept above), then the runs in progress.
        The cursor stays at the end of the block's last line, or on a fresh line when it is empty."""
        back = ""
        if self._drawn:
            back = "\r" + (f"\x1b[{self._drawn - 1}A" if self._drawn > 1 else "")     # to the block's start
        lines = ([ended] if ended is not None else []) + list(self._lines.values())
        body = "\n".join("\x1b[K" + text for text in lines)                          # clear, then write
        fresh_line = "\n" if ended is not None and not self._lines else ""
        self.stream.write(back + body + fresh_line + "\x1b[J")                        # clear what was below
        self._drawn = len(self._lines)


def cell(value: Any, kind: str = "text") -> str:
    """A table cell: empty for no value (None, NaN), never 'None' or 'NaN'."""
    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):      # None, NaN, pd.NA
        return ""
    if kind == "float" and isinstance(value, (int, float)):
        return f"{value:.4f}"
    if kind == "int" and isinstance(value, float) and value.is_integer():
        return str(int(value))                   # a column with gaps comes back from pandas as floats
    return one_line(value)


def format_table(rows: list[dict], columns: dict[str, str]) -> str:
    """Rows as aligned text, in the order given; `columns` maps each column to its cell kind."""
    cells = [[cell(row.get(column), kind) for column, kind in columns.items()] for row in rows]
    widths = [max([len(column)] + [len(line[i]) for line in cells]) for i, column in enumerate(columns)]
    lines = [list(columns)] + cells
    return "\n".join("  ".join(text.ljust(width) for text, width in zip(line, widths)).rstrip() for line in lines)


OUTCOME_COLUMNS = {"run_id": "text", "name": "text", "state": "text", "epoch": "int", "test_acc": "float",
                   "best_val_loss": "float"}
LIST_COLUMNS = {"run_id": "text", "name": "text", "state": "text", "epoch": "int", "epochs": "int",
                "test_acc": "float", "sweep": "text"}


def outcome_rows(store: RunStore, run_ids: list[str]) -> list[dict]:
    """One row per run, in the order given (the order they were submitted)."""
    rows = []
    for run_id in run_ids:
        try:
            run = store.read_run(run_id)
        except Exception as exc:                 # deleted or half-written under us: say so, go on
            rows.append({"run_id": run_id, "name": run_id, "state": "unknown",
                         "error": f"cannot read its folder: {type(exc).__name__}: {exc}"})
            continue
        status, summary = run["status"], run["summary"]
        rows.append({"run_id": run_id, "name": run["spec"].get("name", run_id), "state": status.get("state"),
                     "epoch": status.get("epoch"), "test_acc": summary.get("test_acc"),
                     "best_val_loss": summary.get("best_val_loss"), "error": status.get("error")})
    return rows


def print_outcome(store: RunStore, run_ids: list[str]) -> int:
    """The table of the runs on stdout, then one line per run that did not finish on stderr; 0 if all finished."""
    rows = outcome_rows(store, run_ids)
    print(format_table(rows, OUTCOME_COLUMNS))
    for row in rows:
        if row["state"] != "finished":
            print(f"{one_line(row['name'])}: {one_line(row.get('error') or row['state'])}", file=sys.stderr)
    return 0 if all(row["state"] == "finished" for row in rows) else 1


# Starts of the library's warnings that the CLI reports itself, from return values: a failed run
# (print_outcome) and a skipped folder (list's and export's "skipped" lines). Shown once, not twice.
REPORTED_BY_CLI = ("run %s failed", "skipping ")


class _OneLineLogHandler(logging.StreamHandler):
    """trainlib's warnings as 'python -m trainlib: warning: ...', one line each, without what the CLI prints."""

    def __init__(self):
        super().__init__(sys.stderr)
        self.addFilter(lambda record: record.levelno >= logging.ERROR
                       or not str(record.msg).startswith(REPORTED_BY_CLI))

    def format(self, record: logging.LogRecord) -> str:
        return f"python -m trainlib: {record.levelname.lower()}: {one_line(record.getMessage())}"


# ----------------------------------------------------------------------------- commands
def make_runner(args: argparse.Namespace, on_epoch, runs: int):
    from .executors import ExecutorUnavailable
    from .runner import Runner, default_workers
    # No more worker processes than runs: each one is started (and imports torch) up front.
    workers = getattr(args, "workers", None) or max(1, min(default_workers(), runs))
    try:
        return Runner(args.runs_dir, workers=workers, on_epoch=on_epoch,
                      executor=args.executor, ray_address=args.ray_address)
    except OSError as exc:
        raise FlagError("--runs-dir", f"cannot use {runs_dir_of(args)}: {exc.strerror or exc}") from None
    except ExecutorUnavailable as exc:
        raise FlagError("--executor", str(exc)) from None


def command_run(args: argparse.Namespace, specs: list[ScenarioSpec], sweep_name: str | None,
                resume_ids: Sequence[str] = (), variants: list[str] | None = None) -> int:
    """Train specs (new runs) or resume_ids (existing ones) with a progress line each, until they end.
    variants: one per spec, as sweep.repeat_seeds pairs them (default: each spec's name).
    Ctrl-C stops them between two batches (state 'stopped', resumable)."""
    bar = ProgressBar()
    names: dict[str, tuple[str, int]] = {}

    def on_epoch(run_id: str, record: dict) -> None:
        name, epochs = names[run_id]
        elapsed = runner.snapshot().get(run_id, {}).get("elapsed")     # since this run started, not the command
        bar.update(run_id, name, record, epochs, elapsed)

    runner = make_runner(args, on_epoch, len(specs) + len(resume_ids))
    ids = []
    try:
        for spec, run_id in zip(specs, runner.submit_many(specs, sweep=sweep_name, variants=variants)):
            names[run_id] = (spec.name, spec.epochs)
            ids.append(run_id)
        for run_id in resume_ids:
            try:
                spec = runner.store.read_spec(run_id)
                names[run_id] = (spec.name, spec.epochs)       # before resume: its progress comes at once
                runner.resume(run_id)
            except KeyError as exc:
                raise FlagError("RUN", exc.args[0]) from None
            except ValueError as exc:
                raise FlagError("RUN", str(exc)) from None
            ids.append(run_id)
        with ctrl_c_as_event() as interrupted:
            follow(runner, bar, ids, interrupted)
            if interrupted.is_set():
                bar.close()
                print("stopping: the runs end 'stopped' after their current batch and can be resumed...",
                      file=sys.stderr)
                runner.stop_all()
                runner.wait(ids)
    finally:
        runner.shutdown()        # stops what is left (a second Ctrl-C) and ends the worker processes
    bar.close()
    status = print_outcome(runner.store, ids)
    if sweep_name is not None:
        print(f"per variant, over seeds: {summary_command(args, sweep_name)}", file=sys.stderr)
    return status


def summary_command(args: argparse.Namespace, sweep_name: str) -> str:
    """The command that summarises this sweep, ready to paste into a shell."""
    runs_dir = f" --runs-dir {shlex.quote(str(args.runs_dir))}" if args.runs_dir is not None else ""
    return f"python -m trainlib summary --sweep {shlex.quote(sweep_name)}{runs_dir}"


@contextmanager
def ctrl_c_as_event():
    """Ctrl-C sets an event the command looks at every 0.2 s, instead of raising KeyboardInterrupt
    wherever the main thread happens to be (inside a write to stderr, a lock, a wait). A second
    Ctrl-C raises KeyboardInterrupt as usual."""
    interrupted = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield interrupted                      # signal handlers belong to the main thread
        return

    def on_ctrl_c(signum, frame):
        interrupted.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = signal.signal(signal.SIGINT, on_ctrl_c)
    try:
        yield interrupted
    finally:
        signal.signal(signal.SIGINT, previous)


def follow(runner, bar: "ProgressBar", ids: list[str], interrupted: threading.Event | None = None) -> None:
    pending = list(ids)
    while pending and not (interrupted is not None and interrupted.is_set()):
        runner.wait(pending[:1], timeout=0.2)
        for run_id in [r for r in pending if runner.wait([r], timeout=0)]:
            bar.finish(run_id)
            pending.remove(run_id)


def command_stop(args: argparse.Namespace) -> int:
    """Write a stop request into each run's folder: the run stops between two batches, on this
    machine or another; a queued run is not started."""
    from .liveness import request_stop
    path = runs_dir_of(args)
    store = open_existing_store(path)
    if store is None:
        raise FlagError("--runs-dir", f"no runs folder {path}")
    for run_id in args.runs:
        try:
            with _looking_at("RUN", run_id):
                state = store.read_run(run_id)["status"]["state"]
        except KeyError as exc:
            raise FlagError("RUN", exc.args[0]) from None
        except ValueError as exc:
            raise FlagError("RUN", f"{run_id}: {exc}") from None
        if state not in ("queued", "running"):
            print(f"{run_id}: already {state}")
            continue
        request_stop(store.folder(run_id), reason="stop" if state == "running" else "cancel")
        print(f"{run_id}: stop requested ({state})")
    return 0


def command_list(args: argparse.Namespace) -> int:
    path = runs_dir_of(args)
    store = open_existing_store(path)
    frame = store.list_runs() if store is not None else None
    if frame is None or frame.empty:
        print(f"no runs in {path}")
    else:
        print(format_table(frame.to_dict("records"), LIST_COLUMNS))
    for run_id, reason in (frame.attrs.get("skipped", []) if frame is not None else []):
        print(f"skipped {run_id}: {one_line(reason)}", file=sys.stderr)
    return 0


def command_export(args: argparse.Namespace) -> int:
    path = runs_dir_of(args)
    store = open_existing_store(path)
    for run_id in args.runs:                  # unknown ids are an error, not a silent gap
        if store is None:
            raise FlagError("RUN", f"no run {shown(run_id)} in {path} (no such folder)")
        try:
            with _looking_at("RUN", run_id):
                store.folder(run_id)
        except KeyError as exc:
            raise FlagError("RUN", exc.args[0]) from None
    csv = Path(args.csv)
    with _looking_at("--csv", args.csv):
        if not csv.parent.is_dir():
            raise FlagError("--csv", f"cannot write {shown(args.csv)}: folder {shown(str(csv.parent))} does not exist")
    frame = store.load_metrics(args.runs)
    try:
        frame.to_csv(csv, index=False)
    except (OSError, ValueError) as exc:      # a folder of that name, no permission, a full disk
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise FlagError("--csv", f"cannot write {shown(args.csv)}: {reason}") from None
    print(f"wrote {args.csv}")
    for run_id, reason in frame.attrs.get("skipped", []):
        print(f"skipped {run_id}: {one_line(reason)}", file=sys.stderr)
    return 0


SHOWN_SWEEPS = 5          # sweeps an unknown --sweep's error names, newest first
SUMMARY_COLUMNS = dict.fromkeys(["variant", "runs", "test acc % (mean ± std)", "min-max %", "seeds"], "text")


def percent(value: float) -> str:
    return f"{value * 100:.2f}"


def summary_rows(table: pd.DataFrame) -> list[dict]:
    """variant_table's rows as text: test accuracy in %, unfinished runs counted as such."""
    rows = []
    for row in table.to_dict("records"):
        n, runs = row["n"], row["runs"]
        if n == runs:
            counted = str(n)
        elif row["finished"] == n:
            counted = f"{n} of {runs} finished"
        else:                                  # finished without a test accuracy (a regression task)
            counted = f"{n} of {runs} with a test accuracy"
        mean = "" if n == 0 else percent(row["mean_test_acc"])
        mean += f" ± {percent(row['std_test_acc'])}" if n > 1 else ""
        spread = "" if n == 0 else f"{percent(row['min_test_acc'])}-{percent(row['max_test_acc'])}"
        seeds = ",".join("?" if seed is None else str(seed) for seed in row["seeds"])
        rows.append(dict(zip(SUMMARY_COLUMNS, [row["variant"], counted, mean, spread, seeds])))
    return rows


def command_summary(args: argparse.Namespace) -> int:
    """A sweep's variants (mean ± std of test accuracy over seeds), then each one's verdict against
    the baseline."""
    from .repeats import ALPHA, TEST, format_p, variant_table, verdicts
    path = runs_dir_of(args)
    store = open_existing_store(path)
    runs = store.list_runs() if store is not None else None
    if runs is None or args.sweep not in set(runs["sweep"].dropna()):
        last_run = runs.dropna(subset=["sweep"]).groupby("sweep")["run_id"].max() if runs is not None else pd.Series()
        newest = list(last_run.sort_values(ascending=False).index)      # run ids start with their time
        there = ("no sweeps there" if not newest else "sweeps there, newest first: "
                 + ", ".join(shown(name) for name in newest[:SHOWN_SWEEPS])
                 + (f" and {len(newest) - SHOWN_SWEEPS} more (see list)" if len(newest) > SHOWN_SWEEPS else ""))
        raise FlagError("--sweep", f"no sweep {shown(args.sweep)} in {path}; {there}")
    runs = runs[runs["sweep"] == args.sweep]
    table = variant_table(runs)
    print(f"sweep {one_line(args.sweep)}: {len(table)} variant{'s' * (len(table) != 1)}, {len(runs)} runs")
    print(format_table(summary_rows(table), SUMMARY_COLUMNS))
    found = verdicts(runs)
    if not found:
        print("one variant: nothing to compare it with")
        return 0
    print(f"\nagainst {one_line(found[0].baseline)} ({TEST}, two-sided, alpha {ALPHA:g}):")
    for verdict in found:
        p = f" ({format_p(verdict.p_value)})" if verdict.p_value is not None else ""
        print(f"  {one_line(verdict.text)}{p}")
    return 0


def specs_of_sweep(args: argparse.Namespace, base: ScenarioSpec, sweep_name: str) -> list[ScenarioSpec]:
    named = [parse_variant(text) for text in args.variant]
    axes = [parse_vary(text) for text in args.vary]
    # dict() would keep only the last of two variants or axes of one name, silently.
    for what, keys in (("variant", [name for name, _ in named]), ("vary", [axis for axis, _ in axes])):
        repeated = sorted({key for key in keys if keys.count(key) > 1})
        if repeated:
            raise SpecError(what, f"{repeated[0]!r} is given twice; give each {what} once")
    if args.repeats > 1:                      # even one variant or axis value setting the seed: which would win?
        seeding = [f"--vary {axis}=..." for axis, _ in axes if axis == "seed"]
        seeding += [f"--variant {name}:seed=..." for name, changes in named if "seed" in changes]
        if seeding:
            raise SpecError("repeats", f"conflicts with a seed axis ({seeding[0]}): --repeats {args.repeats} sets "
                                       f"the seeds itself; give one or the other")
    specs = []
    if named:
        specs += variants(base, dict(named), sweep=sweep_name)
    if axes:
        specs += grid(base, sweep=sweep_name, **dict(axes))
    check_unique_names(specs)                 # a variant may be named like a grid point
    return specs


def unique_sweep_name(args: argparse.Namespace, name: str) -> str:
    """`name`, or name-2, name-3, ... when runs in --runs-dir have it: never merge into an old sweep.
    Looks without making the folder (a command that fails later must leave nothing behind)."""
    store = open_existing_store(runs_dir_of(args))
    return name if store is None else store.unique_sweep_name(name)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    log_handler = _OneLineLogHandler()
    logging.getLogger("trainlib").addHandler(log_handler)
    try:
        if args.command == "list":
            return command_list(args)
        if args.command == "export":
            return command_export(args)
        if args.command == "stop":
            return command_stop(args)
        if args.command == "summary":
            return command_summary(args)
        if args.command == "resume":
            if open_existing_store(runs_dir_of(args)) is None:
                raise FlagError("--runs-dir", f"no runs folder {runs_dir_of(args)}")
            return command_run(args, [], None, resume_ids=args.runs)
        base = spec_from_args(args)
        repeat_seeds([base], args.repeats)       # a bad --repeats is said before anything else is looked at
        if args.command == "run":
            sweep_name = None
            if args.sweep_name or args.repeats > 1:     # repeats form a sweep, so that summary finds them
                sweep_name = unique_sweep_name(args, args.sweep_name or time.strftime("repeats-%Y%m%d-%H%M%S"))
                if sweep_name not in base.tags:            # as a sweep's own specs are tagged
                    base = base.replace(tags=[*base.tags, sweep_name])
            specs = [base]
        else:
            if not args.vary and not args.variant:
                parser.error("sweep needs at least one --vary FIELD=V1,V2 or --variant NAME:FIELD=V")
            if args.workers is not None and not 1 <= args.workers <= MAX_WORKERS:
                parser.error(f"--workers: must be in [1, {MAX_WORKERS}], got {args.workers}")
            sweep_name = unique_sweep_name(args, args.sweep_name or time.strftime("sweep-%Y%m%d-%H%M%S"))
            specs = specs_of_sweep(args, base, sweep_name)
        planned = repeat_seeds(specs, args.repeats)
        # Everything this machine can check, for every run, before the first run folder is made
        # (runs sent to a Ray cluster train elsewhere: that machine checks them). A seed changes
        # nothing checked here: the specs before repeating stand for their repeats.
        remote = (args.executor or default_executor()) == "ray" and (args.ray_address or os.environ.get("RAY_ADDRESS"))
        for spec in specs if not remote else []:
            check_can_run_here(spec)
        check_runs_dir_writable(runs_dir_of(args))
        specs, variant_names = [spec for _, spec in planned], [variant for variant, _ in planned]
        if args.sweep_name and sweep_name != args.sweep_name:
            print(f"a sweep {one_line(args.sweep_name)} is in {runs_dir_of(args)} already: this one is "
                  f"{one_line(sweep_name)}", file=sys.stderr)
        if args.repeats == 1:                 # each spec its own variant: submit_many's default
            return command_run(args, specs, sweep_name)
        return command_run(args, specs, sweep_name, variants=variant_names)
    except (SpecError, FlagError) as exc:
        parser.error(str(exc))                # a message as it is: stripping quotes cut "got 'x'" to "got 'x"
    finally:
        logging.getLogger("trainlib").removeHandler(log_handler)
    return 2
