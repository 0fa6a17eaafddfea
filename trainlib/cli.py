"""Command line: python -m trainlib {run,sweep,list,export} ...

    python -m trainlib run --dataset mnist --epochs 5 --lr 1e-3 --dropout 0.2
    python -m trainlib sweep --dataset mnist --epochs 5 --variant 'baseline:' --variant 'l2:weight_decay=1e-5' \
        --variant 'dropout:dropout=0.2' --variant 'batchnorm:batchnorm=true'
    python -m trainlib sweep --vary lr=1e-2,1e-3 --vary dropout=0,0.2          # a 2x2 grid
    python -m trainlib list
    python -m trainlib export RUN_ID... --csv metrics.csv

A bad flag or value prints one line naming it and exits with status 2.
"""
from __future__ import annotations

import argparse
import sys
import time
from typing import Sequence

from .spec import DEFAULTS, ScenarioSpec, SpecError, field_kind, field_names, parse_value
from .store import RUNS_ENV, RunStore, default_runs_dir
from .sweep import grid, parse_variant, parse_vary, variants


class OneLineParser(argparse.ArgumentParser):
    """argparse prints the whole usage on errors; a class in a hurry wants the one line that matters."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


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
    sweep.add_argument("--sweep-name", default=None, help="tag for the runs (default: sweep-<time>)")
    sweep.add_argument("--workers", type=int, default=None, help="runs at once (default: 1 on CPU, 4 on GPU)")
    listing = commands.add_parser("list", help="a table of the runs")
    listing.add_argument("--runs-dir", default=None)
    export = commands.add_parser("export", help="metrics of runs as one long CSV")
    export.add_argument("runs", nargs="+", metavar="RUN")
    export.add_argument("--csv", required=True, metavar="FILE")
    export.add_argument("--runs-dir", default=None)
    return parser


class ProgressBar:
    """One line per run on stderr, redrawn after each epoch."""

    def __init__(self, stream=None, width: int = 24):
        self.stream = stream or sys.stderr      # looked up now, not at import: redirect_stderr/capsys apply
        self.width = width
        self.started = time.monotonic()

    def update(self, name: str, record: dict, epochs: int) -> None:
        done = record["epoch"] / epochs
        bar = "#" * round(done * self.width) + "." * (self.width - round(done * self.width))
        acc = record["val_acc"]
        acc_text = f" val_acc {acc:.3f}" if acc == acc else ""
        self.stream.write(f"{name[:24]:<24} [{bar}] epoch {record['epoch']}/{epochs} "
                          f"train_loss {record['train_loss']:.4f} val_loss {record['val_loss']:.4f}{acc_text} "
                          f"({time.monotonic() - self.started:.1f}s)\n")
        self.stream.flush()


def _print_outcome(store: RunStore, run_ids: list[str]) -> int:
    frame = store.list_runs()
    frame = frame[frame["run_id"].isin(run_ids)]
    columns = ["run_id", "name", "state", "epoch", "test_acc", "best_val_loss", "error"]
    print(frame[columns].to_string(index=False))
    return 0 if (frame["state"] == "finished").all() else 1


def command_run(args: argparse.Namespace, specs: list[ScenarioSpec], sweep_name: str | None) -> int:
    from .runner import Runner
    bar = ProgressBar()
    epochs = {spec.name: spec.epochs for spec in specs}
    names: dict[str, str] = {}
    runner = Runner(args.runs_dir, workers=getattr(args, "workers", None),
                    on_epoch=lambda run_id, record: bar.update(names[run_id], record, epochs[names[run_id]]))
    ids = []
    for spec in specs:
        run_id = runner.submit(spec, sweep=sweep_name)
        names[run_id] = spec.name
        ids.append(run_id)
    try:
        runner.wait(ids)
    except KeyboardInterrupt:
        print("stopping...", file=sys.stderr)
        runner.shutdown()
    return _print_outcome(runner.store, ids)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "list":
            frame = RunStore(args.runs_dir).list_runs()
            if frame.empty:
                print(f"no runs in {args.runs_dir or default_runs_dir()}")
            else:
                print(frame[["run_id", "name", "state", "epoch", "epochs", "test_acc", "sweep"]].to_string(index=False))
            for run_id, reason in frame.attrs.get("skipped", []):
                print(f"skipped {run_id}: {reason}", file=sys.stderr)
            return 0
        if args.command == "export":
            store = RunStore(args.runs_dir)
            for run_id in args.runs:
                store.folder(run_id)          # unknown ids are an error, not a silent gap
            store.load_metrics(args.runs).to_csv(args.csv, index=False)
            print(f"wrote {args.csv}")
            return 0
        base = spec_from_args(args)
        if args.command == "run":
            return command_run(args, [base], None)
        if not args.vary and not args.variant:
            parser.error("sweep needs at least one --vary FIELD=V1,V2 or --variant NAME:FIELD=V")
        sweep_name = args.sweep_name or time.strftime("sweep-%Y%m%d-%H%M%S")
        specs = []
        if args.variant:
            specs += variants(base, dict(parse_variant(text) for text in args.variant), sweep=sweep_name)
        if args.vary:
            specs += grid(base, sweep=sweep_name, **dict(parse_vary(text) for text in args.vary))
        if args.workers is not None and args.workers < 1:
            parser.error(f"--workers: must be >= 1, got {args.workers}")
        return command_run(args, specs, sweep_name)
    except (SpecError, KeyError) as exc:
        parser.error(str(exc).strip("'\""))
    return 2
