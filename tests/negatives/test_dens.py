"""DENS: the factor loss built from the selection's gate values has plain autograd's value and gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from recbole_hnlm.negatives import CANDIDATES_FIELD
from recbole_hnlm.negatives.dens import DENSNegatives, GatedProduct
from recbole_hnlm.negatives.samplers import NegativeContext, Propagation


def test_gated_product_backward_passes_gradcheck():
    gen = torch.Generator().manual_seed(3)
    shapes = [(4, 2, 3), (4, 2, 3), (3, 3), (3, 3), (3,), (3,)]
    inputs = [torch.randn(s, generator=gen, dtype=torch.double).requires_grad_(True) for s in shapes]

    def gated(x, y, wx, wy, bx, by):
        gate = torch.sigmoid(F.linear(x, wx, bx) + F.linear(y, wy, by)).detach()
        return GatedProduct.apply(x, y, wx, wy, bx, by, gate)

    # the forward takes the gate as computed elsewhere (detached), so finite differences of this function
    # are those of the whole expression x ⊙ σ(x·Wxᵀ + bx + y·Wyᵀ + by): the backward must match them
    assert torch.autograd.gradcheck(gated, inputs)


def joint_prop(n_users=4, n_items=10, dim=3, n_layers=3, seed=0):
    """Layers as leaves with gradient (users and items), mean-pooled, as a LightGCN step sees them."""
    gen = torch.Generator().manual_seed(seed)
    users = [torch.randn(n_users, dim, generator=gen).requires_grad_(True) for _ in range(n_layers)]
    items = [torch.randn(n_items, dim, generator=gen).requires_grad_(True) for _ in range(n_layers)]
    prop = Propagation(
        user=torch.stack(users).mean(0), item=torch.stack(items).mean(0), user_layers=users, item_layers=items
    )
    return prop, users, items


@pytest.mark.parametrize("epoch", [0, 4, 50])
def test_factor_loss_matches_plain_autograd(epoch):
    prop, users, items = joint_prop()
    cands = torch.tensor([[1, 2, 3, 4, 6], [2, 7, 8, 1, 3], [5, 6, 7, 9, 1]])
    user_ids, pos_ids = torch.tensor([0, 3, 2]), torch.tensor([5, 4, 2])
    batch = {CANDIDATES_FIELD: cands, "neg_item_id": torch.tensor([4, 4, 4])}
    ctx = NegativeContext(
        batch, user_ids, pos_ids, prop.user[user_ids], prop.item[pos_ids], prop, "neg_item_id", epoch
    )
    torch.manual_seed(0)
    sampler = DENSNegatives({"embedding_size": 3, "dens_gamma": 1.0, "dens_warmup": 10}, 3)
    out = sampler(ctx)
    params = list(sampler.parameters())
    leaves = [*users, *items]
    got = torch.autograd.grad(out.extra_loss, params + leaves, allow_unused=True, retain_graph=True)

    # By hand with plain autograd, on the negatives the sampler chose: the reference formulation of the gates.
    g = sampler.gates["3"]
    w = 1 - min(1.0, epoch / 10)
    with torch.no_grad():
        chosen = []
        for k in range(3):
            s, p, n = users[k][user_ids], items[k][pos_ids], items[k][cands]
            gp = p * torch.sigmoid(g.item_gate(p) + g.user_gate(s))
            gn = n * torch.sigmoid(g.neg_gate(n) + g.pos_gate(gp).unsqueeze(1))
            chosen.append(
                cands.gather(1, (s.unsqueeze(1) * (w * n - gn)).sum(-1).argmax(1, keepdim=True))[:, 0]
            )
    s = torch.stack([u[user_ids] for u in users], 1)
    p = torch.stack([t[pos_ids] for t in items], 1)
    n = torch.stack([t[c] for t, c in zip(items, chosen)], 1)
    gp = p * torch.sigmoid(g.item_gate(p) + g.user_gate(s))
    gn = n * torch.sigmoid(g.neg_gate(n) + g.pos_gate(gp))
    u = ctx.user_e
    pos_rel, neg_rel, pos_irr, neg_irr = gp.mean(1), gn.mean(1), (p - gp).mean(1), (n - gn).mean(1)
    score = {
        name: (u * e).sum(-1)
        for name, e in [("pr", pos_rel), ("nr", neg_rel), ("pi", pos_irr), ("ni", neg_irr)]
    }
    pairs = [("pi", "pr"), ("nr", "ni"), ("nr", "pr"), ("pi", "ni")]
    expected = sum(F.softplus(score[a] - score[b]).mean() for a, b in pairs) / 4
    assert torch.allclose(out.emb, n.mean(1))
    assert torch.allclose(out.extra_loss, expected, atol=1e-6)
    want = torch.autograd.grad(expected, params + leaves, allow_unused=True)
    for a, b in zip(got, want):
        assert (a is None) == (b is None) or (a if a is not None else b).abs().max() == 0
        if a is not None and b is not None:
            assert torch.allclose(a, b, atol=1e-6)
    assert all(a is not None and a.abs().sum() > 0 for a in got[: len(params)])  # every gate is trained
