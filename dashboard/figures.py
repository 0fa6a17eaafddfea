"""Plotly figures for comparing runs, as pure functions of DataFrames (testable without a browser).

    colors = run_colors(runs["run_id"])                      # one colour per run, by run order
    fig = curves_overlay(metrics, "loss", "epoch", colors)   # metrics: RunStore.load_metrics(...)
    st.plotly_chart(fig, theme=None, config=chart_config("loss"))

Made for a projector: large text, thick lines, the Okabe-Ito colour-blind-safe palette, and line
styles (solid train, dashed validation) that carry meaning without colour. A run keeps its colour
in every chart because every function takes the same `colors` mapping (run_id -> colour).
`metrics` frames are long: one row per run and epoch with run_id, name and the trainlib metric
columns; `runs` frames are RunStore.list_runs() rows. The `name` column is the label shown.
"""
from __future__ import annotations

import math
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

# Okabe & Ito (2008), ordered for a white background: orange and vermillion apart, the pale yellow last.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#000000", "#F0E442")
TEMPLATE = "plotly_white"
FONT_SIZE = 18             # px; readable from the back of a classroom
TITLE_SIZE = 22
LINE_WIDTH = 3
MARKER_SIZE = 7
HEIGHT = 480               # px of one chart
PANEL_HEIGHT = 300         # px of one row of small multiples
NEUTRAL = "#444444"        # line-style keys and reference lines
TRAIN_DASH, VAL_DASH = "solid", "dash"
# Viridis (perceptually uniform, colour-blind safe) without its pale yellow end, which vanishes on white.
SEQUENTIAL = [[0.0, "#440154"], [0.2, "#414487"], [0.4, "#2A788E"], [0.6, "#22A884"], [0.8, "#44BF70"],
              [1.0, "#7AD151"]]
# Blue (class 0) to orange (class 1) through white: the two ends of the palette, safe for deuteranopes.
DIVERGING = [[0.0, PALETTE[0]], [0.5, "#FFFFFF"], [1.0, PALETTE[1]]]

METRICS = {"loss": ("train_loss", "val_loss", "loss"), "acc": ("train_acc", "val_acc", "accuracy (%)")}
X_AXES = {"epoch": "epoch", "wall": "wall time (s)"}


# ----------------------------------------------------------------------------- shared look
def run_colors(run_ids: Iterable[str]) -> dict[str, str]:
    """run_id -> colour, in the order given; the palette repeats after len(PALETTE) runs."""
    out: dict[str, str] = {}
    for run_id in run_ids:
        if run_id not in out:
            out[run_id] = PALETTE[len(out) % len(PALETTE)]
    return out


def chart_config(filename: str = "chart") -> dict:
    """The st.plotly_chart config: the modebar camera saves a 2x PNG named after the chart."""
    return {"toImageButtonOptions": {"format": "png", "scale": 2, "filename": filename},
            "displaylogo": False}


def style(fig: go.Figure, title: str, x_title: str | None = None, y_title: str | None = None,
          height: int = HEIGHT) -> go.Figure:
    """The projector look: white template, big fonts, title in the figure (it travels with a PNG)."""
    fig.update_layout(
        template=TEMPLATE, height=height,
        title={"text": title, "font": {"size": TITLE_SIZE}, "x": 0.0, "xanchor": "left"},
        font={"size": FONT_SIZE, "family": "Arial, Helvetica, sans-serif", "color": "#111111"},
        legend={"font": {"size": FONT_SIZE - 2}},
        hoverlabel={"font": {"size": FONT_SIZE - 2}},
        margin={"l": 70, "r": 30, "t": 80, "b": 70},
    )
    fig.update_xaxes(showline=True, linewidth=2, linecolor=NEUTRAL, ticks="outside", gridcolor="#E5E5E5")
    fig.update_yaxes(showline=True, linewidth=2, linecolor=NEUTRAL, ticks="outside", gridcolor="#E5E5E5")
    if x_title is not None:
        fig.update_xaxes(title_text=x_title)
    if y_title is not None:
        fig.update_yaxes(title_text=y_title)
    return fig


def _note(fig: go.Figure, text: str) -> go.Figure:
    """A centred message in place of data ('no finished epochs yet')."""
    fig.add_annotation(text=text, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False,
                       font={"size": FONT_SIZE + 2, "color": NEUTRAL})
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig


