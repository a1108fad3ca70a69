"""Item-anchored alignment DNS (aligndns): the ridge map g, the steered pick, refits, controls, bad keys."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from recbole_hnlm.negatives import CANDIDATES_FIELD
from recbole_hnlm.negatives.base import NegativeContext, Propagation
from recbole_hnlm.negatives.hard import DNSMNNegatives
from recbole_hnlm.negatives.item_vectors import write_item_vectors
from recbole_hnlm.negatives.samplers import sampler_class
from recbole_hnlm.negatives.text_alignment import RidgeTextMap, TextAlignedDNSNegatives

# CF item embeddings, row 0 = [PAD]; the item text vectors are the same coordinates, so g can be exact
ITEMS = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.5, 1.0], [0.6, -1.0], [0.0, 2.0]])


def test_the_ridge_map_matches_the_hand_solved_fit():
    # design [[-1, 1], [1, 1]] (feature, bias); X'X = 2I; penalty = ridge * 2 on the feature only
    features = torch.tensor([[0.0], [-1.0], [1.0]])
    text_map = RidgeTextMap(features, torch.tensor([1, 2]), ridge=1.0)
    r2 = text_map.fit(torch.tensor([[9.0], [0.0], [2.0]]))  # row 0 is not fitted
    # w = X'y / (2 + 2) = 2 / 4 = 0.5, bias = 2 / 2 = 1: g(-1) = 0.5, g(1) = 1.5; R² = 1 - 0.5 / 2
    assert text_map(torch.tensor([1, 2])).squeeze(1).tolist() == pytest.approx([0.5, 1.5])
    assert r2 == pytest.approx(0.75)


def test_the_ridge_map_refuses_bad_settings_and_use_before_a_fit():
    features = torch.zeros(3, 1)
    with pytest.raises(ValueError, match="aligndns_ridge"):
        RidgeTextMap(features, torch.tensor([1, 2]), ridge=0.0)
    with pytest.raises(ValueError, match="at least 2 items"):
        RidgeTextMap(features, torch.tensor([1]), ridge=1.0)
    with pytest.raises(RuntimeError, match="before its first fit"):
        RidgeTextMap(features, torch.tensor([1, 2]), ridge=1.0)(torch.tensor([1]))


def _dataset(tmp_path):
    tokens = np.array(["[PAD]", "a", "b", "c", "d"], dtype=object)
    write_item_vectors(tmp_path / "vectors", ["d", "c", "b", "a"], ITEMS[1:].numpy()[::-1], {"dataset": "t"})
    return SimpleNamespace(
        dataset_name="t",
        iid_field="item_id",
        field2id_token={"item_id": tokens},
        inter_feat={"item_id": torch.tensor([1, 2, 3, 4, 4])},
    )


def _sampler(tmp_path, **overrides) -> TextAlignedDNSNegatives:
    config = {
        "dnsmn_n": 1,
        "aligndns_beta": 1.0,
        "aligndns_ridge": 1e-9,
        "aligndns_refit": 1,
        "aligndns_dims": None,
        "aligndns_permute": False,
        "aligndns_source": "text",
        "aligndns_center": False,  # the hand-checked picks below steer with g itself
        "seed": 5,
        "neg_sampler": "aligndns",
        "item_vectors": str(tmp_path / "vectors"),
        **overrides,
    }
    sampler = TextAlignedDNSNegatives(config, 2)
    sampler.bind(_dataset(tmp_path))
    return sampler


def _ctx(epoch: int = 0, items: torch.Tensor = ITEMS) -> NegativeContext:
    users = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    prop = Propagation(user=users, item=items)
    u, p = torch.tensor([1]), torch.tensor([4])  # the positive is item 4, placed along +y
    batch = {CANDIDATES_FIELD: torch.tensor([[2, 3]])}
    return NegativeContext(batch, u, p, users[u], items[p], prop, "n", epoch)


def test_the_text_steers_the_pick_and_the_changed_share_is_counted(tmp_path):
    # e_u = (1, 0): DNS scores 2 -> 0.5, 3 -> 0.6 and picks 3. g(text(4)) ≈ (0, 2), so β = 1 ranks by
    # (1, 1): 2 -> 1.5, 3 -> -0.4 and picks 2; β = -1 ranks by (1, -1): 2 -> -0.5, 3 -> 1.6, picks 3.
    toward = _sampler(tmp_path)
    assert toward(_ctx()).ids.tolist() == [[2]]
    assert toward.report()["text_changed_pick_share"] == 1.0
    # the stored text vectors are unit length, so g (linear) fits the CF coordinates well but not exactly
    assert 0.9 < toward.report()["text_map_r2_by_epoch"][0] < 1.0
    away = _sampler(tmp_path, aligndns_beta=-1.0)
    assert away(_ctx()).ids.tolist() == [[3]]
    assert away.report()["text_changed_pick_share"] == 0.0


def test_the_cf_control_steers_with_the_positives_own_embedding(tmp_path):
    # e_4 = (0, 2) is where the text put it too; move it to (0, -2) in CF space: β = 1 now ranks by (1, -1)
    # (2 -> -0.5, 3 -> 1.6) and keeps DNS's pick 3, while the text source still moves it to 2
    items = ITEMS.clone()
    items[4] = torch.tensor([0.0, -2.0])
    assert _sampler(tmp_path, aligndns_source="cf")(_ctx(items=items)).ids.tolist() == [[3]]
    assert _sampler(tmp_path, aligndns_source="text")(_ctx(items=ITEMS)).ids.tolist() == [[2]]


def test_the_both_source_sums_the_unit_cf_and_text_directions(tmp_path):
    # g fitted on ITEMS puts item 4 near (0, 2); then e_4 moves to (3, 0) in CF space (unit (1, 0)).
    # β = 1, ‖e_u‖ = 1: q = e_u + normalise((1, 0) + ĝ) ≈ (1, 0) + (1, 1)/√2, between the cf query
    # (2, 0) and the text one ≈ (1, 1)
    both = _sampler(tmp_path, aligndns_source="both")
    both(_ctx())  # fits g on ITEMS
    g = both.text_map(torch.tensor([4]))
    items = ITEMS.clone()
    items[4] = torch.tensor([3.0, 0.0])
    query = both.steered_query(_ctx(items=items))
    unit = torch.nn.functional.normalize
    assert torch.allclose(
        query, torch.tensor([[1.0, 0.0]]) + unit(torch.tensor([[1.0, 0.0]]) + unit(g, dim=1), dim=1)
    )
    assert torch.allclose(query, torch.tensor([[1.0 + 0.5**0.5, 0.5**0.5]]), atol=0.05)
    cf = _sampler(tmp_path, aligndns_source="cf").steered_query(_ctx(items=items))
    assert torch.allclose(cf, torch.tensor([[2.0, 0.0]]))


def test_centering_steers_with_the_positives_place_relative_to_the_catalogue(tmp_path):
    # g's mean output is g at the fitted items' mean text (g is affine); with the near-exact fit on ITEMS
    # that is ITEMS[1:].mean() = (0.525, 0.5). Centred, item 4 is placed along (0, 2) - (0.525, 0.5)
    sampler = _sampler(tmp_path, aligndns_center=True)
    sampler(_ctx())
    g = sampler.text_map(torch.tensor([1, 2, 3, 4]))
    assert torch.allclose(sampler.text_map.mean_output, g.mean(dim=0), atol=1e-6)
    unit = torch.nn.functional.normalize
    query = sampler.steered_query(_ctx())
    assert torch.allclose(query, torch.tensor([[1.0, 0.0]]) + unit(g[3:] - g.mean(dim=0), dim=1))
    # the cf source subtracts the current mean item embedding of the training items (rows 1-4)
    cf = _sampler(tmp_path, aligndns_source="cf", aligndns_center=True).steered_query(_ctx())
    assert torch.allclose(cf, torch.tensor([[1.0, 0.0]]) + unit(torch.tensor([[-0.525, 1.5]]), dim=1))
    # a mean direction shared by every item steers nothing once centred: shifting the catalogue by a
    # constant leaves the centred cf query as it was
    shifted = _sampler(tmp_path, aligndns_source="cf", aligndns_center=True)
    moved = ITEMS + torch.tensor([5.0, 5.0])
    assert torch.allclose(shifted.steered_query(_ctx(items=moved)), cf)


def test_beta_zero_is_dns_mn_on_the_same_candidates(tmp_path):
    rng = torch.Generator().manual_seed(0)
    items = torch.randn(5, 2, generator=rng)
    items[0] = 0
    plain = DNSMNNegatives({"dnsmn_n": 1}, 2)
    sampler = _sampler(tmp_path, aligndns_beta=0.0)
    assert torch.equal(sampler(_ctx(items=items)).ids, plain(_ctx(items=items)).ids)
    assert sampler.report()["text_changed_pick_share"] == 0.0


def test_g_is_refitted_on_schedule_and_not_in_evaluation(tmp_path):
    sampler = _sampler(tmp_path, aligndns_refit=2)
    for epoch in (0, 0, 1, 2, 3):
        sampler(_ctx(epoch))
    assert list(sampler.report()["text_map_r2_by_epoch"]) == [0, 2]
    sampler.eval()
    sampler(_ctx(4))
    assert list(sampler.report()["text_map_r2_by_epoch"]) == [0, 2]
    assert set(sampler.report()["text_changed_pick_share_by_epoch"]) == {0, 1, 2, 3}


def test_the_permuted_control_queries_with_another_items_text_deterministically(tmp_path):
    first = _sampler(tmp_path, aligndns_permute=True).query_row
    again = _sampler(tmp_path, aligndns_permute=True).query_row
    assert torch.equal(first, again) and first[0] == 0
    assert sorted(first[1:].tolist()) == [1, 2, 3, 4] and first.tolist() != [0, 1, 2, 3, 4]
    assert _sampler(tmp_path).query_row.tolist() == [0, 1, 2, 3, 4]


def test_bad_keys_and_a_missing_bind_name_themselves(tmp_path):
    with pytest.raises(ValueError, match="aligndns_refit"):
        _sampler(tmp_path, aligndns_refit=0)
    with pytest.raises(ValueError, match="aligndns_source"):
        _sampler(tmp_path, aligndns_source="llm")
    keys = ("aligndns_beta", "aligndns_ridge", "aligndns_refit", "aligndns_dims", "aligndns_permute", "seed")
    settings = dict(zip(keys, (1.0, 1.0, 1, None, False, 0)))
    unbound = TextAlignedDNSNegatives({"dnsmn_n": 1, "aligndns_source": "text", **settings}, 2)
    with pytest.raises(RuntimeError, match="bind"):
        unbound(_ctx())


def test_aligndns_is_registered_and_needs_candidates_and_item_vectors():
    cls = sampler_class("aligndns")
    assert cls is TextAlignedDNSNegatives and cls.needs_candidates and cls.needs_item_vectors
    assert not cls.needs_semantic_pool and not cls.needs_text_guard
