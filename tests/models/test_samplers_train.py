"""Every (backbone, hard sampler) pair trains one epoch on a real data slice; a store composes with DNS."""

from __future__ import annotations

import math

import pytest
import torch

from recbole_hnlm.quick_start import run_hnlm
from tests.conftest import CF_HARD_SAMPLERS, FAST, build_store_for

BACKBONES = ["MF", "LightGCN", "NGCF", "SGL", "SimGCL"]
HARD = CF_HARD_SAMPLERS
# Small and fast: the samplers' own defaults (M = 6/32 for DENS/AHNS) are left as they are.
QUICK = {**FAST, "train_batch_size": 2048, "eval_step": 1, "neg_candidates": 8, "stopping_step": 1}


def _check(record):
    assert all(math.isfinite(v) and 0 <= v <= 1 for v in record["test_result"].values())


@pytest.mark.parametrize("sampler", HARD)
@pytest.mark.parametrize("backbone", BACKBONES)
def test_backbone_trains_one_epoch_with_each_hard_sampler(backbone, sampler, toys_slice, in_tmp):
    config = {**QUICK, **toys_slice["config"]}
    record = run_hnlm(backbone, toys_slice["dataset"], sampler, config_dict=config, saved=False)
    assert record["neg_sampler"] == sampler
    _check(record)


def test_dens_gates_are_model_parameters_and_train(toys_slice, in_tmp):
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, get_trainer, init_seed

    from recbole_hnlm.config import make_config

    config = make_config(
        "HNLMLightGCN",
        toys_slice["dataset"],
        config_dict={**QUICK, **toys_slice["config"], "neg_sampler": "dens"},
    )
    init_seed(config["seed"], config["reproducibility"])
    train, _, _ = data_preparation(config, create_dataset(config))
    model = get_model("HNLMLightGCN")(config, train._dataset)
    before = {k: v.clone() for k, v in model.state_dict().items() if k.startswith("negative_sampler.")}
    assert set(before) >= {
        "negative_sampler.gates.16.neg_gate.weight",
        "negative_sampler.gates.16.user_gate.bias",
    }
    trainer = get_trainer(config["MODEL_TYPE"], "HNLMLightGCN")(config, model)
    loss = trainer._train_epoch(train, 0)
    assert isinstance(loss, tuple) and len(loss) == 2  # ranking loss, DENS's gate loss
    after = model.state_dict()
    assert all(not torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("backbone", ["LightGCN", "MF"])
def test_a_semantic_store_composes_with_dns(backbone, toys_slice, in_tmp, tmp_path):
    config = {**QUICK, **toys_slice["config"]}
    store = build_store_for("HNLMLightGCN", toys_slice["dataset"], config, tmp_path / "store", dim=12)
    config = {**config, "neg_sampler": "dns", "semantic_alpha": 0.3, "semantic_cl_weight": 0.1}
    record = run_hnlm(
        backbone, toys_slice["dataset"], "hnlm-mix", str(store), config_dict=config, saved=False
    )
    assert record["neg_sampler"] == "dns" and record["semantic_negatives"]
    assert record["missing_semantic_pairs"] == 0
    _check(record)
