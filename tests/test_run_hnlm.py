"""The command line: run_hnlm.py trains, prints the table, writes result.json; bad input fails clearly."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from recbole_hnlm.cli import main
from recbole_hnlm.config import make_config
from recbole_hnlm.config_values import default_of
from recbole_hnlm.data.splits import interaction_tokens, load_split
from recbole_hnlm.negatives.dataloader import MissingNegativesError
from recbole_hnlm.quick_start import design_settings, run_hnlm, sampler_overrides
from tests.conftest import FAST, REPO, build_store_for


def test_run_hnlm_script_on_embedded_ml100k(tmp_path):
    cmd = [
        sys.executable,
        str(REPO / "run_hnlm.py"),
        "--model=LightGCN",
        "--dataset=ml-100k",
        "--sampler=rns",
        "--epochs=1",
        "--embedding_size=16",
        "--show_progress=False",
        "--seed=7",
    ]
    out = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300, env=None)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "test:" in out.stdout and "ndcg@20" in out.stdout
    results = list((tmp_path / "runs" / "ml-100k").glob("HNLMLightGCN-rns-*/result.json"))
    assert len(results) == 1
    record = json.loads(results[0].read_text())
    assert record["seed"] == 7 and record["config"]["embedding_size"] == 16
    assert record["valid_metric"] == "NDCG@20" and set(record["test_result"]) >= {"recall@20", "ndcg@20"}


def test_sampler_overrides():
    assert sampler_overrides("dns", None) == {"neg_sampler": "dns"}
    assert sampler_overrides("hnlm-mix", "s")["semantic_negatives"].endswith("s")
    assert sampler_overrides("hnlm-mix", None) == {}  # run_hnlm builds the store with the pipeline
    assert sampler_overrides("hnlm", None) == {"neg_sampler": "aligndns"}  # the default design
    with pytest.raises(ValueError, match="--sampler must be one of"):
        sampler_overrides("magic", None)


def test_the_default_design_sets_its_pool_size_unless_the_run_gives_one(tmp_path):
    def design(sampler="hnlm", files=None, **given):
        config = make_config("HNLMLightGCN", "ml-100k", files, {"state": "ERROR", **given})
        return design_settings(sampler, config)

    assert design() == {"aligndns_candidates": default_of("hnlm_candidates")} == {"aligndns_candidates": 16}
    assert design(hnlm_candidates=64) == {"aligndns_candidates": 64}
    assert design(aligndns_candidates=8) == {}  # the run's own value stands
    (tmp_path / "run.yaml").write_text("aligndns_candidates: 24\n")
    assert design(files=[str(tmp_path / "run.yaml")]) == {}  # a config file's too
    assert design("aligndns") == {} and design("dnsmn") == {}  # only the alias has a design of its own


def test_cli_rejects_malformed_overrides(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--sampler=rns", "epochs=2"])
    assert "config overrides are written --key=value" in capsys.readouterr().err


def test_missing_pairs_follow_the_policy(toys_slice, tmp_path, in_tmp):
    # A store built under another seed's split misses some of this split's training pairs.
    store = build_store_for(
        "HNLMLightGCN", toys_slice["dataset"], {**FAST, **toys_slice["config"], "seed": 1}, tmp_path / "store"
    )
    config = {**FAST, **toys_slice["config"]}
    with pytest.raises(MissingNegativesError, match=r"training pairs \(.*%\) have no negative in store"):
        run_hnlm("LightGCN", toys_slice["dataset"], "hnlm-mix", str(store), config_dict=config)
    record = run_hnlm(
        "LightGCN",
        toys_slice["dataset"],
        "hnlm-mix",
        str(store),
        config_dict={**config, "semantic_missing": "random"},
    )
    assert record["missing_semantic_pairs"] > 0


def test_missing_dataset_files_say_how_to_prepare(tmp_path, in_tmp):
    with pytest.raises(FileNotFoundError, match="recbole-hnlm prepare --dataset toys"):
        run_hnlm("LightGCN", "toys", "rns", config_dict={**FAST, "data_path": str(tmp_path / "nothing")})


def test_split_seed_fixes_the_split_across_training_seeds(in_tmp):
    from recbole_hnlm.config import make_config
    from recbole_hnlm.data.splits import interaction_tokens, load_split

    def train_pairs(**cfg):
        split = load_split(make_config("HNLMLightGCN", "ml-100k", config_dict={**FAST, **cfg}))
        return set(zip(*interaction_tokens(split.train)))

    assert train_pairs(seed=1, split_seed=5) == train_pairs(seed=2, split_seed=5)
    assert train_pairs(seed=1) != train_pairs(seed=2)


def test_plugin_load_data_and_model_rebuilds_the_fixed_split(in_tmp):
    from recbole_hnlm.quick_start import load_data_and_model

    record = run_hnlm("LightGCN", "ml-100k", "rns", config_dict={**FAST, "seed": 3, "split_seed": 11})
    config, model, _, train_data, _, _ = load_data_and_model(record["checkpoint"])
    assert config["seed"] == 3 and type(model).__name__ == "HNLMLightGCN"
    expected = make_config("HNLMLightGCN", "ml-100k", config_dict={**FAST, "seed": 9, "split_seed": 11})
    assert set(zip(*interaction_tokens(train_data._dataset))) == set(
        zip(*interaction_tokens(load_split(expected).train))
    )
