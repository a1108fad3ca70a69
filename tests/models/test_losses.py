"""InfoNCE is written once (models/losses.py) and serves SimGCL and RLMRec alike."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from recbole_hnlm.models import losses, rlmrec, simgcl
from recbole_hnlm.models.losses import info_nce


def test_simgcl_and_rlmrec_use_the_one_info_nce():
    assert simgcl.info_nce is losses.info_nce
    assert rlmrec.info_nce is losses.info_nce


def test_info_nce_is_the_mean_of_minus_log_softmax_at_the_matching_row():
    torch.manual_seed(0)
    query, key = torch.randn(6, 4), torch.randn(6, 4)
    tau = 0.2
    cos = F.normalize(query, dim=1) @ F.normalize(key, dim=1).T
    expected = 0.0
    for i in range(6):
        row = [math.exp(float(cos[i, j]) / tau) for j in range(6)]
        expected += -math.log(row[i] / sum(row))
    assert info_nce(query, key, tau).item() == pytest.approx(expected / 6, rel=1e-5)


def test_info_nce_uses_cosine_similarities():
    torch.manual_seed(1)
    query, key = torch.randn(5, 3), torch.randn(5, 3)
    scale = torch.tensor([[2.0], [0.5], [3.0], [1.5], [7.0]])
    assert info_nce(query * scale, key * scale.flip(0), 0.5).item() == pytest.approx(
        info_nce(query, key, 0.5).item(), rel=1e-5
    )


def test_aligned_rows_score_lower_than_shuffled_ones():
    torch.manual_seed(2)
    key = torch.randn(8, 4)
    aligned = info_nce(key + 0.01 * torch.randn(8, 4), key, 0.1)
    shuffled = info_nce(key[torch.randperm(8)], key, 0.1)
    assert aligned.item() < shuffled.item()
