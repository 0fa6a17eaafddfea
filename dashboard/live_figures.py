"""Figures of the Runs and LR finder pages: small, plain, readable on a projector.

    group = tables.in_run_order(runs_of_the_sweep)
    fig = live_figure(store.load_metrics(list(group["run_id"])), group, figures.run_colors(group))
    fig = lr_finder_figure(result.frame, result.suggested_lr)  # loss vs lr on a log axis, suggestion marked

Pure functions of DataFrames; the pages only hand the figure to dashboard/charts.py.
"""
from __future__ import annotations

import math
from typing import Mapping

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from dashboard import figures

FONT_SIZE = 16
LIVE_HEIGHT = 400          # px; the legend sits above the plot


def live_figure(metrics: pd.DataFrame, runs: pd.DataFrame, colors: Mapping[str, str] | None = None,
                log_y: bool | None = None, height: int = LIVE_HEIGHT) -> go.Figure:
    """The Runs page's curves while a sweep trains and after: per run a solid train and a dashed
    validation loss line in the run's colour, in the order of `runs` (tables.in_run_order), with

    - the best epoch starred on the validation line (its lowest validation loss; hover "best epoch 5"),
    - an early stop marked: a run whose state is finished with fewer epochs done than planned
      (`epochs`) gets a square on its train line's last point labelled "early stop at epoch N",

    log_y and clipping of divergent runs as in figures.curves_overlay, the fonts of figures.py.
    """
    order = [run_id for run_id in runs["run_id"]] if len(runs) else []
    if len(metrics) and order:
        rank = {run_id: i for i, run_id in enumerate(order)}
        metrics = metrics[metrics["run_id"].isin(rank)]
        metrics = metrics.iloc[np.argsort(metrics["run_id"].map(rank).to_numpy(), kind="stable")]
    curves = figures.split_runs(metrics, "epoch")
    palette = figures._colors_for([run.run_id for run in curves], colors)
    traces, extra, drawn = figures._overlay_parts(curves, "loss", "epoch", palette, log_y, clip=True)
    log = extra["yaxis"].get("type") == "log"
    layout = figures.base_layout("", "epoch", figures._y_title("loss", log), height=height)
    del layout["title"]
    layout["margin"] = {"l": 70, "r": 20, "t": 10, "b": 60}
    layout["legend"].update(orientation="h", yanchor="bottom", y=1.02, x=0.0)
    if not drawn:
        return figures.figure([], figures._note_layout(layout, "No finished epochs yet"))
    layout["margin"]["t"] = 70
    layout["yaxis"].update(extra.pop("yaxis"))
    layout.update(extra)
    layout["xaxis"].update(figures._epoch_ticks(figures._last_epoch(curves)))
    facts = runs.set_index("run_id", drop=False) if len(runs) else runs
    ceiling = figures._ceiling_of(curves)        # marks of a clipped run sit on its clipped line
    marks = []
    for run in curves:
        color = palette[run.run_id]
        val = run.values["val_loss"]
        if np.isfinite(val).any():
            best = int(np.nanargmin(np.where(np.isfinite(val), val, np.nan)))
            epoch = int(run.epoch[best])
            y = float(val[best]) if ceiling is None else min(float(val[best]), ceiling)
            marks.append({"type": "scatter", "mode": "markers", "x": [epoch], "y": [y],
                          "name": f"{run.label}: best epoch {epoch}", "legendgroup": run.run_id, "showlegend": False,
                          "marker": {"symbol": "star", "size": 20, "color": color,
                                     "line": {"color": figures.HIGHLIGHT, "width": 1.5}},
                          "hovertemplate": f"{run.label}<br>best epoch {epoch}<br>val loss {val[best]:.4g}<extra></extra>"})
        stop = _early_stop_epoch(facts, run)
        if stop is not None:
            # On the train line's last point: the best-epoch star is often the validation line's last one.
            train, _ = figures._clip(run.values["train_loss"], ceiling)
            last = np.flatnonzero(np.isfinite(train))
            y = float(train[last[-1]]) if len(last) else float(np.nanmax(val))
            text = f"early stop at epoch {stop}"
            marks.append({"type": "scatter", "mode": "markers+text", "x": [stop], "y": [y],
                          "name": f"{run.label}: {text}", "legendgroup": run.run_id, "showlegend": False,
                          "marker": {"symbol": "square", "size": 14, "color": color,
                                     "line": {"color": figures.HIGHLIGHT, "width": 1.5}},
                          "text": [text], "textposition": "top left", "cliponaxis": False,
                          "textfont": {"size": figures.FONT_SIZE - 4, "color": color},
                          "hovertemplate": f"{run.label}<br>{text}<extra></extra>"})
    return figures.figure(traces + marks + figures._style_keys(), layout)


def _early_stop_epoch(facts: pd.DataFrame, run: figures.RunCurves) -> int | None:
    """The last epoch of a run that finished before its planned epochs (early stopping), else None."""
    if not len(facts) or run.run_id not in facts.index or not len(run.epoch):
        return None
    row = facts.loc[run.run_id]
    planned = pd.to_numeric(row.get("epochs"), errors="coerce")
    done = int(np.nanmax(run.epoch))
    if row.get("state") != "finished" or pd.isna(planned) or done >= int(planned):
        return None
    return done


def _layout(fig: go.Figure, height: int) -> go.Figure:
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=40, b=10), font=dict(size=FONT_SIZE),
                      template="plotly_white", legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0))
    return fig


def lr_finder_figure(frame: pd.DataFrame, suggested_lr: float | None, height: int = 420) -> go.Figure:
    """Loss against learning rate (log x): raw loss faint, smoothed loss bold, the suggested lr as a
    dashed vertical line. The y axis stops a little above the starting loss, so the blow-up at the
    right end does not flatten the interesting part."""
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=frame["lr"], y=frame["loss"], mode="lines", name="loss",
                             line=dict(width=1, color="rgba(120,120,120,0.5)")))
    fig.add_trace(go.Scatter(x=frame["lr"], y=frame["smoothed_loss"], mode="lines", name="smoothed loss",
                             line=dict(width=4, color="#1f77b4")))
    fig.update_xaxes(type="log", title_text="learning rate (log scale)")
    fig.update_yaxes(title_text="training loss")
    smoothed = frame["smoothed_loss"][frame["smoothed_loss"].map(math.isfinite)]
    low, top = (float(smoothed.min()), float(smoothed.max())) if len(smoothed) else (0.0, 1.0)
    if len(smoothed) and float(smoothed.iloc[0]) > low:
        top = min(top, float(smoothed.iloc[0]) * 1.3)      # a little above the starting loss
        fig.update_yaxes(range=[low - 0.05 * (top - low), top])
    if suggested_lr is not None:
        # A trace, not a shape: shapes on a log axis want log10 coordinates, a trace takes the lr as is.
        fig.add_trace(go.Scatter(x=[suggested_lr, suggested_lr], y=[low - 0.05 * (top - low), top], mode="lines",
                                 name=f"suggested lr {suggested_lr:.2g}",
                                 line=dict(width=3, dash="dash", color="#d62728")))
    return _layout(fig, height)
