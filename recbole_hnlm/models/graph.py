"""Products with a model's fixed sparse graph, in the layout the CPU multiplies fastest.

RecBole builds LightGCN's normalised adjacency as an uncoalesced COO tensor. ``torch.sparse.mm`` on it costs
~22 ms per ``[users + items, 64]`` product on toys on one CPU thread, and its backward (``Aᵀ·grad``) as much
again; the same product on a CSR copy costs ~8.5 ms. The backward of ``A·x`` is ``Aᵀ·grad``, and
``D^-½ A D^-½`` of an undirected graph is symmetric, so both directions run on one CSR copy; a matrix that
is not symmetric keeps a CSR copy of its transpose as well.
"""

from __future__ import annotations

from typing import Any

import torch


class _GraphProduct(torch.autograd.Function):
    """``matrix @ x``, with ``transposed @ grad`` as its backward (sparse operands take no gradient)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, matrix: torch.Tensor, transposed: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.transposed = transposed
        return matrix @ x

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor):  # type: ignore[override]
        return ctx.transposed @ grad.contiguous(), None, None


class SparseGraph:
    """A fixed sparse matrix (``source``, any sparse layout) as CSR, applied with :meth:`__call__`."""

    def __init__(self, source: torch.Tensor) -> None:
        if not source.is_sparse:
            raise ValueError(f"SparseGraph needs a sparse COO matrix, got layout {source.layout}")
        self.source = source
        coalesced = source.coalesce()
        transposed = coalesced.t().coalesce()
        self.symmetric = torch.equal(transposed.indices(), coalesced.indices()) and torch.equal(
            transposed.values(), coalesced.values()
        )
        self.matrix = coalesced.to_sparse_csr()
        self.transposed = self.matrix if self.symmetric else transposed.to_sparse_csr()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """``source @ x``, with gradient to ``x``."""
        return _GraphProduct.apply(x, self.matrix, self.transposed)


class _GraphCache(dict):
    """A module's :class:`SparseGraph` per attribute. A cache only: a copied or pickled module starts with
    an empty one (CSR tensors can be neither deep-copied nor pickled) and builds its graphs again."""

    def __deepcopy__(self, memo: dict) -> _GraphCache:
        return _GraphCache()

    def __reduce__(self) -> tuple:
        return (_GraphCache, ())


def graph_of(module: torch.nn.Module, attribute: str) -> SparseGraph:
    """The :class:`SparseGraph` of ``module.<attribute>``, built on first use and rebuilt only when the
    attribute is replaced (RecBole sets the adjacency once, on the model's device)."""
    source = getattr(module, attribute)
    cache: _GraphCache = module.__dict__.setdefault("_sparse_graphs", _GraphCache())
    graph = cache.get(attribute)
    if graph is None or graph.source is not source:
        graph = cache[attribute] = SparseGraph(source)
    return graph
