"""Plotly figures for the report: bars with counts, sunbursts for hierarchies, heatmaps for
cross-tabs and residuals, a Sankey for stage → symptom → root cause, lines for evolution
and survival. Each returns a ``plotly.graph_objects.Figure`` (or None when there is nothing
to draw)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

HEIGHT = 420
_LAYOUT = dict(margin=dict(l=10, r=10, t=50, b=10), template="plotly_white", height=HEIGHT,
               font=dict(size=12))  # fmt: skip


def _short(s: str, n: int = 40) -> str:
    s = str(s)
    return s if len(s) <= n else s[: n - 1] + "…"


def _labels(values, n: int) -> list[str]:
    """Shortened axis labels that stay distinct: plotly puts equal category labels on one row
    or column, so two long names sharing a prefix ("Configuration and Parameter Setting
    Errors - Inference …" / "… - Fine-tuning …") would be drawn on top of each other. A
    colliding label keeps its end instead, and the full name when that collides too."""
    full = [str(v) for v in values]
    short = [_short(v, n) for v in full]
    out = [("…" + v[-(n - 1):] if len(v) > n else v) if short.count(x) > 1 else x
           for v, x in zip(full, short, strict=True)]
    return [full[i] if out.count(x) > 1 else x for i, x in enumerate(out)]


def bar(dist: pd.DataFrame, title: str, *, top: int = 25) -> go.Figure | None:
    """Horizontal bars of unit counts, labelled "n (share%)"."""
    d = dist.head(top)
    if d.empty:
        return None
    d = d.iloc[::-1]
    text = [f"{int(n)} ({s:.1%})" for n, s in zip(d["units"], d["share"], strict=True)]
    fig = go.Figure(go.Bar(x=d["units"], y=_labels(d["category"], 40), orientation="h",
                           text=text, textposition="auto",
                           customdata=d["category"], hovertemplate="%{customdata}: %{x}<extra></extra>"))  # fmt: skip
    fig.update_layout(title=title, **{**_LAYOUT, "height": max(260, 24 * len(d) + 110)})
    return fig


def grouped_shares(dist: pd.DataFrame, title: str, *, top: int = 8) -> go.Figure | None:
    """Stacked shares of the top categories per group (engine / series)."""
    if dist.empty or dist["group"].nunique() < 2:
        return None
    cats = dist.groupby("category")["units"].sum().sort_values(ascending=False).index[:top]
    fig = go.Figure()
    for c in cats:
        d = dist[dist["category"] == c]
        fig.add_trace(go.Bar(name=_short(c, 30), x=d["group"], y=d["share"], text=d["units"], textposition="inside"))
    fig.update_layout(title=title, barmode="stack", yaxis_tickformat=".0%", **_LAYOUT)
    return fig


def sunburst(h: pd.DataFrame, title: str) -> go.Figure | None:
    if h.empty or h["depth"].max() < 1:
        return None
    fig = go.Figure(go.Sunburst(ids=h["id"], labels=[_short(x, 28) for x in h["label"]], parents=h["parent"],
                                values=h["instances"], branchvalues="total",
                                hovertext=h["id"], hoverinfo="text+value"))  # fmt: skip
    fig.update_layout(title=title, **{**_LAYOUT, "height": 560})
    return fig


def treemap(h: pd.DataFrame, title: str) -> go.Figure | None:
    if h.empty:
        return None
    fig = go.Figure(go.Treemap(ids=h["id"], labels=[_short(x, 28) for x in h["label"]], parents=h["parent"],
                               values=h["instances"], branchvalues="total", textinfo="label+value"))  # fmt: skip
    fig.update_layout(title=title, **{**_LAYOUT, "height": 520})
    return fig


def heatmap(table: pd.DataFrame, title: str, *, diverging: bool = False, fmt: str = "d") -> go.Figure | None:
    if table.empty:
        return None
    z = table.to_numpy(dtype=float)
    text = [[(f"{v:.1f}" if fmt == "f" else f"{int(v)}") for v in row] for row in z]
    kw = dict(colorscale="RdBu", zmid=0, reversescale=True) if diverging else dict(colorscale="Blues")
    fig = go.Figure(go.Heatmap(z=z, x=_labels(table.columns, 26), y=_labels(table.index, 30),
                               text=text, texttemplate="%{text}", **kw))  # fmt: skip
    fig.update_layout(title=title, **{**_LAYOUT, "height": max(320, 34 * len(table.index) + 160)})
    fig.update_yaxes(autorange="reversed")
    return fig


def sankey(flows: pd.DataFrame, title: str) -> go.Figure | None:
    if flows.empty:
        return None
    keys = list(dict.fromkeys(
        [(r.source_step, r.source) for r in flows.itertuples()] + [(r.target_step, r.target) for r in flows.itertuples()]
    ))  # fmt: skip
    index = {k: i for i, k in enumerate(keys)}
    fig = go.Figure(go.Sankey(
        node=dict(label=[_short(k[1], 30) for k in keys], pad=12, thickness=14),
        link=dict(source=[index[(r.source_step, r.source)] for r in flows.itertuples()],
                  target=[index[(r.target_step, r.target)] for r in flows.itertuples()],
                  value=flows["units"].tolist()),
    ))  # fmt: skip
    fig.update_layout(title=title, **{**_LAYOUT, "height": 560})
    return fig


def lines(frame: pd.DataFrame, title: str, *, yformat: str | None = None, top: int = 8) -> go.Figure | None:
    """One line per column over the index (months, versions)."""
    if frame.empty:
        return None
    fig = go.Figure()
    for col in list(frame.columns)[:top]:
        fig.add_trace(go.Scatter(x=list(map(str, frame.index)), y=frame[col], mode="lines+markers", name=_short(col, 30)))
    fig.update_layout(title=title, **_LAYOUT)
    if yformat:
        fig.update_yaxes(tickformat=yformat)
    return fig


def survival(curves: pd.DataFrame, title: str) -> go.Figure | None:
    if curves.empty:
        return None
    fig = go.Figure()
    for cat, c in curves.groupby("category", sort=False):
        if len(c) > 400:  # thin long curves to ~400 steps; the shape at screen resolution stays
            c = c.iloc[np.unique(np.linspace(0, len(c) - 1, 400).astype(int))]
        fig.add_trace(go.Scatter(x=[0, *c["time"]], y=[1.0, *c["survival"]], mode="lines", line_shape="hv",
                                 name=_short(cat, 30)))  # fmt: skip
    fig.update_layout(title=title, xaxis_title="days since opened", yaxis_title="share still open",
                      yaxis_tickformat=".0%", **_LAYOUT)  # fmt: skip
    fig.update_xaxes(type="log")
    return fig


def label_bars(usage: pd.DataFrame, title: str, *, top: int = 10) -> go.Figure | None:
    """Grouped horizontal bars: the most used maintainers' labels, share per group."""
    if usage.empty:
        return None
    keep = usage.groupby("label")["issues"].sum().sort_values(ascending=False).index[:top]
    d = usage[usage["label"].isin(keep)]
    fig = go.Figure()
    for g, part in d.groupby("group", sort=False):
        part = part.set_index("label").reindex(keep[::-1])
        fig.add_trace(go.Bar(name=_short(g, 30), y=_labels(part.index, 30), x=part["share"],
                             orientation="h", text=part["issues"], textposition="auto"))  # fmt: skip
    fig.update_layout(title=title, barmode="group", xaxis_tickformat=".0%", **{**_LAYOUT, "height": 520})
    return fig


def stacked(table: pd.DataFrame, title: str) -> go.Figure | None:
    """Stacked shares of a count table's columns per row."""
    if table.empty:
        return None
    share = table.div(table.sum(axis=1), axis=0)
    fig = go.Figure()
    for col in table.columns:
        fig.add_trace(go.Bar(name=_short(col, 30), x=_labels(table.index, 30), y=share[col],
                             text=table[col], textposition="inside"))  # fmt: skip
    fig.update_layout(title=title, barmode="stack", yaxis_tickformat=".0%", **_LAYOUT)
    return fig
