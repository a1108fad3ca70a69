"""quick_start: the validation trace (best epoch), and a semdns run end to end with its sampler report."""

from __future__ import annotations

import numpy as np

from recbole_hnlm.config import make_config
from recbole_hnlm.negatives.item_vectors import write_item_vectors
from recbole_hnlm.quick_start import ValidationTrace, run_hnlm
from tests.conftest import FAST


def test_the_trace_keeps_the_first_strictly_best_epoch_and_calls_on():
    seen = []
    trace = ValidationTrace(True, lambda epoch, score: seen.append((epoch, score)))
    for epoch, score in [(4, 0.1), (9, 0.3), (14, 0.3), (19, 0.2)]:
        trace(epoch, score)
    assert (trace.best_epoch, trace.best_score, trace.last_epoch) == (9, 0.3, 19)
    assert seen == [(4, 0.1), (9, 0.3), (14, 0.3), (19, 0.2)]
    smaller = ValidationTrace(False)
    for epoch, score in [(0, 2.0), (1, 1.0), (2, 1.5)]:
        smaller(epoch, score)
    assert smaller.best_epoch == 1


def test_semdns_trains_and_reports_its_semantic_picks_and_best_epoch(toys_slice, in_tmp):
    config = {**FAST, **toys_slice["config"], "epochs": 2, "eval_step": 1, "semdns_k": 4}
    dataset = make_config("HNLMLightGCN", toys_slice["dataset"], config_dict=config)
    from recbole.data import create_dataset

    data = create_dataset(dataset)
    tokens = [str(t) for t in data.field2id_token[data.iid_field][1:]]
    vectors = np.random.default_rng(1).normal(size=(len(tokens), 6))
    folder = write_item_vectors(in_tmp / "vectors", tokens, vectors, {"dataset": toys_slice["dataset"]})
    config["semdns_vectors"] = str(folder)
    record = run_hnlm("LightGCN", toys_slice["dataset"], "semdns", config_dict=config, saved=False)
    assert record["neg_sampler"] == "semdns"
    report = record["sampler_report"]
    assert 0.0 < report["semantic_pick_share"] < 1.0
    assert set(report["semantic_pick_share_by_epoch"]) == {"0", "1"}  # as result.json has it
    assert 0.0 <= report["semantic_pool_redrawn_share"] < 1.0
    assert record["best_epoch"] in (0, 1) and record["epochs_trained"] == 2 and record["epoch_cap"] == 2
