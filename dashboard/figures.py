"""Plotly figures for comparing runs, as pure functions of DataFrames (testable without a browser).

    runs = tables.in_run_order(chosen)                        # the one order of every chart
    colors = run_colors(runs)                                 # one colour per run, on every page
    fig = curves_overlay(metrics, "loss", "epoch", colors)    # metrics: RunStore.load_metrics(...)
    charts.show(fig, key="loss", config=chart_config("loss"))   # dashboard/charts.py

Made for a projector: large text, thick lines, the Okabe-Ito colour-blind-safe palette, and line
styles (solid train, dashed validation) that carry meaning without colour. A run keeps its colour
in every chart because every function takes the same `colors` mapping (run_id -> colour), and
every chart draws the runs in the order of the frame it gets.
`metrics` frames are long: one row per run and epoch with run_id, name and the trainlib metric
columns; `runs` frames are RunStore.list_runs() rows. The `name` column is the label shown.

The curve charts are rebuilt on every poll of a page, so they are built from plain dicts with
go.Figure(..., _validate=False) (validating 100 traces costs ~350 ms, building them ~5 ms), and the
metrics frame is split into runs once per chart.
"""
from __future__ import annotations

import base64
import contextlib
import copy
import functools
import math
import re
import warnings
import zlib
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio

# Okabe & Ito (2008), ordered for a white background: orange and vermillion apart, the pale yellow last.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#000000", "#F0E442")
TEMPLATE = "plotly_white"
FONT_SIZE = 18             # px; readable from the back of a classroom
TITLE_SIZE = 22
LINE_WIDTH = 3
MARKER_SIZE = 7
MARKERS_UP_TO = 30         # points per line; beyond that markers only clutter the line
HEIGHT = 480               # px of one chart
PANEL_HEIGHT = 300         # px of one row of small multiples
ROW_HEIGHT = 44            # px per run or variant in the test-accuracy dot plot
NEUTRAL = "#444444"        # line-style keys and reference lines
HIGHLIGHT = "#111111"      # outline of the best run's marker
TRAIN_DASH, VAL_DASH = "solid", "dash"
BAND_OPACITY = 0.18        # seed bands: translucent, so overlapping variants stay readable
CLIP_SYMBOL = "triangle-up"
# Readable ranges (see clip_ceiling): a run whose first-epoch loss is more than DIVERGED_FACTOR times the
# typical one diverged; the y range stops at CEILING_FACTOR times the largest first-epoch loss of the others.
DIVERGED_FACTOR = 10.0
CEILING_FACTOR = 3.0
LOG_DECADES = 2.0          # a loss chart turns logarithmic by default when its values span more decades
# Viridis (perceptually uniform, colour-blind safe) without its pale yellow end, which vanishes on white.
SEQUENTIAL = [[0.0, "#440154"], [0.2, "#414487"], [0.4, "#2A788E"], [0.6, "#22A884"], [0.8, "#44BF70"],
              [1.0, "#7AD151"]]
# Blue (class 0) to orange (class 1) through white: the two ends of the palette, safe for deuteranopes.
DIVERGING = [[0.0, PALETTE[0]], [0.5, "#FFFFFF"], [1.0, PALETTE[1]]]

METRICS = {"loss": ("train_loss", "val_loss", "loss"), "acc": ("train_acc", "val_acc", "accuracy (%)")}
X_AXES = {"epoch": "epoch", "wall": "wall time (s)"}
SPLITS = (("train", TRAIN_DASH), ("validation", VAL_DASH))


# ----------------------------------------------------------------------------- one colour per run
def _stable_index(text: str) -> int:
    """A palette index from a string, the same in every process (Python's hash() is salted per process)."""
    return zlib.crc32(text.encode("utf-8")) % len(PALETTE)


def run_colors(runs: pd.DataFrame | Iterable[str]) -> dict[str, str]:
    """run_id -> colour, the same for a run on every page and in every selection.

    A run of a sweep gets PALETTE[position % 8], its variant's position in its sweep: the repeats of a
    variant (same position, other seeds) share a colour, and a run keeps its colour whatever else is
    shown with it (other runs of its sweep, other sweeps, the run alone on Run detail). Two sweeps shown
    together may therefore share colours (each has a position 0); their runs' legend names tell them
    apart. A run without a position (a single run, or one from before positions were stored) gets
    PALETTE[crc32(run_id) % 8], or the next colour that no other run of the frame has: the same on
    every page that shows it with the same runs.

    Given run ids alone (not a frame), the palette is dealt in the order given.
    """
    if not isinstance(runs, pd.DataFrame):
        out: dict[str, str] = {}
        for run_id in runs:
            if run_id not in out:
                out[run_id] = PALETTE[len(out) % len(PALETTE)]
        return out
    positions = (pd.to_numeric(runs["position"], errors="coerce") if "position" in runs.columns
                 else pd.Series(np.nan, index=runs.index))
    colors = {run_id: PALETTE[int(position) % len(PALETTE)]
              for run_id, position in zip(runs["run_id"], positions) if not pd.isna(position)}
    # Runs without a position, in run-id order (the same whatever the frame's order): their hashed
    # colour, or the next one no other run of the frame has while there is one.
    for run_id in sorted((r for r, position in zip(runs["run_id"], positions) if pd.isna(position)), key=str):
        start, taken = _stable_index(str(run_id)), set(colors.values())
        free = [PALETTE[(start + step) % len(PALETTE)] for step in range(len(PALETTE))
                if PALETTE[(start + step) % len(PALETTE)] not in taken]
        colors[run_id] = free[0] if free else PALETTE[start]
    return {run_id: colors[run_id] for run_id in runs["run_id"]}


def chart_config(filename: str = "chart") -> dict:
    """plotly.js's config (dashboard/charts.py): the modebar camera saves a 2x PNG named after the chart."""
    return {"toImageButtonOptions": {"format": "png", "scale": 2, "filename": filename},
            "displaylogo": False}


# ----------------------------------------------------------------------------- shared look
AXIS = {"showline": True, "linewidth": 2, "linecolor": NEUTRAL, "ticks": "outside", "gridcolor": "#E5E5E5"}


@functools.lru_cache(maxsize=None)
def _template() -> dict:
    # A figure built without validation keeps a template's name as a string, which plotly.js ignores:
    # the template goes in whole. The axis look lives in it, so 50 panels' axes carry only their place.
    whole = pio.templates[TEMPLATE].to_plotly_json()
    template = {"layout": whole["layout"], "data": {"scatter": whole["data"]["scatter"]}}   # only scatter here
    for axis in ("xaxis", "yaxis"):
        template["layout"][axis] = {**template["layout"].get(axis, {}), **AXIS}
    return template


