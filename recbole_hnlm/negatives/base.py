"""The interface between a backbone's loss and a negative sampler.

A sampler receives a :class:`NegativeContext` (the batch, its user/positive embeddings and the backbone's
whole :class:`Propagation`) and returns :class:`Negatives`, with gradient. Hard samplers score the batch's
``[B, M]`` candidate tensor under ``no_grad`` and gather only the chosen rows with gradient.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from recbole_hnlm.config_values import config_value
from recbole_hnlm.negatives import CANDIDATES_FIELD, SEMANTIC_POOL_FIELD, SEMANTIC_POOL_MASK_FIELD


def layer_mean(layers: list[torch.Tensor]) -> torch.Tensor:
    """The mean of equally shaped layers, summed in order and divided once: the value of
    ``torch.stack(layers).mean(0)`` (bit for bit up to 4 LightGCN layers, float tolerance beyond) without
    the stacked copy, about half its time forward and backward on ``[users + items, d]`` layers."""
    total = layers[0]
    for layer in layers[1:]:
        total = total + layer
    return total / len(layers)


@dataclass
class Propagation:
    """A backbone's embeddings for one training step.

    ``user``/``item`` are the final embeddings used for scoring. ``user_layers``/``item_layers`` are the
    per-layer embeddings that the final ones pool (``pool``: "mean" or "concat"); samplers that work per
    layer (MixGCF, DENS) use them. ``item_ego`` gives the layer-0 (ID) item embeddings for regularising a
    synthetic negative; when None, ``item_layers[0]`` is the ego layer.
    """

    user: torch.Tensor
    item: torch.Tensor
    user_layers: list[torch.Tensor] | None = None
    item_layers: list[torch.Tensor] | None = None
    pool: str = "mean"
    item_ego: torch.Tensor | None = None
    #: the users+items layers that ``user_layers``/``item_layers`` slice (``from_layers``); items from n_users
    joint_layers: list[torch.Tensor] | None = None
    n_users: int = 0
    #: the users+items tensor that ``user``/``item`` slice (``from_layers``)
    joint_final: torch.Tensor | None = None

    @classmethod
    def from_layers(
        cls, final: torch.Tensor, layers: list[torch.Tensor], n_users: int, pool: str, **extra: torch.Tensor
    ) -> Propagation:
        """Split the stacked users+items ``final`` and per-layer embeddings at ``n_users``."""
        user, item = final[:n_users], final[n_users:]
        return cls(
            user=user,
            item=item,
            user_layers=[layer[:n_users] for layer in layers],
            item_layers=[layer[n_users:] for layer in layers],
            pool=pool,
            joint_layers=list(layers),
            n_users=n_users,
            joint_final=final,
            **extra,
        )

    def layer_rows(self, k: int, users: torch.Tensor, *items: torch.Tensor) -> list[torch.Tensor]:
        """Layer ``k``'s rows of ``users`` and of each item-id tensor, with gradient: ``[user rows, item
        rows...]``, each shaped like its ids plus the layer width.

        With joint users+items layers this is one gather. Each gather's backward zero-fills a gradient as
        large as its table (and a gather from a slice fills the slice's, then the whole layer's): ~8 MB on
        toys at 64-d, ~3 ms per fill on one CPU thread; so one per layer instead of one per call."""
        if self.joint_layers is None:
            return self._split_rows(self.layers("user")[k], self.layers("item")[k], users, items)
        return self._joint_rows(self.joint_layers[k], users, items)

    def final_rows(self, users: torch.Tensor | None, *items: torch.Tensor) -> list[torch.Tensor]:
        """``user[users]`` (unless None) and ``item[ids]`` for each item-id tensor, as :meth:`layer_rows`
        gathers them: one gather from the joint users+items tensor where there is one."""
        if self.joint_final is None:
            return self._split_rows(self.user, self.item, users, items)
        return self._joint_rows(self.joint_final, users, items)

    @staticmethod
    def _split_rows(
        user: torch.Tensor, item: torch.Tensor, users: torch.Tensor | None, items: tuple[torch.Tensor, ...]
    ) -> list[torch.Tensor]:
        pairs = ([(user, users)] if users is not None else []) + [(item, ids) for ids in items]
        return [torch.index_select(t, 0, ids.reshape(-1)).view(*ids.shape, t.shape[-1]) for t, ids in pairs]

    def _joint_rows(
        self, table: torch.Tensor, users: torch.Tensor | None, items: tuple[torch.Tensor, ...]
    ) -> list[torch.Tensor]:
        ids_list = ([users] if users is not None else []) + list(items)
        offsets = ([0] if users is not None else []) + [self.n_users] * len(items)
        index = torch.cat([ids.reshape(-1) + offset for ids, offset in zip(ids_list, offsets)])
        parts = torch.index_select(table, 0, index).split([ids.numel() for ids in ids_list])
        return [part.view(*ids.shape, table.shape[-1]) for part, ids in zip(parts, ids_list)]

    def layers(self, kind: str) -> list[torch.Tensor]:
        layers = self.user_layers if kind == "user" else self.item_layers
        return layers if layers else [self.user if kind == "user" else self.item]

    def ego_items(self) -> torch.Tensor:
        return self.item_ego if self.item_ego is not None else self.layers("item")[0]

    def pool_layers(self, layers: list[torch.Tensor]) -> torch.Tensor:
        """Pool per-layer embeddings ``[..., d_l]`` into final ones, as ``user``/``item`` were pooled."""
        if self.pool == "mean":
            return layer_mean(layers)
        if self.pool == "concat":
            return torch.cat(layers, dim=-1)
        raise ValueError(f"unknown layer pooling {self.pool!r}; expected 'mean' or 'concat'")


@dataclass
class NegativeContext:
    interaction: Any  # recbole.data.interaction.Interaction
    users: torch.Tensor  # [B] internal user ids
    pos_items: torch.Tensor  # [B] internal item ids
    user_e: torch.Tensor  # [B, d]
    pos_e: torch.Tensor  # [B, d]
    propagation: Propagation
    neg_item_field: str
    epoch: int = 0

    def candidates(self) -> torch.Tensor:
        """The ``[B, M]`` candidate items the plugin's train loader drew for this batch."""
        try:
            cands = self.interaction[CANDIDATES_FIELD]
        except (KeyError, IndexError):
            raise KeyError(
                f"the batch has no {CANDIDATES_FIELD!r} field: hard samplers need the plugin's train loader "
                "(train a registered HNLM model through recbole_hnlm)"
            ) from None
        return cands.to(self.user_e.device)

    def semantic_pool(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The ``[B, K]`` semantic candidates and their ``[B, K]`` mask (False: a redrawn positive)."""
        try:
            pool, mask = self.interaction[SEMANTIC_POOL_FIELD], self.interaction[SEMANTIC_POOL_MASK_FIELD]
        except (KeyError, IndexError):
            raise KeyError(
                f"the batch has no {SEMANTIC_POOL_FIELD!r} field: the semdns sampler needs the plugin's "
                "train loader (train a registered HNLM model through recbole_hnlm)"
            ) from None
        return pool.to(self.user_e.device), mask.to(self.user_e.device)


@dataclass
class Negatives:
    """The negatives of one batch.

    ``emb`` is ``[B, d]`` (one negative per row) or ``[B, N, d]`` (N negatives per row; the ranking loss is
    then the mean of the N single-negative losses). ``ids``/``ego`` follow the same leading shape.
    """

    emb: torch.Tensor  # negative embedding(s) used in the ranking loss (with gradient)
    ids: torch.Tensor | None = None  # chosen item ids; None for a synthetic negative
    ego: torch.Tensor | None = None  # layer-0 embedding of a synthetic negative (for regularisation)
    extra_loss: torch.Tensor | None = None  # a sampler's own auxiliary loss (already weighted)

    @property
    def per_row(self) -> int:
        return 1 if self.emb.dim() == 2 else self.emb.shape[1]

    def columns(self) -> list[Negatives]:
        """One single-negative :class:`Negatives` per column (itself when there is one per row)."""
        if self.emb.dim() == 2:
            return [self]
        return [
            Negatives(
                emb=self.emb[:, n],
                ids=None if self.ids is None else self.ids[:, n],
                ego=None if self.ego is None else self.ego[:, n],
            )
            for n in range(self.emb.shape[1])
        ]


class NegativeSampler(nn.Module):
    """Base class: ``forward(context) -> Negatives``.

    ``needs_candidates`` asks the train loader for a ``[B, M]`` candidate tensor; M is the config key
    ``<name>_candidates``, or ``neg_candidates`` when that is unset (see :meth:`candidate_count`).
    ``needs_semantic_pool`` asks it for ``[B, K]`` semantic candidates as well
    (:class:`~recbole_hnlm.negatives.semantic_pool.SemanticPool`); ``needs_text_guard`` asks it to filter
    the candidates by text (:class:`~recbole_hnlm.negatives.text_guard.TextGuard`). Both read the item
    vectors (``needs_item_vectors``; ``run_hnlm`` builds them when ``item_vectors`` is unset). A sampler
    with something to say about its run (e.g. which share of its picks came from where) returns it from
    :meth:`report`; the run's ``result.json`` records it.
    """

    name: ClassVar[str]
    needs_candidates: ClassVar[bool] = False
    needs_semantic_pool: ClassVar[bool] = False
    needs_text_guard: ClassVar[bool] = False
    needs_item_vectors: ClassVar[bool] = False

    def __init__(self, config: Any, dim: int) -> None:
        super().__init__()
        self.dim = dim

    @classmethod
    def candidate_count(cls, config: Any) -> int:
        own = config_value(config, f"{cls.name}_candidates", None)
        count = own if own is not None else config["neg_candidates"]
        key = f"{cls.name}_candidates" if own is not None else "neg_candidates"
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise ValueError(f"config key {key!r} must be a positive integer, got {count!r}")
        return count

    def bind(self, dataset: Any) -> None:
        """Read what the sampler needs from the training split ``dataset`` (the model's ``__init__`` calls
        this once, after construction); most samplers need nothing."""

    def forward(self, ctx: NegativeContext) -> Negatives:  # pragma: no cover - abstract
        raise NotImplementedError

    def report(self) -> dict[str, Any]:
        return {}
