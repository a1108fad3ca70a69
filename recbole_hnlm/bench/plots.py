"""Bar charts of the benchmark tables (matplotlib, Agg backend: no display needed).

One row of panels per backbone and one panel per metric (or group) in it: each panel compares the samplers
on one number, with its y axis zoomed to the bars and their error bars, so gaps of a few percent stay
visible. The legend sits outside the panels, to their right.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from recbole_hnlm.io import atomic_write_bytes

Panels = Mapping[str, Mapping[str, Mapping[str, tuple[float, float]]]]


def _save(fig: Figure, path: str | Path) -> None:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())


def zoomed_limits(values: Sequence[tuple[float, float]]) -> tuple[float, float] | None:
    """y limits around ``(mean, std)`` pairs: the bars' and error bars' span plus a margin, not from 0."""
    finite = [(m, 0.0 if not math.isfinite(s) else s) for m, s in values if math.isfinite(m)]
    if not finite:
        return None
    low = min(m - s for m, s in finite)
    high = max(m + s for m, s in finite)
    margin = 0.15 * (high - low) if high > low else 0.05 * max(abs(high), 1e-3)
    bottom = low - margin
    if low >= 0:
        bottom = max(bottom, 0.0)
    return bottom, high + margin


def bar_figure(panels: Panels, title: str, ylabel: str = "") -> Figure:
    """Rows = keys of ``panels`` (backbones); in each, one panel per group ``{group: {series: (mean,
    std)}}`` (metrics), one bar per series (sampler). NaN means are left out."""
    rows = list(panels) or [""]
    groups = _ordered([list(panels[r]) for r in panels]) or [""]
    series = _ordered([_series(panels[r]) for r in panels])
    colours = {label: plt.get_cmap("tab10")(i % 10) for i, label in enumerate(series)}
    panel_width = 0.8 + 0.28 * max(len(series), 1)
    fig, axes = plt.subplots(
        len(rows),
        len(groups),
        figsize=(panel_width * len(groups) + 1.8, 2.3 * len(rows) + 0.6),
        squeeze=False,
    )
    for r, row in enumerate(rows):
        for g, group in enumerate(groups):
            ax = axes[r][g]
            values = panels.get(row, {}).get(group, {})
            drawn = [(i, label, values[label]) for i, label in enumerate(series) if label in values]
            drawn = [(i, label, v) for i, label, v in drawn if math.isfinite(v[0])]
            for i, label, (mean, std) in drawn:
                ax.bar(i, mean, 0.8, yerr=std if math.isfinite(std) else 0.0, capsize=2, color=colours[label])
            limits = zoomed_limits([v for _, _, v in drawn])
            if limits is not None:
                ax.set_ylim(*limits)
            ax.set_xticks([])
            ax.set_xlim(-0.6, max(len(series), 1) - 0.4)
            ax.grid(axis="y", alpha=0.3)
            ax.tick_params(axis="y", labelsize=7)
            if r == 0:
                ax.set_title(group, fontsize=9)
            if g == 0:
                ax.set_ylabel(f"{row}\n{ylabel}".strip(), fontsize=9)
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[label]) for label in series]
    fig.legend(handles, series, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, frameon=False)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def grouped_bars(panels: Panels, path: str | Path, title: str, ylabel: str = "") -> None:
    """Write :func:`bar_figure` as a PNG (e.g. panels = models, groups = metrics, series = samplers)."""
    _save(bar_figure(panels, title, ylabel), path)


def _series(groups: Mapping[str, Mapping[str, tuple[float, float]]]) -> list[str]:
    return _ordered([list(values) for values in groups.values()])


def _ordered(lists: Sequence[Sequence[str]]) -> list[str]:
    """The names in ``lists``, first appearance first, each once."""
    seen: list[str] = []
    for names in lists:
        seen.extend(name for name in names if name not in seen)
    return seen