def base_layout(title: str, x_title: str | None = None, y_title: str | None = None,
                height: int = HEIGHT) -> dict:
    """The projector look as a plain layout dict: white template, big fonts, title in the figure
    (it travels with a PNG), axes with lines and outside ticks."""
    return {
        "template": copy.deepcopy(_template()), "height": height,
        "title": {"text": title, "font": {"size": TITLE_SIZE}, "x": 0.0, "xanchor": "left"},
        "font": {"size": FONT_SIZE, "family": "Arial, Helvetica, sans-serif", "color": "#111111"},
        "legend": {"font": {"size": FONT_SIZE - 2}},
        "hoverlabel": {"font": {"size": FONT_SIZE - 2}},
        "margin": {"l": 70, "r": 30, "t": 80, "b": 70},
        "xaxis": {"title": {"text": x_title}} if x_title is not None else {},
        "yaxis": {"title": {"text": y_title}} if y_title is not None else {},
    }


def figure(data: list[dict], layout: dict) -> go.Figure:
    """A figure from trace and layout dicts, without plotly's per-property validation."""
    return go.Figure(data=data, layout=layout, _validate=False)


_SHORT_TYPES = {"int8": "i1", "int16": "i2", "int32": "i4", "float64": "f8"}


def typed(values: np.ndarray) -> dict | list:
    """A numeric array as plotly.js's typed-array spec ({'dtype', 'bdata'}: base64 of the bytes), which is
    what plotly writes for numpy arrays anyway, done here in microseconds instead of plotly's ~0.1 ms
    per array; whole numbers (epochs) as the smallest int type. `values()` reads one back."""
    array = np.asarray(values)
    if array.dtype.kind in "iu" or (array.dtype.kind == "f" and len(array) and np.isfinite(array).all()
                                    and (array == np.round(array)).all() and np.abs(array).max() < 2 ** 31):
        top = float(np.abs(array).max()) if len(array) else 0.0
        array = array.astype("<i1" if top < 2 ** 7 else "<i2" if top < 2 ** 15 else "<i4")
    else:
        array = array.astype("<f8")
    return {"dtype": _SHORT_TYPES[str(array.dtype.name)], "bdata": base64.b64encode(array.tobytes()).decode("ascii")}


def values(spec) -> list:
    """The numbers of a trace's x or y: a typed-array spec decoded, anything else as a list."""
    if isinstance(spec, dict) and "bdata" in spec:
        dtype = {v: k for k, v in _SHORT_TYPES.items()}.get(spec["dtype"], spec["dtype"])
        return np.frombuffer(base64.b64decode(spec["bdata"]), dtype=np.dtype(dtype)).tolist()
    return [] if spec is None else list(spec)


def style(fig: go.Figure, title: str, x_title: str | None = None, y_title: str | None = None,
          height: int = HEIGHT) -> go.Figure:
    """The projector look on an existing (validated) figure."""
    fig.update_layout(
        template=TEMPLATE, height=height,
        title={"text": title, "font": {"size": TITLE_SIZE}, "x": 0.0, "xanchor": "left"},
        font={"size": FONT_SIZE, "family": "Arial, Helvetica, sans-serif", "color": "#111111"},
        legend={"font": {"size": FONT_SIZE - 2}},
        hoverlabel={"font": {"size": FONT_SIZE - 2}},
        margin={"l": 70, "r": 30, "t": 80, "b": 70},
    )
    fig.update_xaxes(**AXIS)
    fig.update_yaxes(**AXIS)
    if x_title is not None:
        fig.update_xaxes(title_text=x_title)
    if y_title is not None:
        fig.update_yaxes(title_text=y_title)
    return fig


def _note_layout(layout: dict, text: str) -> dict:
    layout["annotations"] = [{"text": text, "x": 0.5, "y": 0.5, "xref": "paper", "yref": "paper",
                              "showarrow": False, "font": {"size": FONT_SIZE + 2, "color": NEUTRAL}}]
    layout["xaxis"]["visible"] = False
    layout["yaxis"]["visible"] = False
    return layout


