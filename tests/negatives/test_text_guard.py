"""The text false-negative guard (guarddns): what it keeps, its projection, the real loader, bad settings."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recbole_hnlm.negatives import CANDIDATES_FIELD
from recbole_hnlm.negatives.samplers import sampler_class
from recbole_hnlm.negatives.text_guard import GuardedDNSMNNegatives, TextGuard, principal_projection

# items 1..4 (0 = [PAD]): 1 and 2 point along x, 3 along y, 4 along -x
VECTORS = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [-1.0, 0.0]])


def guard(drop: int, invert: bool = False) -> TextGuard:
    # user 1 trained on item 1 (taste +x), user 2 on item 3 (taste +y)
    return TextGuard(VECTORS, np.array([1, 2]), np.array([1, 3]), n_users=3, drop=drop, invert=invert)


def test_the_guard_drops_the_candidates_closest_to_the_users_taste_and_keeps_the_drawn_order():
    candidates = torch.tensor([[2, 3, 4], [4, 2, 3]])
    # user 1 (+x): closeness 0.8, 0, -1 -> drop item 2; user 2 (+y): closeness 0, 0.6, 1 -> drop item 3
    assert guard(1).filter(np.array([1, 2]), candidates).tolist() == [[3, 4], [4, 2]]
    assert guard(2).filter(np.array([1, 2]), candidates).tolist() == [[4], [4]]
    assert guard(1, invert=True).filter(np.array([1, 2]), candidates).tolist() == [[2, 3], [2, 3]]
    assert torch.equal(guard(0).filter(np.array([1, 2]), candidates), candidates)
    with pytest.raises(ValueError, match="guarddns_drop"):
        guard(3).filter(np.array([1, 2]), candidates)
    with pytest.raises(ValueError, match="guarddns_drop"):
        guard(-1)


def test_a_full_rank_projection_keeps_every_rows_order():
    rng = np.random.default_rng(0)
    vectors = torch.from_numpy(rng.normal(size=(30, 6)).astype(np.float32))
    vectors[0] = 0.0
    taste = torch.from_numpy(rng.normal(size=6).astype(np.float32))
    projected = principal_projection(vectors, 5)  # 29 real rows, rank 6 -> 5 of 6 directions after centring
    assert projected.shape == (30, 5) and torch.all(projected[0] == 0)
    full = principal_projection(vectors, 6)
    assert full is vectors  # asking for every direction changes nothing
    # centring moves every candidate's score by the same amount: the order within a row is the same
    centred = vectors - vectors[1:].mean(dim=0)
    assert torch.equal((vectors[1:] @ taste).argsort(), (centred[1:] @ taste).argsort())


@pytest.fixture(scope="module")
def guarded_train(text_sampler_train):
    return lambda **overrides: text_sampler_train("guarddns", **overrides)


def test_the_real_loader_offers_the_kept_candidates_and_never_a_positive(guarded_train):
    _, train = guarded_train(guarddns_candidates=12, guarddns_drop=5, guarddns_dims=None)
    dataset = train._dataset
    positives = set(
        zip(dataset.inter_feat[dataset.uid_field].tolist(), dataset.inter_feat[dataset.iid_field].tolist())
    )
    text_guard = train.text_guard
    for batch in train:
        users, cands = batch[dataset.uid_field], batch[CANDIDATES_FIELD]
        assert cands.shape == (len(users), 7)
        assert not any((u, c) in positives for u, row in zip(users.tolist(), cands.tolist()) for c in row)
    # exactness on one row: drawing 12 and dropping the 5 closest keeps the 7 least close
    np.random.seed(4)
    drawn = train.candidate_sampler.sample(np.array([1]))
    kept = text_guard.filter(np.array([1]), drawn)
    scores = text_guard.closeness(np.array([1]), drawn)[0]
    expected = drawn[0][scores.argsort()[:7].sort().values]
    assert kept[0].tolist() == expected.tolist()


def test_guarddns_is_registered_and_reads_its_settings(guarded_train):
    cls = sampler_class("guarddns")
    assert cls is GuardedDNSMNNegatives and cls.needs_text_guard and cls.needs_item_vectors
    _, train = guarded_train()
    assert train.text_guard.drop == 16 and train.text_guard.vectors.shape[1] == 8  # 8-d: dims 64 > 8
    with pytest.raises(ValueError, match="guarddns_drop"):
        guarded_train(guarddns_drop="many")


def test_unset_item_vectors_say_how_to_make_them():
    from recbole_hnlm.negatives.item_vectors import configured_item_vectors

    message = r"'item_vectors' is unset: guarddns needs .*recbole-hnlm item-vectors"
    with pytest.raises(ValueError, match=message):
        configured_item_vectors({"item_vectors": None, "neg_sampler": "guarddns"}, dataset=None)
