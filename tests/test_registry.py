"""`import recbole_hnlm` makes the plugin's models usable through RecBole's own entry points."""

from __future__ import annotations

import math

import pytest
import recbole.trainer
from recbole.quick_start import objective_function, run_recbole
from recbole.utils import get_model

from recbole_hnlm.models import HNLMLightGCN, SimGCL
from recbole_hnlm.registry import registered_models, resolve_model_name
from recbole_hnlm.trainer import HNLMTrainer
from tests.conftest import FAST


def test_lookups_resolve_plugin_models_and_trainer():
    assert get_model("HNLMLightGCN") is HNLMLightGCN
    assert get_model("SimGCL") is SimGCL
    assert recbole.trainer.HNLMLightGCNTrainer is HNLMTrainer
    assert {"HNLMBPR", "HNLMLightGCN", "HNLMNGCF", "HNLMSGL", "HNLMSimGCL", "SimGCL"} <= set(
        registered_models()
    )


def test_model_aliases_and_unknown_names():
    assert resolve_model_name("MF") == "HNLMBPR"
    assert resolve_model_name("LightGCN") == "HNLMLightGCN"
    assert resolve_model_name("HNLMNGCF") == "HNLMNGCF"
    with pytest.raises(ValueError, match="unknown model 'GRU4Rec'"):
        resolve_model_name("GRU4Rec")


def test_stock_run_recbole_uses_plugin_defaults(in_tmp):
    result = run_recbole(model="HNLMLightGCN", dataset="ml-100k", config_dict={**FAST}, saved=False)
    # The plugin's overall.yaml supplied the protocol: NDCG@20 on validation, Recall/NDCG @10,20.
    assert set(result["test_result"]) == {"recall@10", "recall@20", "ndcg@10", "ndcg@20"}
    assert all(math.isfinite(v) for v in result["test_result"].values())


def test_stock_objective_function_with_plain_simgcl(in_tmp):
    result = objective_function(config_dict={"model": "SimGCL", "dataset": "ml-100k", **FAST}, saved=False)
    assert result["model"] == "SimGCL"
    assert math.isfinite(result["best_valid_score"])