def _rgba(color: str, alpha: float) -> str:
    color = color.lstrip("#")
    r, g, b = (int(color[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def _check(metric: str, x: str) -> None:
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    if x not in X_AXES:
        raise ValueError(f"x must be one of {', '.join(X_AXES)}, got {x!r}")


def _epoch_ticks(last_epoch: float | None) -> dict:
    """Whole epochs only, at most about 8 ticks: every epoch up to 8, then every 2nd, 3rd... epoch."""
    if last_epoch is None or not math.isfinite(last_epoch):
        return {}
    if last_epoch <= 8:
        return {"tickmode": "linear", "tick0": 1, "dtick": 1}
    return {"tickmode": "linear", "tick0": 0, "dtick": math.ceil(last_epoch / 8)}


# ----------------------------------------------------------------------------- runs as arrays
@dataclass
class RunCurves:
    """One run's metrics as arrays, by epoch. Accuracies are in percent."""
    run_id: str
    label: str
    epoch: np.ndarray
    x: np.ndarray                   # the epoch, or the wall time at the end of each epoch
    values: dict[str, np.ndarray]   # train_loss, val_loss, train_acc, val_acc


_VALUE_COLUMNS = ("train_loss", "val_loss", "train_acc", "val_acc")


def split_runs(metrics: pd.DataFrame, x: str = "epoch") -> list[RunCurves]:
    """The long metrics frame as one RunCurves per run, in the frame's run order, split once (one
    sort, one pass) instead of filtered per run and per column."""
    if metrics is None or metrics.empty or "run_id" not in metrics.columns:
        return []
    codes, uniques = pd.factorize(metrics["run_id"], sort=False)     # first appearance order
    epochs = pd.to_numeric(metrics["epoch"], errors="coerce").to_numpy(dtype=float)
    order = np.lexsort((epochs, codes))
    bounds = np.searchsorted(codes[order], np.arange(len(uniques) + 1))
    epochs = epochs[order]
    columns = {}
    for column in _VALUE_COLUMNS:
        values = (pd.to_numeric(metrics[column], errors="coerce").to_numpy(dtype=float)[order]
                  if column in metrics.columns else np.full(len(order), np.nan))
        columns[column] = values * 100 if column.endswith("_acc") else values
    seconds = (pd.to_numeric(metrics["seconds"], errors="coerce").to_numpy(dtype=float)[order]
               if x == "wall" and "seconds" in metrics.columns else None)
    names = metrics["name"].to_numpy()[order] if "name" in metrics.columns else None
    out = []
    for i, run_id in enumerate(uniques):
        a, b = bounds[i], bounds[i + 1]
        if a == b:
            continue
        label = names[a] if names is not None else None
        label = label if isinstance(label, str) and label else str(run_id)
        if x == "wall":
            steps = seconds[a:b] if seconds is not None else np.full(b - a, np.nan)
            xs = np.nancumsum(steps)
            xs[np.isnan(steps)] = np.nan
        else:
            xs = epochs[a:b]
        out.append(RunCurves(str(run_id), label, epochs[a:b], xs, {c: v[a:b] for c, v in columns.items()}))
    return out


def run_series(metrics: pd.DataFrame, run_id: str, column: str, x: str) -> tuple[np.ndarray, np.ndarray]:
    """(x values, y values) of one run's metric column, by epoch; x is the epoch or the cumulative
    `seconds` (wall time at the end of each epoch); accuracies become percent."""
    for run in split_runs(metrics[metrics["run_id"] == run_id], x):
        return run.x, run.values[column]
    return np.array([]), np.array([])


def _has_values(values: np.ndarray) -> bool:
    return bool(len(values)) and not bool(np.isnan(values).all())


def _colors_for(run_ids: Sequence[str], colors: Mapping[str, str] | None) -> dict[str, str]:
    fallback = run_colors(list(run_ids))
    return {run_id: (colors or {}).get(run_id, fallback[run_id]) for run_id in fallback}


# ----------------------------------------------------------------------------- readable ranges
def _first_epoch_loss(run: RunCurves) -> float | None:
    stack = np.vstack([run.values["train_loss"], run.values["val_loss"]])
    finite = np.isfinite(stack)
    epochs = np.flatnonzero(finite.any(axis=0))
    if not len(epochs):
        return None
    return float(stack[finite[:, epochs[0]], epochs[0]].max())


def _ceiling_of(runs: list[RunCurves]) -> float | None:
    starts = [s for s in (_first_epoch_loss(run) for run in runs) if s is not None]
    if not starts:
        return None
    typical = sorted(starts)[(len(starts) - 1) // 2]      # the lower median: one diverged run of two is not typical
    if typical <= 0:
        return None
    ordinary = [s for s in starts if s <= DIVERGED_FACTOR * typical]
    ceiling = CEILING_FACTOR * max(ordinary)
    for run in runs:
        for column in ("train_loss", "val_loss"):
            values = run.values[column]
            if (values[~np.isnan(values)] > ceiling).any():
                return ceiling
    return None


def clip_ceiling(metrics: pd.DataFrame) -> float | None:
    """The loss above which points are drawn clipped, or None when no point is that high.

    Rule: a run's start is its largest loss (train or validation) at its first epoch; the typical start
    is the lower median of the runs' starts (with two runs, the smaller one: divergence goes up).
    Runs that start within DIVERGED_FACTOR (10x) of the typical start are ordinary; the ceiling is
    CEILING_FACTOR (3x) the largest start of the ordinary runs. Training brings a loss down, so no
    ordinary curve reaches it, while a run that starts at 22.8 next to runs at 0.3, or climbs later,
    does. Points above it (and infinite ones) are drawn at the ceiling with a distinct marker, and
    the run's legend entry says "clipped, diverged up to <its largest loss>".
    """
    return _ceiling_of(split_runs(metrics))


def _decades(runs: list[RunCurves], ceiling: float | None) -> float:
    values = np.concatenate([run.values[c] for run in runs for c in ("train_loss", "val_loss")] or [np.array([])])
    if ceiling is not None:
        values = np.minimum(values, ceiling)
    values = values[np.isfinite(values) & (values > 0)]
    if not len(values):
        return 0.0
    return float(np.log10(values.max() / values.min()))


def loss_span_decades(metrics: pd.DataFrame, clip: bool = True) -> float:
    """How many decades the plotted losses span (after clipping, when clip): above LOG_DECADES (2) the
    loss charts are logarithmic by default. A page sets its log-scale toggle's default from this:
    `st.toggle("Log scale", value=loss_span_decades(metrics) > figures.LOG_DECADES)`."""
    runs = split_runs(metrics)
    return _decades(runs, _ceiling_of(runs) if clip else None)


def _use_log(log_y: bool | None, metric: str, runs: list[RunCurves], ceiling: float | None) -> bool:
    if metric != "loss":        # accuracy lives on 0..100 %: never logarithmic
        return False
    if log_y is not None:
        return bool(log_y)
    return _decades(runs, ceiling) > LOG_DECADES


def _clip(values: np.ndarray, ceiling: float | None) -> tuple[np.ndarray, np.ndarray]:
    """(values drawn, mask of the clipped ones): values above the ceiling are drawn at it."""
    if ceiling is None:
        return values, np.zeros(len(values), dtype=bool)
    with np.errstate(invalid="ignore"):
        mask = values > ceiling
    if not mask.any():
        return values, mask
    return np.where(mask, ceiling, values), mask


def _clip_marks(run: RunCurves, columns: Sequence[str], ceiling: float, color: str, **where) -> dict | None:
    """One markers trace at the ceiling for a run's clipped points (train and validation), in the run's
    legend group, named 'NAME: clipped, diverged up to MAX'; the hover gives each point's true value."""
    xs, true, split = [], [], []
    for column, (split_name, _) in zip(columns, SPLITS):
        values = run.values[column]
        with np.errstate(invalid="ignore"):
            mask = values > ceiling
        xs.extend(run.x[mask].tolist())
        true.extend(values[mask].tolist())
        split.extend([split_name] * int(mask.sum()))
    if not xs:
        return None
    peak = max(true)
    return {"type": "scatter", "mode": "markers", "x": xs, "y": [ceiling] * len(xs),
            "name": f"{run.label}: clipped, diverged up to {peak:.3g}", "legendgroup": run.run_id,
            "marker": {"symbol": CLIP_SYMBOL, "size": MARKER_SIZE + 7, "color": color,
                       "line": {"color": HIGHLIGHT, "width": 1.5}},
            "customdata": [[s, v] for s, v in zip(split, true)],
            "hovertemplate": (f"{run.label} (%{{customdata[0]}}): clipped, diverged<br>%{{x:.4g}}: loss "
                              f"%{{customdata[1]:.4g}}, drawn at {ceiling:.3g}<extra></extra>"), **where}


def _ceiling_line(ceiling: float, log_y: bool, xref: str = "paper", yref: str = "y") -> tuple[dict, dict]:
    """A dotted line at the ceiling and its label; on a log axis shapes and annotations take log10(y)."""
    y = math.log10(ceiling) if log_y else ceiling
    shape = {"type": "line", "xref": xref, "x0": 0, "x1": 1, "yref": yref, "y0": y, "y1": y,
             "line": {"color": NEUTRAL, "width": 1.5, "dash": "dot"}}
    note = {"text": f"▲ clipped above {ceiling:.3g}", "xref": xref, "x": 1.0, "xanchor": "right", "yref": yref,
            "y": y, "yanchor": "bottom", "showarrow": False, "font": {"size": FONT_SIZE - 4, "color": NEUTRAL}}
    return shape, note


# ----------------------------------------------------------------------------- curves
def _line(xs, ys, name: str, color: str, dash: str, **kwargs) -> dict:
    trace = {"type": "scatter", "x": typed(xs), "y": typed(ys), "name": name, "mode": "lines",
             "line": {"color": color, "width": LINE_WIDTH, "dash": dash}, **kwargs}
    if len(xs) <= MARKERS_UP_TO:
        trace.update(mode="lines+markers", marker={"color": color, "size": MARKER_SIZE})
    return trace


def _style_keys(**where) -> list[dict]:
    """Two legend entries in a neutral colour that explain the line styles; they draw nothing."""
    return [{"type": "scatter", "x": [None], "y": [None], "name": label, "mode": "lines",
             "legendgroup": "line styles", "line": {"color": NEUTRAL, "width": LINE_WIDTH, "dash": dash},
             "hoverinfo": "skip", **where}
            for label, dash in (("train (solid)", TRAIN_DASH), ("validation (dashed)", VAL_DASH))]


def _y_title(metric: str, log_y: bool) -> str:
    return METRICS[metric][2] + (" (log scale)" if log_y else "")


def _overlay_parts(runs: list[RunCurves], metric: str, x: str, palette: Mapping[str, str],
                   log_y: bool | None, clip: bool) -> tuple[list[dict], dict, int]:
    """(traces, extra layout, runs drawn) of the overlay; shared by the Compare and the Runs page."""
    train_col, val_col, _ = METRICS[metric]
    ceiling = _ceiling_of(runs) if clip and metric == "loss" else None
    log = _use_log(log_y, metric, runs, ceiling)
    unit = "%" if metric == "acc" else ""
    traces, marks, drawn = [], [], 0
    for run in runs:
        train, val = run.values[train_col], run.values[val_col]
        if not (_has_values(train) or _has_values(val)):
            continue
        color = palette[run.run_id]
        hover = (f"{run.label}<br>%{{meta}}<br>{X_AXES[x]} %{{x:.4g}}<br>{METRICS[metric][2]} "
                 f"%{{y:.4g}}{unit}<extra></extra>")
        shown_train, _ = _clip(train, ceiling)
        shown_val, _ = _clip(val, ceiling)
        traces.append(_line(run.x, shown_train, run.label, color, TRAIN_DASH, legendgroup=run.run_id,
                            meta="train", hovertemplate=hover))
        traces.append(_line(run.x, shown_val, f"{run.label} (validation)", color, VAL_DASH,
                            legendgroup=run.run_id, showlegend=False, meta="validation", hovertemplate=hover))
        if ceiling is not None:
            mark = _clip_marks(run, (train_col, val_col), ceiling, color)
            if mark is not None:
                marks.append(mark)
        drawn += 1
    layout: dict = {"yaxis": {"type": "log"} if log else {}}
    if ceiling is not None and marks:
        shape, note = _ceiling_line(ceiling, log)
        layout.update(shapes=[shape], annotations=[note])
    return traces + marks, layout, drawn


def _last_epoch(runs: list[RunCurves]) -> float | None:
    epochs = [run.epoch[-1] for run in runs if len(run.epoch)]
    return float(np.nanmax(epochs)) if epochs else None


def curves_overlay(metrics: pd.DataFrame, metric: str = "loss", x: str = "epoch",
                   colors: Mapping[str, str] | None = None, log_y: bool | None = None,
                   clip: bool = True) -> go.Figure:
    """All runs in one chart: per run a solid train line and a dashed validation line in the run's
    colour (one legend entry per run toggles both), plus two neutral keys for the line styles.

    log_y: None = logarithmic when the plotted losses span more than LOG_DECADES decades (never for
    accuracy); clip: divergent losses drawn at clip_ceiling() with a marker, their peak in the legend.
    """
    _check(metric, x)
    runs = split_runs(metrics, x)
    palette = _colors_for([run.run_id for run in runs], colors)
    traces, extra, drawn = _overlay_parts(runs, metric, x, palette, log_y, clip)
    log = extra["yaxis"].get("type") == "log"
    what = "Loss" if metric == "loss" else "Accuracy"
    layout = base_layout(f"{what} (solid: train, dashed: validation)", X_AXES[x], _y_title(metric, log))
    if not drawn:
        return figure([], _note_layout(layout, "No finished epochs yet" if metric == "loss" or metrics.empty
                                       else "No accuracy: regression runs have none"))
    layout["yaxis"].update(extra.pop("yaxis"))
    layout.update(extra)
    if x == "epoch":
        layout["xaxis"].update(_epoch_ticks(_last_epoch(runs)))
    if drawn == 1:      # one run (the run detail page): a legend under the chart leaves it the full width
        layout["legend"].update(orientation="h", x=0.0, y=-0.22, yanchor="top")
        layout["margin"]["b"] = 120
    return figure(traces + _style_keys(), layout)


@functools.lru_cache(maxsize=64)
def _grid(n: int, cols: int) -> tuple:
    """(x domains, y domains) of n panels in rows of cols, top left first, as make_subplots
    lays them out (computed here: make_subplots costs ~0.3 s for 50 panels)."""
    rows = math.ceil(n / cols)
    h_space, v_space = 0.04, min(0.12, 0.35 / rows)
    width = (1 - h_space * (cols - 1)) / cols
    height = (1 - v_space * (rows - 1)) / rows
    def clamp(a: float, b: float) -> tuple[float, float]:       # rounding must not leave [0, 1]
        return max(0.0, round(a, 6)), min(1.0, round(b, 6))

    xs = tuple(clamp(c * (width + h_space), c * (width + h_space) + width) for c in range(cols))
    ys = tuple(clamp(1 - r * (height + v_space) - height, 1 - r * (height + v_space)) for r in range(rows))
    return xs, ys


def _panels_layout(labels: tuple[str, ...], cols: int, x_title: str, y_title: str, title: str,
                   x_extra: dict, y_extra: dict) -> dict:
    """One panel per label, all x axes matching 'x' and all y axes matching 'y'; tick labels on the
    bottom panel of each column and on the first column, the panel titles as annotations. x_extra (tick
    spacing) goes into the template, y_extra (the axis type, which matched axes must share) on each axis."""
    n = len(labels)
    rows = math.ceil(n / cols)
    x_domains, y_domains = _grid(n, cols)
    layout = base_layout(title, height=PANEL_HEIGHT * rows + 140)
    # What every panel's axes share goes into the template: each axis then carries only its place.
    layout["template"]["layout"]["xaxis"].update(x_extra)
    annotations = []
    for i, label in enumerate(labels):
        row, col = divmod(i, cols)
        suffix = "" if i == 0 else str(i + 1)
        bottom = i + cols >= n          # no panel below it
        xaxis = {"domain": list(x_domains[col]), "anchor": f"y{suffix}", "showticklabels": bottom}
        yaxis = {"domain": list(y_domains[row]), "anchor": f"x{suffix}", "showticklabels": col == 0, **y_extra}
        if i:
            xaxis["matches"], yaxis["matches"] = "x", "y"
        if bottom:
            xaxis["title"] = {"text": x_title}
        if col == 0:
            yaxis["title"] = {"text": y_title}
        layout[f"xaxis{suffix}"], layout[f"yaxis{suffix}"] = xaxis, yaxis
        annotations.append({"text": label, "x": sum(x_domains[col]) / 2, "xanchor": "center", "xref": "paper",
                            "y": y_domains[row][1], "yanchor": "bottom", "yref": "paper", "showarrow": False,
                            "font": {"size": FONT_SIZE}})
    layout["annotations"] = annotations
    layout["legend"].update(orientation="h", yanchor="bottom", y=1.0 + 0.25 / rows, x=1.0, xanchor="right")
    return layout


def curves_small_multiples(metrics: pd.DataFrame, metric: str = "loss", x: str = "epoch",
                           colors: Mapping[str, str] | None = None, columns: int = 3,
                           log_y: bool | None = None, clip: bool = True) -> go.Figure:
    """One panel per run (titled by its name), shared axes, train solid and validation dashed;
    log_y and clip as in curves_overlay, one ceiling for all panels."""
    _check(metric, x)
    train_col, val_col, _ = METRICS[metric]
    runs = split_runs(metrics, x)
    palette = _colors_for([run.run_id for run in runs], colors)
    what = "Loss" if metric == "loss" else "Accuracy"
    title = f"{what} per run (solid: train, dashed: validation)"
    if not runs:
        return figure([], _note_layout(base_layout(title), "No finished epochs yet"))
    ceiling = _ceiling_of(runs) if clip and metric == "loss" else None
    log = _use_log(log_y, metric, runs, ceiling)
    cols = max(1, min(columns, len(runs)))
    layout = _panels_layout(tuple(run.label for run in runs), cols, X_AXES[x], _y_title(metric, log), title,
                            _epoch_ticks(_last_epoch(runs)) if x == "epoch" else {},
                            {"type": "log"} if log else {})
    traces = []
    for i, run in enumerate(runs):
        suffix = "" if i == 0 else str(i + 1)
        where = {"xaxis": f"x{suffix}", "yaxis": f"y{suffix}"}
        color = palette[run.run_id]
        for column, (split, dash) in zip((train_col, val_col), SPLITS):
            shown, _ = _clip(run.values[column], ceiling)
            traces.append(_line(run.x, shown, f"{run.label} ({split})", color, dash, showlegend=False,
                                hovertemplate=f"{run.label} ({split})<br>%{{x:.4g}}: %{{y:.4g}}<extra></extra>",
                                **where))
        if ceiling is not None:
            mark = _clip_marks(run, (train_col, val_col), ceiling, color, **where)
            if mark is not None:
                traces.append({**mark, "showlegend": False})
    traces += _style_keys(xaxis="x", yaxis="y")
    return figure(traces, layout)


def overfitting_gap(metrics: pd.DataFrame, x: str = "epoch", colors: Mapping[str, str] | None = None,
                    clip: bool = True) -> go.Figure:
    """Validation loss minus train loss per epoch, one line per run, with the zero line drawn.

    clip: at epochs where a run's loss is above clip_ceiling() its gap means nothing readable; those
    points are drawn at the edge of the other points' range with the clip marker (true gap in the hover).
    """
    _check("loss", x)
    runs = split_runs(metrics, x)
    palette = _colors_for([run.run_id for run in runs], colors)
    layout = base_layout("Overfitting gap: val loss − train loss", X_AXES[x], "val loss − train loss")
    ceiling = _ceiling_of(runs) if clip else None
    gaps, clipped = {}, {}
    for run in runs:
        gaps[run.run_id] = run.values["val_loss"] - run.values["train_loss"]
        _, train_mask = _clip(run.values["train_loss"], ceiling)
        _, val_mask = _clip(run.values["val_loss"], ceiling)
        clipped[run.run_id] = train_mask | val_mask
    kept = np.concatenate([np.abs(gaps[r.run_id][~clipped[r.run_id]]) for r in runs] or [np.array([])])
    kept = kept[np.isfinite(kept)]
    limit = 1.5 * float(kept.max()) if len(kept) and kept.max() > 0 else None
    traces = []
    for run in runs:
        if not len(run.x):
            continue
        gap, mask = gaps[run.run_id], clipped[run.run_id]
        shown = gap.copy()
        if limit is not None and mask.any():
            shown[mask] = np.clip(np.nan_to_num(gap[mask], nan=limit), -limit, limit)
        traces.append(_line(run.x, shown, run.label, palette[run.run_id], "solid", legendgroup=run.run_id,
                            hovertemplate=f"{run.label}<br>{X_AXES[x]} %{{x:.4g}}<br>gap %{{y:.4f}}<extra></extra>"))
        if limit is not None and mask.any():
            traces.append({"type": "scatter", "mode": "markers", "x": run.x[mask], "y": shown[mask],
                           "name": f"{run.label}: clipped, diverged", "legendgroup": run.run_id,
                           "customdata": gap[mask],
                           "marker": {"symbol": CLIP_SYMBOL, "size": MARKER_SIZE + 7,
                                      "color": palette[run.run_id], "line": {"color": HIGHLIGHT, "width": 1.5}},
                           "hovertemplate": f"{run.label}: diverged<br>gap %{{customdata:.4g}}<extra></extra>"})
    if not traces:
        return figure([], _note_layout(layout, "No finished epochs yet"))
    # Above the dotted zero line the model does better on its training data than on new data.
    layout["shapes"] = [{"type": "line", "xref": "paper", "x0": 0, "x1": 1, "yref": "y", "y0": 0, "y1": 0,
                         "line": {"color": NEUTRAL, "width": 2, "dash": "dot"}}]
    if x == "epoch":
        layout["xaxis"].update(_epoch_ticks(_last_epoch(runs)))
    return figure(traces, layout)


def _variants(runs: pd.DataFrame) -> pd.Series:
    """The variant of each run: the `variant` column, falling back to the name, then the run id."""
    names = runs["name"] if "name" in runs.columns else runs["run_id"]
    names = [n if isinstance(n, str) and n else r for n, r in zip(names, runs["run_id"])]
    if "variant" not in runs.columns:
        return pd.Series(names, index=runs.index)
    return pd.Series([v if isinstance(v, str) and v else n for v, n in zip(runs["variant"], names)], index=runs.index)


def curves_grouped(metrics: pd.DataFrame, runs: pd.DataFrame, metric: str = "loss", x: str = "epoch",
                   colors: Mapping[str, str] | None = None, band: str = "minmax",
                   log_y: bool | None = None) -> go.Figure:
    """One mean line per variant (train solid, validation dashed) over its runs (seeds), with a
    translucent band in the variant's colour: band="minmax" spans the seeds' lowest to highest value
    at each epoch, band="std" the mean ± one standard deviation (n-1). A variant with one run is drawn
    as its single line. Variants in the order of `runs` (the runs frame's `variant` column, else the
    name); x="wall" averages the seeds' wall times at each epoch. Divergent means are clipped as in
    curves_overlay."""
    _check(metric, x)
    if band not in ("minmax", "std"):
        raise ValueError(f"band must be 'minmax' or 'std', got {band!r}")
    train_col, val_col, _ = METRICS[metric]
    curves = {run.run_id: run for run in split_runs(metrics, x)}
    variants = _variants(runs)
    palette = _colors_for(list(runs["run_id"]), colors)
    what = "Loss" if metric == "loss" else "Accuracy"
    spread = "min-max" if band == "minmax" else "±1 std"
    title = f"{what}: mean over seeds, band {spread} (solid: train, dashed: validation)"
    groups: dict[str, list[str]] = {}
    for run_id, variant in zip(runs["run_id"], variants):
        if run_id in curves:
            groups.setdefault(variant, []).append(run_id)
    if not groups:
        return figure([], _note_layout(base_layout(title, X_AXES[x], METRICS[metric][2]), "No finished epochs yet"))
    ceiling = _ceiling_of(list(curves.values())) if metric == "loss" else None
    bands, lines, clipped = [], [], False
    for variant, run_ids in groups.items():
        color = palette[run_ids[0]]
        members = [curves[r] for r in run_ids]
        label = variant if len(members) == 1 else f"{variant} ({len(members)} seeds)"
        for column, (split, dash) in zip((train_col, val_col), SPLITS):
            xs, mean, low, high = _aggregate(members, column, band)
            if not _has_values(mean):
                continue
            shown, mask = _clip(mean, ceiling)
            clipped = clipped or bool(mask.any())
            if len(members) > 1:
                low_shown, _ = _clip(low, ceiling)
                high_shown, _ = _clip(high, ceiling)
                common = {"type": "scatter", "x": xs, "mode": "lines", "legendgroup": variant, "showlegend": False,
                          "line": {"color": color, "width": 0}, "hoverinfo": "skip"}
                bands.append({**common, "y": low_shown, "name": f"{variant} ({split}, low)"})
                bands.append({**common, "y": high_shown, "name": f"{variant} ({split}, high)", "fill": "tonexty",
                              "fillcolor": _rgba(color, BAND_OPACITY)})
            unit = "%" if metric == "acc" else ""
            lines.append(_line(xs, shown, label if split == "train" else f"{label} (validation)", color, dash,
                               legendgroup=variant, showlegend=split == "train",
                               customdata=np.stack([low, high], axis=1),
                               hovertemplate=(f"{label} ({split})<br>{X_AXES[x]} %{{x:.4g}}<br>mean %{{y:.4g}}{unit}"
                                              f" ({spread.replace('±1 std', 'mean ± std')}: %{{customdata[0]:.4g}}"
                                              f"–%{{customdata[1]:.4g}}){unit}<extra></extra>")))
    log = _use_log(log_y, metric, list(curves.values()), ceiling)
    layout = base_layout(title, X_AXES[x], _y_title(metric, log))
    layout["legend"]["traceorder"] = "grouped"        # the bands' fills would reverse it
    if log:
        layout["yaxis"]["type"] = "log"
    if x == "epoch":
        layout["xaxis"].update(_epoch_ticks(_last_epoch(list(curves.values()))))
    if clipped:
        shape, note = _ceiling_line(ceiling, log)
        layout.update(shapes=[shape], annotations=[note])
    return figure(bands + lines + _style_keys(), layout)


def _aggregate(members: list[RunCurves], column: str, band: str) -> tuple[np.ndarray, ...]:
    """(x, mean, low, high) over the runs at each epoch that any of them reached; x is the epoch or
    the runs' mean wall time at that epoch. A run that has not reached an epoch yet is left out there."""
    epochs = np.unique(np.concatenate([m.epoch for m in members]))
    epochs = epochs[np.isfinite(epochs)]
    table = np.full((len(members), len(epochs)), np.nan)
    xs = np.full((len(members), len(epochs)), np.nan)
    for i, member in enumerate(members):
        where = np.searchsorted(epochs, member.epoch)
        ok = (where < len(epochs)) & np.isfinite(member.epoch)
        table[i, where[ok]] = member.values[column][ok]
        xs[i, where[ok]] = member.x[ok]
    with np.errstate(invalid="ignore"), _quiet():
        mean = np.nanmean(table, axis=0)
        if band == "minmax":
            low, high = np.nanmin(table, axis=0), np.nanmax(table, axis=0)
        else:
            counts = np.isfinite(table).sum(axis=0)
            std = np.where(counts > 1, np.nanstd(table, axis=0, ddof=1), 0.0)
            low, high = mean - std, mean + std
        x = np.nanmean(xs, axis=0)
    return x, mean, low, high


@contextlib.contextmanager
def _quiet():
    """No 'mean of empty slice' warnings: an epoch no seed reached yet is simply NaN."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


# ----------------------------------------------------------------------------- final results
def _percent_text(value: float) -> str:
    return f"{value:.2f} %"


def _zoomed_range(values: Sequence[float], text_room: float = 2.5) -> list[float]:
    """A range around the values, not from 0: 80.7 and 82.2 % must not look equal. Room on the right
    for the value written next to each dot (text_room paddings)."""
    low, high = float(min(values)), float(max(values))
    pad = max(0.5, 0.15 * (high - low))
    return [max(0.0, low - pad), high + text_room * pad]


def accuracy_dots(runs: pd.DataFrame, colors: Mapping[str, str] | None = None) -> go.Figure:
    """Test accuracy (%) as a dot plot on a zoomed range, one row per run in the runs' order, the
    value written beside each dot, the best run starred and named in the title
    ("Test accuracy · best: dropout, 82.20 %").

    With repeats (several finished runs of one variant, by the `variant` column): one row per variant,
    its seeds as small dots, their mean as a large diamond with a min-max whisker and the mean written;
    the best variant by mean is starred and named ("best: dropout, mean 82.20 % over 3 seeds").
    """
    layout = base_layout("Test accuracy", "test accuracy (%), zoomed: not from 0", None)
    if runs.empty or "test_acc" not in runs.columns:
        return figure([], _note_layout(layout, "No run has a test accuracy yet"))
    percent = pd.to_numeric(runs["test_acc"], errors="coerce").astype(float) * 100
    scored = runs[percent.notna()]
    if scored.empty:
        return figure([], _note_layout(layout, "No run has a test accuracy yet (it comes when a run finishes)"))
    percent = percent[percent.notna()]
    palette = _colors_for(list(runs["run_id"]), colors)
    variants = _variants(scored)
    labels = [name if isinstance(name, str) and name else run_id
              for name, run_id in zip(scored.get("name", scored["run_id"]), scored["run_id"])]
    if len(set(labels)) < len(labels):
        labels = [f"{label} · {run_id}" for label, run_id in zip(labels, scored["run_id"])]
    traces: list[dict] = []
    if variants.duplicated().any():
        rows = list(dict.fromkeys(variants))
        seeds = scored["seed"].tolist() if "seed" in scored.columns else [None] * len(scored)
        traces.append({"type": "scatter", "mode": "markers", "x": percent.tolist(), "y": variants.tolist(),
                       "name": "seeds", "showlegend": False,
                       "marker": {"size": MARKER_SIZE + 3, "opacity": 0.6,
                                  "color": [palette[r] for r in scored["run_id"]]},
                       "customdata": [f"seed {s}" if s is not None and not pd.isna(s) else label
                                      for s, label in zip(seeds, labels)],
                       "hovertemplate": "%{y}, %{customdata}: %{x:.2f} %<extra></extra>"})
        summary = []
        for variant in rows:
            values = percent[(variants == variant).to_numpy()]
            summary.append((variant, float(values.mean()), float(values.min()), float(values.max()), len(values),
                            palette[scored["run_id"][(variants == variant).to_numpy()].iloc[0]]))
        for variant, mean, low, high, n, color in summary:
            traces.append({"type": "scatter", "mode": "markers", "x": [mean], "y": [variant],
                           "name": f"{variant} mean", "showlegend": False,
                           "marker": {"symbol": "diamond", "size": MARKER_SIZE + 11, "color": color,
                                      "line": {"color": "#FFFFFF", "width": 1.5}},
                           "error_x": {"type": "data", "symmetric": False, "array": [high - mean],
                                       "arrayminus": [mean - low], "color": color, "thickness": 2.5, "width": 8},
                           "hovertemplate": (f"{variant}: mean %{{x:.2f}} % over {n} "
                                             f"{'seed' if n == 1 else 'seeds'} ({low:.2f}–{high:.2f} %)<extra></extra>")})
            # The mean written right of the whisker, where no point or line is.
            traces.append({"type": "scatter", "mode": "text", "x": [high], "y": [variant], "name": f"{variant} value",
                           "showlegend": False, "hoverinfo": "skip", "text": [f"   mean {_percent_text(mean)}"],
                           "textposition": "middle right", "textfont": {"size": FONT_SIZE}, "cliponaxis": False})
        best_i = int(np.argmax([mean for _, mean, *_ in summary]))      # the first of equals, in run order
        best, best_mean, _, _, best_n, _ = summary[best_i]
        best_text = f"best: {best}, mean {_percent_text(best_mean)} over {best_n} {'seed' if best_n == 1 else 'seeds'}"
        best_xy = (best_mean, best)
    else:
        rows = labels
        traces.append({"type": "scatter", "mode": "markers+text", "x": percent.tolist(), "y": labels,
                       "name": "test accuracy", "showlegend": False,
                       "marker": {"size": MARKER_SIZE + 9, "color": [palette[r] for r in scored["run_id"]]},
                       "text": [f"  {_percent_text(v)}" for v in percent], "textposition": "middle right",
                       "textfont": {"size": FONT_SIZE}, "cliponaxis": False,
                       "hovertemplate": "%{y}<br>test accuracy %{x:.2f} %<extra></extra>"})
        best_i = int(np.argmax(percent.to_numpy()))
        best_text = f"best: {labels[best_i]}, {_percent_text(float(percent.iloc[best_i]))}"
        best_xy = (float(percent.iloc[best_i]), labels[best_i])
    traces.append({"type": "scatter", "mode": "markers", "x": [best_xy[0]], "y": [best_xy[1]], "name": "best",
                   "showlegend": False, "hoverinfo": "skip",
                   "marker": {"symbol": "star", "size": MARKER_SIZE + 17, "color": "rgba(0,0,0,0)",
                              "line": {"color": HIGHLIGHT, "width": 2.5}}})
    layout["title"]["text"] = f"Test accuracy · {best_text}"
    layout["height"] = max(300, ROW_HEIGHT * len(rows) + 180)
    layout["xaxis"].update(range=_zoomed_range(percent.tolist(), text_room=2.5 if rows is labels else 4.0))
    # First run (or variant) on top; the rows are categories in the frame's order, never sorted as text.
    layout["yaxis"].update(type="category", categoryorder="array", categoryarray=rows, autorange="reversed",
                           showgrid=False)
    layout["margin"]["l"] = 20
    layout["yaxis"]["automargin"] = True
    return figure(traces, layout)



def _natural_key(text: str) -> tuple:
    """'bs=16' < 'bs=64' < 'bs=256': digit runs compare as numbers."""
    return tuple((0, float(part), "") if re.fullmatch(r"\d+(\.\d+)?", part) else (1, 0.0, part)
                 for part in re.split(r"(\d+(?:\.\d+)?)", text) if part)


def _dimension(label: str, column: pd.Series) -> dict:
    """A parallel-coordinates axis: numbers as they are (log10 when they span >= 2 decades, like lr),
    anything else (text, on/off, missing) as evenly spaced categories, numbers inside text in numeric
    order."""
    values = list(column)
    is_bool = all(isinstance(v, (bool, np.bool_)) for v in values)
    numeric = pd.to_numeric(column, errors="coerce") if not is_bool else None
    if numeric is not None and numeric.notna().all() and not column.map(lambda v: isinstance(v, str)).any():
        numbers = numeric.astype(float)
        if (numbers > 0).all() and numbers.max() / numbers.min() >= 100:
            ticks = sorted(set(numbers))
            return {"label": f"{label} (log)", "values": np.log10(numbers).tolist(),
                    "tickvals": np.log10(ticks).tolist(), "ticktext": [f"{t:g}" for t in ticks]}
        out = {"label": label, "values": numbers.tolist()}
        if numbers.nunique() <= 8:
            ticks = sorted(set(numbers))
            out.update(tickvals=ticks, ticktext=[f"{t:g}" for t in ticks])
        return out

    def text(v) -> str:
        if isinstance(v, (bool, np.bool_)):
            return "on" if v else "off"
        if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
            return "none"
        return f"{v:g}" if isinstance(v, float) else str(v)

    texts = [text(v) for v in values]
    categories = sorted(set(texts), key=_natural_key)
    codes = [categories.index(t) for t in texts]
    return {"label": label, "values": codes, "tickvals": list(range(len(categories))), "ticktext": categories,
            "range": [-0.25, max(len(categories) - 1, 0) + 0.25]}


def parallel_coordinates(runs: pd.DataFrame, params: Sequence[str]) -> go.Figure:
    """A first axis naming the runs (in the runs' order, top to bottom), one axis per parameter, then
    test accuracy; one line per run coloured by its test accuracy.

    Runs without a test accuracy (not finished) are left out, since they have no colour.
    """
    title = "Parameters and test accuracy (one line per run)"
    layout = base_layout(title)
    if runs.empty or "test_acc" not in runs.columns:
        return figure([], _note_layout(layout, "No run has a test accuracy yet"))
    scored = runs[pd.to_numeric(runs["test_acc"], errors="coerce").notna()]
    if scored.empty:
        return figure([], _note_layout(layout, "No run has a test accuracy yet"))
    params = [p for p in params if p in scored.columns]
    accuracy = pd.to_numeric(scored["test_acc"]).astype(float) * 100
    names = [name if isinstance(name, str) and name else run_id
             for name, run_id in zip(scored.get("name", scored["run_id"]), scored["run_id"])]
    count = len(names)
    # The first run at the top of the axis: plotly draws the largest value there.
    run_axis = {"label": "run", "values": list(range(count - 1, -1, -1)), "tickvals": list(range(count - 1, -1, -1)),
                "ticktext": names, "range": [-0.25, max(count - 1, 0) + 0.25]}
    dimensions = [run_axis, *(_dimension(p, scored[p]) for p in params)]
    dimensions.append({"label": "test acc (%)", "values": accuracy.tolist()})
    trace = {"type": "parcoords", "dimensions": dimensions,
             "line": {"color": accuracy.tolist(), "colorscale": SEQUENTIAL, "showscale": True,
                      "colorbar": {"title": {"text": "test acc (%)"}, "x": 1.06, "xpad": 30}},
             "labelfont": {"size": FONT_SIZE}, "tickfont": {"size": FONT_SIZE - 2},
             "rangefont": {"size": FONT_SIZE - 6}}
    # Room above for the axis labels, left for the run names, right of the last axis for its ticks.
    longest = max((len(n) for n in names), default=4)
    layout["margin"] = {"l": min(300, 40 + 10 * longest), "r": 150, "t": 130, "b": 40}
    return figure([trace], layout)


# ----------------------------------------------------------------------------- one run
def cell_font_size(columns: int, widest: int, plot_width_px: int) -> int:
    """The largest font (px, at most FONT_SIZE + 2, at least 9) at which `widest` digits fit a cell
    of a plot area `plot_width_px` wide split into `columns` cells (a digit is ~0.62 em wide)."""
    cell = plot_width_px / max(columns, 1)
    return int(max(9, min(FONT_SIZE + 2, cell * 0.85 / (0.62 * max(widest, 1)))))


def confusion_matrix_figure(matrix: pd.DataFrame, title: str = "Confusion matrix",
                            plot_width_px: int = 320) -> go.Figure:
    """Counts as a heatmap: true classes down (first class on top), predicted classes across. The
    numbers' font shrinks until the widest count fits its cell in a plot area of `plot_width_px`
    (the page's column minus the axis labels; 1135 in ten classes spilled out at 1280x720)."""
    counts = matrix.to_numpy()
    totals = counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(totals > 0, counts / np.maximum(totals, 1) * 100, 0.0)
    labels_x = [str(c) for c in matrix.columns]
    labels_y = [str(i) for i in matrix.index]
    fig = go.Figure(go.Heatmap(
        z=counts, x=labels_x, y=labels_y, customdata=share, colorscale="Blues", showscale=False,
        text=counts, texttemplate="%{text}",
        textfont={"size": cell_font_size(len(matrix.columns), len(str(int(counts.max()))) if counts.size else 1,
                                         plot_width_px)},
        hovertemplate="true %{y}<br>predicted %{x}<br>%{z} samples (%{customdata:.1f} % of the row)<extra></extra>"))
    side = max(HEIGHT, 60 * len(labels_y) + 200)
    style(fig, title, "predicted class", "true class", height=side)
    fig.update_yaxes(autorange="reversed", type="category", showgrid=False)
    fig.update_xaxes(type="category", side="bottom", showgrid=False)
    return fig


def per_class_accuracy_figure(per_class: pd.DataFrame, title: str = "Accuracy per class") -> go.Figure:
    """Horizontal bars of accuracy (%) per class, labelled; correct/total in the hover."""
    percent = per_class["accuracy"].astype(float).to_numpy() * 100
    fig = go.Figure(go.Bar(
        y=[str(c) for c in per_class["class"]], x=percent, orientation="h", marker={"color": PALETTE[0]},
        text=[f"{p:.1f} %" for p in percent], textposition="outside", cliponaxis=False, showlegend=False,
        customdata=np.stack([per_class["correct"], per_class["samples"]], axis=1),
        hovertemplate="%{y}<br>%{x:.1f} % (%{customdata[0]} of %{customdata[1]})<extra></extra>"))
    style(fig, title, "accuracy (%)", None, height=max(300, 50 * len(per_class) + 180))
    fig.update_xaxes(range=[0, 122], tickvals=[0, 20, 40, 60, 80, 100])
    fig.update_yaxes(autorange="reversed", type="category")
    return fig


def decision_boundary_figure(grid: tuple, points: tuple, class_names: Sequence[str] = ("class 0", "class 1"),
                             title: str = "Decision boundary") -> go.Figure:
    """The model's P(class 1) over the plane, its 0.5 contour in black, and the points on top.

    grid: (xs, ys, prob) from trainlib.analysis.decision_grid; points: (xy (N, 2), labels (N,)).
    Classes differ by marker shape as well as colour.
    """
    xs, ys, prob = grid
    xy, labels = points
    xy, labels = np.asarray(xy), np.asarray(labels)
    fig = go.Figure()
    fig.add_trace(go.Contour(x=xs, y=ys, z=prob, zmin=0, zmax=1, colorscale=DIVERGING, opacity=0.55,
                             contours={"start": 0, "end": 1, "size": 0.1}, line={"width": 0},
                             colorbar={"title": {"text": "P(class 1)"}}, name="P(class 1)",
                             hovertemplate="x %{x:.2f}<br>y %{y:.2f}<br>P(class 1) %{z:.2f}<extra></extra>"))
    fig.add_trace(go.Contour(x=xs, y=ys, z=prob, showscale=False, name="boundary (P = 0.5)",
                             contours={"coloring": "none", "start": 0.5, "end": 0.5, "size": 1},
                             line={"color": "#000000", "width": LINE_WIDTH + 1}, hoverinfo="skip",
                             showlegend=True))
    # A dark outline keeps each point visible over the region of its own colour.
    for cls, (symbol, color) in enumerate((("circle", PALETTE[0]), ("diamond", PALETTE[1]))):
        mask = labels == cls
        name = class_names[cls] if cls < len(class_names) else f"class {cls}"
        fig.add_trace(go.Scatter(x=xy[mask, 0], y=xy[mask, 1], mode="markers", name=name,
                                 marker={"symbol": symbol, "color": color, "size": 8,
                                         "line": {"color": "#222222", "width": 1}}))
    style(fig, title, "x₁", "x₂", height=560)
    fig.update_yaxes(scaleanchor="x", scaleratio=1)
    fig.update_layout(legend={"orientation": "h", "y": -0.18, "x": 0.0})
    return fig


def enlarge(image: np.ndarray, factor: int = 4) -> np.ndarray:
    """Nearest-neighbour upscaling, so a 28x28 digit stays crisp (not blurred) when shown large."""
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)
