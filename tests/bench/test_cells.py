"""The bench's store resolver builds a store as `train` does (build_run_config), keyed by its path."""

from __future__ import annotations

from pathlib import Path

from recbole_hnlm.bench.arms import parse_arms
from recbole_hnlm.bench.cells import StoreResolver
from recbole_hnlm.bench.settings import BenchSettings


def test_a_pipeline_store_is_built_once_per_split_with_the_arm_config(in_tmp, monkeypatch):
    import recbole_hnlm.pipeline as pipeline

    seen = []

    def fake_store(config):
        seen.append((config["seed"], config["semantic_alpha"], config["hnlm_embedder"]))
        return Path("artifacts") / config["dataset"] / "negatives" / "hnlm"

    monkeypatch.setattr(pipeline, "ensure_hnlm_store", fake_store)
    arms = parse_arms("rns,hnlm-mix,hnlm-mix@toys")
    settings = BenchSettings(
        dataset="ml-100k",
        models=["MF"],
        arms=arms,
        overrides={"split_seed": 7},
        arm_overrides={"hnlm-mix": {"semantic_alpha": 0.3}},
        runs_dir=str(in_tmp / "runs"),
    )
    resolver = StoreResolver(settings)
    store = str(Path("artifacts/ml-100k/negatives/hnlm"))  # relative, as the committed cells record it
    assert resolver(arms[1], "MF", 2020) == resolver(arms[1], "MF", 2021) == store
    assert resolver(arms[2], "MF", 2020) == store
    embedder = str(Path("artifacts") / "toys" / "embedder")  # @toys: the other dataset's adapter
    assert seen == [(7, 0.3, None), (7, 0.1, embedder)]
