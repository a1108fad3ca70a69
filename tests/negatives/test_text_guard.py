"""The text false-negative guard (guarddns): what it keeps, its projection, the real loader, bad settings."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recbole_hnlm.negatives import CANDIDATES_FIELD
from recbole_hnlm.negatives.samplers import sampler_class
from recbole_hnlm.negatives.text_guard import (
    GuardedDNSMNNegatives,
    TextGuard,
    catalogue_thresholds,
    principal_projection,
)

# items 1..4 (0 = [PAD]): 1 and 2 point along x, 3 along y, 4 along -x
VECTORS = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [-1.0, 0.0]])


def guard(drop: int, invert: bool = False, quantile: float | None = None) -> TextGuard:
    # user 1 trained on item 1 (taste +x), user 2 on item 3 (taste +y)
    users, items = np.array([1, 2]), np.array([1, 3])
    return TextGuard(VECTORS, users, items, n_users=3, drop=drop, invert=invert, quantile=quantile)


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


def test_the_catalogue_veto_removes_the_users_closest_items_wherever_they_are_drawn():
    # user 1 (+x) over items 1..4: closeness 1, 0.8, 0, -1; q = 0.5 -> k = 2, threshold 0 (the 2nd smallest):
    # items 1 and 2 are vetoed. User 2 (+y): 0, 0.6, 1, 0 -> threshold 0: items 2 and 3 vetoed.
    veto = guard(1, quantile=0.5)
    assert veto.threshold.tolist() == [0.0, 0.0, 0.0]  # user 0 has no history: all closeness 0
    candidates = torch.tensor([[2, 3, 4], [4, 2, 3]])
    assert veto.filter(np.array([1, 2]), candidates).tolist() == [[3, 4], [4, 2]]
    # user 2's row kept only one unvetoed item (4), so the first vetoed one in drawn order (2) fills it
    assert veto.report() == {"text_guard_vetoed_share": 3 / 6, "text_guard_short_rows": 1}
    # inverted: the farthest are vetoed (user 1: items 3 and 4, below the 3rd smallest, 0.8)
    far = guard(1, invert=True, quantile=0.5)
    assert far.filter(np.array([1]), torch.tensor([[4, 2, 3]])).tolist() == [[4, 2]]
    assert far.report()["text_guard_short_rows"] == 1
    # q = 1 vetoes nothing: the first M drawn are kept, which is DNS(M, N) on the first M
    assert guard(1, quantile=1.0).filter(np.array([1]), torch.tensor([[2, 3, 4]])).tolist() == [[2, 3]]
    assert guard(1).report() == {}  # the per-row mode has nothing to count
    for bad in (0.0, 1.5):
        with pytest.raises(ValueError, match="guarddns_quantile"):
            guard(1, quantile=bad)


def test_catalogue_thresholds_are_the_same_in_chunks_and_whole():
    rng = np.random.default_rng(1)
    vectors = torch.from_numpy(rng.normal(size=(40, 5)).astype(np.float32))
    taste = torch.from_numpy(rng.normal(size=(9, 5)).astype(np.float32))
    whole = catalogue_thresholds(taste, vectors, 0.9, invert=False)
    # a GEMM of 2 rows may round differently from one of 9: equal up to float error
    assert torch.allclose(whole, catalogue_thresholds(taste, vectors, 0.9, invert=False, chunk=39 * 2))
    closeness = taste @ vectors[1:].T  # 39 items, k = ceil(35.1) = 36: 3 above the threshold per user
    assert ((closeness > whole[:, None]).sum(dim=1) == 3).all()
    inverted = catalogue_thresholds(taste, vectors, 0.9, invert=True)
    assert ((closeness < inverted[:, None]).sum(dim=1) == 3).all()


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
    with pytest.raises(ValueError, match="guarddns_quantile"):
        guarded_train(guarddns_quantile="high")


def test_the_real_loader_never_offers_a_vetoed_item_while_unvetoed_ones_remain(guarded_train):
    _, train = guarded_train(
        guarddns_candidates=12, guarddns_drop=4, guarddns_quantile=0.8, guarddns_dims=None
    )
    text_guard, dataset = train.text_guard, train._dataset
    rows_with_vetoed = 0
    for batch in train:
        users, cands = batch[dataset.uid_field].numpy(), batch[CANDIDATES_FIELD]
        assert cands.shape == (len(users), 8)
        vetoed = text_guard.closeness(users, cands) > text_guard.threshold[users].unsqueeze(1)
        rows_with_vetoed += int(vetoed.any(dim=1).sum())
    # a vetoed item is offered only by a row that drew fewer than 8 unvetoed ones
    assert rows_with_vetoed <= text_guard.short_rows
    assert 0.1 < text_guard.report()["text_guard_vetoed_share"] < 0.3  # about 1 - q of the catalogue
    # exactness on one row: the first 8 unvetoed of the 12 drawn, in drawn order
    np.random.seed(4)
    drawn = train.candidate_sampler.sample(np.array([1]))
    allowed = text_guard.closeness(np.array([1]), drawn)[0] <= text_guard.threshold[1]
    assert int(allowed.sum()) >= 8
    assert text_guard.filter(np.array([1]), drawn)[0].tolist() == drawn[0][allowed][:8].tolist()


def test_the_permuted_guard_reads_every_items_text_from_another_item(guarded_train):
    _, plain = guarded_train(guarddns_dims=None)
    _, permuted = guarded_train(guarddns_dims=None, guarddns_permute=True)
    same, shuffled = plain.text_guard.vectors, permuted.text_guard.vectors
    assert not torch.equal(same, shuffled)
    assert torch.equal(shuffled[0], same[0])  # [PAD] stays
    # the same rows, reordered: every item's vector is some item's vector
    assert torch.allclose(same[1:].sum(dim=0), shuffled[1:].sum(dim=0), atol=1e-5)


def test_unset_item_vectors_say_how_to_make_them():
    from recbole_hnlm.negatives.item_vectors import configured_item_vectors

    message = r"'item_vectors' is unset: guarddns needs .*recbole-hnlm item-vectors"
    with pytest.raises(ValueError, match=message):
        configured_item_vectors({"item_vectors": None, "neg_sampler": "guarddns"}, dataset=None)