def _colors_for(run_ids: Sequence[str], colors: Mapping[str, str] | None) -> dict[str, str]:
    fallback = run_colors(run_ids)
    return {run_id: (colors or {}).get(run_id, fallback[run_id]) for run_id in fallback}


def _runs_in_order(frame: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(frame["run_id"])) if len(frame) else []


def _label(frame: pd.DataFrame, run_id: str) -> str:
    if "name" in frame.columns and len(frame):
        value = frame["name"].iloc[0]
        if isinstance(value, str) and value:
            return value
    return run_id


def _check(metric: str, x: str) -> None:
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    if x not in X_AXES:
        raise ValueError(f"x must be one of {', '.join(X_AXES)}, got {x!r}")


def run_series(metrics: pd.DataFrame, run_id: str, column: str, x: str) -> tuple[np.ndarray, np.ndarray]:
    """(x values, y values) of one run's metric column, by epoch; x is the epoch or the cumulative
    `seconds` (wall time at the end of each epoch); accuracies become percent."""
    frame = metrics[metrics["run_id"] == run_id].sort_values("epoch")
    xs = frame["epoch"] if x == "epoch" else frame["seconds"].astype(float).cumsum()
    ys = pd.to_numeric(frame[column], errors="coerce").astype(float)
    if column.endswith("_acc"):
        ys = ys * 100
    return xs.to_numpy(), ys.to_numpy()


def _has_values(values: np.ndarray) -> bool:
    return bool(len(values)) and not bool(np.isnan(values).all())


def _epoch_ticks(fig: go.Figure, metrics: pd.DataFrame, x: str) -> None:
    """Whole epochs only, at most about 8 ticks: every epoch up to 8, then every 2nd, 3rd... epoch."""
    if x != "epoch" or metrics.empty:
        return
    last = int(pd.to_numeric(metrics["epoch"]).max())
    if last <= 8:
        fig.update_xaxes(tickmode="linear", tick0=1, dtick=1)
    else:
        fig.update_xaxes(tickmode="linear", tick0=0, dtick=math.ceil(last / 8))


def _line(xs, ys, name: str, color: str, dash: str, **kwargs) -> go.Scatter:
    return go.Scatter(x=xs, y=ys, name=name, mode="lines+markers",
                      line={"color": color, "width": LINE_WIDTH, "dash": dash},
                      marker={"color": color, "size": MARKER_SIZE}, **kwargs)


def _style_keys(fig: go.Figure, **where) -> None:
    """Two legend entries in a neutral colour that explain the line styles; they draw nothing."""
    for label, dash in (("train (solid)", TRAIN_DASH), ("validation (dashed)", VAL_DASH)):
        fig.add_trace(go.Scatter(x=[None], y=[None], name=label, mode="lines", legendgroup="line styles",
                                 line={"color": NEUTRAL, "width": LINE_WIDTH, "dash": dash},
                                 hoverinfo="skip"), **where)


# ----------------------------------------------------------------------------- curves
def curves_overlay(metrics: pd.DataFrame, metric: str = "loss", x: str = "epoch",
                   colors: Mapping[str, str] | None = None) -> go.Figure:
    """All runs in one chart: per run a solid train line and a dashed validation line in the run's
    colour (one legend entry per run toggles both), plus two neutral keys for the line styles."""
    _check(metric, x)
    train_col, val_col, y_title = METRICS[metric]
    run_ids = _runs_in_order(metrics)
    palette = _colors_for(run_ids, colors)
    fig = go.Figure()
    drawn = 0
    for run_id in run_ids:
        frame = metrics[metrics["run_id"] == run_id]
        label = _label(frame, run_id)
        xs, train = run_series(metrics, run_id, train_col, x)
        _, val = run_series(metrics, run_id, val_col, x)
        if not (_has_values(train) or _has_values(val)):
            continue
        unit = "%" if metric == "acc" else ""
        hover = f"{label}<br>%{{meta}}<br>{X_AXES[x]} %{{x:.4g}}<br>{METRICS[metric][2]} %{{y:.4g}}{unit}<extra></extra>"
        fig.add_trace(_line(xs, train, label, palette[run_id], TRAIN_DASH, legendgroup=run_id,
                            meta="train", hovertemplate=hover))
        fig.add_trace(_line(xs, val, f"{label} (validation)", palette[run_id], VAL_DASH, legendgroup=run_id,
                            showlegend=False, meta="validation", hovertemplate=hover))
        drawn += 1
    what = "Loss" if metric == "loss" else "Accuracy"
    style(fig, f"{what} (solid: train, dashed: validation)", X_AXES[x], y_title)
    if not drawn:
        return _note(fig, "No finished epochs yet" if metric == "loss" or metrics.empty
                     else "No accuracy: regression runs have none")
    _style_keys(fig)
    _epoch_ticks(fig, metrics, x)
    if drawn == 1:      # one run (the run detail page): a legend under the chart leaves it the full width
        fig.update_layout(legend={"orientation": "h", "x": 0.0, "y": -0.22, "yanchor": "top"},
                          margin={"b": 120})
    return fig


