"""The cross-grid accuracy overview on hand-made results.json files."""

from __future__ import annotations

import json

import pytest

from recbole_hnlm.bench.overview import main, overview_markdown, verdict


def _entry(values, best="dns", pvalue=None, gain=None):
    mean = sum(values) / len(values)
    return {
        "mean": mean,
        "std": 0.0,
        "values": values,
        "seeds": list(range(len(values))),
        "best_baseline": best,
        "gain_vs_rns": gain,
        "test": None if pvalue is None else {"pvalue": pvalue, "n": len(values)},
    }


def _grid(folder, samplers, rows):
    folder.mkdir(parents=True)
    payload = {
        "settings": {"samplers": samplers},
        "summary": {"MF": {label: {"metrics": {"ndcg@20": e}} for label, e in rows.items()}},
    }
    (folder / "results.json").write_text(json.dumps(payload))


def test_verdict_follows_the_paired_test():
    best = _entry([0.30, 0.30])
    assert verdict(_entry([0.32, 0.32], pvalue=0.01), best) == "wins"
    assert verdict(_entry([0.20, 0.20], pvalue=0.01), best) == "loses"
    assert verdict(_entry([0.32, 0.32], pvalue=0.20), best) == "on par"
    assert verdict(_entry([0.32], pvalue=None), best) == "n/a"
    assert verdict(_entry([0.32, 0.31], pvalue=float("nan")), best) == "n/a"


def test_overview_rows_per_grid_and_sampler(tmp_path):
    _grid(
        tmp_path / "toys",
        ["rns:rns", "dns:dns", "hnlm:hnlm", "prompt:prompt"],
        {
            "rns": _entry([0.10, 0.10], gain=0.0, pvalue=0.001),
            "dns": _entry([0.20, 0.20], gain=1.0),
            "hnlm": _entry([0.25, 0.25], gain=1.5, pvalue=0.004),
        },
    )
    _grid(tmp_path / "yelp", ["rns:rns", "dns:dns"], {"rns": _entry([0.1], gain=0.0), "dns": _entry([0.2])})
    (tmp_path / "notes").mkdir()  # a folder without results.json is skipped
    page = overview_markdown(tmp_path)
    rows = [line for line in page.splitlines() if line.startswith("| toys") or line.startswith("| yelp")]
    assert len(rows) == 3
    hnlm, prompt, yelp = rows
    assert "hnlm: 0.2500 ± 0.0000 (n=2)" in hnlm and "+150.0%" in hnlm and "+25.0% (p=0.004)" in hnlm
    assert hnlm.endswith("| wins |")
    assert "prompt: not run" in prompt and prompt.endswith("| not run |")
    assert "(dns, n=1)" in yelp and yelp.endswith("no semantic sampler in this grid |")


def test_main_writes_the_page_atomically(tmp_path):
    _grid(tmp_path / "g", ["rns:rns", "hnlm:hnlm"], {"rns": _entry([0.1, 0.1], best="rns", gain=0.0)})
    assert main([str(tmp_path)]) == 0
    page = (tmp_path / "accuracy.md").read_text()
    assert "| g | MF |" in page and "hnlm: not run" in page
    assert not list(tmp_path.glob(".*tmp*"))


def test_unknown_metric_is_a_clear_error(tmp_path):
    _grid(tmp_path / "g", ["rns:rns"], {"rns": _entry([0.1], best="rns", gain=0.0)})
    with pytest.raises(ValueError, match=r"g/results.json: no metric 'recall@20' \(it has ndcg@20\)"):
        overview_markdown(tmp_path, "recall@20")
