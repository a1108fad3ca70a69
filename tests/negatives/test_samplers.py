"""The hard samplers on small hand-made embeddings, their loss interface, leakage and determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from recbole.data import create_dataset, data_preparation
from recbole.utils import init_seed

from recbole_hnlm import methods
from recbole_hnlm.config import make_config
from recbole_hnlm.models.semantic import PluginLossMixin
from recbole_hnlm.negatives import CANDIDATES_FIELD
from recbole_hnlm.negatives.candidates import CandidateSampler
from recbole_hnlm.negatives.samplers import (
    SAMPLERS,
    NegativeContext,
    Negatives,
    Propagation,
    candidate_count,
    sampler_class,
)
from tests.conftest import CF_HARD_SAMPLERS, FAST

HARD = CF_HARD_SAMPLERS

# 6 items (0 is RecBole's padding id), 2-d embeddings, hand-picked scores for the user (1, 0).
ITEMS = torch.tensor([[0.0, 0.0], [3.0, 0.0], [1.0, 5.0], [2.0, -1.0], [-1.0, 0.0], [0.5, 0.5]])
USERS = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])


def make_ctx(candidates, users=(1, 2), pos=(5, 5), prop=None, epoch=0):
    prop = prop or Propagation(user=USERS, item=ITEMS, user_layers=[USERS], item_layers=[ITEMS])
    users, pos = torch.tensor(users), torch.tensor(pos)
    batch = {CANDIDATES_FIELD: torch.tensor(candidates), "neg_item_id": torch.tensor([4] * len(users))}
    return NegativeContext(batch, users, pos, prop.user[users], prop.item[pos], prop, "neg_item_id", epoch)


def build(name, **config):
    return sampler_class(name)({"embedding_size": 2, **config}, 2)


def test_registry_has_every_sampler_and_candidate_counts():
    text_samplers = {"semdns", "guarddns", "aligndns"}
    assert set(SAMPLERS) == set(methods.names(methods.HARD, aliases=False)) == {"rns", *HARD, *text_samplers}
    assert not SAMPLERS["rns"].needs_candidates and all(SAMPLERS[n].needs_candidates for n in HARD)
    assert [n for n, cls in SAMPLERS.items() if cls.needs_semantic_pool] == ["semdns"]
    assert candidate_count({"neg_sampler": "dns", "neg_candidates": 16, "dns_candidates": None}) == 16
    assert candidate_count({"neg_sampler": "ahns", "neg_candidates": 16, "ahns_candidates": 32}) == 32
    with pytest.raises(ValueError, match="dens_candidates"):
        candidate_count({"neg_sampler": "dens", "neg_candidates": 16, "dens_candidates": 0})
    with pytest.raises(ValueError, match="choose one of"):
        sampler_class("nope")


def test_dns_picks_the_argmax_with_gradient():
    # user 1 = (1, 0) scores items 1..5 as 3, 1, 2, -1, 0.5; user 2 = (0, 1) as 0, 5, -1, 0, 0.5
    item = ITEMS.clone().requires_grad_(True)
    prop = Propagation(user=USERS, item=item)
    out = build("dns")(make_ctx([[2, 3, 1, 4], [1, 3, 4, 5]], prop=prop))
    assert out.ids.tolist() == [1, 5]
    assert torch.equal(out.emb, ITEMS[[1, 5]])
    out.emb.sum().backward()
    assert item.grad[1].tolist() == [1.0, 1.0] and item.grad[2].tolist() == [0.0, 0.0]


def test_dnsmn_returns_the_top_n_and_checks_n_le_m():
    out = build("dnsmn", dnsmn_n=2)(make_ctx([[2, 3, 1, 4], [2, 3, 4, 5]]))
    assert out.emb.shape == (2, 2, 2) and out.per_row == 2
    assert out.ids.tolist() == [[1, 3], [2, 5]]  # user 1: scores 3 > 2; user 2: 5 > 0.5
    assert [c.ids.tolist() for c in out.columns()] == [[1, 2], [3, 5]]
    with pytest.raises(ValueError, match="N <= M"):
        build("dnsmn", dnsmn_n=5)(make_ctx([[2, 3, 1, 4], [1, 3, 4, 5]]))


def test_dnsmn_ranks_several_queries_from_one_gather_as_it_ranks_each():
    sampler = build("dnsmn", dnsmn_n=2)
    ctx = make_ctx([[2, 3, 1, 4], [2, 3, 4, 5]])
    other = torch.tensor([[0.1, 1.0], [-1.0, 0.0]])  # two other queries, one per row
    plain, steered = sampler.top_columns_of(ctx, ctx.candidates(), [ctx.user_e, other])
    assert torch.equal(plain, sampler.top_columns(ctx, ctx.candidates()))
    assert torch.equal(steered, sampler.top_columns(ctx, ctx.candidates(), other))
    # row 1 by (0.1, 1): items 2, 3, 1, 4 score 5.1, -0.8, 0.3, -0.1 -> columns 0, 2;
    # row 2 by (-1, 0): items 2, 3, 4, 5 score -1, -2, 1, -0.5 -> columns 2, 3
    assert steered.tolist() == [[0, 2], [2, 3]]


def test_ahns_picks_the_candidate_closest_to_the_target_hardness():
    # s_pos = u·item5: user 1 -> 0.5, user 2 -> 0.5; target = beta * (0.5 + alpha)^(p+1)
    sampler = build("ahns", ahns_alpha=1.5, ahns_beta=2.0, ahns_p=-2)  # 2 * (2)^-1 = 1.0
    out = sampler(make_ctx([[1, 2, 3, 4], [1, 2, 3, 4]]))
    # user 1 scores 3, 1, 2, -1 -> item 2 (score 1); user 2 scores 0, 5, -1, 0 -> items 1/4 tie at |0-1|
    assert out.ids.tolist() == [2, 1]
    sampler = build("ahns", ahns_alpha=0.5, ahns_beta=2.0, ahns_p=0)  # 2 * (1)^1 = 2
    # user 1 -> item 3 (score 2); user 2 -> items 1/4 tie at |0-2| (the first is kept)
    assert sampler(make_ctx([[1, 2, 3, 4], [1, 2, 3, 4]])).ids.tolist() == [3, 1]
    with pytest.raises(ValueError, match="ahns_p"):
        build("ahns", ahns_p=-1.5)


def layered_prop(n_users=5, n_items=9, dim=3, n_layers=3, pool="mean", seed=0):
    gen = torch.Generator().manual_seed(seed)
    users = [torch.randn(n_users, dim, generator=gen) for _ in range(n_layers)]
    items = [torch.randn(n_items, dim, generator=gen).requires_grad_(True) for _ in range(n_layers)]
    if pool == "mean":
        user, item = torch.stack(users).mean(0), torch.stack(items).mean(0)
    else:
        user, item = torch.cat(users, -1), torch.cat(items, -1)
    return Propagation(user=user, item=item, user_layers=users, item_layers=items, pool=pool), items


@pytest.mark.parametrize(("pool", "n_layers"), [("mean", 3), ("concat", 3), ("mean", 1)])
def test_mixgcf_equals_the_hand_computed_mix(pool, n_layers):
    prop, items = layered_prop(pool=pool, n_layers=n_layers)
    cands = [[1, 2, 3, 4, 6], [2, 7, 8, 1, 3], [5, 6, 7, 8, 1]]
    ctx = make_ctx(cands, users=(0, 3, 4), pos=(5, 4, 2), prop=prop)
    torch.manual_seed(123)
    out = sampler_class("mixgcf")({}, 3)(ctx)

    # By hand, as the paper writes it: mix every candidate with the positive per layer (alpha ~ U(0,1)
    # per row and layer), score every mixed candidate, keep the best per layer, pool the layers.
    torch.manual_seed(123)
    alpha = torch.rand(3, n_layers, 1)
    expected_rows = []
    for b in range(3):
        per_layer = []
        for layer in range(n_layers):
            table = items[layer].detach()
            query = prop.user_layers[layer][ctx.users[b]] if pool == "concat" else ctx.user_e[b].detach()
            mixed = [
                alpha[b, layer] * table[ctx.pos_items[b]] + (1 - alpha[b, layer]) * table[c] for c in cands[b]
            ]
            scores = [float(query @ m) for m in mixed]
            per_layer.append(mixed[int(np.argmax(scores))])
        expected_rows.append(torch.stack(per_layer).mean(0) if pool == "mean" else torch.cat(per_layer))
    assert torch.allclose(out.emb, torch.stack(expected_rows), atol=1e-6)
    assert out.ids is None and out.ego.shape == (3, 3)
    out.emb.sum().backward()
    assert items[0].grad[5].abs().sum() > 0  # gradient reaches the positive it was mixed with


def test_dens_selects_with_gates_and_trains_them():
    prop, items = layered_prop()
    cands = [[1, 2, 3, 4, 6], [2, 7, 8, 1, 3], [5, 6, 7, 8, 1]]
    torch.manual_seed(0)
    sampler = sampler_class("dens")({"embedding_size": 3, "dens_gamma": 0.3, "dens_warmup": 10}, 3)
    ctx = make_ctx(cands, users=(0, 3, 4), pos=(5, 4, 2), prop=prop, epoch=4)
    out = sampler(ctx)

    # By hand: gates on every candidate (the reference formulation), score s_l·((1-w)·n - gated(n)).
    w = 1 - min(1.0, 4 / 10)
    expected = []
    with torch.no_grad():
        for layer in range(3):
            s = prop.user_layers[layer][ctx.users]
            p = items[layer][ctx.pos_items]
            n = items[layer][torch.tensor(cands)]
            g = sampler.gates["3"]
            gp = p * torch.sigmoid(g.item_gate(p) + g.user_gate(s))
            gn = n * torch.sigmoid(g.neg_gate(n) + g.pos_gate(gp).unsqueeze(1))
            scores = (s.unsqueeze(1) * (w * n - gn)).sum(-1)
            expected.append(torch.tensor(cands).gather(1, scores.argmax(1, keepdim=True)).squeeze(1))
    expected_emb = torch.stack([items[k][expected[k]] for k in range(3)]).mean(0)
    assert torch.allclose(out.emb, expected_emb)
    assert out.extra_loss is not None and out.extra_loss.item() > 0
    out.extra_loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in sampler.parameters())


def test_dens_has_gates_per_layer_width():
    prop, _ = layered_prop(dim=3)
    with pytest.raises(ValueError, match="a layer is 3-d"):
        sampler_class("dens")({"embedding_size": 4}, 4)(make_ctx([[1, 2]], users=(0,), pos=(5,), prop=prop))
    widths = sampler_class("dens")({"embedding_size": 4, "hidden_size_list": [8, 8, 4]}, 4).gates
    assert sorted(widths) == ["4", "8"]


class _TinyMF(PluginLossMixin, torch.nn.Module):
    """The shared loss on fixed embeddings, with a sampler returning given negatives."""

    USER_ID, ITEM_ID, NEG_ITEM_ID = "user_id", "item_id", "neg_item_id"

    def __init__(self, negatives):
        torch.nn.Module.__init__(self)
        self.current_epoch, self.rank_loss = 0, "bpr"
        self.semantic_adapter = self.profile_alignment = None
        self.negative_sampler = lambda ctx: negatives

    def propagate(self):
        return Propagation(user=USERS, item=ITEMS)

    def bpr_loss(self, pos, neg):
        return -F.logsigmoid(pos - neg).mean()


def test_the_ranking_loss_averages_over_n_negatives():
    batch = {"user_id": torch.tensor([1, 2]), "item_id": torch.tensor([5, 5])}
    neg_ids = torch.tensor([[1, 3], [2, 4]])
    loss = _TinyMF(Negatives(emb=ITEMS[neg_ids], ids=neg_ids)).calculate_loss(batch)
    pos = torch.tensor([0.5, 0.5])
    neg = torch.tensor([[3.0, 2.0], [5.0, 0.0]])  # user 1 · items 1, 3; user 2 · items 2, 4
    expected = (-F.logsigmoid(pos[:, None] - neg)).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    single = _TinyMF(Negatives(emb=ITEMS[neg_ids[:, 0]], ids=neg_ids[:, 0])).calculate_loss(batch)
    assert single.item() == pytest.approx((-F.logsigmoid(pos - neg[:, 0])).mean().item(), rel=1e-6)


def test_candidate_sampler_never_returns_a_training_positive():
    rng = np.random.default_rng(7)
    for trial in range(20):
        n_users, n_items = int(rng.integers(3, 40)), int(rng.integers(5, 60))
        density = rng.uniform(0.05, 0.8)
        pairs = [(u, i) for u in range(1, n_users) for i in range(1, n_items) if rng.random() < density]
        if not pairs:
            continue
        users, items = (np.array(x, dtype=np.int64) for x in zip(*pairs))
        positives = set(pairs)
        sampler = CandidateSampler(users, items, n_items, int(rng.integers(1, 20)))
        counts = {u: sum((u, i) in positives for i in range(1, n_items)) for u in range(1, n_users)}
        free = {u for u, count in counts.items() if count < n_items - 1}
        if not free:
            continue
        batch = rng.choice(sorted(free), size=64)
        np.random.seed(trial)
        cands = sampler.sample(batch).numpy()
        assert cands.shape == (64, sampler.num) and cands.min() >= 1 and cands.max() < n_items
        assert not any((int(u), int(c)) in positives for u, row in zip(batch, cands) for c in row)


@pytest.fixture(scope="module")
def slice_train_data(toys_slice, tmp_path_factory):
    def load(sampler, seed=2020):
        import os

        cwd = os.getcwd()
        os.chdir(tmp_path_factory.mktemp("run"))
        try:
            config = make_config(
                "HNLMLightGCN",
                toys_slice["dataset"],
                config_dict={**FAST, **toys_slice["config"], "neg_sampler": sampler, "seed": seed},
            )
            init_seed(config["seed"], config["reproducibility"])
            train, _, _ = data_preparation(config, create_dataset(config))
            return config, train
        finally:
            os.chdir(cwd)

    return load


def _batches(train):
    return [batch for batch in train]


def test_the_real_train_loader_never_offers_or_picks_a_training_positive(slice_train_data):
    config, train = slice_train_data("dns")
    dataset = train._dataset
    positives = set(
        zip(dataset.inter_feat[dataset.uid_field].tolist(), dataset.inter_feat[dataset.iid_field].tolist())
    )
    batches = _batches(train)
    assert batches[0][CANDIDATES_FIELD].shape[1] == candidate_count(config) == 16
    gen = torch.Generator().manual_seed(0)
    users_emb = torch.randn(dataset.user_num, 4, generator=gen)
    items_emb = torch.randn(dataset.item_num, 4, generator=gen)
    prop = Propagation(user=users_emb, item=items_emb, user_layers=[users_emb], item_layers=[items_emb])
    samplers = [sampler_class(n)({"embedding_size": 4}, 4) for n in HARD]
    for batch in batches:
        users = batch[dataset.uid_field]
        pos = batch[dataset.iid_field]
        cands = batch[CANDIDATES_FIELD]
        assert not any((u, c) in positives for u, row in zip(users.tolist(), cands.tolist()) for c in row)
        ctx = NegativeContext(batch, users, pos, users_emb[users], items_emb[pos], prop, "neg_item_id")
        for sampler in samplers:
            out = sampler(ctx)
            if out.ids is not None:
                chosen = out.ids.reshape(len(users), -1).tolist()
                assert not any((u, c) in positives for u, row in zip(users.tolist(), chosen) for c in row)


def test_candidates_and_picks_are_deterministic_under_a_seed(slice_train_data):
    runs = []
    for _ in range(2):
        _, train = slice_train_data("mixgcf", seed=11)
        init_seed(11, True)
        runs.append([b[CANDIDATES_FIELD] for b in _batches(train)])
    assert all(torch.equal(a, b) for a, b in zip(*runs))
    _, other = slice_train_data("mixgcf", seed=12)
    init_seed(12, True)
    assert not all(torch.equal(a, b[CANDIDATES_FIELD]) for a, b in zip(runs[0], _batches(other)))

    prop, _ = layered_prop()
    ctx = make_ctx([[1, 2, 3, 4, 6], [2, 7, 8, 1, 3]], users=(0, 3), pos=(5, 4), prop=prop)
    outs = []
    for _ in range(2):
        torch.manual_seed(5)
        outs.append(sampler_class("mixgcf")({}, 3)(ctx).emb)
    assert torch.equal(outs[0], outs[1])
