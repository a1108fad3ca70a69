"""bars.png: one row of panels per backbone, y axes zoomed to the bars, the legend outside the panels."""

from __future__ import annotations

import math

from PIL import Image

from recbole_hnlm.bench.plots import bar_figure, grouped_bars, zoomed_limits

SAMPLERS = ("rns", "dns", "dnsmn", "mixgcf", "dens", "ahns", "hnlm")
METRICS = {"recall@10": 0.13, "recall@20": 0.21, "ndcg@10": 0.15, "ndcg@20": 0.17}


def _panels():
    return {
        model: {
            metric: {s: (base * (1 + 0.03 * i) * scale, 0.002) for i, s in enumerate(SAMPLERS)}
            for metric, base in METRICS.items()
        }
        for model, scale in (("LightGCN", 1.0), ("MF", 0.8))
    }


def test_zoomed_limits_hug_the_bars():
    low, high = zoomed_limits([(0.130, 0.002), (0.134, 0.001), (math.nan, 0.0)])
    assert 0.12 < low < 0.128 and 0.135 < high < 0.14
    assert zoomed_limits([(math.nan, 0.0)]) is None
    assert zoomed_limits([(0.0, 0.0)]) == (0.0, 0.05 * 1e-3)


def test_one_row_per_backbone_zoomed_axes_legend_outside():
    fig = bar_figure(_panels(), "ml-100k: test metrics")
    axes = fig.get_axes()
    assert len(axes) == 2 * len(METRICS)
    assert [ax.get_ylabel() for ax in axes[:: len(METRICS)]] == ["LightGCN", "MF"]
    for ax in axes:
        bottom, top = ax.get_ylim()
        heights = [bar.get_height() for bar in ax.patches]
        assert len(heights) == len(SAMPLERS)
        assert bottom > 0.5 * min(heights) and top < 1.1 * max(heights)  # a 3% gap is visible
        assert ax.get_legend() is None
    assert len(fig.legends) == 1
    renderer = fig.canvas.get_renderer()
    legend_box = fig.legends[0].get_window_extent(renderer)
    assert all(legend_box.x0 >= ax.get_window_extent(renderer).x1 for ax in axes)


def test_png_is_not_a_strip(tmp_path):
    path = tmp_path / "bars.png"
    grouped_bars(_panels(), path, "ml-100k: test metrics")
    width, height = Image.open(path).size
    assert width / height < 3
