"""Negative samplers that run inside the model's loss, on the embeddings the batch already propagated.

A sampler receives a :class:`NegativeContext` (the batch, its user/positive embeddings, and the whole
propagation of the backbone) and returns :class:`Negatives`: one negative embedding per row, with
gradient. Hard samplers score a ``[B, M]`` candidate tensor that the plugin's train loader drew (no
positive of the user among them) under ``no_grad`` and gather the chosen rows with gradient, so they add
no second graph propagation per batch (RecBole's own ``dynamic`` DNS does).

Samplers are ``nn.Module``s so that samplers with parameters (DENS's gates) train and checkpoint with the
model. Register a new one in :data:`SAMPLERS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn


@dataclass
class Propagation:
    """A backbone's embeddings for one training step.

    ``user``/``item`` are the final embeddings used for scoring. ``item_layers``/``user_layers`` are the
    per-layer embeddings that the final ones pool (``pool``: "mean" or "concat"); samplers that mix per
    layer (MixGCF) use them. ``item_ego`` gives layer-0 item embeddings for regularisation.
    """

    user: torch.Tensor
    item: torch.Tensor
    user_layers: list[torch.Tensor] | None = None
    item_layers: list[torch.Tensor] | None = None
    pool: str = "mean"


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


@dataclass
class Negatives:
    emb: torch.Tensor  # [B, d] negative embedding used in the ranking loss (with gradient)
    ids: torch.Tensor | None = None  # [B] chosen item ids; None for a synthetic negative
    ego: torch.Tensor | None = None  # [B, d0] layer-0 embedding of a synthetic negative (for regularisation)
    extra_loss: torch.Tensor | None = None  # a sampler's own auxiliary loss (already weighted)


class NegativeSampler(nn.Module):
    """Base class: ``forward(context) -> Negatives``."""

    name: ClassVar[str]
    needs_candidates: ClassVar[bool] = False

    def __init__(self, config: Any, dim: int) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, ctx: NegativeContext) -> Negatives:  # pragma: no cover - abstract
        raise NotImplementedError


class UniformNegatives(NegativeSampler):
    """RNS: the uniformly drawn negative RecBole's sampler attached to the batch (``neg_item_id``)."""

    name = "rns"

    def forward(self, ctx: NegativeContext) -> Negatives:
        ids = ctx.interaction[ctx.neg_item_field]
        return Negatives(emb=ctx.propagation.item[ids], ids=ids)


SAMPLERS: dict[str, type[NegativeSampler]] = {cls.name: cls for cls in (UniformNegatives,)}


def sampler_class(name: str) -> type[NegativeSampler]:
    try:
        return SAMPLERS[name]
    except KeyError:
        raise ValueError(
            f"config key 'neg_sampler' is {name!r}; choose one of {', '.join(sorted(SAMPLERS))}"
        ) from None


def build_negative_sampler(config: Any, dim: int) -> NegativeSampler:
    return sampler_class(config["neg_sampler"])(config, dim)
