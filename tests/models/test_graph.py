"""The CSR graph product: the values and gradients of ``A @ x``, symmetric or not, and its cache."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch

from recbole_hnlm.models.graph import SparseGraph, graph_of


def coo(dense: torch.Tensor) -> torch.Tensor:
    """``dense`` as an uncoalesced COO tensor, its entries listed twice at half value (as RecBole's
    adjacency can hold repeated indices)."""
    index = dense.nonzero().t()
    values = dense[index[0], index[1]] / 2
    return torch.sparse_coo_tensor(torch.cat([index, index], 1), torch.cat([values, values]), dense.shape)


def test_product_and_gradient_of_a_non_symmetric_matrix():
    dense = torch.tensor([[0.0, 2.0, 0.0], [1.0, 0.0, 3.0], [0.0, 0.0, 4.0]])
    graph = SparseGraph(coo(dense))
    assert not graph.symmetric
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, -1.0]], requires_grad=True)
    out = graph(x)
    assert torch.equal(out, torch.tensor([[0.0, 2.0], [7.0, -3.0], [8.0, -4.0]]))
    weights = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    (out * weights).sum().backward()
    assert torch.equal(x.grad, dense.t() @ weights)  # Aᵀ·grad: [[0, 1], [2, 1], [0, 7]]


def test_a_symmetric_matrix_uses_one_csr_copy_both_ways():
    dense = torch.tensor([[0.0, 0.5, 0.25], [0.5, 0.0, 0.0], [0.25, 0.0, 0.0]])
    graph = SparseGraph(coo(dense))
    assert graph.symmetric and graph.transposed is graph.matrix
    x = torch.randn(3, 4, generator=torch.Generator().manual_seed(0), requires_grad=True)
    graph(graph(x)).pow(2).sum().backward()
    reference = x.detach().clone().requires_grad_(True)
    (dense @ (dense @ reference)).pow(2).sum().backward()
    assert torch.allclose(x.grad, reference.grad, atol=1e-6)


def test_a_dense_matrix_is_refused():
    with pytest.raises(ValueError, match="sparse COO"):
        SparseGraph(torch.eye(2))


def test_graph_of_builds_once_and_again_when_the_matrix_is_replaced():
    module = torch.nn.Module()
    module.adjacency = coo(torch.eye(3))
    first = graph_of(module, "adjacency")
    assert graph_of(module, "adjacency") is first
    module.adjacency = coo(2 * torch.eye(3))
    second = graph_of(module, "adjacency")
    assert second is not first and torch.equal(second(torch.ones(3, 1)), torch.full((3, 1), 2.0))


def test_a_module_with_a_built_graph_can_be_copied_and_pickled():
    module = torch.nn.Module()
    module.adjacency = coo(torch.tensor([[0.0, 1.0], [1.0, 0.0]]))
    graph_of(module, "adjacency")
    for clone in (copy.deepcopy(module), pickle.loads(pickle.dumps(module))):
        assert torch.equal(
            graph_of(clone, "adjacency")(torch.tensor([[1.0], [2.0]])), torch.tensor([[2.0], [1.0]])
        )
