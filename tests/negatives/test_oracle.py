"""The diagnostic oracle: held-out positives are never drawn as candidates."""

from __future__ import annotations

import numpy as np
import pytest

from recbole_hnlm.config import make_config
from recbole_hnlm.negatives import CANDIDATES_FIELD
from recbole_hnlm.negatives.candidates import CandidateSampler
from recbole_hnlm.training import split_data
from tests.conftest import FAST


def test_excluded_pairs_are_never_drawn():
    # user 1 trained on item 1; items 2 and 3 excluded for user 1: only item 4 is left to draw
    sampler = CandidateSampler(np.array([1]), np.array([1]), n_items=5, num=8)
    sampler.exclude(np.array([1, 1]), np.array([2, 3]))
    np.random.seed(0)
    assert sampler.sample(np.array([1])).tolist() == [[4] * 8]
    assert sampler.is_positive(np.array([1, 1, 2]), np.array([2, 4, 2])).tolist() == [True, False, False]


def test_the_oracle_loader_never_offers_a_heldout_positive(toys_slice, in_tmp):
    config = make_config(
        "HNLMLightGCN",
        toys_slice["dataset"],
        config_dict={**FAST, **toys_slice["config"], "neg_sampler": "dnsmn", "neg_candidates": 32},
    )
    _, train, valid, test = split_data(config)
    heldout = set()
    for ds in (valid._dataset, test._dataset):
        heldout |= set(zip(ds.inter_feat[ds.uid_field].tolist(), ds.inter_feat[ds.iid_field].tolist()))

    def offered_heldout() -> int:
        return sum(
            (u, c) in heldout
            for batch in train
            for u, row in zip(batch[train.uid_field].tolist(), batch[CANDIDATES_FIELD].tolist())
            for c in row
        )

    assert offered_heldout() > 0  # without the oracle, uniform candidates do hit held-out positives
    assert train.exclude_from_candidates(valid._dataset, test._dataset) == len(heldout)
    assert offered_heldout() == 0


def test_the_oracle_needs_a_candidate_sampler(toys_slice, in_tmp):
    config = make_config("HNLMLightGCN", toys_slice["dataset"], config_dict={**FAST, **toys_slice["config"]})
    _, train, valid, _ = split_data(config)
    with pytest.raises(ValueError, match="diagnostic_oracle_candidates"):
        train.exclude_from_candidates(valid._dataset)


def test_a_run_with_the_oracle_trains_and_logs_it(toys_slice, in_tmp):
    from recbole_hnlm.quick_start import run_hnlm

    config = {**FAST, **toys_slice["config"], "diagnostic_oracle_candidates": True, "state": "WARNING"}
    record = run_hnlm("LightGCN", toys_slice["dataset"], "dnsmn", config_dict=config, saved=False)
    assert record["config"]["diagnostic_oracle_candidates"] is True
    log = next((in_tmp / "runs").rglob("*.log")).read_text()
    assert "diagnostic oracle:" in log and "held-out interactions excluded" in log
