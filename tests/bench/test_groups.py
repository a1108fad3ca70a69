"""Group splits and per-group metrics on hand-made counts and rankings."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from recbole_hnlm.bench.groups import (
    activity_groups,
    is_heldout,
    nearest_items,
    popularity_groups,
    user_metrics,
)


def test_popularity_head_is_top_fifth_by_training_count():
    # id 0 is RecBole's padding item and belongs to no group; 10 real items -> 2 head items.
    counts = np.array([0, 5, 1, 9, 3, 3, 0, 7, 2, 2, 4])
    head = popularity_groups(counts)
    assert np.flatnonzero(head).tolist() == [3, 7]
    # ties are broken by the smaller id; ceil(0.4 * 5) = 2 items
    tied = popularity_groups(np.array([0, 3, 3, 3, 3, 1]), head_share=0.4)
    assert np.flatnonzero(tied).tolist() == [1, 2]


def test_sparse_users_are_bottom_quartile():
    counts = np.array([0, 4, 1, 1, 7, 2, 9, 3, 5])  # 8 users -> 2 sparse
    assert np.flatnonzero(activity_groups(counts)).tolist() == [2, 3]
    # three users tie on the smallest count; a quarter of 4 users is 1: the smallest id
    assert np.flatnonzero(activity_groups(np.array([0, 1, 1, 1, 5]))).tolist() == [1]
    with pytest.raises(ValueError, match="share"):
        activity_groups(counts, sparse_share=1.0)


def test_user_metrics_by_item_group():
    topk = torch.tensor([[3, 1, 2], [2, 4, 1]])
    positives = torch.zeros(2, 5, dtype=torch.bool)
    positives[0, [1, 4]] = True
    positives[1, [4]] = True
    all_items, n_pos = user_metrics(topk, positives, ks=[2])
    assert n_pos.tolist() == [2, 1]
    # user 0: one hit (item 1) at rank 2 of 2 positives; user 1: hit at rank 2 of 1 positive
    assert all_items["recall@2"].tolist() == pytest.approx([0.5, 1.0])
    dcg = 1 / math.log2(3)
    assert all_items["ndcg@2"].tolist() == pytest.approx([dcg / (1 + dcg), dcg])
    only_4 = torch.tensor([False, False, False, False, True])
    head, _ = user_metrics(topk, positives, ks=[2], item_mask=only_4)
    assert head["recall@2"].tolist() == pytest.approx([0.0, 1.0])
    only_2 = torch.tensor([False, False, True, False, False])
    none, n_pos = user_metrics(topk, positives, ks=[2], item_mask=only_2)
    assert n_pos.tolist() == [0, 0] and torch.isnan(none["ndcg@2"]).all()


def test_heldout_lookup_and_nearest_item():
    keys = np.array([1 * 10 + 4, 2 * 10 + 7])
    assert is_heldout(np.array([[1], [2]]), np.array([[4, 7], [4, 7]]), keys, 10).tolist() == [
        [True, False],
        [False, True],
    ]
    table = torch.tensor([[1.0, 1.0], [1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    # row 0 is padding and never chosen, even when it is the closest
    assert nearest_items(torch.tensor([[2.0, 0.1], [1.0, 1.0], [-3.0, 0.0]]), table).tolist() == [1, 1, 3]
