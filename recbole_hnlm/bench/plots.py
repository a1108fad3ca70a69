"""Bar charts of the benchmark tables (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from recbole_hnlm.io import atomic_write_bytes


def _save(fig, path: str | Path) -> None:
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())


def grouped_bars(
    panels: Mapping[str, Mapping[str, Mapping[str, tuple[float, float]]]],
    path: str | Path,
    title: str,
    ylabel: str = "",
) -> None:
    """One panel per key of ``panels``; in each, groups ``{group: {series: (mean, std)}}`` of bars.

    E.g. panels = models, groups = metrics, series = samplers. NaN means are drawn as empty bars.
    """
    names = list(panels)
    fig, axes = plt.subplots(
        1, max(len(names), 1), figsize=(max(5.0, 1.2 * _width(panels)), 3.6), squeeze=False
    )
    for ax, name in zip(axes[0], names, strict=False):
        groups = panels[name]
        group_names = list(groups)
        series = _series(groups)
        x = np.arange(len(group_names))
        width = 0.8 / max(len(series), 1)
        for s, label in enumerate(series):
            means = [groups[g].get(label, (math.nan, 0.0))[0] for g in group_names]
            stds = [groups[g].get(label, (math.nan, 0.0))[1] for g in group_names]
            ax.bar(
                x + (s - (len(series) - 1) / 2) * width,
                np.nan_to_num(means),
                width,
                yerr=np.nan_to_num(stds),
                capsize=2,
                label=label,
            )
        ax.set_xticks(x, group_names, rotation=20, ha="right")
        ax.set_title(name)
        ax.set_ylabel(ylabel)
        ax.grid(axis="y", alpha=0.3)
    axes[0][-1].legend(fontsize=7, loc="best")
    fig.suptitle(title)
    _save(fig, path)


def _series(groups: Mapping[str, Mapping[str, tuple[float, float]]]) -> list[str]:
    seen: list[str] = []
    for values in groups.values():
        seen.extend(label for label in values if label not in seen)
    return seen


def _width(panels: Mapping[str, Mapping[str, Mapping[str, Sequence[float]]]]) -> int:
    return sum(len(g) * max(len(_series(g)), 1) // 3 + 2 for g in panels.values())
