"""The shared semantic-negative pieces on hand-checkable inputs."""

from __future__ import annotations

import math

import pytest
import torch

from recbole_hnlm.models.semantic import SemanticAdapter, alignment_loss, hinge_loss, mix_negative
from recbole_hnlm.negatives.store import StoreError


def test_hinge_loss_matches_hand_computation():
    pos = torch.tensor([1.0, 0.2, 2.0])
    neg = torch.tensor([0.5, 0.4, 0.0])
    # max(0, 0.5-1+0.3)=0, max(0, 0.4-0.2+0.3)=0.5, max(0, 0-2+0.3)=0 -> mean 0.5/3
    assert hinge_loss(pos, neg, 0.3).item() == pytest.approx(0.5 / 3)


def test_alignment_loss_matches_hand_computation():
    u = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    i = torch.tensor([[1.0, 1.0], [0.0, 1.0]])
    h = torch.tensor([[-1.0, 0.0], [3.0, 0.0]])
    tau = 0.5

    # row 0: cos(u,i)=1/sqrt2, cos(u,h)=-1; row 1: cos(u,i)=1, cos(u,h)=0
    def row(a, b):
        return -math.log(math.exp(a / tau) / (math.exp(a / tau) + math.exp(b / tau)))

    expected = (row(1 / math.sqrt(2), -1.0) + row(1.0, 0.0)) / 2
    assert alignment_loss(u, i, h, tau).item() == pytest.approx(expected, rel=1e-6)


def test_mix_negative_applies_alpha_only_where_masked():
    adapted = torch.tensor([[2.0, 2.0], [4.0, 4.0], [6.0, 6.0]])
    sampled = torch.tensor([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    mask = torch.tensor([True, False, True])
    out = mix_negative(adapted, sampled, 0.25, mask)
    assert out.tolist() == [[0.5, 1.25], [1.0, 0.0], [2.25, 2.25]]


def test_adapter_shape_activation_and_dimension_error():
    torch.manual_seed(0)
    adapter = SemanticAdapter(6, 4, [8, 5], activation="tanh", final_activation="relu")
    out = adapter(torch.randn(3, 6))
    assert out.shape == (3, 4) and bool((out >= 0).all())
    linears = [m for m in adapter.mlp if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(6, 8), (8, 5), (5, 4)]
    with pytest.raises(StoreError, match="dimension 7, but the adapter expects 6"):
        adapter(torch.randn(2, 7))
    with pytest.raises(ValueError, match="adapter_final_activation"):
        SemanticAdapter(6, 4, [], final_activation="swishy")


def test_match_norm_keeps_direction_and_takes_reference_norm():
    from recbole_hnlm.models.semantic import match_norm

    out = match_norm(torch.tensor([[3.0, 4.0], [0.0, 2.0]]), torch.tensor([[0.0, 10.0], [1.0, 0.0]]))
    assert torch.allclose(out, torch.tensor([[6.0, 8.0], [0.0, 1.0]]))


def test_reverse_gradient_negates_only_the_gradient():
    from recbole_hnlm.models.semantic import reverse_gradient

    x = torch.tensor([1.0, -2.0], requires_grad=True)
    y = reverse_gradient(x)
    assert y.tolist() == [1.0, -2.0]
    (y * torch.tensor([3.0, 5.0])).sum().backward()
    assert x.grad.tolist() == [-3.0, -5.0]
