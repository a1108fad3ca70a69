"""The semantic candidate pool (semdns): neighbours, draws, picks, the real loader and its failure modes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from recbole.data import create_dataset

from recbole_hnlm.config import make_config
from recbole_hnlm.negatives import CANDIDATES_FIELD, SEMANTIC_POOL_FIELD, SEMANTIC_POOL_MASK_FIELD
from recbole_hnlm.negatives.candidates import CandidateSampler
from recbole_hnlm.negatives.item_vectors import ItemVectorsError, load_item_vectors, write_item_vectors
from recbole_hnlm.negatives.samplers import NegativeContext, Propagation, sampler_class
from recbole_hnlm.negatives.semantic_pool import SemanticPool, SemanticPoolNegatives, nearest_items
from tests.conftest import FAST

# Items 1..5 on the unit circle at 0°, 30°, 100°, 180°, 270°; row 0 is RecBole's padding id.
ANGLES = np.deg2rad([0.0, 0.0, 30.0, 100.0, 180.0, 270.0])
VECTORS = torch.tensor(np.stack([np.cos(ANGLES), np.sin(ANGLES)], axis=1), dtype=torch.float32)
VECTORS[0] = 0.0


def test_nearest_items_ranks_by_inner_product_and_never_returns_padding_or_the_excluded_item():
    queries = torch.tensor([[1.0, 0.0], [0.1, 1.0], [-1.0, 0.0]])
    # (1, 0): 1, .87, ~0, -.17, -1; (.1, 1): .97, .59, .1, -.1, -1; (-1, 0): 1, .17, ~0, -.87, -1
    assert nearest_items(queries, VECTORS, 3).tolist() == [[1, 2, 5], [3, 2, 1], [4, 3, 5]]
    # excluding each query's own item (the text source: an item is not its own neighbour)
    assert nearest_items(VECTORS[[1, 3]], VECTORS, 2, exclude=torch.tensor([1, 3])).tolist() == [
        [2, 5],
        [2, 4],
    ]
    # a query scoring every item below zero still never gets the [PAD] row (score 0)
    assert 0 not in nearest_items(torch.tensor([[-1.0, -1.0]]), VECTORS, 5).ravel()
    with pytest.raises(ValueError, match="cannot take 5 neighbours among 5 items"):
        nearest_items(queries, VECTORS, 5, exclude=torch.tensor([1, 1, 1]))


def make_pool(k: int, neighbours, positives) -> SemanticPool:
    users, items = (np.array(x, dtype=np.int64) for x in zip(*positives))
    candidates = CandidateSampler(users, items, n_items=10, num=4)
    # interaction r uses table row r
    return SemanticPool(np.array(neighbours), np.arange(len(neighbours)), k, candidates)


def test_a_draw_takes_k_distinct_neighbours_and_redraws_the_users_positives():
    # user 1 trained on items 1, 2, 3; user 2 on item 9
    positives = [(1, 1), (1, 2), (1, 3), (2, 9)]
    neighbours = [[2, 4, 5, 6], [7, 8, 9, 3]]
    pool = make_pool(3, neighbours, positives)
    for seed in range(20):
        np.random.seed(seed)
        items, semantic = pool.draw(np.array([0, 1]), np.array([1, 2]))
        items, semantic = items.numpy(), semantic.numpy()
        assert items.shape == semantic.shape == (2, 3)
        for row, user in enumerate((1, 2)):
            taken = items[row][semantic[row]]
            assert set(taken) <= set(neighbours[row]) and len(set(taken)) == len(taken)
            assert not any((user, int(i)) in positives for i in items[row])
        # user 1's neighbour 2 and user 2's neighbour 9 are positives: never semantic when shown
        assert 2 not in items[0][semantic[0]] and 9 not in items[1][semantic[1]]
    assert pool.drawn == 20 * 6
    # user 1 draws 2 with probability 3/4 per draw, user 2 draws 9 with probability 3/4
    assert 0 < pool.redrawn < pool.drawn


def test_draws_are_deterministic_under_the_seed():
    pool = make_pool(2, [[2, 4, 5, 6, 7, 8]] * 3, [(1, 1), (2, 2)])
    runs = []
    for _ in range(2):
        np.random.seed(3)
        runs.append(pool.draw(np.array([0, 1, 2]), np.array([1, 2, 1]))[0])
    assert torch.equal(*runs)


def test_k_larger_than_the_neighbour_rows_is_an_error():
    with pytest.raises(ValueError, match="semdns_k"):
        make_pool(5, [[2, 3, 4, 5]], [(1, 1)])


def _ctx(uniform, pool, semantic):
    items = torch.tensor([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [3.0, 0.0], [4.0, 0.0], [5.0, 0.0]])
    users = torch.tensor([[0.0, 0.0], [1.0, 0.0], [-1.0, 0.0]])
    prop = Propagation(user=users, item=items, user_layers=[users], item_layers=[items])
    batch = {
        CANDIDATES_FIELD: torch.tensor(uniform),
        SEMANTIC_POOL_FIELD: torch.tensor(pool),
        SEMANTIC_POOL_MASK_FIELD: torch.tensor(semantic),
    }
    u, p = torch.tensor([1, 2]), torch.tensor([1, 1])
    return NegativeContext(batch, u, p, users[u], items[p], prop, "neg_item_id", 0)


def test_semdns_picks_the_top_n_of_the_union_and_counts_semantic_picks():
    sampler = SemanticPoolNegatives({"dnsmn_n": 2, "embedding_size": 2}, 2)
    # user 1 scores item m as m, user 2 as -m. Row 0: uniform {2, 3}, semantic {5, 4 (a redrawn positive)}
    ctx = _ctx([[2, 3], [2, 3]], [[5, 4], [1, 5]], [[True, False], [True, True]])
    out = sampler(ctx)
    assert out.ids.tolist() == [[5, 4], [1, 2]]
    # picks from semantic slots: row 0 item 5 (item 4 was redrawn, not semantic); row 1 item 1
    assert sampler.report()["semantic_pick_share"] == pytest.approx(2 / 4)
    assert sampler.report()["semantic_pick_share_by_epoch"] == {0: 0.5}
    assert out.emb.shape == (2, 2, 2)
    sampler.eval()
    sampler(ctx)  # evaluation-mode calls are not counted
    assert sampler.report()["semantic_pick_share"] == pytest.approx(2 / 4)


def test_semdns_is_registered_and_needs_both_pools():
    cls = sampler_class("semdns")
    assert cls is SemanticPoolNegatives and cls.needs_candidates and cls.needs_semantic_pool


# --- the real loader on a slice of the real toys data -------------------------------------------------


@pytest.fixture(scope="module")
def slice_with_vectors(text_sampler_train):
    return lambda **overrides: text_sampler_train("semdns", **overrides)


def test_the_real_loader_attaches_k_semantic_candidates_that_are_never_positives(slice_with_vectors):
    config, train = slice_with_vectors(semdns_k=4, semdns_neighbours=8)
    dataset = train._dataset
    positives = set(
        zip(dataset.inter_feat[dataset.uid_field].tolist(), dataset.inter_feat[dataset.iid_field].tolist())
    )
    pool = train.semantic_pool
    table = pool.neighbours
    vectors = load_item_vectors(config["item_vectors"], dataset)
    # each positive's row holds its 8 text neighbours, itself excluded
    item = int(dataset.inter_feat[dataset.iid_field][0])
    expected = nearest_items(vectors[[item]], vectors, 8, exclude=torch.tensor([item]))[0]
    assert table[pool.row_of_interaction[0]].tolist() == expected.tolist()
    batches = list(train)
    for batch in batches:
        users = batch[dataset.uid_field]
        items, semantic = batch[SEMANTIC_POOL_FIELD], batch[SEMANTIC_POOL_MASK_FIELD]
        assert items.shape == semantic.shape == (len(users), 4)
        assert not any((u, c) in positives for u, row in zip(users.tolist(), items.tolist()) for c in row)
    assert pool.drawn == 4 * sum(len(b) for b in batches)
    assert 0 < pool.redrawn < pool.drawn  # text neighbours of a positive are sometimes positives too


def test_the_loader_semantic_slots_come_from_the_positives_neighbour_row(slice_with_vectors):
    config, train = slice_with_vectors(semdns_k=3, semdns_neighbours=6)
    dataset = train._dataset
    vectors = load_item_vectors(config["item_vectors"], dataset)
    for batch in train:
        for p, row, mask in zip(
            batch[dataset.iid_field].tolist(),
            batch[SEMANTIC_POOL_FIELD].tolist(),
            batch[SEMANTIC_POOL_MASK_FIELD].tolist(),
        ):
            allowed = set(nearest_items(vectors[[p]], vectors, 6, exclude=torch.tensor([p]))[0].tolist())
            assert all(c in allowed for c, m in zip(row, mask) if m)
        break


def test_permuted_rows_are_a_seeded_permutation_of_the_table(slice_with_vectors):
    _, plain = slice_with_vectors(semdns_k=2, semdns_neighbours=5)
    _, shuffled = slice_with_vectors(semdns_k=2, semdns_neighbours=5, semdns_permute=True)
    a, b = plain.semantic_pool.neighbours, shuffled.semantic_pool.neighbours
    assert not np.array_equal(a, b)
    assert sorted(map(tuple, a.tolist())) == sorted(map(tuple, b.tolist()))


def test_bad_pool_settings_name_the_key(slice_with_vectors):
    with pytest.raises(ValueError, match="semdns_query"):
        slice_with_vectors(semdns_query="title")
    with pytest.raises(ValueError, match="semdns_store"):
        slice_with_vectors(semdns_query="store")
    with pytest.raises(ValueError, match="semdns_neighbours"):
        slice_with_vectors(semdns_neighbours=0)


def test_item_vectors_for_another_dataset_are_refused_naming_the_folder(toys_slice, tmp_path, in_tmp):
    config = make_config("HNLMLightGCN", toys_slice["dataset"], config_dict={**FAST, **toys_slice["config"]})
    dataset = create_dataset(config)
    folder = tmp_path / "other"
    write_item_vectors(folder, ["a", "b"], np.eye(2), {"dataset": "other"})
    with pytest.raises(ItemVectorsError, match=rf"{folder}.*have no vector"):
        load_item_vectors(folder, dataset)
    with pytest.raises(ItemVectorsError, match="not an item-vectors folder"):
        load_item_vectors(tmp_path, dataset)
    with pytest.raises(ItemVectorsError, match="NaN or inf"):
        write_item_vectors(tmp_path / "nan", ["a"], np.array([[np.nan, 1.0]]), {})
    with pytest.raises(ItemVectorsError, match="2 tokens but vectors of shape"):
        write_item_vectors(tmp_path / "shape", ["a", "b"], np.ones((3, 2)), {})


def test_semdns_needs_n_at_most_the_pool():
    sampler = SemanticPoolNegatives({"dnsmn_n": 5, "embedding_size": 2}, 2)
    ctx = _ctx([[2, 3], [2, 3]], [[5, 4], [1, 5]], [[True, True], [True, True]])
    message = r"N <= M: dnsmn_n is 5 but there are 4 candidates .*semdns_candidates"
    with pytest.raises(ValueError, match=message):
        sampler(ctx)