def curves_small_multiples(metrics: pd.DataFrame, metric: str = "loss", x: str = "epoch",
                           colors: Mapping[str, str] | None = None, columns: int = 3) -> go.Figure:
    """One panel per run (titled by its name), shared axes, train solid and validation dashed."""
    _check(metric, x)
    train_col, val_col, y_title = METRICS[metric]
    run_ids = _runs_in_order(metrics)
    palette = _colors_for(run_ids, colors)
    what = "Loss" if metric == "loss" else "Accuracy"
    title = f"{what} per run (solid: train, dashed: validation)"
    if not run_ids:
        return _note(style(go.Figure(), title), "No finished epochs yet")
    cols = max(1, min(columns, len(run_ids)))
    rows = math.ceil(len(run_ids) / cols)
    labels = [_label(metrics[metrics["run_id"] == run_id], run_id) for run_id in run_ids]
    fig = make_subplots(rows=rows, cols=cols, shared_xaxes="all", shared_yaxes="all", subplot_titles=labels,
                        horizontal_spacing=0.04, vertical_spacing=min(0.12, 0.35 / rows))
    for i, run_id in enumerate(run_ids):
        row, col = i // cols + 1, i % cols + 1
        xs, train = run_series(metrics, run_id, train_col, x)
        _, val = run_series(metrics, run_id, val_col, x)
        fig.add_trace(_line(xs, train, f"{labels[i]} (train)", palette[run_id], TRAIN_DASH, showlegend=False),
                      row=row, col=col)
        fig.add_trace(_line(xs, val, f"{labels[i]} (validation)", palette[run_id], VAL_DASH, showlegend=False),
                      row=row, col=col)
    _style_keys(fig, row=1, col=1)
    style(fig, title, height=PANEL_HEIGHT * rows + 140)
    fig.update_annotations(font={"size": FONT_SIZE})          # the panel titles
    # Shared axes hide tick labels above the bottom row; a panel with none below it needs its own.
    for i in range(len(run_ids)):
        if i + cols >= len(run_ids):
            fig.update_xaxes(showticklabels=True, title_text=X_AXES[x], row=i // cols + 1, col=i % cols + 1)
    _epoch_ticks(fig, metrics, x)
    for row in range(1, rows + 1):
        fig.update_yaxes(title_text=y_title, row=row, col=1)
    fig.update_layout(legend={"orientation": "h", "yanchor": "bottom", "y": 1.0 + 0.25 / rows, "x": 1.0,
                              "xanchor": "right"})
    return fig


def overfitting_gap(metrics: pd.DataFrame, x: str = "epoch", colors: Mapping[str, str] | None = None) -> go.Figure:
    """Validation loss minus train loss per epoch, one line per run, with the zero line drawn."""
    _check("loss", x)
    run_ids = _runs_in_order(metrics)
    palette = _colors_for(run_ids, colors)
    fig = go.Figure()
    for run_id in run_ids:
        xs, train = run_series(metrics, run_id, "train_loss", x)
        _, val = run_series(metrics, run_id, "val_loss", x)
        if not len(xs):
            continue
        label = _label(metrics[metrics["run_id"] == run_id], run_id)
        fig.add_trace(_line(xs, val - train, label, palette[run_id], "solid",
                            hovertemplate=f"{label}<br>{X_AXES[x]} %{{x:.4g}}<br>gap %{{y:.4f}}<extra></extra>"))
    style(fig, "Overfitting gap: val loss − train loss", X_AXES[x], "val loss − train loss")
    if not fig.data:
        return _note(fig, "No finished epochs yet")
    # Above the dotted zero line the model does better on its training data than on new data.
    fig.add_hline(y=0, line={"color": NEUTRAL, "width": 2, "dash": "dot"})
    _epoch_ticks(fig, metrics, x)
    return fig


# ----------------------------------------------------------------------------- final results
def test_accuracy_bars(runs: pd.DataFrame, colors: Mapping[str, str] | None = None) -> go.Figure:
    """Test accuracy in percent, one labelled bar per run that has one, in the runs' order."""
    palette = _colors_for(list(runs["run_id"]) if len(runs) else [], colors)
    fig = go.Figure()
    style(fig, "Test accuracy", None, "test accuracy (%)")
    if runs.empty or "test_acc" not in runs.columns:
        return _note(fig, "No run has a test accuracy yet")
    scored = runs[pd.to_numeric(runs["test_acc"], errors="coerce").notna()]
    if scored.empty:
        return _note(fig, "No run has a test accuracy yet (it comes when a run finishes)")
    percent = pd.to_numeric(scored["test_acc"]).astype(float).to_numpy() * 100
    names = [str(name) if isinstance(name, str) and name else run_id
             for name, run_id in zip(scored.get("name", scored["run_id"]), scored["run_id"])]
    fig.add_trace(go.Bar(x=names, y=percent, marker={"color": [palette[r] for r in scored["run_id"]]},
                         text=[f"{value:.2f} %" for value in percent], textposition="outside",
                         textfont={"size": FONT_SIZE}, cliponaxis=False, showlegend=False,
                         hovertemplate="%{x}<br>test accuracy %{y:.2f} %<extra></extra>"))
    # From zero, honestly; the labels carry the small differences.
    fig.update_yaxes(range=[0, 112], tickvals=[0, 20, 40, 60, 80, 100])
    fig.update_xaxes(type="category")
    return fig


def _dimension(label: str, column: pd.Series) -> dict:
    """A parallel-coordinates axis: numbers as they are (log10 when they span >= 2 decades, like lr),
    anything else (text, on/off, missing) as evenly spaced categories."""
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
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return "none"
        return f"{v:g}" if isinstance(v, float) else str(v)

    texts = [text(v) for v in values]
    categories = sorted(set(texts))
    codes = [categories.index(t) for t in texts]
    return {"label": label, "values": codes, "tickvals": list(range(len(categories))), "ticktext": categories,
            "range": [-0.25, max(len(categories) - 1, 0) + 0.25]}


def parallel_coordinates(runs: pd.DataFrame, params: Sequence[str]) -> go.Figure:
    """One axis per parameter plus test accuracy, one line per run coloured by its test accuracy.

    Runs without a test accuracy (not finished) are left out, since they have no colour.
    """
    fig = go.Figure()
    title = "Parameters and test accuracy (one line per run)"
    if runs.empty or "test_acc" not in runs.columns:
        return _note(style(fig, title), "No run has a test accuracy yet")
    scored = runs[pd.to_numeric(runs["test_acc"], errors="coerce").notna()]
    if scored.empty:
        return _note(style(fig, title), "No run has a test accuracy yet")
    params = [p for p in params if p in scored.columns]
    accuracy = pd.to_numeric(scored["test_acc"]).astype(float) * 100
    dimensions = [_dimension(p, scored[p]) for p in params]
    dimensions.append({"label": "test acc (%)", "values": accuracy.tolist()})
    fig.add_trace(go.Parcoords(
        dimensions=dimensions,
        line={"color": accuracy.tolist(), "colorscale": SEQUENTIAL, "showscale": True,
              "colorbar": {"title": {"text": "test acc (%)"}, "x": 1.06, "xpad": 30}},
        labelfont={"size": FONT_SIZE}, tickfont={"size": FONT_SIZE - 2},
        rangefont={"size": FONT_SIZE - 6}))
    style(fig, title)
    # Room above for the axis labels, right of the last axis for its ticks before the colour bar.
    fig.update_layout(margin={"l": 90, "r": 150, "t": 130, "b": 40})
    return fig


# ----------------------------------------------------------------------------- one run
def confusion_matrix_figure(matrix: pd.DataFrame, title: str = "Confusion matrix") -> go.Figure:
    """Counts as a heatmap: true classes down (first class on top), predicted classes across."""
    counts = matrix.to_numpy()
    totals = counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(totals > 0, counts / np.maximum(totals, 1) * 100, 0.0)
    labels_x = [str(c) for c in matrix.columns]
    labels_y = [str(i) for i in matrix.index]
    fig = go.Figure(go.Heatmap(
        z=counts, x=labels_x, y=labels_y, customdata=share, colorscale="Blues", showscale=False,
        text=counts, texttemplate="%{text}", textfont={"size": FONT_SIZE + 2},
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
