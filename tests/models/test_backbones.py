"""Every backbone trains with semantic negatives on real data, reloads, and equals its plain self at α=λ=0."""

from __future__ import annotations

import math

import pytest
import torch
from recbole.data import create_dataset, data_preparation
from recbole.quick_start import load_data_and_model
from recbole.utils import get_model, get_trainer, init_seed

from recbole_hnlm.config import make_config
from recbole_hnlm.quick_start import run_hnlm
from tests.conftest import FAST, build_store_for

BACKBONES = ["MF", "LightGCN", "NGCF", "SGL", "SimGCL"]
PLUGIN = {
    "MF": "HNLMBPR",
    "LightGCN": "HNLMLightGCN",
    "NGCF": "HNLMNGCF",
    "SGL": "HNLMSGL",
    "SimGCL": "HNLMSimGCL",
}


@pytest.fixture(scope="module")
def slice_store(toys_slice, tmp_path_factory):
    config = {**FAST, **toys_slice["config"]}
    path = tmp_path_factory.mktemp("store") / "store"
    return build_store_for("HNLMLightGCN", toys_slice["dataset"], config, path, dim=12)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_backbone_trains_with_semantic_negatives_and_reloads(backbone, toys_slice, slice_store, in_tmp):
    config = {**FAST, **toys_slice["config"], "semantic_alpha": 0.5, "semantic_cl_weight": 0.1}
    record = run_hnlm(backbone, toys_slice["dataset"], "hnlm-mix", str(slice_store), config_dict=config)
    assert record["model"] == PLUGIN[backbone]
    assert set(record["test_result"]) == {"recall@10", "recall@20", "ndcg@10", "ndcg@20"}
    assert all(math.isfinite(v) and 0 <= v <= 1 for v in record["test_result"].values())
    assert record["missing_semantic_pairs"] == 0

    # The checkpoint reloads through RecBole's own loader, adapter included, and the adapter trained.
    config_obj, model, _, train_data, _, _ = load_data_and_model(record["checkpoint"])
    assert type(model).__name__ == PLUGIN[backbone]
    fresh = type(model)(config_obj, train_data._dataset)
    trained = dict(model.semantic_adapter.named_parameters())
    initial = dict(fresh.semantic_adapter.named_parameters())
    assert trained.keys() == initial.keys()
    assert any(not torch.equal(trained[k], initial[k]) for k in trained)


def _one_epoch(model_name: str, dataset: str, config_dict: dict):
    config = make_config(model_name, dataset, config_dict=config_dict)
    init_seed(config["seed"], config["reproducibility"])
    data = create_dataset(config)
    train_data, _, _ = data_preparation(config, data)
    init_seed(config["seed"], config["reproducibility"])
    model = get_model(model_name)(config, train_data._dataset)
    trainer = get_trainer(config["MODEL_TYPE"], model_name)(config, model)
    loss = trainer._train_epoch(train_data, 0)
    return loss, {k: v for k, v in model.state_dict().items()}


@pytest.mark.parametrize(
    ("plain", "plugin"), [("LightGCN", "HNLMLightGCN"), ("NGCF", "HNLMNGCF"), ("SGL", "HNLMSGL")]
)
def test_alpha_and_lambda_zero_train_exactly_like_the_plain_backbone(
    plain, plugin, toys_slice, slice_store, in_tmp
):
    shared = {**FAST, **toys_slice["config"], "learning_rate": 0.002, "train_batch_size": 512}
    plain_loss, plain_state = _one_epoch(plain, toys_slice["dataset"], shared)
    semantic = {
        **shared,
        "semantic_negatives": str(slice_store),
        "semantic_alpha": 0.0,
        "semantic_cl_weight": 0.0,
    }
    plugin_loss, plugin_state = _one_epoch(plugin, toys_slice["dataset"], semantic)
    plain_total = plain_loss if not isinstance(plain_loss, tuple) else sum(plain_loss)
    plugin_total = plugin_loss if not isinstance(plugin_loss, tuple) else sum(plugin_loss)
    # Same per-batch losses; SGL's come back as (ranking, ssl) parts that RecBole sums per part in double
    # precision, so only the epoch total's last float32 digit may differ. The weights must be identical,
    # except that HNLM-LightGCN propagates on a CSR copy of the adjacency (models/graph.py), whose sums
    # run in another order than torch.sparse.mm's on COO: equal to float32 rounding.
    assert plugin_total == pytest.approx(plain_total, rel=1e-6)
    for name, value in plain_state.items():
        if plugin == "HNLMLightGCN":
            assert torch.allclose(value, plugin_state[name], rtol=1e-5, atol=1e-7), name
        else:
            assert torch.equal(value, plugin_state[name]), name
    assert any(k.startswith("semantic_adapter.") for k in plugin_state)
