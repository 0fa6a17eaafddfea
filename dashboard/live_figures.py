"""Figures of the Runs and LR finder pages: small, plain, readable on a projector.

    fig = live_loss_figure(store.load_metrics(run_ids))        # val loss per epoch, one line per run
    fig = lr_finder_figure(result.frame, result.suggested_lr)  # loss vs lr on a log axis, suggestion marked

Pure functions of DataFrames; the pages only hand the figure to st.plotly_chart.
"""
from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go

FONT_SIZE = 16


def _layout(fig: go.Figure, height: int) -> go.Figure:
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=40, b=10), font=dict(size=FONT_SIZE),
                      template="plotly_white", legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0))
    return fig


def live_loss_figure(metrics: pd.DataFrame, value: str = "val_loss", height: int = 280) -> go.Figure:
    """One line per run (legend: its name) of `value` per epoch, from a long metrics table
    (columns run_id, name, epoch, value) as RunStore.load_metrics returns it."""
    fig = go.Figure()
    if not metrics.empty and value in metrics:
        for run_id, run in metrics.groupby("run_id", sort=False):
            run = run.sort_values("epoch")
            name = str(run["name"].iloc[0]) if "name" in run else str(run_id)
            fig.add_trace(go.Scatter(x=run["epoch"], y=run[value], mode="lines+markers", name=name,
                                     line=dict(width=3), marker=dict(size=8)))
    fig.update_xaxes(title_text="epoch", dtick=1 if metrics.empty or metrics["epoch"].max() <= 20 else None)
    fig.update_yaxes(title_text=value.replace("_", " "))
    return _layout(fig, height)


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
