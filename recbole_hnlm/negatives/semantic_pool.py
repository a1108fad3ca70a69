"""Semantic candidate pool for DNS(M,N): text proposes real items, the current CF score decides.

For each training pair (u, i) a table holds the P real items nearest, in item-text space, to a semantic
query: the positive's own text (``semdns_query: positive``, one row per item, |I| rows) or the pair's
stored embedding h (``semdns_query: store``, e.g. the fine-tuned embedder's query embedding, one row per
pair). Each batch draws K of the P neighbours per row (without replacement, NumPy's seeded generator); any
that is a training positive of u is redrawn uniformly from u's non-interacted items and no longer counts
as semantic. :class:`SemanticPoolNegatives` appends the K to the M uniform candidates, and the CF score of
the current model picks the top N of the M + K (``dnsmn_n``), so the gradient always reaches real items
and the classic hard sampler keeps deciding. It records which share of its picks came from the semantic
slots: if that share is small, the text proposes nothing the CF model finds hard.

``semdns_permute: true`` shuffles the table's rows across queries (seeded): the same clustered pools, no
longer tied to (u, i). With ``semdns_k: 0`` the sampler is DNS(M,N) itself.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from recbole_hnlm.config_values import config_value
from recbole_hnlm.negatives.base import NegativeContext, Negatives
from recbole_hnlm.negatives.candidates import CandidateSampler
from recbole_hnlm.negatives.hard import DNSMNNegatives, EpochShare, pick, rows
from recbole_hnlm.negatives.item_vectors import configured_item_vectors
from recbole_hnlm.negatives.store import SemanticNegativeStore, StoreError

SEMANTIC_QUERIES = ("positive", "store")


def _positive_int(config: Any, key: str, minimum: int = 1) -> int:
    value = config_value(config, key)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"config key {key!r} must be an integer >= {minimum}, got {value!r}")
    return value


def nearest_items(
    queries: torch.Tensor,
    items: torch.Tensor,
    count: int,
    exclude: torch.Tensor | None = None,
    chunk: int = 2048,
) -> np.ndarray:
    """``[R, count]`` ids of the items (rows of ``items``, row 0 = [PAD] never chosen) with the largest
    inner product with each query, best first; ``exclude`` ([R] item ids) removes one item per query."""
    if count > items.shape[0] - 1 - (exclude is not None):
        raise ValueError(f"cannot take {count} neighbours among {items.shape[0] - 1} items")
    out = np.empty((queries.shape[0], count), dtype=np.int32)
    for start in range(0, queries.shape[0], chunk):
        scores = queries[start : start + chunk] @ items.T
        scores[:, 0] = -torch.inf
        if exclude is not None:
            part = exclude[start : start + chunk]
            scores[torch.arange(len(part)), part] = -torch.inf
        out[start : start + chunk] = scores.topk(count, dim=1).indices.numpy()
    return out


class SemanticPool:
    """The loader's side: per training interaction a row of P neighbours; ``draw`` gives K per batch row."""

    def __init__(
        self, neighbours: np.ndarray, row_of_interaction: np.ndarray, k: int, candidates: CandidateSampler
    ) -> None:
        if not 0 <= k <= neighbours.shape[1]:
            raise ValueError(f"config key 'semdns_k' must be in 0..semdns_neighbours, got {k}")
        self.neighbours = neighbours
        self.row_of_interaction = row_of_interaction
        self.k = k
        self.candidates = candidates
        self.drawn = 0
        self.redrawn = 0  # drawn neighbours that were training positives of the user

    def draw(self, index: np.ndarray, users: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """``(items [B, K], semantic [B, K])`` for interactions ``index`` of ``users``; ``semantic`` is
        False where a positive was redrawn uniformly."""
        table = self.neighbours[self.row_of_interaction[index]]
        columns = np.argsort(np.random.random(table.shape), axis=1)[:, : self.k]
        items = np.take_along_axis(table, columns, axis=1).astype(np.int64)
        user_grid = np.asarray(users, dtype=np.int64)[:, None].repeat(self.k, axis=1)
        semantic = ~self.candidates.is_positive(user_grid, items)
        self.candidates.redraw_positives(user_grid, items)
        self.drawn += items.size
        self.redrawn += int(items.size - semantic.sum())
        return torch.from_numpy(items), torch.from_numpy(semantic)

    @classmethod
    def from_config(
        cls, config: Any, dataset: Any, users: np.ndarray, items: np.ndarray, candidates: CandidateSampler
    ) -> SemanticPool:
        query = config_value(config, "semdns_query")
        if query not in SEMANTIC_QUERIES:
            raise ValueError(f"config key 'semdns_query' must be one of {SEMANTIC_QUERIES}, got {query!r}")
        width = _positive_int(config, "semdns_neighbours")
        k = _positive_int(config, "semdns_k", minimum=0)
        vectors = configured_item_vectors(config, dataset)
        if query == "positive":
            distinct = torch.from_numpy(np.unique(items))
            neighbours = nearest_items(vectors[distinct], vectors, width, exclude=distinct)
            row_of_item = np.full(vectors.shape[0], -1, dtype=np.int64)
            row_of_item[distinct.numpy()] = np.arange(len(distinct))
            row_of_interaction = row_of_item[items]
        else:
            neighbours, row_of_interaction = _store_neighbours(config, dataset, users, items, vectors, width)
        if config_value(config, "semdns_permute"):
            generator = np.random.default_rng(int(config_value(config, "seed", 0)))
            neighbours = neighbours[generator.permutation(len(neighbours))]
        return cls(neighbours, row_of_interaction, k, candidates)


def _store_neighbours(
    config: Any, dataset: Any, users: np.ndarray, items: np.ndarray, vectors: torch.Tensor, width: int
) -> tuple[np.ndarray, np.ndarray]:
    path = config_value(config, "semdns_store")
    if not path:
        raise ValueError("semdns_query is 'store' but config key 'semdns_store' names no store folder")
    store = SemanticNegativeStore(path).bind(dataset)
    store_rows = store.rows(users, items)
    missing = int((store_rows < 0).sum())
    if missing:
        raise StoreError(f"{path}: {missing} of {len(store_rows)} training pairs have no stored vector")
    if store.dim != vectors.shape[1]:
        raise StoreError(
            f"{path}: stored vectors are {store.dim}-d but the item vectors "
            f"({config_value(config, 'item_vectors')}) are {vectors.shape[1]}-d: they must share one space"
        )
    used, row_of_interaction = np.unique(store_rows, return_inverse=True)
    queries = F.normalize(store.gather(used).float(), dim=-1)
    return nearest_items(queries, vectors, width), row_of_interaction


class SemanticPoolNegatives(DNSMNNegatives):
    """DNS(M,N) over M uniform candidates plus K semantic ones; counts the picks from semantic slots."""

    name = "semdns"
    needs_candidates = True
    needs_semantic_pool = True
    needs_item_vectors = True

    def __init__(self, config: Any, dim: int) -> None:
        super().__init__(config, dim)
        self.semantic_picks = EpochShare()  # picks that came from the semantic slots

    def forward(self, ctx: NegativeContext) -> Negatives:
        uniform = ctx.candidates()
        pool, semantic = ctx.semantic_pool()
        cands = torch.cat([uniform, pool], dim=1)
        top = self.top_columns(ctx, cands)
        if self.training:
            from_semantic = torch.cat([torch.zeros_like(uniform, dtype=torch.bool), semantic], dim=1)
            self.semantic_picks.add(ctx.epoch, int(from_semantic.gather(1, top).sum()), top.numel())
        ids = pick(cands, top)
        return Negatives(emb=rows(ctx.propagation.item, ids), ids=ids)

    def report(self) -> dict[str, Any]:
        """The share of picks that came from the semantic slots, overall and per epoch."""
        return {
            "semantic_pick_share": self.semantic_picks.overall(),
            "semantic_pick_share_by_epoch": self.semantic_picks.by_epoch(),
        }
